//! Ingestion: bars from a [`BarSource`] into the source's raw dataset, with progress.
//!
//! Work is cut into chunks of sessions. Each chunk's bars for every requested symbol are gathered,
//! turned into Arrow rows (with `source`, `ingested_at` and `job_id`), and committed in one snapshot:
//! each date partition is rewritten once per chunk, never once per symbol. Re-ingesting replaces
//! exactly the requested symbols' rows in those partitions; other symbols' rows stay. After each
//! chunk's bars, its [`progress`] rows are committed; with `resume`, what they record as finished is
//! skipped, so an interrupted ingest picks up where it stopped.
//!
//! The vendor is asked for the ticker each security had on each session (the security master's
//! history, [`TickerPlan`]): a backfill of META before its rename asks for FB, one of a delisted
//! security stops at its delisting. Raw rows keep the ticker the vendor delivered them under.

mod file;
pub mod progress;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::{ArrayRef, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{NaiveDate, Utc};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub use file::{FileIngestReport, RejectedSample, ingest_files};

use crate::bars::{BarColumns, BarSize};
use crate::calendar::{NyseCalendar, Session};
use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::progress::Progress;
use crate::reference::securities::{SecurityMaster, TickerPlan};
use crate::sources::{BarSource, SymbolFailure, SymbolSession};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::write::WriteMode;
use crate::table::{AsOf, Lake};
use progress::{Record, Status};

/// `[ingest]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct IngestSettings {
    /// Sessions per commit: each date partition is rewritten once per chunk.
    pub chunk_sessions: usize,
    /// Sessions an `ingest` without `--start` reaches back from `--end` (default: the last completed
    /// session). `DAYS_BACK` overrides it.
    pub days_back: usize,
}

impl Default for IngestSettings {
    fn default() -> Self {
        Self { chunk_sessions: 10, days_back: 5 }
    }
}

impl IngestSettings {
    /// Sessions (for a file, partitions) per commit: `asked`, else `chunk_sessions`.
    pub fn chunk(&self, asked: Option<usize>) -> usize {
        asked.unwrap_or(self.chunk_sessions)
    }
}

/// An ingest as asked for (by the command line or a job): what is left `None` takes the default
/// [`IngestOptions::resolve`] documents.
#[derive(Debug, Clone)]
pub struct IngestOptions {
    pub symbols: Vec<Symbol>,
    pub bar_size: BarSize,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    pub chunk_sessions: Option<usize>,
    pub job_id: Option<String>,
    pub resume: bool,
}

impl IngestOptions {
    /// The request, with the defaults: `end` is the last completed session; `start` is `days_back`
    /// sessions back, counting the last session on or before `end` as the first; `chunk_sessions`
    /// is [`IngestSettings::chunk`]. The job id stays `None` (a fresh one per run).
    pub fn resolve(self, settings: &IngestSettings) -> IngestRequest {
        let end = self.end.unwrap_or_else(|| NyseCalendar.last_completed_session(Utc::now()));
        let back = settings.days_back.max(1) as i64;
        // The last session on or before `end`, and `back - 1` sessions before it.
        let last = NyseCalendar.previous_session(end.succ_opt().unwrap_or(end));
        let start = self.start.unwrap_or_else(|| NyseCalendar.add_sessions(last, 1 - back));
        IngestRequest {
            symbols: self.symbols,
            start,
            end,
            bar_size: self.bar_size,
            chunk_sessions: settings.chunk(self.chunk_sessions),
            job_id: self.job_id,
            resume: self.resume,
        }
    }
}

/// What to ingest.
#[derive(Debug, Clone)]
pub struct IngestRequest {
    pub symbols: Vec<Symbol>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub bar_size: BarSize,
    /// Sessions per commit.
    pub chunk_sessions: usize,
    /// Recorded in every row and commit; a fresh id when `None`.
    pub job_id: Option<String>,
    /// Skip the symbol-sessions `ingest_progress` records as done or empty.
    pub resume: bool,
}

/// What an ingest did.
#[derive(Debug, Clone, Serialize)]
pub struct IngestReport {
    pub dataset: String,
    pub source: String,
    pub job_id: String,
    pub symbols: usize,
    pub sessions: usize,
    /// Symbol-sessions skipped because progress records them as finished (`resume`).
    pub skipped: u64,
    /// Symbol-sessions for which the source had no bars (recorded as `empty`).
    pub empty: u64,
    pub rows: u64,
    pub chunks: usize,
    pub snapshots: Vec<u64>,
    /// Symbols the source refused; their earlier rows are untouched and they are retried on resume.
    pub failed: Vec<SymbolFailure>,
    /// Bars the source returned outside the requested sessions (logged, not stored).
    pub outside_sessions: u64,
    /// In-memory (Arrow) size of the ingested rows.
    pub bytes_ingested: u64,
    /// Everything written to the store for the bars: data files, log entries, partition tables.
    pub bytes_written: u64,
    pub bytes_written_per_byte_ingested: f64,
    pub seconds: f64,
    pub rows_per_second: f64,
    /// Requested symbols asked for under other tickers, or on fewer sessions (a rename, a listing
    /// or a delisting inside the range): the tickers and their sessions, e.g.
    /// `FB 2022-01-03..2022-06-08, META 2022-06-09..2022-06-30`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub asked_as: BTreeMap<Symbol, String>,
}

impl IngestReport {
    /// `Warning` (partial success) when a symbol failed, `Ok` otherwise.
    pub fn outcome(&self) -> Outcome {
        Outcome::warning_if(!self.failed.is_empty())
    }
}

impl IngestRequest {
    fn check(&self) -> Result<()> {
        if self.symbols.is_empty() {
            return Err(Error::invalid("no symbols to ingest"));
        }
        let mut seen = HashSet::new();
        for s in &self.symbols {
            if !seen.insert(s) {
                return Err(Error::invalid(format!("symbol '{s}' is listed twice")));
            }
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

/// One fetch and commit: some symbols over a run of consecutive sessions.
struct Unit<'a> {
    symbols: Vec<Symbol>,
    sessions: &'a [Session],
}

/// The units of one chunk: every symbol over the whole chunk, each session asked under the ticker
/// `ticker_on` gives (none: not asked), less what `finished` holds. Tickers missing the same sessions
/// share units, so a resumed chunk asks the source only for what is missing.
fn units<'a>(
    chunk: &'a [Session],
    symbols: &[Symbol],
    finished: &HashSet<(Symbol, NaiveDate)>,
    ticker_on: impl Fn(&Symbol, NaiveDate) -> Option<Symbol>,
) -> Vec<Unit<'a>> {
    let mut wanted: BTreeMap<Symbol, BTreeSet<usize>> = BTreeMap::new();
    for symbol in symbols {
        for (i, session) in chunk.iter().enumerate() {
            if let Some(ticker) = ticker_on(symbol, session.date)
                && !finished.contains(&(ticker.clone(), session.date))
            {
                wanted.entry(ticker).or_default().insert(i);
            }
        }
    }
    let mut by_missing: BTreeMap<Vec<usize>, Vec<Symbol>> = BTreeMap::new();
    for (ticker, missing) in wanted {
        by_missing.entry(missing.into_iter().collect()).or_default().push(ticker);
    }
    let mut out = Vec::new();
    for (missing, symbols) in by_missing {
        // Consecutive runs of missing sessions: range requests never span a finished session.
        let mut run_start = 0;
        for i in 1..=missing.len() {
            if i == missing.len() || missing[i] != missing[i - 1] + 1 {
                out.push(Unit { symbols: symbols.clone(), sessions: &chunk[missing[run_start]..=missing[i - 1]] });
                run_start = i;
            }
        }
    }
    out
}

/// Ingests `request` from `source` into its raw dataset.
pub async fn ingest<S: BarSource>(
    lake: &Lake,
    source: &S,
    request: &IngestRequest,
    progress: &dyn Progress,
) -> Result<IngestReport> {
    request.check()?;
    let started = Instant::now();
    let dataset = lake.dataset(&source.dataset(request.bar_size))?;
    let contract = Arc::new(dataset.contract().clone());
    let sessions = NyseCalendar.sessions(request.start, request.end);
    let job_id = request.job_id.clone().unwrap_or_else(|| format!("ingest-{}", uuid::Uuid::now_v7().simple()));
    let master = SecurityMaster::load(lake, &AsOf::latest()).await?;
    let plan = TickerPlan::new(&master, &request.symbols, request.start, request.end)?;
    let dates: Vec<NaiveDate> = sessions.iter().map(|s| s.date).collect();
    let asked = plan.asked(&dates);
    let finished = if request.resume {
        let tickers: Vec<Symbol> = asked.keys().cloned().collect();
        progress::finished(lake, dataset.name(), &tickers, request.start, request.end).await?
    } else {
        HashSet::new()
    };
    progress.set_length(asked.values().map(|s| s.len() as u64).sum());
    progress.inc(finished.len() as u64);
    let mut report = IngestReport {
        dataset: dataset.name().into(),
        source: source.name().into(),
        job_id: job_id.clone(),
        symbols: request.symbols.len(),
        sessions: sessions.len(),
        skipped: finished.len() as u64,
        empty: 0,
        rows: 0,
        chunks: 0,
        snapshots: Vec::new(),
        failed: Vec::new(),
        outside_sessions: 0,
        bytes_ingested: 0,
        bytes_written: 0,
        bytes_written_per_byte_ingested: 0.0,
        seconds: 0.0,
        rows_per_second: 0.0,
        asked_as: plan.renamed(&dates),
    };
    for (symbol, tickers) in &report.asked_as {
        tracing::info!(%symbol, %tickers, "asking the vendor for the ticker of each session");
    }
    for chunk in sessions.chunks(request.chunk_sessions) {
        for unit in units(chunk, &request.symbols, &finished, |s, d| plan.ticker_on(s, d)) {
            ingest_unit(lake, source, request, &contract, &job_id, &unit, &mut report).await?;
            progress.inc((unit.symbols.len() * unit.sessions.len()) as u64);
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    report.rows_per_second = report.rows as f64 / report.seconds.max(1e-9);
    report.bytes_written_per_byte_ingested = report.bytes_written as f64 / report.bytes_ingested.max(1) as f64;
    Ok(report)
}

/// Fetches one unit, commits its bars, then its progress.
async fn ingest_unit<S: BarSource>(
    lake: &Lake,
    source: &S,
    request: &IngestRequest,
    contract: &Arc<DatasetContract>,
    job_id: &str,
    unit: &Unit<'_>,
    report: &mut IngestReport,
) -> Result<()> {
    let dataset = lake.dataset(&contract.name)?;
    let fetched = source.fetch(&unit.symbols, unit.sessions, request.bar_size).await?;
    let failed: BTreeSet<&str> = fetched.failed.iter().map(|f| f.symbol.as_str()).collect();
    for f in &fetched.failed {
        tracing::warn!(source = source.name(), symbol = %f.symbol, error = %f.error, "symbol failed; its earlier rows stay, resume retries it");
    }
    report.outside_sessions += fetched.outside_sessions;
    let ingested_at = Utc::now().timestamp_micros();
    let kept: Vec<&SymbolSession> = fetched.series.iter().filter(|s| !failed.contains(s.symbol.as_str())).collect();
    let replacing: Vec<Symbol> = unit.symbols.iter().filter(|s| !failed.contains(s.as_str())).cloned().collect();
    let (first, last) = (unit.sessions[0].date, unit.sessions[unit.sessions.len() - 1].date);
    let mut snapshot_id = None;
    if !replacing.is_empty() {
        let batches = to_batches(contract, source.name(), job_id, ingested_at, &kept)?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
        report.rows += rows;
        report.bytes_ingested += batches.iter().map(|b| b.get_array_memory_size() as u64).sum::<u64>();
        let partitions: BTreeSet<PartitionKey> =
            unit.sessions.iter().map(|s| PartitionKey::for_date(contract.partitioning, s.date)).collect();
        // Only these sessions' rows: a daily dataset's yearly partition keeps its other days.
        let (from, to) = local_days(contract, first, last)?;
        let done = dataset
            .write(batches)
            .mode(WriteMode::ReplaceSymbols)
            .replacing_symbols(replacing)
            .replacing_between(from, to)
            .covering(partitions)
            .operation("ingest")
            .parameter("source", source.name())
            .parameter("job_id", job_id)
            .parameter("start", first)
            .parameter("end", last)
            .parameter("symbols", unit.symbols.len())
            // The source's rows, which replace those symbols' rows; the partitions hold others too.
            .parameter("rows", rows)
            .parameter("bar_size", request.bar_size)
            .parameter("request", source.request_metadata())
            .execute()
            .await?;
        tracing::info!(dataset = dataset.name(), snapshot = done.snapshot_id, %first, %last, rows = done.rows_written, "committed chunk");
        report.chunks += 1;
        report.snapshots.push(done.snapshot_id);
        report.bytes_written += done.bytes_written;
        snapshot_id = Some(done.snapshot_id);
    }
    let mut records: Vec<Record> = fetched
        .series
        .iter()
        .filter(|s| !failed.contains(s.symbol.as_str()))
        .map(|s| Record {
            symbol: s.symbol.clone(),
            session: s.session,
            status: if s.bars.is_empty() { Status::Empty } else { Status::Done },
            rows: s.bars.len() as u64,
            error: None,
        })
        .collect();
    report.empty += records.iter().filter(|r| r.status == Status::Empty).count() as u64;
    for f in &fetched.failed {
        records.extend(unit.sessions.iter().map(|s| Record {
            symbol: f.symbol.clone(),
            session: *s,
            status: Status::Failed,
            rows: 0,
            error: Some(f.error.clone()),
        }));
    }
    progress::record(lake, dataset.name(), source.name(), job_id, snapshot_id, &records).await?;
    report.failed.extend(fetched.failed);
    Ok(())
}

/// Arrow rows in the contract's schema, one batch per partition, each in sort-key order when the source
/// keeps a session's bars in time order. The batches are built in parallel, and the write slices
/// nothing and sorts nothing.
fn to_batches(
    contract: &DatasetContract,
    source: &str,
    job_id: &str,
    ingested_at: i64,
    series: &[&SymbolSession],
) -> Result<Vec<RecordBatch>> {
    let mut by_partition: BTreeMap<PartitionKey, Vec<&SymbolSession>> = BTreeMap::new();
    for s in series {
        by_partition.entry(PartitionKey::for_date(contract.partitioning, s.session.date)).or_default().push(s);
    }
    by_partition
        .into_par_iter()
        .map(|(_, mut series)| {
            series.sort_by(|a, b| (a.symbol.as_str(), a.session.date).cmp(&(b.symbol.as_str(), b.session.date)));
            let mut columns = BarColumns::with_capacity(series.iter().map(|s| s.bars.len()).sum());
            for s in series {
                for bar in &s.bars {
                    columns.push(&s.symbol, bar);
                }
            }
            raw_batch(contract, source, job_id, ingested_at, columns)
        })
        .filter(|b| !matches!(b, Ok(b) if b.num_rows() == 0))
        .collect()
}

/// A raw dataset's rows (in its contract's schema) from bars as columns, stamped with the source, the
/// job and the ingest time.
pub(crate) fn raw_batch(
    contract: &DatasetContract,
    source: &str,
    job_id: &str,
    ingested_at: i64,
    mut bars: BarColumns,
) -> Result<RecordBatch> {
    let n = bars.len();
    let symbols = bars.symbol.finish();
    let volume_spec = contract.columns.iter().find(|c| c.name == "volume");
    let volumes = volume_spec.map(|c| volume(contract, c, &symbols, &bars.ts, &bars.volume)).transpose()?;
    let f64s = |v: &mut Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(std::mem::take(v))) };
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(contract.columns.len());
    for c in &contract.columns {
        columns.push(match c.name.as_str() {
            "symbol" => Arc::new(symbols.clone()),
            "ts" => Arc::new(TimestampMicrosecondArray::from(std::mem::take(&mut bars.ts)).with_timezone("UTC")),
            "open" => f64s(&mut bars.open),
            "high" => f64s(&mut bars.high),
            "low" => f64s(&mut bars.low),
            "close" => f64s(&mut bars.close),
            "volume" => volumes.clone().unwrap_or_else(|| f64s(&mut bars.volume)),
            "vwap" => Arc::new(Float64Array::from(std::mem::take(&mut bars.vwap))),
            "trade_count" => Arc::new(Int64Array::from(std::mem::take(&mut bars.trade_count))),
            "source" => Arc::new(StringArray::new_repeated(source, n)),
            "ingested_at" => Arc::new(TimestampMicrosecondArray::from(vec![ingested_at; n]).with_timezone("UTC")),
            "job_id" => Arc::new(StringArray::new_repeated(job_id, n)),
            _ if c.nullable => arrow::array::new_null_array(
                &crate::contract::parse_type(&c.data_type).unwrap_or(arrow::datatypes::DataType::Null),
                n,
            ),
            other => {
                return Err(Error::SchemaMismatch {
                    dataset: contract.name.clone(),
                    detail: format!("the ingest pipeline has no value for required column '{other}'"),
                });
            }
        });
    }
    Ok(RecordBatch::try_new(contract.arrow_schema(), columns)?)
}

/// `[first 00:00, (last + 1 day) 00:00)` in the contract's partition time zone, as UTC µs.
fn local_days(contract: &DatasetContract, first: NaiveDate, last: NaiveDate) -> Result<(i64, i64)> {
    let midnight = |d: NaiveDate| {
        d.and_time(chrono::NaiveTime::MIN)
            .and_local_timezone(contract.partition_timezone)
            .earliest()
            .map(|t| t.timestamp_micros())
            .ok_or_else(|| Error::invalid(format!("{d} has no midnight in {}", contract.partition_timezone)))
    };
    let after = last.succ_opt().ok_or_else(|| Error::invalid(format!("{last} is the last representable date")))?;
    Ok((midnight(first)?, midnight(after)?))
}

/// The volume column in the contract's type: float64 as is, int64 only from whole numbers.
fn volume(
    contract: &DatasetContract,
    column: &crate::contract::ColumnSpec,
    symbols: &StringArray,
    ts: &[i64],
    volume: &[f64],
) -> Result<ArrayRef> {
    if column.data_type == "float64" {
        return Ok(Arc::new(Float64Array::from(volume.to_vec())));
    }
    if let Some(i) = volume.iter().position(|v| v.fract() != 0.0 || !v.is_finite()) {
        return Err(Error::SchemaMismatch {
            dataset: contract.name.clone(),
            detail: format!(
                "{} at {}: volume {} is not a whole number, and the contract's volume is int64",
                symbols.value(i),
                chrono::DateTime::from_timestamp_micros(ts[i])
                    .map_or_else(|| format!("{}us", ts[i]), |t| t.to_rfc3339()),
                volume[i]
            ),
        });
    }
    Ok(Arc::new(Int64Array::from_iter_values(volume.iter().map(|v| *v as i64))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bars::Bar;

    #[test]
    fn units_ask_only_for_missing_sessions() {
        let chunk = NyseCalendar
            .sessions(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(), NaiveDate::from_ymd_opt(2024, 1, 8).unwrap());
        assert_eq!(chunk.len(), 5);
        let symbols = ["A", "B", "C"].map(Symbol::from_static);
        let mut finished = HashSet::new();
        let same = |s: &Symbol, _| Some(s.clone());
        assert_eq!(units(&chunk, &symbols, &finished, same).len(), 1);
        for s in &chunk {
            finished.insert((Symbol::from_static("A"), s.date));
        }
        finished.insert((Symbol::from_static("B"), chunk[2].date));
        let u = units(&chunk, &symbols, &finished, same);
        // B misses sessions 0,1,3,4 (two runs); C misses all (one run); A nothing.
        let shape: Vec<(Vec<Symbol>, usize, NaiveDate)> =
            u.iter().map(|u| (u.symbols.clone(), u.sessions.len(), u.sessions[0].date)).collect();
        assert_eq!(shape.len(), 3);
        let (b, c) = (Symbol::from_static("B"), Symbol::from_static("C"));
        assert!(shape.contains(&(vec![c], 5, chunk[0].date)));
        assert!(shape.contains(&(vec![b.clone()], 2, chunk[0].date)));
        assert!(shape.contains(&(vec![b], 2, chunk[3].date)));
        // A rename inside the chunk: the first three sessions under the old ticker, the rest under the new.
        let renamed =
            |_: &Symbol, d: NaiveDate| Some(Symbol::from_static(if d < chunk[3].date { "OLD" } else { "NEW" }));
        let u = units(&chunk, &[Symbol::from_static("NEW")], &HashSet::new(), renamed);
        let shape: Vec<(Vec<Symbol>, usize)> = u.iter().map(|u| (u.symbols.clone(), u.sessions.len())).collect();
        assert_eq!(shape, [(vec![Symbol::from_static("OLD")], 3), (vec![Symbol::from_static("NEW")], 2)]);
    }

    /// `n` one-minute bars from the session's open.
    fn series(symbol: &str, session: Session, n: i64) -> SymbolSession {
        let bars = (0..n)
            .map(|i| Bar {
                ts: session.open + chrono::Duration::minutes(i),
                open: 1.0,
                high: 1.0,
                low: 1.0,
                close: 1.0,
                volume: 100.0,
                vwap: None,
                trade_count: None,
            })
            .collect();
        SymbolSession { symbol: Symbol::new(symbol).unwrap(), session, bars }
    }

    #[test]
    fn batches_are_one_per_partition_in_sort_key_order() {
        use arrow::array::AsArray;
        use arrow::datatypes::TimestampMicrosecondType;
        let contract = crate::contract::Contracts::builtin().get("raw_synthetic_bars").unwrap();
        let sessions = NyseCalendar
            .sessions(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(), NaiveDate::from_ymd_opt(2024, 1, 3).unwrap());
        // In the order a source might return them: symbol-major, symbols not sorted, an empty series.
        let all = [
            series("MSFT", sessions[0], 3),
            series("MSFT", sessions[1], 2),
            series("AAPL", sessions[1], 4),
            series("AAPL", sessions[0], 0),
        ];
        let refs: Vec<&SymbolSession> = all.iter().collect();
        let batches = to_batches(&contract, "synthetic", "job", 0, &refs).unwrap();
        let rows: Vec<Vec<(String, i64)>> = batches
            .iter()
            .map(|b| {
                let (symbol, ts) =
                    (b.column(0).as_string::<i32>(), b.column(1).as_primitive::<TimestampMicrosecondType>());
                (0..b.num_rows()).map(|i| (symbol.value(i).to_string(), ts.value(i))).collect()
            })
            .collect();
        let at = |s: usize, i: i64| (sessions[s].open + chrono::Duration::minutes(i)).timestamp_micros();
        assert_eq!(rows.len(), 2, "one batch per date partition");
        assert_eq!(rows[0], (0..3).map(|i| ("MSFT".to_string(), at(0, i))).collect::<Vec<_>>());
        let second: Vec<(String, i64)> = (0..4)
            .map(|i| ("AAPL".to_string(), at(1, i)))
            .chain((0..2).map(|i| ("MSFT".to_string(), at(1, i))))
            .collect();
        assert_eq!(rows[1], second);
        // The write finds each batch in one partition and in order: nothing to slice or sort.
        let split = crate::table::operations::write::split_by_partition(&contract, &batches).unwrap();
        assert_eq!(
            split.values().map(|b| b.iter().map(|b| b.num_rows()).collect::<Vec<_>>()).collect::<Vec<_>>(),
            [vec![3], vec![6]]
        );
    }

    #[test]
    fn options_take_the_settings_defaults() {
        let day = |d: u32| NaiveDate::from_ymd_opt(2024, 1, d).unwrap();
        let settings = IngestSettings { chunk_sessions: 3, days_back: 5 };
        let options = IngestOptions {
            symbols: vec![Symbol::from_static("A")],
            bar_size: BarSize::Minute,
            start: None,
            end: Some(day(7)),
            chunk_sessions: None,
            job_id: None,
            resume: false,
        };
        // Sunday the 7th: the last session on or before it is Friday the 5th, and 5 sessions end there.
        let r = options.clone().resolve(&settings);
        assert_eq!((r.start, r.end, r.chunk_sessions), (NaiveDate::from_ymd_opt(2023, 12, 29).unwrap(), day(7), 3));
        let r = IngestOptions { start: Some(day(3)), chunk_sessions: Some(7), ..options }.resolve(&settings);
        assert_eq!((r.start, r.chunk_sessions), (day(3), 7));
    }
}
