#!/usr/bin/env bash
# The curate half of the peer benchmark (../shared/bench/peers): quantlake curates the same generated
# input the DuckDB / polars / pandas jobs read, under /usr/bin/time -v (wall, peak RSS), and its output
# is cross-checked against the DuckDB peer's (rows, gaps, outliers, closes on every (symbol, ts)).
#
#   ../shared/bench/peers/run.sh duckdb polars pandas    # the peers first (generates the input)
#   benches/curate_peers.sh                              # then quantlake on the same input
#
# Env: N_SYM (500) N_DAYS (60) WORK (/tmp/quantlake-bench) PEERS_VENV ($HOME/.cache/quantlake/peers-venv)
#      QUANTLAKE (the release binary in $CARGO_TARGET_DIR, default $HOME/.cache/quantlake/target)
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
peers=$here/../shared/bench/peers
N_SYM=${N_SYM:-500} N_DAYS=${N_DAYS:-60}
export N_SYM N_DAYS
WORK=${WORK:-${TMPDIR:-/tmp}/quantlake-bench}
venv=${PEERS_VENV:-$HOME/.cache/quantlake/peers-venv}
bin=${QUANTLAKE:-${CARGO_TARGET_DIR:-$HOME/.cache/quantlake/target}/release/quantlake}
data=$WORK/${N_SYM}x${N_DAYS}
[ -x "$bin" ] || { echo "no quantlake binary at $bin: cargo build --release first" >&2; exit 1; }
if [ ! -d "$data/raw" ]; then
  [ -x "$venv/bin/python" ] || { python3 -m venv "$venv"; "$venv/bin/pip" install -q duckdb polars pandas pyarrow numpy; }
  mkdir -p "$data" && (cd "$data" && "$venv/bin/python" "$peers/gen_bars.py" "$data/raw")
fi
lake=$data/quantlake_lake
rm -rf "$lake"
ql() { "$bin" --lake "$lake" --config "$here/config/quantlake.toml" "$@"; }
ql init > /dev/null
first=$(ls "$data/raw" | head -1 | cut -d= -f2); last=$(ls "$data/raw" | tail -1 | cut -d= -f2)
start=$(date +%s.%N)
for f in "$data"/raw/date=*/part.parquet; do ql --quiet ingest --source file --path "$f" > /dev/null; done
echo "import: $(echo "$(date +%s.%N) - $start" | bc) s ($(ls "$data/raw" | wc -l) files)"
/usr/bin/time -v "$bin" --lake "$lake" --config "$here/config/quantlake.toml" --json curate --start "$first" --end "$last" > "$data/quantlake_curate.json" 2> "$data/quantlake_curate.time"
wall=$(awk -F': ' '/Elapsed \(wall/{print $2}' "$data/quantlake_curate.time")
rss=$(awk -F': ' '/Maximum resident/{print $2}' "$data/quantlake_curate.time")
echo "quantlake curate: wall $wall, peak RSS ${rss} kB"
"$venv/bin/python" - "$data/quantlake_curate.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print({k: r[k] for k in ["rows", "raw_rows", "duplicates_removed", "filled_rows", "outliers", "invalid_rows", "seconds"]})
PY
if [ -d "$data/out_duckdb" ]; then
  "$venv/bin/python" - "$lake/curated/curated_1m_bars" "$data/out_duckdb" <<'PY'
import sys, duckdb
ql, peer = sys.argv[1], sys.argv[2]
con = duckdb.connect()
con.execute(f"CREATE VIEW q AS SELECT * FROM read_parquet('{ql}/*/*.parquet')")
con.execute(f"CREATE VIEW p AS SELECT * FROM read_parquet('{peer}/*/*.parquet', hive_partitioning=false)")
print("rows (quantlake, peer):", con.execute("SELECT (SELECT count(*) FROM q), (SELECT count(*) FROM p)").fetchone())
print("gaps (quantlake is_filled, peer is_gap):", con.execute("SELECT (SELECT count(*) FROM q WHERE is_filled), (SELECT count(*) FROM p WHERE is_gap)").fetchone())
print("outliers (quantlake, peer):", con.execute("SELECT (SELECT count(*) FROM q WHERE is_outlier), (SELECT count(*) FROM p WHERE is_outlier)").fetchone())
print("joined rows, flag mismatches, max |close diff|:", con.execute(
    "SELECT count(*), count(*) FILTER (WHERE q.is_filled <> p.is_gap OR q.is_outlier <> p.is_outlier), max(abs(q.close - p.close)) "
    "FROM q JOIN p ON q.symbol = p.symbol AND q.ts = p.ts").fetchone())
PY
fi
