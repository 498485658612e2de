//! Evaluation: the time-ordered holdout split and the metrics of predictions against a target.

use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};

/// How well predictions match a target over some rows. A metric that is undefined for the rows (fewer
/// than two, or no variance) is `None`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    pub rows: u64,
    /// 1 - SSE / SST, SST around the target's mean over these rows.
    pub r2: Option<f64>,
    pub mse: Option<f64>,
    /// Pearson correlation of prediction and target (the information coefficient).
    pub ic: Option<f64>,
    /// Spearman rank correlation (ties get their average rank).
    pub rank_ic: Option<f64>,
}

impl Metrics {
    pub fn of(pred: &[f64], target: &[f64]) -> Metrics {
        let n = pred.len().min(target.len());
        let (pred, target) = (&pred[..n], &target[..n]);
        if n == 0 {
            return Metrics { rows: 0, r2: None, mse: None, ic: None, rank_ic: None };
        }
        let mut sse = 0.0;
        for i in 0..n {
            let e = target[i] - pred[i];
            sse += e * e;
        }
        let mean = target.iter().sum::<f64>() / n as f64;
        let sst: f64 = target.iter().map(|t| (t - mean) * (t - mean)).sum();
        Metrics {
            rows: n as u64,
            r2: (n >= 2 && sst > 0.0).then(|| 1.0 - sse / sst),
            mse: Some(sse / n as f64),
            ic: pearson(pred, target),
            rank_ic: pearson(&ranks(pred), &ranks(target)),
        }
    }
}

/// Pearson correlation; `None` for fewer than two values or no variance.
pub fn pearson(a: &[f64], b: &[f64]) -> Option<f64> {
    let n = a.len().min(b.len());
    if n < 2 {
        return None;
    }
    let (ma, mb) = (a[..n].iter().sum::<f64>() / n as f64, b[..n].iter().sum::<f64>() / n as f64);
    let (mut sab, mut saa, mut sbb) = (0.0, 0.0, 0.0);
    for i in 0..n {
        let (da, db) = (a[i] - ma, b[i] - mb);
        sab += da * db;
        saa += da * da;
        sbb += db * db;
    }
    (saa > 0.0 && sbb > 0.0).then(|| (sab / (saa * sbb).sqrt()).clamp(-1.0, 1.0))
}

/// Ranks 1..n, ties sharing their average rank.
pub fn ranks(v: &[f64]) -> Vec<f64> {
    use rayon::slice::ParallelSliceMut;
    // Sorting the values with their positions, not positions looked up in the values: the
    // comparisons stay in cache (a year of minute rows is tens of millions). Keys are unique (the
    // position breaks ties), so the parallel sort's order is the one order.
    let mut order: Vec<(i64, usize)> = v
        .iter()
        .enumerate()
        .map(|(i, x)| {
            // f64::total_cmp's order as an integer.
            let bits = x.to_bits() as i64;
            (bits ^ (((bits >> 63) as u64) >> 1) as i64, i)
        })
        .collect();
    order.par_sort_unstable();
    let mut out = vec![0.0; v.len()];
    let mut i = 0;
    while i < order.len() {
        let mut j = i;
        while j + 1 < order.len() && v[order[j + 1].1] == v[order[i].1] {
            j += 1;
        }
        let rank = (i + j) as f64 / 2.0 + 1.0;
        for &(_, k) in &order[i..=j] {
            out[k] = rank;
        }
        i = j + 1;
    }
    out
}

/// Which rows train, which are the embargo between, which are the holdout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    pub train_sessions: Vec<NaiveDate>,
    pub embargo_sessions: Vec<NaiveDate>,
    pub holdout_sessions: Vec<NaiveDate>,
    #[serde(skip)]
    pub train_rows: Vec<usize>,
    #[serde(skip)]
    pub holdout_rows: Vec<usize>,
    /// Rows in the embargo sessions: in neither part.
    pub embargo_rows: u64,
}

/// Splits rows by the New York session of their decision time (µs): the last `holdout_fraction` of
/// the sessions (rounded up) are the holdout, the `embargo_sessions` sessions before them are left
/// out (so a training row's label window cannot reach into the holdout), the rest train. A fraction
/// of 0 means no holdout and no embargo. Rows must be in time order for the parts to be contiguous,
/// but any order is split correctly.
pub fn time_split(decision_times: &[i64], holdout_fraction: f64, embargo_sessions: usize) -> Result<Split> {
    if !(0.0..1.0).contains(&holdout_fraction) {
        return Err(Error::invalid(format!("holdout fraction must be in [0, 1), got {holdout_fraction}")));
    }
    let session = |t: i64| DateTime::<Utc>::from_timestamp_micros(t).map(|t| NyseCalendar.trading_date(t));
    let dates: Vec<NaiveDate> = decision_times
        .iter()
        .map(|&t| session(t).ok_or_else(|| Error::invalid(format!("decision time {t}us is out of range"))))
        .collect::<Result<_>>()?;
    let mut sessions = dates.clone();
    sessions.sort();
    sessions.dedup();
    let k = sessions.len();
    let (holdout, embargo) = if holdout_fraction == 0.0 {
        (0, 0)
    } else {
        (((k as f64) * holdout_fraction).ceil() as usize, embargo_sessions)
    };
    if holdout + embargo >= k {
        return Err(Error::invalid(format!(
            "{k} session(s) with usable rows cannot hold a holdout of {holdout} session(s) (fraction {holdout_fraction}) and an embargo of {embargo} with any training session left; widen the window or lower the fraction"
        )));
    }
    let train_end = k - holdout - embargo;
    let (train_sessions, rest) = sessions.split_at(train_end);
    let (embargo_list, holdout_list) = rest.split_at(embargo);
    let holdout_start = holdout_list.first().copied();
    let embargo_start = embargo_list.first().copied().or(holdout_start);
    let (mut train_rows, mut holdout_rows, mut embargo_rows) = (Vec::new(), Vec::new(), 0u64);
    for (i, d) in dates.iter().enumerate() {
        match (embargo_start, holdout_start) {
            (_, Some(h)) if *d >= h => holdout_rows.push(i),
            (Some(e), _) if *d >= e => embargo_rows += 1,
            _ => train_rows.push(i),
        }
    }
    Ok(Split {
        train_sessions: train_sessions.to_vec(),
        embargo_sessions: embargo_list.to_vec(),
        holdout_sessions: holdout_list.to_vec(),
        train_rows,
        holdout_rows,
        embargo_rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn metrics_by_hand() {
        let m = Metrics::of(&[1.0, 2.0, 3.0, 4.0], &[1.0, 2.0, 3.0, 5.0]);
        assert_eq!(m.mse, Some(0.25));
        // SST: mean 2.75 -> 3.0625 + 0.5625 + 0.0625 + 5.0625 = 8.75; 1 - 1/8.75.
        assert!((m.r2.unwrap() - (1.0 - 1.0 / 8.75)).abs() < 1e-15);
        assert_eq!(m.rank_ic, Some(1.0));
        assert!(m.ic.unwrap() > 0.98 && m.ic.unwrap() < 1.0);
        let flat = Metrics::of(&[1.0, 1.0], &[2.0, 3.0]);
        assert_eq!((flat.ic, flat.rank_ic), (None, None));
        assert_eq!(ranks(&[10.0, 20.0, 10.0, 5.0]), [2.5, 4.0, 2.5, 1.0]);
        // Negative values, zeros of both signs (equal, so tied) and infinities in total order.
        assert_eq!(ranks(&[-1.0, 0.0, f64::INFINITY, -0.0, f64::NEG_INFINITY, -2.5]), [3.0, 4.5, 6.0, 4.5, 1.0, 2.0]);
        assert_eq!(pearson(&[1.0, 2.0, 3.0], &[3.0, 2.0, 1.0]), Some(-1.0));
    }

    fn at(date: &str, minute: i64) -> i64 {
        let d = NaiveDate::parse_from_str(date, "%Y-%m-%d").unwrap();
        NyseCalendar.session(d).unwrap().open.timestamp_micros() + minute * 60_000_000
    }

    #[test]
    fn the_holdout_is_the_last_sessions_after_an_embargo() {
        let days = [
            "2024-01-02",
            "2024-01-03",
            "2024-01-04",
            "2024-01-05",
            "2024-01-08",
            "2024-01-09",
            "2024-01-10",
            "2024-01-11",
            "2024-01-12",
            "2024-01-16",
        ];
        // Rows out of order on purpose, 3 per session.
        let mut times: Vec<i64> = days.iter().flat_map(|d| [at(d, 389), at(d, 0), at(d, 100)]).collect();
        times.reverse();
        let s = time_split(&times, 0.2, 1).unwrap();
        assert_eq!(s.holdout_sessions.iter().map(|d| d.to_string()).collect::<Vec<_>>(), ["2024-01-12", "2024-01-16"]);
        assert_eq!(s.embargo_sessions.iter().map(|d| d.to_string()).collect::<Vec<_>>(), ["2024-01-11"]);
        assert_eq!(s.train_sessions.len(), 7);
        assert_eq!((s.train_rows.len(), s.embargo_rows, s.holdout_rows.len()), (21, 3, 6));
        let last_train = s.train_rows.iter().map(|&i| times[i]).max().unwrap();
        let first_holdout = s.holdout_rows.iter().map(|&i| times[i]).min().unwrap();
        assert!(last_train < first_holdout, "every training row is before every holdout row");
        assert!(first_holdout - last_train > 86_400_000_000, "a whole session between them");
        let none = time_split(&times, 0.0, 1).unwrap();
        assert_eq!((none.train_rows.len(), none.holdout_rows.len(), none.embargo_rows), (30, 0, 0));
        assert!(time_split(&times, 0.95, 1).unwrap_err().to_string().contains("cannot hold a holdout"));
        assert!(time_split(&times, 1.0, 0).is_err());
    }
}
