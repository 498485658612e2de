//! Ingestion: bars from a [`BarSource`] into the source's raw dataset.
//!
//! Work is cut into chunks of sessions. Each chunk's bars for every requested symbol are gathered,
//! turned into Arrow rows (with `source`, `ingested_at` and `job_id`), and committed in one snapshot:
//! each date partition is rewritten once per chunk, never once per symbol. Re-ingesting replaces
//! exactly the requested symbols' rows in those partitions; other symbols' rows stay.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use indicatif::ProgressBar;
use serde::Serialize;

use crate::calendar::NyseCalendar;
use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::sources::file::{FileImport, RejectedRow};
use crate::sources::{Bar, BarSize, BarSource, SymbolSession};
use crate::table::layout::{validate_symbol, PartitionKey};
use crate::table::operations::write::{split_by_partition, WriteMode};
use crate::table::Lake;

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub symbols: Vec<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub bar_size: BarSize,
    /// Sessions per commit.
    pub chunk_sessions: usize,
    /// Recorded in every row and commit; a fresh id when `None`.
    pub job_id: Option<String>,
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub dataset: String,
    pub source: String,
    pub job_id: String,
    pub symbols: usize,
    pub sessions: usize,
    pub rows: u64,
    pub chunks: usize,
    pub snapshots: Vec<u64>,
    /// In-memory (Arrow) size of the ingested rows.
    pub bytes_ingested: u64,
    /// Everything written to the store: data files, log entries, partition tables.
    pub bytes_written: u64,
    pub bytes_written_per_byte_ingested: f64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

impl IngestRequest {
    fn check(&self) -> Result<()> {
        if self.symbols.is_empty() {
            return Err(Error::invalid("no symbols to ingest"));
        }
        for s in &self.symbols {
            validate_symbol(s)?;
        }
        if self.end < self.start {
            return Err(Error::invalid(format!("end {} is before start {}", self.end, self.start)));
        }
        if self.chunk_sessions == 0 {
            return Err(Error::invalid("chunk size must be at least one session"));
        }
        Ok(())
    }
}

/// Ingests `request` from `source` into its raw dataset.
pub async fn ingest<S: BarSource>(lake: &Lake, source: &S, request: &IngestRequest, progress: &ProgressBar) -> Result<IngestReport> {
    request.check()?;
    let started = Instant::now();
    let dataset = lake.dataset(source.dataset())?;
    let contract = Arc::new(dataset.contract().clone());
    let sessions = NyseCalendar.sessions(request.start, request.end);
    let job_id = request.job_id.clone().unwrap_or_else(|| format!("ingest-{}", uuid::Uuid::now_v7().simple()));
    progress.set_length((sessions.len() * request.symbols.len()) as u64);
    let mut report = IngestReport {
        dataset: dataset.name().into(),
        source: source.name().into(),
        job_id: job_id.clone(),
        symbols: request.symbols.len(),
        sessions: sessions.len(),
        rows: 0,
        chunks: 0,
        snapshots: Vec::new(),
        bytes_ingested: 0,
        bytes_written: 0,
        bytes_written_per_byte_ingested: 0.0,
        seconds: 0.0,
        rows_per_second: 0.0,
    };
    for chunk in sessions.chunks(request.chunk_sessions) {
        let requests = chunk.iter().flat_map(|s| request.symbols.iter().map(move |sym| (sym, s)));
        let fetched: Vec<SymbolSession> = futures::stream::iter(requests.map(|(sym, s)| async move {
            let r = source.fetch(sym, s, request.bar_size).await;
            progress.inc(1);
            r
        }))
        .buffered(32)
        .try_collect()
        .await?;
        let ingested_at = Utc::now().timestamp_micros();
        let rows: Vec<(&str, &Bar)> = fetched.iter().flat_map(|f| f.bars.iter().map(move |b| (f.symbol.as_str(), b))).collect();
        let batch = to_batch(&contract, source.name(), &job_id, ingested_at, &rows)?;
        report.rows += batch.num_rows() as u64;
        report.bytes_ingested += batch.get_array_memory_size() as u64;
        let partitions: Vec<PartitionKey> = chunk.iter().map(|s| PartitionKey::for_date(contract.partitioning, s.date)).collect();
        let (first, last) = (chunk[0].date, chunk[chunk.len() - 1].date);
        let done = dataset
            .write(vec![batch])
            .mode(WriteMode::ReplaceSymbols)
            .replacing_symbols(request.symbols.iter().cloned())
            .covering(partitions)
            .operation("ingest")
            .parameter("source", source.name())
            .parameter("job_id", &job_id)
            .parameter("start", first)
            .parameter("end", last)
            .parameter("symbols", request.symbols.len())
            .parameter("bar_size", request.bar_size)
            .execute()
            .await?;
        tracing::info!(dataset = dataset.name(), snapshot = done.snapshot_id, %first, %last, rows = done.rows_written, "committed chunk");
        report.chunks += 1;
        report.snapshots.push(done.snapshot_id);
        report.bytes_written += done.bytes_written;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_second = report.rows as f64 / report.seconds.max(1e-9);
    report.bytes_written_per_byte_ingested = report.bytes_written as f64 / report.bytes_ingested.max(1) as f64;
    Ok(report)
}

/// What a file import did.
#[derive(Debug, Clone, Serialize)]
pub struct FileIngestReport {
    pub dataset: String,
    pub file: String,
    pub job_id: String,
    pub rows_read: u64,
    pub rows: u64,
    pub symbols: usize,
    pub partitions: usize,
    pub snapshots: Vec<u64>,
    /// Rows that could not be imported; all of them are in the `quarantine_rows` dataset.
    pub rejected: u64,
    /// The first rejected rows, with their lines and reasons.
    pub rejected_sample: Vec<RejectedRow>,
    pub bytes_written: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// How many rejected rows a report shows (all of them are quarantined).
const REJECTED_SAMPLE: usize = 20;

/// Imports a CSV or Parquet file into `raw_file_bars` (1m) or `raw_file_daily_bars` (1d), committing
/// `chunk_partitions` partitions per snapshot. Re-importing a file replaces the same rows. Rejected rows
/// go to `quarantine_rows` first, so no good row lands without its file's bad rows on record.
pub async fn ingest_file(lake: &Lake, import: &FileImport, chunk_partitions: usize, job_id: Option<String>) -> Result<FileIngestReport> {
    if chunk_partitions == 0 {
        return Err(Error::invalid("chunk size must be at least one partition"));
    }
    let started = Instant::now();
    let dataset = lake.dataset(match import.bar_size {
        BarSize::Minute => "raw_file_bars",
        BarSize::Day => "raw_file_daily_bars",
    })?;
    let job_id = job_id.unwrap_or_else(|| format!("file-{}", uuid::Uuid::now_v7().simple()));
    let file = import.path.display().to_string();
    let reader = import.clone();
    let parsed = tokio::task::spawn_blocking(move || reader.read()).await.map_err(|e| Error::Io(std::io::Error::other(e)))??;
    let ingested_at = Utc::now().timestamp_micros();
    let mut report = FileIngestReport {
        dataset: dataset.name().into(),
        file: file.clone(),
        job_id: job_id.clone(),
        rows_read: (parsed.bars.len() + parsed.rejected.len()) as u64,
        rows: parsed.bars.len() as u64,
        symbols: 0,
        partitions: 0,
        snapshots: Vec::new(),
        rejected: parsed.rejected.len() as u64,
        rejected_sample: parsed.rejected.iter().take(REJECTED_SAMPLE).cloned().collect(),
        bytes_written: 0,
        seconds: 0.0,
        rows_per_second: 0.0,
    };
    if !parsed.rejected.is_empty() {
        let quarantine = lake.dataset("quarantine_rows")?;
        let batch = quarantine_batch(quarantine.contract(), ingested_at, &job_id, dataset.name(), &file, &parsed.rejected)?;
        let done = quarantine.write(vec![batch]).mode(WriteMode::Append).operation("quarantine").parameter("file", &file).parameter("job_id", &job_id).execute().await?;
        report.bytes_written += done.bytes_written;
        tracing::info!(file = %file, rejected = parsed.rejected.len(), "rows quarantined in quarantine_rows");
    }
    let contract = dataset.contract();
    let rows: Vec<(&str, &Bar)> = parsed.bars.iter().map(|(s, b)| (s.as_str(), b)).collect();
    let batch = to_batch(contract, "file", &job_id, ingested_at, &rows)?;
    // The write splits rows into partitions anyway; splitting here first bounds each commit's size.
    let by_partition = split_by_partition(contract, &[batch])?;
    let symbols: std::collections::BTreeSet<&str> = parsed.bars.iter().map(|(s, _)| s.as_str()).collect();
    report.symbols = symbols.len();
    report.partitions = by_partition.len();
    let parts: Vec<Vec<RecordBatch>> = by_partition.into_values().collect();
    for chunk in parts.chunks(chunk_partitions) {
        let done = dataset
            .write(chunk.concat())
            .mode(WriteMode::ReplaceSymbols)
            .replacing_symbols(symbols.iter().map(|s| s.to_string()))
            .operation("ingest")
            .parameter("source", "file")
            .parameter("file", &file)
            .parameter("job_id", &job_id)
            .parameter("bar_size", import.bar_size)
            .execute()
            .await?;
        report.snapshots.push(done.snapshot_id);
        report.bytes_written += done.bytes_written;
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_second = report.rows as f64 / report.seconds.max(1e-9);
    Ok(report)
}

fn quarantine_batch(contract: &DatasetContract, ingested_at: i64, job_id: &str, dataset: &str, file: &str, rows: &[RejectedRow]) -> Result<RecordBatch> {
    let n = rows.len();
    // By name, like `to_batch`: the contract's column order is the contract's business.
    let columns: Vec<ArrayRef> = contract
        .columns
        .iter()
        .map(|c| -> Result<ArrayRef> {
            Ok(match c.name.as_str() {
                "ingested_at" => Arc::new(TimestampMicrosecondArray::from(vec![ingested_at; n]).with_timezone("UTC")),
                "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
                "source" => Arc::new(StringArray::from(vec!["file"; n])),
                "dataset" => Arc::new(StringArray::from(vec![dataset; n])),
                "file" => Arc::new(StringArray::from(vec![file; n])),
                "line" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.line as i64))),
                "reason" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.reason.as_str()))),
                "raw" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.raw.as_str()))),
                other => {
                    return Err(Error::SchemaMismatch {
                        dataset: contract.name.clone(),
                        detail: format!("the quarantine has no value for column '{other}'"),
                    })
                }
            })
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(contract.arrow_schema(), columns)?)
}

/// Arrow rows in the contract's schema from `(symbol, bar)` pairs.
fn to_batch(contract: &DatasetContract, source: &str, job_id: &str, ingested_at: i64, rows: &[(&str, &Bar)]) -> Result<RecordBatch> {
    let n = rows.len();
    let f64s = |get: fn(&Bar) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(rows.iter().map(|(_, b)| get(b)))) };
    let columns: Vec<ArrayRef> = contract
        .columns
        .iter()
        .map(|c| -> Result<ArrayRef> {
            Ok(match c.name.as_str() {
                "symbol" => Arc::new(StringArray::from_iter_values(rows.iter().map(|(s, _)| *s))),
                "ts" => Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|(_, b)| b.ts.timestamp_micros())).with_timezone("UTC")),
                "open" => f64s(|b| b.open),
                "high" => f64s(|b| b.high),
                "low" => f64s(|b| b.low),
                "close" => f64s(|b| b.close),
                "volume" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|(_, b)| b.volume))),
                "vwap" => Arc::new(Float64Array::from_iter(rows.iter().map(|(_, b)| b.vwap))),
                "trade_count" => Arc::new(Int64Array::from_iter(rows.iter().map(|(_, b)| b.trade_count))),
                "source" => Arc::new(StringArray::from(vec![source; n])),
                "ingested_at" => Arc::new(TimestampMicrosecondArray::from(vec![ingested_at; n]).with_timezone("UTC")),
                "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
                _ if c.nullable => arrow::array::new_null_array(&crate::contract::parse_type(&c.data_type).unwrap_or(arrow::datatypes::DataType::Null), n),
                other => {
                    return Err(Error::SchemaMismatch {
                        dataset: contract.name.clone(),
                        detail: format!("the ingest pipeline has no value for required column '{other}'"),
                    })
                }
            })
        })
        .collect::<Result<_>>()?;
    Ok(RecordBatch::try_new(contract.arrow_schema(), columns)?)
}
