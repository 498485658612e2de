#!/usr/bin/env python3
"""Reference curate+features job in DuckDB SQL. Usage: job_duckdb.py RAW_DIR OUT_DIR

Semantics shared by job_duckdb.py / job_polars.py / job_pandas.py (see tests/fixtures/README.md):
 curate  : dedupe (symbol, ts); grid = every (symbol, date) present x 390 minutes from that session's open
           (RAW_DIR/../sessions.csv: date, open_utc; NYSE sessions, DST-correct);
           is_gap = bar missing; close forward-filled per symbol (across days), gap rows get
           open=high=low=close=ffilled close, volume=0; sorted by (symbol, ts).
 features: all windows per (symbol, date), ordered by minute:
           ret_k = ln(close/close[t-k]) k=1,5,15,60 (null if minute_idx<k)
           vol_30 = stddev_samp(ret_1 over rows t-29..t), null if minute_idx<30
           is_outlier = |ret_1| > 10 * stddev_samp(ret_1 over rows t-30..t-1) (minute_idx>=31)
           vwap_30 = sum(close*volume)/sum(volume) over t-29..t (minute_idx>=29, null if sum vol=0)
           rsi_14 = 100*sum(gain)/(sum(gain)+sum(loss)) over 14 diffs (Cutler SMA RSI; minute_idx>=14)
           fwd_ret_15 = ln(close[t+15]/close) (null in last 15 minutes)
 output  : OUT_DIR/date=YYYY-MM-DD/*.parquet, zstd
"""
import sys, time, os, duckdb

raw, out = sys.argv[1], sys.argv[2]
sessions = os.path.join(os.path.dirname(os.path.abspath(raw)), "sessions.csv")
t0 = time.time()
con = duckdb.connect()
con.execute("SET TimeZone='UTC'")
con.execute("SET threads=2")
sql = f"""
COPY (
WITH raw AS (
  SELECT symbol, ts, open, high, low, close, volume
  FROM read_parquet('{raw}/*/*.parquet', hive_partitioning=false)
),
dedup AS (SELECT DISTINCT ON (symbol, ts) * FROM raw),
sd AS (SELECT DISTINCT symbol, CAST(ts AS DATE) AS date FROM dedup),
sess AS (SELECT CAST(date AS DATE) AS date, CAST(open_utc AS TIMESTAMPTZ) AS open_ts
         FROM read_csv('{sessions}', all_varchar=true)),
grid AS (
  SELECT sd.symbol, sd.date, m.range::INTEGER AS minute_idx, s.open_ts + to_minutes(m.range) AS ts
  FROM sd JOIN sess s USING (date) CROSS JOIN range(390) m
),
joined AS (
  SELECT g.symbol, g.date, g.minute_idx, g.ts,
         d.open, d.high, d.low, d.close, d.volume, d.close IS NULL AS is_gap
  FROM grid g LEFT JOIN dedup d ON d.symbol = g.symbol AND d.ts = g.ts
),
filled AS (
  SELECT symbol, date, minute_idx, ts, is_gap, c AS close,
         coalesce(open, c) AS open, coalesce(high, c) AS high, coalesce(low, c) AS low,
         coalesce(volume, 0)::BIGINT AS volume
  FROM (SELECT *, last_value(close IGNORE NULLS) OVER (PARTITION BY symbol ORDER BY ts
                  ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS c FROM joined)
),
f1 AS (
  SELECT *,
    ln(close / lag(close, 1) OVER w) AS ret_1,
    ln(close / lag(close, 5) OVER w) AS ret_5,
    ln(close / lag(close, 15) OVER w) AS ret_15,
    ln(close / lag(close, 60) OVER w) AS ret_60,
    ln(lead(close, 15) OVER w / close) AS fwd_ret_15,
    greatest(close - lag(close, 1) OVER w, 0) AS gain,
    greatest(lag(close, 1) OVER w - close, 0) AS loss
  FROM filled
  WINDOW w AS (PARTITION BY symbol, date ORDER BY minute_idx)
),
f2 AS (
  SELECT *,
    stddev_samp(ret_1) OVER w30 AS s30,
    stddev_samp(ret_1) OVER w30p AS s30p,
    sum(close * volume) OVER w30 AS pv30,
    sum(volume) OVER w30 AS v30,
    sum(gain) OVER w14 AS g14,
    sum(loss) OVER w14 AS l14
  FROM f1
  WINDOW w30 AS (PARTITION BY symbol, date ORDER BY minute_idx ROWS BETWEEN 29 PRECEDING AND CURRENT ROW),
         w30p AS (PARTITION BY symbol, date ORDER BY minute_idx ROWS BETWEEN 30 PRECEDING AND 1 PRECEDING),
         w14 AS (PARTITION BY symbol, date ORDER BY minute_idx ROWS BETWEEN 13 PRECEDING AND CURRENT ROW)
)
SELECT symbol, ts, date, open, high, low, close, volume, is_gap,
  coalesce(minute_idx >= 31 AND abs(ret_1) > 10 * s30p, false) AS is_outlier,
  ret_1, ret_5, ret_15, ret_60,
  CASE WHEN minute_idx >= 30 THEN s30 END AS vol_30,
  CASE WHEN minute_idx >= 29 AND v30 > 0 THEN pv30 / v30 END AS vwap_30,
  CASE WHEN minute_idx >= 14 AND g14 + l14 > 0 THEN 100 * g14 / (g14 + l14) END AS rsi_14,
  fwd_ret_15
FROM f2
ORDER BY date, symbol, ts
) TO '{out}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd, OVERWRITE_OR_IGNORE true)
"""
r = con.execute(sql).fetchall()
n = r[0][0] if r else None
t1 = time.time()
print(f"ENGINE=duckdb-{duckdb.__version__} rows_out={n} seconds={t1 - t0:.2f}")
