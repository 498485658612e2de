//! What each endpoint returns, computed once for the API and the page that shows it. Functions are
//! named after their endpoint and take the library's parameter names.

use std::collections::{BTreeMap, BTreeSet};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Date32Type, Float64Type, Int32Type, Int64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use quantlake::calendar::NyseCalendar;
use quantlake::config::Config;
use quantlake::contract::Layer;
use quantlake::curate::{self, BarsRequest};
use quantlake::dq::{self, DatasetHealth, SessionMetrics, Status};
use quantlake::error::{Error, Result};
use quantlake::models::{self, ModelEntry};
use quantlake::names::Named;
use quantlake::ops::alerts::{self, AlertEvent, Condition, LakeConditions, Severity};
use quantlake::ops::breadth::{self, BreadthReport};
use quantlake::ops::jobs::{JobRecord, JobStore};
use quantlake::ops::tasks::TaskKind;
use quantlake::ops::tasks::backfill::trigger::{self as backfill, BackfillStatus};
use quantlake::sets::lineage;
use quantlake::symbol::Symbol;
use quantlake::table::AsOf;
use quantlake::table::lake_log::LakeCommit;
use quantlake::table::operations::history::{self, DiffReport, SnapshotInfo};
use quantlake::table::operations::tag::{self, LakeTag, Tag};
use quantlake::table::{Lake, ReadFilter, SnapshotSpec};

/// Sessions a range defaults to, ending at the dataset's latest session.
pub const DEFAULT_SESSIONS: usize = 20;

/// The dataset's first and newest sessions with data, by its manifest (no data read).
pub async fn session_span(lake: &Lake, dataset: &str) -> Result<Option<(NaiveDate, NaiveDate)>> {
    let ds = lake.dataset(dataset)?;
    let state = ds.latest_in(&lake.view().await?).await?;
    let first = state.partitions.values().filter_map(|e| e.min_ts).min();
    let last = state.partitions.values().filter_map(|e| e.max_ts).max();
    Ok(first.zip(last).map(|(f, l)| (NyseCalendar.trading_date(f), NyseCalendar.trading_date(l))))
}

/// `start..=end` with the defaults the endpoints share: `end` = the dataset's newest session (else
/// the last completed one), `start` = [`DEFAULT_SESSIONS`] sessions before `end`, but not before
/// the dataset's first session.
pub async fn session_range(
    lake: &Lake,
    dataset: &str,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
) -> Result<(NaiveDate, NaiveDate)> {
    let span = session_span(lake, dataset).await?;
    let end = end.unwrap_or_else(|| span.map_or_else(|| dq::reference_session(None), |(_, last)| last));
    let start = start.unwrap_or_else(|| {
        let mut d = end;
        for _ in 1..DEFAULT_SESSIONS {
            d = NyseCalendar.previous_session(d);
        }
        span.map_or(d, |(first, _)| d.max(first).min(end))
    });
    if end < start {
        return Err(Error::invalid(format!("end {end} is before start {start}")));
    }
    if (end - start).num_days() > 3660 {
        return Err(Error::invalid(format!("{start}..{end} is more than ten years; ask for a shorter range")));
    }
    Ok((start, end))
}

// ---------------------------------------------------------------------------------------------
// /api/health

/// One dataset's line on the overview.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetLine {
    pub dataset: String,
    pub layer: Layer,
    pub rows: u64,
    pub partitions: usize,
    pub snapshot_id: u64,
    pub committed_at: Option<DateTime<Utc>>,
    /// Judged datasets only (those with `[quality]` rules, and `predictions`).
    pub status: Option<Status>,
    pub severity: Option<String>,
    pub latest_session: Option<NaiveDate>,
    /// Sessions between the latest session with data and the reference session.
    pub lag_sessions: Option<i64>,
    /// Checks that are not GREEN.
    pub problems: Vec<String>,
    /// Feature sets: symbols in the latest session against `FEATURE_BREADTH_MIN_SYMBOLS` /
    /// `FEATURE_BREADTH_WARN_SYMBOLS`.
    pub breadth: Option<BreadthReport>,
}

/// `/api/health`: every dataset's health, the lake's conditions (lag per layer, breadth, target
/// coverage), the worst severity and the last jobs.
#[derive(Debug, Clone, Serialize)]
pub struct Overview {
    pub lake: String,
    pub as_of_date: Option<NaiveDate>,
    pub reference_session: NaiveDate,
    pub severity: Severity,
    pub datasets: Vec<DatasetLine>,
    pub conditions: Vec<Condition>,
    pub last_jobs: Vec<JobRecord>,
}

/// `/api/health` (no `dataset`).
pub async fn health(lake: &Lake, config: &Config, as_of_date: Option<NaiveDate>) -> Result<Overview> {
    let reference = dq::reference_session(as_of_date);
    let mut datasets = Vec::new();
    for ds in lake.all_datasets() {
        let summary = ds.summary().await?;
        let contract = ds.contract();
        // What `health` judges: rule-bearing datasets, label sets (by their targets), predictions.
        let judged = contract.quality.is_some()
            || dq::target_coverage::label_targets(contract).is_some()
            || ds.name() == models::PREDICTIONS;
        let mut line = DatasetLine {
            dataset: summary.dataset.clone(),
            layer: contract.layer,
            rows: summary.rows,
            partitions: summary.partitions,
            snapshot_id: summary.snapshot_id,
            committed_at: summary.committed_at,
            status: None,
            severity: None,
            latest_session: None,
            lag_sessions: None,
            problems: Vec::new(),
            breadth: None,
        };
        if judged && summary.snapshot_id > 0 {
            let h = dataset_health(lake, config, ds.name(), as_of_date).await?;
            line.status = Some(h.status);
            line.severity = h.severity.clone();
            line.latest_session = h.latest_session;
            line.lag_sessions = h.latest_session.map(|l| sessions_between(l, h.reference_session));
            line.problems = h.problems().collect();
            if contract.layer == Layer::Features && contract.quality.is_some() {
                line.breadth = Some(breadth::breadth_of(lake, &h, &config.universe).await?);
            }
        }
        datasets.push(line);
    }
    let LakeConditions { conditions, .. } =
        alerts::lake_conditions(lake, as_of_date, config.pipeline().conditions()).await?;
    let severity = conditions.iter().map(|c| c.severity).max().unwrap_or(Severity::Ok);
    let last_jobs = jobs(lake, config, &JobsQuery { limit: Some(10), ..Default::default() }).await?;
    Ok(Overview {
        lake: lake.url().to_string(),
        as_of_date,
        reference_session: reference,
        severity,
        datasets,
        conditions,
        last_jobs,
    })
}

/// Trading sessions after `from` up to and including `to` (0 when `from` is not before `to`).
fn sessions_between(from: NaiveDate, to: NaiveDate) -> i64 {
    if from >= to {
        return 0;
    }
    NyseCalendar.sessions(from.succ_opt().unwrap_or(from), to).len() as i64
}

/// `/api/health?dataset=..`: `predictions` by its own checks, any other dataset by its contract's rules.
pub async fn dataset_health(
    lake: &Lake,
    config: &Config,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
) -> Result<DatasetHealth> {
    models::dataset_health(lake, dataset, as_of_date, &config.health, &config.universe, &config.models.quality).await
}

// ---------------------------------------------------------------------------------------------
// /api/dq/metrics and /api/coverage

/// `/api/dq/metrics`: the metrics rows of one dataset per symbol and session, optionally of one
/// symbol, sorted by session then symbol.
pub async fn dq_metrics(
    lake: &Lake,
    dataset: &str,
    start: NaiveDate,
    end: NaiveDate,
    symbol: Option<&Symbol>,
) -> Result<Vec<SessionMetrics>> {
    lake.dataset(dataset)?;
    let view = lake.view().await?;
    let mut rows = dq::metrics_between(lake, &view, dataset, start, end, symbol).await?;
    rows.sort_by(|a, b| (a.date, &a.symbol).cmp(&(b.date, &b.symbol)));
    Ok(rows)
}

/// One session's null rates over every symbol's delivered bars (`/api/dq/null_rates`).
#[derive(Debug, Clone, Serialize)]
pub struct SessionNullRates {
    pub date: NaiveDate,
    pub delivered_bars: u64,
    pub null_vwap: u64,
    pub null_trade_count: u64,
    pub null_rate_vwap: f64,
    pub null_rate_trade_count: f64,
}

/// `/api/dq/null_rates`: null rates of the optional bar columns per session, from the metrics rows.
pub async fn dq_null_rates(
    lake: &Lake,
    dataset: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<SessionNullRates>> {
    let mut by_date: BTreeMap<NaiveDate, (u64, u64, u64)> = BTreeMap::new();
    for m in dq_metrics(lake, dataset, start, end, None).await? {
        let e = by_date.entry(m.date).or_default();
        (e.0, e.1, e.2) = (e.0 + m.delivered_bars, e.1 + m.null_vwap, e.2 + m.null_trade_count);
    }
    let rate = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    Ok(by_date
        .into_iter()
        .map(|(date, (delivered, vwap, trades))| SessionNullRates {
            date,
            delivered_bars: delivered,
            null_vwap: vwap,
            null_trade_count: trades,
            null_rate_vwap: rate(vwap, delivered),
            null_rate_trade_count: rate(trades, delivered),
        })
        .collect())
}

/// `/api/coverage`: completeness of each symbol-session, for the heat map.
#[derive(Debug, Clone, Serialize)]
pub struct Coverage {
    pub dataset: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Every trading session of the range, by the calendar.
    pub sessions: Vec<NaiveDate>,
    /// Symbols with metrics in the range, and the universe's active symbols.
    pub symbols: Vec<String>,
    /// `cells[i][j]`: present / expected bars of `symbols[i]` in `sessions[j]`; `null` where the
    /// session has no metrics for the symbol (nothing was delivered).
    pub cells: Vec<Vec<Option<f64>>>,
    /// Cells below full coverage or missing.
    pub holes: usize,
    pub complete: usize,
}

pub async fn coverage(lake: &Lake, dataset: &str, start: NaiveDate, end: NaiveDate) -> Result<Coverage> {
    let metrics = dq_metrics(lake, dataset, start, end, None).await?;
    let sessions: Vec<NaiveDate> = NyseCalendar.sessions(start, end).into_iter().map(|s| s.date).collect();
    let mut symbols: BTreeSet<String> = metrics.iter().map(|m| m.symbol.clone()).collect();
    // A symbol with no bars at all in the range is the largest hole of all.
    symbols.extend(quantlake::universe::active_symbols(lake).await?.into_iter().map(String::from));
    let symbols: Vec<String> = symbols.into_iter().collect();
    let row_of: BTreeMap<&str, usize> = symbols.iter().enumerate().map(|(i, s)| (s.as_str(), i)).collect();
    let col_of: BTreeMap<NaiveDate, usize> = sessions.iter().enumerate().map(|(j, d)| (*d, j)).collect();
    let mut cells = vec![vec![None; sessions.len()]; symbols.len()];
    for m in &metrics {
        if let (Some(&i), Some(&j)) = (row_of.get(m.symbol.as_str()), col_of.get(&m.date)) {
            cells[i][j] = Some(if m.expected_bars == 0 { 1.0 } else { m.present_bars as f64 / m.expected_bars as f64 });
        }
    }
    let complete = cells.iter().flatten().filter(|c| c.is_some_and(|v| v >= 1.0)).count();
    let holes = symbols.len() * sessions.len() - complete;
    Ok(Coverage { dataset: dataset.to_string(), start, end, sessions, symbols, cells, holes, complete })
}

// ---------------------------------------------------------------------------------------------
// /api/bars

/// `/api/bars`: curated bars as rows, with the gaps and outliers a chart marks.
#[derive(Debug, Clone, Serialize)]
pub struct Bars {
    pub symbols: Vec<Symbol>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub frequency: String,
    pub adjust: String,
    pub rows: usize,
    /// 1m: minutes the source did not deliver (filled); resampled: bars with filled minutes.
    pub gaps: usize,
    pub outliers: usize,
    pub bars: Vec<Value>,
}

pub async fn bars(lake: &Lake, request: &BarsRequest, as_of: &AsOf) -> Result<Bars> {
    if request.symbols.is_empty() {
        return Err(Error::invalid("bars needs symbols, e.g. symbols=AAPL"));
    }
    let batches = curate::get_curated_bars(lake, request, as_of).await?;
    let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
    let mut gaps = 0;
    let mut outliers = 0;
    for b in &batches {
        gaps += count_true(b, "is_filled") + count_positive(b, "filled_minutes");
        outliers += count_true(b, "is_outlier") + count_true(b, "has_outlier");
    }
    Ok(Bars {
        symbols: request.symbols.clone(),
        start: request.start,
        end: request.end,
        frequency: quantlake::names::Named::name(request.frequency).to_string(),
        adjust: serde_json::to_value(request.adjust)?.as_str().unwrap_or("none").to_string(),
        rows,
        gaps,
        outliers,
        bars: batches_to_json(&batches)?,
    })
}

fn count_true(b: &RecordBatch, column: &str) -> usize {
    b.column_by_name(column).and_then(|c| c.as_boolean_opt()).map_or(0, |a| a.true_count())
}

/// Rows whose integer `column` (32 or 64 bits, as SQL typed it) is above 0.
fn count_positive(b: &RecordBatch, column: &str) -> usize {
    let Some(c) = b.column_by_name(column) else { return 0 };
    match (c.as_primitive_opt::<Int32Type>(), c.as_primitive_opt::<Int64Type>()) {
        (Some(a), _) => a.iter().filter(|v| v.is_some_and(|v| v > 0)).count(),
        (_, Some(a)) => a.iter().filter(|v| v.is_some_and(|v| v > 0)).count(),
        _ => 0,
    }
}

/// Rows as JSON objects (timestamps as RFC 3339 text).
pub fn batches_to_json(batches: &[RecordBatch]) -> Result<Vec<Value>> {
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    for b in batches {
        writer.write(b)?;
    }
    writer.finish()?;
    let bytes = writer.into_inner();
    if bytes.is_empty() {
        return Ok(Vec::new());
    }
    Ok(serde_json::from_slice(&bytes)?)
}

// ---------------------------------------------------------------------------------------------
// /api/jobs and /api/backfills

/// Which jobs `/api/jobs` lists.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct JobsQuery {
    /// Jobs created at or after this time (RFC 3339) or date.
    #[serde(default, deserialize_with = "super::params::text")]
    pub since: Option<String>,
    #[serde(default, deserialize_with = "super::params::text")]
    pub kind: Option<String>,
    #[serde(default, deserialize_with = "super::params::text")]
    pub status: Option<String>,
    /// Newest first, at most this many (default 100).
    #[serde(default, deserialize_with = "super::params::parsed")]
    pub limit: Option<usize>,
}

/// `/api/jobs`: newest first.
pub async fn jobs(lake: &Lake, config: &Config, q: &JobsQuery) -> Result<Vec<JobRecord>> {
    let since = q.since.as_deref().map(parse_time).transpose()?;
    let mut list = JobStore::new(lake, config.jobs.clone()).list(since).await?;
    list.retain(|j| q.kind.as_deref().is_none_or(|k| j.kind == k));
    if let Some(status) = q.status.as_deref() {
        list.retain(|j| {
            serde_json::to_value(j.status)
                .ok()
                .and_then(|v| v.as_str().map(|s| s.eq_ignore_ascii_case(status)))
                .unwrap_or(false)
        });
    }
    list.reverse();
    list.truncate(q.limit.unwrap_or(100));
    Ok(list)
}

/// A time given as RFC 3339 or as a date (its midnight UTC).
fn parse_time(s: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(s, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(0, 0, 0)).map(|t| t.and_utc()).ok_or_else(
        || Error::invalid(format!("'{s}' is not a time: give RFC 3339 (2024-03-05T21:30:00Z) or a date (2024-03-05)")),
    )
}

/// `/api/jobs/{job_id}`: the record, its log per attempt, and for a backfill its status (plan,
/// progress per step, ETA, result).
#[derive(Debug, Clone, Serialize)]
pub struct JobDetail {
    pub job: JobRecord,
    pub log: Vec<JobLog>,
    pub backfill: Option<BackfillStatus>,
}

#[derive(Debug, Clone, Serialize)]
pub struct JobLog {
    pub attempt: u32,
    pub text: String,
}

pub async fn job(lake: &Lake, config: &Config, job_id: &str) -> Result<JobDetail> {
    let store = JobStore::new(lake, config.jobs.clone());
    let job = store.get(job_id).await?;
    let log = store.log(job_id).await?.into_iter().map(|(attempt, text)| JobLog { attempt, text }).collect();
    let backfill = if job.kind == TaskKind::Backfill.name() {
        Some(backfill::get_backfill_job_status(lake, config.pipeline(), job_id).await?)
    } else {
        None
    };
    Ok(JobDetail { job, log, backfill })
}

/// `GET /api/backfills`: backfill jobs, newest first.
pub async fn backfills(lake: &Lake, config: &Config, limit: Option<usize>) -> Result<Vec<JobRecord>> {
    jobs(lake, config, &JobsQuery { kind: Some(TaskKind::Backfill.name().into()), limit, ..Default::default() }).await
}

// ---------------------------------------------------------------------------------------------
// /api/snapshots

/// `/api/snapshots`: a dataset's log and tags, or (no dataset) the lake log and lake-wide tags.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshots {
    pub dataset: Option<String>,
    pub snapshots: Vec<SnapshotInfo>,
    pub tags: Vec<Tag>,
    pub lake_log: Vec<LakeCommit>,
    pub lake_tags: Vec<LakeTag>,
}

pub async fn snapshots(lake: &Lake, dataset: Option<&str>, limit: usize) -> Result<Snapshots> {
    match dataset {
        Some(name) => {
            let ds = lake.dataset(name)?;
            Ok(Snapshots {
                dataset: Some(name.into()),
                snapshots: history::list(&ds, limit).await?,
                tags: tag::list(&ds).await?,
                lake_log: Vec::new(),
                lake_tags: Vec::new(),
            })
        }
        None => Ok(Snapshots {
            dataset: None,
            snapshots: Vec::new(),
            tags: Vec::new(),
            lake_log: history::list_lake(lake, limit).await?,
            lake_tags: tag::list_lake(lake.store()).await?,
        }),
    }
}

/// `/api/snapshots/diff`.
pub async fn snapshot_diff(lake: &Lake, dataset: &str, from: &str, to: &str) -> Result<DiffReport> {
    history::diff(&lake.dataset(dataset)?, &SnapshotSpec::parse(from)?, &SnapshotSpec::parse(to)?).await
}

// ---------------------------------------------------------------------------------------------
// /api/lineage

/// `/api/lineage`: training sets' lineage records (newest first), every target fallback, and the
/// models trained.
#[derive(Debug, Clone, Serialize)]
pub struct LineageView {
    pub records: Vec<Value>,
    pub fallbacks: Vec<FallbackRow>,
    pub models: Vec<ModelEntry>,
}

/// One fallback activation (`target_fallbacks`).
#[derive(Debug, Clone, Serialize)]
pub struct FallbackRow {
    pub created_at: Option<DateTime<Utc>>,
    pub date: Option<NaiveDate>,
    pub label_set: String,
    pub requested: String,
    pub chosen: String,
    pub coverage: Option<f64>,
    pub threshold: Option<f64>,
    pub days_back: Option<i64>,
    pub training_set: Option<String>,
}

pub async fn lineage(lake: &Lake, limit: usize) -> Result<LineageView> {
    let mut records = Vec::new();
    for b in read_all(lake, lineage::DATASET).await? {
        let Some(col) = b.column_by_name("record").and_then(|c| c.as_string_opt::<i32>()) else {
            return Err(Error::SchemaMismatch { dataset: lineage::DATASET.into(), detail: "missing record".into() });
        };
        for v in col.iter().flatten() {
            records.push(serde_json::from_str::<Value>(v)?);
        }
    }
    records.sort_by(|a, b| b["created_at"].as_str().cmp(&a["created_at"].as_str()));
    records.truncate(limit);
    let mut fallbacks = Vec::new();
    for b in read_all(lake, lineage::FALLBACKS).await? {
        let text = |n: &str, i: usize| {
            b.column_by_name(n)
                .and_then(|c| c.as_string_opt::<i32>())
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i).to_string())
        };
        let float = |n: &str, i: usize| {
            b.column_by_name(n)
                .and_then(|c| c.as_primitive_opt::<Float64Type>())
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
        };
        let int = |n: &str, i: usize| {
            b.column_by_name(n)
                .and_then(|c| c.as_primitive_opt::<Int64Type>())
                .filter(|c| c.is_valid(i))
                .map(|c| c.value(i))
        };
        for i in 0..b.num_rows() {
            fallbacks.push(FallbackRow {
                created_at: b
                    .column_by_name("created_at")
                    .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
                    .filter(|c| c.is_valid(i))
                    .and_then(|c| DateTime::from_timestamp_micros(c.value(i))),
                date: b
                    .column_by_name("date")
                    .and_then(|c| c.as_primitive_opt::<Date32Type>())
                    .filter(|c| c.is_valid(i))
                    .and_then(|c| c.value_as_date(i)),
                label_set: text("label_set", i).unwrap_or_default(),
                requested: text("requested", i).unwrap_or_default(),
                chosen: text("chosen", i).unwrap_or_default(),
                coverage: float("coverage", i),
                threshold: float("threshold", i),
                days_back: int("days_back", i),
                training_set: text("training_set", i),
            });
        }
    }
    fallbacks.sort_by_key(|f| std::cmp::Reverse(f.created_at));
    Ok(LineageView { records, fallbacks, models: models::list_models(lake).await? })
}

/// Every row of a small dataset at its latest snapshot.
async fn read_all(lake: &Lake, dataset: &str) -> Result<Vec<RecordBatch>> {
    let ds = lake.dataset(dataset)?;
    let state = ds.latest_in(&lake.view().await?).await?;
    ds.read(&state, &ReadFilter::default()).await
}

// ---------------------------------------------------------------------------------------------
// /api/alerts and /api/validation

/// `/api/alerts`: the alert history (newest first) and the conditions as they are now, each with the
/// threshold it is judged against in its details.
#[derive(Debug, Clone, Serialize)]
pub struct AlertsView {
    pub reference_session: NaiveDate,
    pub severity: Severity,
    pub conditions: Vec<Condition>,
    pub history: Vec<AlertEvent>,
}

pub async fn alerts(lake: &Lake, config: &Config, as_of_date: Option<NaiveDate>, limit: usize) -> Result<AlertsView> {
    let now = alerts::lake_conditions(lake, as_of_date, config.pipeline().conditions()).await?;
    let severity = now.conditions.iter().map(|c| c.severity).max().unwrap_or(Severity::Ok);
    Ok(AlertsView {
        reference_session: now.reference_session,
        severity,
        conditions: now.conditions,
        history: alerts::list_alerts(lake, limit).await?,
    })
}

/// `/api/validation`: the report of the last finished validation job (`quantlake dispatch
/// run_validation --type full`, the schedule's weekly check, or the dashboard's button).
#[derive(Debug, Clone, Serialize)]
pub struct ValidationView {
    /// None when no validation has run yet.
    pub job: Option<JobRecord>,
    pub report: Option<dq::ValidationReport>,
}

pub async fn validation(lake: &Lake, config: &Config) -> Result<ValidationView> {
    let finished = jobs(
        lake,
        config,
        &JobsQuery { kind: Some(TaskKind::RunValidation.name().into()), limit: Some(usize::MAX), ..Default::default() },
    )
    .await?;
    let Some(job) = finished.into_iter().find(|j| j.status.is_finished() && !j.report.is_null()) else {
        return Ok(ValidationView { job: None, report: None });
    };
    let report = serde_json::from_value(job.report.clone())
        .map_err(|e| Error::Job { id: job.id.clone(), reason: format!("its validation report cannot be read: {e}") })?;
    Ok(ValidationView { job: Some(job), report: Some(report) })
}
