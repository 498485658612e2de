//! Data-quality verdicts: a dataset's `[quality]` rules (from its contract), the totals they judge,
//! and the verdict a stage commits in a partition's manifest entry. Shared by the engine, which stores
//! verdicts without interpreting them, and `quantlake::dq`, which computes and reports them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::outcome::Outcome;

/// A threshold pair: crossing `warn` is YELLOW, crossing `fail` is RED.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Threshold {
    pub warn: f64,
    pub fail: f64,
}

/// Data-quality rules of a dataset (`[quality]` in its contract), applied to each session's (or
/// partition's) metrics summed over its symbols. A rule the contract leaves out has the default below.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QualityRules {
    /// Present / expected regular-session bars: below is bad.
    pub min_coverage: Threshold,
    /// The least covered symbol's coverage: below is bad (partial loss for some symbols).
    pub min_symbol_coverage: Threshold,
    /// Share of expected symbol-sessions (the active universe) with any bars, the robustness guide's
    /// coverage rate: below 90% is a warning.
    pub min_symbols_covered: Threshold,
    /// Each key symbol's coverage in every session of its expected range (`health.key_symbols`).
    pub min_key_symbol_coverage: Threshold,
    /// Invalid raw bars / expected bars: above is bad.
    pub max_invalid_rate: Threshold,
    /// Outliers / present bars: above is bad.
    pub max_outlier_rate: Threshold,
    /// Duplicates removed / present bars: above is bad.
    pub max_duplicate_rate: Threshold,
    /// Per column, its nulls / rows in a partition: above is bad (the runbook's "high null rate in key
    /// features"). Read from the manifest's null counts, so any dataset's partitions can be judged.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub max_null_rate: BTreeMap<String, Threshold>,
}

impl Default for QualityRules {
    fn default() -> Self {
        let t = |warn, fail| Threshold { warn, fail };
        Self {
            min_coverage: t(0.99, 0.95),
            min_symbol_coverage: t(0.95, 0.80),
            min_symbols_covered: t(0.90, 0.50),
            min_key_symbol_coverage: t(0.99, 0.90),
            max_invalid_rate: t(0.001, 0.01),
            max_outlier_rate: t(0.001, 0.01),
            max_duplicate_rate: t(0.01, 0.05),
            max_null_rate: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
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
    /// `quantlake health-check`'s exit code: GREEN 0, YELLOW 1, RED 2 ([`Outcome`]).
    pub fn exit_code(self) -> u8 {
        Outcome::from(self).exit_code()
    }
}

impl From<Status> for Outcome {
    fn from(status: Status) -> Self {
        match status {
            Status::Green => Outcome::Ok,
            Status::Yellow => Outcome::Warning,
            Status::Red => Outcome::Critical,
        }
    }
}

/// One check's verdict.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub status: Status,
    pub detail: String,
}

/// `name detail`, e.g. `coverage 0.9100 below 0.95`.
impl std::fmt::Display for Check {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}", self.name, self.detail)
    }
}

/// The checks that are not GREEN, each as `name detail`.
pub fn problems(checks: &[Check]) -> Vec<String> {
    checks.iter().filter(|c| c.status != Status::Green).map(ToString::to_string).collect()
}

/// The check `name` of `value` against a warn/fail threshold (`higher_is_better` flips the direction).
pub fn judge(name: &str, value: f64, t: Threshold, higher_is_better: bool) -> Check {
    let (bad, worse) =
        if higher_is_better { (value < t.warn, value < t.fail) } else { (value > t.warn, value > t.fail) };
    let status = if worse {
        Status::Red
    } else if bad {
        Status::Yellow
    } else {
        Status::Green
    };
    let limit = if worse { t.fail } else { t.warn };
    let detail = match (status, higher_is_better) {
        (Status::Green, _) => format!("{value:.4}"),
        (_, true) => format!("{value:.4} below {limit}"),
        (_, false) => format!("{value:.4} above {limit}"),
    };
    Check { name: name.into(), status, detail }
}

/// The contract's rules applied to some totals: at curation (the verdict it commits) and by health.
pub fn quality_checks(t: &QualityTotals, rules: &QualityRules) -> Vec<Check> {
    let rate = |n: u64, d: u64| if d == 0 { 0.0 } else { n as f64 / d as f64 };
    vec![
        judge("coverage", t.coverage, rules.min_coverage, true),
        judge("symbol_coverage", t.min_symbol_coverage, rules.min_symbol_coverage, true),
        judge("symbols_covered", t.symbols_covered(), rules.min_symbols_covered, true),
        judge("invalid_rate", rate(t.invalid_rows, t.expected_bars), rules.max_invalid_rate, false),
        judge("outlier_rate", rate(t.outlier_count, t.present_bars), rules.max_outlier_rate, false),
        judge("duplicate_rate", rate(t.duplicates_removed, t.present_bars), rules.max_duplicate_rate, false),
    ]
}

/// The `max_null_rate` rules applied to one partition's rows and null counts (as its manifest entry
/// keeps them): one check per ruled column, named `null_rate:<column>`.
pub fn null_rate_checks(rows: u64, null_counts: &BTreeMap<String, u64>, rules: &QualityRules) -> Vec<Check> {
    rules
        .max_null_rate
        .iter()
        .map(|(column, t)| {
            let nulls = null_counts.get(column).copied().unwrap_or(0);
            let rate = if rows == 0 { 0.0 } else { nulls as f64 / rows as f64 };
            judge(&format!("null_rate:{column}"), rate, *t, false)
        })
        .collect()
}

/// Metrics summed over symbol-sessions: one session's, one partition's (kept in its manifest entry),
/// or a range's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QualityTotals {
    /// Distinct symbols (the active universe plus any that delivered bars).
    pub symbols: u64,
    /// Symbol-sessions counted, and those with at least one regular-session bar delivered.
    pub symbol_sessions: u64,
    pub covered_symbol_sessions: u64,
    pub expected_bars: u64,
    pub present_bars: u64,
    pub gap_count: u64,
    pub filled_bars: u64,
    pub invalid_rows: u64,
    pub duplicates_removed: u64,
    pub outlier_count: u64,
    /// present / expected bars.
    pub coverage: f64,
    /// The least covered symbol-session's coverage.
    pub min_symbol_coverage: f64,
}

impl Default for QualityTotals {
    fn default() -> Self {
        Self {
            symbols: 0,
            symbol_sessions: 0,
            covered_symbol_sessions: 0,
            expected_bars: 0,
            present_bars: 0,
            gap_count: 0,
            filled_bars: 0,
            invalid_rows: 0,
            duplicates_removed: 0,
            outlier_count: 0,
            coverage: 1.0,
            min_symbol_coverage: 1.0,
        }
    }
}

impl QualityTotals {
    /// Share of symbol-sessions with data: the guide's coverage rate.
    pub fn symbols_covered(&self) -> f64 {
        if self.symbol_sessions == 0 { 1.0 } else { self.covered_symbol_sessions as f64 / self.symbol_sessions as f64 }
    }
}

/// A partition's quality as the stage that wrote it judged it, kept in the partition's manifest entry:
/// the health of a snapshot is in the snapshot, and time travel brings back the verdict with the data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionQuality {
    /// By the contract's `[quality]` rules at write time.
    pub status: Status,
    #[serde(flatten)]
    pub totals: QualityTotals,
    /// The checks that were not GREEN, e.g. `coverage 0.9100 below 0.95`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub problems: Vec<String>,
}

impl PartitionQuality {
    pub fn judge(totals: QualityTotals, rules: &QualityRules) -> Self {
        let checks = quality_checks(&totals, rules);
        let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Green);
        Self { status, totals, problems: problems(&checks) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_judge_totals() {
        let rules = QualityRules::default();
        let t = QualityTotals {
            symbols: 10,
            symbol_sessions: 10,
            covered_symbol_sessions: 8,
            expected_bars: 3900,
            present_bars: 3120,
            coverage: 0.8,
            min_symbol_coverage: 0.0,
            ..Default::default()
        };
        let checks = quality_checks(&t, &rules);
        let status = |n: &str| checks.iter().find(|c| c.name == n).unwrap().status;
        assert_eq!(status("coverage"), Status::Red);
        assert_eq!(
            status("symbols_covered"),
            Status::Yellow,
            "80% of symbols: below the 90% warning, above the 50% failure"
        );
        assert_eq!(status("invalid_rate"), Status::Green);
    }

    #[test]
    fn statuses_exit_by_the_contract() {
        assert_eq!([Status::Green, Status::Yellow, Status::Red].map(Status::exit_code), [0, 1, 2]);
        assert_eq!(Outcome::from(Status::Red), Outcome::Critical);
    }
}
