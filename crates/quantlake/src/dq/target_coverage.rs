//! Target coverage (the robustness guide's `debug_target_coverage`): the share of a label set's rows
//! whose target is known, per target and per session over the last `DAYS_BACK` sessions. A residual
//! target below `MIN_TARGET_COVERAGE` makes training fall back to the plain forward return, and is a
//! critical finding of the label set's health.

use arrow::array::AsArray;
use arrow::datatypes::{Date32Type, Int64Type};
use chrono::NaiveDate;
use serde::Serialize;

use crate::calendar::NyseCalendar;
use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::query::QueryEngine;
use crate::table::AsOf;
use crate::table::Lake;

/// One target's coverage over the window.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCoverageRow {
    pub target: String,
    pub rows: u64,
    pub covered: u64,
    pub coverage: f64,
    pub below_threshold: bool,
    /// Rows left out as not knowable yet ([`TargetCoverage::knowable`]; 0 before that).
    #[serde(default)]
    pub not_yet_known: u64,
}

/// One session's coverage of one target.
#[derive(Debug, Clone, Serialize)]
pub struct DayCoverage {
    pub date: NaiveDate,
    pub target: String,
    pub rows: u64,
    pub covered: u64,
    pub coverage: f64,
}

/// The analysis `quantlake debug target-coverage` prints.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCoverage {
    pub dataset: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub days_back: u32,
    pub threshold: f64,
    pub targets: Vec<TargetCoverageRow>,
    pub days: Vec<DayCoverage>,
}

impl TargetCoverage {
    pub fn target(&self, name: &str) -> Option<&TargetCoverageRow> {
        self.targets.iter().find(|t| t.target == name)
    }

    /// The coverage of the rows whose label can be known, for judging the label set's health (the
    /// training fallback asks the other question, how many rows have the target, and reads all rows).
    /// A session whose horizon reaches past `last`, the data's last session, or (a residual target)
    /// within the beta's `beta_min_sessions` of `first`, the data's first, is left out and counted in
    /// `not_yet_known`: a new lake is not judged on labels that cannot exist yet.
    pub fn knowable(mut self, contract: &DatasetContract, first: NaiveDate, last: NaiveDate) -> Self {
        let reach = reaches(contract);
        let knowable = |target: &str, d: NaiveDate| {
            let r = reach.get(target).copied().unwrap_or_default();
            d <= NyseCalendar.add_sessions(last, -i64::from(r.ahead))
                && (r.history == 0 || d >= NyseCalendar.add_sessions(first, i64::from(r.history)))
        };
        let (kept, left): (Vec<DayCoverage>, Vec<DayCoverage>) =
            std::mem::take(&mut self.days).into_iter().partition(|d| knowable(&d.target, d.date));
        for t in &mut self.targets {
            let days = kept.iter().filter(|d| d.target == t.target);
            (t.rows, t.covered) = days.fold((0, 0), |(n, c), d| (n + d.rows, c + d.covered));
            t.coverage = ratio(t.covered, t.rows);
            // Nothing knowable yet is no finding; knowable rows without their label are.
            t.below_threshold = t.rows > 0 && t.coverage < self.threshold;
            t.not_yet_known = left.iter().filter(|d| d.target == t.target).map(|d| d.rows).sum();
        }
        self.days = kept;
        self
    }
}

/// How far a target's label reaches from its row: `ahead` sessions after it (a session horizon), and
/// the `history` sessions before it a residual's beta needs.
#[derive(Debug, Clone, Copy, Default)]
struct Reach {
    ahead: u32,
    history: u32,
}

/// Each target's [`Reach`], from the label set's definition (read here from its two fields, since
/// `dq` sits below `features`, which parses the whole definition).
fn reaches(contract: &DatasetContract) -> std::collections::BTreeMap<String, Reach> {
    let Some(d) = contract.definition.as_ref() else { return Default::default() };
    let int = |v: Option<&toml::Value>| v.and_then(toml::Value::as_integer).map_or(0, |n| n.max(0) as u32);
    let history = int(d.get("beta_min_sessions"));
    let targets = d.get("targets").and_then(toml::Value::as_array).cloned().unwrap_or_default();
    let ahead = |name: &str| {
        let target = targets.iter().find(|t| t.get("name").and_then(toml::Value::as_str) == Some(name));
        target.map_or(0, |t| int(t.get("horizon_sessions")))
    };
    targets
        .iter()
        .filter_map(|t| {
            let name = t.get("name")?.as_str()?.to_string();
            let reach = match t.get("residual_of").and_then(toml::Value::as_str) {
                Some(base) => Reach { ahead: ahead(base), history },
                None => Reach { ahead: ahead(&name), history: 0 },
            };
            Some((name, reach))
        })
        .collect()
}

/// The targets of a label set's contract (`[definition] kind = "labels"`), or `None` for other datasets.
pub fn label_targets(contract: &DatasetContract) -> Option<Vec<String>> {
    let d = contract.definition.as_ref()?;
    if d.get("kind")?.as_str()? != "labels" {
        return None;
    }
    Some(d.get("targets")?.as_array()?.iter().filter_map(|t| Some(t.get("name")?.as_str()?.to_string())).collect())
}

/// Coverage of `dataset`'s targets over the `days_back` sessions ending at `end`, at `as_of`.
pub async fn target_coverage(
    lake: &Lake,
    dataset: &str,
    end: NaiveDate,
    days_back: u32,
    threshold: f64,
    as_of: &AsOf,
) -> Result<TargetCoverage> {
    let ds = lake.dataset(dataset)?;
    let targets = label_targets(ds.contract())
        .ok_or_else(|| Error::invalid(format!("dataset '{dataset}' is not a label set")))?;
    if days_back == 0 {
        return Err(Error::Config("DAYS_BACK must be at least 1".into()));
    }
    let end = if NyseCalendar.is_session(end) { end } else { NyseCalendar.previous_session(end) };
    let start = NyseCalendar.add_sessions(end, 1 - i64::from(days_back));
    // Target names come from the contract: checked column names, safe to splice.
    let counts: Vec<String> = targets.iter().map(|t| format!("count({t}) AS {t}")).collect();
    let sql = format!(
        "SELECT CAST(date AS DATE) AS date, count(*) AS rows, {} FROM {} WHERE date BETWEEN DATE '{start}' AND DATE '{end}' GROUP BY ALL ORDER BY 1",
        counts.join(", "),
        ds.name()
    );
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    // (rows, covered) per target, in the order of `targets`.
    let mut totals: Vec<(u64, u64)> = vec![(0, 0); targets.len()];
    let mut days = Vec::new();
    for b in &batches {
        let date = b
            .column(0)
            .as_primitive_opt::<Date32Type>()
            .ok_or_else(|| Error::invalid("target coverage: date is not a date"))?;
        let rows = b
            .column(1)
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| Error::invalid("target coverage: count is not int64"))?;
        for i in 0..b.num_rows() {
            let Some(d) = date.value_as_date(i) else { continue };
            let n = rows.value(i) as u64;
            for (j, t) in targets.iter().enumerate() {
                let covered = b.column(2 + j).as_primitive::<Int64Type>().value(i) as u64;
                let e = &mut totals[j];
                (e.0, e.1) = (e.0 + n, e.1 + covered);
                days.push(DayCoverage { date: d, target: t.clone(), rows: n, covered, coverage: ratio(covered, n) });
            }
        }
    }
    let rows: Vec<TargetCoverageRow> = targets
        .iter()
        .zip(&totals)
        .map(|(t, &(n, covered))| {
            let coverage = ratio(covered, n);
            TargetCoverageRow {
                target: t.clone(),
                rows: n,
                covered,
                coverage,
                below_threshold: coverage < threshold,
                not_yet_known: 0,
            }
        })
        .collect();
    for r in &rows {
        tracing::info!(
            dataset,
            target = r.target,
            "Target coverage analysis: {} coverage {:.4} ({} of {} rows, {start}..{end}, threshold {threshold})",
            r.target,
            r.coverage,
            r.covered,
            r.rows
        );
    }
    Ok(TargetCoverage { dataset: dataset.into(), start, end, days_back, threshold, targets: rows, days })
}

/// covered / rows; no rows is no coverage.
fn ratio(covered: u64, rows: u64) -> f64 {
    if rows == 0 { 0.0 } else { covered as f64 / rows as f64 }
}
