//! The lake's own alert conditions, judged as of a date (default: the last completed NYSE session),
//! each from the library function that already computes it:
//!
//! | key | CRITICAL | WARNING |
//! |---|---|---|
//! | `health:<dataset>` (each dataset with `[quality]` rules and data, and `predictions`) | health RED | - |
//! | `breadth:<feature set>` (features-layer datasets with `[quality]` rules) | fewer symbols than `FEATURE_BREADTH_MIN_SYMBOLS` | fewer than `FEATURE_BREADTH_WARN_SYMBOLS` |
//! | `feature_coverage:<feature set>` | coverage rate below the contract's `min_symbols_covered.fail` | below its `warn` (90%) |
//! | `target_coverage:<label set>` (label sets with data) | a target below `MIN_TARGET_COVERAGE` over `DAYS_BACK` sessions | - |
//! | `lag:raw`, `lag:curated`, `lag:features` | latest session more than `lag_critical_sessions` behind | more than `lag_warning_sessions` (2) |
//!
//! A layer's latest session is the newest among its datasets (the freshest raw source counts); a layer
//! with no data at all is OK ("not judged"), so a lake that never computes features does not alert.
//! Datasets without data are skipped for the same reason.

use chrono::NaiveDate;
use serde::Serialize;
use serde_json::json;

use super::{AlertEvent, AlertSettings, Condition, Severity, observe};
use crate::calendar::NyseCalendar;
use crate::contract::Layer;
use crate::dq::{self, DatasetHealth, HealthSettings, Status};
use crate::error::Result;
use crate::models::{self, PredictionQualitySettings};
use crate::ops::breadth::breadth_of;
use crate::table::AsOf;
use crate::table::Lake;
use crate::universe::UniverseSettings;

/// The layers whose lag is watched.
const LAGGED_LAYERS: [Layer; 3] = [Layer::Raw, Layer::Curated, Layer::Features];

/// The conditions and the session they were judged against.
#[derive(Debug, Clone, Serialize)]
pub struct LakeConditions {
    pub reference_session: NaiveDate,
    pub conditions: Vec<Condition>,
}

/// `quantlake alerts check`: the conditions, the alerts they caused, and the worst severity.
#[derive(Debug, Clone, Serialize)]
pub struct AlertCheckReport {
    pub reference_session: NaiveDate,
    pub severity: Severity,
    pub conditions: Vec<Condition>,
    pub alerts: Vec<AlertEvent>,
}

/// The settings the lake's conditions are judged by (`PipelineSettings::conditions` gathers them).
#[derive(Debug, Clone, Copy)]
pub struct ConditionSettings<'a> {
    pub health: &'a HealthSettings,
    pub breadth: &'a UniverseSettings,
    pub alerts: &'a AlertSettings,
    pub predictions: &'a PredictionQualitySettings,
}

/// Judges every lake condition (see the module docs) as of `as_of_date`.
pub async fn lake_conditions(
    lake: &Lake,
    as_of_date: Option<NaiveDate>,
    settings: ConditionSettings<'_>,
) -> Result<LakeConditions> {
    let ConditionSettings { health, breadth, alerts, predictions } = settings;
    let reference = dq::reference_session(as_of_date);
    let view = lake.view().await?;
    let mut conditions = Vec::new();
    // Per watched layer: its newest session and the dataset holding it.
    let mut newest: Vec<Option<(NaiveDate, String)>> = vec![None; LAGGED_LAYERS.len()];
    for ds in lake.all_datasets() {
        let state = ds.latest_in(&view).await?;
        if state.partitions.is_empty() {
            continue;
        }
        let contract = ds.contract();
        if let Some(i) = LAGGED_LAYERS.iter().position(|l| *l == contract.layer) {
            let latest = state.partitions.values().filter_map(|e| dq::last_session_in(e, reference)).max();
            if let Some(d) = latest.filter(|d| newest[i].as_ref().is_none_or(|(n, _)| d > n)) {
                newest[i] = Some((d, ds.name().to_string()));
            }
        }
        if contract.quality.is_some() {
            let h = dq::get_dataset_health(lake, ds.name(), as_of_date, health, breadth).await?;
            conditions.push(health_condition(&h));
            if contract.layer == Layer::Features {
                conditions.extend(breadth_conditions(lake, &h, breadth).await?);
            }
        }
        if dq::target_coverage::label_targets(contract).is_some() {
            conditions.push(target_coverage_condition(lake, ds.name(), reference, health).await?);
        }
        // Batch scoring's output: an unscored or shifted session is RED, no new predictions SEV-1.
        if ds.name() == models::PREDICTIONS {
            let h = models::predictions_health(lake, as_of_date, health, predictions).await?;
            conditions.push(health_condition(&h));
        }
    }
    for (layer, newest) in LAGGED_LAYERS.iter().zip(newest) {
        conditions.push(lag_condition(*layer, newest, reference, alerts));
    }
    Ok(LakeConditions { reference_session: reference, conditions })
}

/// Judges the lake's conditions and observes them: `quantlake alerts check`.
pub async fn check_lake(
    lake: &Lake,
    as_of_date: Option<NaiveDate>,
    settings: ConditionSettings<'_>,
) -> Result<AlertCheckReport> {
    let judged = lake_conditions(lake, as_of_date, settings).await?;
    let emitted = observe(lake, settings.alerts, &judged.conditions).await?;
    let severity = judged.conditions.iter().map(|c| c.severity).max().unwrap_or(Severity::Ok);
    Ok(AlertCheckReport {
        reference_session: judged.reference_session,
        severity,
        conditions: judged.conditions,
        alerts: emitted,
    })
}

/// RED health is critical; YELLOW is left to the narrower conditions (breadth, coverage, lag).
fn health_condition(h: &DatasetHealth) -> Condition {
    let problems: Vec<String> = h.problems().collect();
    let verdict =
        format!("{} {}{}", h.dataset, h.status, h.severity.as_deref().map(|s| format!(" {s}")).unwrap_or_default());
    let summary = if problems.is_empty() {
        verdict
    } else {
        format!(
            "{verdict}: {}{}",
            problems.iter().take(3).cloned().collect::<Vec<_>>().join("; "),
            if problems.len() > 3 { format!(" (+{} more)", problems.len() - 3) } else { String::new() }
        )
    };
    let severity = if h.status == Status::Red { Severity::Critical } else { Severity::Ok };
    Condition::new(format!("health:{}", h.dataset), severity, summary).with_details(json!({
        "status": h.status, "severity": h.severity, "snapshot_id": h.snapshot_id,
        "reference_session": h.reference_session, "latest_session": h.latest_session, "problems": problems,
    }))
}

/// Symbol breadth and the coverage rate within a feature set, from its health.
async fn breadth_conditions(lake: &Lake, h: &DatasetHealth, breadth: &UniverseSettings) -> Result<[Condition; 2]> {
    let r = breadth_of(lake, h, breadth).await?;
    let on = r.latest_session.map_or("no session".into(), |d| d.to_string());
    let symbols = Condition::new(
        format!("breadth:{}", r.dataset),
        r.breadth.into(),
        format!("{} symbols with features on {on} (critical below {}, warning below {})", r.symbols, r.breadth_min_symbols, r.breadth_warn_symbols),
    )
    .with_details(json!({ "symbols": r.symbols, "latest_session": r.latest_session, "min_symbols": r.breadth_min_symbols, "warn_symbols": r.breadth_warn_symbols }));
    let low: Vec<String> = r
        .coverage
        .iter()
        .filter(|c| c.status != Status::Green)
        .map(|c| format!("{} {}", c.partition, c.detail))
        .collect();
    let coverage_summary = if low.is_empty() {
        format!("coverage rate ok in {} partition(s)", r.coverage.len())
    } else {
        format!("coverage rate low: {}", low.join("; "))
    };
    let coverage =
        Condition::new(format!("feature_coverage:{}", r.dataset), r.coverage_status.into(), coverage_summary)
            .with_details(json!({ "partitions": r.coverage }));
    Ok([symbols, coverage])
}

/// A label set's targets over the last `DAYS_BACK` sessions against `MIN_TARGET_COVERAGE`.
async fn target_coverage_condition(
    lake: &Lake,
    dataset: &str,
    reference: NaiveDate,
    health: &HealthSettings,
) -> Result<Condition> {
    let ds = lake.dataset(dataset)?;
    let state = ds.latest().await?;
    let mut tc = dq::target_coverage(
        lake,
        dataset,
        reference,
        health.target_days_back,
        health.min_target_coverage,
        &AsOf::pinned(&[(dataset.to_string(), state.snapshot_id)].into()),
    )
    .await?;
    // Judged like `health` judges it: on the rows whose labels can be known by now.
    if let Some((first, last)) = dq::data_span(&state) {
        tc = tc.knowable(ds.contract(), first, last);
    }
    let below: Vec<String> = tc
        .targets
        .iter()
        .filter(|t| t.below_threshold)
        .map(|t| format!("{} {:.2}%", t.target, t.coverage * 100.0))
        .collect();
    let window = format!(
        "over {} sessions {}..{} (MIN_TARGET_COVERAGE {:.0}%)",
        tc.days_back,
        tc.start,
        tc.end,
        tc.threshold * 100.0
    );
    let (severity, summary) = if below.is_empty() {
        (Severity::Ok, format!("every target covered {window}"))
    } else {
        (Severity::Critical, format!("target coverage below threshold: {} {window}", below.join(", ")))
    };
    Ok(Condition::new(format!("target_coverage:{dataset}"), severity, summary)
        .with_details(json!({ "targets": tc.targets, "start": tc.start, "end": tc.end, "threshold": tc.threshold })))
}

/// A layer's latest session against the reference session.
fn lag_condition(
    layer: Layer,
    newest: Option<(NaiveDate, String)>,
    reference: NaiveDate,
    alerts: &AlertSettings,
) -> Condition {
    let key = format!("lag:{}", layer.as_str());
    let Some((latest, dataset)) = newest else {
        return Condition::new(key, Severity::Ok, format!("no {} data: not judged", layer.as_str()))
            .with_details(json!({ "reference_session": reference }));
    };
    let lag = NyseCalendar.sessions_between(latest, reference);
    let severity = if lag > alerts.lag_critical_sessions {
        Severity::Critical
    } else if lag > alerts.lag_warning_sessions {
        Severity::Warning
    } else {
        Severity::Ok
    };
    let summary = format!(
        "latest {} session {latest} ({dataset}) is {lag} session(s) behind {reference} (warning above {}, critical above {})",
        layer.as_str(),
        alerts.lag_warning_sessions,
        alerts.lag_critical_sessions
    );
    Condition::new(key, severity, summary).with_details(json!({
        "layer": layer.as_str(), "latest_session": latest, "dataset": dataset, "reference_session": reference, "lag_sessions": lag,
        "warning_above": alerts.lag_warning_sessions, "critical_above": alerts.lag_critical_sessions,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lag_counts_sessions_against_the_thresholds() {
        let settings = AlertSettings::default();
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap();
        let judge = |latest: &str, reference: &str| {
            lag_condition(Layer::Curated, Some((day(latest), "curated_1m_bars".into())), day(reference), &settings)
        };
        assert_eq!(judge("2024-01-12", "2024-01-12").severity, Severity::Ok);
        // 2024-01-15 is Martin Luther King Jr. Day: Friday's data is one session behind on Tuesday.
        assert_eq!(judge("2024-01-12", "2024-01-16").details["lag_sessions"], 1);
        assert_eq!(judge("2024-01-09", "2024-01-11").severity, Severity::Ok, "2 behind: not above 2");
        assert_eq!(judge("2024-01-08", "2024-01-11").severity, Severity::Warning);
        assert_eq!(judge("2024-01-04", "2024-01-11").severity, Severity::Warning, "5 behind: not above 5");
        let critical = judge("2024-01-03", "2024-01-11");
        assert_eq!((critical.severity, critical.key.as_str()), (Severity::Critical, "lag:curated"));
        assert!(critical.summary.contains("6 session(s) behind 2024-01-11"), "{}", critical.summary);
        assert_eq!(
            lag_condition(Layer::Features, None, day("2024-01-11"), &settings).severity,
            Severity::Ok,
            "no data: not judged"
        );
    }
}
