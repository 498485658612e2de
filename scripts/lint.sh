#!/usr/bin/env bash
# Formatting and lints, as CI runs them before the tests: rustfmt (rustfmt.toml) and clippy on every
# target of every crate, warnings as errors. Clippy shares the release profile and target directory of
# the tests, so DuckDB's C++ build is not repeated.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quantlake/target}"
cargo fmt --all --check
cargo clippy --release --locked --workspace --all-targets -- -D warnings
