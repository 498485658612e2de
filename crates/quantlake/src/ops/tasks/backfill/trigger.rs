//! `trigger_backfill(dataset_name, symbols, start, end, options)`: repairs or re-derives one scope
//! across layers (runbook section 5), as a job.
//!
//! `dataset_name` may be a raw dataset (`raw_polygon_bars`), a curated one (`curated_1m_bars`) or a
//! feature or label set. What runs, in this order, each in chunks of `ingest.chunk_sessions` sessions:
//! 1. **re-ingest**: for a raw or curated backfill (or `overwrite_curated`), the raw cells the
//!    progress records do not have as fetched; every cell with `reingest`. The source is the raw
//!    dataset's own, else `[run] source`.
//! 2. **re-curate**: a curated backfill, or `overwrite_curated`.
//! 3. **features**: a feature backfill (that set), or `overwrite_features` (the configured sets).
//! 4. **data quality** of every dataset written, and the **impact report** against the tag.
//!
//! Before it writes, the backfill takes a **lake-wide tag** (`pre-<job id>`, or `tag`):
//! `quantlake snapshot restore --all <tag>` undoes all of it in one commit. The plan is computed once
//! and stored with the job. Each chunk is a job of its own (`backfill_chunk`, id `<backfill
//! id>.<step>.<first session>`), queued when its step starts: the backfill's own process runs them,
//! and so does any `quantlake worker` sharing the lake (local or S3), each chunk once. A step starts
//! when every chunk of the one before has finished. A chunk whose commit landed but whose job did not
//! finish (killed in between) is recognised by the job id its commit carries, so a resumed backfill
//! (`backfill resume`, or a worker) never redoes a committed chunk; a chunk that failed is retried by
//! the next attempt. A symbol the source refuses ends the job `PARTIAL`, naming it; the other symbols
//! are committed.
//!
//! Safety (runbook 5.3): a backfill over more than `backfill.max_untested_sessions` sessions refuses
//! to run unless a smaller window of the same scope has completed, or `force_large`.

use std::collections::BTreeSet;

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use super::impact::{self, Impact};
use crate::bars::BarSize;
use crate::calendar::NyseCalendar;
use crate::contract::Layer;
use crate::curate::{self, CurateRequest};
use crate::dq;
use crate::error::{Error, Result};
use crate::features::{self, FeaturesRequest};
use crate::ingest::{IngestRequest, ingest, progress};
use crate::names::Named;
use crate::ops::jobs::{Finish, JobHandle, JobRecord, JobStatus, JobStore};
use crate::ops::tasks::daily_run::{HealthLine, PipelineSettings};
use crate::ops::tasks::{Task, TaskKind};
use crate::progress::NoProgress;
use crate::sources::{AnySource, SourceKind, SymbolFailure};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::tag;
use crate::table::{Dataset, Lake};

/// The runbook's `options`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TriggerOptions {
    /// Re-curate the scope (implied by a curated backfill).
    pub overwrite_curated: bool,
    /// Recompute the configured feature and label sets over the scope (implied for a feature set).
    pub overwrite_features: bool,
    /// Plan only: print what would run.
    pub dry_run: bool,
    /// Name of the lake-wide tag taken before writing (default `pre-<job id>`).
    pub tag: Option<String>,
    /// Fetch every raw cell of the scope again, not only the missing ones.
    pub reingest: bool,
    /// Queue the backfill for a worker (`quantlake worker`) instead of running it here.
    pub queue: bool,
    /// Queue the backfill for a worker, to start at or after this time (off-peak hours).
    pub not_before: Option<DateTime<Utc>>,
    /// Run a backfill over more than `backfill.max_untested_sessions` without a smaller one first.
    pub force_large: bool,
}

/// The steps, in run order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    Reingest,
    Curate,
    Features,
}

impl Named for Step {
    const WHAT: &'static str = "backfill step";
    const ALL: &'static [Self] = &[Step::Reingest, Step::Curate, Step::Features];

    fn name(self) -> &'static str {
        match self {
            Step::Reingest => "reingest",
            Step::Curate => "curate",
            Step::Features => "features",
        }
    }
}
crate::names::named_display_and_from_str!(Step);

/// One commit's worth of a step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Chunk {
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Re-ingest: the symbols to fetch in these sessions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub symbols: Vec<Symbol>,
}

/// One step of the plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedStep {
    pub step: Step,
    /// The datasets it writes.
    pub datasets: Vec<String>,
    pub chunks: Vec<Chunk>,
    /// Partitions rewritten.
    pub partitions: usize,
}

/// What a backfill will do, before it does it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillPlan {
    pub dataset: String,
    pub layer: String,
    pub bar_size: BarSize,
    /// The scope's symbols; `None` is every symbol.
    pub symbols: Option<Vec<Symbol>>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub sessions: Vec<NaiveDate>,
    pub steps: Vec<PlannedStep>,
    /// The source re-ingest fetches from, the raw dataset it writes, the symbol-sessions it fetches
    /// and the requests and time that takes under the source's pacing (an estimate).
    pub source: Option<String>,
    pub raw_dataset: Option<String>,
    pub cells_to_fetch: u64,
    pub source_requests: u64,
    pub estimated_fetch_seconds: f64,
    /// Bytes of the partitions rewritten, from their current sizes (the mean size where none exists).
    pub bytes_to_write: u64,
    /// The feature and label sets recomputed.
    pub feature_sets: Vec<String>,
    /// Annotations on the scope (outages, accepted upstream problems).
    pub annotations: Vec<String>,
    /// What the plan leaves out, and why.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// The tag taken before writing (`pre-<job id>` unless named).
    pub tag: Option<String>,
    /// More sessions than `backfill.max_untested_sessions`, and what allows it.
    pub large: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tested_by: Option<String>,
    /// Why it would not run (a large backfill without a smaller one first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refused: Option<String>,
}

/// What the backfill did, once finished.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct BackfillResult {
    pub tag: String,
    /// Chunks committed, over all attempts and workers.
    pub chunks_committed: usize,
    /// Of those, the chunks already finished when this attempt reached their step (by an earlier
    /// attempt, or another worker).
    pub chunks_resumed: usize,
    pub rows_ingested: u64,
    pub rows_curated: u64,
    pub feature_rows: u64,
    pub failed: Vec<SymbolFailure>,
    pub health: Vec<HealthLine>,
    pub impact: Impact,
}

/// A step's progress.
#[derive(Debug, Clone, Serialize)]
pub struct StepProgress {
    pub step: Step,
    pub done: usize,
    pub total: usize,
}

/// `get_backfill_job_status`: the job, its plan, progress per step, ETA and, when done, the result.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillStatus {
    pub job: JobRecord,
    pub plan: BackfillPlan,
    pub steps: Vec<StepProgress>,
    pub eta_seconds: Option<f64>,
    pub result: Option<BackfillResult>,
}

/// What `trigger_backfill` did.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "triggered", rename_all = "snake_case")]
pub enum Triggered {
    /// `dry_run`: the plan only.
    Plan(BackfillPlan),
    /// `queue`, or `not_before` in the future: queued for a worker.
    Queued(BackfillStatus),
    /// Ran to its end (see the job's status).
    Finished(BackfillStatus),
}

/// A `backfill` job's parameters: how it was triggered and its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BackfillParams {
    pub options: TriggerOptions,
    pub plan: BackfillPlan,
}

/// Plans the backfill of `dataset_name` for `symbols` (`None`: all) over `start..=end`, and runs it
/// (see the module docs); with `dry_run` returns the plan only.
pub async fn trigger_backfill(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    dataset_name: &str,
    symbols: Option<Vec<Symbol>>,
    start: NaiveDate,
    end: NaiveDate,
    options: &TriggerOptions,
) -> Result<Triggered> {
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let scope = Scope::new(lake, settings, dataset_name, symbols, start, end)?;
    let plan = plan(lake, settings, &jobs, scope, options).await?;
    if options.dry_run {
        return Ok(Triggered::Plan(plan));
    }
    if let Some(why) = &plan.refused {
        return Err(Error::invalid(why.clone()));
    }
    let task = Task::Backfill(Box::new(BackfillParams { options: options.clone(), plan: plan.clone() }));
    let spec = task.spec()?.not_before(options.not_before);
    if options.queue || options.not_before.is_some_and(|t| t > Utc::now()) {
        let record = jobs.enqueue(spec).await?;
        let when = options.not_before.map(|t| format!(" at or after {}", t.to_rfc3339())).unwrap_or_default();
        tracing::info!("backfill {} queued: a worker starts it{when}", record.id);
        return Ok(Triggered::Queued(status_of(&jobs, record).await?));
    }
    let job = jobs.start(spec).await?;
    Ok(Triggered::Finished(run_claimed(lake, settings, job).await?))
}

/// `resume_backfill`: takes over an abandoned (killed) or queued backfill and runs what is left.
pub async fn resume_backfill(lake: &Lake, settings: PipelineSettings<'_>, job_id: &str) -> Result<BackfillStatus> {
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let kind = jobs.get(job_id).await?.kind;
    if kind != TaskKind::Backfill.name() {
        return Err(Error::Job { id: job_id.to_string(), reason: format!("is a {kind} job, not a backfill") });
    }
    run_claimed(lake, settings, jobs.claim(job_id).await?).await
}

/// `get_backfill_job_status(job_id)`.
pub async fn get_backfill_job_status(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    job_id: &str,
) -> Result<BackfillStatus> {
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let record = jobs.get(job_id).await?;
    if record.kind != TaskKind::Backfill.name() {
        return Err(Error::Job {
            id: job_id.to_string(),
            reason: format!("is a {} job, not a backfill (quantlake jobs show {job_id})", record.kind),
        });
    }
    status_of(&jobs, record).await
}

async fn status_of(jobs: &JobStore, job: JobRecord) -> Result<BackfillStatus> {
    let params: BackfillParams = serde_json::from_value(job.params.clone())
        .map_err(|e| Error::Job { id: job.id.clone(), reason: format!("unreadable backfill parameters: {e}") })?;
    let plan = params.plan;
    let mut steps = Vec::new();
    for s in &plan.steps {
        let mut done = 0;
        for c in &s.chunks {
            if let Some(r) = latest_chunk(jobs, &chunk_id(&job.id, s.step, c), job.attempts.max(1)).await? {
                done += usize::from(matches!(r.status, JobStatus::Succeeded | JobStatus::Partial));
            }
        }
        steps.push(StepProgress { step: s.step, done, total: s.chunks.len() });
    }
    let (done, total) = steps.iter().fold((0, 0), |(d, t), s| (d + s.done, t + s.total));
    let eta_seconds = match (job.status, job.duration_seconds) {
        (JobStatus::Running, Some(elapsed)) if done > 0 => Some(elapsed / done as f64 * (total - done) as f64),
        _ => None,
    };
    let result = if job.status.is_finished() { serde_json::from_value(job.report.clone()).ok() } else { None };
    Ok(BackfillStatus { job, plan, steps, eta_seconds, result })
}

/// A chunk's job ids: `base` for the first attempt of its coordinator, `base.aN` for a retry by
/// attempt N after an earlier one failed.
fn chunk_attempt_id(base: &str, attempt: u32) -> String {
    if attempt <= 1 { base.to_string() } else { format!("{base}.a{attempt}") }
}

/// The newest job of a chunk, over the coordinator's attempts up to `attempt`.
async fn latest_chunk(jobs: &JobStore, base: &str, attempt: u32) -> Result<Option<JobRecord>> {
    for a in (1..=attempt).rev() {
        match jobs.get(&chunk_attempt_id(base, a)).await {
            Ok(r) => return Ok(Some(r)),
            Err(Error::Job { .. } | Error::InvalidArgument(_)) => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(None)
}

/// The raw dataset's source and bar size (`raw_polygon_bars`, `raw_tws_daily_bars`).
fn raw_source(name: &str) -> Option<(String, BarSize)> {
    BarSize::of_raw_dataset(name).map(|(source, size)| (source.to_string(), size))
}

/// Partition keys of `sessions` for a date-partitioned dataset.
fn keys(sessions: &[NaiveDate]) -> Vec<String> {
    sessions.iter().map(|d| PartitionKey::Date(*d).to_string()).collect()
}

/// Bytes of `ds`'s partitions among `keys`, the mean size for those that do not exist yet.
async fn bytes_of(ds: &Dataset, keys: &[String]) -> Result<u64> {
    let state = ds.latest().await?;
    let mean = if state.partitions.is_empty() { 0 } else { state.bytes() / state.partitions.len() as u64 };
    Ok(keys.iter().map(|k| state.partitions.get(k).map_or(mean, |e| e.bytes)).sum())
}

fn chunks(sessions: &[NaiveDate], per_chunk: usize) -> Vec<Chunk> {
    sessions.chunks(per_chunk.max(1)).map(|c| Chunk { start: c[0], end: c[c.len() - 1], symbols: Vec::new() }).collect()
}

/// What a backfill covers: one dataset, some symbols (`None`: every symbol), a range of sessions.
struct Scope {
    dataset: String,
    layer: Layer,
    symbols: Option<Vec<Symbol>>,
    start: NaiveDate,
    end: NaiveDate,
    sessions: Vec<NaiveDate>,
    bar_size: BarSize,
    /// The source whose raw dataset feeds the scope (a raw dataset's own; else `run.source`).
    raw_source: String,
}

impl Scope {
    fn new(
        lake: &Lake,
        settings: PipelineSettings<'_>,
        dataset_name: &str,
        symbols: Option<Vec<Symbol>>,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Self> {
        if end < start {
            return Err(Error::invalid(format!("--end {end} is before --start {start}")));
        }
        let ds = lake.dataset(dataset_name)?;
        let dataset = ds.name().to_string();
        let layer = ds.contract().layer;
        let sessions: Vec<NaiveDate> = NyseCalendar.sessions(start, end).into_iter().map(|s| s.date).collect();
        if sessions.is_empty() {
            return Err(Error::invalid(format!("no NYSE sessions between {start} and {end}")));
        }
        let (bar_size, raw_source) = match layer {
            Layer::Raw => {
                let (source, size) =
                    raw_source(&dataset).ok_or_else(|| Error::invalid(format!("{dataset}: not a raw bar dataset")))?;
                (size, source)
            }
            Layer::Curated if dataset == curate::DAILY_DATASET => (BarSize::Day, settings.run.source.clone()),
            Layer::Curated if dataset == curate::DATASET => (BarSize::Minute, settings.run.source.clone()),
            Layer::Features if ds.contract().definition.is_some() => (BarSize::Minute, settings.run.source.clone()),
            _ => {
                return Err(Error::invalid(format!(
                    "{dataset} is not a raw, curated or feature dataset: backfill one of those"
                )));
            }
        };
        let symbols = symbols.filter(|s| !s.is_empty());
        Ok(Self { dataset, layer, symbols, start, end, sessions, bar_size, raw_source })
    }

    /// The sessions' partitions of a date-partitioned dataset.
    fn partitions(&self) -> Vec<String> {
        keys(&self.sessions)
    }
}

/// The re-ingest step of a plan: the raw cells of the scope that are not fetched yet (all of them
/// with `reingest`), in chunks of sessions, and what fetching them costs.
#[derive(Default)]
struct Reingest {
    step: Option<PlannedStep>,
    source: Option<String>,
    raw_dataset: Option<String>,
    cells: u64,
    requests: u64,
    seconds: f64,
    bytes: u64,
    warning: Option<String>,
}

async fn plan_reingest(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    scope: &Scope,
    reingest: bool,
    per_chunk: usize,
) -> Result<Reingest> {
    let (dataset, raw_source_name) = (&scope.dataset, &scope.raw_source);
    let kind = SourceKind::parse_name(raw_source_name).map_err(|_| {
        Error::invalid(format!(
            "{dataset}: source '{raw_source_name}' cannot be fetched again (a file import); re-import the file instead"
        ))
    })?;
    let raw_name = scope.bar_size.raw_dataset(kind.name());
    let wanted = match &scope.symbols {
        Some(list) => list.clone(),
        None => crate::universe::active_symbols(lake).await?,
    };
    if wanted.is_empty() {
        return Ok(Reingest {
            warning: Some(format!(
                "no symbols to re-ingest: --symbols all needs an active universe (quantlake universe rebuild); {raw_name} is not fetched"
            )),
            ..Reingest::default()
        });
    }
    let fetched = if reingest {
        Default::default()
    } else {
        progress::finished(lake, &raw_name, &wanted, scope.start, scope.end).await?
    };
    let (mut cells, mut requests, mut fetch_chunks) = (0u64, 0u64, Vec::new());
    for mut c in chunks(&scope.sessions, per_chunk) {
        let in_chunk: Vec<&NaiveDate> = scope.sessions.iter().filter(|d| **d >= c.start && **d <= c.end).collect();
        for symbol in &wanted {
            let missing = in_chunk.iter().filter(|d| !fetched.contains(&(symbol.clone(), ***d))).count() as u64;
            if missing > 0 {
                cells += missing;
                c.symbols.push(symbol.clone());
            }
        }
        if !c.symbols.is_empty() {
            requests += match kind {
                SourceKind::Tws => (c.symbols.len() * in_chunk.len()) as u64,
                _ => c.symbols.len() as u64,
            };
            fetch_chunks.push(c);
        }
    }
    let touched: Vec<String> = fetch_chunks
        .iter()
        .flat_map(|c| scope.sessions.iter().filter(move |d| **d >= c.start && **d <= c.end))
        .map(|d| PartitionKey::Date(*d).to_string())
        .collect();
    let bytes = bytes_of(&lake.dataset(&raw_name)?, &touched).await?;
    let step = (!fetch_chunks.is_empty()).then(|| PlannedStep {
        step: Step::Reingest,
        datasets: vec![raw_name.clone()],
        partitions: touched.len(),
        chunks: fetch_chunks,
    });
    Ok(Reingest {
        step,
        source: Some(kind.name().to_string()),
        raw_dataset: Some(raw_name),
        cells,
        requests,
        seconds: requests as f64 * seconds_per_request(kind, settings),
        bytes,
        warning: None,
    })
}

/// The annotations on what the plan writes, in the scope's time range, as `dataset: summary` lines.
async fn annotations_on(lake: &Lake, scope: &Scope, steps: &[PlannedStep]) -> Result<Vec<String>> {
    let written: BTreeSet<&str> =
        steps.iter().flat_map(|s| s.datasets.iter().map(String::as_str)).chain([scope.dataset.as_str()]).collect();
    let (from, to) =
        (NyseCalendar.day_start(scope.start), NyseCalendar.day_start(scope.end.succ_opt().unwrap_or(scope.end)));
    let (Some(from), Some(to)) = (from, to) else { return Ok(Vec::new()) };
    let mut annotations = Vec::new();
    for a in dq::list_annotations(lake, None, from, to).await? {
        let overlaps = match (&a.symbols, &scope.symbols) {
            (Some(annotated), Some(scope)) => annotated.iter().any(|s| scope.contains(s)),
            _ => true,
        };
        if written.contains(a.dataset.as_str()) && overlaps {
            annotations.push(format!("{}: {}", a.dataset, a.summary()));
        }
    }
    Ok(annotations)
}

/// Runbook 5.3: never the whole history without a smaller window first. Whether the scope is
/// large, the smaller finished backfill of the same scope that tested it, and why it is refused.
async fn large_backfill_rule(
    jobs: &JobStore,
    settings: PipelineSettings<'_>,
    scope: &Scope,
    force_large: bool,
) -> Result<(bool, Option<String>, Option<String>)> {
    let (sessions, max) = (&scope.sessions, settings.backfill.max_untested_sessions);
    if sessions.len() <= max {
        return Ok((false, None, None));
    }
    let smaller = jobs
        .list(None)
        .await?
        .into_iter()
        .filter(|r| {
            r.kind == TaskKind::Backfill.name() && matches!(r.status, JobStatus::Succeeded | JobStatus::Partial)
        })
        .find(|r| {
            serde_json::from_value::<BackfillParams>(r.params.clone()).is_ok_and(|p| {
                p.plan.dataset == scope.dataset
                    && p.plan.symbols == scope.symbols
                    && p.plan.start >= scope.start
                    && p.plan.end <= scope.end
                    && p.plan.sessions.len() < sessions.len()
            })
        });
    let tested_by = smaller.map(|r| r.id);
    let refused = (tested_by.is_none() && !force_large).then(|| {
        format!(
            "a backfill of {} sessions is larger than backfill.max_untested_sessions ({max}): run a smaller window of this scope first \
             (e.g. --start {} --end {}), or pass --force-large",
            sessions.len(),
            sessions[sessions.len().saturating_sub(max.max(1))],
            scope.end
        )
    });
    Ok((true, tested_by, refused))
}

async fn plan(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    jobs: &JobStore,
    scope: Scope,
    options: &TriggerOptions,
) -> Result<BackfillPlan> {
    let per_chunk = settings.ingest.chunk(None);
    let curated = curate::dataset_for(scope.bar_size).to_string();
    let wants_curate = scope.layer == Layer::Curated || options.overwrite_curated;
    let feature_sets: Vec<String> = if scope.layer == Layer::Features {
        vec![scope.dataset.clone()]
    } else if options.overwrite_features {
        settings.features.sets.clone()
    } else {
        Vec::new()
    };
    let session_keys = scope.partitions();

    // Re-ingest: the missing raw cells of a raw or curated backfill, or all of them with `reingest`.
    let reingest = if options.reingest || scope.layer == Layer::Raw || wants_curate {
        plan_reingest(lake, settings, &scope, options.reingest, per_chunk).await?
    } else {
        Reingest::default()
    };
    let mut bytes_to_write = reingest.bytes;
    let mut steps: Vec<PlannedStep> = reingest.step.into_iter().collect();
    if wants_curate {
        let cur = lake.dataset(&curated)?;
        bytes_to_write += if scope.bar_size == BarSize::Minute {
            bytes_of(&cur, &session_keys).await?
        } else {
            cur.latest().await?.bytes()
        };
        steps.push(PlannedStep {
            step: Step::Curate,
            datasets: vec![curated.clone(), curate::REJECTS.into(), dq::DATASET.into()],
            partitions: scope.sessions.len(),
            chunks: chunks(&scope.sessions, per_chunk),
        });
    }
    if !feature_sets.is_empty() {
        for set in &feature_sets {
            bytes_to_write += bytes_of(&lake.dataset(set)?, &session_keys).await?;
        }
        let mut datasets = feature_sets.clone();
        datasets.push(dq::DATASET.into());
        steps.push(PlannedStep {
            step: Step::Features,
            datasets,
            partitions: scope.sessions.len() * feature_sets.len(),
            chunks: chunks(&scope.sessions, per_chunk),
        });
    }
    let warnings: Vec<String> = reingest.warning.into_iter().collect();
    if steps.is_empty() {
        let hint = match scope.layer {
            Layer::Raw => " (every raw cell is fetched already: --reingest fetches them again)",
            _ => " (add --overwrite-curated or --overwrite-features)",
        };
        return Err(Error::invalid(format!(
            "nothing to backfill for {} {}..{}{hint}{}",
            scope.dataset,
            scope.start,
            scope.end,
            warnings.first().map(|w| format!(": {w}")).unwrap_or_default()
        )));
    }
    let annotations = annotations_on(lake, &scope, &steps).await?;
    if let Some(name) = &options.tag {
        crate::table::layout::validate_tag_name(name)?;
        if tag::get_lake(lake.store(), name).await?.is_some() {
            return Err(Error::invalid(format!("lake tag '{name}' already exists: name another with --tag")));
        }
    }
    let (large, tested_by, refused) = large_backfill_rule(jobs, settings, &scope, options.force_large).await?;
    Ok(BackfillPlan {
        dataset: scope.dataset,
        layer: scope.layer.to_string(),
        bar_size: scope.bar_size,
        symbols: scope.symbols,
        start: scope.start,
        end: scope.end,
        sessions: scope.sessions,
        steps,
        source: reingest.source,
        raw_dataset: reingest.raw_dataset,
        cells_to_fetch: reingest.cells,
        source_requests: reingest.requests,
        estimated_fetch_seconds: reingest.seconds,
        bytes_to_write,
        feature_sets,
        annotations,
        warnings,
        tag: options.tag.clone(),
        large,
        tested_by,
        refused,
    })
}

/// The time one request takes under the source's pacing: TWS's window rule, the REST vendors'
/// configured rate limits; the synthetic source is not paced.
fn seconds_per_request(kind: SourceKind, settings: PipelineSettings<'_>) -> f64 {
    let per_minute = |n: u32| if n == 0 { 0.0 } else { 60.0 / f64::from(n) };
    match kind {
        SourceKind::Synthetic => 0.0,
        SourceKind::Polygon => per_minute(settings.sources.polygon.http.requests_per_minute),
        SourceKind::Alpaca => per_minute(settings.sources.alpaca.http.requests_per_minute),
        SourceKind::Tws => {
            let p = &settings.sources.tws.pacing;
            let window = p.window.as_secs_f64();
            if p.window_max == 0 { 0.0 } else { window / p.window_max as f64 }
        }
    }
}

/// Runs a claimed backfill job to its end and finishes it.
pub(crate) async fn run_claimed(lake: &Lake, settings: PipelineSettings<'_>, job: JobHandle) -> Result<BackfillStatus> {
    let params: BackfillParams = serde_json::from_value(job.params().clone())
        .map_err(|e| Error::Job { id: job.id().to_string(), reason: format!("unreadable backfill parameters: {e}") })?;
    let span = job.span();
    let result = execute(lake, settings, &job, &params.plan).instrument(span).await;
    let record = match result {
        Ok(result) => {
            let status = if result.failed.is_empty() { JobStatus::Succeeded } else { JobStatus::Partial };
            let error = (!result.failed.is_empty()).then(|| {
                let names: Vec<&str> = result.failed.iter().map(|f| f.symbol.as_str()).collect();
                format!(
                    "the source failed for {}: {}",
                    names.join(", "),
                    result.failed.iter().map(|f| f.error.as_str()).collect::<Vec<_>>().join("; ")
                )
            });
            let finish = Finish {
                status,
                rows_in: result.rows_ingested + result.rows_curated,
                rows_out: result.rows_curated + result.feature_rows,
                error,
                ..Finish::with_status(status)
            }
            .report(&result);
            job.finish(finish).await?
        }
        Err(e) => job.finish_with(Err(e)).await?,
    };
    crate::ops::tasks::daily_run::alert_job(lake, settings, &record).await;
    // What the backfill changed is judged at once: the lake's conditions, not only the job's.
    crate::ops::tasks::daily_run::alert_lake(lake, settings, None).await;
    status_of(&JobStore::new(lake, settings.jobs.clone()), record).await
}

/// Whether a commit of `chunk_job` landed in `ds` after snapshot `since` (its checkpoint may not have).
async fn chunk_committed(ds: &Dataset, chunk_job: &str, since: u64) -> Result<bool> {
    let state = ds.latest().await?;
    let newer: BTreeSet<u64> = state.partitions.values().map(|e| e.snapshot_id).filter(|id| *id > since).collect();
    for id in newer {
        if let Some(commit) = ds.log().read_commit(id).await?
            && commit.parameters.get("job_id").and_then(|v| v.as_str()) == Some(chunk_job)
        {
            return Ok(true);
        }
    }
    Ok(false)
}

/// One chunk of one step, as a job of its own (`backfill_chunk`): any worker sharing the lake may
/// run it. Its id is its parent's with the step and first session, so re-creating it (a coordinator
/// resumed) finds the same job, and the id recorded in its commits recognises them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChunkTask {
    step: Step,
    chunk: Chunk,
    bar_size: BarSize,
    source: Option<String>,
    feature_sets: Vec<String>,
    /// The dataset whose commits carry this chunk's job id, and its snapshot when the backfill began.
    dataset: String,
    since: u64,
}

/// How long a coordinator waits before looking again at chunks other workers run.
const CHUNK_POLL: std::time::Duration = std::time::Duration::from_millis(500);

fn chunk_id(parent: &str, step: Step, c: &Chunk) -> String {
    format!("{parent}.{}.{}", step.name(), c.start)
}

/// Runs one chunk; the job's id is the one its commits carry. A chunk whose commit landed before
/// its job could finish (killed in between) is not redone.
async fn run_chunk(lake: &Lake, settings: PipelineSettings<'_>, id: &str, task: &ChunkTask) -> Result<Value> {
    let ds = lake.dataset(&task.dataset)?;
    if chunk_committed(&ds, id, task.since).await? {
        tracing::info!("backfill chunk {id}: committed by an earlier attempt");
        return Ok(json!({ "resumed": true }));
    }
    let c = &task.chunk;
    let value = match task.step {
        Step::Reingest => {
            let kind = SourceKind::parse_name(task.source.as_deref().unwrap_or_default())?;
            let source = AnySource::open(kind, settings.sources, lake).await?;
            let request = IngestRequest {
                symbols: c.symbols.clone(),
                start: c.start,
                end: c.end,
                bar_size: task.bar_size,
                chunk_sessions: NyseCalendar.sessions(c.start, c.end).len().max(1),
                job_id: Some(id.to_string()),
                resume: false,
            };
            let report = ingest(lake, &source, &request, &NoProgress).await?;
            for f in &report.failed {
                tracing::warn!(
                    "backfill chunk {id}: the source failed for {} in {}..{}: {}",
                    f.symbol,
                    c.start,
                    c.end,
                    f.error
                );
            }
            json!({ "rows_ingested": report.rows, "snapshots": report.snapshots, "failed": report.failed })
        }
        Step::Curate => {
            let request = CurateRequest::for_sessions(Some(c.start), Some(c.end), task.bar_size, Some(id.to_string()));
            let report = curate::curate(lake, settings.curate, &request).await?;
            json!({ "rows_curated": report.rows, "snapshot": report.snapshot_id })
        }
        Step::Features => {
            let request = FeaturesRequest {
                sets: task.feature_sets.clone(),
                start: c.start,
                end: c.end,
                job_id: Some(id.to_string()),
            };
            let report = features::compute_features(lake, &request).await?;
            json!({ "feature_rows": report.sets.iter().map(|s| s.rows).sum::<u64>(), "lake_seq": report.lake_seq })
        }
    };
    // Crash tests: the chunk is committed, its job not finished yet.
    crate::table::transaction::failpoint("backfill.after_chunk");
    Ok(value)
}

/// Runs a claimed `backfill_chunk` job (a worker's, or its coordinator's own).
pub(crate) async fn run_chunk_job(lake: &Lake, settings: PipelineSettings<'_>, job: JobHandle) -> Result<JobRecord> {
    let task: ChunkTask = serde_json::from_value(job.params().clone())
        .map_err(|e| Error::Job { id: job.id().to_string(), reason: format!("unreadable chunk parameters: {e}") })?;
    let id = job.id().to_string();
    let result = run_chunk(lake, settings, &id, &task).instrument(job.span()).await;
    let result = result.map(|value| {
        let failed = value.get("failed").and_then(|f| f.as_array()).is_some_and(|f| !f.is_empty());
        let status = if failed { JobStatus::Partial } else { JobStatus::Succeeded };
        let rows = ["rows_ingested", "rows_curated", "feature_rows"]
            .iter()
            .filter_map(|k| value.get(*k).and_then(Value::as_u64))
            .sum();
        Finish { rows_out: rows, report: value, ..Finish::with_status(status) }
    });
    job.finish_with(result).await
}

async fn execute(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    job: &JobHandle,
    plan: &BackfillPlan,
) -> Result<BackfillResult> {
    let done = job.claimed_record().checkpoints.clone();
    let tag_name = plan.tag.clone().unwrap_or_else(|| format!("pre-{}", job.id()));
    // The tag first: nothing is written before the lake can be put back.
    let tagged = match tag::get_lake(lake.store(), &tag_name).await? {
        Some(t) if done.contains_key("tag") || t.message.contains(job.id()) => t,
        Some(_) => return Err(Error::invalid(format!("lake tag '{tag_name}' exists and is not this backfill's"))),
        None => {
            let t = tag::create_lake(lake, &tag_name, &format!("before backfill {}", job.id()), false).await?;
            tracing::info!(
                "backfill {}: tagged the lake as '{tag_name}' (restore with: quantlake snapshot restore --all {tag_name})",
                job.id()
            );
            job.checkpoint("tag", json!({ "name": tag_name, "lake_seq": t.lake_seq })).await?;
            t
        }
    };
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let mut result = BackfillResult { tag: tag_name.clone(), ..Default::default() };
    let total: usize = plan.steps.iter().map(|s| s.chunks.len()).sum();
    let mut finished_before = 0;
    // Step by step (curation needs all raw chunks, features all curated ones); within a step, chunks
    // are independent jobs that any worker sharing the lake may run, this one included.
    for step in &plan.steps {
        let dataset = step.datasets[0].clone();
        let since = tagged.datasets.get(&dataset).copied().unwrap_or(0);
        let mut ids = Vec::new();
        for (ordinal, chunk) in step.chunks.iter().enumerate() {
            let task = ChunkTask {
                step: step.step,
                chunk: chunk.clone(),
                bar_size: plan.bar_size,
                source: plan.source.clone(),
                feature_sets: plan.feature_sets.clone(),
                dataset: dataset.clone(),
                since,
            };
            let base = chunk_id(job.id(), step.step, chunk);
            // A chunk that failed in an earlier attempt of this backfill is retried under a new id.
            let id = match latest_chunk(&jobs, &base, job.attempt()).await? {
                Some(r) if !matches!(r.status, JobStatus::Failed | JobStatus::Cancelled | JobStatus::Blocked) => r.id,
                _ => chunk_attempt_id(&base, job.attempt()),
            };
            // Round robin over the step's chunks: sharded workers each take a fixed share.
            let spec = Task::BackfillChunk(Box::new(task)).spec()?.child_of(job.id()).share(ordinal as u32);
            jobs.enqueue_as(&id, spec).await?;
            ids.push(id);
        }
        let mut counted = false;
        loop {
            if let Err(e) = job.check() {
                cancel_unfinished(&jobs, &ids, "the backfill stopped").await;
                return Err(e);
            }
            let records = futures::future::try_join_all(ids.iter().map(|id| jobs.get(id))).await?;
            let finished = records.iter().filter(|r| r.status.is_finished()).count();
            if !counted {
                finished_before += finished;
                counted = true;
            }
            let done_so_far =
                plan.steps.iter().take_while(|s| s.step != step.step).map(|s| s.chunks.len()).sum::<usize>() + finished;
            job.progress(step.step.name(), done_so_far as u64, total as u64, None);
            if finished == records.len() {
                collect(&records, &mut result)?;
                break;
            }
            let mut ran = false;
            for record in records.iter().filter(|r| jobs.takes(r, Utc::now())) {
                // Another worker may take it first: then the next one.
                if let Some(handle) = jobs.try_claim(record).await? {
                    let r = run_chunk_job(lake, settings, handle).await?;
                    tracing::info!("backfill {}: {} {}", job.id(), r.id, r.status);
                    ran = true;
                    break;
                }
            }
            if !ran {
                tokio::time::sleep(CHUNK_POLL).await;
            }
        }
    }
    result.chunks_resumed = finished_before;
    result.chunks_committed = total;

    job.progress("data_quality", total as u64, total as u64, None);
    let mut judged: Vec<String> = Vec::new();
    if plan.steps.iter().any(|s| s.step == Step::Curate) {
        judged.push(curate::dataset_for(plan.bar_size).to_string());
    }
    judged.extend(plan.feature_sets.iter().cloned());
    for name in &judged {
        let h = dq::get_dataset_health(lake, name, Some(plan.end), settings.health, settings.universe).await?;
        let problems: Vec<String> = h.problems().collect();
        tracing::info!("backfill {}: health {name} {} {}", job.id(), h.status, problems.join("; "));
        result.health.push(HealthLine {
            dataset: name.clone(),
            status: h.status,
            severity: h.severity.clone(),
            problems,
        });
    }

    let mut bar_datasets: Vec<String> = plan.raw_dataset.iter().cloned().collect();
    if plan.steps.iter().any(|s| s.step == Step::Curate) && plan.bar_size == BarSize::Minute {
        bar_datasets.push(curate::DATASET.to_string());
    }
    let symbols: BTreeSet<Symbol> = plan.symbols.iter().flatten().cloned().collect();
    result.impact =
        impact::measure(lake, &tagged.datasets, &bar_datasets, &plan.feature_sets, &plan.sessions, &symbols).await?;
    let changed: u64 = result.impact.partitions.iter().map(|p| p.rows_changed + p.rows_added + p.rows_removed).sum();
    tracing::info!(
        "backfill {}: done; {changed} row(s) changed in {} partition(s)",
        job.id(),
        result.impact.partitions.len()
    );
    Ok(result)
}

/// Adds the finished chunk jobs' rows and failed symbols to `result`; a failed or cancelled chunk
/// fails the backfill (its other chunks are committed; a resume runs it again).
fn collect(records: &[JobRecord], result: &mut BackfillResult) -> Result<()> {
    for r in records {
        match r.status {
            JobStatus::Succeeded | JobStatus::Partial => {
                let n = |k: &str| r.report.get(k).and_then(Value::as_u64).unwrap_or(0);
                result.rows_ingested += n("rows_ingested");
                result.rows_curated += n("rows_curated");
                result.feature_rows += n("feature_rows");
                if let Some(failed) =
                    r.report.get("failed").cloned().and_then(|f| serde_json::from_value::<Vec<SymbolFailure>>(f).ok())
                {
                    result.failed.extend(failed);
                }
            }
            status => {
                return Err(Error::Job {
                    id: r.id.clone(),
                    reason: format!("{status}: {}", r.error.as_deref().unwrap_or("no error recorded")),
                });
            }
        }
    }
    Ok(())
}

/// Best effort: the chunks nobody will wait for are cancelled, so no worker runs them later.
async fn cancel_unfinished(jobs: &JobStore, ids: &[String], reason: &str) {
    for id in ids {
        if let Ok(r) = jobs.get(id).await
            && !r.status.is_finished()
            && let Err(e) = jobs.cancel(id, reason).await
        {
            tracing::warn!("could not cancel chunk {id}: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn raw_dataset_names_give_their_source() {
        assert_eq!(raw_source("raw_polygon_bars"), Some(("polygon".into(), BarSize::Minute)));
        assert_eq!(raw_source("raw_tws_daily_bars"), Some(("tws".into(), BarSize::Day)));
        assert_eq!(raw_source("curated_1m_bars"), None);
    }

    #[test]
    fn sessions_split_into_chunks() {
        let d = |n| NaiveDate::from_ymd_opt(2024, 3, n).unwrap();
        let c = chunks(&[d(4), d(5), d(6), d(7), d(8)], 2);
        assert_eq!(
            c.iter().map(|c| (c.start, c.end)).collect::<Vec<_>>(),
            vec![(d(4), d(5)), (d(6), d(7)), (d(8), d(8))]
        );
    }
}
