-- Valid bars per symbol-session of the chosen source and of the sources it superseded, from the
-- `source_counts` and `chosen` tables both curation stages build (run by src/curate/mod.rs).
SELECT symbol, date,
       sum(c.bars) FILTER (WHERE c.precedence = h.precedence) AS chosen,
       coalesce(sum(c.bars) FILTER (WHERE c.precedence <> h.precedence), 0) AS superseded
FROM source_counts c JOIN chosen h USING (symbol, date)
WHERE date BETWEEN DATE '{start}' AND DATE '{end}'
GROUP BY ALL
