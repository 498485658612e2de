//! Job records and the daily run, for people (tables) and programs (`--json`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::{Output, table};
use quantlake::ops::jobs::{JobRecord, JobStatus};
use quantlake::ops::tasks::backfill::{BackfillPlan, BackfillStatus};
use quantlake::ops::tasks::daily_run::{HealthLine, RunReport};
use quantlake::quality::Status;

fn seconds(s: Option<f64>) -> String {
    match s {
        Some(s) if s >= 3600.0 => format!("{:.1}h", s / 3600.0),
        Some(s) if s >= 60.0 => format!("{:.1}m", s / 60.0),
        Some(s) => format!("{s:.1}s"),
        None => "-".into(),
    }
}

fn progress(r: &JobRecord) -> String {
    match &r.progress {
        Some(p) if !r.status.is_finished() => format!("{} {}/{}", p.stage, p.done, p.total),
        _ => String::new(),
    }
}

/// Per kind: how many jobs ended how, and their durations and lag.
#[derive(Debug, Serialize)]
pub struct KindSummary {
    pub kind: String,
    pub jobs: usize,
    pub by_status: BTreeMap<JobStatus, usize>,
    pub mean_seconds: Option<f64>,
    pub max_seconds: Option<f64>,
    pub mean_lag_seconds: Option<f64>,
    pub max_lag_seconds: Option<f64>,
}

fn summarize(records: &[JobRecord]) -> Vec<KindSummary> {
    let mut by_kind: BTreeMap<&str, Vec<&JobRecord>> = BTreeMap::new();
    for r in records {
        by_kind.entry(&r.kind).or_default().push(r);
    }
    let stats = |v: Vec<f64>| {
        let n = v.len();
        let max = v.iter().copied().fold(None, |m: Option<f64>, x| Some(m.map_or(x, |m| m.max(x))));
        ((n > 0).then(|| v.iter().sum::<f64>() / n as f64), max)
    };
    by_kind
        .into_iter()
        .map(|(kind, rs)| {
            let mut by_status = BTreeMap::new();
            for r in &rs {
                *by_status.entry(r.status).or_insert(0) += 1;
            }
            let (mean_seconds, max_seconds) =
                stats(rs.iter().filter(|r| r.status.is_finished()).filter_map(|r| r.duration_seconds).collect());
            let (mean_lag_seconds, max_lag_seconds) = stats(rs.iter().filter_map(|r| r.lag_seconds).collect());
            KindSummary {
                kind: kind.to_string(),
                jobs: rs.len(),
                by_status,
                mean_seconds,
                max_seconds,
                mean_lag_seconds,
                max_lag_seconds,
            }
        })
        .collect()
}

/// Each dataset's verdict with its severity and, when not GREEN, why: one line per problem.
fn health_lines(health: &[HealthLine], indent: &str) -> String {
    let mut text = String::new();
    for h in health {
        let severity = h.severity.as_deref().map(|s| format!(" ({s})")).unwrap_or_default();
        text.push_str(&format!("\n{indent}health {}: {}{severity}", h.dataset, h.status));
        for p in &h.problems {
            text.push_str(&format!("\n{indent}  {p}"));
        }
    }
    text
}

impl Output {
    pub fn run(&self, r: &RunReport) {
        self.print(r, || {
            if let Some(why) = &r.skipped {
                return format!("{why} (job {})", r.job_id);
            }
            let mut t = table(&["stage", "status", "rows in", "rows out", "time", "snapshots", "job", "note"]);
            for s in &r.stages {
                let snapshots: Vec<String> = s.snapshots.iter().map(|(d, id)| format!("{d}@{id}")).collect();
                t.add_row(vec![
                    s.stage.clone(),
                    s.status.to_string(),
                    s.rows_in.to_string(),
                    s.rows_out.to_string(),
                    seconds(Some(s.seconds)),
                    snapshots.join(" "),
                    s.job_id.clone().unwrap_or_default(),
                    s.error.clone().unwrap_or_default(),
                ]);
            }
            let judged: Vec<String> = r
                .health
                .iter()
                .filter(|h| h.status != Status::Green)
                .map(|h| format!("{} {}", h.dataset, h.status))
                .collect();
            let health = if judged.is_empty() {
                r.health_status.to_string()
            } else {
                format!("{} ({})", r.health_status, judged.join(", "))
            };
            let text = format!(
                "daily run {} for {}: stages {} in {:.1}s (lag {}); health {health}; exit {}\n{t}",
                r.job_id,
                r.date,
                r.status,
                r.seconds,
                seconds(r.lag_seconds),
                r.outcome.exit_code()
            );
            text + &health_lines(&r.health, "")
        });
    }

    pub fn jobs(&self, records: &[JobRecord]) {
        self.print(records, || {
            let mut t = table(&[
                "job", "kind", "status", "created", "duration", "lag", "rows in", "rows out", "progress", "error",
            ]);
            for r in records {
                t.add_row(vec![
                    r.id.clone(),
                    r.kind.clone(),
                    r.status.to_string(),
                    r.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    seconds(r.duration_seconds),
                    seconds(r.lag_seconds),
                    r.rows_in.to_string(),
                    r.rows_out.to_string(),
                    progress(r),
                    r.error.as_deref().map(|e| e.chars().take(80).collect()).unwrap_or_default(),
                ]);
            }
            format!("{t}\n{} job(s)", records.len())
        });
    }

    pub fn jobs_summary(&self, records: &[JobRecord]) {
        let summary = summarize(records);
        self.print(&summary, || {
            let mut t = table(&[
                "kind",
                "jobs",
                "succeeded",
                "partial",
                "failed",
                "other",
                "mean time",
                "max time",
                "mean lag",
                "max lag",
            ]);
            for k in &summary {
                let count = |s: JobStatus| k.by_status.get(&s).copied().unwrap_or(0);
                let named = count(JobStatus::Succeeded) + count(JobStatus::Partial) + count(JobStatus::Failed);
                t.add_row(vec![
                    k.kind.clone(),
                    k.jobs.to_string(),
                    count(JobStatus::Succeeded).to_string(),
                    count(JobStatus::Partial).to_string(),
                    count(JobStatus::Failed).to_string(),
                    (k.jobs - named).to_string(),
                    seconds(k.mean_seconds),
                    seconds(k.max_seconds),
                    seconds(k.mean_lag_seconds),
                    seconds(k.max_lag_seconds),
                ]);
            }
            t.to_string()
        });
    }

    pub fn job(&self, r: &JobRecord, children: &[JobRecord], logs: &[(u32, String)]) {
        #[derive(Serialize)]
        struct Shown<'a> {
            #[serde(flatten)]
            record: &'a JobRecord,
            children: &'a [JobRecord],
            log: BTreeMap<u32, &'a str>,
        }
        let shown = Shown { record: r, children, log: logs.iter().map(|(a, l)| (*a, l.as_str())).collect() };
        self.print(&shown, || {
            let mut text = format!(
                "job {} ({}): {}\n  created {}  started {}  ended {}\n  duration {}  lag {}  attempts {}  worker {}\n  rows in {}  rows out {}",
                r.id,
                r.kind,
                r.status,
                r.created_at.to_rfc3339(),
                r.started_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                r.ended_at.map(|t| t.to_rfc3339()).unwrap_or_else(|| "-".into()),
                seconds(r.duration_seconds),
                seconds(r.lag_seconds),
                r.attempts,
                r.worker.as_deref().unwrap_or("-"),
                r.rows_in,
                r.rows_out,
            );
            if let Some(p) = &r.progress {
                text.push_str(&format!("\n  progress {} {}/{}{} (eta {})", p.stage, p.done, p.total, p.message.as_deref().map(|m| format!(" {m}")).unwrap_or_default(), seconds(r.eta_seconds)));
            }
            if !r.snapshots.is_empty() {
                let s: Vec<String> = r.snapshots.iter().map(|(d, id)| format!("{d}@{id}")).collect();
                text.push_str(&format!("\n  snapshots {}", s.join(" ")));
            }
            if let Some(peak) = r.peak_rss_bytes {
                text.push_str(&format!("\n  peak memory {}", super::bytes(peak)));
            }
            text.push_str(&format!("\n  params {}", r.params));
            if let Some(e) = &r.error {
                text.push_str(&format!("\n  error {e}"));
            }
            if !children.is_empty() {
                let mut t = table(&["job", "kind", "status", "duration", "rows out", "error"]);
                for c in children {
                    t.add_row(vec![c.id.clone(), c.kind.clone(), c.status.to_string(), seconds(c.duration_seconds), c.rows_out.to_string(), c.error.clone().unwrap_or_default()]);
                }
                text.push_str(&format!("\n{t}"));
            }
            for (attempt, log) in logs {
                text.push_str(&format!("\n--- log, attempt {attempt} ---\n{}", log.trim_end()));
            }
            text
        });
    }

    pub fn schedule_ticks(&self, ticks: &[quantlake::ops::schedule::Tick]) {
        self.print(ticks, || {
            let mut lines = Vec::new();
            for t in ticks {
                for j in &t.queued {
                    lines.push(format!("queued {} {}", j.kind, j.id));
                }
                for e in &t.skipped {
                    lines.push(format!("skipped {} (paused)", e.id));
                }
                if let Some(next) = &t.next {
                    lines.push(format!("next: {} at {}", next.id, next.due.to_rfc3339()));
                }
            }
            if lines.is_empty() { "nothing due".into() } else { lines.join("\n") }
        });
    }

    pub fn backfill_plan(&self, p: &BackfillPlan) {
        self.print(p, || plan_text(p));
    }

    pub fn backfill_status(&self, s: &BackfillStatus) {
        self.print(s, || {
            let r = &s.job;
            let mut text = format!("backfill {}: {} ({} {}..{})", r.id, r.status, s.plan.dataset, s.plan.start, s.plan.end);
            if let Some(t) = r.not_before.filter(|_| r.status == JobStatus::Queued) {
                text.push_str(&format!("\n  queued: a worker starts it at or after {}", t.to_rfc3339()));
            }
            for step in &s.steps {
                text.push_str(&format!("\n  {:<9} {}/{} chunk(s)", step.step, step.done, step.total));
            }
            text.push_str(&format!("\n  elapsed {}  eta {}", seconds(r.duration_seconds), seconds(s.eta_seconds)));
            if let Some(e) = &r.error {
                text.push_str(&format!("\n  error: {e}"));
            }
            if let Some(result) = &s.result {
                text.push_str(&format!(
                    "\n  tag '{}' taken before writing (undo: quantlake snapshot restore --all {})\n  {} chunk(s) committed, {} resumed; rows ingested {}, curated {}, features {}",
                    result.tag, result.tag, result.chunks_committed, result.chunks_resumed, result.rows_ingested, result.rows_curated, result.feature_rows
                ));
                for f in &result.failed {
                    text.push_str(&format!("\n  failed: {}: {}", f.symbol, f.error));
                }
                text.push_str(&health_lines(&result.health, "  "));
                let i = &result.impact;
                if !i.partitions.is_empty() {
                    let mut t = table(&["dataset", "partition", "rows before", "rows after", "changed", "added", "removed"]);
                    for p in &i.partitions {
                        t.add_row(vec![p.dataset.clone(), p.partition.clone(), p.rows_before.to_string(), p.rows_after.to_string(), p.rows_changed.to_string(), p.rows_added.to_string(), p.rows_removed.to_string()]);
                    }
                    text.push_str(&format!("\nimpact:\n{t}"));
                } else {
                    text.push_str("\nimpact: no bar partition changed");
                }
                if let Some(c) = &i.largest_price_change {
                    text.push_str(&format!("\n  largest close change: {} {} {} -> {} ({:.2}%) in {}", c.symbol, c.ts.to_rfc3339(), c.before, c.after, c.relative * 100.0, c.dataset));
                }
                for (set, n) in &i.feature_partitions_refreshed {
                    text.push_str(&format!("\n  {set}: {n} partition(s) refreshed"));
                }
            }
            text
        });
    }
}

fn plan_text(p: &BackfillPlan) -> String {
    let symbols = p
        .symbols
        .as_ref()
        .map_or_else(|| "all symbols".to_string(), |s| format!("{} symbol(s): {}", s.len(), s.join(",")));
    let mut text = format!(
        "backfill plan: {} ({}), {}..{} ({} session(s)), {symbols}",
        p.dataset,
        p.layer,
        p.start,
        p.end,
        p.sessions.len()
    );
    let mut t = table(&["step", "writes", "chunks", "partitions"]);
    for s in &p.steps {
        t.add_row(vec![
            s.step.to_string(),
            s.datasets.join(", "),
            s.chunks.len().to_string(),
            s.partitions.to_string(),
        ]);
    }
    text.push_str(&format!("\n{t}"));
    if let Some(source) = &p.source {
        text.push_str(&format!(
            "\nre-ingest from {source}: {} symbol-session(s), ~{} request(s), ~{} under pacing",
            p.cells_to_fetch,
            p.source_requests,
            seconds(Some(p.estimated_fetch_seconds))
        ));
    }
    text.push_str(&format!("\nbytes to write: ~{}", super::bytes(p.bytes_to_write)));
    text.push_str(&format!("\ntag before writing: {}", p.tag.clone().unwrap_or_else(|| "pre-<job id>".into())));
    for a in &p.annotations {
        text.push_str(&format!("\nannotated: {a}"));
    }
    for w in &p.warnings {
        text.push_str(&format!("\nwarning: {w}"));
    }
    if let Some(by) = &p.tested_by {
        text.push_str(&format!("\nlarge backfill; a smaller window of this scope completed first (job {by})"));
    }
    if let Some(why) = &p.refused {
        text.push_str(&format!("\nREFUSED: {why}"));
    }
    text
}
