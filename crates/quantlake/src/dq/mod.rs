//! Data quality: metrics per (dataset, symbol, session) in the `dq_metrics` dataset, computed from a
//! stage's output by [`metrics`] and written by the stage that produced the data (curation, for
//! `curated_1m_bars`), `get_data_quality_summary` over them, and each partition's totals and verdict
//! ([`PartitionQuality`], [`metrics::partition_quality`]), which the stage commits in the
//! partition's manifest entry together with its rows.

pub mod annotations;
mod health;
pub mod metrics;
pub mod target_coverage;
mod validate;

pub use crate::quality::{Check, PartitionQuality, QualityTotals, Status};
pub use annotations::{Annotation, list_annotations};
pub use health::reference_session;
pub use health::{DatasetHealth, HealthSettings, KeySymbol, PartitionHealth, get_dataset_health, red_partitions};
pub(crate) use health::{data_span, first_session, last_session_in};
pub use target_coverage::{TargetCoverage, target_coverage};
pub use validate::{ValidateScope, ValidationCheck, ValidationReport, validate};

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::calendar::{NyseCalendar, Session};
use crate::error::{Error, Result};
use crate::symbol::Symbol;
use crate::table::lake_log::LakeView;
use crate::table::operations::write::WriteBuilder;
use crate::table::{Dataset, Lake, ReadFilter};

/// The metrics dataset.
pub const DATASET: &str = "dq_metrics";

/// Metrics of one symbol-session of one dataset.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SessionMetrics {
    pub symbol: String,
    pub date: NaiveDate,
    pub source: Option<String>,
    pub expected_bars: u64,
    pub present_bars: u64,
    pub filled_bars: u64,
    pub invalid_rows: u64,
    pub duplicates_removed: u64,
    pub superseded_rows: u64,
    pub outlier_count: u64,
    pub extended_hours_bars: u64,
    /// Delivered bars (regular and extended), and those without vwap / trade_count.
    pub delivered_bars: u64,
    pub null_vwap: u64,
    pub null_trade_count: u64,
}

impl SessionMetrics {
    pub fn gap_count(&self) -> u64 {
        self.expected_bars.saturating_sub(self.present_bars)
    }

    pub fn coverage(&self) -> f64 {
        if self.expected_bars == 0 { 1.0 } else { self.present_bars as f64 / self.expected_bars as f64 }
    }
}

/// The write that replaces `dataset`'s metrics for `sessions` with `metrics` in `dq` (the `dq_metrics`
/// dataset): the stage that produced the data commits it with its own outputs.
pub fn metrics_write<'a>(
    dq: &'a Dataset,
    dataset: &str,
    sessions: &[Session],
    metrics: &[SessionMetrics],
    job_id: &str,
) -> Result<WriteBuilder<'a>> {
    metrics_write_many(dq, &[(dataset, metrics)], sessions, job_id)
}

/// [`metrics_write`] for several datasets a stage produced, in one write.
pub fn metrics_write_many<'a>(
    dq: &'a Dataset,
    datasets: &[(&str, &[SessionMetrics])],
    sessions: &[Session],
    job_id: &str,
) -> Result<WriteBuilder<'a>> {
    let contract = dq.contract().clone();
    let opens: BTreeMap<NaiveDate, i64> = sessions.iter().map(|s| (s.date, s.open.timestamp_micros())).collect();
    let rows: Vec<(&str, &SessionMetrics)> = datasets
        .iter()
        .flat_map(|(d, ms)| ms.iter().filter(|m| opens.contains_key(&m.date)).map(move |m| (*d, m)))
        .collect();
    let n = rows.len();
    let int = |f: fn(&SessionMetrics) -> u64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, m)| f(m) as i64)))
    };
    let rate = |f: fn(&SessionMetrics) -> u64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(
            rows.iter().map(|(_, m)| if m.delivered_bars == 0 { 0.0 } else { f(m) as f64 / m.delivered_bars as f64 }),
        ))
    };
    let now = Utc::now().timestamp_micros();
    let batch = contract.batch_from(|name| {
        Some(match name {
            "dataset" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(d, _)| *d))),
            "symbol" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(_, m)| m.symbol.as_str()))),
            "session_open" => Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(_, m)| opens[&m.date]))
                    .with_timezone("UTC"),
            ),
            "source" => Arc::new(StringArray::from_iter(rows.iter().map(|(_, m)| m.source.as_deref()))),
            "expected_bars" => int(|m| m.expected_bars),
            "present_bars" => int(|m| m.present_bars),
            "gap_count" => int(SessionMetrics::gap_count),
            "filled_bars" => int(|m| m.filled_bars),
            "invalid_rows" => int(|m| m.invalid_rows),
            "duplicates_removed" => int(|m| m.duplicates_removed),
            "superseded_rows" => int(|m| m.superseded_rows),
            "outlier_count" => int(|m| m.outlier_count),
            "extended_hours_bars" => int(|m| m.extended_hours_bars),
            "delivered_bars" => int(|m| m.delivered_bars),
            "null_vwap" => int(|m| m.null_vwap),
            "null_trade_count" => int(|m| m.null_trade_count),
            "null_rate_vwap" => rate(|m| m.null_vwap),
            "null_rate_trade_count" => rate(|m| m.null_trade_count),
            "coverage" => Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, m)| m.coverage()))),
            "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
            "computed_at" => Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
            _ => return None,
        })
    })?;
    let names: Vec<String> = datasets.iter().map(|(d, _)| d.to_string()).collect();
    let label = names.join(",");
    let of_these = move |b: &RecordBatch| -> Result<BooleanArray> {
        let col = b
            .column_by_name("dataset")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("dq_metrics has no dataset column"))?;
        Ok(col.iter().map(|v| Some(v.is_some_and(|v| names.iter().any(|n| n == v)))).collect())
    };
    Ok(dq
        .write(vec![batch])
        .removing_where(Arc::new(of_these))
        .covering_dates(sessions.iter().map(|s| s.date))
        .operation("dq_metrics")
        .parameter("dataset", label)
        .parameter("job_id", job_id))
}

/// Totals of some symbol-sessions' metrics; `min_symbol_coverage` is the least covered symbol's
/// coverage over all of them (over one session: its least covered symbol-session).
pub fn totals_of<'a>(metrics: impl IntoIterator<Item = &'a SessionMetrics>) -> QualityTotals {
    let mut t = QualityTotals::default();
    let mut by_symbol: std::collections::HashMap<&str, (u64, u64)> = std::collections::HashMap::new();
    for m in metrics {
        let s = by_symbol.entry(m.symbol.as_str()).or_default();
        (s.0, s.1) = (s.0 + m.present_bars, s.1 + m.expected_bars);
        t.symbol_sessions += 1;
        t.covered_symbol_sessions += u64::from(m.present_bars > 0);
        t.expected_bars += m.expected_bars;
        t.present_bars += m.present_bars;
        t.gap_count += m.gap_count();
        t.filled_bars += m.filled_bars;
        t.invalid_rows += m.invalid_rows;
        t.duplicates_removed += m.duplicates_removed;
        t.outlier_count += m.outlier_count;
    }
    t.coverage = if t.expected_bars == 0 { 1.0 } else { t.present_bars as f64 / t.expected_bars as f64 };
    t.symbols = by_symbol.len() as u64;
    t.min_symbol_coverage = by_symbol
        .values()
        .map(|&(present, expected)| if expected == 0 { 1.0 } else { present as f64 / expected as f64 })
        .fold(1.0, f64::min);
    t
}

/// One session of a dataset summed over its symbols (or, with no date, the whole range).
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub date: Option<NaiveDate>,
    /// False for a session listed only for its annotations (no metrics: its totals are zero).
    pub has_metrics: bool,
    #[serde(flatten)]
    pub totals: QualityTotals,
    /// Annotations of the dataset touching the session (an outage, an accepted problem).
    pub annotations: Vec<Annotation>,
}

/// `get_data_quality_summary`: a dataset's metrics per session between two dates, and their total.
#[derive(Debug, Clone, Serialize)]
pub struct QualitySummary {
    pub dataset: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Sessions in the range by the calendar, and those with metrics.
    pub sessions_expected: usize,
    pub sessions_with_data: usize,
    pub total: Option<SessionSummary>,
    pub sessions: Vec<SessionSummary>,
    /// Null rate per column of the dataset's rows in the range (from its manifest entries), for the
    /// columns that have nulls.
    pub null_rates: BTreeMap<String, f64>,
    /// The dq_metrics snapshot read, and the dataset's snapshot the null rates come from.
    pub snapshot_id: u64,
    pub dataset_snapshot_id: u64,
    /// Every annotation of the dataset overlapping the range (each also beside its sessions).
    pub annotations: Vec<Annotation>,
}

/// Summarizes `dataset`'s metrics from `start` to `end`.
pub async fn get_data_quality_summary(
    lake: &Lake,
    dataset: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<QualitySummary> {
    let judged = lake.dataset(dataset)?;
    if end < start {
        return Err(Error::invalid(format!("end {end} is before start {start}")));
    }
    let ds = lake.dataset(DATASET)?;
    // One view for the metrics and the dataset they describe: both from the same curation stages.
    let view = lake.view().await?;
    let state = ds.latest_in(&view).await?;
    let mut rows: Vec<SessionMetrics> = Vec::new();
    for b in ds.read(&state, &ReadFilter { start: Some(start), end: Some(end), ..Default::default() }).await? {
        rows.extend(metrics_of(&b, dataset)?.into_iter().filter(|m| (start..=end).contains(&m.date)));
    }
    let mut by_date: BTreeMap<NaiveDate, Vec<&SessionMetrics>> = BTreeMap::new();
    for m in &rows {
        by_date.entry(m.date).or_default().push(m);
    }
    let (first, last) = annotations::span_of_dates(start, end);
    let notes = list_annotations(lake, Some(judged.name()), first, last).await?;
    let touching = |d: NaiveDate| notes.iter().filter(|a| a.touches_date(d)).cloned().collect::<Vec<_>>();
    let mut sessions: Vec<SessionSummary> = by_date
        .iter()
        .map(|(d, rows)| SessionSummary {
            date: Some(*d),
            has_metrics: true,
            totals: crate::dq::totals_of(rows.iter().copied()),
            annotations: touching(*d),
        })
        .collect();
    // An outage often leaves no metrics at all: its annotated sessions are listed anyway.
    for s in NyseCalendar.sessions(start, end).into_iter().filter(|s| !by_date.contains_key(&s.date)) {
        let annotations = touching(s.date);
        if !annotations.is_empty() {
            sessions.push(SessionSummary {
                date: Some(s.date),
                has_metrics: false,
                totals: QualityTotals::default(),
                annotations,
            });
        }
    }
    sessions.sort_by_key(|s| s.date);
    let total = (!rows.is_empty()).then(|| SessionSummary {
        date: None,
        has_metrics: true,
        totals: crate::dq::totals_of(&rows),
        annotations: Vec::new(),
    });
    let judged_state = judged.latest_in(&view).await?;
    let (mut judged_rows, mut nulls) = (0u64, BTreeMap::<String, u64>::new());
    for e in judged_state.partitions.values().filter(|e| partition_overlaps(e, start, end)) {
        judged_rows += e.rows;
        for (column, n) in &e.null_counts {
            *nulls.entry(column.clone()).or_default() += n;
        }
    }
    let null_rates = nulls
        .into_iter()
        .map(|(c, n)| (c, if judged_rows == 0 { 0.0 } else { n as f64 / judged_rows as f64 }))
        .collect();
    Ok(QualitySummary {
        dataset: dataset.into(),
        start,
        end,
        sessions_expected: NyseCalendar.sessions(start, end).len(),
        sessions_with_data: by_date.len(),
        total,
        sessions,
        null_rates,
        snapshot_id: state.snapshot_id,
        dataset_snapshot_id: judged_state.snapshot_id,
        annotations: notes,
    })
}

/// `dataset`'s metrics rows for some symbols between two dates.
pub async fn symbol_metrics(
    lake: &Lake,
    view: &LakeView,
    dataset: &str,
    symbols: &std::collections::BTreeSet<Symbol>,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<SessionMetrics>> {
    let ds = lake.dataset(DATASET)?;
    let state = ds.latest_in(view).await?;
    let filter = ReadFilter { start: Some(start), end: Some(end), symbols: symbols.clone() };
    let mut out = Vec::new();
    for b in ds.read(&state, &filter).await? {
        out.extend(
            metrics_of(&b, dataset)?
                .into_iter()
                .filter(|m| symbols.contains(m.symbol.as_str()) && (start..=end).contains(&m.date)),
        );
    }
    Ok(out)
}

/// `dataset`'s metrics rows between two dates, of every symbol or of one.
pub async fn metrics_between(
    lake: &Lake,
    view: &LakeView,
    dataset: &str,
    start: NaiveDate,
    end: NaiveDate,
    symbol: Option<&Symbol>,
) -> Result<Vec<SessionMetrics>> {
    let ds = lake.dataset(DATASET)?;
    let state = ds.latest_in(view).await?;
    let symbols = symbol.map(|s| std::collections::BTreeSet::from([s.clone()])).unwrap_or_default();
    let filter = ReadFilter { start: Some(start), end: Some(end), symbols };
    let mut out = Vec::new();
    for b in ds.read(&state, &filter).await? {
        out.extend(
            metrics_of(&b, dataset)?
                .into_iter()
                .filter(|m| symbol.is_none_or(|s| m.symbol == s.as_str()) && (start..=end).contains(&m.date)),
        );
    }
    Ok(out)
}

/// Whether a partition's rows fall (partly) between two New York dates.
fn partition_overlaps(e: &crate::table::manifest::PartitionEntry, start: NaiveDate, end: NaiveDate) -> bool {
    let date = |t: Option<DateTime<Utc>>| t.map(|t| NyseCalendar.trading_date(t));
    match (date(e.min_ts), date(e.max_ts)) {
        (Some(lo), Some(hi)) => lo <= end && hi >= start,
        _ => false,
    }
}

/// The metrics rows of `dataset` in a batch of `dq_metrics`.
fn metrics_of(b: &RecordBatch, dataset: &str) -> Result<Vec<SessionMetrics>> {
    let missing = |n: &str| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("missing {n}") };
    let text = |n: &str| b.column_by_name(n).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| missing(n));
    let int = |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| missing(n));
    let (names, symbols, sources) = (text("dataset")?, text("symbol")?, text("source")?);
    let open = b
        .column_by_name("session_open")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| missing("session_open"))?;
    let counts: Vec<&Int64Array> = [
        "expected_bars",
        "present_bars",
        "filled_bars",
        "invalid_rows",
        "duplicates_removed",
        "superseded_rows",
        "outlier_count",
        "extended_hours_bars",
    ]
    .into_iter()
    .map(int)
    .collect::<Result<_>>()?;
    // The counts behind the null rates (schema version 2); rows written before have the rates only.
    let optional = |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Int64Type>());
    let (delivered, null_vwap, null_trades) =
        (optional("delivered_bars"), optional("null_vwap"), optional("null_trade_count"));
    let rate = |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Float64Type>());
    let (rate_vwap, rate_trades) = (rate("null_rate_vwap"), rate("null_rate_trade_count"));
    let mut out = Vec::new();
    for i in 0..b.num_rows() {
        if names.value(i) != dataset {
            continue;
        }
        let Some(date) = DateTime::<Utc>::from_timestamp_micros(open.value(i)).map(|t| NyseCalendar.trading_date(t))
        else {
            continue;
        };
        let v = |k: usize| counts[k].value(i).max(0) as u64;
        let stored = |c: Option<&Int64Array>| c.filter(|c| c.is_valid(i)).map(|c| c.value(i).max(0) as u64);
        // An older row: delivered estimated as the valid regular and extended-hours bars, the null
        // counts from the stored rates.
        let delivered_bars = stored(delivered).unwrap_or(v(1) + v(7));
        let from_rate = |r: Option<&Float64Array>| {
            r.filter(|r| r.is_valid(i)).map_or(0, |r| (r.value(i) * delivered_bars as f64).round() as u64)
        };
        out.push(SessionMetrics {
            delivered_bars,
            null_vwap: stored(null_vwap).unwrap_or_else(|| from_rate(rate_vwap)),
            null_trade_count: stored(null_trades).unwrap_or_else(|| from_rate(rate_trades)),
            symbol: symbols.value(i).to_string(),
            date,
            source: sources.is_valid(i).then(|| sources.value(i).to_string()),
            expected_bars: v(0),
            present_bars: v(1),
            filled_bars: v(2),
            invalid_rows: v(3),
            duplicates_removed: v(4),
            superseded_rows: v(5),
            outlier_count: v(6),
            extended_hours_bars: v(7),
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `dq_metrics` batch of one row, with (schema 2) or without (schema 1) the null counts.
    fn row(with_counts: bool) -> RecordBatch {
        let int = |v: i64| -> ArrayRef { Arc::new(Int64Array::from(vec![v])) };
        let mut columns: Vec<(&str, ArrayRef)> = vec![
            ("dataset", Arc::new(StringArray::from(vec!["curated_1m_bars"]))),
            ("symbol", Arc::new(StringArray::from(vec!["AAPL"]))),
            ("source", Arc::new(StringArray::from(vec!["synthetic"]))),
            (
                "session_open",
                Arc::new(TimestampMicrosecondArray::from(vec![1_704_205_800_000_000]).with_timezone("UTC")),
            ),
            ("expected_bars", int(390)),
            ("present_bars", int(380)),
            ("filled_bars", int(10)),
            ("invalid_rows", int(0)),
            ("duplicates_removed", int(0)),
            ("superseded_rows", int(0)),
            ("outlier_count", int(1)),
            ("extended_hours_bars", int(20)),
            ("null_rate_vwap", Arc::new(Float64Array::from(vec![0.05]))),
            ("null_rate_trade_count", Arc::new(Float64Array::from(vec![0.0]))),
        ];
        if with_counts {
            columns.extend([("delivered_bars", int(401)), ("null_vwap", int(21)), ("null_trade_count", int(0))]);
        }
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn null_counts_are_read_back_and_estimated_for_older_rows() {
        let new = &metrics_of(&row(true), "curated_1m_bars").unwrap()[0];
        assert_eq!((new.delivered_bars, new.null_vwap, new.null_trade_count), (401, 21, 0));
        assert_eq!(new.date, NaiveDate::from_ymd_opt(2024, 1, 2).unwrap());
        // Schema 1: delivered = valid regular + extended-hours bars; nulls from the stored rate.
        let old = &metrics_of(&row(false), "curated_1m_bars").unwrap()[0];
        assert_eq!((old.delivered_bars, old.null_vwap, old.null_trade_count), (400, 20, 0));
        assert!(metrics_of(&row(true), "other_dataset").unwrap().is_empty());
    }
}
