//! `monthly_maintenance`: the robustness guide's monthly maintenance.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::validation::log_status;
use crate::error::Result;
use crate::ops::jobs::{Finish, JobHandle, JobStatus, JobStore};
use crate::ops::tasks::daily_run::PipelineSettings;
use crate::table::Lake;

/// `{"scheduled": event id}` when the schedule queued it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Maintenance {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<String>,
}

/// The robustness guide's monthly maintenance, each step reported; a step that cannot run (no
/// Polygon key for fundamentals) is skipped with its reason, one that fails fails the job after the
/// others ran.
pub async fn run(lake: &Lake, settings: PipelineSettings<'_>, job: &JobHandle) -> Result<Finish> {
    let mut steps = Vec::new();
    let mut failed = Vec::new();
    let mut step = |name: &str, outcome: Result<Value>| match outcome {
        Ok(v) => steps.push(json!({ "step": name, "status": "done", "report": v })),
        Err(e) => {
            tracing::error!("monthly maintenance: Failed to run {name}: {e}");
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
            let report =
                crate::reference::fundamentals::upsert_from_polygon(lake, settings.sources.polygon, &symbols).await?;
            Ok(serde_json::to_value(report)?)
        };
        step("fundamentals", refreshed.await);
    }
    job.check()?;
    job.progress("adv", 1, 6, None);
    step("adv", crate::adv::recompute_adv(lake, settings.adv, None).await.and_then(|r| Ok(serde_json::to_value(r)?)));
    job.check()?;
    job.progress("validate", 2, 6, None);
    let validation = super::validation::validate_lake(lake, &crate::dq::ValidateScope::lake(true), settings).await;
    if let Ok(v) = &validation {
        log_status("monthly maintenance: full validation", v.status);
    }
    step("validate_full", validation.and_then(|r| Ok(serde_json::to_value(r)?)));
    job.check()?;
    let retention = settings.jobs.retention;
    job.progress("progress_clean", 3, 6, None);
    step(
        "progress_clean",
        crate::ingest::progress::clean_older_than(lake, retention).await.and_then(|r| Ok(serde_json::to_value(r)?)),
    );
    job.progress("jobs_clean", 4, 6, None);
    step(
        "jobs_clean",
        JobStore::new(lake, settings.jobs.clone())
            .clean_older_than(retention)
            .await
            .and_then(|r| Ok(serde_json::to_value(r)?)),
    );
    job.check()?;
    job.progress("compact", 5, 6, None);
    step("compact", crate::maintenance::compact(lake, &[], false).await.and_then(|r| Ok(serde_json::to_value(r)?)));
    let status = if failed.is_empty() { JobStatus::Succeeded } else { JobStatus::Failed };
    Ok(Finish { error: (!failed.is_empty()).then(|| failed.join("; ")), ..Finish::with_status(status) }.report(&steps))
}
