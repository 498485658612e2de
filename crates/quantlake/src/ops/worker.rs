//! The task queue (the robustness guide's Celery tasks): [`dispatch`] queues a task as a job record,
//! [`work`] claims queued jobs, oldest first, and runs them. Several workers, on one machine or many
//! sharing an S3 lake, never run the same job: a claim is a put-if-absent on the job's next event.
//! A worker that dies leaves its job's lease to expire (at once on the same host); another worker
//! then takes the job over, and a backfill resumes where it stopped.
//!
//! The tasks and their parameters are [`super::tasks::Task`]'s.

use std::time::Duration;

use serde::Serialize;
use tracing::Instrument;

use super::jobs::{Finish, JobHandle, JobRecord, JobStatus, JobStore};
use super::tasks::backfill;
use super::tasks::daily_run::{self, PipelineSettings};
use super::tasks::{self, Task, TaskKind};
use crate::error::{Error, Result};
use crate::names::Named;
use crate::table::Lake;

/// Queues `task` (a backfill is queued by `trigger_backfill` with `not_before`, which plans it first).
pub async fn dispatch(lake: &Lake, settings: PipelineSettings<'_>, task: &Task) -> Result<JobRecord> {
    if !task.kind().dispatchable() {
        let direct: Vec<&str> = TaskKind::ALL.iter().filter(|k| k.dispatchable()).map(|k| k.name()).collect();
        return Err(Error::invalid(format!(
            "task '{}' is not dispatched directly; dispatch one of: {} (a backfill: backfill trigger --not-before)",
            task.kind(),
            direct.join(", ")
        )));
    }
    JobStore::new(lake, settings.jobs.clone()).enqueue(task.spec()?).await
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    /// Stop when the queue is empty instead of waiting for more (with a shard: when no queued job is
    /// running or claimable, since a running backfill still queues its next step's chunks).
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
    let mut tasks: Vec<&str> = Vec::new();
    for t in &options.tasks {
        let kind = TaskKind::parse_name(t)?;
        if !kind.queued() {
            return Err(Error::invalid(format!("a worker does not run '{kind}'; tasks: {}", TaskKind::queued_names())));
        }
        tasks.push(kind.name());
    }
    let mut report = WorkerReport { jobs: Vec::new() };
    if let Some(shard) = settings.jobs.shard {
        tracing::info!("worker: shard {shard}: backfill chunks numbered {} modulo {}", shard.index, shard.count);
    }
    loop {
        if options.max_jobs.is_some_and(|n| report.jobs.len() >= n) {
            break;
        }
        match jobs.claim_next(&tasks).await? {
            Some(job) => {
                let id = job.id().to_string();
                tracing::info!("worker: running {} {id}", job.kind());
                if let Err(e) = run_job(lake, settings, job).await {
                    tracing::error!("worker: Failed to run job {id}: {e}");
                }
                report.jobs.push(jobs.get(&id).await?);
            }
            None if options.once && (settings.jobs.shard.is_none() || !jobs.queue_busy().await?) => break,
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

/// Runs one claimed job by its task; the job is finished either way.
pub async fn run_job(lake: &Lake, settings: PipelineSettings<'_>, job: JobHandle) -> Result<()> {
    let task = match Task::from_record(job.kind(), job.params()) {
        Ok(task) => task,
        Err(e) => return refuse(job, e.to_string()).await,
    };
    let span = job.span();
    let result = match task {
        Task::DailyRun(request) => return daily_run::run_claimed(lake, settings, job, request).await.map(drop),
        Task::Backfill(_) => return backfill::trigger::run_claimed(lake, settings, job).await.map(drop),
        Task::BackfillChunk(_) => return backfill::trigger::run_chunk_job(lake, settings, job).await.map(drop),
        Task::Bootstrap(_) => {
            return refuse(job, "a bootstrap runs in the foreground (quantlake bootstrap), not in a worker".into())
                .await;
        }
        Task::HistoricalBackfill(t) => tasks::historical_backfill::run(lake, settings, &job, &t).instrument(span).await,
        Task::RunValidation(t) => tasks::validation::run(lake, settings, &t).instrument(span).await,
        Task::MonthlyMaintenance(_) => tasks::maintenance::run(lake, settings, &job).instrument(span).await,
        Task::Train(t) => tasks::retrain::run(lake, settings, &job, &t).instrument(span).await,
    };
    let record = job.finish_with(result).await?;
    daily_run::alert_job(lake, settings, &record).await;
    daily_run::alert_lake(lake, settings, None).await;
    Ok(())
}

/// Finishes a job no worker can run as failed, with the reason.
async fn refuse(job: JobHandle, reason: String) -> Result<()> {
    job.finish(Finish { error: Some(reason), ..Finish::with_status(JobStatus::Failed) }).await.map(drop)
}
