//! A job's own log: the `tracing` events emitted while a job runs, kept so `quantlake jobs show ID`
//! can print them wherever the job ran (its worker may be another machine, and `logs/app.log` is local).
//!
//! A job runs inside a span named `job` with a `job_id` field ([`JobHandle::span`]); [`JobLogLayer`]
//! copies every event inside such a span into that job's buffer, and the job's handle stores the
//! buffer in the lake at each heartbeat and when it finishes. Only jobs this process
//! [`capture`]s are buffered, so a span of another library user costs nothing.
//!
//! [`JobHandle::span`]: super::JobHandle::span

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::{LazyLock, Mutex};

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;

/// At most this many lines are kept per job: the first half and the newest.
const MAX_LINES: usize = 4000;

/// The name of the span a job runs in.
pub const JOB_SPAN: &str = "job";

#[derive(Default)]
struct Buffer {
    lines: Vec<String>,
    dropped: usize,
}

static BUFFERS: LazyLock<Mutex<HashMap<String, Buffer>>> = LazyLock::new(Default::default);

fn buffers() -> std::sync::MutexGuard<'static, HashMap<String, Buffer>> {
    // A panic while holding the lock leaves only log lines behind: keep going with them.
    BUFFERS.lock().unwrap_or_else(|e| e.into_inner())
}

/// Starts buffering the events of job `id` (idempotent).
pub fn capture(id: &str) {
    buffers().entry(id.to_string()).or_default();
}

/// Stops buffering job `id`, returning what was buffered.
pub fn release(id: &str) -> Vec<String> {
    buffers().remove(id).map(render).unwrap_or_default()
}

/// The lines buffered so far for job `id`.
pub fn buffered(id: &str) -> Vec<String> {
    buffers().get(id).map(render_ref).unwrap_or_default()
}

/// Appends a line to job `id`'s log directly (for what the job runner reports itself).
pub fn push(id: &str, line: String) {
    if let Some(b) = buffers().get_mut(id) {
        add(b, line);
    }
}

fn add(b: &mut Buffer, line: String) {
    if b.lines.len() >= MAX_LINES {
        // Keep the start (what the job set out to do) and the most recent lines.
        b.lines.remove(MAX_LINES / 2);
        b.dropped += 1;
    }
    b.lines.push(line);
}

fn render(b: Buffer) -> Vec<String> {
    render_ref(&b)
}

fn render_ref(b: &Buffer) -> Vec<String> {
    let mut out = b.lines.clone();
    if b.dropped > 0 && out.len() > MAX_LINES / 2 {
        out.insert(MAX_LINES / 2, format!("... {} line(s) left out ...", b.dropped));
    }
    out
}

/// The job id a `job` span carries, kept in the span's extensions.
struct JobId(String);

/// The `tracing` layer that fills job logs; the command line installs it, a library user may too.
pub struct JobLogLayer;

impl<S> Layer<S> for JobLogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        if attrs.metadata().name() != JOB_SPAN {
            return;
        }
        let mut visitor = FieldText::default();
        attrs.record(&mut visitor);
        if let (Some(job_id), Some(span)) = (visitor.job_id, ctx.span(id)) {
            span.extensions_mut().insert(JobId(job_id));
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let Some(scope) = ctx.event_scope(event) else { return };
        let Some(job_id) = scope.from_root().find_map(|span| span.extensions().get::<JobId>().map(|j| j.0.clone()))
        else {
            return;
        };
        let mut buffers = buffers();
        let Some(buffer) = buffers.get_mut(&job_id) else { return };
        let mut visitor = FieldText::default();
        event.record(&mut visitor);
        let meta = event.metadata();
        let line = format!(
            "{} {:>5} {}: {}{}",
            chrono::Utc::now().format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            meta.level(),
            meta.target(),
            visitor.message,
            visitor.fields
        );
        add(buffer, line);
    }
}

/// An event's message and its other fields as ` key=value` pairs.
#[derive(Default)]
struct FieldText {
    message: String,
    fields: String,
    job_id: Option<String>,
}

impl Visit for FieldText {
    fn record_str(&mut self, field: &Field, value: &str) {
        match field.name() {
            "message" => self.message.push_str(value),
            "job_id" => self.job_id = Some(value.to_string()),
            name => {
                let _ = write!(self.fields, " {name}={value}");
            }
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => {
                let _ = write!(self.message, "{value:?}");
            }
            "job_id" => self.job_id = Some(format!("{value:?}").trim_matches('"').to_string()),
            name => {
                let _ = write!(self.fields, " {name}={value:?}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::layer::SubscriberExt;

    #[test]
    fn events_inside_a_job_span_reach_its_log_only() {
        let subscriber = tracing_subscriber::registry().with(JobLogLayer);
        tracing::subscriber::with_default(subscriber, || {
            capture("j1");
            let span = tracing::info_span!("job", job_id = "j1");
            tracing::info!("outside");
            span.in_scope(|| {
                tracing::info!(rows = 5, "inside {}", "the job");
                tracing::info_span!("stage").in_scope(|| tracing::warn!("nested"));
            });
            tracing::info_span!("job", job_id = "not-captured").in_scope(|| tracing::info!("other"));
            let lines = release("j1");
            assert_eq!(lines.len(), 2, "{lines:?}");
            assert!(lines[0].ends_with("inside the job rows=5"), "{}", lines[0]);
            assert!(lines[1].contains("WARN") && lines[1].ends_with("nested"), "{}", lines[1]);
            assert!(buffered("not-captured").is_empty());
        });
    }

    #[test]
    fn a_long_log_keeps_its_start_and_its_end() {
        capture("j2");
        for i in 0..MAX_LINES + 10 {
            push("j2", format!("line {i}"));
        }
        let lines = release("j2");
        assert_eq!(lines.len(), MAX_LINES + 1);
        assert_eq!(lines[0], "line 0");
        assert_eq!(lines[MAX_LINES / 2], "... 10 line(s) left out ...");
        assert_eq!(lines.last().map(String::as_str), Some(format!("line {}", MAX_LINES + 9).as_str()));
    }
}
