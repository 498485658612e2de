-- A raw bar's validity for daily curation (curate_1d.sql): a CASE expression giving the first failed
-- check's reason, or NULL for a valid bar. It reads the bar's columns and `is_session` (its date is an
-- NYSE session). Minute curation checks the same in Rust (validity.rs); a test holds the two equal.
CASE
    WHEN NOT is_session THEN 'not an NYSE session'
    WHEN open IS NULL OR high IS NULL OR low IS NULL OR close IS NULL THEN 'missing price'
    WHEN NOT (isfinite(open) AND isfinite(high) AND isfinite(low) AND isfinite(close)) THEN 'NaN or infinite price'
    WHEN least(open, high, low, close) <= 0 THEN 'price <= 0'
    WHEN low > least(open, close) OR high < greatest(open, close) THEN 'OHLC out of order (needs low <= open, close <= high)'
    WHEN volume IS NULL OR NOT isfinite(volume) OR volume < 0 THEN 'missing, negative or infinite volume'
END
