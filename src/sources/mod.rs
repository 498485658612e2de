//! Sources of bars. A [`BarSource`] answers one question: the bars of one symbol in one session; a
//! [`file::FileImport`] reads what a file holds. Neither knows anything of the lake: [`crate::ingest`]
//! turns what they return into raw-layer commits.

pub mod file;
pub mod synthetic;

use std::future::Future;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::calendar::Session;
use crate::error::Result;

/// Bar length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, clap::ValueEnum)]
pub enum BarSize {
    #[value(name = "1m")]
    #[serde(rename = "1m")]
    Minute,
    #[value(name = "1d")]
    #[serde(rename = "1d")]
    Day,
}

/// One bar as a source delivers it; `ts` is the bar's start.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bar {
    pub ts: DateTime<Utc>,
    pub open: f64,
    pub high: f64,
    pub low: f64,
    pub close: f64,
    pub volume: i64,
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

/// A source of bars.
pub trait BarSource: Send + Sync {
    /// Name recorded in the `source` column and in commits (`synthetic`, `tws`, ...).
    fn name(&self) -> &str;

    /// The raw dataset this source's bars go to.
    fn dataset(&self) -> &str;

    /// The bars of `symbol` in `session`.
    fn fetch(&self, symbol: &str, session: &Session, size: BarSize) -> impl Future<Output = Result<SymbolSession>> + Send;
}
