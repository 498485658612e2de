-- Curated bars at a coarser frequency (run by src/curate/bars.rs). Buckets of N regular-session
-- minutes, counted from the session's open, so no bar spans a session boundary; a session's last bucket
-- may be short (early closes). A bucket of 390 minutes or more gives one bar per session: its OHLCV.
-- src/curate/bars.rs fills in the brace placeholders: filter (symbols and dates) and minutes.
SELECT symbol,
       min(ts) AS ts,
       arg_min(open, ts) AS open,
       max(high) AS high,
       min(low) AS low,
       arg_max(close, ts) AS close,
       sum(volume) AS volume,
       CAST(count(*) AS INTEGER) AS minutes,
       CAST(count(*) FILTER (WHERE is_filled) AS INTEGER) AS filled_minutes,
       bool_or(is_outlier) AS has_outlier,
       date
FROM curated_1m_bars
WHERE is_rth AND {filter}
GROUP BY symbol, date, minute_idx // {minutes}
ORDER BY symbol, ts
