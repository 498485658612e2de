#!/usr/bin/env bash
# The whole test suite, with all set-up, on a fresh machine: a project venv with the S3 server (moto)
# and the readers the interop tests use, then every Rust test in the one release profile.
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

cargo test --release --locked "$@"
