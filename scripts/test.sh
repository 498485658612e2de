#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh machine: a project venv with the S3 server (moto),
# the readers the interop tests use, selenium and the Python package (maturin develop); Debian's
# chromium and chromedriver for the dashboard's browser tests; then every Rust test in the one release
# profile.
# Extra arguments go to `cargo test` (e.g. `scripts/test.sh --test lake crash`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quantlake/target}"

venv=.venv
stamp="$venv/.requirements.sha256"
want=$(sha256sum tests/python/requirements.txt | cut -d' ' -f1)
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setting up $venv (moto, duckdb, pandas, pyarrow, polars)..." >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r tests/python/requirements.txt
  echo "$want" > "$stamp"
fi

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then
  echo "installing chromium and chromium-driver (the dashboard's browser tests)..." >&2
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
  $sudo apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q chromium chromium-driver >&2
fi

# The Python package (python/): its abi3 wheel, built as `pip install ./python` builds it (maturin,
# release, in the same target directory, so DuckDB compiles once; the venv's pinned maturin, hence no
# build isolation), kept in $CARGO_TARGET_DIR/wheels for the test that installs it into a fresh venv,
# and installed into the project's venv for the pytest suite (tests/lake/python_package.rs).
wheels="$CARGO_TARGET_DIR/wheels"
rm -f "$wheels"/quantlake-*.whl
PATH="$PWD/$venv/bin:$PATH" MATURIN_PEP517_ARGS="--locked" \
  "$venv/bin/pip" wheel --quiet --no-deps --no-build-isolation --wheel-dir "$wheels" ./python >&2
"$venv/bin/pip" install --quiet --no-deps --force-reinstall "$wheels"/quantlake-*.whl >&2

cargo test --release --locked "$@"
