//! The log sink, always on: one `tracing` line per alert, with a stable phrase to grep for
//! (`grep "ALERT CRITICAL" logs/app.log`, `grep "RESOLVED" logs/app.log`). Critical alerts log at
//! ERROR, warnings and resolutions at WARN, so the default filter (`warn`) keeps every one of them.

use super::{AlertEvent, AlertKind, Severity};

/// Logs `event`'s line ([`AlertEvent::line`]).
pub fn emit(event: &AlertEvent) {
    let line = event.line();
    match (event.kind, event.severity) {
        (AlertKind::Resolved, _) | (_, Severity::Ok | Severity::Warning) => {
            tracing::warn!(key = %event.key, id = %event.id, "{line}")
        }
        (_, Severity::Critical) => tracing::error!(key = %event.key, id = %event.id, "{line}"),
    }
}
