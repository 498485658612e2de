//! Health: a dataset's quality rules (`[quality]` in its contract) applied to its `dq_metrics`, plus
//! the robustness guide's operational checks (freshness, symbol breadth), as GREEN / YELLOW / RED per
//! session and for the dataset, with the guide's severity (SEV-1 no new data, SEV-2 partial loss for
//! some symbols, SEV-3 warnings).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::{get_data_quality_summary, SessionSummary};
use crate::calendar::NyseCalendar;
use crate::contract::Threshold;
use crate::error::{Error, Result};
use crate::table::Lake;
use crate::universe::UniverseSettings;

/// `[health]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthSettings {
    /// Sessions up to the reference session that are judged.
    pub window_sessions: usize,
    /// Latest session with data more than this many sessions behind the reference: a warning.
    pub max_lag_sessions: i64,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self { window_sessions: 5, max_lag_sessions: 2 }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Status {
    Green,
    Yellow,
    Red,
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Status::Green => "GREEN",
            Status::Yellow => "YELLOW",
            Status::Red => "RED",
        })
    }
}

impl Status {
    /// `quantlake health-check`'s exit code.
    pub fn exit_code(self) -> u8 {
        self as u8
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct SessionHealth {
    pub date: NaiveDate,
    pub status: Status,
    pub checks: Vec<Check>,
}

/// `get_dataset_health`: the verdict for a dataset as of a date.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetHealth {
    pub dataset: String,
    pub as_of_date: NaiveDate,
    /// The session the dataset should reach: the last one on or before `as_of_date`.
    pub reference_session: NaiveDate,
    pub latest_session: Option<NaiveDate>,
    pub status: Status,
    /// SEV-1, SEV-2 or SEV-3 when not GREEN.
    pub severity: Option<String>,
    pub checks: Vec<Check>,
    pub sessions: Vec<SessionHealth>,
}

fn judge(name: &str, value: f64, t: Threshold, higher_is_better: bool) -> Check {
    let (bad, worse) = if higher_is_better { (value < t.warn, value < t.fail) } else { (value > t.warn, value > t.fail) };
    let status = if worse { Status::Red } else if bad { Status::Yellow } else { Status::Green };
    let limit = if worse { t.fail } else { t.warn };
    let detail = match (status, higher_is_better) {
        (Status::Green, _) => format!("{value:.4}"),
        (_, true) => format!("{value:.4} below {limit}"),
        (_, false) => format!("{value:.4} above {limit}"),
    };
    Check { name: name.into(), status, detail }
}

fn session_health(s: &SessionSummary, rules: &crate::contract::QualityRules) -> SessionHealth {
    let rate = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    let checks = vec![
        judge("coverage", s.coverage, rules.min_coverage, true),
        judge("symbol_coverage", s.min_symbol_coverage, rules.min_symbol_coverage, true),
        judge("invalid_rate", rate(s.invalid_rows, s.expected_bars), rules.max_invalid_rate, false),
        judge("outlier_rate", rate(s.outlier_count, s.present_bars), rules.max_outlier_rate, false),
        judge("duplicate_rate", rate(s.duplicates_removed, s.present_bars), rules.max_duplicate_rate, false),
    ];
    if checks[0].status != Status::Green {
        tracing::warn!(date = %s.date.unwrap_or_default(), "Coverage rate {:.2}% low", s.coverage * 100.0);
    }
    SessionHealth { date: s.date.unwrap_or_default(), status: checks.iter().map(|c| c.status).max().unwrap_or(Status::Green), checks }
}

/// Judges `dataset` as of `as_of_date` (default: today's last completed session).
pub async fn get_dataset_health(lake: &Lake, dataset: &str, as_of_date: Option<NaiveDate>, settings: &HealthSettings, breadth: &UniverseSettings) -> Result<DatasetHealth> {
    let rules = lake
        .dataset(dataset)?
        .contract()
        .quality
        .clone()
        .ok_or_else(|| Error::invalid(format!("dataset '{dataset}' has no [quality] rules in its contract, so no health")))?;
    let reference = match as_of_date {
        Some(d) => NyseCalendar.previous_session(d.succ_opt().unwrap_or(d)),
        None => NyseCalendar.last_completed_session(chrono::Utc::now()),
    };
    let window = settings.window_sessions.max(1) as i64;
    let window_start = NyseCalendar.add_sessions(reference, 1 - window);
    // Looked back far enough for freshness to see a lag beyond the window.
    let lookback_start = NyseCalendar.add_sessions(reference, -(window.max(settings.max_lag_sessions + 1)));
    let summary = get_data_quality_summary(lake, dataset, lookback_start, reference).await?;
    let by_date: std::collections::BTreeMap<NaiveDate, &SessionSummary> = summary.sessions.iter().filter_map(|s| s.date.map(|d| (d, s))).collect();
    // Every session of the window is judged: one with no metrics was never curated.
    let sessions: Vec<SessionHealth> = NyseCalendar
        .sessions(window_start, reference)
        .iter()
        .map(|day| match by_date.get(&day.date) {
            Some(s) => session_health(s, &rules),
            None => SessionHealth {
                date: day.date,
                status: Status::Red,
                checks: vec![Check { name: "present".into(), status: Status::Red, detail: "no metrics: the session was not curated".into() }],
            },
        })
        .collect();
    let latest = summary.sessions.last();
    let mut checks = Vec::new();
    // Freshness: the latest session with data against the reference session.
    let latest_session = latest.and_then(|s| s.date);
    checks.push(match latest_session {
        None => {
            tracing::warn!(dataset, %reference, "Failed to find data: no session from {lookback_start} to {reference}");
            Check { name: "freshness".into(), status: Status::Red, detail: format!("no data from {lookback_start} to {reference}") }
        }
        Some(d) => {
            let lag = NyseCalendar.sessions_between(d, reference);
            let status = if lag > settings.max_lag_sessions { Status::Yellow } else { Status::Green };
            Check { name: "freshness".into(), status, detail: format!("latest session {d}, {lag} session(s) behind {reference}") }
        }
    });
    // Breadth: symbols in the latest session against the thresholds.
    let symbols = latest.map_or(0, |s| s.symbols as usize);
    let breadth_status = match breadth.breadth(symbols) {
        crate::universe::Breadth::BelowMin => {
            tracing::warn!(dataset, "Symbol count {symbols} below critical threshold {}", breadth.breadth_min_symbols);
            Status::Red
        }
        crate::universe::Breadth::Warn => {
            tracing::warn!(dataset, "Symbol breadth {symbols} below warning threshold {}", breadth.breadth_warn_symbols);
            Status::Yellow
        }
        crate::universe::Breadth::Ok => Status::Green,
    };
    checks.push(Check {
        name: "breadth".into(),
        status: breadth_status,
        detail: format!("{symbols} symbols (critical below {}, warning below {})", breadth.breadth_min_symbols, breadth.breadth_warn_symbols),
    });
    let status = checks.iter().map(|c| c.status).chain(sessions.iter().map(|s| s.status)).max().unwrap_or(Status::Green);
    // Partial loss: some symbols' bars or some sessions missing, or fewer symbols than the critical breadth.
    let partial_loss = breadth_status == Status::Red
        || sessions.iter().any(|s| s.checks.iter().any(|c| (c.name == "symbol_coverage" || c.name == "present") && c.status != Status::Green));
    // No new data: neither the reference session nor the one before it has any.
    let no_new_data = !by_date.contains_key(&reference) && !by_date.contains_key(&NyseCalendar.previous_session(reference));
    let severity = match status {
        Status::Green => None,
        Status::Red if no_new_data => Some("SEV-1".to_string()),
        _ if partial_loss => Some("SEV-2".to_string()),
        _ => Some("SEV-3".to_string()),
    };
    Ok(DatasetHealth { dataset: dataset.into(), as_of_date: as_of_date.unwrap_or(reference), reference_session: reference, latest_session, status, severity, checks, sessions })
}
