-- Labels of a label set (labels.rs fills the placeholders from the set's [definition]).
-- Reads the regular-session bars of {input} from {read_start} (the trailing beta window before the first
-- labelled session) to {read_end} (the sessions the longest horizon reaches), and labels {start}..{end}.
-- Temp tables made by labels.rs: sessions(date, idx) numbers the NYSE sessions in order; price_factors
-- (symbol, date, factor) back-adjusts prices of a session for later splits, so every ratio across
-- sessions is of prices on one basis (a ratio inside a session is the same either way).
-- Time arithmetic goes through TIMESTAMP (UTC): the bundled DuckDB has no time-zone extension.
WITH bars AS (
  SELECT b.symbol, b.ts, b.date, b.minute_idx, b.close,
         b.close * coalesce(f.factor, 1.0) AS adj_close, s.idx AS session_idx
  FROM {input} b
  JOIN sessions s ON s.date = b.date
  LEFT JOIN price_factors f ON f.symbol = b.symbol AND f.date = b.date
  WHERE b.is_rth AND b.date BETWEEN DATE '{read_start}' AND DATE '{read_end}'
),
-- Daily returns from each session's last regular-session close; only between consecutive sessions.
daily AS (
  SELECT symbol, session_idx, arg_max(adj_close, minute_idx) AS close FROM bars GROUP BY symbol, session_idx
),
daily_returns AS (
  SELECT symbol, session_idx,
         CASE WHEN lag(session_idx) OVER w = session_idx - 1 THEN ln(close / lag(close) OVER w) END AS r
  FROM daily WINDOW w AS (PARTITION BY symbol ORDER BY session_idx)
),
market_daily AS ({market_daily}),
-- Beta of the decision day: the OLS slope over the {beta_sessions} sessions before it, never the day itself.
betas AS (
  SELECT d.symbol, d.session_idx,
         CASE WHEN regr_count(d.r, m.r) OVER w >= {beta_min_sessions} THEN regr_slope(d.r, m.r) OVER w END AS beta
  FROM daily_returns d LEFT JOIN market_daily m ON m.session_idx = d.session_idx
  WINDOW w AS (PARTITION BY d.symbol ORDER BY d.session_idx RANGE BETWEEN {beta_sessions} PRECEDING AND 1 PRECEDING)
),
-- Forward returns on the bar grid: a minute horizon reads the bar exactly h minutes later in the same
-- session; a session horizon the same minute h sessions later.
forward AS (
  SELECT b.symbol, b.ts, b.date, b.session_idx{minute_targets}{session_targets}
  FROM bars b{session_joins}
  WHERE b.date BETWEEN DATE '{start}' AND DATE '{end}'
  WINDOW w AS (PARTITION BY b.symbol, b.session_idx ORDER BY b.minute_idx)
),
market_forward AS ({market_forward})
SELECT f.symbol, f.ts, (f.ts::TIMESTAMP + INTERVAL {bar_minutes} MINUTE)::TIMESTAMPTZ AS decision_time{plain_columns},
       bt.beta{residual_columns}
FROM forward f
LEFT JOIN betas bt ON bt.symbol = f.symbol AND bt.session_idx = f.session_idx
LEFT JOIN market_forward mf ON mf.ts = f.ts
ORDER BY f.symbol, f.ts
