//! Sources of bars. A [`BarSource`] answers one question: the bars of some symbols over a run of
//! sessions; a [`file::FileImport`] reads what a file holds. Neither knows anything of the lake:
//! [`crate::ingest`] turns what they return into raw-layer commits.
//!
//! Each source decides how to ask its upstream: TWS one request per symbol and day (IB's rule for
//! minute bars), Polygon one paginated request per symbol and range, Alpaca one paginated request for
//! all symbols, the synthetic source a computation per session.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> quantlake::Result<()> {
//! use chrono::NaiveDate;
//! use quantlake::bars::BarSize;
//! use quantlake::calendar::NyseCalendar;
//! use quantlake::sources::BarSource;
//! use quantlake::sources::synthetic::{SyntheticSettings, SyntheticSource};
//!
//! let source = SyntheticSource::new(SyntheticSettings::default())?;
//! let day = |d| NaiveDate::parse_from_str(d, "%Y-%m-%d").unwrap();
//! let sessions = NyseCalendar.sessions(day("2024-01-02"), day("2024-01-03"));
//! let fetched = source.fetch(&["AAPL".parse()?], &sessions, BarSize::Minute).await?;
//! assert_eq!(fetched.series.len(), 2, "one series per symbol and session");
//! assert!(fetched.failed.is_empty());
//! # Ok(()) }
//! ```

pub mod alpaca;
pub mod file;
pub(crate) mod http;
pub mod polygon;
pub mod synthetic;
pub mod tws;

use std::future::Future;

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::calendar::Session;
use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};
use crate::symbol::{Symbol, SymbolList};

pub use crate::bars::{Bar, BarSize};
pub use http::{HttpSettings, Secret};

/// A source's answer for one (symbol, session). An empty `bars` means the source has no data for it
/// (a holiday, a halted or not yet listed symbol): recorded as done, not as a failure.
#[derive(Debug, Clone)]
pub struct SymbolSession {
    pub symbol: Symbol,
    pub session: Session,
    pub bars: Vec<Bar>,
}

/// A symbol the source refused for good (unknown contract, no permission): the other symbols go on.
#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct SymbolFailure {
    pub symbol: Symbol,
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
        size.raw_dataset(self.name())
    }

    /// How this source asks (adjustment, feed, trading hours, seed...): recorded with every commit,
    /// so a snapshot says what its bars are.
    fn request_metadata(&self) -> serde_json::Value {
        serde_json::Value::Null
    }

    /// The bars of `symbols` in `sessions` (ascending, non-empty). An error fails the whole request:
    /// nothing of it is committed.
    fn fetch(
        &self,
        symbols: &[Symbol],
        sessions: &[Session],
        size: BarSize,
    ) -> impl Future<Output = Result<Fetched>> + Send;
}

/// The symbols `spec` asks `kind` for: a list ([`SymbolList`]: each once, in the given order), or for
/// the synthetic source also a count N (its first N symbols).
pub fn parse_symbols(spec: &str, kind: SourceKind) -> Result<Vec<Symbol>> {
    match spec.trim().parse::<usize>() {
        Ok(0) => Err(Error::invalid("--symbols 0: ask for at least one symbol")),
        Ok(n) if kind == SourceKind::Synthetic => synthetic::symbol_names(n),
        Ok(_) => {
            Err(Error::invalid(format!("--symbols {spec}: a count is only for the synthetic source; list the symbols")))
        }
        Err(_) => Ok(spec.parse::<SymbolList>()?.into_vec()),
    }
}

/// Sorts bars a source returned for `symbol` into the requested sessions by their New York date,
/// giving every session an entry (empty when the source had nothing) and counting bars outside them.
pub(crate) fn into_sessions(symbol: &Symbol, sessions: &[Session], bars: Vec<Bar>, out: &mut Fetched) {
    let first = out.series.len();
    out.series.extend(sessions.iter().map(|s| SymbolSession { symbol: symbol.clone(), session: *s, bars: Vec::new() }));
    for bar in bars {
        let date: NaiveDate = bar.ts.with_timezone(&chrono_tz::America::New_York).date_naive();
        match sessions.binary_search_by_key(&date, |s| s.date) {
            Ok(i) => out.series[first + i].bars.push(bar),
            Err(_) => {
                tracing::warn!(%symbol, ts = %bar.ts, "source returned a bar outside the requested sessions; not stored");
                out.outside_sessions += 1;
            }
        }
    }
    for s in &mut out.series[first..] {
        s.bars.sort_by_key(|b| b.ts);
    }
}

/// Which bar source (the file import is separate: it reads what a file holds, not a range).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    Synthetic,
    Polygon,
    Alpaca,
    Tws,
}

impl Named for SourceKind {
    const WHAT: &'static str = "source";
    const ALL: &'static [Self] = &[SourceKind::Synthetic, SourceKind::Polygon, SourceKind::Alpaca, SourceKind::Tws];

    fn name(self) -> &'static str {
        match self {
            SourceKind::Synthetic => "synthetic",
            SourceKind::Polygon => "polygon",
            SourceKind::Alpaca => "alpaca",
            SourceKind::Tws => "tws",
        }
    }

    fn help(self) -> Option<&'static str> {
        Some(match self {
            SourceKind::Synthetic => "Deterministic synthetic bars (no account needed)",
            SourceKind::Polygon => "Polygon aggregates (POLYGON_API_KEY)",
            SourceKind::Alpaca => "Alpaca Market Data v2 (APCA_API_KEY_ID, APCA_API_SECRET_KEY)",
            SourceKind::Tws => "Interactive Brokers TWS / IB Gateway ([tws] host, port, client_id)",
        })
    }
}

named_display_and_from_str!(SourceKind);

/// Any configured bar source, so the CLI and jobs can pick one at run time.
pub enum AnySource {
    Synthetic(synthetic::SyntheticSource),
    Polygon(polygon::PolygonSource),
    Alpaca(alpaca::AlpacaSource),
    Tws(tws::TwsSource),
}

/// The settings of every bar source (`[synthetic]`, `[polygon]`, `[alpaca]`, `[tws]`), as the
/// config holds them.
#[derive(Debug, Clone, Copy)]
pub struct SourceSettings<'a> {
    pub synthetic: &'a synthetic::SyntheticSettings,
    pub polygon: &'a polygon::PolygonSettings,
    pub alpaca: &'a alpaca::AlpacaSettings,
    pub tws: &'a tws::TwsSettings,
}

impl AnySource {
    /// The source `kind`, configured from `settings` (TWS connects here, and takes the contract ids
    /// the lake's universe knows).
    pub async fn open(kind: SourceKind, settings: SourceSettings<'_>, lake: &crate::table::Lake) -> Result<Self> {
        Ok(match kind {
            SourceKind::Synthetic => AnySource::Synthetic(synthetic::SyntheticSource::new(settings.synthetic.clone())?),
            SourceKind::Polygon => AnySource::Polygon(polygon::PolygonSource::new(settings.polygon)?),
            SourceKind::Alpaca => AnySource::Alpaca(alpaca::AlpacaSource::new(settings.alpaca)?),
            SourceKind::Tws => AnySource::Tws(
                tws::TwsSource::connect(settings.tws).await?.with_con_ids(crate::universe::con_ids(lake).await?),
            ),
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

    async fn fetch(&self, symbols: &[Symbol], sessions: &[Session], size: BarSize) -> Result<Fetched> {
        match self {
            AnySource::Synthetic(s) => s.fetch(symbols, sessions, size).await,
            AnySource::Polygon(s) => s.fetch(symbols, sessions, size).await,
            AnySource::Alpaca(s) => s.fetch(symbols, sessions, size).await,
            AnySource::Tws(s) => s.fetch(symbols, sessions, size).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn symbols_are_a_list_or_a_synthetic_count() {
        assert_eq!(parse_symbols(" AAPL, MSFT,,AAPL ", SourceKind::Polygon).unwrap(), ["AAPL", "MSFT"]);
        assert_eq!(parse_symbols("3", SourceKind::Synthetic).unwrap().len(), 3);
        assert!(parse_symbols("3", SourceKind::Tws).unwrap_err().to_string().contains("only for the synthetic source"));
        assert!(
            parse_symbols("0", SourceKind::Synthetic).is_err() && parse_symbols(" , ", SourceKind::Alpaca).is_err()
        );
        assert_eq!("tws".parse::<SourceKind>().unwrap(), SourceKind::Tws);
        assert_eq!(SourceKind::Polygon.to_string(), "polygon");
    }
}
