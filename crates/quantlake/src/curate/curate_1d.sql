-- Curation of daily bars: raw daily sources -> curated_1d_bars (run by src/curate/daily.rs).
-- It fills in the brace placeholders below: raw (a UNION ALL BY NAME over the raw daily datasets, with
-- `dataset` and `precedence` columns, from the year before the range to its end), start, end,
-- outlier_k, outlier_window, validity (validity.sql). The table `days(date, day_start_us, day_end_us,
-- is_session)` holds every New York calendar day from the seed to the end with its bounds in UTC, from
-- the NYSE calendar: a daily bar belongs to the day its ts falls in (the raw layer stamps midnight New
-- York).
-- Times are epoch microseconds: the embedded DuckDB has no ICU, so no time-zone arithmetic here.

CREATE TEMP VIEW raw AS
SELECT r.symbol, epoch_us(r.ts) AS ts_us, d.date, d.is_session,
       CAST(r.open AS DOUBLE) AS open, CAST(r.high AS DOUBLE) AS high, CAST(r.low AS DOUBLE) AS low,
       CAST(r.close AS DOUBLE) AS close, CAST(r.volume AS DOUBLE) AS volume,
       CAST(r.vwap AS DOUBLE) AS vwap, CAST(r.trade_count AS BIGINT) AS trade_count,
       r.source, r.dataset, r.precedence, epoch_us(r.ingested_at) AS ingested_us
FROM ({raw}) r JOIN days d ON epoch_us(r.ts) >= d.day_start_us AND epoch_us(r.ts) < d.day_end_us;

-- Validity (validity.sql): the first failed check names the row's reason.
CREATE TEMP TABLE checked AS
SELECT *, {validity} AS reason FROM raw;

-- Valid bars per symbol-session and source; each symbol-session comes whole from its best source.
CREATE TEMP TABLE source_counts AS
SELECT symbol, date, precedence, count(*) AS bars FROM checked WHERE reason IS NULL GROUP BY ALL;

CREATE TEMP TABLE chosen AS
SELECT symbol, date, min(precedence) AS precedence FROM source_counts GROUP BY ALL;

-- Dedupe: one bar per symbol and session, the latest ingested, taken as a whole row.
CREATE TEMP TABLE bars AS
SELECT symbol, date, b.ts_us, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count, b.source
FROM (
  SELECT symbol, date, arg_max(struct_pack(ts_us, open, high, low, close, volume, vwap, trade_count, source), ingested_us) AS b
  FROM checked c JOIN chosen USING (symbol, date, precedence)
  WHERE c.reason IS NULL
  GROUP BY symbol, date
);

-- Outliers: |log return| against the std of the previous sessions' returns (the year before the range
-- seeds the window). Returns are of split-adjusted closes (the table `splits(symbol, ex_date, ratio)`
-- from reference_corporate_actions, made by daily.rs), so a split is not an outlier; the stored
-- prices stay as delivered.
CREATE TEMP VIEW curated AS
WITH a AS (
  SELECT b.*, b.close * coalesce((SELECT product(s.ratio) FROM splits s WHERE s.symbol = b.symbol AND s.ex_date > b.date), 1.0) AS adj_close
  FROM bars b
),
r AS (
  SELECT *, ln(adj_close / lag(adj_close) OVER w) AS ret_1, row_number() OVER w AS n
  FROM a
  WINDOW w AS (PARTITION BY symbol ORDER BY date)
),
o AS (
  SELECT *, stddev_samp(ret_1) OVER (PARTITION BY symbol ORDER BY date
                                     ROWS BETWEEN {outlier_window} PRECEDING AND 1 PRECEDING) AS s_prev
  FROM r
)
SELECT symbol, ts_us, date, open, high, low, close, volume, vwap, trade_count, source,
       coalesce(n > {outlier_window} + 1 AND s_prev > 0 AND abs(ret_1) > {outlier_k} * s_prev, false) AS is_outlier
FROM o
WHERE date BETWEEN DATE '{start}' AND DATE '{end}';

-- Each symbol's first and last session with a valid bar in the range: the sessions between are expected.
CREATE TEMP VIEW spans AS
SELECT symbol, min(date) AS first, max(date) AS last
FROM checked WHERE reason IS NULL AND date BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY symbol;
