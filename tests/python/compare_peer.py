"""Compares quantlake's peer-job output with a peer's (the shared harness's columns), as JSON on stdout:
rows of each, rows joined on (symbol, ts), null / gap / outlier mismatches and max |diff| per column.
Usage: compare_peer.py PEER_DIR QUANTLAKE_LAKE

The lake is read where it stands, as the harness reads it: the live files of its regular-session
curated bars joined with `features_price_1m_v1` and `labels_fwd_ret_v1` on (symbol, ts)."""
import json
import os
import sys

import duckdb

feats = ["open", "high", "low", "close", "volume", "ret_1", "ret_5", "ret_15", "ret_60", "vol_30", "vwap_30", "rsi_14", "fwd_ret_15"]
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
peer, lake = sys.argv[1], sys.argv[2]
if not os.path.exists(os.path.join(lake, "_lake.json")):
    sys.exit(f"{lake} is not a quantlake lake (no _lake.json)")
con.execute(f"""CREATE VIEW p AS SELECT symbol::VARCHAR AS symbol, ts::TIMESTAMPTZ AS ts, is_gap, is_outlier,
                {', '.join(f'{f}::DOUBLE AS {f}' for f in feats)}
                FROM read_parquet('{peer}/*/*.parquet', hive_partitioning=true, union_by_name=true)""")
source = lambda f: "l.fwd_ret_15m" if f == "fwd_ret_15" else ("c." if f in feats[:5] else "f.") + f
live = lambda ds: f"read_parquet('{lake}/{ds}/*/*.parquet', hive_partitioning=true, union_by_name=true)"
con.execute(f"""CREATE VIEW q AS SELECT c.symbol::VARCHAR AS symbol, c.ts::TIMESTAMPTZ AS ts, c.is_filled AS is_gap,
                f.is_outlier, {', '.join(f'{source(f)}::DOUBLE AS {f}' for f in feats)}
                FROM {live('curated/curated_1m_bars')} c JOIN {live('features/features_price_1m_v1')} f USING (symbol, ts)
                LEFT JOIN {live('features/labels_fwd_ret_v1')} l USING (symbol, ts) WHERE c.is_rth""")
nulls = " + ".join(f"((p.{f} IS NULL) <> (q.{f} IS NULL))::INT" for f in feats)
diffs = ", ".join(f"max(abs(p.{f} - q.{f}))" for f in feats)
r = con.execute(f"""SELECT (SELECT count(*) FROM p), (SELECT count(*) FROM q), count(*), coalesce(sum({nulls}), 0),
                    coalesce(sum((p.is_gap <> q.is_gap)::INT), 0), coalesce(sum((p.is_outlier <> q.is_outlier)::INT), 0),
                    (SELECT count(*) FILTER (WHERE is_outlier) FROM p), {diffs}
                    FROM p JOIN q USING (symbol, ts)""").fetchone()
print(json.dumps({
    "peer_rows": r[0], "quantlake_rows": r[1], "joined": r[2], "null_mismatch": r[3], "gap_mismatch": r[4],
    "outlier_mismatch": r[5], "peer_outliers": r[6], "max_diff": {f: (None if v is None else float(v)) for f, v in zip(feats, r[7:])},
}))
