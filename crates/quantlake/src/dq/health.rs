//! Health: a dataset's quality rules (`[quality]` in its contract) applied to the quality totals in
//! its partitions' manifest entries, plus the robustness guide's operational checks (freshness, symbol
//! breadth, coverage rate, key symbols), as GREEN / YELLOW / RED per partition and for the dataset,
//! with the guide's severity (SEV-1 no new data, SEV-2 partial loss for some symbols, SEV-3 warnings).
//!
//! Partition verdicts come from the snapshot judged (its manifest), so they always describe the rows
//! that snapshot holds; key symbols come from the per-symbol rows of `dq_metrics`.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use super::annotations::{Annotation, list_annotations, span_of_dates};
use super::symbol_metrics;
use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::quality::{Check, QualityRules, Status, judge, null_rate_checks, quality_checks};
use crate::symbol::Symbol;
use crate::table::Lake;
use crate::table::lake_log::LakeView;
use crate::table::layout::PartitionKey;
use crate::table::manifest::{PartitionEntry, TableState};
use crate::universe::UniverseSettings;

/// `[health]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct HealthSettings {
    /// Sessions up to the reference session that are judged.
    pub window_sessions: usize,
    /// Latest session with data more than this many sessions behind the reference: a warning.
    pub max_lag_sessions: i64,
    /// Symbols that must be present in every session of their expected range: `"SPY"` or
    /// `{ symbol = "SPY", start = "2005-01-03", end = "2030-12-31" }`.
    pub key_symbols: Vec<KeySymbol>,
    /// A label set's target covered below this share over the last `target_days_back` sessions is
    /// RED, and training on a residual target falls back to the plain one (`MIN_TARGET_COVERAGE`).
    pub min_target_coverage: f64,
    /// Sessions target coverage is measured over (`DAYS_BACK`).
    pub target_days_back: u32,
}

impl Default for HealthSettings {
    fn default() -> Self {
        Self {
            window_sessions: 5,
            max_lag_sessions: 2,
            key_symbols: Vec::new(),
            min_target_coverage: 0.6,
            target_days_back: 60,
        }
    }
}

/// A symbol expected in every session from `start` to `end` (both optional, inclusive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "KeySymbolSpec")]
pub struct KeySymbol {
    pub symbol: Symbol,
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum KeySymbolSpec {
    Name(Symbol),
    Range {
        symbol: Symbol,
        #[serde(default)]
        start: Option<NaiveDate>,
        #[serde(default)]
        end: Option<NaiveDate>,
    },
}

impl From<KeySymbolSpec> for KeySymbol {
    fn from(spec: KeySymbolSpec) -> Self {
        match spec {
            KeySymbolSpec::Name(symbol) => Self { symbol, start: None, end: None },
            KeySymbolSpec::Range { symbol, start, end } => Self { symbol, start, end },
        }
    }
}

/// One partition's verdict (for date partitions: one session's).
#[derive(Debug, Clone, Serialize)]
pub struct PartitionHealth {
    pub partition: String,
    pub status: Status,
    pub checks: Vec<Check>,
    /// Annotations of the dataset touching the partition's days (an outage, an accepted problem):
    /// shown beside the verdict, which they do not change.
    pub annotations: Vec<Annotation>,
}

/// `get_dataset_health`: the verdict for a dataset as of a date.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetHealth {
    pub dataset: String,
    /// The snapshot judged (its partitions' manifest entries hold the quality totals).
    pub snapshot_id: u64,
    pub as_of_date: NaiveDate,
    /// The session the dataset should reach: the last one on or before `as_of_date`.
    pub reference_session: NaiveDate,
    pub latest_session: Option<NaiveDate>,
    pub status: Status,
    /// SEV-1, SEV-2 or SEV-3 when not GREEN.
    pub severity: Option<String>,
    pub checks: Vec<Check>,
    pub partitions: Vec<PartitionHealth>,
}

impl DatasetHealth {
    /// Every check that is not GREEN, dataset-wide first.
    pub fn problems(&self) -> impl Iterator<Item = String> + '_ {
        let dataset = crate::quality::problems(&self.checks).into_iter();
        let partitions = self
            .partitions
            .iter()
            .flat_map(|p| crate::quality::problems(&p.checks).into_iter().map(move |c| format!("{} {c}", p.partition)));
        dataset.chain(partitions)
    }
}

/// Checks that mean some symbols lost data (SEV-2 when they fail).
const PARTIAL_LOSS: [&str; 4] = ["symbol_coverage", "symbols_covered", "present", "key_symbol"];

fn partition_health(partition: &str, entry: Option<&PartitionEntry>, rules: &QualityRules) -> PartitionHealth {
    let one = |status, detail: &str| vec![Check { name: "present".into(), status, detail: detail.into() }];
    let mut checks = match entry {
        None => one(Status::Red, "no rows: never curated, or no source had bars"),
        Some(e) => match &e.quality {
            None => one(
                Status::Yellow,
                "no quality verdict in the manifest entry (written by a stage that does not judge); re-run the stage",
            ),
            Some(q) => {
                let checks = quality_checks(&q.totals, rules);
                let failing = |name: &str| checks.iter().any(|c| c.name == name && c.status != Status::Green);
                if failing("symbols_covered") {
                    tracing::warn!(
                        partition,
                        "Coverage rate {:.2}% low: {} of {} symbol-sessions have bars",
                        q.totals.symbols_covered() * 100.0,
                        q.totals.covered_symbol_sessions,
                        q.totals.symbol_sessions
                    );
                }
                if failing("coverage") {
                    tracing::warn!(partition, "Bar coverage {:.2}% low", q.totals.coverage * 100.0);
                }
                checks
            }
        },
    };
    if let Some(e) = entry {
        for check in null_rate_checks(e.rows, &e.null_counts, rules) {
            if check.status != Status::Green {
                let column = check.name.trim_start_matches("null_rate:");
                tracing::warn!(partition, "High null rate in {column}: {}", check.detail);
            }
            checks.push(check);
        }
    }
    PartitionHealth {
        partition: partition.into(),
        status: checks.iter().map(|c| c.status).max().unwrap_or(Status::Green),
        checks,
        annotations: Vec::new(),
    }
}

/// The partitions of `datasets` holding sessions in `first..=last` that are RED, by the verdict their
/// stage committed or a `[quality.max_null_rate]` rule of the contract, each as `dataset partition:
/// problems`: what blocks a daily-run stage on its inputs and the retraining on its window.
pub async fn red_partitions(lake: &Lake, datasets: &[&str], first: NaiveDate, last: NaiveDate) -> Result<Vec<String>> {
    let view = lake.view().await?;
    let mut red = Vec::new();
    for name in datasets {
        let ds = lake.dataset(name)?;
        let contract = ds.contract();
        let state = ds.latest_in(&view).await?;
        for (key, entry) in state.partitions.iter().filter(|(_, e)| e.overlaps_sessions(first, last)) {
            let mut problems: Vec<String> = match &entry.quality {
                Some(q) if q.status == Status::Red => q.problems.clone(),
                _ => Vec::new(),
            };
            if let Some(rules) = &contract.quality {
                problems.extend(
                    null_rate_checks(entry.rows, &entry.null_counts, rules)
                        .into_iter()
                        .filter(|c| c.status == Status::Red)
                        .map(|c| c.to_string()),
                );
            }
            if !problems.is_empty() {
                red.push(format!("{name} {key}: {}", problems.join(", ")));
            }
        }
    }
    Ok(red)
}

/// The New York date of a partition's last row, capped at `reference`; `None` if it starts after it.
pub(crate) fn last_session_in(e: &PartitionEntry, reference: NaiveDate) -> Option<NaiveDate> {
    let (first, last) = (NyseCalendar.trading_date(e.min_ts?), NyseCalendar.trading_date(e.max_ts?));
    (first <= reference).then(|| NyseCalendar.previous_session(last.min(reference).succ_opt().unwrap_or(last)))
}

/// The New York date of a dataset's first row, if it has any.
pub(crate) fn first_session(state: &TableState) -> Option<NaiveDate> {
    state.partitions.values().filter_map(|e| e.min_ts).min().map(|t| NyseCalendar.trading_date(t))
}

/// The New York dates of a dataset's first and last rows, if it has any.
pub(crate) fn data_span(state: &TableState) -> Option<(NaiveDate, NaiveDate)> {
    let last = state.partitions.values().filter_map(|e| e.max_ts).max().map(|t| NyseCalendar.trading_date(t))?;
    Some((first_session(state)?, last))
}

/// The key symbols' coverage in every session from `start` to `end` inside their expected ranges,
/// from `dq_metrics`: one check per symbol, at its worst session.
pub(crate) async fn key_symbol_checks(
    lake: &Lake,
    view: &LakeView,
    dataset: &str,
    keys: &[KeySymbol],
    start: NaiveDate,
    end: NaiveDate,
    rules: &QualityRules,
) -> Result<Vec<Check>> {
    if keys.is_empty() {
        return Ok(Vec::new());
    }
    let symbols = keys.iter().map(|k| k.symbol.clone()).collect();
    let coverage: BTreeMap<(String, NaiveDate), f64> = symbol_metrics(lake, view, dataset, &symbols, start, end)
        .await?
        .into_iter()
        .map(|m| ((m.symbol.clone(), m.date), m.coverage()))
        .collect();
    let mut checks = Vec::new();
    for key in keys {
        let from = key.start.map_or(start, |s| s.max(start));
        let to = key.end.map_or(end, |e| e.min(end));
        let sessions = NyseCalendar.sessions(from, to);
        if sessions.is_empty() {
            continue;
        }
        let per_session: Vec<(NaiveDate, f64)> = sessions
            .iter()
            .map(|s| (s.date, coverage.get(&(key.symbol.to_string(), s.date)).copied().unwrap_or(0.0)))
            .collect();
        let missing: Vec<NaiveDate> = per_session.iter().filter(|(_, c)| *c == 0.0).map(|(d, _)| *d).collect();
        let (worst_date, worst) = per_session.iter().copied().fold((from, 1.0), |w, s| if s.1 < w.1 { s } else { w });
        let mut check = judge(&format!("key_symbol {}", key.symbol), worst, rules.min_key_symbol_coverage, true);
        check.detail = if missing.is_empty() {
            format!("lowest coverage {} on {worst_date} ({} sessions {from}..{to})", check.detail, sessions.len())
        } else {
            tracing::warn!(dataset, symbol = %key.symbol, "Failed to find bars of key symbol {} in {} of {} sessions", key.symbol, missing.len(), sessions.len());
            let shown: Vec<String> = missing.iter().take(5).map(NaiveDate::to_string).collect();
            format!(
                "no bars in {} of {} sessions {from}..{to}: {}{}",
                missing.len(),
                sessions.len(),
                shown.join(", "),
                if missing.len() > 5 { ", ..." } else { "" }
            )
        };
        checks.push(check);
    }
    Ok(checks)
}

/// The last completed session on or before `as_of_date` (default: now).
pub fn reference_session(as_of_date: Option<NaiveDate>) -> NaiveDate {
    match as_of_date {
        Some(d) => NyseCalendar.previous_session(d.succ_opt().unwrap_or(d)),
        None => NyseCalendar.last_completed_session(chrono::Utc::now()),
    }
}

/// Judges `dataset`'s latest snapshot as of `as_of_date` (default: today's last completed session).
pub async fn get_dataset_health(
    lake: &Lake,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
    settings: &HealthSettings,
    breadth: &UniverseSettings,
) -> Result<DatasetHealth> {
    let ds = lake.dataset(dataset)?;
    let contract = ds.contract().clone();
    // A label set is judged by its targets' coverage, not by per-partition verdicts.
    let targets = super::target_coverage::label_targets(&contract);
    let rules = match (contract.quality.clone(), &targets) {
        (Some(rules), _) => rules,
        (None, Some(_)) => QualityRules::default(),
        (None, None) => {
            return Err(Error::invalid(format!(
                "dataset '{dataset}' has no [quality] rules in its contract, so no health"
            )));
        }
    };
    // The verdicts and the key symbols' metrics through one view: the same curation stages.
    let view = lake.view().await?;
    let state: TableState = ds.latest_in(&view).await?;
    let reference = reference_session(as_of_date);
    let window_start = NyseCalendar.add_sessions(reference, 1 - settings.window_sessions.max(1) as i64);
    // Every partition the window's sessions fall in is judged: a missing one was never curated. The
    // sessions before the dataset's first row are not: the data starts there (a new lake is not RED
    // for the weeks before its first ingest).
    let judged_from = first_session(&state).map_or(window_start, |first| first.max(window_start));
    let mut keys: Vec<String> = NyseCalendar
        .sessions(judged_from, reference)
        .iter()
        .map(|s| PartitionKey::for_date(contract.partitioning, s.date).to_string())
        .collect();
    keys.dedup();
    let mut partitions: Vec<PartitionHealth> = if targets.is_some() {
        Vec::new()
    } else {
        keys.iter().map(|k| partition_health(k, state.partitions.get(k), &rules)).collect()
    };
    let (first, last) = span_of_dates(window_start, reference);
    let notes = list_annotations(lake, Some(ds.name()), first, last).await?;
    for p in &mut partitions {
        p.annotations = notes.iter().filter(|a| a.touches_partition(&p.partition)).cloned().collect();
    }

    let mut checks = Vec::new();
    // Freshness: the latest session with rows against the reference session.
    let latest =
        state.partitions.values().filter_map(|e| Some((last_session_in(e, reference)?, e))).max_by_key(|(d, _)| *d);
    let latest_session = latest.map(|(d, _)| d);
    checks.push(freshness_check(dataset, latest_session, reference, settings.max_lag_sessions));
    // Breadth: symbols with rows in the latest partition against the thresholds.
    let breadth_check = breadth_check(dataset, latest.map_or(0, |(_, e)| e.symbols as usize), breadth);
    let breadth_status = breadth_check.status;
    checks.push(breadth_check);
    if targets.is_none() {
        checks.extend(
            key_symbol_checks(lake, &view, dataset, &settings.key_symbols, judged_from, reference, &rules).await?,
        );
    } else if let Some(span) = data_span(&state) {
        let as_of = crate::table::AsOf::pinned(&[(contract.name.clone(), state.snapshot_id)].into());
        checks.extend(target_coverage_checks(lake, &contract, span, reference, settings, &as_of).await?);
    }

    let status =
        checks.iter().map(|c| c.status).chain(partitions.iter().map(|p| p.status)).max().unwrap_or(Status::Green);
    let partial_loss = breadth_status == Status::Red
        || checks
            .iter()
            .chain(partitions.iter().flat_map(|p| &p.checks))
            .any(|c| c.status != Status::Green && PARTIAL_LOSS.iter().any(|n| c.name.starts_with(n)));
    // No new data: nothing for the reference session or the one before it.
    let no_new_data = latest_session.is_none_or(|d| d < NyseCalendar.previous_session(reference));
    let severity = match status {
        Status::Green => None,
        Status::Red if no_new_data => Some("SEV-1".to_string()),
        _ if partial_loss => Some("SEV-2".to_string()),
        _ => Some("SEV-3".to_string()),
    };
    Ok(DatasetHealth {
        dataset: dataset.into(),
        snapshot_id: state.snapshot_id,
        as_of_date: as_of_date.unwrap_or(reference),
        reference_session: reference,
        latest_session,
        status,
        severity,
        checks,
        partitions,
    })
}

/// Freshness: the latest session with rows against the reference session.
fn freshness_check(dataset: &str, latest: Option<NaiveDate>, reference: NaiveDate, max_lag_sessions: i64) -> Check {
    let Some(d) = latest else {
        tracing::warn!(dataset, %reference, "Failed to find data: no session on or before {reference}");
        return Check {
            name: "freshness".into(),
            status: Status::Red,
            detail: format!("no data on or before {reference}"),
        };
    };
    let lag = NyseCalendar.sessions_between(d, reference);
    let status = if lag > max_lag_sessions { Status::Yellow } else { Status::Green };
    if status != Status::Green {
        tracing::warn!(dataset, "Failed to keep up: latest session {d} is {lag} sessions behind {reference}");
    }
    Check {
        name: "freshness".into(),
        status,
        detail: format!("latest session {d}, {lag} session(s) behind {reference}"),
    }
}

/// Breadth: the symbols of the latest partition against the guide's thresholds.
fn breadth_check(dataset: &str, symbols: usize, breadth: &UniverseSettings) -> Check {
    let status = match breadth.breadth(symbols) {
        crate::universe::Breadth::BelowMin => {
            tracing::warn!(dataset, "Symbol count {symbols} below critical threshold {}", breadth.breadth_min_symbols);
            Status::Red
        }
        crate::universe::Breadth::Warn => {
            tracing::warn!(
                dataset,
                "Symbol breadth {symbols} below warning threshold {}",
                breadth.breadth_warn_symbols
            );
            Status::Yellow
        }
        crate::universe::Breadth::Ok => Status::Green,
    };
    Check {
        name: "breadth".into(),
        status,
        detail: format!(
            "{symbols} symbols (critical below {}, warning below {})",
            breadth.breadth_min_symbols, breadth.breadth_warn_symbols
        ),
    }
}

/// A label set's checks: each target's coverage over the last `target_days_back` sessions, of the
/// rows whose label can be known by the data's `span` (first and last session).
async fn target_coverage_checks(
    lake: &Lake,
    contract: &crate::contract::DatasetContract,
    span: (NaiveDate, NaiveDate),
    reference: NaiveDate,
    settings: &HealthSettings,
    as_of: &crate::table::AsOf,
) -> Result<Vec<Check>> {
    let dataset = contract.name.as_str();
    let coverage = super::target_coverage::target_coverage(
        lake,
        dataset,
        reference,
        settings.target_days_back,
        settings.min_target_coverage,
        as_of,
    )
    .await?
    .knowable(contract, span.0, span.1);
    let checks = coverage.targets.iter().map(|t| {
        if t.below_threshold {
            tracing::warn!(
                dataset,
                target = t.target,
                "Target coverage {:.4} of {} below MIN_TARGET_COVERAGE {}",
                t.coverage,
                t.target,
                coverage.threshold
            );
        }
        Check {
            name: format!("target_coverage {}", t.target),
            status: if t.below_threshold { Status::Red } else { Status::Green },
            detail: format!(
                "{:.2}% of {} rows over {} sessions {}..{} (critical below {:.0}%){}",
                t.coverage * 100.0,
                t.rows,
                coverage.days_back,
                coverage.start,
                coverage.end,
                coverage.threshold * 100.0,
                if t.not_yet_known > 0 {
                    format!("; {} rows left out: their labels cannot be known yet (the horizon reaches past the data, or the beta lacks history)", t.not_yet_known)
                } else {
                    String::new()
                }
            ),
        }
    });
    Ok(checks.collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_symbols_are_names_or_ranges() {
        #[derive(Deserialize)]
        struct H {
            key_symbols: Vec<KeySymbol>,
        }
        let h: H = toml::from_str(r#"key_symbols = ["SPY", { symbol = "AAPL", start = "2024-01-02" }]"#).unwrap();
        assert_eq!(h.key_symbols[0], KeySymbol { symbol: Symbol::from_static("SPY"), start: None, end: None });
        assert_eq!(h.key_symbols[1].start, NaiveDate::from_ymd_opt(2024, 1, 2));
    }
}
