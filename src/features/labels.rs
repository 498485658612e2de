//! Label sets: forward returns and residual returns, in DuckDB SQL (`labels.sql`): window functions,
//! a trailing regression and joins are what SQL is good at, and labels are read back by the training
//! sets' point-in-time join in SQL too.

use std::collections::BTreeMap;

use arrow::array::RecordBatch;
use chrono::NaiveDate;

use super::definition::{Horizon, LabelSet};
use crate::calendar::NyseCalendar;
use crate::curate::fill_template;
use crate::error::{Error, Result};
use crate::query::{AsOf, QueryEngine};
use crate::reference::corporate_actions::SplitHistory;
use crate::table::{Lake, SnapshotSpec};

const LABELS_SQL: &str = include_str!("labels.sql");

/// The sessions a label set reads to label `start..=end`: the trailing beta window before, and the
/// longest session horizon after.
pub fn read_range(set: &LabelSet, start: NaiveDate, end: NaiveDate) -> (NaiveDate, NaiveDate) {
    let ahead = set.targets.iter().filter_map(|t| if let Horizon::Sessions(n) = t.horizon { Some(n) } else { None }).max().unwrap_or(0);
    (NyseCalendar.add_sessions(start, -(i64::from(set.beta_sessions) + 1)), NyseCalendar.add_sessions(end, i64::from(ahead)))
}

/// Each (symbol, session) of `from..=to` whose prices a later split in the range changes, with the
/// factor that puts them on the share basis of `to`: the split-adjustment `labels.sql` applies to
/// returns across sessions (1.0, and so no row, elsewhere).
pub fn split_factors(splits: &SplitHistory, from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, f64)> {
    let sessions = NyseCalendar.sessions(from, to);
    let mut symbols: Vec<&str> = splits.splits().filter(|(_, ex, _)| *ex > from && *ex <= to).map(|(s, _, _)| s).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let mut out = Vec::new();
    for symbol in symbols {
        for s in &sessions {
            let factor = splits.price_ratio_between(symbol, s.date, to);
            if factor != 1.0 {
                out.push((symbol.to_string(), s.date, factor));
            }
        }
    }
    out
}

/// Computes `set`'s labels for the sessions `start..=end` from its input at `input_snapshot`.
/// `price_factors` back-adjusts each (symbol, session)'s prices for the splits after it (1.0 when absent).
pub async fn compute(lake: &Lake, set: &LabelSet, start: NaiveDate, end: NaiveDate, input_snapshot: u64, price_factors: &[(String, NaiveDate, f64)]) -> Result<Vec<RecordBatch>> {
    let (read_start, read_end) = read_range(set, start, end);
    let sql = labels_sql(set, start, end, read_start, read_end)?;
    let as_of = AsOf { all: None, per_dataset: BTreeMap::from([(set.input.clone(), SnapshotSpec::Id(input_snapshot))]) };
    let engine = QueryEngine::open_for_sql(lake, &as_of, &sql).await?;
    let sessions: Vec<String> = NyseCalendar.sessions(read_start, read_end).iter().enumerate().map(|(i, s)| format!("(DATE '{}', {i})", s.date)).collect();
    let conn = engine.connection();
    conn.execute_batch(&format!("CREATE TABLE sessions AS SELECT * FROM (VALUES {}) t(date, idx);", sessions.join(", ")))?;
    conn.execute_batch("CREATE TABLE price_factors (symbol VARCHAR, date DATE, factor DOUBLE);")?;
    // Few rows (only sessions before a split differ from 1); symbols are validated, so safe in quotes.
    for (symbol, _, _) in price_factors {
        crate::table::layout::validate_symbol(symbol)?;
    }
    for chunk in price_factors.chunks(1000) {
        let rows: Vec<String> = chunk.iter().map(|(symbol, date, factor)| format!("('{symbol}', DATE '{date}', {factor:?})")).collect();
        conn.execute_batch(&format!("INSERT INTO price_factors VALUES {};", rows.join(", ")))?;
    }
    tokio::task::block_in_place(|| engine.query(&sql))
}

/// `labels.sql` with the set's targets written out.
fn labels_sql(set: &LabelSet, start: NaiveDate, end: NaiveDate, read_start: NaiveDate, read_end: NaiveDate) -> Result<String> {
    let (mut minute, mut session, mut joins, mut plain, mut residual, mut market) = (String::new(), String::new(), String::new(), String::new(), String::new(), Vec::new());
    for (i, t) in set.targets.iter().enumerate() {
        let name = &t.name;
        match &t.horizon {
            Horizon::Minutes(h) => {
                // lead() reads the row h rows on: it is the bar h minutes on only if no minute between is missing.
                minute.push_str(&format!(
                    ",\n         CASE WHEN lead(b.minute_idx, {h}) OVER w = b.minute_idx + {h} THEN ln(lead(b.close, {h}) OVER w / b.close) END AS {name},\
                     \n         CASE WHEN lead(b.minute_idx, {h}) OVER w = b.minute_idx + {h} THEN (lead(b.ts, {h}) OVER w::TIMESTAMP + INTERVAL {bm} MINUTE)::TIMESTAMPTZ END AS {name}_end",
                    bm = set.bar_minutes
                ));
            }
            Horizon::Sessions(h) => {
                joins.push_str(&format!("\n  LEFT JOIN bars n{i} ON n{i}.symbol = b.symbol AND n{i}.session_idx = b.session_idx + {h} AND n{i}.minute_idx = b.minute_idx"));
                session.push_str(&format!(
                    ",\n         ln(n{i}.adj_close / b.adj_close) AS {name},\n         (n{i}.ts::TIMESTAMP + INTERVAL {bm} MINUTE)::TIMESTAMPTZ AS {name}_end",
                    bm = set.bar_minutes
                ));
            }
            Horizon::ResidualOf(of) => {
                residual.push_str(&format!(",\n       f.{of} - bt.beta * mf.{of} AS {name}"));
                continue;
            }
        }
        plain.push_str(&format!(", f.{name}, f.{name}_end"));
        market.push(name.clone());
    }
    let (market_daily, market_forward) = if set.market == "equal_weight" {
        let avgs: Vec<String> = market.iter().map(|n| format!("avg({n}) AS {n}")).collect();
        ("SELECT session_idx, avg(r) AS r FROM daily_returns GROUP BY session_idx".to_string(), format!("SELECT ts, {} FROM forward GROUP BY ts", avgs.join(", ")))
    } else {
        // Validated as a symbol: safe inside quotes.
        let m = &set.market;
        (format!("SELECT session_idx, r FROM daily_returns WHERE symbol = '{m}'"), format!("SELECT ts, {} FROM forward WHERE symbol = '{m}'", market.join(", ")))
    };
    if market.is_empty() {
        return Err(Error::invalid(format!("label set '{}' has no plain target", set.name)));
    }
    fill_template(
        LABELS_SQL,
        &[
            ("input", set.input.clone()),
            ("read_start", read_start.to_string()),
            ("read_end", read_end.to_string()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("market_daily", market_daily),
            ("market_forward", market_forward),
            ("beta_sessions", set.beta_sessions.to_string()),
            ("beta_min_sessions", set.beta_min_sessions.to_string()),
            ("minute_targets", minute),
            ("session_targets", session),
            ("session_joins", joins),
            ("bar_minutes", set.bar_minutes.to_string()),
            ("plain_columns", plain),
            ("residual_columns", residual),
        ],
    )
}
