//! Data quality: metrics per (dataset, symbol, session) in the `dq_metrics` dataset, written by the
//! stage that produced the data (curation, for `curated_1m_bars`), and `get_data_quality_summary`
//! over them.

mod health;
mod validate;

pub use health::{get_dataset_health, Check, DatasetHealth, HealthSettings, SessionHealth, Status};
pub use validate::{validate, ValidationCheck, ValidationReport};

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{Float64Type, Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::calendar::{NyseCalendar, Session};
use crate::error::{Error, Result};
use crate::table::layout::PartitionKey;
use crate::table::{Lake, ReadFilter};

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

/// Replaces `dataset`'s metrics for `sessions` with `metrics`, in one snapshot of `dq_metrics`.
pub async fn record(lake: &Lake, dataset: &str, sessions: &[Session], metrics: &[SessionMetrics], job_id: &str) -> Result<u64> {
    let ds = lake.dataset(DATASET)?;
    let contract = ds.contract().clone();
    let opens: BTreeMap<NaiveDate, i64> = sessions.iter().map(|s| (s.date, s.open.timestamp_micros())).collect();
    let rows: Vec<&SessionMetrics> = metrics.iter().filter(|m| opens.contains_key(&m.date)).collect();
    let n = rows.len();
    let int = |f: fn(&SessionMetrics) -> u64| -> ArrayRef { Arc::new(Int64Array::from_iter_values(rows.iter().map(|m| f(m) as i64))) };
    let rate = |f: fn(&SessionMetrics) -> u64| -> ArrayRef {
        Arc::new(Float64Array::from_iter_values(rows.iter().map(|m| if m.delivered_bars == 0 { 0.0 } else { f(m) as f64 / m.delivered_bars as f64 })))
    };
    let now = Utc::now().timestamp_micros();
    let batch = contract.batch_from(|name| {
        Some(match name {
            "dataset" => Arc::new(StringArray::from(vec![dataset; n])),
            "symbol" => Arc::new(StringArray::from_iter_values(rows.iter().map(|m| m.symbol.as_str()))),
            "session_open" => Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|m| opens[&m.date])).with_timezone("UTC")),
            "source" => Arc::new(StringArray::from_iter(rows.iter().map(|m| m.source.as_deref()))),
            "expected_bars" => int(|m| m.expected_bars),
            "present_bars" => int(|m| m.present_bars),
            "gap_count" => int(SessionMetrics::gap_count),
            "filled_bars" => int(|m| m.filled_bars),
            "invalid_rows" => int(|m| m.invalid_rows),
            "duplicates_removed" => int(|m| m.duplicates_removed),
            "superseded_rows" => int(|m| m.superseded_rows),
            "outlier_count" => int(|m| m.outlier_count),
            "extended_hours_bars" => int(|m| m.extended_hours_bars),
            "null_rate_vwap" => rate(|m| m.null_vwap),
            "null_rate_trade_count" => rate(|m| m.null_trade_count),
            "coverage" => Arc::new(Float64Array::from_iter_values(rows.iter().map(|m| m.coverage()))),
            "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
            "computed_at" => Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
            _ => return None,
        })
    })?;
    let name = dataset.to_string();
    let of_dataset = move |b: &RecordBatch| -> Result<BooleanArray> {
        let col = b.column_by_name("dataset").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| Error::invalid("dq_metrics has no dataset column"))?;
        Ok(col.iter().map(|v| Some(v == Some(name.as_str()))).collect())
    };
    let done = ds
        .write(vec![batch])
        .removing_where(Arc::new(of_dataset))
        .covering(sessions.iter().map(|s| PartitionKey::for_date(contract.partitioning, s.date)))
        .operation("dq_metrics")
        .parameter("dataset", dataset)
        .parameter("job_id", job_id)
        .execute()
        .await?;
    Ok(done.snapshot_id)
}

/// One session of a dataset summed over its symbols (or, with no date, the whole range).
#[derive(Debug, Clone, Serialize)]
pub struct SessionSummary {
    pub date: Option<NaiveDate>,
    pub symbols: u64,
    pub expected_bars: u64,
    pub present_bars: u64,
    pub gap_count: u64,
    pub filled_bars: u64,
    pub invalid_rows: u64,
    pub duplicates_removed: u64,
    pub outlier_count: u64,
    pub coverage: f64,
    /// The least covered symbol of the session.
    pub min_symbol_coverage: f64,
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
    /// The dq_metrics snapshot read.
    pub snapshot_id: u64,
}

/// Summarizes `dataset`'s metrics from `start` to `end`.
pub async fn get_data_quality_summary(lake: &Lake, dataset: &str, start: NaiveDate, end: NaiveDate) -> Result<QualitySummary> {
    lake.dataset(dataset)?;
    if end < start {
        return Err(Error::invalid(format!("end {end} is before start {start}")));
    }
    let ds = lake.dataset(DATASET)?;
    let state = ds.latest().await?;
    let mut by_date: BTreeMap<NaiveDate, (SessionSummary, Vec<f64>)> = BTreeMap::new();
    for b in ds.read(&state, &ReadFilter { start: Some(start), end: Some(end), ..Default::default() }).await? {
        let text = |n: &str| b.column_by_name(n).and_then(|c| c.as_string_opt::<i32>().cloned());
        let int = |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Int64Type>().cloned());
        let (Some(names), Some(open), Some(cov)) = (
            text("dataset"),
            b.column_by_name("session_open").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>().cloned()),
            b.column_by_name("coverage").and_then(|c| c.as_primitive_opt::<Float64Type>().cloned()),
        ) else {
            return Err(Error::SchemaMismatch { dataset: DATASET.into(), detail: "missing dataset, session_open or coverage".into() });
        };
        let cols: Vec<Int64Array> = ["expected_bars", "present_bars", "gap_count", "filled_bars", "invalid_rows", "duplicates_removed", "outlier_count"]
            .iter()
            .map(|n| int(n).ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("missing {n}") }))
            .collect::<Result<_>>()?;
        for i in 0..b.num_rows() {
            if names.value(i) != dataset {
                continue;
            }
            let Some(date) = DateTime::<Utc>::from_timestamp_micros(open.value(i)).map(|t| t.with_timezone(&crate::calendar::NEW_YORK).date_naive()) else { continue };
            if !(start..=end).contains(&date) {
                continue;
            }
            let (s, covs) = by_date.entry(date).or_insert_with(|| {
                (
                    SessionSummary { date: Some(date), symbols: 0, expected_bars: 0, present_bars: 0, gap_count: 0, filled_bars: 0, invalid_rows: 0, duplicates_removed: 0, outlier_count: 0, coverage: 0.0, min_symbol_coverage: 1.0 },
                    Vec::new(),
                )
            });
            let v = |k: usize| cols[k].value(i).max(0) as u64;
            s.symbols += 1;
            s.expected_bars += v(0);
            s.present_bars += v(1);
            s.gap_count += v(2);
            s.filled_bars += v(3);
            s.invalid_rows += v(4);
            s.duplicates_removed += v(5);
            s.outlier_count += v(6);
            covs.push(cov.value(i));
        }
    }
    let sessions: Vec<SessionSummary> = by_date
        .into_values()
        .map(|(mut s, covs)| {
            s.coverage = if s.expected_bars == 0 { 1.0 } else { s.present_bars as f64 / s.expected_bars as f64 };
            s.min_symbol_coverage = covs.into_iter().fold(1.0, f64::min);
            s
        })
        .collect();
    let total = sessions.iter().map(|s| SessionSummary { date: None, ..s.clone() }).reduce(|mut a, b| {
        a.symbols = a.symbols.max(b.symbols);
        a.expected_bars += b.expected_bars;
        a.present_bars += b.present_bars;
        a.gap_count += b.gap_count;
        a.filled_bars += b.filled_bars;
        a.invalid_rows += b.invalid_rows;
        a.duplicates_removed += b.duplicates_removed;
        a.outlier_count += b.outlier_count;
        a.min_symbol_coverage = a.min_symbol_coverage.min(b.min_symbol_coverage);
        a.coverage = if a.expected_bars == 0 { 1.0 } else { a.present_bars as f64 / a.expected_bars as f64 };
        a
    });
    Ok(QualitySummary {
        dataset: dataset.into(),
        start,
        end,
        sessions_expected: NyseCalendar.sessions(start, end).len(),
        sessions_with_data: sessions.len(),
        total,
        sessions,
        snapshot_id: state.snapshot_id,
    })
}
