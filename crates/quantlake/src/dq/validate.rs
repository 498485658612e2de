//! `quantlake validate`: every check across the lake in one report. Each dataset with data is
//! verified (files against the manifest: size and SHA-256, the live tree; with `full`, every retained
//! snapshot's files too), and each dataset with `[quality]` rules is judged by `get_dataset_health`;
//! with `full`, the key symbols are also checked over their whole expected range, not just the window.
//! Stages are checked both ways: a stage left undecided (verify's `unfinished_stage`), and, through one
//! view of the lake, each judged dataset's partitions against its metrics in `dq_metrics` (bars without
//! metrics, metrics of bars that are not there), which a stage commits together.

use std::collections::BTreeSet;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::health::key_symbol_checks;
use super::{DatasetHealth, HealthSettings, Status, get_dataset_health};
use crate::error::Result;
use crate::maintenance;
use crate::table::lake_log::LakeView;
use crate::table::layout::PartitionKey;
use crate::table::{Dataset, Lake, ReadFilter};
use crate::universe::UniverseSettings;

/// One line of the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationCheck {
    pub dataset: String,
    pub check: String,
    pub status: Status,
    pub detail: String,
}

impl ValidationCheck {
    /// A dataset's health as one line: status, severity, every problem.
    pub fn health(h: &DatasetHealth) -> Self {
        let detail = format!(
            "{}{}; {}",
            h.status,
            h.severity.as_deref().map(|s| format!(" {s}")).unwrap_or_default(),
            h.problems().collect::<Vec<_>>().join("; ")
        );
        Self { dataset: h.dataset.clone(), check: "health".into(), status: h.status, detail }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ValidationReport {
    pub status: Status,
    pub full: bool,
    /// The sessions checked, when not all of them (`--start`/`--end`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sessions: Option<(NaiveDate, NaiveDate)>,
    pub checks: Vec<ValidationCheck>,
}

/// What `validate` covers: by default every dataset with data, the latest snapshot, health over the
/// last `health.window_sessions` sessions.
#[derive(Debug, Clone, Default)]
pub struct ValidateScope {
    /// Every retained snapshot's files too, and key symbols over every session since the data starts.
    pub full: bool,
    /// The date health is judged as of (default: the last completed session, or the last of `sessions`).
    pub as_of_date: Option<NaiveDate>,
    /// Only these datasets (every dataset with data when empty).
    pub datasets: Vec<String>,
    /// Only the partitions holding these sessions (first, last): their files, their metrics, and health
    /// judging each of them as of the last; a lake validated in smaller batches.
    pub sessions: Option<(NaiveDate, NaiveDate)>,
}

impl ValidateScope {
    /// Every dataset, every session (`full`: every retained snapshot too).
    pub fn lake(full: bool) -> Self {
        Self { full, ..Self::default() }
    }

    /// Only the sessions from `first` to `last` (default: the last completed session); all of them
    /// without a `first`.
    pub fn between(self, first: Option<NaiveDate>, last: Option<NaiveDate>) -> Self {
        let last = || last.unwrap_or_else(|| crate::calendar::NyseCalendar.last_completed_session(chrono::Utc::now()));
        Self { sessions: first.map(|first| (first, last())), ..self }
    }

    /// The date health is judged as of, and its settings: a range is judged as of its last session,
    /// each of its sessions inside the window.
    pub fn judged(&self, health: &HealthSettings) -> (Option<NaiveDate>, HealthSettings) {
        match self.sessions {
            Some((first, last)) => {
                let sessions = crate::calendar::NyseCalendar.sessions(first, last).len().max(1);
                (Some(last), HealthSettings { window_sessions: sessions, ..health.clone() })
            }
            None => (self.as_of_date, health.clone()),
        }
    }

    fn in_sessions(&self, d: NaiveDate) -> bool {
        self.sessions.is_none_or(|(first, last)| first <= d && d <= last)
    }
}

/// Runs every check of `scope`; see the module docs.
pub async fn validate(
    lake: &Lake,
    scope: &ValidateScope,
    health: &HealthSettings,
    breadth: &UniverseSettings,
) -> Result<ValidationReport> {
    let full = scope.full;
    let mut checks = Vec::new();
    let view = lake.view().await?;
    // A range is judged as of its last session, each of its sessions inside health's window.
    let (as_of_date, health) = scope.judged(health);
    let health = &health;
    for report in maintenance::verify_sessions(lake, &scope.datasets, full, scope.sessions).await?.datasets {
        let ds = lake.dataset(&report.dataset)?;
        let status = if report.is_clean() { Status::Green } else { Status::Red };
        let detail = if report.is_clean() {
            format!(
                "{} files, {} bytes match snapshot {}",
                report.files_checked, report.bytes_checked, report.snapshot_id
            )
        } else {
            report.problems.iter().map(|p| format!("{p:?}")).collect::<Vec<_>>().join("; ")
        };
        checks.push(ValidationCheck {
            dataset: ds.name().into(),
            check: if full { "integrity (all snapshots)" } else { "integrity" }.into(),
            status,
            detail,
        });
        // Label sets have no [quality] rules but a health: their targets' coverage.
        let label_set = super::target_coverage::label_targets(ds.contract()).is_some();
        if ds.contract().quality.is_some() || label_set {
            let h = get_dataset_health(lake, ds.name(), as_of_date, health, breadth).await?;
            checks.push(ValidationCheck::health(&h));
            if label_set {
                continue;
            }
            checks.push(stage_outputs(lake, &view, &ds, scope).await?);
            let first = ds
                .latest_in(&view)
                .await?
                .partitions
                .values()
                .filter_map(|e| e.min_ts)
                .min()
                .map(|t| crate::calendar::NyseCalendar.trading_date(t))
                .map(|first| scope.sessions.map_or(first, |(from, _)| first.max(from)));
            if let (true, Some(first), Some(rules)) = (full, first, ds.contract().quality.as_ref()) {
                for c in
                    key_symbol_checks(lake, &view, ds.name(), &health.key_symbols, first, h.reference_session, rules)
                        .await?
                {
                    checks.push(ValidationCheck {
                        dataset: ds.name().into(),
                        check: format!("{} (all sessions)", c.name),
                        status: c.status,
                        detail: c.detail,
                    });
                }
            }
        }
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Green);
    Ok(ValidationReport { status, full, sessions: scope.sessions, checks })
}

/// Whether `ds`'s partitions and its metrics in `dq_metrics` come from the same stages: every
/// partition has metrics, and every session whose metrics count delivered bars has its partition.
async fn stage_outputs(lake: &Lake, view: &LakeView, ds: &Dataset, scope: &ValidateScope) -> Result<ValidationCheck> {
    let mut bars = ds.latest_in(view).await?;
    bars.partitions.retain(|_, e| scope.sessions.is_none_or(|(first, last)| e.overlaps_sessions(first, last)));
    let dq = lake.dataset(super::DATASET)?;
    let mut with_metrics = BTreeSet::new();
    let mut with_bars = BTreeSet::new();
    for b in dq.read(&dq.latest_in(view).await?, &ReadFilter::default()).await? {
        for m in super::metrics_of(&b, ds.name())?.into_iter().filter(|m| scope.in_sessions(m.date)) {
            let key = PartitionKey::for_date(ds.contract().partitioning, m.date).to_string();
            if m.present_bars > 0 {
                with_bars.insert(key.clone());
            }
            with_metrics.insert(key);
        }
    }
    let without_metrics: Vec<&String> = bars.partitions.keys().filter(|p| !with_metrics.contains(*p)).collect();
    let without_bars: Vec<&String> = with_bars.iter().filter(|p| !bars.partitions.contains_key(*p)).collect();
    let list = |v: &[&String]| {
        let shown: Vec<&str> = v.iter().take(5).map(|s| s.as_str()).collect();
        format!(
            "{}{}",
            shown.join(", "),
            if v.len() > 5 { format!(" and {} more", v.len() - 5) } else { String::new() }
        )
    };
    let (status, detail) = match (without_metrics.is_empty(), without_bars.is_empty()) {
        (true, true) => (
            Status::Green,
            format!(
                "{} partitions, each with its metrics (snapshot {}, dq_metrics snapshot {})",
                bars.partitions.len(),
                bars.snapshot_id,
                dq.latest_in(view).await?.snapshot_id
            ),
        ),
        _ => {
            let mut parts = Vec::new();
            if !without_metrics.is_empty() {
                parts.push(format!(
                    "{} partition(s) without metrics: {}",
                    without_metrics.len(),
                    list(&without_metrics)
                ));
            }
            if !without_bars.is_empty() {
                parts.push(format!(
                    "metrics of {} partition(s) that have no bars: {}",
                    without_bars.len(),
                    list(&without_bars)
                ));
            }
            (Status::Red, format!("{} (re-curate those sessions)", parts.join("; ")))
        }
    };
    Ok(ValidationCheck { dataset: ds.name().into(), check: "stage outputs".into(), status, detail })
}
