//! A deterministic synthetic source: a seeded random walk with realistic prices, intraday volatility
//! and volume shapes, and optional injected gaps, duplicates and bad ticks.
//!
//! Each symbol has a fixed character (price level, volatility, liquidity) and follows one daily random
//! walk from 2000-01-01, so prices are continuous from day to day; the seed changes the minute-by-minute
//! path and the injected defects. Every (seed, symbol, session) has its own random stream, so the bars
//! of one symbol-session never depend on which other symbols or dates were asked for: re-ingesting a
//! range gives identical rows, which is what resume and backfill tests compare against.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chrono::{Duration, NaiveDate};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::bars::{Bar, BarSize};
use crate::calendar::Session;
use crate::error::{Error, Result};
use crate::sources::{BarSource, Fetched, SymbolSession};
use crate::symbol::Symbol;

/// Settings of the synthetic source (the `[synthetic]` section of the config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SyntheticSettings {
    pub seed: u64,
    /// Probability that a minute bar is missing.
    pub gap_rate: f64,
    /// Probability that a minute bar is delivered twice.
    pub duplicate_rate: f64,
    /// Probability that a minute bar's close is a bad tick (25% off).
    pub outlier_rate: f64,
}

impl Default for SyntheticSettings {
    fn default() -> Self {
        Self { seed: 42, gap_rate: 0.0, duplicate_rate: 0.0, outlier_rate: 0.0 }
    }
}

impl SyntheticSettings {
    fn check(&self) -> Result<()> {
        for (name, v) in
            [("gap_rate", self.gap_rate), ("duplicate_rate", self.duplicate_rate), ("outlier_rate", self.outlier_rate)]
        {
            if !(0.0..=1.0).contains(&v) {
                return Err(Error::invalid(format!("synthetic {name} must be between 0 and 1, got {v}")));
            }
        }
        Ok(())
    }
}

/// Well-known tickers used first when a number of symbols is asked for; then `SYN0051`, ...
const TICKERS: &[&str] = &[
    "AAPL", "MSFT", "AMZN", "NVDA", "GOOGL", "META", "BRK.B", "TSLA", "JPM", "V", "UNH", "XOM", "JNJ", "WMT", "MA",
    "PG", "HD", "CVX", "MRK", "ABBV", "KO", "PEP", "AVGO", "COST", "LLY", "ORCL", "BAC", "MCD", "CSCO", "TMO", "ACN",
    "ABT", "CRM", "DHR", "ADBE", "NFLX", "WFC", "DIS", "TXN", "NKE", "PM", "VZ", "INTC", "AMD", "QCOM", "IBM", "CAT",
    "GS", "SPY", "QQQ",
];

/// `n` symbol names, deterministic.
pub fn symbol_names(n: usize) -> Result<Vec<Symbol>> {
    let name = |i: usize| TICKERS.get(i).map_or_else(|| format!("SYN{:04}", i + 1), |t| t.to_string());
    (0..n).map(|i| Symbol::new(&name(i))).collect()
}

const EPOCH: NaiveDate = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d,
    None => panic!("valid date"),
};

/// The synthetic source.
#[derive(Debug, Clone)]
pub struct SyntheticSource {
    settings: SyntheticSettings,
    /// Per symbol: log price at the open of each calendar day since [`EPOCH`].
    walks: Arc<Mutex<HashMap<String, Arc<Vec<f64>>>>>,
}

/// Per-symbol character: price level, volatility, liquidity.
struct Profile {
    log_price0: f64,
    daily_vol: f64,
    volume_per_minute: f64,
}

impl SyntheticSource {
    pub fn new(settings: SyntheticSettings) -> Result<Self> {
        settings.check()?;
        Ok(Self { settings, walks: Arc::default() })
    }

    /// A random stream for `parts`; `seeded` streams change with the seed, the others are the symbol's
    /// fixed character (price level, volatility, daily path), so two seeds give two versions of the
    /// same market rather than two different ones.
    fn rng(&self, seeded: bool, parts: &[&[u8]]) -> ChaCha8Rng {
        let mut h = Sha256::new();
        h.update(if seeded { self.settings.seed } else { 0 }.to_le_bytes());
        for p in parts {
            h.update((p.len() as u64).to_le_bytes());
            h.update(p);
        }
        ChaCha8Rng::from_seed(h.finalize().into())
    }

    fn profile(&self, symbol: &str) -> Profile {
        let mut rng = self.rng(false, &[b"profile", symbol.as_bytes()]);
        Profile {
            log_price0: rng.random_range(10f64.ln()..400f64.ln()),
            daily_vol: rng.random_range(0.01..0.03),
            volume_per_minute: rng.random_range(2_000.0..60_000.0),
        }
    }

    /// Log price at the open of `date`, from the symbol's daily walk.
    fn open_log_price(&self, symbol: &str, profile: &Profile, date: NaiveDate) -> f64 {
        let day = (date - EPOCH).num_days().max(0) as usize;
        let mut walks = self.walks.lock().unwrap_or_else(|e| e.into_inner());
        let walk = walks.entry(symbol.to_string()).or_default();
        if walk.len() <= day {
            let mut rng = self.rng(false, &[b"walk", symbol.as_bytes()]);
            let mut v = Vec::with_capacity(day + 256);
            let mut x = profile.log_price0;
            for _ in 0..day + 256 {
                v.push(x);
                // Mean-reverting in the log price keeps 30 years of walk in a realistic range.
                x += profile.daily_vol * normal(&mut rng) - 0.002 * (x - profile.log_price0);
            }
            *walk = Arc::new(v);
        }
        walk[day]
    }

    /// The bars of one symbol in one session (regular hours), with the configured defects injected.
    pub fn bars(&self, symbol: &str, session: &Session) -> Vec<Bar> {
        let profile = self.profile(symbol);
        let date = session.date.format("%Y-%m-%d").to_string();
        let mut rng = self.rng(true, &[b"bars", symbol.as_bytes(), date.as_bytes()]);
        let mut defects = self.rng(true, &[b"defects", symbol.as_bytes(), date.as_bytes()]);
        let minutes = session.minutes() as usize;
        let minute_vol = profile.daily_vol / (390f64).sqrt();
        let mut log_price = self.open_log_price(symbol, &profile, session.date);
        let mut bars = Vec::with_capacity(minutes + 4);
        for i in 0..minutes {
            // Volatility and volume are U-shaped over the day: busy at the open and the close.
            let x = i as f64 / minutes.max(1) as f64;
            let shape = 1.0 + 1.5 * (2.0 * x - 1.0).powi(2);
            let open = log_price.exp();
            log_price += minute_vol * shape.sqrt() * normal(&mut rng);
            let close = log_price.exp();
            let wick = minute_vol * 0.5;
            let high = open.max(close) * (1.0 + wick * normal(&mut rng).abs());
            let low = open.min(close) * (1.0 - wick * normal(&mut rng).abs());
            let volume = (profile.volume_per_minute * shape * (0.5 * normal(&mut rng)).exp()).round();
            let mut bar = Bar {
                ts: session.open + Duration::minutes(i as i64),
                open: round_cents(open),
                high: round_cents(high),
                low: round_cents(low),
                close: round_cents(close),
                volume,
                vwap: Some(((open + high + low + close) / 4.0 * 10_000.0).round() / 10_000.0),
                trade_count: Some((volume as i64 / 120).max(1)),
            };
            bar.high = bar.high.max(bar.open).max(bar.close);
            bar.low = bar.low.min(bar.open).min(bar.close);
            let (gap, dup, bad) = (defects.random::<f64>(), defects.random::<f64>(), defects.random::<f64>());
            if gap < self.settings.gap_rate {
                continue;
            }
            if bad < self.settings.outlier_rate {
                bar.close = round_cents(bar.close * if defects.random_bool(0.5) { 1.25 } else { 0.75 });
                bar.high = bar.high.max(bar.close);
                bar.low = bar.low.min(bar.close);
            }
            bars.push(bar);
            if dup < self.settings.duplicate_rate {
                bars.push(bar);
            }
        }
        bars
    }
}

impl BarSource for SyntheticSource {
    fn name(&self) -> &str {
        "synthetic"
    }

    fn request_metadata(&self) -> serde_json::Value {
        let s = &self.settings;
        serde_json::json!({ "seed": s.seed, "gap_rate": s.gap_rate, "duplicate_rate": s.duplicate_rate, "outlier_rate": s.outlier_rate })
    }

    async fn fetch(&self, symbols: &[Symbol], sessions: &[Session], size: BarSize) -> Result<Fetched> {
        // Each symbol-session is seeded on its own, so they are generated in parallel (off the async
        // runtime), in order.
        let (source, symbols, sessions) = (self.clone(), symbols.to_vec(), sessions.to_vec());
        let series = tokio::task::spawn_blocking(move || {
            let pairs: Vec<(&Symbol, &Session)> =
                symbols.iter().flat_map(|symbol| sessions.iter().map(move |session| (symbol, session))).collect();
            pairs
                .par_iter()
                .map(|(symbol, session)| {
                    let minute = source.bars(symbol, session);
                    let bars = match size {
                        BarSize::Minute => minute,
                        BarSize::Day => daily(session, &minute).into_iter().collect(),
                    };
                    SymbolSession { symbol: (*symbol).clone(), session: **session, bars }
                })
                .collect()
        })
        .await?;
        Ok(Fetched { series, ..Fetched::default() })
    }
}

/// The session's daily bar from its minute bars.
fn daily(session: &Session, minute: &[Bar]) -> Option<Bar> {
    let first = minute.first()?;
    let last = minute.last()?;
    let volume: f64 = minute.iter().map(|b| b.volume).sum();
    let notional: f64 = minute.iter().map(|b| b.vwap.unwrap_or(b.close) * b.volume).sum();
    Some(Bar {
        // Midnight New York, like every daily dataset (the vendors' convention).
        ts: session.open - Duration::minutes(9 * 60 + 30),
        open: first.open,
        high: minute.iter().map(|b| b.high).fold(f64::MIN, f64::max),
        low: minute.iter().map(|b| b.low).fold(f64::MAX, f64::min),
        close: last.close,
        volume,
        vwap: (volume > 0.0).then(|| (notional / volume * 10_000.0).round() / 10_000.0),
        trade_count: Some(minute.iter().filter_map(|b| b.trade_count).sum()),
    })
}

fn round_cents(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

/// A standard normal draw (Box-Muller): written out so the stream is fixed by this file alone.
fn normal(rng: &mut ChaCha8Rng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::NyseCalendar;

    fn session(d: &str) -> Session {
        NyseCalendar.session(NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap()).unwrap()
    }

    #[test]
    fn bars_are_deterministic_and_independent_of_other_requests() {
        let a = SyntheticSource::new(SyntheticSettings::default()).unwrap();
        let b = SyntheticSource::new(SyntheticSettings::default()).unwrap();
        let s = session("2024-01-03");
        let _ = b.bars("MSFT", &session("2024-06-03"));
        assert_eq!(a.bars("AAPL", &s), b.bars("AAPL", &s));
        assert_ne!(a.bars("AAPL", &s), a.bars("MSFT", &s));
        let other_seed = SyntheticSource::new(SyntheticSettings { seed: 7, ..Default::default() }).unwrap();
        assert_ne!(a.bars("AAPL", &s), other_seed.bars("AAPL", &s));
    }

    #[test]
    fn bars_are_valid_one_minute_ohlcv() {
        let src = SyntheticSource::new(SyntheticSettings::default()).unwrap();
        let s = session("2024-03-11"); // first session after the DST change
        let bars = src.bars("NVDA", &s);
        assert_eq!(bars.len(), 390);
        assert_eq!(bars[0].ts, s.open);
        assert_eq!(bars[389].ts, s.close - Duration::minutes(1));
        for b in &bars {
            assert!(b.low <= b.open.min(b.close) && b.high >= b.open.max(b.close) && b.low > 0.0, "{b:?}");
            assert!(b.volume > 0.0);
        }
        let early = session("2024-11-29");
        assert_eq!(src.bars("NVDA", &early).len(), 210);
        // Day to day the walk is continuous: the next open is near the previous close.
        let next = src.bars("NVDA", &session("2024-03-12"));
        let jump = (next[0].open / bars[389].close).ln().abs();
        assert!(jump < 0.15, "overnight jump {jump}");
    }

    #[test]
    fn injected_defects_follow_the_rates() {
        let src = SyntheticSource::new(SyntheticSettings {
            seed: 1,
            gap_rate: 0.05,
            duplicate_rate: 0.02,
            outlier_rate: 0.01,
        })
        .unwrap();
        let days = NyseCalendar
            .sessions(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(), NaiveDate::from_ymd_opt(2024, 1, 31).unwrap());
        let (mut rows, mut unique) = (0usize, 0usize);
        for s in &days {
            let bars = src.bars("AAPL", s);
            rows += bars.len();
            let mut ts: Vec<_> = bars.iter().map(|b| b.ts).collect();
            ts.dedup();
            unique += ts.len();
        }
        let grid = days.len() * 390;
        let missing = (grid - unique) as f64 / grid as f64;
        let dups = (rows - unique) as f64 / grid as f64;
        assert!((0.03..0.07).contains(&missing), "gap share {missing}");
        assert!((0.01..0.03).contains(&dups), "duplicate share {dups}");
        assert!(SyntheticSource::new(SyntheticSettings { gap_rate: 2.0, ..Default::default() }).is_err());
    }

    #[test]
    fn symbol_names_are_stable() {
        let names = symbol_names(52).unwrap();
        assert_eq!(names[0], "AAPL");
        assert_eq!(names[51], "SYN0052");
    }
}
