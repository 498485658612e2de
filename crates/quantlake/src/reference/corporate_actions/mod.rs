//! Corporate actions: splits and cash dividends per symbol and ex-date (`reference_corporate_actions`),
//! imported from Polygon (`/v3/reference/splits`, `/v3/reference/dividends`), Alpaca
//! (`/v1beta1/corporate-actions`) or a CSV file, and the back-adjustment factors derived from them.
//!
//! The bars stay as delivered (the vendors' raw prices); adjustment happens at read time
//! ([`AdjustmentFactors`]), so a late-announced split needs new factors, never a rewrite of bars:
//! - a split `split_from : split_to` with ex-date `E` multiplies prices of sessions before `E` by
//!   `split_from / split_to` and volumes by the inverse;
//! - a cash dividend `D` with ex-date `E` multiplies prices before `E` by `1 - D / close(E-1)`, the raw
//!   close of the last session before `E` (from `curated_1d_bars`, else the last regular-session minute
//!   of `curated_1m_bars`), on the share basis of `E` when a split has the same ex-date;
//! - the factor of a session is the product of the factors of every event after it.
//!
//! An import is an upsert: a row with the same (symbol, ex_date, kind, source) replaces the stored
//! one. Rows of several sources for one event are all kept; readers take the one whose source comes
//! first in `corporate_actions.source_precedence` (default csv, polygon, alpaca), as recorded with the
//! latest import at the snapshot read, so a read at a snapshot always picks the same rows.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};
use crate::query::QueryEngine;
use crate::sources::alpaca::AlpacaSettings;
use crate::sources::http::{RestClient, parse_json};
use crate::sources::polygon::{PolygonSettings, base_url};
use crate::symbol::Symbol;
use crate::table::AsOf;
use crate::table::Lake;
use crate::table::layout::PartitionKey;

mod adjustment;
mod alpaca;
mod csv;
mod polygon;
mod store;

pub use adjustment::{AdjustmentFactors, SplitHistory, UnresolvedDividend};
pub use alpaca::fetch_alpaca;
pub use csv::read_csv;
pub use polygon::fetch_polygon;
pub use store::{ImportReport, ImportRequest, Vendors, import, read_actions};

/// The corporate actions dataset.
pub const DATASET: &str = "reference_corporate_actions";

/// What an action is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Split,
    CashDividend,
}

impl Named for ActionKind {
    const WHAT: &'static str = "corporate action kind";
    const ALL: &'static [Self] = &[ActionKind::Split, ActionKind::CashDividend];

    fn name(self) -> &'static str {
        match self {
            ActionKind::Split => "split",
            ActionKind::CashDividend => "cash_dividend",
        }
    }
}

/// Where actions come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSource {
    Polygon,
    Alpaca,
    Csv,
}

impl Named for ActionSource {
    const WHAT: &'static str = "corporate actions source";
    const ALL: &'static [Self] = &[ActionSource::Polygon, ActionSource::Alpaca, ActionSource::Csv];

    fn name(self) -> &'static str {
        match self {
            ActionSource::Polygon => "polygon",
            ActionSource::Alpaca => "alpaca",
            ActionSource::Csv => "csv",
        }
    }

    fn help(self) -> Option<&'static str> {
        Some(match self {
            ActionSource::Polygon => "Polygon /v3/reference/splits and /v3/reference/dividends (POLYGON_API_KEY)",
            ActionSource::Alpaca => "Alpaca /v1beta1/corporate-actions (APCA_API_KEY_ID, APCA_API_SECRET_KEY)",
            ActionSource::Csv => "A CSV file (--path): symbol,ex_date,split_from,split_to and/or cash_amount",
        })
    }
}

/// How bars are adjusted when read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Adjustment {
    /// The stored prices, as delivered.
    #[default]
    None,
    /// Back-adjusted for splits (prices and volumes).
    Splits,
    /// Back-adjusted for splits and cash dividends (dividends change prices only).
    All,
}

impl Named for Adjustment {
    const WHAT: &'static str = "adjustment";
    const ALL: &'static [Self] = &[Adjustment::None, Adjustment::Splits, Adjustment::All];

    fn name(self) -> &'static str {
        match self {
            Adjustment::None => "none",
            Adjustment::Splits => "splits",
            Adjustment::All => "all",
        }
    }

    fn help(self) -> Option<&'static str> {
        Some(match self {
            Adjustment::None => "Stored prices, as delivered",
            Adjustment::Splits => "Prices and volumes back-adjusted for splits",
            Adjustment::All => "Back-adjusted for splits and cash dividends (1 - D / previous close)",
        })
    }
}

named_display_and_from_str!(ActionKind, ActionSource, Adjustment);

/// `[corporate_actions]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CorporateActionSettings {
    /// When sources disagree on one event (symbol, ex-date, kind), the first of these wins. Sources
    /// left out rank after the listed ones, in the default order. Recorded with each import; reads use
    /// the list recorded by the latest import at the snapshot they read.
    pub source_precedence: Vec<ActionSource>,
    /// Alpaca imports without --start reach back this many days from --end (the endpoint needs a range).
    pub alpaca_default_days: i64,
}

impl Default for CorporateActionSettings {
    fn default() -> Self {
        // A CSV is a person's deliberate correction; Polygon carries declaration dates and ids.
        Self { source_precedence: DEFAULT_PRECEDENCE.to_vec(), alpaca_default_days: 365 }
    }
}

const DEFAULT_PRECEDENCE: [ActionSource; 3] = [ActionSource::Csv, ActionSource::Polygon, ActionSource::Alpaca];

/// The full ranking `listed` gives: listed sources first (a source listed twice is an error), then the
/// others in the default order.
fn ranking(listed: &[ActionSource]) -> Result<Vec<ActionSource>> {
    let mut out: Vec<ActionSource> = Vec::new();
    for s in listed {
        if out.contains(s) {
            return Err(Error::Config(format!("corporate_actions.source_precedence lists '{s}' twice")));
        }
        out.push(*s);
    }
    out.extend(DEFAULT_PRECEDENCE.iter().filter(|s| !listed.contains(s)));
    Ok(out)
}

/// One row of `reference_corporate_actions`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CorporateAction {
    pub symbol: Symbol,
    pub ex_date: NaiveDate,
    pub kind: ActionKind,
    pub source: ActionSource,
    pub split_from: Option<f64>,
    pub split_to: Option<f64>,
    pub cash_amount: Option<f64>,
    pub currency: Option<String>,
    pub dividend_type: Option<String>,
    pub frequency: Option<i64>,
    pub declaration_date: Option<NaiveDate>,
    pub record_date: Option<NaiveDate>,
    pub pay_date: Option<NaiveDate>,
    pub vendor_id: Option<String>,
    pub origin: String,
    /// Microseconds since the epoch.
    pub imported_at: i64,
}

/// The upsert key.
type Key = (Symbol, NaiveDate, ActionKind, ActionSource);

impl CorporateAction {
    fn split(symbol: Symbol, ex_date: NaiveDate, source: ActionSource, from: f64, to: f64) -> Self {
        Self {
            symbol,
            ex_date,
            kind: ActionKind::Split,
            source,
            split_from: Some(from),
            split_to: Some(to),
            cash_amount: None,
            currency: None,
            dividend_type: None,
            frequency: None,
            declaration_date: None,
            record_date: None,
            pay_date: None,
            vendor_id: None,
            origin: String::new(),
            imported_at: 0,
        }
    }

    fn dividend(symbol: Symbol, ex_date: NaiveDate, source: ActionSource, amount: f64) -> Self {
        Self {
            kind: ActionKind::CashDividend,
            split_from: None,
            split_to: None,
            cash_amount: Some(amount),
            ..Self::split(symbol, ex_date, source, 1.0, 1.0)
        }
    }

    fn key(&self) -> Key {
        (self.symbol.clone(), self.ex_date, self.kind, self.source)
    }

    /// The price factor of a split (`split_from / split_to`).
    fn split_ratio(&self) -> Option<f64> {
        Some(self.split_from? / self.split_to?)
    }

    /// Checks the values a factor is computed from; `what` names the row in errors.
    fn check(&self, what: &str) -> Result<()> {
        let positive = |name: &str, v: Option<f64>| match v {
            Some(v) if v.is_finite() && v > 0.0 => Ok(()),
            Some(v) => Err(Error::invalid(format!("{what}: {name} {v} is not a positive number"))),
            None => Err(Error::invalid(format!("{what}: no {name}"))),
        };
        match self.kind {
            ActionKind::Split => {
                positive("split_from", self.split_from)?;
                positive("split_to", self.split_to)
            }
            ActionKind::CashDividend => positive("cash_amount", self.cash_amount),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn adjustment_spellings() {
        assert_eq!("all".parse::<Adjustment>().unwrap(), Adjustment::All);
        assert!("raw".parse::<Adjustment>().unwrap_err().to_string().contains("none, splits, all"));
    }
}
