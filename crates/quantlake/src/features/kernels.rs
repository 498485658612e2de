//! The feature kernels: each computes one feature over one symbol-session of bars laid out on the
//! session's minute grid (position = `minute_idx`; a minute without a bar is NaN), so a lag of k is
//! always k minutes, even where a bar is missing. Every window must be whole: a window that holds a
//! missing bar gives null, as polars' `min_samples = window` does.
//!
//! The semantics are the peer benchmark's (`../shared/bench/peers/README.md`), with `r` the one-minute
//! log return `ln(close[t] / close[t-1])`:
//! - `log_return { lag }`: `ln(close[t] / close[t-lag])`; a negative lag looks ahead,
//!   `ln(close[t+|lag|] / close[t])`, which only a label may do (the training set's leakage check
//!   refuses a feature set that does);
//! - `return_std { window }`: the sample std of `r` over `t-window+1 ..= t`;
//! - `return_outlier { window, k }`: `|r[t]| > k` x the sample std of `r` over `t-window ..= t-1`;
//! - `vwap { window }`: `sum(close x volume) / sum(volume)` over `t-window+1 ..= t` (null when no volume);
//! - `rsi { window }`: `100 x gains / (gains + losses)` over the last `window` one-minute changes (null
//!   when flat).

use serde::{Deserialize, Serialize};

/// A feature's computation and its parameters, as a feature set's definition names it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kernel", rename_all = "snake_case")]
pub enum Kernel {
    LogReturn { lag: i32 },
    ReturnStd { window: usize },
    ReturnOutlier { window: usize, k: f64 },
    Vwap { window: usize },
    Rsi { window: usize },
}

impl Kernel {
    /// Bars after its own a row's value reads: a feature of the bar stamped `t` is known at `t` + (1 +
    /// this) bars.
    pub fn lookahead(&self) -> u32 {
        match self {
            Kernel::LogReturn { lag } if *lag < 0 => lag.unsigned_abs(),
            _ => 0,
        }
    }

    /// True for kernels whose value is a flag.
    pub fn is_flag(&self) -> bool {
        matches!(self, Kernel::ReturnOutlier { .. })
    }

    /// Checks the parameters, naming the feature.
    pub fn check(&self, feature: &str) -> Result<(), String> {
        let bad = |what: &str| Err(format!("feature '{feature}': {what}"));
        let reach = match *self {
            Kernel::LogReturn { lag } => lag.unsigned_abs() as usize,
            Kernel::ReturnStd { window }
            | Kernel::ReturnOutlier { window, .. }
            | Kernel::Vwap { window }
            | Kernel::Rsi { window } => window,
        };
        if reach > MAX_REACH {
            return bad(&format!("a lag or window of {reach} bars is more than a session holds ({MAX_REACH})"));
        }
        match self {
            Kernel::LogReturn { lag: 0 } => bad("lag must not be 0"),
            Kernel::ReturnStd { window } | Kernel::Vwap { window } if *window < 2 => bad("window must be at least 2"),
            Kernel::Rsi { window } if *window < 1 => bad("window must be at least 1"),
            Kernel::ReturnOutlier { window, k } if *window < 2 || !(k.is_finite() && *k > 0.0) => {
                bad("window must be at least 2 and k > 0")
            }
            _ => Ok(()),
        }
    }
}

/// The longest lag or window a kernel may have: a whole day of one-minute bars (a window never
/// crosses its session, so a longer one could never be whole).
pub const MAX_REACH: usize = 1440;

/// One symbol-session on its minute grid, and the one-minute returns every return kernel shares.
pub struct Grid<'a> {
    pub close: &'a [f64],
    pub volume: &'a [f64],
    returns: Vec<f64>,
}

impl<'a> Grid<'a> {
    /// `close` and `volume` per minute of the session, NaN where no bar.
    pub fn new(close: &'a [f64], volume: &'a [f64]) -> Self {
        let mut returns = vec![f64::NAN; close.len()];
        for t in 1..close.len() {
            returns[t] = (close[t] / close[t - 1]).ln();
        }
        Self { close, volume, returns }
    }

    pub fn len(&self) -> usize {
        self.close.len()
    }

    pub fn is_empty(&self) -> bool {
        self.close.is_empty()
    }

    /// The kernel's value at minute `t` (NaN = null; flags are 0.0 or 1.0).
    pub fn value(&self, kernel: &Kernel, t: usize) -> f64 {
        let (c, r) = (self.close, &self.returns);
        match *kernel {
            Kernel::LogReturn { lag } if lag > 0 => {
                let lag = lag as usize;
                if t >= lag { (c[t] / c[t - lag]).ln() } else { f64::NAN }
            }
            Kernel::LogReturn { lag } => {
                let ahead = lag.unsigned_abs() as usize;
                if t + ahead < c.len() { (c[t + ahead] / c[t]).ln() } else { f64::NAN }
            }
            Kernel::ReturnStd { window } => {
                if t + 1 >= window {
                    sample_std(&r[t + 1 - window..=t])
                } else {
                    f64::NAN
                }
            }
            Kernel::ReturnOutlier { window, k } => {
                if t < window || r[t].is_nan() {
                    return 0.0;
                }
                let std = sample_std(&r[t - window..t]);
                // NaN (a window with a missing bar) compares false: not an outlier.
                f64::from(u8::from(r[t].abs() > k * std))
            }
            Kernel::Vwap { window } => {
                if t + 1 < window {
                    return f64::NAN;
                }
                let (mut pv, mut v) = (0.0, 0.0);
                let rows = t + 1 - window..=t;
                for (close, volume) in c[rows.clone()].iter().zip(&self.volume[rows]) {
                    pv += close * volume;
                    v += volume;
                }
                if v > 0.0 { pv / v } else { f64::NAN }
            }
            Kernel::Rsi { window } => {
                if t < window {
                    return f64::NAN;
                }
                let (mut gain, mut loss) = (0.0, 0.0);
                for i in t + 1 - window..=t {
                    let d = c[i] - c[i - 1];
                    if d > 0.0 {
                        gain += d;
                    } else {
                        loss -= d;
                    }
                }
                // NaN sums (a missing bar) fail the test too.
                if gain + loss > 0.0 { 100.0 * gain / (gain + loss) } else { f64::NAN }
            }
        }
    }
}

/// Sample standard deviation of `values`, NaN when any is missing or there are fewer than two.
/// Two passes over the window: exact to the last bits the peers' engines give.
fn sample_std(values: &[f64]) -> f64 {
    let n = values.len();
    if n < 2 {
        return f64::NAN;
    }
    let mean = values.iter().sum::<f64>() / n as f64;
    let squares: f64 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
    (squares / (n - 1) as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(close: &[f64]) -> (Vec<f64>, Vec<f64>) {
        (close.to_vec(), vec![10.0; close.len()])
    }

    #[test]
    fn returns_by_hand() {
        let (c, v) = grid(&[100.0, 101.0, 99.0, 102.0]);
        let g = Grid::new(&c, &v);
        assert!(g.value(&Kernel::LogReturn { lag: 1 }, 0).is_nan());
        assert!((g.value(&Kernel::LogReturn { lag: 1 }, 1) - (101.0f64 / 100.0).ln()).abs() < 1e-15);
        assert!((g.value(&Kernel::LogReturn { lag: 3 }, 3) - (102.0f64 / 100.0).ln()).abs() < 1e-15);
        // Looking ahead one bar reads the next close.
        assert!((g.value(&Kernel::LogReturn { lag: -1 }, 2) - (102.0f64 / 99.0).ln()).abs() < 1e-15);
        assert!(g.value(&Kernel::LogReturn { lag: -1 }, 3).is_nan());
        assert_eq!(Kernel::LogReturn { lag: -1 }.lookahead(), 1);
        assert_eq!(Kernel::LogReturn { lag: 5 }.lookahead(), 0);
    }

    #[test]
    fn windows_must_be_whole() {
        let (mut c, v) = grid(&[100.0, 101.0, 99.0, 102.0, 103.0, 101.0]);
        let g = Grid::new(&c, &v);
        let std3 = Kernel::ReturnStd { window: 3 };
        assert!(g.value(&std3, 2).is_nan(), "r[0] is null: the window 0..=2 is not whole");
        let r: Vec<f64> = (1..4).map(|t| (c[t] / c[t - 1]).ln()).collect();
        let mean = r.iter().sum::<f64>() / 3.0;
        let want = (r.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / 2.0).sqrt();
        assert!((g.value(&std3, 3) - want).abs() < 1e-15);
        // A missing bar nulls every window that holds it or its return.
        c[4] = f64::NAN;
        let g = Grid::new(&c, &v);
        assert!(g.value(&std3, 5).is_nan());
        assert!(g.value(&Kernel::Vwap { window: 2 }, 4).is_nan());
        assert!(g.value(&Kernel::Rsi { window: 2 }, 5).is_nan());
    }

    #[test]
    fn vwap_and_rsi_by_hand() {
        let c = [10.0, 11.0, 12.0, 11.0];
        let v = [1.0, 0.0, 3.0, 1.0];
        let g = Grid::new(&c, &v);
        assert!((g.value(&Kernel::Vwap { window: 3 }, 3) - (0.0 + 36.0 + 11.0) / 4.0).abs() < 1e-12);
        let zero = [0.0; 4];
        assert!(Grid::new(&c, &zero).value(&Kernel::Vwap { window: 3 }, 3).is_nan(), "no volume: null");
        // Changes +1, +1, -1 over the last 3: gains 2, losses 1.
        assert!((g.value(&Kernel::Rsi { window: 3 }, 3) - 100.0 * 2.0 / 3.0).abs() < 1e-12);
        assert!(g.value(&Kernel::Rsi { window: 3 }, 2).is_nan(), "needs 3 changes");
        let flat = [5.0; 4];
        assert!(Grid::new(&flat, &v).value(&Kernel::Rsi { window: 3 }, 3).is_nan(), "flat: null");
    }

    #[test]
    fn an_outlier_is_judged_against_the_previous_window() {
        let mut c: Vec<f64> = (0..40).map(|i| 100.0 + (i % 3) as f64 * 0.01).collect();
        c[35] = 110.0;
        let v = vec![1.0; c.len()];
        let g = Grid::new(&c, &v);
        let k = Kernel::ReturnOutlier { window: 30, k: 10.0 };
        let flagged: Vec<usize> = (0..c.len()).filter(|&t| g.value(&k, t) == 1.0).collect();
        assert_eq!(flagged, [35]);
        assert_eq!(g.value(&k, 30), 0.0, "not before window + 1");
        assert!(Kernel::ReturnOutlier { window: 30, k: 0.0 }.check("x").is_err());
        assert!(Kernel::LogReturn { lag: 0 }.check("x").unwrap_err().contains("'x'"));
        assert!(Kernel::LogReturn { lag: i32::MIN }.check("x").unwrap_err().contains("more than a session holds"));
        assert!(Kernel::Vwap { window: 100_000 }.check("x").is_err());
    }
}
