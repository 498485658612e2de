//! `quantlake validate`: every check across the lake in one report. Each dataset with data is
//! verified (files against the manifest: size and SHA-256, the live tree; with `full`, every retained
//! snapshot's files too), and each dataset with `[quality]` rules is judged by `get_dataset_health`;
//! with `full`, the key symbols are also checked over their whole expected range, not just the window.

use chrono::NaiveDate;
use serde::Serialize;

use super::health::key_symbol_checks;
use super::{get_dataset_health, HealthSettings, Status};
use crate::error::Result;
use crate::maintenance;
use crate::table::Lake;
use crate::universe::UniverseSettings;

/// One line of the report.
#[derive(Debug, Clone, Serialize)]
pub struct ValidationCheck {
    pub dataset: String,
    pub check: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct ValidationReport {
    pub status: Status,
    pub full: bool,
    pub checks: Vec<ValidationCheck>,
}

/// Runs every check; see the module docs.
pub async fn validate(lake: &Lake, full: bool, as_of_date: Option<NaiveDate>, health: &HealthSettings, breadth: &UniverseSettings) -> Result<ValidationReport> {
    let mut checks = Vec::new();
    for report in maintenance::verify(lake, &[], full).await?.datasets {
        let ds = lake.dataset(&report.dataset)?;
        let status = if report.is_clean() { Status::Green } else { Status::Red };
        let detail = if report.is_clean() {
            format!("{} files, {} bytes match snapshot {}", report.files_checked, report.bytes_checked, report.snapshot_id)
        } else {
            report.problems.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join("; ")
        };
        checks.push(ValidationCheck { dataset: ds.name().into(), check: if full { "integrity (all snapshots)" } else { "integrity" }.into(), status, detail });
        if ds.contract().quality.is_some() {
            let h = get_dataset_health(lake, ds.name(), as_of_date, health, breadth).await?;
            let detail = format!("{}{}; {}", h.status, h.severity.as_deref().map(|s| format!(" {s}")).unwrap_or_default(), h.problems().collect::<Vec<_>>().join("; "));
            checks.push(ValidationCheck { dataset: ds.name().into(), check: "health".into(), status: h.status, detail });
            let first = ds.latest().await?.partitions.values().filter_map(|e| e.min_ts).min().map(|t| crate::calendar::NyseCalendar.trading_date(t));
            if let (true, Some(first), Some(rules)) = (full, first, ds.contract().quality.as_ref()) {
                for c in key_symbol_checks(lake, ds.name(), &health.key_symbols, first, h.reference_session, rules).await? {
                    checks.push(ValidationCheck { dataset: ds.name().into(), check: format!("{} (all sessions)", c.name), status: c.status, detail: c.detail });
                }
            }
        }
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Green);
    Ok(ValidationReport { status, full, checks })
}
