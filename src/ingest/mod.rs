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
use crate::sources::{BarSize, BarSource, SymbolSession};
use crate::table::layout::{validate_symbol, PartitionKey};
use crate::table::operations::write::WriteMode;
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
        let batch = to_batch(&contract, source.name(), &job_id, ingested_at, &fetched)?;
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

/// Arrow rows in the contract's schema from a source's answers.
fn to_batch(contract: &DatasetContract, source: &str, job_id: &str, ingested_at: i64, fetched: &[SymbolSession]) -> Result<RecordBatch> {
    let n: usize = fetched.iter().map(|f| f.bars.len()).sum();
    let bars = || fetched.iter().flat_map(|f| f.bars.iter().map(move |b| (f.symbol.as_str(), b)));
    let f64s = |get: fn(&crate::sources::Bar) -> f64| -> ArrayRef { Arc::new(Float64Array::from_iter_values(bars().map(|(_, b)| get(b)))) };
    let columns: Vec<ArrayRef> = contract
        .columns
        .iter()
        .map(|c| -> Result<ArrayRef> {
            Ok(match c.name.as_str() {
                "symbol" => Arc::new(StringArray::from_iter_values(bars().map(|(s, _)| s))),
                "ts" => Arc::new(TimestampMicrosecondArray::from_iter_values(bars().map(|(_, b)| b.ts.timestamp_micros())).with_timezone("UTC")),
                "open" => f64s(|b| b.open),
                "high" => f64s(|b| b.high),
                "low" => f64s(|b| b.low),
                "close" => f64s(|b| b.close),
                "volume" => Arc::new(Int64Array::from_iter_values(bars().map(|(_, b)| b.volume))),
                "vwap" => Arc::new(Float64Array::from_iter(bars().map(|(_, b)| b.vwap))),
                "trade_count" => Arc::new(Int64Array::from_iter(bars().map(|(_, b)| b.trade_count))),
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
