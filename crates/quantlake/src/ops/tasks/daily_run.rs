//! The daily pipeline (`quantlake run`): ingest -> curate -> features -> data quality -> scoring, for
//! one session, each stage a job record (children of one `daily_run` job).
//!
//! Rules, from the operational runbook:
//! - The date defaults to the last completed NYSE session; a date that is not a session (weekend,
//!   holiday) is skipped with a message, and the run is recorded as `SKIPPED`.
//! - Only a partition-level RED in a stage's own inputs blocks it (features on a RED curated
//!   partition, scoring on a RED feature partition); `force` runs it anyway. Lake-wide findings
//!   (breadth, freshness, coverage) are reported by the data-quality stage and never block.
//! - A stage that fails or is blocked skips the stages that need its output; the others still run.
//! - Scoring runs with the model fitted most recently before the session (never one that saw it);
//!   its failure, or no such model, is SEV-1.
//! - Two verdicts, shown side by side: the job status says whether the stages ran (SUCCEEDED,
//!   PARTIAL, FAILED), the health status whether the data they left is good (GREEN, YELLOW, RED,
//!   each with its reasons). The exit code is the worse of the two (0/1/2): a run whose stages all
//!   succeeded on a RED lake is `SUCCEEDED`, health RED, exit 2.

use std::collections::BTreeMap;
use std::time::Instant;

use chrono::{DateTime, NaiveDate, NaiveTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tracing::Instrument;

use super::Task;
use crate::bars::BarSize;
use crate::calendar::NyseCalendar;
use crate::curate::{self, CurateRequest, CurateSettings};
use crate::dq::{self, HealthSettings};
use crate::error::{Error, Result};
use crate::features::{self, FeaturesRequest, FeaturesSettings};
use crate::ingest::{IngestOptions, IngestSettings, ingest};
use crate::models::{self, ModelChoice, ScoreRequest};
use crate::names::Named;
use crate::ops::jobs::{Finish, JobHandle, JobRecord, JobSettings, JobSpec, JobStatus, JobStore};
use crate::outcome::Outcome;
use crate::progress::NoProgress;
use crate::quality::Status;
use crate::sources::{AnySource, SourceKind, SourceSettings, parse_symbols};
use crate::symbol::Symbol;
use crate::table::Lake;
use crate::universe::{self, UniverseSettings};

/// `[run]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct RunSettings {
    /// The bar source the daily run ingests from (synthetic, polygon, alpaca, tws).
    pub source: String,
    /// Symbols to ingest; empty: the universe's active symbols (`quantlake universe rebuild`).
    pub symbols: Vec<Symbol>,
    /// Bar sizes ingested and curated each day.
    pub bar_sizes: Vec<BarSize>,
    /// When the run is due, in exchange (New York) time on each session: a run's lag is measured
    /// from it, and `quantlake schedule` starts it then.
    pub at: String,
}

impl Default for RunSettings {
    fn default() -> Self {
        Self {
            source: "synthetic".into(),
            symbols: Vec::new(),
            bar_sizes: vec![BarSize::Minute, BarSize::Day],
            at: "17:30".into(),
        }
    }
}

impl RunSettings {
    /// The time of day the run is due, New York time.
    pub fn due_time(&self) -> Result<NaiveTime> {
        NaiveTime::parse_from_str(&self.at, "%H:%M")
            .map_err(|e| Error::Config(format!("run.at '{}': expected HH:MM ({e})", self.at)))
    }

    /// When the run of session `date` is due.
    pub fn due_at(&self, date: NaiveDate) -> Result<DateTime<Utc>> {
        let local = date.and_time(self.due_time()?);
        chrono::TimeZone::from_local_datetime(&chrono_tz::America::New_York, &local)
            .earliest()
            .map(|t| t.with_timezone(&Utc))
            .ok_or_else(|| Error::Config(format!("run.at '{}' does not exist on {date} in New York", self.at)))
    }
}

/// Everything the pipeline's stages are configured by.
#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings<'a> {
    pub run: &'a RunSettings,
    pub jobs: &'a JobSettings,
    pub backfill: &'a crate::ops::tasks::backfill::BackfillSettings,
    pub adv: &'a crate::adv::AdvSettings,
    pub alerts: &'a crate::ops::alerts::AlertSettings,
    pub ingest: &'a IngestSettings,
    pub sources: SourceSettings<'a>,
    pub curate: &'a CurateSettings,
    pub features: &'a FeaturesSettings,
    pub health: &'a HealthSettings,
    pub universe: &'a UniverseSettings,
    pub securities: &'a crate::reference::securities::SecuritySettings,
    pub models: &'a crate::models::ModelSettings,
}

impl PipelineSettings<'_> {
    /// What a scheduled or bootstrap training holds: the configured default universe's members on each
    /// date (when the security master records them).
    pub fn training_universe(&self) -> crate::sets::UniverseFilter {
        crate::sets::UniverseFilter::Default(self.securities.default_universe.clone())
    }
}

impl<'a> PipelineSettings<'a> {
    /// The settings the lake's alert conditions are judged by.
    pub fn conditions(&self) -> crate::ops::alerts::ConditionSettings<'a> {
        crate::ops::alerts::ConditionSettings {
            health: self.health,
            breadth: self.universe,
            alerts: self.alerts,
            predictions: &self.models.quality,
        }
    }
}

/// What to run: a `daily_run` job's parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RunRequest {
    /// The session (default: the last completed one).
    pub date: Option<NaiveDate>,
    /// Run stages even when their inputs are RED.
    pub force: bool,
    /// Overrides of `[run] source` and `symbols` (flags).
    pub source: Option<SourceKind>,
    pub symbols: Option<Vec<Symbol>>,
}

/// One stage of a run.
#[derive(Debug, Clone, Serialize)]
pub struct StageRun {
    pub stage: String,
    pub job_id: Option<String>,
    pub status: JobStatus,
    pub rows_in: u64,
    pub rows_out: u64,
    pub snapshots: BTreeMap<String, u64>,
    pub seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl StageRun {
    fn of(stage: &str, r: &JobRecord) -> Self {
        Self {
            stage: stage.to_string(),
            job_id: Some(r.id.clone()),
            status: r.status,
            rows_in: r.rows_in,
            rows_out: r.rows_out,
            snapshots: r.snapshots.clone(),
            seconds: r.duration_seconds.unwrap_or(0.0),
            error: r.error.clone(),
        }
    }
}

/// A dataset's health after the run.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthLine {
    pub dataset: String,
    pub status: Status,
    pub severity: Option<String>,
    pub problems: Vec<String>,
}

/// What `quantlake run` did.
#[derive(Debug, Clone, Serialize)]
pub struct RunReport {
    pub job_id: String,
    pub date: NaiveDate,
    pub status: JobStatus,
    /// Why nothing ran (not a session).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
    pub stages: Vec<StageRun>,
    pub health: Vec<HealthLine>,
    /// The worst of `health`: the data's verdict, apart from `status` (whether the stages ran).
    pub health_status: Status,
    pub lag_seconds: Option<f64>,
    pub seconds: f64,
    /// The exit code: the worse of the stages' and the health's.
    pub outcome: Outcome,
}

/// The stages' names, in run order; also their job kinds.
pub const INGEST: &str = "ingest";
pub const CURATE: &str = "curate";
pub const FEATURES: &str = "features";
pub const DATA_QUALITY: &str = "data_quality";
pub const SCORE: &str = "score";

/// Runs the daily pipeline for one session; see the module docs for the rules.
pub async fn run_daily(lake: &Lake, settings: PipelineSettings<'_>, request: &RunRequest) -> Result<RunReport> {
    let date = request.date.unwrap_or_else(|| NyseCalendar.last_completed_session(Utc::now()));
    let request = RunRequest { date: Some(date), ..request.clone() };
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let job =
        jobs.start(Task::DailyRun(request.clone()).spec()?.scheduled_for(Some(settings.run.due_at(date)?))).await?;
    run_claimed(lake, settings, job, request).await
}

/// Queues the daily run of `request` for a worker.
pub async fn enqueue_daily(lake: &Lake, settings: PipelineSettings<'_>, request: &RunRequest) -> Result<JobRecord> {
    let date = request.date.unwrap_or_else(|| NyseCalendar.last_completed_session(Utc::now()));
    let request = RunRequest { date: Some(date), ..request.clone() };
    let spec = Task::DailyRun(request).spec()?.scheduled_for(Some(settings.run.due_at(date)?));
    JobStore::new(lake, settings.jobs.clone()).enqueue(spec).await
}

/// Runs a claimed `daily_run` job (started here, or taken from the queue by a worker).
pub async fn run_claimed(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    job: JobHandle,
    request: RunRequest,
) -> Result<RunReport> {
    let started = Instant::now();
    let date = request.date.unwrap_or_else(|| NyseCalendar.last_completed_session(Utc::now()));
    let request = &request;
    let source = match request.source {
        Some(kind) => kind,
        None => SourceKind::parse_name(&settings.run.source).map_err(|e| Error::Config(format!("run.source: {e}")))?,
    };
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let due = settings.run.due_at(date)?;
    let span = job.span();
    let result = async {
        if !NyseCalendar.is_session(date) {
            let why = match NyseCalendar.holiday_name(date) {
                Some(holiday) => format!("{date} is an NYSE holiday ({holiday}): no session, nothing to run"),
                None => format!("{date} is not an NYSE session (weekend): nothing to run"),
            };
            tracing::info!("{why}");
            return Ok((Vec::new(), Vec::new(), Some(why)));
        }
        tracing::info!("daily run for {date} starting ({} source)", source.name());
        // A lake written by an older quantlake may keep per-session records in another layout than
        // the contracts' now: regroup those first (one commit each), or every stage's write refuses.
        for r in crate::maintenance::regroup_layouts(lake).await? {
            tracing::info!(
                dataset = r.dataset,
                "regrouped {} into {} partitions ({} -> {} partitions)",
                r.regrouped_from.as_deref().unwrap_or("?"),
                r.layout,
                r.partitions_before,
                r.partitions_after
            );
        }
        let session = SessionRun { lake, jobs: &jobs, run: &job, settings, request, date, due };
        let (stages, health) = session.stages(source).await?;
        Ok::<_, Error>((stages, health, None))
    }
    .instrument(span)
    .await;
    let (stages, health, skipped) = match result {
        Ok(r) => r,
        Err(e) => {
            let status = if job.cancel_requested() { JobStatus::Cancelled } else { JobStatus::Failed };
            let record = job.finish(Finish { error: Some(e.to_string()), ..Finish::with_status(status) }).await?;
            alert_job(lake, settings, &record).await;
            return Err(e);
        }
    };
    let worst_stage = stages.iter().map(|s| s.status.outcome()).max().unwrap_or(Outcome::Ok);
    let health_status = health.iter().map(|h| h.status).max().unwrap_or(Status::Green);
    let outcome = worst_stage.max(Outcome::from(health_status));
    let status = if skipped.is_some() {
        JobStatus::Skipped
    } else if stages.iter().any(|s| matches!(s.status, JobStatus::Failed | JobStatus::Blocked | JobStatus::Cancelled)) {
        JobStatus::Failed
    } else if stages.iter().any(|s| s.status == JobStatus::Partial) {
        JobStatus::Partial
    } else {
        JobStatus::Succeeded
    };
    let mut report = RunReport {
        job_id: job.id().to_string(),
        date,
        status,
        skipped,
        stages,
        health,
        health_status,
        lag_seconds: None,
        seconds: 0.0,
        outcome,
    };
    // A skipped stage's note says why it did not run; it is no error of the run.
    let failed: Vec<String> = report
        .stages
        .iter()
        .filter(|s| s.error.is_some() && s.status != JobStatus::Skipped)
        .map(|s| format!("{}: {}", s.stage, s.error.as_deref().unwrap_or("")))
        .collect();
    let finish = Finish {
        status,
        rows_in: report.stages.first().map(|s| s.rows_out).unwrap_or(0),
        rows_out: report.stages.iter().filter(|s| s.stage.starts_with(FEATURES)).map(|s| s.rows_out).sum(),
        snapshots: report.stages.iter().flat_map(|s| s.snapshots.clone()).collect(),
        error: (!failed.is_empty()).then(|| failed.join("; ")),
        report: serde_json::to_value(&report)?,
        peak_rss_bytes: None,
    };
    let record = job.finish(finish).await?;
    alert_job(lake, settings, &record).await;
    alert_lake(lake, settings, Some(date)).await;
    report.lag_seconds = record.lag_seconds;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

/// One session's run: what its stages share.
struct SessionRun<'a> {
    lake: &'a Lake,
    jobs: &'a JobStore,
    run: &'a JobHandle,
    settings: PipelineSettings<'a>,
    request: &'a RunRequest,
    date: NaiveDate,
    due: DateTime<Utc>,
}

impl SessionRun<'_> {
    /// A stage's job: a child of the run, due when the run was.
    fn spec(&self, kind: &str, params: serde_json::Value) -> JobSpec {
        JobSpec::new(kind, params).child_of(self.run.id()).scheduled_for(Some(self.due))
    }

    /// The stages, in order: ingest and curate each bar size, features, data quality, scoring.
    async fn stages(&self, source: SourceKind) -> Result<(Vec<StageRun>, Vec<HealthLine>)> {
        let mut stages = Vec::new();
        let curated = self.ingest_and_curate(source, &mut stages).await?;
        self.run.check()?;
        let features_ran = if curated.get(&BarSize::Minute).copied().unwrap_or(false) {
            let record = self.features().await?;
            stages.push(StageRun::of(FEATURES, &record));
            record.status == JobStatus::Succeeded
        } else {
            stages.push(not_run(FEATURES, "curated 1m bars of the day were not produced"));
            false
        };
        self.run.check()?;
        let (record, health) = self.data_quality().await?;
        stages.push(StageRun::of(DATA_QUALITY, &record));
        self.run.check()?;
        stages.push(self.score(features_ran).await?);
        Ok((stages, health))
    }

    /// Ingest, then curate, each bar size; whether each bar size's curated partition was produced.
    async fn ingest_and_curate(
        &self,
        source: SourceKind,
        stages: &mut Vec<StageRun>,
    ) -> Result<BTreeMap<BarSize, bool>> {
        let (lake, settings, date) = (self.lake, self.settings, self.date);
        let symbols = match &self.request.symbols {
            Some(s) => s.clone(),
            None if !settings.run.symbols.is_empty() => settings.run.symbols.clone(),
            None => universe::active_symbols(lake).await?,
        };
        if symbols.is_empty() {
            return Err(Error::invalid(
                "no symbols to ingest: set [run] symbols, pass --symbols, or rebuild the universe (quantlake universe rebuild)",
            ));
        }
        let symbols = parse_symbols(&symbols.join(","), source)?;
        let any_source = AnySource::open(source, settings.sources, lake).await?;
        let mut curated = BTreeMap::new();
        for &bar_size in &settings.run.bar_sizes {
            self.run.check()?;
            let spec = self.spec(
                INGEST,
                json!({ "date": date, "bar_size": bar_size, "source": source.name(), "symbols": symbols.len() }),
            );
            let ingested = in_job(self.jobs, spec, async |job: &JobHandle| {
                let options = IngestOptions {
                    symbols: symbols.clone(),
                    bar_size,
                    start: Some(date),
                    end: Some(date),
                    chunk_sessions: None,
                    job_id: Some(job.id().to_string()),
                    resume: false,
                };
                let report = ingest(lake, &any_source, &options.resolve(settings.ingest), &NoProgress).await?;
                let status = if report.failed.is_empty() { JobStatus::Succeeded } else { JobStatus::Partial };
                if !report.failed.is_empty() {
                    let names: Vec<&str> = report.failed.iter().map(|f| f.symbol.as_str()).collect();
                    tracing::warn!(
                        "ingest {bar_size} for {date}: {} symbol(s) failed: {}",
                        names.len(),
                        names.join(", ")
                    );
                }
                let mut finish =
                    Finish { status, rows_in: report.rows, rows_out: report.rows, ..Finish::with_status(status) }
                        .report(&report);
                if let Some(&id) = report.snapshots.last() {
                    finish = finish.snapshot(&report.dataset, id);
                }
                Ok(finish)
            })
            .await?;
            let ok = matches!(ingested.status, JobStatus::Succeeded | JobStatus::Partial);
            stages.push(StageRun::of(&format!("{INGEST}_{bar_size}"), &ingested));
            let name = format!("{CURATE}_{bar_size}");
            if !ok {
                stages.push(not_run(&name, &format!("ingest {bar_size} {}", ingested.status)));
                continue;
            }
            self.run.check()?;
            let spec = self.spec(CURATE, json!({ "date": date, "bar_size": bar_size }));
            let record = in_job(self.jobs, spec, async |job: &JobHandle| {
                let request = CurateRequest::for_sessions(Some(date), Some(date), bar_size, Some(job.id().to_string()));
                let report = curate::curate(lake, settings.curate, &request).await?;
                Ok(Finish::succeeded(report.raw_rows, report.rows)
                    .snapshot(&report.dataset, report.snapshot_id)
                    .snapshot(dq::DATASET, report.dq_snapshot_id)
                    .report(&report))
            })
            .await?;
            curated.insert(bar_size, record.status == JobStatus::Succeeded);
            stages.push(StageRun::of(&name, &record));
        }
        Ok(curated)
    }

    /// Features and labels, from the curated minute partition of the day (blocked by a RED input).
    async fn features(&self) -> Result<JobRecord> {
        let (lake, settings, date) = (self.lake, self.settings, self.date);
        let spec = self.spec(FEATURES, json!({ "date": date, "sets": settings.features.sets }));
        blockable(lake, self.jobs, spec, &[curate::DATASET], date, self.request.force, async |job: &JobHandle| {
            let request = FeaturesRequest {
                sets: settings.features.sets.clone(),
                start: date,
                end: date,
                job_id: Some(job.id().to_string()),
            };
            let report = features::compute_features(lake, &request).await?;
            let rows: u64 = report.sets.iter().map(|s| s.rows).sum();
            let mut finish = Finish::succeeded(0, rows).report(&report);
            for set in &report.sets {
                finish = finish.snapshot(&set.set, set.snapshot_id);
            }
            Ok(finish)
        })
        .await
    }

    /// Data quality: every dataset the run wrote that has [quality] rules, as of the day. Findings
    /// are reported, never block.
    async fn data_quality(&self) -> Result<(JobRecord, Vec<HealthLine>)> {
        let (lake, settings, date) = (self.lake, self.settings, self.date);
        let mut judged: Vec<String> =
            settings.run.bar_sizes.iter().map(|b| curate::dataset_for(*b).to_string()).collect();
        judged.extend(settings.features.sets.iter().cloned());
        let mut health = Vec::new();
        let spec = self.spec(DATA_QUALITY, json!({ "date": date, "datasets": judged }));
        let record = in_job(self.jobs, spec, async |_job: &JobHandle| {
            for name in &judged {
                let h = dq::get_dataset_health(lake, name, Some(date), settings.health, settings.universe).await?;
                let problems: Vec<String> = h.problems().collect();
                match h.status {
                    Status::Green => tracing::info!("health {name}: GREEN"),
                    status => tracing::warn!(
                        "health {name}: {status} {}: {}",
                        h.severity.as_deref().unwrap_or(""),
                        problems.join("; ")
                    ),
                }
                health.push(HealthLine {
                    dataset: name.clone(),
                    status: h.status,
                    severity: h.severity.clone(),
                    problems,
                });
            }
            Ok(Finish::succeeded(judged.len() as u64, judged.len() as u64).report(&health))
        })
        .await?;
        Ok((record, health))
    }

    /// Scoring of the day with the model fitted most recently before it (walk-forward: never one that
    /// saw the day), when one exists and the day's features were produced.
    async fn score(&self, features_ran: bool) -> Result<StageRun> {
        let (lake, settings, date) = (self.lake, self.settings, self.date);
        let candidates = models::score::walk_forward_models(lake).await?;
        if candidates.is_empty() {
            return Ok(not_run(SCORE, "no model registered (quantlake train registers one)"));
        }
        let Some(model) = models::score::pick(&candidates, date).map(|i| &candidates[i]) else {
            let newest = candidates.iter().map(|m| m.fit_end()).max().unwrap_or(date);
            let why = format!(
                "no model was fitted before {date} (the newest saw the sessions through {newest}; scoring with it would be in sample)"
            );
            tracing::error!("SEV-1: Failed to score {date}: {why}");
            return Ok(not_run(SCORE, &why));
        };
        if !features_ran {
            return Ok(not_run(SCORE, "features of the day were not produced"));
        }
        let spec = self.spec(SCORE, json!({ "date": date, "model": model.model_id }));
        let inputs = [model.feature_set.as_str()];
        let record = blockable(lake, self.jobs, spec, &inputs, date, self.request.force, async |_job: &JobHandle| {
            let request =
                ScoreRequest { model: ModelChoice::Id(model.model_id.clone()), ..ScoreRequest::new(date, date) };
            let report =
                models::score::score(lake, &request, &settings.models.quality, &crate::progress::NoProgress).await?;
            Ok(Finish::succeeded(report.rows, report.rows)
                .snapshot(models::PREDICTIONS, report.snapshot_id)
                .report(&report))
        })
        .await?;
        if record.status == JobStatus::Failed {
            tracing::error!("SEV-1: Failed to score {date}: {}", record.error.as_deref().unwrap_or("unknown error"));
        }
        Ok(StageRun::of(SCORE, &record))
    }
}

/// A finished job's outcome as the `job:<kind>` alert condition: a failure alerts once, the next
/// success resolves it. An alert that cannot be recorded is logged; it never fails the job.
pub async fn alert_job(lake: &Lake, settings: PipelineSettings<'_>, record: &JobRecord) {
    let summary = match &record.error {
        Some(e) => format!("job {} {}: {e}", record.id, record.status),
        None => format!("job {} {}", record.id, record.status),
    };
    let condition = crate::ops::alerts::Condition::job(&record.kind, record.status.outcome(), summary)
        .with_details(json!({ "job_id": record.id }));
    if let Err(e) = crate::ops::alerts::observe(lake, settings.alerts, &[condition]).await {
        tracing::warn!("job {}: could not record its alert condition: {e}", record.id);
    }
}

/// The lake's alert conditions (`alerts check`'s) as of `date` (the run's session; default the last
/// completed one), observed after a job (the daily run, a backfill, a worker's job): alerts fire on a
/// change of state by themselves, repeat at most every `alerts.repeat_after` while it lasts, and
/// resolve, without anyone running `alerts check`. Never fails the job.
pub(crate) async fn alert_lake(lake: &Lake, settings: PipelineSettings<'_>, date: Option<NaiveDate>) {
    let checked = crate::ops::alerts::check_lake(lake, date, settings.conditions()).await;
    if let Err(e) = checked {
        tracing::warn!("Failed to evaluate the lake's alert conditions after the job: {e}");
    }
}

/// A stage that did not run because one before it failed or was blocked.
fn not_run(stage: &str, why: &str) -> StageRun {
    if !why.is_empty() {
        tracing::warn!("{stage} not run: {why}");
    }
    StageRun {
        stage: stage.to_string(),
        job_id: None,
        status: JobStatus::Skipped,
        rows_in: 0,
        rows_out: 0,
        snapshots: BTreeMap::new(),
        seconds: 0.0,
        error: (!why.is_empty()).then(|| format!("not run: {why}")),
    }
}

/// Runs `work` as a job of `spec`, in the job's span; its error becomes the job's `FAILED`.
pub async fn in_job(
    jobs: &JobStore,
    spec: JobSpec,
    work: impl AsyncFnOnce(&JobHandle) -> Result<Finish>,
) -> Result<JobRecord> {
    let job = jobs.start(spec).await?;
    let result = work(&job).instrument(job.span()).await;
    if let Err(e) = &result {
        tracing::error!(parent: &job.span(), "Failed to run {}: {e}", job.kind());
    }
    job.finish_with(result).await
}

/// Like [`in_job`], but `BLOCKED` (without running) when a partition of `date` in `inputs` is RED,
/// unless `force`.
async fn blockable(
    lake: &Lake,
    jobs: &JobStore,
    spec: JobSpec,
    inputs: &[&str],
    date: NaiveDate,
    force: bool,
    work: impl AsyncFnOnce(&JobHandle) -> Result<Finish>,
) -> Result<JobRecord> {
    let red = crate::dq::red_partitions(lake, inputs, date, date).await?;
    if red.is_empty() {
        return in_job(jobs, spec, work).await;
    }
    if force {
        tracing::warn!("{}: inputs are RED ({}); running anyway (--force)", spec.kind, red.join("; "));
        return in_job(jobs, spec, work).await;
    }
    let kind = spec.kind.clone();
    let job = jobs.start(spec).await?;
    let reason = format!("blocked: input partition RED: {} (--force runs it anyway)", red.join("; "));
    tracing::error!(parent: &job.span(), "Failed to run {kind}: {reason}");
    job.finish(Finish { error: Some(reason), ..Finish::with_status(JobStatus::Blocked) }).await
}
