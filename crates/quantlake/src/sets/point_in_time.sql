-- The point-in-time join every set goes through (training, inference, scoring): for each entity row
-- (symbol, decision_time) of the temp table `entities`, the latest row of the feature set {features}
-- whose bar is complete at the decision time (a bar stamped ts, its start, is complete at
-- ts + {bar_minutes} minutes), looking back at most to {read_start}. The row's `available_at` (when all
-- its features are known, by the set's definition) is returned too: the leakage check compares it
-- with the decision time, so a feature that reads a later bar is caught, not silently shifted.
SELECT e.*, f.ts AS feature_ts, f.available_at{feature_columns}
FROM entities e
ASOF LEFT JOIN (
  SELECT *, (ts::TIMESTAMP + INTERVAL {bar_minutes} MINUTE)::TIMESTAMPTZ AS bar_end
  FROM {features}
  WHERE date BETWEEN DATE '{read_start}' AND DATE '{read_end}'
) f ON f.symbol = e.symbol AND e.decision_time >= f.bar_end
ORDER BY e.symbol, e.decision_time
