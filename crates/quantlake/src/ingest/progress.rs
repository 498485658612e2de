//! Ingestion progress: one `ingest_progress` row per (raw dataset, symbol, session), written right
//! after the bars it describes. Resuming reads it to skip what is done; `clean` drops old rows.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::calendar::Session;
use crate::error::{Error, Result};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::write::WriteMode;
use crate::table::{Lake, ReadFilter};

/// The progress dataset.
pub const DATASET: &str = "ingest_progress";

/// How a symbol-session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Bars stored.
    Done,
    /// The source has no bars for it (holiday, not yet listed): done, nothing stored.
    Empty,
    /// The source refused the symbol; retried by the next resume.
    Failed,
}

impl Status {
    fn as_str(self) -> &'static str {
        match self {
            Status::Done => "done",
            Status::Empty => "empty",
            Status::Failed => "failed",
        }
    }
}

/// One progress row.
#[derive(Debug, Clone)]
pub struct Record {
    pub symbol: Symbol,
    pub session: Session,
    pub status: Status,
    pub rows: u64,
    pub error: Option<String>,
}

/// Commits `records` of one unit of work on `dataset`, replacing earlier records of the same
/// (dataset, symbols, sessions) and nothing else.
pub async fn record(
    lake: &Lake,
    dataset: &str,
    source: &str,
    job_id: &str,
    snapshot_id: Option<u64>,
    records: &[Record],
) -> Result<()> {
    if records.is_empty() {
        return Ok(());
    }
    let progress = lake.dataset(DATASET)?;
    let contract = progress.contract();
    let n = records.len();
    let now = Utc::now().timestamp_micros();
    let ts = |v: Vec<i64>| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(v).with_timezone("UTC")) };
    let batch = contract.batch_from(|name| {
        Some(match name {
            "dataset" => Arc::new(StringArray::from(vec![dataset; n])),
            "source" => Arc::new(StringArray::from(vec![source; n])),
            "symbol" => Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.symbol.as_str()))),
            "session_open" => ts(records.iter().map(|r| r.session.open.timestamp_micros()).collect()),
            "status" => Arc::new(StringArray::from_iter_values(records.iter().map(|r| r.status.as_str()))),
            "rows" => Arc::new(Int64Array::from_iter_values(records.iter().map(|r| r.rows as i64))),
            "snapshot_id" => Arc::new(Int64Array::from(vec![snapshot_id.map(|s| s as i64); n])),
            "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
            "updated_at" => ts(vec![now; n]),
            "error" => Arc::new(StringArray::from_iter(records.iter().map(|r| r.error.as_deref()))),
            _ => return None,
        })
    })?;
    let sessions: BTreeSet<NaiveDate> = records.iter().map(|r| r.session.date).collect();
    let symbols: BTreeSet<Symbol> = records.iter().map(|r| r.symbol.clone()).collect();
    progress
        .write(vec![batch])
        .mode(WriteMode::ReplaceSymbols)
        .replacing_symbols(symbols)
        .replacing_where("dataset", dataset)
        .covering_dates(sessions)
        .operation("progress")
        .parameter("dataset", dataset)
        .parameter("job_id", job_id)
        .execute()
        .await?;
    Ok(())
}

/// The (symbol, session date) pairs of `dataset` recorded as done or empty between `start` and `end`.
pub async fn finished(
    lake: &Lake,
    dataset: &str,
    symbols: &[Symbol],
    start: NaiveDate,
    end: NaiveDate,
) -> Result<HashSet<(Symbol, NaiveDate)>> {
    let progress = lake.dataset(DATASET)?;
    let state = progress.latest().await?;
    let filter = ReadFilter { start: Some(start), end: Some(end), symbols: symbols.iter().cloned().collect() };
    let mut out = HashSet::new();
    for batch in progress.read(&state, &filter).await? {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("no column '{name}'") })
        };
        let (ds, sym, status) =
            (col("dataset")?.as_string::<i32>(), col("symbol")?.as_string::<i32>(), col("status")?.as_string::<i32>());
        let open = col("session_open")?.as_primitive::<TimestampMicrosecondType>();
        for i in 0..batch.num_rows() {
            if ds.value(i) != dataset || status.value(i) == Status::Failed.as_str() {
                continue;
            }
            let date = DateTime::<Utc>::from_timestamp_micros(open.value(i))
                .map(|t| t.with_timezone(&chrono_tz::America::New_York).date_naive());
            if let Some(date) = date.filter(|d| (start..=end).contains(d)) {
                out.insert((Symbol::new(sym.value(i))?, date));
            }
        }
    }
    Ok(out)
}

/// What `clean` removed.
#[derive(Debug, Clone, Serialize)]
pub struct CleanReport {
    pub rows_removed: u64,
    pub rows_kept: u64,
    pub partitions_rewritten: usize,
    pub snapshot_id: Option<u64>,
}

/// Removes progress rows last updated longer than `age` ago ([`clean`] with the cutoff now - `age`).
pub async fn clean_older_than(lake: &Lake, age: std::time::Duration) -> Result<CleanReport> {
    let cutoff = chrono::Duration::from_std(age)
        .ok()
        .and_then(|age| Utc::now().checked_sub_signed(age))
        .ok_or_else(|| Error::invalid(format!("--older-than {}: too far back", humantime::format_duration(age))))?;
    clean(lake, cutoff).await
}

/// Removes progress rows last updated before `cutoff`, in one commit. The sessions they described are
/// then fetched again by the next resume. The removal is a predicate the write applies to each
/// partition's current rows, so progress committed concurrently is kept.
pub async fn clean(lake: &Lake, cutoff: DateTime<Utc>) -> Result<CleanReport> {
    let progress = lake.dataset(DATASET)?;
    let state = progress.latest().await?;
    let cutoff = cutoff.timestamp_micros();
    let stale = move |batch: &RecordBatch| -> Result<BooleanArray> {
        let updated = batch
            .column_by_name("updated_at")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::SchemaMismatch {
                dataset: DATASET.into(),
                detail: "no timestamp column 'updated_at'".into(),
            })?;
        Ok((0..batch.num_rows()).map(|i| Some(updated.is_null(i) || updated.value(i) < cutoff)).collect())
    };
    // Find the partitions holding stale rows (and count them); the write removes them again from
    // whatever those partitions hold when it commits.
    let (mut removed, mut rows_kept, mut partitions) = (0u64, 0u64, Vec::new());
    for entry in state.partitions.values() {
        let mut stale_here = 0;
        for batch in progress.read_partition(entry, &BTreeSet::new()).await? {
            let n = stale(&batch)?.true_count() as u64;
            stale_here += n;
            rows_kept += batch.num_rows() as u64 - n;
        }
        if stale_here > 0 {
            removed += stale_here;
            partitions.push(PartitionKey::parse(&entry.partition)?);
        }
    }
    if partitions.is_empty() {
        return Ok(CleanReport { rows_removed: 0, rows_kept, partitions_rewritten: 0, snapshot_id: None });
    }
    let partitions_rewritten = partitions.len();
    let done = progress
        .write(Vec::new())
        .removing_where(Arc::new(stale))
        .covering(partitions)
        .operation("clean")
        .parameter("older_than_micros", cutoff)
        .execute()
        .await?;
    Ok(CleanReport { rows_removed: removed, rows_kept, partitions_rewritten, snapshot_id: Some(done.snapshot_id) })
}
