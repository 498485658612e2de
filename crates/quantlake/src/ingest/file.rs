//! File import: CSV and Parquet files (one, a directory of them, or a glob pattern) into
//! `raw_file_bars` / `raw_file_daily_bars` in one call, bad rows into `quarantine_rows`.
//!
//! The files are planned before any is read in full: a Parquet footer's statistics tell which days
//! a file holds, so files are grouped into chunks that share no partition with another chunk. Each
//! chunk's files are read in parallel and its partitions are written in one commit, so every
//! partition is rewritten once per import however many files feed it, and memory is bounded by a
//! chunk, not by the import. Files the footer cannot place (CSV, naive timestamps) are read first.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::Utc;
use rayon::prelude::*;
use serde::Serialize;

use super::raw_batch;
use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::sources::file::{FileImport, ParsedFile, RejectedRow};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::write::{WriteMode, split_by_partition};
use crate::table::{Dataset, Lake};

/// One file's rows: its name, its size, its batches by partition, its symbols and its rejected rows.
type FileRows = (String, u64, BTreeMap<PartitionKey, Vec<RecordBatch>>, HashSet<Symbol>, Vec<RejectedRow>);

/// What a file import did.
#[derive(Debug, Clone, Serialize)]
pub struct FileIngestReport {
    pub dataset: String,
    /// The path asked for: a file, a directory or a pattern.
    pub file: String,
    /// Files imported.
    pub files: usize,
    pub job_id: String,
    pub rows_read: u64,
    pub rows: u64,
    pub symbols: usize,
    pub partitions: usize,
    pub snapshots: Vec<u64>,
    /// Rows that could not be imported; all of them are in the `quarantine_rows` dataset.
    pub rejected: u64,
    /// The first rejected rows, with their files, lines and reasons.
    pub rejected_sample: Vec<RejectedSample>,
    /// Size of the files read, and every byte the import put in the lake (data files, logs).
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

impl FileIngestReport {
    /// `Warning` (a partial success) when rows were quarantined, `Ok` when every row was imported.
    pub fn outcome(&self) -> crate::Outcome {
        crate::Outcome::warning_if(self.rejected > 0)
    }
}

/// A rejected row and the file it is in.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedSample {
    pub file: String,
    #[serde(flatten)]
    pub row: RejectedRow,
}

/// How many rejected rows a report shows (all of them are quarantined).
const REJECTED_SAMPLE: usize = 20;

/// Imports the files `import.path` names (see [`FileImport::files`]) into `raw_file_bars` (1m) or
/// `raw_file_daily_bars` (1d), committing about `chunk_partitions` partitions per snapshot. In each
/// partition, the rows of the symbols a file holds are replaced by the file's: re-importing the same
/// files gives the same rows. Rejected rows of a chunk go to `quarantine_rows` before its bars, so no
/// good row lands without its file's bad rows on record.
pub async fn ingest_files(
    lake: &Lake,
    import: &FileImport,
    chunk_partitions: usize,
    job_id: Option<String>,
) -> Result<FileIngestReport> {
    if chunk_partitions == 0 {
        return Err(Error::invalid("chunk size must be at least one partition"));
    }
    let started = Instant::now();
    let dataset = lake.dataset(&import.bar_size.raw_dataset("file"))?;
    let job_id = job_id.unwrap_or_else(|| format!("file-{}", uuid::Uuid::now_v7().simple()));
    let contract = Arc::new(dataset.contract().clone());
    let (template, plan_contract) = (import.clone(), contract.clone());
    let chunks = blocking(move || plan(&template, &plan_contract, chunk_partitions)).await?;
    let mut report = FileIngestReport {
        dataset: dataset.name().into(),
        file: import.path.display().to_string(),
        files: chunks.iter().map(Vec::len).sum(),
        job_id: job_id.clone(),
        rows_read: 0,
        rows: 0,
        symbols: 0,
        partitions: 0,
        snapshots: Vec::new(),
        rejected: 0,
        rejected_sample: Vec::new(),
        bytes_read: chunks.iter().flatten().map(|f| f.bytes).sum(),
        bytes_written: 0,
        seconds: 0.0,
        rows_per_second: 0.0,
    };
    let ingested_at = Utc::now().timestamp_micros();
    let mut symbols: HashSet<Symbol> = HashSet::new();
    // The next chunk is read while this one is encoded and written: both keep the cores busy, and
    // at most two chunks are in memory.
    let start_reading = |chunk: Vec<PlannedFile>| {
        let (c, id) = (contract.clone(), job_id.clone());
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            read_chunk(chunk, &c, &id, ingested_at).map(|rows| (rows, started.elapsed().as_secs_f64()))
        })
    };
    let mut chunks = chunks.into_iter();
    let mut next = chunks.next().map(start_reading);
    while let Some(reading) = next.take() {
        let (read, read_seconds) = reading.await??;
        next = chunks.next().map(start_reading);
        report.rows_read += read.rows_read;
        report.rows += read.rows;
        report.rejected += read.rejected.iter().map(|(_, r)| r.len() as u64).sum::<u64>();
        let room = REJECTED_SAMPLE - report.rejected_sample.len();
        let sample = read.rejected.iter().flat_map(|(file, rows)| {
            rows.iter().map(move |row| RejectedSample { file: file.clone(), row: row.clone() })
        });
        report.rejected_sample.extend(sample.take(room));
        report.bytes_written += quarantine(lake, &dataset, &job_id, ingested_at, &read.rejected).await?;
        if read.partitions.is_empty() {
            continue;
        }
        report.partitions += read.partitions.len();
        let mut batches = Vec::new();
        let mut replaced: HashMap<PartitionKey, HashSet<Symbol>> = HashMap::new();
        for (key, p) in read.partitions {
            symbols.extend(p.symbols.iter().cloned());
            batches.extend(p.batches);
            replaced.insert(key, p.symbols);
        }
        let files: Vec<String> = read.files.iter().map(|f| f.display().to_string()).collect();
        let write_started = Instant::now();
        let done = dataset
            .write(batches)
            .mode(WriteMode::ReplaceSymbols)
            .replacing_symbols_per_partition(replaced)
            .operation("ingest")
            .parameter("source", "file")
            .parameter("files", &files)
            .parameter("job_id", &job_id)
            .parameter("bar_size", import.bar_size)
            .execute()
            .await?;
        let write_seconds = write_started.elapsed().as_secs_f64();
        tracing::info!(
            dataset = dataset.name(),
            snapshot = done.snapshot_id,
            files = files.len(),
            rows = done.rows_written,
            read_seconds,
            write_seconds,
            "committed chunk"
        );
        report.snapshots.push(done.snapshot_id);
        report.bytes_written += done.bytes_written;
    }
    report.symbols = symbols.len();
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_second = report.rows as f64 / report.seconds.max(1e-9);
    Ok(report)
}

/// One file of the plan: where it is, its size, the partitions it may touch (none when it has no
/// readable row), and its rows when they had to be read to know that.
struct PlannedFile {
    import: FileImport,
    bytes: u64,
    partitions: Option<(PartitionKey, PartitionKey)>,
    parsed: Option<ParsedFile>,
}

/// The import's files in chunks of about `chunk_partitions` partitions that share no partition with
/// another chunk, in partition order (files without a readable row first, on their own).
fn plan(import: &FileImport, contract: &DatasetContract, chunk_partitions: usize) -> Result<Vec<Vec<PlannedFile>>> {
    let files = import.files()?;
    let mut planned: Vec<PlannedFile> = files
        .into_par_iter()
        .map(|path| {
            let import = import.for_file(path);
            let bytes = std::fs::metadata(&import.path)
                .map_err(|source| Error::ReadFile { path: import.path.clone(), source })?
                .len();
            let (range, parsed) = match import.time_range()? {
                Some(range) => (Some(range), None),
                None => {
                    let parsed = import.read()?;
                    let ts = &parsed.bars.ts;
                    (ts.iter().min().copied().zip(ts.iter().max().copied()), Some(parsed))
                }
            };
            let partitions = range
                .map(|(first, last)| Ok::<_, Error>((partition_of(contract, first)?, partition_of(contract, last)?)))
                .transpose()?;
            Ok(PlannedFile { import, bytes, partitions, parsed })
        })
        .collect::<Result<_>>()?;
    planned.sort_by(|a, b| a.partitions.cmp(&b.partitions).then_with(|| a.import.path.cmp(&b.import.path)));
    // Files whose partition ranges overlap form one group; whole groups fill chunks up to
    // `chunk_partitions` (a group larger than that is one chunk).
    let mut chunks: Vec<Vec<PlannedFile>> = Vec::new();
    let mut empty: Vec<PlannedFile> = Vec::new();
    let (mut group_end, mut in_chunk): (Option<PartitionKey>, usize) = (None, 0);
    for file in planned {
        let Some((first, last)) = file.partitions else {
            empty.push(file);
            continue;
        };
        let joins_group = group_end.is_some_and(|end| first <= end);
        if !joins_group && (chunks.is_empty() || in_chunk >= chunk_partitions) {
            chunks.push(Vec::new());
            in_chunk = 0;
        }
        let new_first = match group_end {
            Some(end) if joins_group => next_partition(contract, end),
            _ => Some(first),
        };
        in_chunk += new_first.map_or(0, |f| partitions_between(contract, f, last));
        group_end = Some(match group_end {
            Some(end) if joins_group => end.max(last),
            _ => last,
        });
        if let Some(chunk) = chunks.last_mut() {
            chunk.push(file);
        }
    }
    if !empty.is_empty() {
        chunks.insert(0, empty);
    }
    Ok(chunks)
}

/// The partition of instant `micros` in `contract`'s layout.
fn partition_of(contract: &DatasetContract, micros: i64) -> Result<PartitionKey> {
    let t = chrono::DateTime::from_timestamp_micros(micros)
        .ok_or_else(|| Error::invalid(format!("timestamp {micros}us is out of range")))?;
    Ok(PartitionKey::for_date(contract.partitioning, t.with_timezone(&contract.partition_timezone).date_naive()))
}

/// The partition after `key`.
fn next_partition(contract: &DatasetContract, key: PartitionKey) -> Option<PartitionKey> {
    key.date_range().1.succ_opt().map(|d| PartitionKey::for_date(contract.partitioning, d))
}

/// How many partitions `first..=last` spans (none when `last` is before `first`).
fn partitions_between(contract: &DatasetContract, first: PartitionKey, last: PartitionKey) -> usize {
    let mut count = 0;
    let mut key = Some(first);
    while let Some(k) = key.filter(|k| *k <= last) {
        count += 1;
        key = next_partition(contract, k);
    }
    count
}

/// One partition's new rows from a chunk, and the symbols whose old rows they replace: those of every
/// file with rows in it.
struct PartitionRows {
    batches: Vec<RecordBatch>,
    symbols: HashSet<Symbol>,
}

/// A chunk's files read and split into partitions.
struct ChunkRows {
    files: Vec<PathBuf>,
    rows_read: u64,
    rows: u64,
    partitions: BTreeMap<PartitionKey, PartitionRows>,
    /// Rejected rows per file.
    rejected: Vec<(String, Vec<RejectedRow>)>,
}

fn read_chunk(
    chunk: Vec<PlannedFile>,
    contract: &DatasetContract,
    job_id: &str,
    ingested_at: i64,
) -> Result<ChunkRows> {
    let files: Vec<PathBuf> = chunk.iter().map(|f| f.import.path.clone()).collect();
    let read: Vec<FileRows> = chunk
        .into_par_iter()
        .map(|file| {
            let parsed = match file.parsed {
                Some(p) => p,
                None => file.import.read()?,
            };
            let rows = parsed.bars.len() as u64;
            let batch = raw_batch(contract, "file", job_id, ingested_at, parsed.bars)?;
            Ok((
                file.import.path.display().to_string(),
                rows,
                split_by_partition(contract, &[batch])?,
                parsed.symbols,
                parsed.rejected,
            ))
        })
        .collect::<Result<_>>()?;
    let mut out = ChunkRows { files, rows_read: 0, rows: 0, partitions: BTreeMap::new(), rejected: Vec::new() };
    for (path, rows, by_partition, symbols, rejected) in read {
        out.rows_read += rows + rejected.len() as u64;
        out.rows += rows;
        for (key, batches) in by_partition {
            let p = out
                .partitions
                .entry(key)
                .or_insert_with(|| PartitionRows { batches: Vec::new(), symbols: HashSet::new() });
            p.batches.extend(batches);
            p.symbols.extend(symbols.iter().cloned());
        }
        if !rejected.is_empty() {
            out.rejected.push((path, rejected));
        }
    }
    Ok(out)
}

/// Appends rejected rows (per file) to `quarantine_rows`; returns the bytes written.
async fn quarantine(
    lake: &Lake,
    dataset: &Dataset,
    job_id: &str,
    ingested_at: i64,
    rejected: &[(String, Vec<RejectedRow>)],
) -> Result<u64> {
    if rejected.is_empty() {
        return Ok(0);
    }
    let quarantine = lake.dataset("quarantine_rows")?;
    let batches: Vec<RecordBatch> = rejected
        .iter()
        .map(|(file, rows)| quarantine_batch(quarantine.contract(), ingested_at, job_id, dataset.name(), file, rows))
        .collect::<Result<_>>()?;
    let files: Vec<&str> = rejected.iter().map(|(f, _)| f.as_str()).collect();
    let done = quarantine
        .write(batches)
        .mode(WriteMode::Append)
        .operation("quarantine")
        .parameter("files", &files)
        .parameter("job_id", job_id)
        .execute()
        .await?;
    let count: usize = rejected.iter().map(|(_, r)| r.len()).sum();
    tracing::info!(files = files.len(), rejected = count, "rows quarantined in quarantine_rows");
    Ok(done.bytes_written)
}

fn quarantine_batch(
    contract: &DatasetContract,
    ingested_at: i64,
    job_id: &str,
    dataset: &str,
    file: &str,
    rows: &[RejectedRow],
) -> Result<RecordBatch> {
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

/// Runs CPU-bound work (parsing, encoding on rayon) off the async runtime.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}
