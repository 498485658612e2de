//! `run_validation`: the lake's validation ([`crate::dq::validate`]), quick or full.

use serde::{Deserialize, Serialize};

use crate::dq::{ValidateScope, ValidationCheck, ValidationReport};
use crate::error::Result;
use crate::models::PREDICTIONS;
use crate::ops::jobs::Finish;
use crate::ops::tasks::daily_run::PipelineSettings;
use crate::quality::Status;
use crate::table::Lake;

/// `{"type": "quick" | "full", "scheduled": event id}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Validation {
    /// Every retained snapshot and every session, not only the latest.
    #[serde(rename = "type", with = "depth")]
    pub full: bool,
    /// The schedule's event that queued it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled: Option<String>,
}

/// `"quick"` or `"full"` for the `type` field.
mod depth {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(full: &bool, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(if *full { "full" } else { "quick" })
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<bool, D::Error> {
        match String::deserialize(d)?.as_str() {
            "full" => Ok(true),
            "quick" => Ok(false),
            other => Err(serde::de::Error::custom(format!("validation type '{other}' (expected quick or full)"))),
        }
    }
}

/// Runs the validation and logs its verdict.
pub async fn run(lake: &Lake, settings: PipelineSettings<'_>, task: &Validation) -> Result<Finish> {
    let report = validate_lake(lake, &ValidateScope::lake(task.full), settings).await?;
    log_status("validation", report.status);
    Ok(Finish::succeeded(0, report.checks.len() as u64).report(&report))
}

/// `quantlake validate`: [`crate::dq::validate`] and the predictions' health (batch scoring's checks,
/// which the data-quality layer, below the models, cannot run), when `scope` covers predictions and
/// there are any.
pub async fn validate_lake(
    lake: &Lake,
    scope: &ValidateScope,
    settings: PipelineSettings<'_>,
) -> Result<ValidationReport> {
    let mut report = crate::dq::validate(lake, scope, settings.health, settings.universe).await?;
    let covered = scope.datasets.is_empty() || scope.datasets.iter().any(|d| d == PREDICTIONS);
    if covered && lake.dataset(PREDICTIONS)?.latest().await?.snapshot_id > 0 {
        let (as_of_date, health) = scope.judged(settings.health);
        let h = crate::models::predictions_health(lake, as_of_date, &health, &settings.models.quality).await?;
        report.status = report.status.max(h.status);
        report.checks.push(ValidationCheck::health(&h));
    }
    Ok(report)
}

pub(super) fn log_status(what: &str, status: Status) {
    match status {
        Status::Green => tracing::info!("{what}: GREEN"),
        status => tracing::warn!("{what}: {status}"),
    }
}
