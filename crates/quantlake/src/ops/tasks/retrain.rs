//! `train`: the schedule's retraining. A model on the window ending at a session, with the `[models]`
//! settings (feature set, label, window, alpha), refused when a partition of the window that the
//! training set reads (curated minute bars, the feature set) is RED: a model fitted on bad data would
//! score every session until the next retrain. The model is registered, so walk-forward scoring (the
//! daily run's) picks it up for the sessions after its fit end.

use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::ops::jobs::{Finish, JobHandle};
use crate::ops::tasks::daily_run::PipelineSettings;
use crate::progress::NoProgress;
use crate::table::Lake;

/// `{"end": session, "scheduled": event id}`: `end` defaults to the last completed session.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Retrain {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub end: Option<NaiveDate>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<String>,
}

/// Trains and registers the model, or fails naming the RED partitions of its window.
pub async fn run(lake: &Lake, settings: PipelineSettings<'_>, job: &JobHandle, task: &Retrain) -> Result<Finish> {
    let options =
        crate::models::TrainOptions { end: task.end, universe: settings.training_universe(), ..Default::default() };
    let request = options.resolve(settings.models, Utc::now())?;
    job.progress("check", 0, 2, None);
    let inputs = ["curated_1m_bars", request.feature_set.as_str()];
    let red = crate::dq::red_partitions(lake, &inputs, request.start, request.end).await?;
    if !red.is_empty() {
        let shown: Vec<&str> = red.iter().take(10).map(String::as_str).collect();
        let more =
            if red.len() > shown.len() { format!(" and {} more", red.len() - shown.len()) } else { String::new() };
        return Err(Error::invalid(format!(
            "Failed to train through {}: {} RED partition(s) in the window {}..{}: {}{more}; repair them \
             (backfill, then curate and features) and train again",
            request.end,
            red.len(),
            request.start,
            request.end,
            shown.join("; ")
        )));
    }
    job.check()?;
    job.progress("train", 1, 2, None);
    let report = crate::models::train::train(lake, &request, settings.health.into(), &NoProgress).await?;
    tracing::info!(
        "train: model {} ({}) fitted through {}; scoring picks it up from the next session",
        report.model_id,
        if report.new_artifact { "new" } else { "already stored" },
        report.fit_end
    );
    Ok(Finish::succeeded(report.rows.read, report.rows.used)
        .snapshot("models", report.registry_snapshot)
        .report(&report))
}
