//! Data quality of predictions: the null rate of a session's predictions, and the shift of their
//! distribution against a trailing window of earlier sessions' predictions (population stability
//! index over the reference's deciles, and the mean's move in reference standard deviations).

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::quality::{Check, Status, Threshold, judge};

/// `[models.quality]`: thresholds of the prediction checks (crossing `warn` is YELLOW, `fail` RED).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PredictionQualitySettings {
    /// Earlier prediction partitions (sessions) a session is compared with.
    pub shift_window: usize,
    /// Fewer non-null predictions than this in the window: no shift verdict (reported as such).
    pub min_reference_rows: usize,
    /// Share of a session's rows without a prediction (a feature was null). features_price_1m_v1 has
    /// ret_60 null in each session's first hour, so about 15% is normal for it.
    pub max_null_rate: Threshold,
    /// Population stability index against the window (0.1 / 0.25 are the usual bounds).
    pub max_psi: Threshold,
    /// |mean - window mean| / window standard deviation.
    pub max_mean_shift: Threshold,
}

impl Default for PredictionQualitySettings {
    fn default() -> Self {
        Self {
            shift_window: 20,
            min_reference_rows: 100,
            max_null_rate: Threshold { warn: 0.25, fail: 0.5 },
            max_psi: Threshold { warn: 0.1, fail: 0.25 },
            max_mean_shift: Threshold { warn: 0.5, fail: 1.0 },
        }
    }
}

/// One session's predictions judged.
#[derive(Debug, Clone, Serialize)]
pub struct SessionQuality {
    pub date: NaiveDate,
    /// The model whose predictions these are (the window holds the same model's).
    pub model_id: Option<String>,
    pub rows: u64,
    pub null_predictions: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    /// The trailing window it was compared with: sessions and non-null predictions.
    pub reference_sessions: usize,
    pub reference_rows: u64,
    pub psi: Option<f64>,
    pub mean_shift: Option<f64>,
    pub status: Status,
    pub checks: Vec<Check>,
}

/// Mean and population standard deviation.
pub fn mean_std(v: &[f64]) -> Option<(f64, f64)> {
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let var = v.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / n;
    Some((mean, var.sqrt()))
}

/// Population stability index of `current` against `reference`, over the reference's deciles (equal
/// edges merged). Each bin's share is floored at 1e-4 so an empty bin counts as a large but finite
/// change. `None` when either side is empty.
pub fn psi(reference: &[f64], current: &[f64]) -> Option<f64> {
    if reference.is_empty() || current.is_empty() {
        return None;
    }
    let mut sorted = reference.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mut edges: Vec<f64> = (1..10).map(|k| sorted[(k * sorted.len() / 10).min(sorted.len() - 1)]).collect();
    edges.dedup();
    let bin = |v: f64| edges.partition_point(|e| *e <= v);
    let shares = |values: &[f64]| {
        let mut counts = vec![0u64; edges.len() + 1];
        for v in values {
            counts[bin(*v)] += 1;
        }
        counts.into_iter().map(|c| (c as f64 / values.len() as f64).max(1e-4)).collect::<Vec<f64>>()
    };
    let (r, c) = (shares(reference), shares(current));
    Some(r.iter().zip(&c).map(|(r, c)| (c - r) * (c / r).ln()).sum())
}

/// Judges one session: `values` its non-null predictions, `nulls` its rows without one, `reference`
/// the non-null predictions of the `reference_sessions` before it.
pub fn judge_session(
    date: NaiveDate,
    values: &[f64],
    nulls: u64,
    reference: &[f64],
    reference_sessions: usize,
    settings: &PredictionQualitySettings,
) -> SessionQuality {
    let rows = values.len() as u64 + nulls;
    let mut checks = Vec::new();
    let null_rate = if rows == 0 { 0.0 } else { nulls as f64 / rows as f64 };
    if rows == 0 {
        checks.push(Check { name: "rows".into(), status: Status::Red, detail: "no predictions".into() });
    } else {
        checks.push(judge("null_rate", null_rate, settings.max_null_rate, false));
    }
    let stats = mean_std(values);
    let enough = reference.len() >= settings.min_reference_rows.max(1) && !values.is_empty();
    let (mut psi_value, mut shift) = (None, None);
    if !enough {
        let detail = format!(
            "no shift verdict: {} prediction(s) in the {reference_sessions} earlier session(s) of the window, {} needed",
            reference.len(),
            settings.min_reference_rows
        );
        checks.push(Check { name: "shift".into(), status: Status::Green, detail });
    } else {
        psi_value = psi(reference, values);
        if let Some(p) = psi_value {
            checks.push(judge("psi", p, settings.max_psi, false));
        }
        if let (Some((m, _)), Some((rm, rs))) = (stats, mean_std(reference)) {
            if rs > 0.0 {
                let z = (m - rm).abs() / rs;
                shift = Some(z);
                checks.push(judge("mean_shift", z, settings.max_mean_shift, false));
            } else {
                let status = if m == rm { Status::Green } else { Status::Red };
                checks.push(Check {
                    name: "mean_shift".into(),
                    status,
                    detail: format!("the window's predictions are all {rm}; this session's mean is {m}"),
                });
            }
        }
    }
    let status = checks.iter().map(|c| c.status).max().unwrap_or(Status::Green);
    SessionQuality {
        date,
        model_id: None,
        rows,
        null_predictions: nulls,
        mean: stats.map(|s| s.0),
        std: stats.map(|s| s.1),
        reference_sessions,
        reference_rows: reference.len() as u64,
        psi: psi_value,
        mean_shift: shift,
        status,
        checks,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic, roughly normal series (sum of uniforms from a fixed LCG).
    fn series(n: usize, seed: u64, shift: f64, scale: f64) -> Vec<f64> {
        let mut s = seed;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 11) as f64 / (1u64 << 53) as f64
        };
        (0..n).map(|_| shift + scale * ((0..12).map(|_| next()).sum::<f64>() - 6.0)).collect()
    }

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 1).unwrap()
    }

    #[test]
    fn a_shifted_series_turns_the_verdict() {
        let settings = PredictionQualitySettings::default();
        let reference = series(5000, 1, 0.0, 1.0);
        let same = judge_session(day(), &series(800, 2, 0.0, 1.0), 0, &reference, 20, &settings);
        assert_eq!(same.status, Status::Green, "{:?}", same.checks);
        assert!(same.psi.unwrap() < 0.05);
        let moved = judge_session(day(), &series(800, 3, 1.2, 1.0), 0, &reference, 20, &settings);
        assert_eq!(moved.status, Status::Red, "{:?}", moved.checks);
        assert!(moved.mean_shift.unwrap() > 1.0 && moved.psi.unwrap() > 0.25);
        let half = judge_session(day(), &series(800, 4, 0.6, 1.0), 0, &reference, 20, &settings);
        assert_eq!(half.checks.iter().find(|c| c.name == "mean_shift").unwrap().status, Status::Yellow);
        let wider = judge_session(day(), &series(800, 5, 0.0, 3.0), 0, &reference, 20, &settings);
        assert_eq!(
            wider.checks.iter().find(|c| c.name == "psi").unwrap().status,
            Status::Red,
            "a wider spread shifts the deciles"
        );
    }

    #[test]
    fn nulls_and_missing_history() {
        let settings = PredictionQualitySettings::default();
        let nulls = judge_session(day(), &series(40, 1, 0.0, 1.0), 60, &series(5000, 2, 0.0, 1.0), 20, &settings);
        assert_eq!(nulls.checks[0].name, "null_rate");
        assert_eq!(nulls.status, Status::Red, "60% null is above the 50% failure");
        let some = judge_session(day(), &series(70, 1, 0.0, 1.0), 30, &series(5000, 2, 0.0, 1.0), 20, &settings);
        assert_eq!(some.checks[0].status, Status::Yellow, "30% is above the 25% warning");
        let first = judge_session(day(), &series(100, 1, 0.0, 1.0), 0, &[], 0, &settings);
        assert_eq!(first.status, Status::Green);
        assert!(first.checks[1].detail.contains("no shift verdict"), "{:?}", first.checks);
        let empty = judge_session(day(), &[], 0, &series(500, 1, 0.0, 1.0), 20, &settings);
        assert_eq!(empty.status, Status::Red);
        assert_eq!(psi(&[1.0, 2.0], &[]), None);
    }
}
