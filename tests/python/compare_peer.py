"""Compares quantlake's peer-job output with a peer's (the shared harness's columns), as JSON on stdout:
rows of each, rows joined on (symbol, ts), null / gap / outlier mismatches and max |diff| per column.
Usage: compare_peer.py PEER_DIR QUANTLAKE_DIR"""
import json
import sys

import duckdb

feats = ["open", "high", "low", "close", "volume", "ret_1", "ret_5", "ret_15", "ret_60", "vol_30", "vwap_30", "rsi_14", "fwd_ret_15"]
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
for name, d in (("p", sys.argv[1]), ("q", sys.argv[2])):
    con.execute(f"""CREATE VIEW {name} AS SELECT symbol::VARCHAR AS symbol, ts::TIMESTAMPTZ AS ts, is_gap, is_outlier,
                    {', '.join(f'{f}::DOUBLE AS {f}' for f in feats)}
                    FROM read_parquet('{d}/*/*.parquet', hive_partitioning=true, union_by_name=true)""")
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
