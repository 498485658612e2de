//! `run_validation`: the lake's validation ([`crate::dq::validate`]), quick or full.

use serde::{Deserialize, Serialize};

use crate::error::Result;
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
    let report = crate::dq::validate(lake, task.full, None, settings.health, settings.universe).await?;
    log_status("validation", report.status);
    Ok(Finish::succeeded(0, report.checks.len() as u64).report(&report))
}

pub(super) fn log_status(what: &str, status: Status) {
    match status {
        Status::Green => tracing::info!("{what}: GREEN"),
        status => tracing::warn!("{what}: {status}"),
    }
}
