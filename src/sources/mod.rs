//! Sources of bars. A [`BarSource`] answers one question: the bars of some symbols over a run of
//! sessions; a [`file::FileImport`] reads what a file holds. Neither knows anything of the lake:
//! [`crate::ingest`] turns what they return into raw-layer commits.
//!
//! Each source decides how to ask its upstream: TWS one request per symbol and day (IB's rule for
//! minute bars), Polygon one paginated request per symbol and range, Alpaca one paginated request for
//! all symbols, the synthetic source a computation per session.

pub mod alpaca;
pub mod file;
mod http;
pub mod polygon;
pub mod synthetic;
pub mod tws;

use std::future::Future;

use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use crate::calendar::Session;
use crate::error::Result;

pub use http::HttpSettings;

/// Bar length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, clap::ValueEnum)]
pub enum BarSize {
    #[value(name = "1m")]
    #[serde(rename = "1m")]
    Minute,
    #[value(name = "1d")]
    #[serde(rename = "1d")]
    Day,
}

impl BarSize {
    pub fn as_str(self) -> &'static str {
        match self {
            BarSize::Minute => "1m",
            BarSize::Day => "1d",
        }
    }
}

/// One bar as a source delivers it; `ts` is the bar's start. Volume is a float because some vendors
/// deliver fractional share volumes; a dataset whose contract says `int64` refuses a fractional one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: f64,
    pub vwap: Option<f64>,
    pub trade_count: Option<i64>,
}

/// A source's answer for one (symbol, session). An empty `bars` means the source has no data for it
/// (a holiday, a halted or not yet listed symbol): recorded as done, not as a failure.
#[derive(Debug, Clone)]
pub struct SymbolSession {
    pub symbol: String,
    pub session: Session,
    pub bars: Vec<Bar>,
}

/// A symbol the source refused for good (unknown contract, no permission): the other symbols go on.
#[derive(Debug, Clone, Serialize)]
pub struct SymbolFailure {
    pub symbol: String,
    pub error: String,
}

/// What a source returned for some symbols over some sessions: one [`SymbolSession`] per requested
/// (symbol, session) that did not fail, in any order, plus the symbols that failed.
#[derive(Debug, Clone, Default)]
pub struct Fetched {
    pub series: Vec<SymbolSession>,
    pub failed: Vec<SymbolFailure>,
    /// Bars the source returned outside the requested sessions (e.g. a vendor's weekend print); logged
    /// and counted, not stored.
    pub outside_sessions: u64,
}

/// A source of bars.
pub trait BarSource: Send + Sync {
    /// Name recorded in the `source` column and in commits (`synthetic`, `tws`, ...).
    fn name(&self) -> &str;

    /// The raw dataset this source's bars of `size` go to.
    fn dataset(&self, size: BarSize) -> String {
        match size {
            BarSize::Minute => format!("raw_{}_bars", self.name()),
            BarSize::Day => format!("raw_{}_daily_bars", self.name()),
        }
    }

    /// How this source asks (adjustment, feed, trading hours, seed...): recorded with every commit,
    /// so a snapshot says what its bars are.
    fn request_metadata(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The bars of `symbols` in `sessions` (ascending, non-empty). An error fails the whole request:
    /// nothing of it is committed.
    fn fetch(&self, symbols: &[String], sessions: &[Session], size: BarSize) -> impl Future<Output = Result<Fetched>> + Send;
}

/// Sorts bars a source returned for `symbol` into the requested sessions by their New York date,
/// giving every session an entry (empty when the source had nothing) and counting bars outside them.
pub(crate) fn into_sessions(symbol: &str, sessions: &[Session], bars: Vec<Bar>, out: &mut Fetched) {
    let first = out.series.len();
    out.series.extend(sessions.iter().map(|s| SymbolSession { symbol: symbol.to_string(), session: *s, bars: Vec::new() }));
    for bar in bars {
        let date: NaiveDate = bar.ts.with_timezone(&chrono_tz::America::New_York).date_naive();
        match sessions.binary_search_by_key(&date, |s| s.date) {
            Ok(i) => out.series[first + i].bars.push(bar),
            Err(_) => {
                tracing::warn!(symbol, ts = %bar.ts, "source returned a bar outside the requested sessions; not stored");
                out.outside_sessions += 1;
            }
        }
    }
    for s in &mut out.series[first..] {
        s.bars.sort_by_key(|b| b.ts);
    }
}

/// Which bar source (the file import is separate: it reads what a file holds, not a range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Deterministic synthetic bars (no account needed).
    Synthetic,
    /// Polygon aggregates (POLYGON_API_KEY).
    Polygon,
    /// Alpaca Market Data v2 (APCA_API_KEY_ID, APCA_API_SECRET_KEY).
    Alpaca,
    /// Interactive Brokers TWS / IB Gateway ([tws] host, port, client_id).
    Tws,
}

/// Any configured bar source, so the CLI and jobs can pick one at run time.
pub enum AnySource {
    Synthetic(synthetic::SyntheticSource),
    Polygon(polygon::PolygonSource),
    Alpaca(alpaca::AlpacaSource),
    Tws(tws::TwsSource),
}

impl AnySource {
    /// The source `kind`, configured from `config` (TWS connects here, and takes the contract ids the
    /// lake's universe knows).
    pub async fn open(kind: SourceKind, config: &crate::config::Config, lake: &crate::table::Lake) -> Result<Self> {
        Ok(match kind {
            SourceKind::Synthetic => AnySource::Synthetic(synthetic::SyntheticSource::new(config.synthetic.clone())?),
            SourceKind::Polygon => AnySource::Polygon(polygon::PolygonSource::new(&config.polygon)?),
            SourceKind::Alpaca => AnySource::Alpaca(alpaca::AlpacaSource::new(&config.alpaca)?),
            SourceKind::Tws => AnySource::Tws(tws::TwsSource::connect(&config.tws).await?.with_con_ids(crate::universe::con_ids(lake).await?)),
        })
    }
}

impl BarSource for AnySource {
    fn name(&self) -> &str {
        match self {
            AnySource::Synthetic(s) => s.name(),
            AnySource::Polygon(s) => s.name(),
            AnySource::Alpaca(s) => s.name(),
            AnySource::Tws(s) => s.name(),
        }
    }

    fn request_metadata(&self) -> serde_json::Value {
        match self {
            AnySource::Synthetic(s) => s.request_metadata(),
            AnySource::Polygon(s) => s.request_metadata(),
            AnySource::Alpaca(s) => s.request_metadata(),
            AnySource::Tws(s) => s.request_metadata(),
        }
    }

    async fn fetch(&self, symbols: &[String], sessions: &[Session], size: BarSize) -> Result<Fetched> {
        match self {
            AnySource::Synthetic(s) => s.fetch(symbols, sessions, size).await,
            AnySource::Polygon(s) => s.fetch(symbols, sessions, size).await,
            AnySource::Alpaca(s) => s.fetch(symbols, sessions, size).await,
            AnySource::Tws(s) => s.fetch(symbols, sessions, size).await,
        }
    }
}
