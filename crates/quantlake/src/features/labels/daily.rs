//! Daily returns and trailing betas: each series' log return from one session's last close to the
//! next's (split-adjusted, only between consecutive sessions; a series is a security, across its
//! renames, or an unknown symbol), the market's, and the OLS slope of a series' returns on the
//! market's over the sessions before a decision day.

use std::collections::HashMap;

use super::bars::SessionBars;
use crate::reference::securities::SeriesKey;

/// Whose daily returns the market's are.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Market {
    /// The mean over the symbols with a return that session.
    EqualWeight,
    Symbol(String),
}

impl Market {
    pub fn parse(market: &str) -> Self {
        if market == "equal_weight" { Market::EqualWeight } else { Market::Symbol(market.to_string()) }
    }
}

/// The daily returns of the sessions added so far, in session order: small (one number per
/// symbol-session), so the whole range is kept.
#[derive(Debug)]
pub(super) struct DailyReturns {
    market: Market,
    beta_sessions: usize,
    beta_min_sessions: usize,
    series: HashMap<SeriesKey, SymbolDaily>,
    /// The market's return by session number; None for a session before any was added, or without one.
    market_returns: Vec<Option<f64>>,
}

#[derive(Debug, Default)]
struct SymbolDaily {
    /// The last session added with this symbol, and its daily close.
    last: Option<(usize, Option<f64>)>,
    /// (session, return) for every session with this symbol, in session order.
    returns: Vec<(usize, Option<f64>)>,
}

impl DailyReturns {
    pub fn new(market: Market, beta_sessions: u32, beta_min_sessions: u32) -> Self {
        Self {
            market,
            beta_sessions: beta_sessions as usize,
            beta_min_sessions: beta_min_sessions as usize,
            series: HashMap::new(),
            market_returns: Vec::new(),
        }
    }

    /// Adds a session's returns; sessions come in order of their number.
    pub fn add(&mut self, bars: &SessionBars) {
        let (mut sum, mut count) = (0.0, 0u32);
        let mut market = None;
        for run in &bars.symbols {
            let daily = self.series.entry(run.series.clone()).or_default();
            // A return only from the session just before: across a session without data there is none.
            let r = match daily.last {
                Some((prev, Some(prev_close))) if prev + 1 == bars.idx => {
                    run.daily_close.map(|c| (c / prev_close).ln())
                }
                _ => None,
            };
            daily.last = Some((bars.idx, run.daily_close));
            daily.returns.push((bars.idx, r));
            if let Some(r) = r {
                sum += r;
                count += 1;
            }
            if matches!(&self.market, Market::Symbol(m) if *m == run.symbol) {
                market = r;
            }
        }
        if self.market == Market::EqualWeight {
            market = (count > 0).then(|| sum / f64::from(count));
        }
        if self.market_returns.len() <= bars.idx {
            self.market_returns.resize(bars.idx + 1, None);
        }
        self.market_returns[bars.idx] = market;
    }

    /// The market's daily return of session `idx`.
    pub fn market_return(&self, idx: usize) -> Option<f64> {
        self.market_returns.get(idx).copied().flatten()
    }

    /// The beta of `series` on session `idx`: the slope over its sessions `idx - beta_sessions ..= idx - 1`
    /// (by number: sessions without the series count too) with both returns known, at least
    /// `beta_min_sessions` of them; NaN when the market's returns there do not vary.
    pub fn beta(&self, series: &SeriesKey, idx: usize) -> Option<f64> {
        let returns = &self.series.get(series)?.returns;
        let from = returns.partition_point(|(s, _)| *s < idx.saturating_sub(self.beta_sessions));
        let to = returns.partition_point(|(s, _)| *s < idx);
        let mut fit = Regression::default();
        for &(s, r) in &returns[from..to] {
            if let (Some(y), Some(x)) = (r, self.market_return(s)) {
                fit.add(y, x);
            }
        }
        (fit.count >= self.beta_min_sessions).then(|| fit.slope())
    }
}

/// DuckDB's `regr_slope(y, x)`, updated one pair at a time as it does: `covar_pop(y, x) / var_pop(x)`
/// from running means (Welford), which stays accurate where sums of squares would cancel.
#[derive(Debug, Default)]
struct Regression {
    count: usize,
    mean_x: f64,
    mean_y: f64,
    /// Sum of (x - mean x)(y - mean y).
    co_moment: f64,
    /// Sum of (x - mean x)^2.
    dsquared: f64,
}

impl Regression {
    fn add(&mut self, y: f64, x: f64) {
        self.count += 1;
        let n = self.count as f64;
        let dx = x - self.mean_x;
        let mean_x = self.mean_x + dx / n;
        let mean_y = self.mean_y + (y - self.mean_y) / n;
        self.co_moment += dx * (y - mean_y);
        self.dsquared += (x - mean_x) * dx;
        self.mean_x = mean_x;
        self.mean_y = mean_y;
    }

    /// The slope; NaN when x does not vary (DuckDB's answer to a zero variance).
    fn slope(&self) -> f64 {
        let n = self.count as f64;
        let cov = self.co_moment / n;
        let var = if self.count > 1 { self.dsquared / n } else { 0.0 };
        if var != 0.0 { cov / var } else { f64::NAN }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_slope_is_the_ols_slope() {
        let mut fit = Regression::default();
        let (xs, ys) = ([0.01, -0.02, 0.015, 0.003], [0.025, -0.03, 0.02, 0.01]);
        for (x, y) in xs.iter().zip(ys) {
            fit.add(y, *x);
        }
        let (mx, my) = (xs.iter().sum::<f64>() / 4.0, ys.iter().sum::<f64>() / 4.0);
        let sxy: f64 = xs.iter().zip(ys).map(|(x, y)| (x - mx) * (y - my)).sum();
        let sxx: f64 = xs.iter().map(|x| (x - mx) * (x - mx)).sum();
        assert!((fit.slope() - sxy / sxx).abs() < 1e-12);
        let mut flat = Regression::default();
        flat.add(0.1, 0.01);
        flat.add(0.2, 0.01);
        assert!(flat.slope().is_nan(), "no variance in x: NaN, as DuckDB");
    }
}
