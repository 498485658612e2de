//! Bar types every layer shares: a [`Bar`] as sources deliver it, its [`BarSize`] (the raw and curated
//! datasets it goes to), and the [`Frequency`] curated bars are read at. Nothing here knows the lake.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::names::{Named, named_display_and_from_str};

/// Bar length of stored bars: `1m` (`raw_<source>_bars`, `curated_1m_bars`) or `1d`
/// (`raw_<source>_daily_bars`, `curated_1d_bars`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum BarSize {
    #[serde(rename = "1m")]
    Minute,
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

    /// The raw dataset a source's bars of this size go to: `raw_<source>_bars` for minutes,
    /// `raw_<source>_daily_bars` for days. [`BarSize::of_raw_dataset`] is its inverse.
    pub fn raw_dataset(self, source: &str) -> String {
        match self {
            BarSize::Minute => format!("raw_{source}_bars"),
            BarSize::Day => format!("raw_{source}_daily_bars"),
        }
    }

    /// The source and bar size of a raw dataset's name (`raw_tws_daily_bars` -> `("tws", Day)`), or
    /// `None` for a name that is not a raw bar dataset's.
    pub fn of_raw_dataset(name: &str) -> Option<(&str, BarSize)> {
        let rest = name.strip_prefix("raw_")?;
        match rest.strip_suffix("_daily_bars") {
            Some(source) => Some((source, BarSize::Day)),
            None => rest.strip_suffix("_bars").map(|source| (source, BarSize::Minute)),
        }
        .filter(|(source, _)| !source.is_empty())
    }
}

impl Named for BarSize {
    const WHAT: &'static str = "bar size";
    const ALL: &'static [Self] = &[BarSize::Minute, BarSize::Day];

    fn name(self) -> &'static str {
        self.as_str()
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

/// Bars as columns, one row per bar: what a file import builds without a [`Bar`] per row, and what
/// the raw datasets' rows are made of (`ingest::raw_batch`).
#[derive(Debug, Default)]
pub struct BarColumns {
    pub symbol: arrow::array::StringBuilder,
    /// Bar start, µs since the epoch (UTC).
    pub ts: Vec<i64>,
    pub open: Vec<f64>,
    pub high: Vec<f64>,
    pub low: Vec<f64>,
    pub close: Vec<f64>,
    pub volume: Vec<f64>,
    pub vwap: Vec<Option<f64>>,
    pub trade_count: Vec<Option<i64>>,
}

impl BarColumns {
    pub fn with_capacity(rows: usize) -> Self {
        Self {
            symbol: arrow::array::StringBuilder::with_capacity(rows, rows * 4),
            ts: Vec::with_capacity(rows),
            open: Vec::with_capacity(rows),
            high: Vec::with_capacity(rows),
            low: Vec::with_capacity(rows),
            close: Vec::with_capacity(rows),
            volume: Vec::with_capacity(rows),
            vwap: Vec::with_capacity(rows),
            trade_count: Vec::with_capacity(rows),
        }
    }

    pub fn len(&self) -> usize {
        self.ts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.ts.is_empty()
    }

    pub fn push(&mut self, symbol: &str, bar: &Bar) {
        self.symbol.append_value(symbol);
        self.ts.push(bar.ts.timestamp_micros());
        self.open.push(bar.open);
        self.high.push(bar.high);
        self.low.push(bar.low);
        self.close.push(bar.close);
        self.volume.push(bar.volume);
        self.vwap.push(bar.vwap);
        self.trade_count.push(bar.trade_count);
    }
}

/// Bar length of curated bars as read (`get_curated_bars`): 1m, or resampled within sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Frequency {
    #[serde(rename = "1m")]
    M1,
    #[serde(rename = "5m")]
    M5,
    #[serde(rename = "15m")]
    M15,
    #[serde(rename = "30m")]
    M30,
    #[serde(rename = "1h")]
    H1,
    #[serde(rename = "1d")]
    D1,
}

impl Frequency {
    /// Minutes per bar; 1d is longer than any session: one bucket per session.
    pub fn minutes(self) -> u32 {
        match self {
            Frequency::M1 => 1,
            Frequency::M5 => 5,
            Frequency::M15 => 15,
            Frequency::M30 => 30,
            Frequency::H1 => 60,
            Frequency::D1 => 390,
        }
    }
}

impl Named for Frequency {
    const WHAT: &'static str = "frequency";
    const ALL: &'static [Self] =
        &[Frequency::M1, Frequency::M5, Frequency::M15, Frequency::M30, Frequency::H1, Frequency::D1];

    fn name(self) -> &'static str {
        match self {
            Frequency::M1 => "1m",
            Frequency::M5 => "5m",
            Frequency::M15 => "15m",
            Frequency::M30 => "30m",
            Frequency::H1 => "1h",
            Frequency::D1 => "1d",
        }
    }
}

named_display_and_from_str!(BarSize, Frequency);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip() {
        for b in BarSize::ALL {
            assert_eq!(b.to_string().parse::<BarSize>().unwrap(), *b);
            assert_eq!(serde_json::to_value(b).unwrap(), serde_json::json!(b.to_string()));
        }
        for f in Frequency::ALL {
            assert_eq!(f.to_string().parse::<Frequency>().unwrap(), *f);
            assert_eq!(serde_json::to_value(f).unwrap(), serde_json::json!(f.to_string()));
        }
        assert!(
            "2m".parse::<Frequency>().unwrap_err().to_string().contains("expected one of: 1m, 5m, 15m, 30m, 1h, 1d")
        );
    }
}
