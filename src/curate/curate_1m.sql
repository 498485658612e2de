-- Curation of one-minute bars: raw sources -> curated_1m_bars (run by src/curate/minute.rs).
-- It fills in the brace placeholders below: raw (a UNION ALL BY NAME over the raw datasets, with
-- `dataset` and `precedence` columns, from the session before the range to its end) and validity
-- (validity.sql). The table `sessions(date, open_us, close_us, minutes)` comes from the NYSE calendar.
-- Times are epoch microseconds: the embedded DuckDB has no ICU, so no time-zone arithmetic here.

-- Views, not tables: DuckDB streams them, so a range of many sessions never sits in memory whole.
CREATE TEMP VIEW raw AS
SELECT symbol, epoch_us(ts) AS ts_us, CAST(date AS DATE) AS date,
       CAST(open AS DOUBLE) AS open, CAST(high AS DOUBLE) AS high, CAST(low AS DOUBLE) AS low,
       CAST(close AS DOUBLE) AS close, CAST(volume AS DOUBLE) AS volume,
       CAST(vwap AS DOUBLE) AS vwap, CAST(trade_count AS BIGINT) AS trade_count,
       source, dataset, precedence, epoch_us(ingested_at) AS ingested_us
FROM ({raw});

-- Validity (validity.sql): the first failed check names the row's reason. `rth` marks regular-session bars.
CREATE TEMP VIEW checked AS
SELECT *, {validity} AS reason
FROM (
  SELECT r.*, s.date IS NOT NULL AS is_session, (r.ts_us >= s.open_us AND r.ts_us < s.close_us) AS rth
  FROM raw r LEFT JOIN sessions s USING (date)
);

-- Valid bars per symbol-session and source (small; it also gives the raw and superseded counts).
CREATE TEMP TABLE source_counts AS
SELECT symbol, date, precedence, count(*) AS bars, count(*) FILTER (WHERE rth) AS rth_bars
FROM checked WHERE reason IS NULL GROUP BY ALL;

-- Source precedence: each symbol-session comes whole from its best source with valid regular-session
-- bars (a source with only pre-market bars does not beat a complete one), else its best source.
CREATE TEMP TABLE chosen AS
SELECT symbol, date, coalesce(min(precedence) FILTER (WHERE rth_bars > 0), min(precedence)) AS precedence
FROM source_counts GROUP BY ALL;

-- Dedupe: one bar per (symbol, minute), the latest ingested, taken as a whole row (a hash aggregate,
-- not a sort), so a bar never mixes two rows' prices.
CREATE TEMP VIEW bars AS
SELECT symbol, ts_us, date, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.source
FROM (
  SELECT symbol, ts_us, any_value(date) AS date,
         arg_max(struct_pack(open, high, low, close, volume, vwap, trade_count, source), ingested_us) AS b
  FROM checked c JOIN chosen USING (symbol, date, precedence)
  WHERE c.reason IS NULL
  GROUP BY symbol, ts_us
);

-- Every regular-session minute of every symbol-session present (early closes have 210).
CREATE TEMP VIEW grid AS
SELECT p.symbol, s.date, s.open_us + r.m * 60000000 AS ts_us, CAST(r.m AS INTEGER) AS minute_idx
FROM chosen p
JOIN sessions s USING (date)
CROSS JOIN range(390) r(m)
WHERE r.m < s.minutes;

CREATE TEMP VIEW merged AS
SELECT coalesce(b.symbol, g.symbol) AS symbol, coalesce(b.date, g.date) AS date, coalesce(b.ts_us, g.ts_us) AS ts_us,
       g.minute_idx, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.source,
       b.ts_us IS NULL AS is_filled, g.ts_us IS NOT NULL AS is_rth
FROM bars b FULL JOIN grid g ON b.symbol = g.symbol AND b.ts_us = g.ts_us;

-- The fill and the outlier flags run in Rust (kernels.rs) over these rows in (symbol, ts) order: one
-- pass per symbol instead of three window sorts over every row.
CREATE TEMP VIEW merged_in_order AS
SELECT symbol, ts_us, date, minute_idx, open, high, low, close, volume, vwap, trade_count, source, is_filled, is_rth
FROM merged
ORDER BY symbol, ts_us;
