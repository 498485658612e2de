#!/usr/bin/env bash
# The main job on the embedded default: a local lake at ./lake and the synthetic source (no account).
# Builds quantlake (release; the first build compiles DuckDB, about 25-30 minutes on 2 cores) and runs
# `quantlake demo`. Extra arguments go to quantlake (e.g. `scripts/demo.sh --json`).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/quantlake/target}"
cargo run --release --locked --bin quantlake -- demo "$@"
