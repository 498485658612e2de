//! The adaptive historical backfill (`quantlake backfill-history`): fills `target_days` back from the last
//! completed session, newest first, in steps that grow while they finish quickly and shrink when one
//! takes longer than `slow_threshold`. Every step is an [`ingest`] with `resume`, so what progress
//! records as finished is skipped and an interrupted backfill continues where it stopped.

use std::time::{Duration, Instant};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::bars::BarSize;
use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::ingest::{IngestRequest, IngestSettings, ingest, progress};
use crate::outcome::Outcome;
use crate::progress::{NoProgress, Progress};
use crate::sources::{BarSource, SymbolFailure};
use crate::symbol::Symbol;
use crate::table::Lake;
use crate::universe;

/// `[backfill]` settings; the runbooks' `BACKFILL_*`, `MIN_TARGET_COVERAGE` variables override them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct BackfillSettings {
    /// Calendar days back from the last completed session to fill (`BACKFILL_TARGET_DAYS`).
    pub target_days: u32,
    /// Smallest and largest step, in sessions (`BACKFILL_MIN_STEP`, `BACKFILL_MAX_STEP`).
    pub min_step: usize,
    pub max_step: usize,
    /// A step slower than this many seconds halves the next one; one faster than half of it doubles
    /// the next (`BACKFILL_SLOW_THRESHOLD`).
    pub slow_threshold: f64,
    /// Pause between steps, seconds (`BACKFILL_SLEEP_BETWEEN_SEC`).
    pub sleep_between_sec: f64,
    /// Share of the target's symbol-sessions that must be finished for the backfill to count as
    /// complete (`MIN_TARGET_COVERAGE`).
    pub min_target_coverage: f64,
    /// `backfill trigger` over more sessions than this refuses to run unless a smaller window of the
    /// same scope has completed, or `--force-large` (runbook 5.3: test on a smaller window first).
    pub max_untested_sessions: usize,
}

impl Default for BackfillSettings {
    fn default() -> Self {
        Self {
            target_days: 420,
            // The robustness guide's values (BACKFILL_MIN_STEP, BACKFILL_MAX_STEP, BACKFILL_SLOW_THRESHOLD).
            min_step: 15,
            max_step: 90,
            slow_threshold: 240.0,
            sleep_between_sec: 0.0,
            min_target_coverage: 0.95,
            max_untested_sessions: 20,
        }
    }
}

impl BackfillSettings {
    fn check(&self) -> Result<()> {
        if self.min_step == 0 || self.max_step < self.min_step {
            return Err(Error::Config(format!(
                "backfill steps: need 1 <= min_step ({}) <= max_step ({})",
                self.min_step, self.max_step
            )));
        }
        // Written so that NaN fails too.
        let valid = self.slow_threshold > 0.0
            && self.sleep_between_sec.is_finite()
            && self.sleep_between_sec >= 0.0
            && (0.0..=1.0).contains(&self.min_target_coverage);
        if !valid {
            return Err(Error::Config(format!(
                "backfill: slow_threshold must be > 0 ({}), sleep_between_sec >= 0 ({}), min_target_coverage in 0..=1 ({})",
                self.slow_threshold, self.sleep_between_sec, self.min_target_coverage
            )));
        }
        Ok(())
    }

    /// The next step after one of `step` sessions that took `elapsed`.
    pub fn next_step(&self, step: usize, elapsed: Duration) -> usize {
        let secs = elapsed.as_secs_f64();
        if secs > self.slow_threshold {
            (step / 2).max(self.min_step)
        } else if secs < self.slow_threshold / 2.0 {
            (step * 2).min(self.max_step)
        } else {
            step
        }
    }
}

/// A backfill as asked for: what is left `None` takes the default [`BackfillOptions::resolve`]
/// documents.
#[derive(Debug, Clone)]
pub struct BackfillOptions {
    pub symbols: Option<Vec<Symbol>>,
    pub bar_size: BarSize,
    pub end: Option<NaiveDate>,
    pub chunk_sessions: Option<usize>,
    pub job_id: Option<String>,
}

impl BackfillOptions {
    /// The request, with the defaults: the symbols are the lake's active universe (an error when it
    /// is empty); `end` is the last completed session; `chunk_sessions` is [`IngestSettings::chunk`].
    pub async fn resolve(self, lake: &Lake, settings: &IngestSettings) -> Result<BackfillRequest> {
        let symbols = match self.symbols {
            Some(symbols) => symbols,
            None => {
                let active = universe::active_symbols(lake).await?;
                if active.is_empty() {
                    return Err(Error::invalid(
                        "no --symbols and no active universe; pass --symbols or run `quantlake universe rebuild`",
                    ));
                }
                active
            }
        };
        Ok(BackfillRequest {
            symbols,
            bar_size: self.bar_size,
            end: self.end.unwrap_or_else(|| NyseCalendar.last_completed_session(chrono::Utc::now())),
            chunk_sessions: settings.chunk(self.chunk_sessions),
            job_id: self.job_id,
        })
    }
}

/// What to backfill.
#[derive(Debug, Clone)]
pub struct BackfillRequest {
    pub symbols: Vec<Symbol>,
    pub bar_size: BarSize,
    /// Last session to fill (normally the last completed one).
    pub end: NaiveDate,
    /// Sessions per commit inside a step.
    pub chunk_sessions: usize,
    pub job_id: Option<String>,
}

/// One step of a backfill.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub sessions: usize,
    pub skipped: u64,
    pub rows: u64,
    pub seconds: f64,
}

/// What a backfill did.
#[derive(Debug, Clone, Serialize)]
pub struct BackfillReport {
    pub dataset: String,
    pub source: String,
    pub job_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub symbols: usize,
    pub target_sessions: usize,
    pub steps: Vec<StepReport>,
    pub rows: u64,
    /// Symbol-sessions already finished before this run.
    pub skipped: u64,
    pub failed: Vec<SymbolFailure>,
    /// Finished symbol-sessions / target symbol-sessions, after the run.
    pub coverage: f64,
    pub coverage_met: bool,
    pub seconds: f64,
}

impl BackfillReport {
    /// `Warning` (partial success) when a symbol failed, `Ok` otherwise.
    pub fn outcome(&self) -> Outcome {
        Outcome::warning_if(!self.failed.is_empty())
    }
}

/// Runs the backfill; see the module docs.
pub async fn backfill_history<S: BarSource>(
    lake: &Lake,
    source: &S,
    settings: &BackfillSettings,
    request: &BackfillRequest,
    bar: &dyn Progress,
) -> Result<BackfillReport> {
    settings.check()?;
    let started = Instant::now();
    // The calendar starts in 2000: a longer target stops there.
    let calendar_start = NaiveDate::from_ymd_opt(NyseCalendar::FIRST_YEAR, 1, 1).unwrap_or(NaiveDate::MIN);
    let first_day = request
        .end
        .checked_sub_signed(chrono::Duration::days(i64::from(settings.target_days)))
        .map_or(calendar_start, |d| d.max(calendar_start));
    let sessions = NyseCalendar.sessions(first_day, request.end);
    if sessions.is_empty() {
        return Err(Error::invalid(format!("no sessions between {first_day} and {}", request.end)));
    }
    let dataset = source.dataset(request.bar_size);
    let job_id = request.job_id.clone().unwrap_or_else(|| format!("backfill-{}", uuid::Uuid::now_v7().simple()));
    let mut report = BackfillReport {
        dataset: dataset.clone(),
        source: source.name().into(),
        job_id: job_id.clone(),
        start: sessions[0].date,
        end: request.end,
        symbols: request.symbols.len(),
        target_sessions: sessions.len(),
        steps: Vec::new(),
        rows: 0,
        skipped: 0,
        failed: Vec::new(),
        coverage: 0.0,
        coverage_met: false,
        seconds: 0.0,
    };
    bar.set_length((sessions.len() * request.symbols.len()) as u64);
    let mut step = settings.min_step;
    let mut cursor = sessions.len();
    while cursor > 0 {
        let lo = cursor.saturating_sub(step);
        let (start, end) = (sessions[lo].date, sessions[cursor - 1].date);
        let step_started = Instant::now();
        let ingest_request = IngestRequest {
            symbols: request.symbols.clone(),
            start,
            end,
            bar_size: request.bar_size,
            chunk_sessions: request.chunk_sessions,
            job_id: Some(job_id.clone()),
            resume: true,
        };
        let done = ingest(lake, source, &ingest_request, &NoProgress).await?;
        let elapsed = step_started.elapsed();
        bar.inc(((cursor - lo) * request.symbols.len()) as u64);
        let fetched_anything = done.skipped < ((cursor - lo) * request.symbols.len()) as u64;
        tracing::info!(
            target: "historical_backfill",
            dataset = %dataset, %start, %end, step, skipped = done.skipped, rows = done.rows, seconds = elapsed.as_secs_f64(),
            remaining_sessions = lo, "historical_backfill step done"
        );
        report.steps.push(StepReport {
            start,
            end,
            sessions: cursor - lo,
            skipped: done.skipped,
            rows: done.rows,
            seconds: elapsed.as_secs_f64(),
        });
        report.rows += done.rows;
        report.skipped += done.skipped;
        report.failed.extend(done.failed);
        cursor = lo;
        if fetched_anything {
            step = settings.next_step(step, elapsed);
            if cursor > 0 && settings.sleep_between_sec > 0.0 {
                tokio::time::sleep(Duration::from_secs_f64(settings.sleep_between_sec)).await;
            }
        }
    }
    let finished = progress::finished(lake, &dataset, &request.symbols, report.start, report.end).await?;
    report.coverage = finished.len() as f64 / (sessions.len() * request.symbols.len()) as f64;
    report.coverage_met = report.coverage >= settings.min_target_coverage;
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_grow_when_fast_and_shrink_when_slow() {
        let s = BackfillSettings { min_step: 5, max_step: 40, slow_threshold: 10.0, ..Default::default() };
        assert_eq!(s.next_step(5, Duration::from_secs(1)), 10);
        assert_eq!(s.next_step(30, Duration::from_secs(1)), 40);
        assert_eq!(s.next_step(20, Duration::from_secs(7)), 20);
        assert_eq!(s.next_step(20, Duration::from_secs(11)), 10);
        assert_eq!(s.next_step(6, Duration::from_secs(60)), 5);
        assert!(BackfillSettings { min_step: 0, ..Default::default() }.check().is_err());
        assert!(BackfillSettings { max_step: 2, ..Default::default() }.check().is_err());
        assert!(BackfillSettings::default().check().is_ok());
        assert!(BackfillSettings { sleep_between_sec: f64::INFINITY, ..Default::default() }.check().is_err());
        assert!(BackfillSettings { slow_threshold: f64::NAN, ..Default::default() }.check().is_err());
    }
}
