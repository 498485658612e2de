#!/usr/bin/env bash
# Training sets, side by side in one run: `quantlake training-set --label fwd_ret_15m` over every symbol
# and session of a window, against the same join written by hand in polars (benches/training_set_polars.py,
# the lake's live features_price_1m_v1 and labels_fwd_ret_v1 files joined on (symbol, ts)), at two
# window lengths, each under /usr/bin/time -v (wall, peak RSS). Streaming shows as a peak RSS that
# does not grow with the window.
#
#   benches/training_set.sh                     # 500 symbols; windows of 60 and 120 sessions
#   N_SYM=100 WINDOWS="20 40" benches/training_set.sh
#
# The input is the peer benchmark's generator (tests/python/peer/gen_bars.py; real 2024 sessions, so at
# most 124), imported, curated and featurised once into WORK and reused.
# Both write their Parquet file to OUT (default /dev/shm, memory): on disk, each run's 1-2 GB of output
# meets the previous one's writeback, and the later runs measure the disk.
# Env: N_SYM (500) WINDOWS ("60 120") WORK (/tmp/quantlake-bench) OUT (/dev/shm/quantlake-bench)
#      PYTHON (.venv/bin/python)
#      QUANTLAKE (the release binary in $CARGO_TARGET_DIR, default $HOME/.cache/quantlake/target)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
N_SYM=${N_SYM:-500}
WINDOWS=${WINDOWS:-"60 120"}
N_DAYS=$(echo "$WINDOWS" | tr ' ' '\n' | sort -n | tail -1)
export N_SYM N_DAYS
WORK=${WORK:-${TMPDIR:-/tmp}/quantlake-bench}
py=${PYTHON:-$here/.venv/bin/python}
bin=${QUANTLAKE:-${CARGO_TARGET_DIR:-$HOME/.cache/quantlake/target}/release/quantlake}
[ -x "$bin" ] || { echo "no quantlake binary at $bin: cargo build --release first" >&2; exit 1; }
[ -x "$py" ] || { echo "no python at $py: run scripts/test.sh once (it sets up .venv)" >&2; exit 1; }
data=$WORK/${N_SYM}x${N_DAYS}
OUT=${OUT:-/dev/shm/quantlake-bench}
mkdir -p "$OUT"
lake=$data/quantlake_lake
ql() { "$bin" --quiet --lake "$lake" --config "$here/config/quantlake.toml" "$@"; }
if [ ! -d "$data/raw" ]; then
  mkdir -p "$data" && (cd "$data" && "$py" "$here/tests/python/peer/gen_bars.py" "$data/raw")
fi
first=$(ls "$data/raw" | head -1 | cut -d= -f2)
if [ ! -f "$lake/.built" ]; then
  rm -rf "$lake"
  last=$(ls "$data/raw" | tail -1 | cut -d= -f2)
  ql init > /dev/null
  ql ingest --source file --path "$data/raw" > /dev/null
  ql curate --start "$first" --end "$last" > /dev/null
  ql features --start "$first" --end "$last" > /dev/null
  touch "$lake/.built"
fi
measure() { # name, then the command; prints wall and peak RSS
  local name=$1; shift
  /usr/bin/time -v "$@" > "$data/$name.out" 2> "$data/$name.time" || { cat "$data/$name.time" >&2; exit 1; }
  printf '%-34s wall %8s  peak RSS %6.2f GB\n' "$name" \
    "$(awk -F': ' '/Elapsed \(wall/{print $2}' "$data/$name.time")" \
    "$(awk -F': ' '/Maximum resident/{print $2 / 1048576}' "$data/$name.time")"
}
echo "lake: $lake ($N_SYM symbols x $N_DAYS sessions), $(date -u +%F), $(nproc) cores"
for w in $WINDOWS; do
  end=$(ls "$data/raw" | sed -n "${w}p" | cut -d= -f2)
  measure "quantlake training-set ${w}s" "$bin" --quiet --lake "$lake" --config "$here/config/quantlake.toml" \
    training-set --label fwd_ret_15m --start "$first" --end "$end" --output "$OUT/train.parquet"
  measure "polars join ${w}s" "$py" "$here/benches/training_set_polars.py" "$lake" "$first" "$end" "$OUT/polars.parquet"
  "$py" - "$OUT/train.parquet" "$OUT/polars.parquet" <<'PY'
import sys, polars as pl
q, p = (pl.scan_parquet(f).select(pl.len()).collect().item() for f in sys.argv[1:3])
print(f"  rows: quantlake {q:,}, polars {p:,}")
PY
  rm -f "$OUT/train.parquet" "$OUT/polars.parquet"
done
