//! `quantlake bootstrap`: the robustness guide's bootstrap order as one resumable job — universe ->
//! historical backfill -> fundamentals -> curation -> ADV -> features -> training -> validation
//! (curation, implicit in the guide, runs before ADV, which reads curated daily bars).
//!
//! Each step is a job checkpoint: a bootstrap that was killed is resumed by running the command
//! again (it takes over the abandoned job and skips the steps done). The historical backfill resumes
//! by itself (its progress records). A step that cannot run here is skipped with its reason
//! (fundamentals without a Polygon key or a file); one that fails stops the bootstrap, FAILED, and a
//! rerun retries from it.

use std::path::PathBuf;

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tracing::Instrument;

use super::backfill::{self, BackfillOptions};
use super::daily_run::PipelineSettings;
use super::{Task, TaskKind};
use crate::bars::BarSize;
use crate::calendar::NyseCalendar;
use crate::curate::{self, CurateRequest};
use crate::error::{Error, Result};
use crate::features::{self, FeaturesRequest};
use crate::names::Named;
use crate::ops::jobs::{Finish, JobHandle, JobRecord, JobStatus, JobStore};
use crate::progress::NoProgress;
use crate::sources::{AnySource, SourceKind};
use crate::table::Lake;

/// The steps, in the guide's order.
/// Curation comes before ADV: ADV is computed from curated daily bars.
pub const STEPS: &[&str] =
    &["universe", "historical_backfill", "fundamentals", "curate", "adv", "features", "training", "validation"];

/// What to bootstrap from: a `bootstrap` job's parameters.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct BootstrapRequest {
    /// The bar source (default `run.source`).
    pub source: Option<SourceKind>,
    /// Fundamentals from this CSV or Parquet file instead of Polygon.
    pub fundamentals_file: Option<PathBuf>,
    /// Skip training (a lake for research only).
    pub skip_training: bool,
}

/// What `bootstrap` did: the job and each step's outcome.
#[derive(Debug, Clone, Serialize)]
pub struct BootstrapReport {
    pub job: JobRecord,
    pub steps: Vec<Value>,
}

/// Runs the bootstrap, resuming an abandoned one if there is one.
pub async fn bootstrap(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    request: &BootstrapRequest,
) -> Result<BootstrapReport> {
    let jobs = JobStore::new(lake, settings.jobs.clone());
    let abandoned = jobs
        .list(None)
        .await?
        .into_iter()
        .rev()
        .find(|r| r.kind == TaskKind::Bootstrap.name() && r.status == JobStatus::Abandoned);
    let job = match abandoned {
        Some(r) => {
            tracing::info!(
                "bootstrap: resuming {} (done: {})",
                r.id,
                r.checkpoints.keys().cloned().collect::<Vec<_>>().join(", ")
            );
            jobs.claim(&r.id).await?
        }
        None => jobs.start(Task::Bootstrap(request.clone()).spec()?).await?,
    };
    let span = job.span();
    let result = steps(lake, settings, &job, request).instrument(span).await;
    let record = job.finish_with(result.map(|steps| Finish::succeeded(0, steps.len() as u64).report(&steps))).await?;
    let steps = record.checkpoints.iter().map(|(k, v)| json!({ "step": k, "result": v })).collect();
    Ok(BootstrapReport { job: record, steps })
}

async fn steps(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    job: &JobHandle,
    request: &BootstrapRequest,
) -> Result<Vec<Value>> {
    let done = job.claimed_record().checkpoints.clone();
    let source = match request.source {
        Some(k) => k,
        None => SourceKind::parse_name(&settings.run.source).map_err(|e| Error::Config(format!("run.source: {e}")))?,
    };
    let end = NyseCalendar.last_completed_session(Utc::now());
    let mut results = Vec::new();
    for (i, &step) in STEPS.iter().enumerate() {
        if let Some(v) = done.get(step) {
            results.push(json!({ "step": step, "resumed": v }));
            continue;
        }
        job.check()?;
        job.progress(step, i as u64, STEPS.len() as u64, None);
        job.save_progress().await?;
        tracing::info!("bootstrap: {step}");
        let value = match step {
            "universe" => {
                let members = crate::universe::members(lake).await?;
                if settings.universe.symbols.is_empty() && settings.universe.csv.is_none() {
                    if members.iter().all(|m| !m.active) {
                        return Err(Error::invalid(
                            "bootstrap: no universe: set [universe] symbols or csv in the config (or QUANTLAKE_UNIVERSE__SYMBOLS)",
                        ));
                    }
                    json!({ "kept": members.iter().filter(|m| m.active).count() })
                } else {
                    serde_json::to_value(crate::universe::rebuild(lake, settings.universe).await?)?
                }
            }
            "historical_backfill" => {
                let options = BackfillOptions {
                    symbols: None,
                    bar_size: BarSize::Minute,
                    end: Some(end),
                    chunk_sessions: None,
                    job_id: Some(job.id().to_string()),
                };
                let request = options.resolve(lake, settings.ingest).await?;
                let bars = AnySource::open(source, settings.sources, lake).await?;
                let minute = backfill::backfill_history(lake, &bars, settings.backfill, &request, &NoProgress).await?;
                let daily_request = backfill::BackfillRequest { bar_size: BarSize::Day, ..request };
                let daily =
                    backfill::backfill_history(lake, &bars, settings.backfill, &daily_request, &NoProgress).await?;
                if !minute.failed.is_empty() || !daily.failed.is_empty() {
                    let names: Vec<&str> =
                        minute.failed.iter().chain(&daily.failed).map(|f| f.symbol.as_str()).collect();
                    tracing::warn!("bootstrap: the source failed for {}", names.join(", "));
                }
                json!({ "start": minute.start, "end": minute.end, "rows_1m": minute.rows, "rows_1d": daily.rows, "coverage": minute.coverage, "failed": minute.failed })
            }
            "fundamentals" => match (&request.fundamentals_file, &settings.sources.polygon.api_key) {
                (Some(path), _) => serde_json::to_value(
                    crate::reference::fundamentals::upsert_from_file(lake, path, None, None).await?,
                )?,
                (None, Some(_)) => {
                    let symbols = crate::universe::active_symbols(lake).await?;
                    serde_json::to_value(
                        crate::reference::fundamentals::upsert_from_polygon(lake, settings.sources.polygon, &symbols)
                            .await?,
                    )?
                }
                (None, None) => {
                    tracing::info!("bootstrap: fundamentals skipped: no --fundamentals file and no POLYGON_API_KEY");
                    json!({ "skipped": "no --fundamentals file and no POLYGON_API_KEY" })
                }
            },
            "curate" => {
                let (start, end) = backfilled(&done, &results)?;
                let minute = curate::curate(
                    lake,
                    settings.curate,
                    &CurateRequest::for_sessions(Some(start), Some(end), BarSize::Minute, Some(job.id().to_string())),
                )
                .await?;
                let daily = curate::curate(
                    lake,
                    settings.curate,
                    &CurateRequest::for_sessions(Some(start), Some(end), BarSize::Day, Some(job.id().to_string())),
                )
                .await?;
                json!({ "rows_1m": minute.rows, "rows_1d": daily.rows })
            }
            "adv" => serde_json::to_value(crate::adv::recompute_adv(lake, settings.adv, None).await?)?,
            "features" => {
                let (start, end) = backfilled(&done, &results)?;
                let report = features::compute_features(
                    lake,
                    &FeaturesRequest {
                        sets: settings.features.sets.clone(),
                        start,
                        end,
                        job_id: Some(job.id().to_string()),
                    },
                )
                .await?;
                json!({ "sets": report.sets.iter().map(|s| json!({ "set": s.set, "rows": s.rows })).collect::<Vec<_>>() })
            }
            "training" if request.skip_training => json!({ "skipped": "--skip-training" }),
            "training" => {
                let options = crate::models::TrainOptions {
                    end: Some(backfilled(&done, &results)?.1),
                    universe: settings.training_universe(),
                    ..Default::default()
                };
                let (train, fallback) = (options.resolve(settings.models, Utc::now())?, settings.health.into());
                serde_json::to_value(crate::models::train::train(lake, &train, fallback, &NoProgress).await?)?
            }
            _ => {
                let scope = crate::dq::ValidateScope::lake(false);
                let report = super::validation::validate_lake(lake, &scope, settings).await?;
                json!({ "status": report.status })
            }
        };
        job.checkpoint(step, value.clone()).await?;
        results.push(json!({ "step": step, "result": value }));
    }
    Ok(results)
}

/// The session range the historical backfill covered (from this or an earlier attempt).
fn backfilled(done: &std::collections::BTreeMap<String, Value>, results: &[Value]) -> Result<(NaiveDate, NaiveDate)> {
    let from_results = results
        .iter()
        .find(|r| r["step"] == "historical_backfill")
        .and_then(|r| r.get("result").or_else(|| r.get("resumed")));
    let v = done
        .get("historical_backfill")
        .or(from_results)
        .ok_or_else(|| Error::invalid("bootstrap: the historical backfill has not run"))?;
    let date = |k: &str| {
        v.get(k)
            .cloned()
            .and_then(|d| serde_json::from_value::<NaiveDate>(d).ok())
            .ok_or_else(|| Error::invalid(format!("bootstrap: the backfill's {k} is not recorded")))
    };
    Ok((date("start")?, date("end")?))
}
