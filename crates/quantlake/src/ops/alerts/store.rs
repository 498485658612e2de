//! Alert state and history as objects under `_alerts/` in the lake, written with the store's put,
//! put-if-absent, get and list, so they behave alike on local disk and S3:
//!
//! ```text
//! _alerts/keys/<key>/<seq>.json        each key's events, numbered from 1; the newest is the key's state
//! _alerts/history/<time>-<uuid>.json   every event once, named so that names sort by time
//! ```
//!
//! Recording an event is a put-if-absent of the key's next number: of several processes that saw the
//! same change, one creates it and alerts; the others read its event and judge again (now: nothing
//! changed). History objects have unique names, so concurrent writers never replace each other's.
//! A process that dies between the two writes leaves the state recorded and the history short of that
//! one event.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;

use super::{AlertEvent, AlertKind, Condition, Severity, transition};
use crate::error::{Error, Result};
use crate::storage::LakeStore;

const KEYS: &str = "_alerts/keys";
const HISTORY: &str = "_alerts/history";
/// Rounds of read-judge-create for one key before giving up: each lost round means another process
/// recorded an event for the key in between.
const RECORD_ATTEMPTS: usize = 8;

/// Alert keys name objects: letters, digits and `_ - . :`, not starting with a dot.
pub(crate) fn validate_key(key: &str) -> Result<()> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || "_-.:".contains(c);
    if key.is_empty() || key.len() > 200 || key.starts_with('.') || !key.chars().all(ok_char) {
        return Err(Error::InvalidName {
            kind: "alert key",
            value: key.to_string(),
            reason: "use 1-200 letters, digits and _ - . : (e.g. job:daily_run), not starting with a dot",
        });
    }
    Ok(())
}

pub(crate) struct AlertStore<'a> {
    store: &'a LakeStore,
}

impl<'a> AlertStore<'a> {
    pub(crate) fn new(store: &'a LakeStore) -> Self {
        Self { store }
    }

    /// Records the event `condition` causes now, if any (see [`transition`]), and returns it.
    pub(crate) async fn record(
        &self,
        condition: &Condition,
        now: DateTime<Utc>,
        repeat_after: chrono::Duration,
    ) -> Result<Option<AlertEvent>> {
        for _ in 0..RECORD_ATTEMPTS {
            let last = self.last_event(&condition.key).await?;
            let Some(kind) = transition(last.as_ref(), condition.severity, now, repeat_after) else { return Ok(None) };
            let previous = last.as_ref().map_or(Severity::Ok, |e| e.severity);
            let incident_start = match (kind, &last) {
                (AlertKind::Triggered, _) | (_, None) => now,
                (_, Some(e)) => e.incident_start,
            };
            let event = AlertEvent {
                id: format!("{}-{}", now.format("%Y%m%dT%H%M%S%.6fZ"), uuid::Uuid::now_v7().simple()),
                key: condition.key.clone(),
                kind,
                severity: condition.severity,
                previous,
                summary: condition.summary.clone(),
                details: condition.details.clone(),
                at: now,
                incident_start,
                seq: last.as_ref().map_or(1, |e| e.seq + 1),
                webhook: None,
            };
            if self.store.put_if_absent(&key_path(&event.key, event.seq), to_json(&event)?).await?.is_some() {
                self.update_history(&event).await?;
                return Ok(Some(event));
            }
        }
        Err(Error::invalid(format!(
            "alert key '{}': {RECORD_ATTEMPTS} attempts to record its state lost to other processes",
            condition.key
        )))
    }

    /// Writes (or rewrites) the event's own history object.
    pub(crate) async fn update_history(&self, event: &AlertEvent) -> Result<()> {
        self.store.put(&Path::from(format!("{HISTORY}/{}.json", event.id)), to_json(event)?).await?;
        Ok(())
    }

    /// The newest event recorded for `key`.
    async fn last_event(&self, key: &str) -> Result<Option<AlertEvent>> {
        let listing = self.store.list(&Path::from(format!("{KEYS}/{key}"))).await?;
        let Some(newest) = listing
            .iter()
            .filter_map(|m| Some((seq_of(m.location.filename()?)?, &m.location)))
            .max_by_key(|(seq, _)| *seq)
        else {
            return Ok(None);
        };
        let bytes = self
            .store
            .get(newest.1)
            .await?
            .ok_or_else(|| Error::invalid(format!("alert state {} vanished while read", newest.1)))?;
        Ok(Some(serde_json::from_slice(&bytes)?))
    }
}

/// The alert history, newest first, at most `limit` events.
pub async fn list_alerts(lake: &crate::table::Lake, limit: usize) -> Result<Vec<AlertEvent>> {
    let store = lake.store();
    let mut paths: Vec<Path> = store
        .list(&Path::from(HISTORY))
        .await?
        .into_iter()
        .map(|m| m.location)
        .filter(|p| p.extension() == Some("json"))
        .collect();
    // Names start with the event's time (then a v7 uuid): name order is time order.
    paths.sort_by(|a, b| b.as_ref().cmp(a.as_ref()));
    paths.truncate(limit);
    let read = paths.iter().map(|p| async move { store.get(p).await });
    let mut events = Vec::new();
    for bytes in futures::future::try_join_all(read).await?.into_iter().flatten() {
        events.push(serde_json::from_slice(&bytes)?);
    }
    Ok(events)
}

fn key_path(key: &str, seq: u64) -> Path {
    // Zero-padded, so a listing reads in order too.
    Path::from(format!("{KEYS}/{key}/{seq:020}.json"))
}

fn seq_of(filename: &str) -> Option<u64> {
    filename.strip_suffix(".json")?.parse().ok()
}

fn to_json(event: &AlertEvent) -> Result<Bytes> {
    Ok(Bytes::from(serde_json::to_vec_pretty(event)?))
}
