//! Alerts: conditions of the lake and of its jobs, turned into one alert per state change.
//!
//! A [`Condition`] is a named state with a [`Severity`]: `health:curated_1m_bars` is CRITICAL,
//! `lag:curated` is WARNING, `job:daily_run` is OK. [`observe`] compares each condition with the last
//! state recorded for its key in the lake and emits an [`AlertEvent`] only when something changed:
//!
//! | last recorded | observed | event |
//! |---|---|---|
//! | nothing, or OK | OK | none (nothing is written) |
//! | nothing, or OK | WARNING / CRITICAL | [`AlertKind::Triggered`] |
//! | WARNING / CRITICAL | the other one | [`AlertKind::Changed`] |
//! | WARNING / CRITICAL | the same | none, or [`AlertKind::Repeated`] once `repeat_after` (6h) has passed since the last event |
//! | WARNING / CRITICAL | OK | [`AlertKind::Resolved`] |
//!
//! Every event goes to the sinks: the log, always ([`log`]: `ALERT CRITICAL lag:curated: ...`,
//! `RESOLVED lag:curated: ...`), and the webhook when `[alerts] webhook_url` is set ([`webhook`]: a
//! JSON POST, retried with backoff; a webhook that stays down is logged and never fails the caller).
//!
//! ## Calling it from a job
//!
//! A job reports its own outcome as a condition keyed `job:<kind>`, on success as well as on
//! failure (the success is what resolves an earlier failure's alert):
//!
//! ```no_run
//! # async fn run(lake: &quantlake::table::Lake, config: &quantlake::config::Config) -> quantlake::Result<()> {
//! use quantlake::ops::alerts::{observe, Condition};
//! use quantlake::Outcome;
//! let condition = Condition::job("daily_run", Outcome::Critical, "scoring failed: no model")
//!     .with_details(serde_json::json!({ "job_id": "..." }));
//! let events = observe(lake, &config.alerts, &[condition]).await?;
//! # Ok(()) }
//! ```
//!
//! [`observe`] fails only when the lake cannot be read or written (or the `[alerts]` settings are
//! invalid); a job should log that error rather than fail on it. The lake's own conditions (health,
//! breadth, coverage, lag) come from [`conditions::lake_conditions`]; `quantlake alerts check` runs
//! them through [`observe`] ([`conditions::check_lake`]).
//!
//! ## Where state lives
//!
//! Under `_alerts/` in the lake, beside the datasets, through the store's own primitives, so it works
//! the same on local disk and S3 ([`store`]): each key's events are numbered objects
//! `_alerts/keys/<key>/<seq>.json`, created with put-if-absent (of two processes observing the same
//! change, exactly one records it and alerts), and every event is also one object in
//! `_alerts/history/<time>-<uuid>.json`, never overwritten by another process, so concurrent
//! observers lose no history ([`list_alerts`], newest first).

pub mod conditions;
pub mod log;
mod store;
pub mod webhook;

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::quality::Status;
use crate::sources::Secret;
use crate::table::Lake;

pub use conditions::{AlertCheckReport, ConditionSettings, LakeConditions, check_lake, lake_conditions};
pub use store::list_alerts;
pub use webhook::Delivery;

/// How bad a condition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum Severity {
    Ok,
    Warning,
    Critical,
}

impl std::fmt::Display for Severity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Severity::Ok => "OK",
            Severity::Warning => "WARNING",
            Severity::Critical => "CRITICAL",
        })
    }
}

/// GREEN is OK, YELLOW a warning, RED critical.
impl From<Status> for Severity {
    fn from(status: Status) -> Self {
        match status {
            Status::Green => Severity::Ok,
            Status::Yellow => Severity::Warning,
            Status::Red => Severity::Critical,
        }
    }
}

/// A job's outcome as a severity: partial success is a warning; a job that could not run is critical.
impl From<Outcome> for Severity {
    fn from(outcome: Outcome) -> Self {
        match outcome {
            Outcome::Ok => Severity::Ok,
            Outcome::Warning => Severity::Warning,
            Outcome::Critical | Outcome::Unknown => Severity::Critical,
        }
    }
}

/// The exit-code contract: exit 0, 1 or 2 by the worst condition.
impl From<Severity> for Outcome {
    fn from(severity: Severity) -> Self {
        match severity {
            Severity::Ok => Outcome::Ok,
            Severity::Warning => Outcome::Warning,
            Severity::Critical => Outcome::Critical,
        }
    }
}

/// A named state observed now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Condition {
    /// What is observed, `<kind>:<name>`: `health:curated_1m_bars`, `lag:curated`, `job:daily_run`.
    /// Letters, digits and `_ - . :` only (it names objects in the lake).
    pub key: String,
    pub severity: Severity,
    /// One line for people: what is wrong (or that it is fine).
    pub summary: String,
    /// Anything a program may want: numbers, thresholds, ids.
    #[serde(default)]
    pub details: serde_json::Value,
}

impl Condition {
    pub fn new(key: impl Into<String>, severity: Severity, summary: impl Into<String>) -> Self {
        Self { key: key.into(), severity, summary: summary.into(), details: serde_json::Value::Null }
    }

    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = details;
        self
    }

    /// A job's outcome, keyed `job:<kind>`: report it on success too, so that an earlier failure resolves.
    pub fn job(kind: &str, outcome: Outcome, summary: impl Into<String>) -> Self {
        Self::new(format!("job:{kind}"), outcome.into(), summary)
    }
}

/// What changed, for one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertKind {
    /// OK (or never seen) -> WARNING or CRITICAL.
    Triggered,
    /// WARNING <-> CRITICAL.
    Changed,
    /// Still bad, re-sent after `repeat_after`.
    Repeated,
    /// Back to OK.
    Resolved,
}

impl std::fmt::Display for AlertKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            AlertKind::Triggered => "triggered",
            AlertKind::Changed => "changed",
            AlertKind::Repeated => "repeated",
            AlertKind::Resolved => "resolved",
        })
    }
}

/// One alert: a state change of one key (or a repeat of a bad state), as recorded and sent.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Time-ordered and unique: the history object's name.
    pub id: String,
    pub key: String,
    pub kind: AlertKind,
    /// The state now (OK for a resolution) and the state recorded before.
    pub severity: Severity,
    pub previous: Severity,
    pub summary: String,
    #[serde(default)]
    pub details: serde_json::Value,
    pub at: DateTime<Utc>,
    /// When the key last turned bad (for a resolution: the start of the state that ended).
    pub incident_start: DateTime<Utc>,
    /// The event's number among its key's events (1, 2, ...).
    pub seq: u64,
    /// How the webhook took it (none without a webhook).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub webhook: Option<Delivery>,
}

impl AlertEvent {
    /// The log line, with the phrases to grep for: `ALERT <SEVERITY> <key>: ...` or `RESOLVED <key>: ...`.
    pub fn line(&self) -> String {
        match self.kind {
            AlertKind::Resolved => format!(
                "RESOLVED {}: {} (was {} since {})",
                self.key,
                self.summary,
                self.previous,
                stamp(self.incident_start)
            ),
            AlertKind::Triggered => format!("ALERT {} {}: {}", self.severity, self.key, self.summary),
            AlertKind::Changed => {
                format!("ALERT {} {}: {} (was {})", self.severity, self.key, self.summary, self.previous)
            }
            AlertKind::Repeated => format!(
                "ALERT {} {}: {} (still, since {})",
                self.severity,
                self.key,
                self.summary,
                stamp(self.incident_start)
            ),
        }
    }
}

fn stamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}

/// `[alerts]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AlertSettings {
    /// An unchanged bad state is sent again after this long (e.g. 6h, 30m).
    #[serde(with = "crate::duration")]
    pub repeat_after: Duration,
    /// A layer whose latest session is more than this many sessions behind the last completed one is
    /// a warning, more than `lag_critical_sessions` critical.
    pub lag_warning_sessions: i64,
    pub lag_critical_sessions: i64,
    /// Where alerts are POSTed as JSON (none: the log only). May hold a token: never logged.
    pub webhook_url: Option<Secret>,
    /// A header sent with every POST, its value read from the environment variable
    /// `webhook_header_env` (e.g. `Authorization` = `Bearer ...`); none when that is unset.
    pub webhook_header: String,
    pub webhook_header_env: Option<String>,
    /// One POST's timeout, connect to last byte.
    #[serde(with = "crate::duration")]
    pub webhook_timeout: Duration,
    /// Retries of a POST that failed (connection, timeout, 408, 429, 5xx), with exponential backoff
    /// from `webhook_retry_min_delay` up to `webhook_retry_max_delay`.
    pub webhook_max_retries: usize,
    #[serde(with = "crate::duration")]
    pub webhook_retry_min_delay: Duration,
    #[serde(with = "crate::duration")]
    pub webhook_retry_max_delay: Duration,
}

impl Default for AlertSettings {
    fn default() -> Self {
        Self {
            repeat_after: Duration::from_secs(6 * 3600),
            lag_warning_sessions: 2,
            lag_critical_sessions: 5,
            webhook_url: None,
            webhook_header: "Authorization".into(),
            webhook_header_env: None,
            webhook_timeout: Duration::from_secs(10),
            webhook_max_retries: 3,
            webhook_retry_min_delay: Duration::from_secs(1),
            webhook_retry_max_delay: Duration::from_secs(30),
        }
    }
}

impl AlertSettings {
    fn check(&self) -> Result<()> {
        if self.lag_warning_sessions < 0 || self.lag_critical_sessions < self.lag_warning_sessions {
            return Err(Error::Config(format!(
                "alerts: need 0 <= lag_warning_sessions ({}) <= lag_critical_sessions ({})",
                self.lag_warning_sessions, self.lag_critical_sessions
            )));
        }
        Ok(())
    }
}

/// Observes `conditions` now: records each state change under `_alerts/` and sends its alert to the
/// sinks; returns the alerts emitted, in the order of `conditions`. See the module docs.
pub async fn observe(lake: &Lake, settings: &AlertSettings, conditions: &[Condition]) -> Result<Vec<AlertEvent>> {
    observe_at(lake, settings, conditions, Utc::now()).await
}

/// [`observe`] at a given time (tests drive the clock through it).
pub(crate) async fn observe_at(
    lake: &Lake,
    settings: &AlertSettings,
    conditions: &[Condition],
    now: DateTime<Utc>,
) -> Result<Vec<AlertEvent>> {
    settings.check()?;
    let repeat_after = chrono::Duration::from_std(settings.repeat_after)
        .map_err(|e| Error::Config(format!("alerts.repeat_after: {e}")))?;
    // Built first: a misconfigured webhook fails before any state is recorded.
    let webhook = webhook::Webhook::from_settings(settings)?;
    let mut seen = std::collections::BTreeSet::new();
    for c in conditions {
        store::validate_key(&c.key)?;
        if !seen.insert(c.key.as_str()) {
            return Err(Error::invalid(format!("alert key '{}' is observed twice in one call", c.key)));
        }
    }
    let store = store::AlertStore::new(lake.store());
    let recorded = futures::future::try_join_all(conditions.iter().map(|c| store.record(c, now, repeat_after))).await?;
    let mut events: Vec<AlertEvent> = recorded.into_iter().flatten().collect();
    for e in &events {
        log::emit(e);
    }
    if let Some(hook) = &webhook {
        for e in &mut events {
            e.webhook = Some(hook.send(e).await);
            // The history entry is this process's own object: it now says how delivery went.
            store.update_history(e).await?;
        }
    }
    Ok(events)
}

/// The event a newly observed `severity` causes after `last` (the key's last event), if any.
pub(crate) fn transition(
    last: Option<&AlertEvent>,
    severity: Severity,
    now: DateTime<Utc>,
    repeat_after: chrono::Duration,
) -> Option<AlertKind> {
    match (last.filter(|e| e.severity != Severity::Ok), severity) {
        (None, Severity::Ok) => None,
        (None, _) => Some(AlertKind::Triggered),
        (Some(_), Severity::Ok) => Some(AlertKind::Resolved),
        (Some(e), s) if s != e.severity => Some(AlertKind::Changed),
        (Some(e), _) if now - e.at >= repeat_after => Some(AlertKind::Repeated),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(hours: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000, 0).unwrap() + chrono::Duration::hours(hours)
    }

    fn condition(key: &str, severity: Severity) -> Condition {
        Condition::new(key, severity, format!("{key} is {severity}"))
    }

    async fn lake() -> (tempfile::TempDir, Lake) {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::init(&dir.path().join("lake").display().to_string(), Default::default()).await.unwrap();
        (dir, lake)
    }

    #[test]
    fn transitions_follow_the_table() {
        let six = chrono::Duration::hours(6);
        let event = |severity, hours| AlertEvent {
            id: String::new(),
            key: "k".into(),
            kind: AlertKind::Triggered,
            severity,
            previous: Severity::Ok,
            summary: String::new(),
            details: serde_json::Value::Null,
            at: at(hours),
            incident_start: at(hours),
            seq: 1,
            webhook: None,
        };
        let warning = event(Severity::Warning, 0);
        let resolved = event(Severity::Ok, 0);
        assert_eq!(transition(None, Severity::Ok, at(0), six), None);
        assert_eq!(transition(None, Severity::Critical, at(0), six), Some(AlertKind::Triggered));
        assert_eq!(transition(Some(&resolved), Severity::Ok, at(9), six), None);
        assert_eq!(transition(Some(&resolved), Severity::Warning, at(1), six), Some(AlertKind::Triggered));
        assert_eq!(transition(Some(&warning), Severity::Warning, at(5), six), None, "throttled");
        assert_eq!(transition(Some(&warning), Severity::Warning, at(6), six), Some(AlertKind::Repeated));
        assert_eq!(transition(Some(&warning), Severity::Critical, at(1), six), Some(AlertKind::Changed));
        assert_eq!(transition(Some(&warning), Severity::Ok, at(1), six), Some(AlertKind::Resolved));
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn one_alert_per_state_change_and_repeats_throttled() {
        let (_dir, lake) = lake().await;
        let settings = AlertSettings::default();
        let see = |c: Condition, hours| {
            let (lake, settings) = (lake.clone(), settings.clone());
            async move { observe_at(&lake, &settings, &[c], at(hours)).await.unwrap() }
        };
        let kinds = |events: &[AlertEvent]| events.iter().map(|e| (e.kind, e.severity, e.previous)).collect::<Vec<_>>();
        assert!(see(condition("lag:curated", Severity::Ok), 0).await.is_empty(), "OK and never seen: nothing");
        let first = see(condition("lag:curated", Severity::Warning), 1).await;
        assert_eq!(kinds(&first), [(AlertKind::Triggered, Severity::Warning, Severity::Ok)]);
        assert!(first[0].line().starts_with("ALERT WARNING lag:curated: "), "{}", first[0].line());
        assert!(see(condition("lag:curated", Severity::Warning), 2).await.is_empty(), "unchanged: throttled");
        let repeat = see(condition("lag:curated", Severity::Warning), 7).await;
        assert_eq!(kinds(&repeat), [(AlertKind::Repeated, Severity::Warning, Severity::Warning)]);
        assert_eq!(repeat[0].incident_start, at(1), "the incident started with the first alert");
        assert!(see(condition("lag:curated", Severity::Warning), 8).await.is_empty(), "throttled from the repeat on");
        let worse = see(condition("lag:curated", Severity::Critical), 9).await;
        assert_eq!(kinds(&worse), [(AlertKind::Changed, Severity::Critical, Severity::Warning)]);
        let resolved = see(condition("lag:curated", Severity::Ok), 10).await;
        assert_eq!(kinds(&resolved), [(AlertKind::Resolved, Severity::Ok, Severity::Critical)]);
        assert!(resolved[0].line().starts_with("RESOLVED lag:curated: "), "{}", resolved[0].line());
        assert!(see(condition("lag:curated", Severity::Ok), 11).await.is_empty());

        let history = list_alerts(&lake, 100).await.unwrap();
        let seqs: Vec<(AlertKind, u64)> = history.iter().map(|e| (e.kind, e.seq)).collect();
        assert_eq!(
            seqs,
            [(AlertKind::Resolved, 4), (AlertKind::Changed, 3), (AlertKind::Repeated, 2), (AlertKind::Triggered, 1)],
            "newest first"
        );
        assert_eq!(list_alerts(&lake, 1).await.unwrap().len(), 1);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_observers_alert_once_and_lose_no_history() {
        let (_dir, lake) = lake().await;
        let settings = AlertSettings::default();
        // Eight processes' worth of observers see the same change at once, and each its own key too.
        let runs = (0..8).map(|i| {
            let (lake, settings) = (lake.clone(), settings.clone());
            async move {
                let conditions = [
                    condition("job:daily_run", Severity::Critical),
                    condition(&format!("job:worker_{i}"), Severity::Warning),
                ];
                observe_at(&lake, &settings, &conditions, at(0)).await
            }
        });
        let emitted: Vec<AlertEvent> =
            futures::future::try_join_all(runs).await.unwrap().into_iter().flatten().collect();
        let shared = emitted.iter().filter(|e| e.key == "job:daily_run").count();
        assert_eq!(shared, 1, "exactly one observer records and sends the shared change");
        assert_eq!(emitted.len(), 9);
        let mut history: Vec<String> = list_alerts(&lake, 100).await.unwrap().into_iter().map(|e| e.key).collect();
        history.sort();
        assert_eq!(history.len(), 9, "{history:?}");
        assert_eq!(history.iter().filter(|k| k.starts_with("job:worker_")).count(), 8);
    }

    #[tokio::test]
    async fn bad_keys_and_settings_are_refused() {
        let (_dir, lake) = lake().await;
        let settings = AlertSettings::default();
        for key in ["", "a/b", "../x", "lag curated", ".hidden"] {
            let err = observe_at(&lake, &settings, &[condition(key, Severity::Warning)], at(0)).await.unwrap_err();
            assert!(err.to_string().contains("alert key"), "{key:?}: {err}");
        }
        let twice = [condition("lag:raw", Severity::Ok), condition("lag:raw", Severity::Warning)];
        assert!(observe_at(&lake, &settings, &twice, at(0)).await.is_err());
        let bad = AlertSettings { lag_warning_sessions: 5, lag_critical_sessions: 2, ..AlertSettings::default() };
        assert!(observe_at(&lake, &bad, &[], at(0)).await.is_err());
        assert!(list_alerts(&lake, 10).await.unwrap().is_empty(), "nothing was recorded");
    }
}
