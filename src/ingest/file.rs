//! File import: a CSV or Parquet file into `raw_file_bars` / `raw_file_daily_bars`, bad rows into
//! `quarantine_rows`.

use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::Utc;
use serde::Serialize;

use super::to_batch;
use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::sources::file::{FileImport, RejectedRow};
use crate::bars::{Bar, BarSize};
use crate::table::operations::write::{split_by_partition, WriteMode};
use crate::table::Lake;

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
    contract.batch_from(|name| {
        Some(match name {
            "ingested_at" => Arc::new(TimestampMicrosecondArray::from(vec![ingested_at; n]).with_timezone("UTC")),
            "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
            "source" => Arc::new(StringArray::from(vec!["file"; n])),
            "dataset" => Arc::new(StringArray::from(vec![dataset; n])),
            "file" => Arc::new(StringArray::from(vec![file; n])),
            "line" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.line as i64))),
            "reason" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.reason.as_str()))),
            "raw" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.raw.as_str()))),
            _ => return None,
        })
    })
}
