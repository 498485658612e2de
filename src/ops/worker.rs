//! The task queue (the robustness guide's Celery tasks): [`dispatch`] queues a task as a job record,
//! [`work`] claims queued jobs, oldest first, and runs them. Several workers, on one machine or many
//! sharing an S3 lake, never run the same job: a claim is a put-if-absent on the job's next event.
//! A worker that dies leaves its job's lease to expire (at once on the same host); another worker
//! then takes the job over, and a backfill resumes where it stopped.
//!
//! | task | what runs |
//! |---|---|
//! | `daily_run` | the daily pipeline ([`super::run`]) |
//! | `backfill` | a backfill from `backfill trigger` ([`super::backfill::trigger`]): it queues its chunks, step by step, and runs them with any other worker |
//! | `backfill_chunk` | one chunk of a backfill's step |
//! | `historical_backfill` | `backfill-history` from `[run] source` |
//! | `run_validation` | `validate` (`{"type": "full"}` for the full one) |
//! | `monthly_maintenance` | fundamentals refresh (Polygon, when a key is configured), ADV recompute, full validation, progress and job records older than `jobs.retention` removed, compaction |

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};
use tracing::Instrument;

use super::backfill::{self, BackfillOptions};
use super::jobs::{Finish, JobHandle, JobRecord, JobSpec, JobStatus, JobStore};
use super::run::{self, PipelineSettings};
use crate::bars::BarSize;
use crate::error::{Error, Result};
use crate::names::Named;
use crate::progress::NoProgress;
use crate::quality::Status;
use crate::sources::{AnySource, SourceKind};
use crate::table::Lake;

pub const HISTORICAL_BACKFILL: &str = "historical_backfill";
pub const RUN_VALIDATION: &str = "run_validation";
pub const MONTHLY_MAINTENANCE: &str = "monthly_maintenance";

/// Every task a worker runs.
pub const TASKS: &[&str] = &[run::DAILY_RUN, backfill::trigger::BACKFILL, backfill::trigger::BACKFILL_CHUNK, HISTORICAL_BACKFILL, RUN_VALIDATION, MONTHLY_MAINTENANCE];

/// Queues task `kind` with `params` (a backfill is queued by `trigger_backfill` with `not_before`,
/// which plans it first).
pub async fn dispatch(lake: &Lake, settings: PipelineSettings<'_>, kind: &str, params: Value) -> Result<JobRecord> {
    if !TASKS.contains(&kind) || kind.starts_with(backfill::trigger::BACKFILL) {
        return Err(Error::invalid(format!("unknown task '{kind}'; dispatch one of: daily_run, historical_backfill, run_validation, monthly_maintenance (a backfill: backfill trigger --not-before)")));
    }
    JobStore::new(lake, settings.jobs.clone()).enqueue(JobSpec::new(kind, params)).await
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Stop when the queue is empty instead of waiting for more.
    pub once: bool,
    /// How long to wait between looks at an empty queue.
    pub poll: Duration,
    /// Only these tasks (all when empty).
    pub tasks: Vec<String>,
    /// Stop after this many jobs.
    pub max_jobs: Option<usize>,
}

/// What a worker ran.
#[derive(Debug, Clone, Serialize)]
pub struct WorkerReport {
    pub jobs: Vec<JobRecord>,
}

/// Claims and runs queued jobs until the queue is empty (`once`), `max_jobs` ran, or Ctrl-C.
pub async fn work(lake: &Lake, settings: PipelineSettings<'_>, options: &WorkerOptions) -> Result<WorkerReport> {
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let tasks: Vec<&str> = options.tasks.iter().map(String::as_str).collect();
    if let Some(unknown) = tasks.iter().find(|t| !TASKS.contains(t)) {
        return Err(Error::invalid(format!("unknown task '{unknown}'; tasks: {}", TASKS.join(", "))));
    }
    let mut report = WorkerReport { jobs: Vec::new() };
    loop {
        if options.max_jobs.is_some_and(|n| report.jobs.len() >= n) {
            break;
        }
        match jobs.claim_next(&tasks).await? {
            Some(job) => {
                let id = job.id().to_string();
                tracing::info!("worker: running {} {id}", job.kind());
                if let Err(e) = run_job(lake, settings, job).await {
                    tracing::error!("worker: job {id} failed: {e}");
                }
                report.jobs.push(jobs.get(&id).await?);
            }
            None if options.once => break,
            None => {
                tokio::select! {
                    _ = tokio::time::sleep(options.poll) => {}
                    _ = tokio::signal::ctrl_c() => break,
                }
            }
        }
    }
    Ok(report)
}

/// Runs one claimed job by its kind; the job is finished either way.
pub async fn run_job(lake: &Lake, settings: PipelineSettings<'_>, job: JobHandle) -> Result<()> {
    match job.kind() {
        run::DAILY_RUN => run::run_claimed(lake, settings, job).await.map(|_| ()),
        backfill::trigger::BACKFILL => backfill::trigger::run_claimed(lake, settings, job).await.map(|_| ()),
        backfill::trigger::BACKFILL_CHUNK => backfill::trigger::run_chunk_job(lake, settings, job).await.map(|_| ()),
        HISTORICAL_BACKFILL | RUN_VALIDATION | MONTHLY_MAINTENANCE => {
            let span = job.span();
            let result = task(lake, settings, &job).instrument(span).await;
            let record = job.finish_with(result).await?;
            run::alert_job(lake, settings, &record).await;
            Ok(())
        }
        kind => {
            let reason = format!("no worker task '{kind}'");
            job.finish(Finish { error: Some(reason), ..Finish::with_status(JobStatus::Failed) }).await.map(|_| ())
        }
    }
}

async fn task(lake: &Lake, settings: PipelineSettings<'_>, job: &JobHandle) -> Result<Finish> {
    let params = job.params().clone();
    match job.kind() {
        HISTORICAL_BACKFILL => {
            let kind = match params.get("source").and_then(Value::as_str) {
                Some(s) => SourceKind::parse_name(s)?,
                None => SourceKind::parse_name(&settings.run.source)?,
            };
            let bar_size = params.get("bar_size").and_then(Value::as_str).map(BarSize::parse_name).transpose()?.unwrap_or(BarSize::Minute);
            let symbols = params.get("symbols").cloned().map(serde_json::from_value::<Option<Vec<String>>>).transpose()?.flatten();
            let options = BackfillOptions { symbols, bar_size, end: None, chunk_sessions: None, job_id: Some(job.id().to_string()) };
            let request = options.resolve(lake, settings.ingest).await?;
            let source = AnySource::open(kind, settings.sources, lake).await?;
            let report = backfill::backfill_history(lake, &source, settings.backfill, &request, &NoProgress).await?;
            let status = if report.failed.is_empty() { JobStatus::Succeeded } else { JobStatus::Partial };
            Ok(Finish { status, rows_in: report.rows, rows_out: report.rows, ..Finish::with_status(status) }.report(&report))
        }
        RUN_VALIDATION => {
            let full = params.get("type").and_then(Value::as_str) == Some("full");
            let report = crate::dq::validate(lake, full, None, settings.health, settings.universe).await?;
            log_status("validation", report.status);
            Ok(Finish::succeeded(0, report.checks.len() as u64).report(&report))
        }
        MONTHLY_MAINTENANCE => monthly_maintenance(lake, settings, job).await,
        kind => Err(Error::invalid(format!("no worker task '{kind}'"))),
    }
}

fn log_status(what: &str, status: Status) {
    match status {
        Status::Green => tracing::info!("{what}: GREEN"),
        status => tracing::warn!("{what}: {status}"),
    }
}

/// The robustness guide's monthly maintenance, each step reported; a step that cannot run (no
/// Polygon key for fundamentals) is skipped with its reason, one that fails fails the job after the
/// others ran.
async fn monthly_maintenance(lake: &Lake, settings: PipelineSettings<'_>, job: &JobHandle) -> Result<Finish> {
    let mut steps = Vec::new();
    let mut failed = Vec::new();
    let mut step = |name: &str, outcome: Result<Value>| match outcome {
        Ok(v) => steps.push(json!({ "step": name, "status": "done", "report": v })),
        Err(e) => {
            tracing::error!("monthly maintenance: {name} failed: {e}");
            failed.push(format!("{name}: {e}"));
            steps.push(json!({ "step": name, "status": "failed", "error": e.to_string() }));
        }
    };
    job.progress("fundamentals", 0, 6, None);
    if settings.sources.polygon.api_key.is_none() {
        tracing::info!("monthly maintenance: fundamentals refresh skipped: no Polygon key (POLYGON_API_KEY)");
        step("fundamentals", Ok(json!({ "skipped": "no POLYGON_API_KEY" })));
    } else {
        let refreshed = async {
            let symbols = crate::universe::active_symbols(lake).await?;
            let report = crate::reference::fundamentals::upsert_from_polygon(lake, settings.sources.polygon, &symbols).await?;
            Ok(serde_json::to_value(report)?)
        };
        step("fundamentals", refreshed.await);
    }
    job.check()?;
    job.progress("adv", 1, 6, None);
    step("adv", crate::adv::recompute_adv(lake, settings.adv, None).await.and_then(|r| Ok(serde_json::to_value(r)?)));
    job.check()?;
    job.progress("validate", 2, 6, None);
    let validation = crate::dq::validate(lake, true, None, settings.health, settings.universe).await;
    if let Ok(v) = &validation {
        log_status("monthly maintenance: full validation", v.status);
    }
    step("validate_full", validation.and_then(|r| Ok(serde_json::to_value(r)?)));
    job.check()?;
    let retention = humantime::parse_duration(&settings.jobs.retention).map_err(|e| Error::Config(format!("jobs.retention '{}': {e}", settings.jobs.retention)))?;
    job.progress("progress_clean", 3, 6, None);
    step("progress_clean", crate::ingest::progress::clean_older_than(lake, retention).await.and_then(|r| Ok(serde_json::to_value(r)?)));
    job.progress("jobs_clean", 4, 6, None);
    step("jobs_clean", JobStore::new(lake, settings.jobs.clone()).clean_older_than(retention).await.and_then(|r| Ok(serde_json::to_value(r)?)));
    job.check()?;
    job.progress("compact", 5, 6, None);
    step("compact", crate::maintenance::compact(lake, &[], false).await.and_then(|r| Ok(serde_json::to_value(r)?)));
    let status = if failed.is_empty() { JobStatus::Succeeded } else { JobStatus::Failed };
    Ok(Finish { error: (!failed.is_empty()).then(|| failed.join("; ")), ..Finish::with_status(status) }.report(&steps))
}
