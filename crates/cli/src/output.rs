//! Printing reports: a table for people, JSON (`--json`) for programs. Errors go to stderr either way.

use arrow::array::RecordBatch;
use comfy_table::{Table, presets::UTF8_BORDERS_ONLY};
use serde::Serialize;

use crate::bench::PeerJobReport;
use crate::demo::DemoReport;
use chrono::NaiveDate;
use quantlake::adv::AdvReport;
use quantlake::calendar::Session;
use quantlake::curate::CurateReport;
use quantlake::dq::{Annotation, DatasetHealth, QualitySummary, TargetCoverage, ValidationReport};
use quantlake::error::{Error, Result};
use quantlake::features::FeaturesReport;
use quantlake::ingest::{FileIngestReport, IngestReport};
use quantlake::maintenance::DeltaTable;
use quantlake::models::eval::Metrics;
use quantlake::models::registry::SessionRange;
use quantlake::models::{ModelEntry, ScoreReport, TrainReport};
use quantlake::ops::alerts::{AlertCheckReport, AlertEvent};
use quantlake::ops::breadth::BreadthReport;
use quantlake::ops::jobs::{Finish, StageCounts};
use quantlake::ops::tasks::backfill::BackfillReport;
use quantlake::quality::Status;
use quantlake::reference::corporate_actions::{CorporateAction, ImportReport};
use quantlake::reference::fundamentals::UpsertReport;
use quantlake::reference::securities::{
    ImportReport as SecuritiesImport, Member as SecMember, SecurityView, TickerInterval,
};
use quantlake::sets::Lineage;
use quantlake::symbol::Symbol;
use quantlake::table::delta::DeltaReport;
use quantlake::table::lake_log::{LakeCommit, StageOutcome};
use quantlake::table::manifest::{PartitionEntry, TableState};
use quantlake::table::operations::compact::CompactReport;
use quantlake::table::operations::history::{DiffReport, SnapshotInfo};
use quantlake::table::operations::vacuum::VacuumReport;
use quantlake::table::operations::verify::VerifyReport;
use quantlake::table::{DatasetSummary, LakeTag, RecoveryReport, StageResult, Tag};
use quantlake::universe::{Breadth, Member, RebuildReport};

use super::args::Format;
use super::rows_file::{RowsFile, RowsFormat};

mod jobs;

/// The target of the log file's command, exit and warning lines, which stderr leaves out by default
/// (the command prints them itself).
pub const COMMAND_TARGET: &str = "quantlake::command";

pub struct Output {
    pub json: bool,
    /// While a stage command runs as a job record: the reports it printed and what they count.
    recording: std::sync::Mutex<Option<(Vec<serde_json::Value>, Finish)>>,
}

/// Every table's style; on a terminal, columns wrap to its width.
fn table(header: &[&str]) -> Table {
    let mut t = Table::new();
    t.load_style(UTF8_BORDERS_ONLY)
        .set_content_arrangement(comfy_table::ContentArrangement::Dynamic)
        .set_header(header.to_vec());
    t
}

/// Rows (a query's, bars) as a [`table`]: the same style as every other report. On a terminal
/// (`fit`), the columns that do not fit its width are left out and named, rather than every value
/// wrapped into a sliver.
fn rows_table(batches: &[RecordBatch], fit: bool) -> Result<String> {
    let Some(schema) = batches.first().map(RecordBatch::schema) else { return Ok("(no rows)".into()) };
    let header: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
    let options = arrow::util::display::FormatOptions::default().with_null("");
    let mut cells: Vec<Vec<String>> = Vec::new();
    for b in batches {
        let columns = b
            .columns()
            .iter()
            .map(|c| arrow::util::display::ArrayFormatter::try_new(c.as_ref(), &options))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        cells.extend((0..b.num_rows()).map(|row| columns.iter().map(|c| c.value(row).to_string()).collect()));
    }
    let render = |n: usize| {
        let mut t = table(&header[..n]);
        t.set_content_arrangement(comfy_table::ContentArrangement::Disabled);
        for row in &cells {
            t.add_row(row[..n].to_vec());
        }
        t
    };
    let mut shown = header.len();
    let mut t = render(shown);
    let width = if fit { t.width().map(usize::from) } else { None };
    let too_wide = |t: &Table| width.is_some_and(|w| t.lines().next().is_some_and(|l| l.chars().count() > w));
    while shown > 1 && too_wide(&t) {
        shown -= 1;
        t = render(shown);
    }
    let mut text = format!("{t}\n{} row(s)", cells.len());
    if shown < header.len() {
        text += &format!(
            "; {} column(s) left out at this width: {} (--format csv or json has them all)",
            header.len() - shown,
            header[shown..].join(", ")
        );
    }
    Ok(text)
}

fn bytes(n: u64) -> String {
    match n {
        n if n >= 1 << 30 => format!("{:.1} GiB", n as f64 / (1u64 << 30) as f64),
        n if n >= 1 << 20 => format!("{:.1} MiB", n as f64 / (1u64 << 20) as f64),
        n if n >= 1 << 10 => format!("{:.1} KiB", n as f64 / 1024.0),
        n => format!("{n} B"),
    }
}

impl Output {
    pub fn new(json: bool) -> Self {
        Self { json, recording: std::sync::Mutex::new(None) }
    }

    /// Keeps the reports printed from now on, and what their stages count, for [`Self::recorded`].
    pub fn record(&self) {
        let counts = Finish::with_status(quantlake::ops::jobs::JobStatus::Succeeded);
        *self.recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Vec::new(), counts));
    }

    /// The reports printed since [`Self::record`] (the last one alone, or all of them as a list), and
    /// the rows and snapshots their stages count.
    pub fn recorded(&self) -> (serde_json::Value, Finish) {
        let recording = self.recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
        let (mut reports, counts) =
            recording.unwrap_or_else(|| (Vec::new(), Finish::with_status(quantlake::ops::jobs::JobStatus::Succeeded)));
        let report = match reports.len() {
            0 => serde_json::Value::Null,
            1 => reports.remove(0),
            _ => serde_json::Value::Array(reports),
        };
        (report, counts)
    }

    /// Counts a stage's report for the job record, while recording.
    fn count(&self, stage: &dyn StageCounts) {
        if let Some((_, counts)) = self.recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut() {
            counts.count(stage);
        }
    }

    fn print<T: Serialize + ?Sized>(&self, value: &T, human: impl FnOnce() -> String) {
        if let Some((reports, _)) = self.recording.lock().unwrap_or_else(std::sync::PoisonError::into_inner).as_mut()
            && let Ok(v) = serde_json::to_value(value)
        {
            reports.push(v);
        }
        if self.json {
            match serde_json::to_string_pretty(value) {
                Ok(s) => println!("{s}"),
                Err(e) => eprintln!("error: cannot encode the report as JSON: {e}"),
            }
        } else {
            println!("{}", human());
        }
    }

    pub fn message<T: Serialize + ?Sized>(&self, value: &T, text: &str) {
        self.print(value, || text.to_string());
    }

    /// A partial result's warning: to stderr (stdout keeps the rows or the JSON) and the log file.
    pub fn warning(&self, text: &str) {
        tracing::warn!(target: COMMAND_TARGET, "{text}");
        eprintln!("warning: {text}");
    }

    pub fn error(&self, e: &Error) {
        if self.json {
            println!("{}", serde_json::json!({ "error": e.to_string() }));
        }
        eprintln!("error: {e}");
    }

    pub fn ingest(&self, r: &IngestReport) {
        self.count(r);
        self.print(r, || {
            format!(
                "ingested {} rows ({} symbols x {} sessions; {} already done, {} without data) from {} into {} in {} commit(s) (snapshots {:?})\n\
                 {:.0} rows/s; wrote {} for {} of rows ({:.2} bytes written per byte ingested); job {}",
                r.rows,
                r.symbols,
                r.sessions,
                r.skipped,
                r.empty,
                r.source,
                r.dataset,
                r.chunks,
                r.snapshots,
                r.rows_per_second,
                bytes(r.bytes_written),
                bytes(r.bytes_ingested),
                r.bytes_written_per_byte_ingested,
                r.job_id
            ) + &r.asked_as.iter().map(|(s, t)| format!("\nasked for {s} as {t} (the security master's tickers)")).collect::<String>()
                + &r.failed.iter().map(|f| format!("\nfailed: {}: {} (its earlier rows are untouched; --resume retries it)", f.symbol, f.error)).collect::<String>()
        });
    }

    pub fn backfill(&self, r: &BackfillReport) {
        self.print(r, || {
            let mut s = format!(
                "backfilled {} {}..{} for {} symbol(s) from {} in {} step(s): {} rows, {} symbol-session(s) already done; \
                 coverage {:.1}% ({}) in {:.1}s; job {}",
                r.dataset,
                r.start,
                r.end,
                r.symbols,
                r.source,
                r.steps.len(),
                r.rows,
                r.skipped,
                r.coverage * 100.0,
                if r.coverage_met { "target met" } else { "below MIN_TARGET_COVERAGE" },
                r.seconds,
                r.job_id
            );
            for f in &r.failed {
                s += &format!("\nfailed: {}: {}", f.symbol, f.error);
            }
            s
        });
    }

    pub fn curate(&self, r: &CurateReport) {
        self.count(r);
        self.print(r, || {
            format!(
                "curated {}..{} ({} sessions) into {} snapshot {}: {} rows ({:.0} rows/s)\n\
                 raw rows {}, superseded by a preferred source {}, duplicates removed {}, invalid {} (in curation_rejects), \
                 filled {}, unfilled gaps {}, extended-hours {}, outliers {}\ninputs: {:?}; job {}",
                r.start, r.end, r.sessions, r.dataset, r.snapshot_id, r.rows, r.rows_per_second,
                r.raw_rows, r.superseded_rows, r.duplicates_removed, r.invalid_rows,
                r.filled_rows, r.unfilled_gaps, r.extended_hours_rows, r.outliers, r.inputs, r.job_id
            )
        });
    }

    pub fn features(&self, r: &FeaturesReport) {
        self.count(r);
        self.print(r, || {
            let mut t =
                table(&["set", "kind", "version", "inputs@snapshot", "partitions", "rows", "snapshot", "seconds"]);
            for s in &r.sets {
                let inputs: Vec<String> = s.inputs.iter().map(|(d, n)| format!("{d}@{n}")).collect();
                t.add_row([
                    s.set.clone(),
                    s.kind.into(),
                    s.version.to_string(),
                    inputs.join(", "),
                    s.partitions.to_string(),
                    s.rows.to_string(),
                    s.snapshot_id.to_string(),
                    format!("{:.2}", s.seconds),
                ]);
            }
            format!(
                "features {}..{} ({} sessions), stage {} (lake snapshot {}), {:.2} s; job {}\n{t}",
                r.start, r.end, r.sessions, r.stage_id, r.lake_seq, r.seconds, r.job_id
            )
        });
    }

    pub fn stale(&self, report: &quantlake::ops::stale::RefreshReport) {
        let (r, p) = (&report.features, &report.predictions);
        self.print(report, || {
            if r.stale.is_empty() && p.stale.is_empty() {
                return "nothing stale: every derived partition was computed from its inputs' current versions".into();
            }
            let mut t = table(&["dataset", "session", "changed inputs"]);
            for s in r.stale.iter().chain(&p.stale) {
                let shown: Vec<&str> = s.changed.iter().take(3).map(String::as_str).collect();
                t.add_row([
                    s.dataset.clone(),
                    s.date.to_string(),
                    format!("{}{}", shown.join(", "), if s.changed.len() > 3 { ", ..." } else { "" }),
                ]);
            }
            let mut runs: Vec<String> = r
                .runs
                .iter()
                .map(|x| {
                    format!(
                        "{} {}..{} (lake snapshot {})",
                        x.sets.iter().map(|s| s.set.as_str()).collect::<Vec<_>>().join(","),
                        x.start,
                        x.end,
                        x.lake_seq
                    )
                })
                .collect();
            runs.extend(p.runs.iter().map(|x| {
                format!("predictions of model {} {}..{} (snapshot {})", x.model_id, x.start, x.end, x.snapshot_id)
            }));
            format!("{t}\nrecomputed: {}", runs.join("; "))
        });
    }

    pub fn training_set(&self, l: &Lineage, path: &std::path::Path) {
        self.print(l, || {
            let fallback = l.fallback.as_ref().map_or(String::new(), |f| format!(" (fell back from {}: coverage {:.4} < {})", l.label_requested, f.coverage, f.threshold));
            let inputs: Vec<String> = l.inputs.iter().map(|(d, s)| format!("{d}@{s}")).collect();
            format!(
                "training set {}: {} rows -> {}\nfeatures {} v{}, target {}{fallback}\nrows left out: {} without target, {} purged (label ends after {}), {} without features, {} in unusable annotated cells ({} annotations)\ninputs: {}; leakage check passed (max feature lead {} us)",
                l.id, l.rows, path.display(), l.feature_set, l.feature_set_version, l.target,
                l.rows_without_target, l.rows_purged, l.label_cutoff, l.rows_without_features, l.rows_excluded_by_annotations, l.excluded.len(),
                inputs.join(", "), l.leakage_check.max_feature_lead_us.unwrap_or(0)
            )
        });
    }

    pub fn target_coverage(&self, r: &TargetCoverage) {
        self.print(r, || {
            let mut t = table(&["target", "rows", "covered", "coverage", "status"]);
            for c in &r.targets {
                t.add_row([
                    c.target.clone(),
                    c.rows.to_string(),
                    c.covered.to_string(),
                    format!("{:.2}%", c.coverage * 100.0),
                    if c.below_threshold { "below MIN_TARGET_COVERAGE".into() } else { "ok".to_string() },
                ]);
            }
            let mut days = table(&["session", "target", "rows", "coverage"]);
            for d in &r.days {
                days.add_row([
                    d.date.to_string(),
                    d.target.clone(),
                    d.rows.to_string(),
                    format!("{:.2}%", d.coverage * 100.0),
                ]);
            }
            format!(
                "Target coverage analysis: {} over {} sessions {}..{} (MIN_TARGET_COVERAGE {})\n{t}\n{days}",
                r.dataset, r.days_back, r.start, r.end, r.threshold
            )
        });
    }

    pub fn peer_job(&self, r: &PeerJobReport) {
        self.print(r, || r.line());
    }

    pub fn dq_summary(&self, s: &QualitySummary) {
        self.print(s, || {
            let mut t = table(&[
                "session",
                "symbols",
                "with bars",
                "expected",
                "present",
                "gaps",
                "filled",
                "invalid",
                "duplicates",
                "outliers",
                "coverage",
                "min symbol coverage",
                "annotations",
            ]);
            for row in s.sessions.iter().chain(s.total.iter()) {
                let (date, r) = (row.date, &row.totals);
                let notes = row.annotations.iter().map(Annotation::summary).collect::<Vec<_>>().join("\n");
                if !row.has_metrics {
                    let mut cells = vec![date.map_or("total".into(), |d| d.to_string()), "no metrics".into()];
                    cells.extend(std::iter::repeat_n(String::new(), 10));
                    cells.push(notes);
                    t.add_row(cells);
                    continue;
                }
                t.add_row([
                    date.map_or("total".into(), |d| d.to_string()),
                    r.symbols.to_string(),
                    format!("{:.1}%", r.symbols_covered() * 100.0),
                    r.expected_bars.to_string(),
                    r.present_bars.to_string(),
                    r.gap_count.to_string(),
                    r.filled_bars.to_string(),
                    r.invalid_rows.to_string(),
                    r.duplicates_removed.to_string(),
                    r.outlier_count.to_string(),
                    format!("{:.2}%", r.coverage * 100.0),
                    format!("{:.2}%", r.min_symbol_coverage * 100.0),
                    notes,
                ]);
            }
            let nulls: Vec<String> = s.null_rates.iter().map(|(c, r)| format!("{c} {:.2}%", r * 100.0)).collect();
            format!(
                "{} {}..{}: {} of {} sessions have metrics (dq_metrics snapshot {})\n{t}\nnull rates (snapshot {}): {}",
                s.dataset,
                s.start,
                s.end,
                s.sessions_with_data,
                s.sessions_expected,
                s.snapshot_id,
                s.dataset_snapshot_id,
                if nulls.is_empty() { "none".into() } else { nulls.join(", ") }
            )
        });
    }

    pub fn health(&self, h: &DatasetHealth) {
        self.print(h, || {
            let mut t = table(&["check", "status", "detail"]);
            for c in &h.checks {
                t.add_row([c.name.clone(), c.status.to_string(), c.detail.clone()]);
            }
            for p in &h.partitions {
                let bad = quantlake::quality::problems(&p.checks);
                let mut detail = if bad.is_empty() { "ok".to_string() } else { bad.join("; ") };
                for a in &p.annotations {
                    detail += &format!("\n{}", a.summary());
                }
                t.add_row([p.partition.clone(), p.status.to_string(), detail]);
            }
            format!("{}\n{t}", Self::health_summary(h))
        });
    }

    pub fn validate(&self, r: &ValidationReport) {
        self.print(r, || {
            let mut t = table(&["dataset", "check", "status", "detail"]);
            for c in &r.checks {
                t.add_row([c.dataset.clone(), c.check.clone(), c.status.to_string(), c.detail.clone()]);
            }
            let sessions = r.sessions.map(|(first, last)| format!(" (sessions {first}..{last})")).unwrap_or_default();
            format!("lake {}{}{sessions}\n{t}", r.status, if r.full { " (full)" } else { "" })
        });
    }

    /// One line: the verdict, for health-check.
    pub fn health_line(&self, h: &DatasetHealth) {
        self.print(h, || Self::health_summary(h));
    }

    fn health_summary(h: &DatasetHealth) -> String {
        format!(
            "{} {}{} as of {} (reference session {}, latest {})",
            h.dataset,
            h.status,
            h.severity.as_deref().map(|s| format!(" {s}")).unwrap_or_default(),
            h.as_of_date,
            h.reference_session,
            h.latest_session.map_or("none".into(), |d| d.to_string())
        )
    }

    /// `check breadth`: the guide's `Symbol breadth` line, its threshold phrases, the coverage rates.
    pub fn breadth(&self, r: &BreadthReport) {
        self.print(r, || {
            let on = r.latest_session.map_or("no session".into(), |d| d.to_string());
            let mut s = format!(
                "Symbol breadth: {} symbols with features in {} on {on} (critical below {}, warning below {}): {}",
                r.symbols, r.dataset, r.breadth_min_symbols, r.breadth_warn_symbols, r.breadth
            );
            match r.breadth {
                Status::Red => {
                    s += &format!("\nSymbol count {} below critical threshold {}", r.symbols, r.breadth_min_symbols)
                }
                Status::Yellow => {
                    s += &format!("\nSymbol count {} below warning threshold {}", r.symbols, r.breadth_warn_symbols)
                }
                Status::Green => {}
            }
            let mut t = table(&["partition", "coverage rate", "status"]);
            for c in &r.coverage {
                if c.status != Status::Green {
                    s += &format!(
                        "\nCoverage rate {} low in {}: {}",
                        c.rate.map_or("-".into(), |v| format!("{:.2}%", v * 100.0)),
                        c.partition,
                        c.detail
                    );
                }
                t.add_row([
                    c.partition.clone(),
                    c.rate.map_or("-".into(), |v| format!("{:.2}%", v * 100.0)),
                    c.status.to_string(),
                ]);
            }
            format!(
                "{s}\n{t}\n{} {} (snapshot {}, reference session {})",
                r.dataset, r.status, r.snapshot_id, r.reference_session
            )
        });
    }

    /// `alerts check`: every condition, then the alerts sent.
    pub fn alerts_check(&self, r: &AlertCheckReport) {
        self.print(r, || {
            let mut t = table(&["condition", "severity", "summary"]);
            for c in &r.conditions {
                t.add_row([c.key.clone(), c.severity.to_string(), c.summary.clone()]);
            }
            let sent = if r.alerts.is_empty() {
                "no alerts: no condition changed".to_string()
            } else {
                format!("{} alert(s):\n{}", r.alerts.len(), alert_table(&r.alerts))
            };
            format!("conditions as of {}: {}\n{t}\n{sent}", r.reference_session, r.severity)
        });
    }

    /// `alerts list`: the history, newest first.
    pub fn alerts(&self, events: &[AlertEvent]) {
        self.print(events, || format!("{}\n{} alert(s)", alert_table(events), events.len()));
    }

    /// Annotations, oldest first.
    pub fn annotations(&self, list: &[Annotation]) {
        self.print(list, || {
            let mut t = table(&[
                "id",
                "dataset",
                "symbols",
                "start (UTC)",
                "end (UTC)",
                "unusable",
                "reason",
                "created at (UTC)",
            ]);
            let time = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M:%S").to_string();
            for a in list {
                t.add_row(vec![
                    a.id.clone(),
                    a.dataset.clone(),
                    a.symbols_text(),
                    time(a.start),
                    time(a.end),
                    if a.unusable { "yes".into() } else { String::new() },
                    a.reason.clone(),
                    time(a.created_at),
                ]);
            }
            format!("{t}\n{} annotation(s)", list.len())
        });
    }

    pub fn fundamentals_upsert(&self, r: &UpsertReport) {
        self.count(r);
        self.print(r, || {
            let mut s = format!(
                "fundamentals from {} ({}): {} filing(s) read for {} symbol(s); {} inserted, {} replaced, {} unchanged, {} skipped{}{}; {}; {} row(s) in {}",
                r.source,
                r.origin,
                r.filings_read,
                r.symbols.len(),
                r.inserted,
                r.replaced,
                r.unchanged,
                r.skipped.len(),
                if r.duplicates > 0 { format!(", {} delivered twice (the later kept)", r.duplicates) } else { String::new() },
                if r.not_selected > 0 { format!(", {} row(s) of symbols outside --symbols left out", r.not_selected) } else { String::new() },
                r.snapshot_id.map_or("nothing changed, nothing committed".into(), |id| format!("snapshot {id}")),
                r.rows,
                r.dataset
            );
            for k in &r.skipped {
                s += &format!("\nskipped {} {}: {}", k.symbol, k.filing, k.reason);
            }
            s
        });
    }

    pub fn train(&self, r: &TrainReport) {
        self.count(r);
        self.print(r, || {
            let range = |s: &SessionRange| match (s.first, s.last) {
                (Some(a), Some(b)) => format!("{} session(s) {a}..{b}", s.sessions),
                _ => "none".into(),
            };
            let target = if r.fallback { format!("{} (fallback from {})", r.target, r.label) } else { r.target.clone() };
            let mut metrics = table(&["fit", "rows", "R²", "MSE", "IC", "rank IC"]);
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.6}"));
            let mut add = |name: &str, m: &Metrics| {
                metrics.add_row([name.to_string(), m.rows.to_string(), opt(m.r2), m.mse.map_or("-".into(), |v| format!("{v:.4e}")), opt(m.ic), opt(m.rank_ic)]);
            };
            if let Some(h) = &r.metrics.holdout {
                add("holdout (train-part fit)", h);
            }
            add("train part (in sample)", &r.metrics.train);
            add("final fit, all rows (in sample)", &r.metrics.in_sample);
            let mut weights = table(&["feature", "mean", "std", "weight (standardized)", "coefficient"]);
            for f in &r.features {
                let w = if f.constant { "0 (constant)".into() } else { format!("{:.4e}", f.weight) };
                weights.add_row([f.name.clone(), format!("{:.4e}", f.mean), format!("{:.4e}", f.std), w, format!("{:.4e}", f.coefficient)]);
            }
            format!(
                "model {} ({}): ridge, alpha {}, on {} v{} -> target {target}\n\
                 window {}..{}: train {}, embargo {}, holdout {}\n\
                 rows: {} read, {} used ({} with a null feature, {} with a null target); train {}, embargo {}, holdout {}\n\
                 {metrics}\n{weights}\nintercept (target mean) {:.6e}; artifact {}; registry snapshot {}; training set {}\n\
                 the model saw the sessions through {}: score from {} on (earlier sessions are in sample)",
                r.model_id,
                if r.new_artifact { "new" } else { "already stored: same data and settings" },
                r.alpha,
                r.feature_set,
                r.feature_set_version,
                r.start,
                r.end,
                range(&r.train_sessions),
                range(&r.embargo_sessions),
                range(&r.holdout_sessions),
                r.rows.read,
                r.rows.used,
                r.rows.skipped_null_feature,
                r.rows.skipped_null_target,
                r.rows.train,
                r.rows.embargo,
                r.rows.holdout,
                r.intercept,
                r.artifact,
                r.registry_snapshot,
                r.training_set_id.as_deref().unwrap_or("-"),
                r.fit_end,
                quantlake::calendar::NyseCalendar.next_session(r.fit_end),
            )
        });
    }

    pub fn models(&self, list: &[ModelEntry]) {
        self.print(list, || {
            let mut t = table(&[
                "model",
                "trained at (UTC)",
                "feature set",
                "target",
                "alpha",
                "window",
                "rows",
                "holdout R²",
                "holdout IC",
                "holdout rank IC",
            ]);
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
            for m in list {
                t.add_row(vec![
                    m.model_id.clone(),
                    m.trained_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    format!("{} v{}", m.feature_set, m.feature_set_version),
                    if m.target == m.label { m.target.clone() } else { format!("{} (asked {})", m.target, m.label) },
                    m.alpha.to_string(),
                    format!("{}..{}", m.window_start, m.window_end),
                    m.rows.to_string(),
                    opt(m.holdout_r2),
                    opt(m.holdout_ic),
                    opt(m.holdout_rank_ic),
                ]);
            }
            format!("{t}\n{} model(s)", list.len())
        });
    }

    pub fn score(&self, r: &ScoreReport) {
        self.count(r);
        self.print(r, || {
            let opt = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.4}"));
            let mut t = table(&["session", "rows", "null", "mean", "std", "window", "PSI", "mean shift", "status", "problems"]);
            for q in &r.quality {
                let bad = quantlake::quality::problems(&q.checks);
                t.add_row(vec![
                    q.date.to_string(),
                    q.rows.to_string(),
                    q.null_predictions.to_string(),
                    q.mean.map_or("-".into(), |v| format!("{v:.3e}")),
                    q.std.map_or("-".into(), |v| format!("{v:.3e}")),
                    format!("{} session(s), {} rows", q.reference_sessions, q.reference_rows),
                    opt(q.psi),
                    opt(q.mean_shift),
                    q.status.to_string(),
                    if bad.is_empty() { q.checks.iter().find(|c| c.name == "shift").map_or("ok".into(), |c| c.detail.clone()) } else { bad.join("; ") },
                ]);
            }
            let spans: Vec<String> = r.models.iter().map(|m| format!("{} ({}..{}, fitted through {})", m.model_id, m.first, m.last, m.fit_end)).collect();
            let models = if r.models.len() == 1 { format!("model {} (fitted through {})", r.model_id, r.models[0].fit_end) } else { format!("{} models: {}", r.models.len(), spans.join(", ")) };
            let in_sample = match (r.in_sample_sessions.first(), r.in_sample_sessions.last()) {
                (Some(a), Some(b)) => format!("\nWARNING: {} session(s) scored in sample ({a}..{b}): the model saw their outcomes; their rows are flagged in_sample", r.in_sample_sessions.len()),
                _ => String::new(),
            };
            format!(
                "scored {}..{} ({} session(s), {} with feature rows) with {models} ({} v{}, target {}): {} row(s), {} null prediction(s)\n\
                 predictions snapshot {}: {} partition(s) replaced; quality {}{in_sample}\n{t}",
                r.start, r.end, r.sessions, r.sessions_scored, r.feature_set, r.feature_set_version, r.target,
                r.rows, r.null_predictions, r.snapshot_id, r.partitions, r.status
            )
        });
    }

    pub fn universe_rebuild(&self, r: &RebuildReport) {
        self.print(r, || {
            let mut s = format!(
                "universe rebuilt (snapshot {}): {} active, {} inactive; added {:?}, deactivated {:?}, reactivated {:?}",
                r.snapshot_id, r.active, r.inactive, r.added, r.deactivated, r.reactivated
            );
            s += &breadth_line(r.breadth, r.active, r.breadth_min_symbols, r.breadth_warn_symbols);
            s
        });
    }

    pub fn universe(&self, members: &[Member], breadth: Breadth) {
        self.print(&serde_json::json!({ "breadth": breadth, "members": members }), || {
            let mut table = table(&["symbol", "active", "con_id", "exchange", "currency", "sec_type", "name"]);
            for m in members {
                table.add_row([
                    m.symbol.to_string(),
                    m.active.to_string(),
                    m.con_id.map(|c| c.to_string()).unwrap_or_default(),
                    m.exchange.clone(),
                    m.currency.clone(),
                    m.sec_type.clone(),
                    m.name.clone().unwrap_or_default(),
                ]);
            }
            format!("{table}\nbreadth: {breadth}")
        });
    }

    pub fn universe_members(&self, universe: &str, at: NaiveDate, members: &[SecMember], breadth: Breadth) {
        let value = serde_json::json!({ "universe": universe, "at": at, "breadth": breadth, "members": members });
        self.print(&value, || {
            let mut t = table(&["security_id", "ticker", "name", "delisted"]);
            for m in members {
                t.add_row([
                    m.security_id.to_string(),
                    m.ticker.as_ref().map_or(String::new(), |s| s.to_string()),
                    m.name.clone().unwrap_or_default(),
                    m.delisted.map_or(String::new(), |d| d.to_string()),
                ]);
            }
            format!("{t}\n{} members of {universe} on {at}; breadth: {breadth}", members.len())
        });
    }

    pub fn securities_import(&self, r: &SecuritiesImport) {
        self.count(r);
        self.print(r, || {
            let mut t = table(&["security_id", "matched_by", "tickers", "name", "changed"]);
            for s in &r.securities {
                t.add_row([
                    s.security_id.to_string(),
                    s.matched_by.to_string(),
                    s.tickers.clone(),
                    s.name.clone().unwrap_or_default(),
                    s.changed.to_string(),
                ]);
            }
            let into = r.universe.as_ref().map_or(String::new(), |u| format!(", {} membership(s) of {u}", r.members));
            let snapshot = r.lake_seq.map_or("nothing to write".to_string(), |s| format!("lake snapshot {s}"));
            let restamp = r.restamp.as_ref().map_or(String::new(), |x| {
                format!(
                    "\n{} hold sessions from {} to {} stamped with the securities known before: `quantlake curate --start {} --end {}` (each bar size) and then `quantlake features --stale` bring them up to date",
                    x.datasets.join(" and "),
                    x.start,
                    x.end,
                    x.start,
                    x.end
                )
            });
            format!(
                "{t}\nimported {} securities from {} ({}): {} matched, {} minted; {} changed ({} ticker intervals{into}), {} unchanged; {snapshot}{restamp}",
                r.delivered, r.source, r.origin, r.matched, r.minted, r.changed, r.intervals, r.unchanged
            )
        });
    }

    pub fn securities(&self, rows: &[(SecurityView, Option<Symbol>)], at: NaiveDate) {
        let value: Vec<serde_json::Value> = rows
            .iter()
            .map(|(s, ticker)| {
                let mut v = serde_json::to_value(s).unwrap_or_default();
                v["ticker"] = serde_json::json!(ticker);
                v
            })
            .collect();
        self.print(&value, || {
            let mut t =
                table(&["security_id", "ticker", "name", "kind", "listed", "delisted", "composite_figi", "sources"]);
            let date = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
            for (s, ticker) in rows {
                let a = &s.attributes;
                t.add_row([
                    s.security_id.to_string(),
                    ticker.as_ref().map_or(String::new(), |x| x.to_string()),
                    a.name.clone().unwrap_or_default(),
                    a.kind.clone().unwrap_or_default(),
                    date(a.listed),
                    date(a.delisted),
                    a.composite_figi.clone().unwrap_or_default(),
                    s.sources.iter().map(|x| x.to_string()).collect::<Vec<_>>().join(","),
                ]);
            }
            format!("{t}\n{} securities (tickers on {at})", rows.len())
        });
    }

    pub fn security_history(&self, s: &SecurityView, all: &[TickerInterval], used: &[TickerInterval]) {
        let value = serde_json::json!({ "security": s, "history": used, "rows": all });
        self.print(&value, || {
            let mut t = table(&["ticker", "exchange", "valid_from", "valid_to", "source", "vendor_date", "used"]);
            let date = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
            for r in all {
                t.add_row([
                    r.ticker.to_string(),
                    r.exchange.clone().unwrap_or_default(),
                    date(r.valid.from),
                    date(r.valid.to),
                    r.source.to_string(),
                    date(r.vendor_date),
                    if used.contains(r) { "yes".into() } else { String::new() },
                ]);
            }
            let name = s.attributes.name.as_deref().unwrap_or("no name");
            format!("security {} ({name})\n{t}", s.security_id)
        });
    }

    pub fn resolved(&self, ticker: &Symbol, at: NaiveDate, s: &SecurityView, interval: Option<&TickerInterval>) {
        let value = serde_json::json!({ "ticker": ticker, "at": at, "security": s, "interval": interval });
        self.print(&value, || {
            let name = s.attributes.name.as_deref().map_or(String::new(), |n| format!(" ({n})"));
            let span = interval.map_or(String::new(), |r| format!(": {} {} from {}", r.ticker, r.valid, r.source));
            format!("{ticker} on {at} is security {}{name}{span}", s.security_id)
        });
    }

    pub fn corporate_actions_import(&self, r: &ImportReport) {
        self.count(r);
        self.print(r, || {
            let skipped = if r.skipped.is_empty() { String::new() } else { format!("; skipped {:?}", r.skipped) };
            let snapshot = r.snapshot_id.map_or("nothing to write".to_string(), |s| format!("snapshot {s}"));
            format!(
                "imported {} rows ({} splits, {} dividends, {} symbols) from {} ({}): {} new, {} replaced; {} fetched, {} duplicates merged{}; {}",
                r.rows, r.splits, r.dividends, r.symbols, r.source, r.origin, r.inserted, r.replaced, r.fetched, r.merged, skipped, snapshot
            )
        });
    }

    pub fn corporate_actions(&self, rows: &[CorporateAction]) {
        self.print(rows, || {
            let mut t = table(&["symbol", "ex_date", "kind", "source", "split", "cash", "record", "pay", "vendor_id"]);
            let date = |d: Option<chrono::NaiveDate>| d.map_or(String::new(), |d| d.to_string());
            for a in rows {
                let split = match (a.split_from, a.split_to) {
                    (Some(f), Some(t)) => format!("{f}:{t}"),
                    _ => String::new(),
                };
                let cash = a.cash_amount.map_or(String::new(), |c| {
                    format!("{c} {}", a.currency.as_deref().unwrap_or("")).trim().to_string()
                });
                t.add_row(vec![
                    a.symbol.to_string(),
                    a.ex_date.to_string(),
                    a.kind.to_string(),
                    a.source.to_string(),
                    split,
                    cash,
                    date(a.record_date),
                    date(a.pay_date),
                    a.vendor_id.clone().unwrap_or_default(),
                ]);
            }
            format!("{t}\n{} actions", rows.len())
        });
    }

    pub fn adv(&self, r: &AdvReport) {
        self.print(r, || {
            let mut t = table(&["symbol", "adv_shares", "adv_dollars", "sessions", "method"]);
            let num = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.0}"));
            for row in &r.rows {
                t.add_row(vec![
                    row.symbol.clone(),
                    num(row.adv_shares),
                    num(row.adv_dollars),
                    row.sessions_used.to_string(),
                    row.method.as_str().to_string(),
                ]);
            }
            format!(
                "{t}\nADV as of {} over {} sessions from {} (min {}): {} symbols {:?}; snapshot {}",
                r.date, r.window, r.window_start, r.min_sessions, r.symbols, r.by_method, r.snapshot_id
            )
        });
    }

    pub fn file_ingest(&self, r: &FileIngestReport) {
        self.count(r);
        self.print(r, || {
            let mut s = format!(
                "imported {} of {} rows ({} symbol(s), {} partition(s)) from {} ({} file(s), {} bytes) into {} in {} commit(s) (snapshots {:?}), {:.0} rows/s, {} bytes written",
                r.rows, r.rows_read, r.symbols, r.partitions, r.file, r.files, r.bytes_read, r.dataset, r.snapshots.len(), r.snapshots, r.rows_per_second, r.bytes_written
            );
            if r.rejected > 0 {
                s += &format!("\n{} row(s) rejected and kept in quarantine_rows (job {}):", r.rejected, r.job_id);
                for sample in &r.rejected_sample {
                    let file = if r.files > 1 { format!("{} ", sample.file) } else { String::new() };
                    s += &format!("\n  {file}line {}: {}", sample.row.line, sample.row.reason);
                }
                if r.rejected as usize > r.rejected_sample.len() {
                    s += &format!("\n  ... (quantlake query \"SELECT line, reason FROM quarantine_rows WHERE job_id = '{}'\")", r.job_id);
                }
            }
            s
        });
    }

    pub fn calendar(&self, sessions: &[Session]) {
        #[derive(Serialize)]
        struct Row<'a> {
            #[serde(flatten)]
            session: &'a Session,
            open_new_york: String,
            close_new_york: String,
        }
        let rows: Vec<Row> = sessions
            .iter()
            .map(|s| Row {
                session: s,
                open_new_york: s.open_local().to_rfc3339(),
                close_new_york: s.close_local().to_rfc3339(),
            })
            .collect();
        self.print(&rows, || {
            let mut t =
                table(&["session", "open (UTC)", "close (UTC)", "open (New York)", "close (New York)", "early close"]);
            for s in sessions {
                t.add_row(vec![
                    s.date.to_string(),
                    s.open.format("%H:%M").to_string(),
                    s.close.format("%H:%M").to_string(),
                    s.open_local().format("%H:%M %Z").to_string(),
                    s.close_local().format("%H:%M %Z").to_string(),
                    if s.early_close { "yes".into() } else { String::new() },
                ]);
            }
            format!("{t}\n{} session(s)", sessions.len())
        });
    }

    pub fn datasets(&self, rows: &[DatasetSummary]) {
        self.print(rows, || {
            let mut t =
                table(&["dataset", "layer", "partitions", "rows", "bytes", "snapshot", "committed at", "range"]);
            for d in rows {
                t.add_row(vec![
                    d.dataset.clone(),
                    d.layer.to_string(),
                    d.partitions.to_string(),
                    d.rows.to_string(),
                    bytes(d.bytes),
                    d.snapshot_id.to_string(),
                    d.committed_at.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default(),
                    match (&d.first_partition, &d.last_partition) {
                        (Some(a), Some(b)) => format!("{a} .. {b}"),
                        _ => String::new(),
                    },
                ]);
            }
            t.to_string()
        });
    }

    pub fn snapshots(&self, list: &[SnapshotInfo]) {
        self.print(list, || {
            let mut t = table(&[
                "snapshot",
                "committed at (UTC)",
                "operation",
                "stage",
                "partitions",
                "rows added",
                "tags",
                "parameters",
            ]);
            for s in list {
                let params: Vec<String> =
                    s.parameters.iter().map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"'))).collect();
                t.add_row(vec![
                    s.snapshot_id.to_string(),
                    s.committed_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                    s.operation.clone(),
                    s.stage_status.unwrap_or("").to_string(),
                    s.partitions_changed.to_string(),
                    s.rows_added.to_string(),
                    s.tags.join(", "),
                    params.join(" "),
                ]);
            }
            t.to_string()
        });
    }

    pub fn partitions(&self, state: &TableState) {
        let entries: Vec<&PartitionEntry> = state.partitions.values().collect();
        self.print(
            &serde_json::json!({ "dataset": state.dataset, "snapshot_id": state.snapshot_id, "partitions": entries }),
            || {
                let mut t =
                    table(&["partition", "rows", "symbols", "bytes", "written by", "nulls", "quality", "problems"]);
                for e in &entries {
                    let nulls: Vec<String> = e
                        .null_counts
                        .iter()
                        .map(|(c, n)| format!("{c} {:.1}%", *n as f64 * 100.0 / e.rows.max(1) as f64))
                        .collect();
                    t.add_row(vec![
                        e.partition.clone(),
                        e.rows.to_string(),
                        e.symbols.to_string(),
                        bytes(e.bytes),
                        e.snapshot_id.to_string(),
                        nulls.join(", "),
                        e.quality.as_ref().map_or("-".into(), |q| q.status.to_string()),
                        e.quality.as_ref().map_or(String::new(), |q| q.problems.join("; ")),
                    ]);
                }
                format!("{} at snapshot {}: {} partitions\n{t}", state.dataset, state.snapshot_id, entries.len())
            },
        );
    }

    pub fn tags(&self, tags: &[Tag]) {
        self.print(tags, || {
            let mut t = table(&["tag", "snapshot", "created at (UTC)", "message"]);
            for g in tags {
                t.add_row(vec![
                    g.name.clone(),
                    g.snapshot_id.to_string(),
                    g.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    g.message.clone(),
                ]);
            }
            t.to_string()
        });
    }

    pub fn lake_tags(&self, tags: &[LakeTag]) {
        self.print(tags, || {
            let mut t = table(&["tag", "lake snapshot", "datasets", "created at (UTC)", "message"]);
            for g in tags {
                let datasets: Vec<String> =
                    g.datasets.iter().filter(|(_, id)| **id > 0).map(|(d, id)| format!("{d}@{id}")).collect();
                t.add_row(vec![
                    g.name.clone(),
                    g.lake_seq.to_string(),
                    datasets.join(" "),
                    g.created_at.format("%Y-%m-%d %H:%M:%S").to_string(),
                    g.message.clone(),
                ]);
            }
            t.to_string()
        });
    }

    /// The lake log, newest first.
    pub fn lake_log(&self, entries: &[LakeCommit]) {
        self.print(entries, || {
            let mut t = table(&[
                "lake snapshot",
                "committed at (UTC)",
                "operation",
                "outcome",
                "datasets",
                "stage",
                "parameters",
            ]);
            for e in entries {
                let datasets: Vec<String> = e.datasets.iter().map(|(d, id)| format!("{d}@{id}")).collect();
                let mut params: Vec<String> =
                    e.parameters.iter().map(|(k, v)| format!("{k}={}", v.to_string().trim_matches('"'))).collect();
                params.extend(e.reason.iter().cloned());
                let outcome = match e.outcome {
                    StageOutcome::Committed => e.outcome.as_str().to_string(),
                    StageOutcome::Aborted => format!("aborted by {}", e.decided_by),
                };
                t.add_row(vec![
                    e.seq.to_string(),
                    e.committed_at.format("%Y-%m-%d %H:%M:%S%.3f").to_string(),
                    e.operation.clone(),
                    outcome,
                    datasets.join(" "),
                    e.stage_id.clone(),
                    params.join(" "),
                ]);
            }
            t.to_string()
        });
    }

    /// A stage's result: each dataset's new snapshot.
    pub fn stage(&self, r: &StageResult, what: &str) {
        self.print(r, || {
            let changed: Vec<String> = r
                .writes
                .iter()
                .filter(|w| w.partitions > 0)
                .map(|w| format!("{}@{} ({} partition(s))", w.dataset, w.snapshot_id, w.partitions))
                .collect();
            if changed.is_empty() {
                format!("{what}: nothing changed; nothing committed")
            } else {
                format!("{what}: lake snapshot {}: {}", r.lake_seq, changed.join(", "))
            }
        });
    }

    pub fn diff(&self, d: &DiffReport) {
        self.print(d, || {
            let mut t = table(&["partition", "change", "rows before", "rows after"]);
            for c in &d.changes {
                let n = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
                t.add_row(vec![c.partition.clone(), c.change.to_string(), n(c.rows_before), n(c.rows_after)]);
            }
            format!(
                "{}: snapshot {} -> {}: {} partition(s) differ\n{t}",
                d.dataset,
                d.from_snapshot,
                d.to_snapshot,
                d.changes.len()
            )
        });
    }

    pub fn verify(&self, reports: &[VerifyReport]) {
        self.print(reports, || {
            let mut lines = Vec::new();
            for r in reports {
                let status = if r.is_clean() { "OK" } else { "PROBLEMS" };
                lines.push(format!(
                    "{status:8} {} snapshot {}: {} partitions, {} files ({}) checked, {} problem(s)",
                    r.dataset,
                    r.snapshot_id,
                    r.partitions,
                    r.files_checked,
                    bytes(r.bytes_checked),
                    r.problems.len()
                ));
                if r.temporary_files > 0 {
                    lines.push(format!("         {} temporary file(s) left by an interrupted commit (hidden from readers; vacuum removes them)", r.temporary_files));
                }
                for p in &r.problems {
                    lines.push(format!("  - {} {}: {}", p.kind, p.path, p.detail));
                }
            }
            lines.join("\n")
        });
    }

    pub fn recover(&self, reports: &[RecoveryReport]) {
        self.print(reports, || {
            reports
                .iter()
                .map(|r| {
                    let stages: Vec<String> = r.stages.iter().map(|s| format!("; stage {} {} by {}", s.stage_id, s.outcome.as_str(), s.decided_by)).collect();
                    format!(
                        "{} at snapshot {}: {} unfinished commit(s) replayed, {} live file(s) fixed, {} stray file(s) removed{}",
                        r.dataset,
                        r.snapshot_id,
                        r.commits_replayed,
                        r.files_fixed,
                        r.stray_removed,
                        stages.concat()
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
    }

    pub fn vacuum(&self, reports: &[VacuumReport]) {
        self.print(reports, || {
            reports
                .iter()
                .map(|r| {
                    format!(
                        "{}{}: keeps snapshots {}..{} and tagged {:?}; {} file(s) ({}) , {} log entr(ies), {} checkpoint(s), {} Delta log file(s) {}",
                        if r.dry_run { "[dry run] " } else { "" },
                        r.dataset,
                        r.oldest_retained_snapshot,
                        r.latest_snapshot,
                        r.tagged_snapshots,
                        r.files_deleted,
                        bytes(r.bytes_freed),
                        r.log_entries_deleted,
                        r.checkpoints_deleted,
                        r.delta_entries_deleted,
                        if r.dry_run { "would be deleted" } else { "deleted" }
                    )
                })
                .collect::<Vec<_>>()
                .join("\n")
        });
    }

    pub fn export_delta(&self, reports: &[DeltaReport]) {
        self.print(reports, || {
            let mut t = table(&["dataset", "version", "written", "checkpoints", "table"]);
            for r in reports {
                t.add_row(vec![
                    r.dataset.clone(),
                    r.version.map(|v| v.to_string()).unwrap_or_default(),
                    r.versions_written.to_string(),
                    r.checkpoints_written.to_string(),
                    r.table.clone(),
                ]);
            }
            t.to_string()
        });
    }

    /// One dataset's table as its bare path (for `$(quantlake delta-path X)`), several as a table.
    pub fn delta_tables(&self, tables: &[DeltaTable], one: bool) {
        if one && let [only] = tables {
            return self.print(only, || only.table.clone());
        }
        self.print(tables, || {
            let mut t = table(&["dataset", "version", "table"]);
            for d in tables {
                t.add_row(vec![d.dataset.clone(), d.version.to_string(), d.table.clone()]);
            }
            t.to_string()
        });
    }

    pub fn compact(&self, reports: &[CompactReport]) {
        self.print(reports, || {
            let mut lines = Vec::new();
            for r in reports {
                let prefix = if r.dry_run { "[dry run] " } else { "" };
                let verb = |done: &str, would: &str| if r.dry_run { would.to_string() } else { done.to_string() };
                let mut line = match &r.regrouped_from {
                    Some(from) => format!(
                        "{prefix}{}: {} {} {from} partitions into {} {} ones",
                        r.dataset,
                        verb("regrouped", "would regroup"),
                        r.partitions_before,
                        r.partitions_after,
                        r.layout
                    ),
                    None if r.rewritten.is_empty() => format!(
                        "{prefix}{}: {} {} partitions, as the contract writes them",
                        r.dataset, r.partitions_before, r.layout
                    ),
                    None => format!(
                        "{prefix}{}: {} {} of {} partitions",
                        r.dataset,
                        verb("rewrote", "would rewrite"),
                        r.rewritten.len(),
                        r.partitions_before
                    ),
                };
                line += &format!(", {} rows, {} -> {}", r.rows, bytes(r.bytes_before), bytes(r.bytes_after));
                if let Some(s) = r.snapshot_id {
                    line += &format!(", snapshot {s}");
                }
                if let Some(c) = r.checkpoint {
                    line += &format!(", checkpoint at {c}");
                }
                lines.push(line);
                for w in r.rewritten.iter().take(5) {
                    lines.push(format!("  {}: {}", w.partition, w.reason));
                }
                if r.rewritten.len() > 5 {
                    lines.push(format!("  ... and {} more (--json lists them)", r.rewritten.len() - 5));
                }
            }
            lines.join("\n")
        });
    }

    /// Writes `batches` in `format` to `output`, or to stdout (text formats only).
    pub fn batches(&self, batches: &[RecordBatch], format: Format, output: Option<&std::path::Path>) -> Result<()> {
        let file_format = match format {
            Format::Parquet => Some(RowsFormat::Parquet),
            Format::Arrow => Some(RowsFormat::Arrow),
            _ => None,
        };
        if let Some(file_format) = file_format {
            let path =
                output.ok_or_else(|| Error::invalid("--format parquet and arrow write a file: pass --output FILE"))?;
            let mut file = RowsFile::create(path, file_format)?;
            for b in batches {
                file.write(b)?;
            }
            return file.finish().map(drop);
        }
        let mut sink: Box<dyn std::io::Write> = match output {
            Some(path) => Box::new(std::io::BufWriter::new(
                std::fs::File::create(path).map_err(|e| Error::invalid(format!("--output {}: {e}", path.display())))?,
            )),
            None => Box::new(std::io::stdout().lock()),
        };
        match format {
            Format::Table => writeln!(sink, "{}", rows_table(batches, output.is_none())?)?,
            Format::Csv => {
                let mut w = arrow::csv::WriterBuilder::new().with_header(true).build(&mut sink);
                for b in batches {
                    w.write(b)?;
                }
            }
            Format::Json => {
                let mut w = arrow::json::ArrayWriter::new(Vec::new());
                let refs: Vec<&RecordBatch> = batches.iter().collect();
                w.write_batches(&refs)?;
                w.finish()?;
                let body = w.into_inner();
                writeln!(
                    sink,
                    "{}",
                    if body.is_empty() { "[]".into() } else { String::from_utf8_lossy(&body).into_owned() }
                )?;
            }
            // Written above: they need a file.
            Format::Parquet | Format::Arrow => {}
        }
        sink.flush()?;
        Ok(())
    }

    pub fn demo(&self, r: &DemoReport) {
        self.print(r, || {
            let mut s = String::new();
            s += &format!("lake: {}\n\n", r.lake);
            s += &format!(
                "1. ingested {} one-minute bars ({} symbols x {} sessions, with a few injected gaps, duplicates and bad ticks) in {} commit(s), {:.0} rows/s\n",
                r.initial_ingest.rows, r.initial_ingest.symbols, r.initial_ingest.sessions, r.initial_ingest.chunks, r.initial_ingest.rows_per_second
            );
            s += &format!("2. tagged the result '{}'\n", r.tag);
            s += &format!(
                "3. a correction re-ingested {} symbols x {} sessions: only their rows in those partitions were replaced (snapshot {:?})\n",
                r.correction.symbols, r.correction.sessions, r.correction.snapshots
            );
            s += "4. snapshots:\n";
            // The source's rows replace those symbols' rows; the partitions are rewritten whole.
            let mut t = table(&["snapshot", "operation", "symbols", "rows ingested", "partitions rewritten", "their rows", "tags"]);
            for x in &r.snapshots {
                let param = |k: &str| x.parameters.get(k).map_or("-".to_string(), ToString::to_string);
                t.add_row(vec![
                    x.snapshot_id.to_string(),
                    x.operation.clone(),
                    param("symbols"),
                    param("rows"),
                    x.partitions_changed.to_string(),
                    x.rows_added.to_string(),
                    x.tags.join(", "),
                ]);
            }
            s += &format!("{t}\n");
            s += &format!(
                "5. time travel, AAPL on 2024-01-09: as of '{}' (snapshot {}): {} bars, avg close {}; latest (snapshot {}): {} bars, avg close {}\n",
                r.tag, r.before.0, r.before.1, r.before.2, r.after.0, r.after.1, r.after.2
            );
            s += &format!(
                "6. verify: {} ({} files checked, {} problems)\n",
                if r.verify.is_clean() { "OK" } else { "PROBLEMS" },
                r.verify.files_checked,
                r.verify.problems.len()
            );
            let c = &r.curate;
            s += &format!(
                "7. curated {} sessions into {} (snapshot {}): {} rows; {} duplicates removed, {} missing minutes filled, {} outliers flagged, {} invalid bars rejected\n",
                c.sessions, c.dataset, c.snapshot_id, c.rows, c.duplicates_removed, c.filled_rows, c.outliers, c.invalid_rows
            );
            if let Some(t) = &r.quality.total {
                s += &format!(
                    "8. data quality (quantlake dq summary --start {} --end {}): coverage {:.3}%, {} gaps, least covered symbol-session {:.2}%; \
                     each partition's verdict is in its manifest entry (quantlake partitions curated_1m_bars)\n",
                    r.quality.start, r.quality.end, t.totals.coverage * 100.0, t.totals.gap_count, t.totals.min_symbol_coverage * 100.0
                );
            }
            s += &format!("9. health (quantlake health --as-of-date {}): {}\n", r.health.as_of_date, Self::health_summary(&r.health));
            for problem in r.health.problems() {
                s += &format!("   {problem}\n");
            }
            s += &demo_health_hint(&r.health);
            s += "\n";
            s += &format!("Read the live files directly (glob: {}):\n", r.glob);
            for line in &r.readers {
                s += &format!("  {line}\n");
            }
            s += "Or through the manifest, at any snapshot:\n";
            s += "  quantlake query \"SELECT date, count(*) FROM raw_synthetic_bars GROUP BY date ORDER BY date\"\n";
            s += &format!("  quantlake query --as-of {} \"SELECT count(*) FROM raw_synthetic_bars\"", r.tag);
            s
        });
    }
}

/// What the demo's verdict means and how to make it GREEN: on a demo lake a RED or YELLOW comes from
/// breadth, a production threshold a 20-symbol lake cannot meet.
fn demo_health_hint(h: &DatasetHealth) -> String {
    let breadth = h.checks.iter().find(|c| c.name == "breadth" && c.status != Status::Green);
    match (h.status, breadth) {
        (Status::Green, _) => "   GREEN: every check passed.\n".into(),
        (_, Some(_)) => format!(
            "   {} because of breadth: the guide's thresholds are for a production universe (FEATURE_BREADTH_MIN_SYMBOLS 100, \
             FEATURE_BREADTH_WARN_SYMBOLS 200), and the demo has 20 symbols. For a lake this size: \
             FEATURE_BREADTH_MIN_SYMBOLS=10 FEATURE_BREADTH_WARN_SYMBOLS=20 scripts/demo.sh (health GREEN).\n",
            h.status
        ),
        (status, None) => {
            format!("   {status}: the problems above say why (docs/data-quality.md explains each check).\n")
        }
    }
}

fn alert_table(events: &[AlertEvent]) -> Table {
    let mut t = table(&["at (UTC)", "kind", "condition", "severity", "summary", "webhook"]);
    for e in events {
        let webhook = match &e.webhook {
            None => String::new(),
            Some(d) if d.delivered => format!("delivered ({} attempt(s))", d.attempts),
            Some(d) => format!("failed after {} attempt(s): {}", d.attempts, d.error.as_deref().unwrap_or("")),
        };
        t.add_row([
            e.at.format("%Y-%m-%d %H:%M:%S").to_string(),
            e.kind.to_string(),
            e.key.clone(),
            e.severity.to_string(),
            e.summary.clone(),
            webhook,
        ]);
    }
    t
}

fn breadth_line(breadth: Breadth, active: usize, min: usize, warn: usize) -> String {
    match breadth {
        Breadth::Ok => String::new(),
        Breadth::Warn => format!("\nwarning: {active} active symbols is below FEATURE_BREADTH_WARN_SYMBOLS ({warn})"),
        Breadth::BelowMin => format!(
            "\nwarning: {active} active symbols is below FEATURE_BREADTH_MIN_SYMBOLS ({min}): too narrow for cross-sectional features"
        ),
    }
}
