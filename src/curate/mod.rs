//! Curation: the raw minute datasets -> `curated_1m_bars`, in DuckDB SQL (`curate_1m.sql`, beside
//! this file), with the NYSE calendar for sessions, early closes and regular-hours flags.
//!
//! For each symbol-session the best source with valid bars wins (`source_precedence`); its bars are
//! deduplicated (the latest ingested wins), checked (OHLC order, positive finite prices; failures go to
//! `curation_rejects` with a reason), laid on the session's minute grid (missing minutes filled by the
//! fill policy and flagged), and outliers flagged by a robust rule. Curating a date range replaces
//! exactly its partitions, in `curated_1m_bars` and `curation_rejects`, through the manifest.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod bars;

pub use bars::{get_curated_bars, BarsRequest, Frequency};

use crate::calendar::NyseCalendar;
use crate::dq::{PartitionQuality, QualityTotals, SessionMetrics};
use crate::error::{Error, Result};
use crate::query::{AsOf, QueryEngine};
use crate::table::layout::PartitionKey;
use crate::table::operations::write::WriteMode;
use crate::table::Lake;

/// The curated dataset.
pub const DATASET: &str = "curated_1m_bars";
/// Where invalid raw bars go.
pub const REJECTS: &str = "curation_rejects";

const CURATE_SQL: &str = include_str!("curate_1m.sql");

/// What to do with regular-session minutes the source did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FillPolicy {
    /// Carry the last close forward (open = high = low = close, volume 0), flagged `is_filled`.
    ForwardFill,
    /// Leave the minute out (gaps are still counted by data quality).
    None,
}

/// `[curate]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CurateSettings {
    pub fill: FillPolicy,
    /// A bar is an outlier when |1-minute log return| > `outlier_k` x the sample std of the previous
    /// `outlier_window` returns of its session.
    pub outlier_k: f64,
    pub outlier_window: usize,
    /// Sources by preference: a symbol-session comes whole from the first one that has valid bars.
    pub source_precedence: Vec<String>,
}

impl Default for CurateSettings {
    fn default() -> Self {
        Self {
            fill: FillPolicy::ForwardFill,
            outlier_k: 10.0,
            outlier_window: 30,
            source_precedence: ["tws", "polygon", "alpaca", "file", "synthetic"].map(String::from).to_vec(),
        }
    }
}

/// What to curate.
#[derive(Debug, Clone)]
pub struct CurateRequest {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub job_id: Option<String>,
}

/// What a curation did.
#[derive(Debug, Clone, Serialize)]
pub struct CurateReport {
    pub dataset: String,
    pub job_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub sessions: usize,
    /// Raw datasets read, at these snapshots (the curated snapshot's lineage).
    pub inputs: BTreeMap<String, u64>,
    pub raw_rows: u64,
    /// Valid bars of a source that lost to a preferred one for the same symbol-session.
    pub superseded_rows: u64,
    pub duplicates_removed: u64,
    pub invalid_rows: u64,
    pub filled_rows: u64,
    /// Regular-session minutes left out: nothing to fill from (no earlier bar), or the fill policy is `none`.
    pub unfilled_gaps: u64,
    pub extended_hours_rows: u64,
    pub outliers: u64,
    pub rows: u64,
    pub snapshot_id: u64,
    pub rejects_snapshot_id: Option<u64>,
    /// The `dq_metrics` snapshot holding this run's metrics per symbol-session.
    pub dq_snapshot_id: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Curates `request` with `settings`.
pub async fn curate(lake: &Lake, settings: &CurateSettings, request: &CurateRequest) -> Result<CurateReport> {
    if request.end < request.start {
        return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
    }
    if !(settings.outlier_k.is_finite() && settings.outlier_k > 0.0) || settings.outlier_window < 2 {
        return Err(Error::Config(format!("curate: outlier_k must be > 0 ({}) and outlier_window >= 2 ({})", settings.outlier_k, settings.outlier_window)));
    }
    // A session still in progress would be filled to its close with bars that never traded.
    let last_completed = NyseCalendar.last_completed_session(Utc::now());
    if request.end > last_completed {
        return Err(Error::invalid(format!("end {} is after the last completed session {last_completed}", request.end)));
    }
    let started = Instant::now();
    let job_id = request.job_id.clone().unwrap_or_else(|| format!("curate-{}", uuid::Uuid::now_v7().simple()));
    let sessions = NyseCalendar.sessions(request.start, request.end);
    if sessions.is_empty() {
        return Err(Error::invalid(format!("no NYSE session between {} and {}", request.start, request.end)));
    }
    // In SQL string literals below.
    let job_sql = job_id.replace('\'', "''");
    // One session before the range seeds the forward fill of its first minutes.
    let seed_start = NyseCalendar.previous_session(request.start);
    let mut raw = Vec::new();
    for (precedence, source) in settings.source_precedence.iter().enumerate() {
        let name = format!("raw_{source}_bars");
        let ds = lake.dataset(&name).map_err(|_| Error::Config(format!("curate.source_precedence: no raw dataset '{name}' for source '{source}'")))?;
        if ds.latest().await?.snapshot_id > 0 {
            raw.push(format!(
                "SELECT *, '{name}' AS dataset, {precedence} AS precedence FROM {name} WHERE date BETWEEN DATE '{seed_start}' AND DATE '{}'",
                request.end
            ));
        }
    }
    if raw.is_empty() {
        return Err(Error::invalid("nothing to curate: no raw minute dataset has data"));
    }
    let raw_sql = raw.join("\nUNION ALL BY NAME\n");
    let script = fill_template(
        CURATE_SQL,
        &[
            ("raw", raw_sql.clone()),
            ("start", request.start.to_string()),
            ("outlier_k", settings.outlier_k.to_string()),
            ("outlier_window", settings.outlier_window.to_string()),
            ("keep_filled", (settings.fill == FillPolicy::ForwardFill).to_string()),
        ],
    )?;
    let engine = QueryEngine::open_for_sql(lake, &AsOf::default(), &raw_sql).await?;
    let sessions_sql = sessions_table(seed_start, request.end);
    let curated_at = Utc::now().timestamp_micros();
    let (curated, rejects, stats, sources) = tokio::task::block_in_place(|| -> Result<_> {
        let conn = engine.connection();
        conn.execute_batch(&sessions_sql)?;
        conn.execute_batch(&script)?;
        let curated = engine.query(&format!(
            "SELECT symbol, ts_us AS ts, open, high, low, close, volume, vwap, trade_count, source, is_rth, is_filled, is_outlier, minute_idx, \
             '{job_sql}' AS job_id, {curated_at} AS curated_at, date FROM curated WHERE close IS NOT NULL"
        ))?;
        let rejects = engine.query(&format!(
            "SELECT symbol, ts_us AS ts, open, high, low, close, volume, source, dataset, reason, '{job_sql}' AS job_id, {curated_at} AS curated_at, date \
             FROM checked WHERE reason IS NOT NULL AND date >= DATE '{}' ORDER BY symbol, ts_us",
            request.start
        ))?;
        let stats = engine.query(&format!(
            "SELECT
               (SELECT coalesce(sum(bars), 0) FROM source_counts WHERE date >= DATE '{s}'),
               (SELECT coalesce(sum(c.bars), 0) FROM source_counts c JOIN chosen h USING (symbol, date) WHERE c.date >= DATE '{s}' AND c.precedence <> h.precedence),
               (SELECT coalesce(sum(c.bars), 0) FROM source_counts c JOIN chosen h USING (symbol, date, precedence) WHERE c.date >= DATE '{s}'),
               (SELECT coalesce(sum(s.minutes), 0) FROM chosen JOIN sessions s USING (date) WHERE date >= DATE '{s}')",
            s = request.start
        ))?;
        let sources = engine.query(&format!(
            "SELECT symbol, date, sum(c.bars) FILTER (WHERE c.precedence = h.precedence) AS chosen, \
             coalesce(sum(c.bars) FILTER (WHERE c.precedence <> h.precedence), 0) AS superseded \
             FROM source_counts c JOIN chosen h USING (symbol, date) WHERE date >= DATE '{}' GROUP BY ALL",
            request.start
        ))?;
        Ok((curated, rejects, stats, sources))
    })?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "curation SQL done");
    let stat = |i: usize| -> u64 {
        stats.first().and_then(|b| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Int64).ok()).map_or(0, |c| c.as_primitive::<Int64Type>().value(0).max(0) as u64)
    };
    let expected_symbols = crate::universe::active_symbols(lake).await?;
    let metrics = session_metrics(&sessions, &expected_symbols, &curated, &rejects, &sources)?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "metrics counted");
    let ds = lake.dataset(DATASET)?;
    let contract = ds.contract().clone();
    let curated: Vec<RecordBatch> = curated.iter().filter(|b| b.num_rows() > 0).map(|b| contract.conform_batch(b)).collect::<Result<_>>()?;
    let rows: u64 = curated.iter().map(|b| b.num_rows() as u64).sum();
    let count = |column: &str, want: bool| -> u64 {
        curated.iter().filter_map(|b| b.column_by_name(column)).map(|c| c.as_boolean().iter().filter(|v| *v == Some(want)).count() as u64).sum()
    };
    let (filled_rows, rth_rows, outliers) = (count("is_filled", true), count("is_rth", true), count("is_outlier", true));
    let partitions: Vec<PartitionKey> = sessions.iter().map(|s| PartitionKey::for_date(contract.partitioning, s.date)).collect();
    let quality = partition_quality(&contract, &metrics)?;
    let inputs = engine.snapshots.clone();
    let done = ds
        .write(curated)
        .mode(WriteMode::Overwrite)
        .covering(partitions.clone())
        .quality(quality)
        .operation("curate")
        .parameter("job_id", &job_id)
        .parameter("start", request.start)
        .parameter("end", request.end)
        .parameter("inputs", &inputs)
        .parameter("settings", settings)
        .execute()
        .await?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "curated rows committed");
    let rejects_ds = lake.dataset(REJECTS)?;
    let rejects_contract = rejects_ds.contract().clone();
    let rejects: Vec<RecordBatch> = rejects.iter().filter(|b| b.num_rows() > 0).map(|b| rejects_contract.conform_batch(b)).collect::<Result<_>>()?;
    let invalid_rows: u64 = rejects.iter().map(|b| b.num_rows() as u64).sum();
    // Only write rejects when there are some now or were some before in these partitions.
    let had_rejects = rejects_ds.latest().await?.partitions.keys().any(|p| partitions.iter().any(|k| k.to_string() == *p));
    let rejects_snapshot_id = if invalid_rows > 0 || had_rejects {
        let r = rejects_ds.write(rejects).mode(WriteMode::Overwrite).covering(partitions).operation("curate").parameter("job_id", &job_id).execute().await?;
        Some(r.snapshot_id)
    } else {
        None
    };
    let dq_snapshot_id = crate::dq::record(lake, DATASET, &sessions, &metrics, &job_id).await?;
    let seconds = started.elapsed().as_secs_f64();
    let report = CurateReport {
        dataset: DATASET.into(),
        job_id,
        start: request.start,
        end: request.end,
        sessions: sessions.len(),
        inputs,
        // Valid raw bars plus the invalid ones.
        raw_rows: stat(0) + invalid_rows,
        superseded_rows: stat(1),
        // The chosen sources' valid bars, less the distinct ones (every output row that is not a fill).
        duplicates_removed: stat(2).saturating_sub(rows - filled_rows),
        invalid_rows,
        filled_rows,
        // Regular-session minutes of the chosen symbol-sessions that are not in the output.
        unfilled_gaps: stat(3).saturating_sub(rth_rows),
        extended_hours_rows: rows - rth_rows,
        outliers,
        rows,
        snapshot_id: done.snapshot_id,
        rejects_snapshot_id,
        dq_snapshot_id,
        seconds,
        rows_per_second: rows as f64 / seconds.max(1e-9),
    };
    tracing::info!(rows, snapshot = report.snapshot_id, invalid = invalid_rows, filled = report.filled_rows, outliers = report.outliers, "curated");
    Ok(report)
}

/// Each partition's quality verdict by the contract's rules, from its symbol-sessions' metrics.
fn partition_quality(contract: &crate::contract::DatasetContract, metrics: &[SessionMetrics]) -> Result<BTreeMap<PartitionKey, PartitionQuality>> {
    let rules = contract.quality.clone().ok_or_else(|| Error::invalid(format!("contract '{}' has no [quality] rules", contract.name)))?;
    let mut by_partition: BTreeMap<PartitionKey, Vec<&SessionMetrics>> = BTreeMap::new();
    for m in metrics {
        by_partition.entry(PartitionKey::for_date(contract.partitioning, m.date)).or_default().push(m);
    }
    Ok(by_partition.into_iter().map(|(k, rows)| (k, PartitionQuality::judge(QualityTotals::of(rows), &rules))).collect())
}

/// Metrics per symbol-session being counted, keyed by borrowed (symbol, epoch day): curation's
/// output has millions of rows, so nothing is allocated per row.
struct Tally<'a> {
    minutes: HashMap<NaiveDate, u64>,
    index: HashMap<(&'a str, i32), usize>,
    rows: Vec<SessionMetrics>,
}

impl<'a> Tally<'a> {
    fn get(&mut self, symbol: &'a str, days: i32) -> Result<&mut SessionMetrics> {
        let i = match self.index.get(&(symbol, days)) {
            Some(i) => *i,
            None => {
                let date = NaiveDate::from_epoch_days(days).ok_or_else(|| Error::invalid(format!("date {days} out of range")))?;
                let expected_bars = self.minutes.get(&date).copied().unwrap_or(0);
                self.rows.push(SessionMetrics { symbol: symbol.to_string(), date, expected_bars, ..SessionMetrics::default() });
                self.index.insert((symbol, days), self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        Ok(&mut self.rows[i])
    }
}

/// The `symbol` and `date` columns of a batch of curation's output.
fn keys(b: &RecordBatch) -> Result<(&arrow::array::StringArray, &arrow::array::Date32Array)> {
    let symbol = b.column_by_name("symbol").and_then(|c| c.as_string_opt::<i32>());
    let date = b.column_by_name("date").and_then(|c| c.as_primitive_opt::<arrow::datatypes::Date32Type>());
    symbol.zip(date).ok_or_else(|| Error::invalid("curation output has no symbol or date column"))
}

/// Data-quality metrics per symbol-session from curation's output (with its `date` column), its
/// rejects, and the valid bars per chosen / superseded source. Every `expected` symbol (the active
/// universe) gets a row for every session, so a symbol that delivered nothing shows as a gap.
fn session_metrics(
    sessions: &[crate::calendar::Session],
    expected: &[String],
    curated: &[RecordBatch],
    rejects: &[RecordBatch],
    sources: &[RecordBatch],
) -> Result<Vec<SessionMetrics>> {
    let mut tally = Tally { minutes: sessions.iter().map(|s| (s.date, u64::from(s.minutes()))).collect(), index: HashMap::new(), rows: Vec::new() };
    let column = |b: &RecordBatch, name: &str| b.column_by_name(name).cloned().ok_or_else(|| Error::invalid(format!("curation output has no '{name}'")));
    for b in curated {
        let (sym, date) = keys(b)?;
        let flags = |n: &str| column(b, n).map(|c| c.as_boolean().clone());
        let (rth, filled, outlier) = (flags("is_rth")?, flags("is_filled")?, flags("is_outlier")?);
        let (vwap, trades, source) = (column(b, "vwap")?, column(b, "trade_count")?, column(b, "source")?);
        let source = source.as_string::<i32>();
        for i in 0..b.num_rows() {
            let m = tally.get(sym.value(i), date.value(i))?;
            if filled.value(i) {
                m.filled_bars += 1;
            } else {
                m.delivered_bars += 1;
                m.present_bars += u64::from(rth.value(i));
                m.null_vwap += u64::from(vwap.is_null(i));
                m.null_trade_count += u64::from(trades.is_null(i));
                if m.source.is_none() {
                    m.source = Some(source.value(i).to_string());
                }
            }
            m.extended_hours_bars += u64::from(!rth.value(i));
            m.outlier_count += u64::from(outlier.value(i));
        }
    }
    for b in rejects {
        let (sym, date) = keys(b)?;
        for i in 0..b.num_rows() {
            tally.get(sym.value(i), date.value(i))?.invalid_rows += 1;
        }
    }
    for b in sources {
        let (sym, date) = keys(b)?;
        let as_i64 = |n: &str| -> Result<Int64Array> { Ok(arrow::compute::cast(&column(b, n)?, &arrow::datatypes::DataType::Int64)?.as_primitive::<Int64Type>().clone()) };
        let (chosen, superseded) = (as_i64("chosen")?, as_i64("superseded")?);
        for i in 0..b.num_rows() {
            let m = tally.get(sym.value(i), date.value(i))?;
            m.superseded_rows = superseded.value(i).max(0) as u64;
            // Valid bars of the chosen source, less the distinct ones delivered.
            m.duplicates_removed = (chosen.value(i).max(0) as u64).saturating_sub(m.delivered_bars);
        }
    }
    for s in sessions {
        let days = s.date.to_epoch_days();
        for symbol in expected {
            tally.get(symbol, days)?;
        }
    }
    let mut rows = tally.rows;
    rows.sort_by(|a, b| (&a.symbol, a.date).cmp(&(&b.symbol, b.date)));
    Ok(rows)
}

/// A `.sql` file with its `{name}` placeholders filled in. Every placeholder must be given and used, so
/// a renamed one fails here rather than as a DuckDB syntax error.
pub(crate) fn fill_template(template: &str, values: &[(&str, String)]) -> Result<String> {
    // Checked on the template, not the result: values are SQL and may hold braces of their own.
    for (i, _) in template.match_indices('{') {
        let Some(len) = template[i..].find('}') else { continue };
        let name = &template[i + 1..i + len];
        if !values.iter().any(|(n, _)| *n == name) {
            return Err(Error::invalid(format!("SQL template placeholder {{{name}}} has no value")));
        }
    }
    let mut out = template.to_string();
    for (name, value) in values {
        let key = format!("{{{name}}}");
        if !out.contains(&key) {
            return Err(Error::invalid(format!("SQL template has no placeholder {key}")));
        }
        out = out.replace(&key, value);
    }
    Ok(out)
}

/// `CREATE TEMP TABLE sessions(date, open_us, close_us, minutes)` from the NYSE calendar.
fn sessions_table(start: NaiveDate, end: NaiveDate) -> String {
    let rows: Vec<String> = NyseCalendar
        .sessions(start, end)
        .iter()
        .map(|s| format!("(DATE '{}', {}, {}, {})", s.date, s.open.timestamp_micros(), s.close.timestamp_micros(), s.minutes()))
        .collect();
    if rows.is_empty() {
        return "CREATE TEMP TABLE sessions (date DATE, open_us BIGINT, close_us BIGINT, minutes INTEGER);".into();
    }
    format!("CREATE TEMP TABLE sessions AS SELECT * FROM (VALUES {}) t(date, open_us, close_us, minutes);", rows.join(", "))
}


#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_completely() {
        let filled = fill_template("SELECT {a} + {b}", &[("a", "1".into()), ("b", "2".into())]).unwrap();
        assert_eq!(filled, "SELECT 1 + 2");
        assert!(fill_template("SELECT {a}", &[("a", "1".into()), ("b", "2".into())]).is_err(), "unused value");
        assert!(fill_template("SELECT {a} + {c}", &[("a", "1".into())]).unwrap_err().to_string().contains("{c}"));
        // The shipped templates take exactly the values the code gives them.
        let curate = [("raw", "r"), ("start", "s"), ("outlier_k", "k"), ("outlier_window", "w"), ("keep_filled", "f")].map(|(k, v)| (k, v.to_string()));
        assert!(fill_template(CURATE_SQL, &curate).is_ok());
        assert!(fill_template(include_str!("resample.sql"), &[("filter", "f".into()), ("minutes", "5".into())]).is_ok());
    }
}
