//! What the dashboard changes, for the API's POST endpoints and the pages' forms alike: trigger a
//! backfill (after its plan was shown), cancel a job, restore a snapshot (after confirmation), run a
//! validation.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

use super::{AppState, params};
use quantlake::error::{Error, Result};
use quantlake::ops::jobs::{JobRecord, JobStore};
use quantlake::ops::tasks::backfill::trigger::{
    self as backfill, BackfillPlan, BackfillStatus, TriggerOptions, Triggered,
};
use quantlake::ops::tasks::{Task, Validation};
use quantlake::symbol::{Symbol, SymbolList, all_or_list};
use quantlake::table::SnapshotSpec;
use quantlake::table::operations::restore;

/// `POST /api/backfills`: `trigger_backfill`'s parameters and options, by their library names.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BackfillRequest {
    pub dataset_name: String,
    /// `all` (the default) or a comma-separated list.
    #[serde(default, deserialize_with = "params::text")]
    pub symbols: Option<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    #[serde(default, deserialize_with = "params::flag")]
    pub overwrite_curated: bool,
    #[serde(default, deserialize_with = "params::flag")]
    pub overwrite_features: bool,
    #[serde(default, deserialize_with = "params::flag")]
    pub dry_run: bool,
    #[serde(default, deserialize_with = "params::text")]
    pub tag: Option<String>,
    #[serde(default, deserialize_with = "params::flag")]
    pub reingest: bool,
    #[serde(default, deserialize_with = "params::flag")]
    pub force_large: bool,
    /// RFC 3339.
    #[serde(default, deserialize_with = "params::parsed")]
    pub not_before: Option<DateTime<Utc>>,
}

impl BackfillRequest {
    fn symbols(&self) -> Result<Option<Vec<Symbol>>> {
        match self.symbols.as_deref() {
            None => Ok(None),
            Some(spec) => Ok(all_or_list(spec)?.map(SymbolList::into_vec)),
        }
    }

    fn options(&self, dry_run: bool) -> TriggerOptions {
        TriggerOptions {
            overwrite_curated: self.overwrite_curated,
            overwrite_features: self.overwrite_features,
            dry_run,
            tag: self.tag.clone(),
            reingest: self.reingest,
            // The request returns at once; the backfill runs in this process or on a worker.
            queue: true,
            not_before: self.not_before,
            force_large: self.force_large,
        }
    }
}

/// What `POST /api/backfills` answers: the plan of a dry run, or the queued job's status.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "triggered", rename_all = "snake_case")]
pub enum BackfillAnswer {
    Plan(Box<BackfillPlan>),
    Queued(Box<BackfillStatus>),
}

/// Plans (`dry_run`) or queues the backfill; a queued one starts at once in this process unless the
/// server runs without jobs or `not_before` is later (a `quantlake worker` takes it then).
pub async fn trigger_backfill(state: &AppState, request: &BackfillRequest) -> Result<BackfillAnswer> {
    let (lake, config) = (state.lake(), state.config());
    let symbols = request.symbols()?;
    let triggered = backfill::trigger_backfill(
        lake,
        config.pipeline(),
        &request.dataset_name,
        symbols,
        request.start,
        request.end,
        &request.options(request.dry_run),
    )
    .await?;
    let status = match triggered {
        Triggered::Plan(plan) => return Ok(BackfillAnswer::Plan(Box::new(plan))),
        Triggered::Queued(status) | Triggered::Finished(status) => status,
    };
    let later = request.not_before.is_some_and(|t| t > Utc::now());
    if state.run_jobs() && !later {
        let id = status.job.id.clone();
        state.spawn(move |state| async move {
            // Another worker may have claimed it first; then that worker runs it.
            if let Err(e) = backfill::resume_backfill(state.lake(), state.config().pipeline(), &id).await {
                tracing::warn!("backfill {id} triggered from the dashboard: {e}");
            }
        });
    }
    Ok(BackfillAnswer::Queued(Box::new(status)))
}

/// `POST /api/jobs/{job_id}/cancel`.
pub async fn cancel_job(state: &AppState, job_id: &str) -> Result<JobRecord> {
    JobStore::new(state.lake(), state.config().jobs.clone()).cancel(job_id, "cancelled from the dashboard").await
}

/// `POST /api/snapshots/restore`: `confirm` must repeat the dataset's name (`lake` for a lake-wide
/// restore), so a restore never happens by a stray click.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RestoreRequest {
    /// None: the whole lake, to a lake-wide tag.
    #[serde(default, deserialize_with = "params::text")]
    pub dataset: Option<String>,
    /// A snapshot id, a tag, or a time (as `snapshot restore` takes it).
    pub to: String,
    pub confirm: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct RestoreAnswer {
    pub dataset: Option<String>,
    pub to: String,
    /// Partitions changed (0: the content was already that of `to`).
    pub partitions: usize,
    pub message: String,
}

pub async fn restore(state: &AppState, request: &RestoreRequest) -> Result<RestoreAnswer> {
    let lake = state.lake();
    let dataset = request.dataset.as_deref().filter(|d| !d.is_empty());
    let expected = dataset.unwrap_or("lake");
    if request.confirm.trim() != expected {
        return Err(Error::invalid(format!("to restore, confirm with '{expected}' (got '{}')", request.confirm)));
    }
    let spec = SnapshotSpec::parse(&request.to)?;
    match dataset {
        Some(name) => {
            let r = restore::restore(&lake.dataset(name)?, &spec).await?;
            let message = if r.partitions == 0 {
                format!("{name} already has the content of {}; nothing committed", request.to)
            } else {
                format!(
                    "restored {name} to {}: snapshot {} changes {} partition(s)",
                    request.to, r.snapshot_id, r.partitions
                )
            };
            tracing::info!("dashboard: {message}");
            Ok(RestoreAnswer { dataset: Some(name.into()), to: request.to.clone(), partitions: r.partitions, message })
        }
        None => {
            let r = restore::restore_lake(lake, &spec).await?;
            let changed: Vec<_> = r.writes.iter().filter(|w| w.partitions > 0).collect();
            let partitions = changed.iter().map(|w| w.partitions).sum();
            let message = format!(
                "restored the lake to {}: {partitions} partition(s) in {} dataset(s), lake snapshot {}",
                request.to,
                changed.len(),
                r.lake_seq
            );
            tracing::info!("dashboard: {message}");
            Ok(RestoreAnswer { dataset: None, to: request.to.clone(), partitions, message })
        }
    }
}

/// `POST /api/validation`: runs `validate` (`full`: every partition) as a `run_validation` job, in
/// the background; its report becomes `/api/validation` when it finishes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ValidationRequest {
    #[serde(default, deserialize_with = "params::flag")]
    pub full: bool,
}

pub async fn run_validation(state: &AppState, request: &ValidationRequest) -> Result<JobRecord> {
    let jobs = JobStore::new(state.lake(), state.config().jobs.clone());
    let handle = jobs.start(Task::RunValidation(Validation { full: request.full, scheduled: None }).spec()?).await?;
    let record = handle.claimed_record().clone();
    let full = request.full;
    state.spawn(move |state| async move {
        let task = Validation { full, scheduled: None };
        // In the job's span, so the job's log captures what validation logs.
        let result = quantlake::ops::tasks::validation::run(state.lake(), state.config().pipeline(), &task)
            .instrument(handle.span())
            .await;
        if let Err(e) = handle.finish_with(result).await {
            tracing::warn!("validation from the dashboard: {e}");
        }
    });
    Ok(record)
}
