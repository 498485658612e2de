//! The security master: securities with stable ids, their tickers over time and the universes they
//! were members of, in three reference datasets written together by every import:
//! - `reference_securities`: one row per security and source (kind, name, vendor ids, listing and
//!   delisting);
//! - `reference_symbology`: the ticker intervals of each security, dates inclusive;
//! - `reference_membership`: the intervals a security was a member of a named universe.
//!
//! A ticker is a dated attribute of a security, not its identity: FB and META are one security;
//! `GOOG` named Alphabet's class A share until 2014-04-02 and the class C share after. So a ticker
//! resolves only together with a date ([`SecurityMaster::resolve`]), and a security's ticker on a
//! date is [`SecurityMaster::ticker_of`].
//!
//! Sources: a file (CSV or Parquet, [`read_file`]), Polygon's tickers and ticker events
//! ([`fetch_polygon`]), IB's contract details ([`fetch_tws`]: contract ids), and the lake's own `reference_universe` (the migration of a ticker-keyed
//! lake). Each source's rows are kept; readers take a security's ticker history and each of its
//! attributes from the highest-ranked source that has them (`securities.source_precedence`, default
//! csv, polygon, tws, universe), so a person's file corrects a vendor and a vendor refines the migration.
//!
//! ```no_run
//! # async fn demo(lake: quantlake::table::Lake) -> quantlake::Result<()> {
//! use chrono::NaiveDate;
//! use quantlake::reference::securities::SecurityMaster;
//! use quantlake::table::AsOf;
//!
//! let master = SecurityMaster::load(&lake, &AsOf::latest()).await?;
//! let day = NaiveDate::from_ymd_opt(2020, 1, 2).unwrap();
//! if let Some(id) = master.resolve(&"FB".parse()?, day, None)? {
//!     println!("FB on {day} is security {id}, today {:?}", master.ticker_of(id, NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()));
//! }
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::NaiveDate;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};
use crate::security::SecurityId;
use crate::symbol::Symbol;

mod file;
mod import;
mod master;
mod plan;
mod polygon;
mod rows;
mod stamp;
mod tws;

pub use file::read_file;
pub use import::{ImportReport, ImportRequest, import, migrate};
pub use master::{Ambiguous, Member, SecurityMaster, SecurityView};
pub use plan::TickerPlan;
pub use polygon::fetch_polygon;
pub use stamp::{SECURITY_ID, SeriesKey, security_column};
pub use tws::fetch_tws;

/// The securities dataset.
pub const SECURITIES: &str = "reference_securities";
/// The ticker intervals dataset.
pub const SYMBOLOGY: &str = "reference_symbology";
/// The universe membership dataset.
pub const MEMBERSHIP: &str = "reference_membership";

/// Where security master rows come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecuritySource {
    Csv,
    Polygon,
    Tws,
    Universe,
}

impl Named for SecuritySource {
    const WHAT: &'static str = "security master source";
    const ALL: &'static [Self] =
        &[SecuritySource::Csv, SecuritySource::Polygon, SecuritySource::Tws, SecuritySource::Universe];

    fn name(self) -> &'static str {
        match self {
            SecuritySource::Csv => "csv",
            SecuritySource::Polygon => "polygon",
            SecuritySource::Tws => "tws",
            SecuritySource::Universe => "universe",
        }
    }

    fn help(self) -> Option<&'static str> {
        Some(match self {
            SecuritySource::Csv => {
                "A CSV or Parquet file of ticker intervals and delistings (--path; docs/securities.md)"
            }
            SecuritySource::Polygon => {
                "Polygon /v3/reference/tickers (active and delisted) and ticker events (POLYGON_API_KEY)"
            }
            SecuritySource::Tws => {
                "TWS / IB Gateway contract details: IB contract id, primary exchange, name (the [tws] connection)"
            }
            SecuritySource::Universe => "The lake's reference_universe: one security per ticker (the migration)",
        })
    }
}

named_display_and_from_str!(SecuritySource);

/// `[securities]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct SecuritySettings {
    /// Which source's view of a security wins (its ticker history, and each attribute). Sources left
    /// out rank after the listed ones, in the default order. Recorded with each import; reads use the
    /// ranking of the latest import at the snapshot they read.
    pub source_precedence: Vec<SecuritySource>,
    /// The universe `securities migrate` fills and `universe show --at` reads by default.
    pub default_universe: String,
}

impl Default for SecuritySettings {
    fn default() -> Self {
        Self { source_precedence: DEFAULT_PRECEDENCE.to_vec(), default_universe: "default".into() }
    }
}

const DEFAULT_PRECEDENCE: [SecuritySource; 4] =
    [SecuritySource::Csv, SecuritySource::Polygon, SecuritySource::Tws, SecuritySource::Universe];

impl SecuritySettings {
    /// The full ranking: listed sources first (a source listed twice is an error), then the others in
    /// the default order.
    pub fn ranking(&self) -> Result<Vec<SecuritySource>> {
        let mut out: Vec<SecuritySource> = Vec::new();
        for s in &self.source_precedence {
            if out.contains(s) {
                return Err(Error::Config(format!("securities.source_precedence lists '{s}' twice")));
            }
            out.push(*s);
        }
        let rest: Vec<SecuritySource> = DEFAULT_PRECEDENCE.into_iter().filter(|s| !out.contains(s)).collect();
        out.extend(rest);
        Ok(out)
    }
}

/// What a source says about a security (a row of `reference_securities`).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Attributes {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub composite_figi: Option<String>,
    pub share_class_figi: Option<String>,
    pub cik: Option<String>,
    pub con_id: Option<i64>,
    pub primary_exchange: Option<String>,
    pub currency: Option<String>,
    pub listed: Option<NaiveDate>,
    pub delisted: Option<NaiveDate>,
    pub delisted_reason: Option<String>,
}

/// A date range, both ends inclusive; `None` is open on that side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize)]
pub struct Interval {
    #[serde(rename = "valid_from")]
    pub from: Option<NaiveDate>,
    #[serde(rename = "valid_to")]
    pub to: Option<NaiveDate>,
}

impl Interval {
    pub fn new(from: Option<NaiveDate>, to: Option<NaiveDate>) -> Self {
        Self { from, to }
    }

    pub fn contains(&self, d: NaiveDate) -> bool {
        self.from.is_none_or(|f| f <= d) && self.to.is_none_or(|t| d <= t)
    }

    pub fn overlaps(&self, other: &Interval) -> bool {
        let starts_before_other_ends = match (self.from, other.to) {
            (Some(f), Some(t)) => f <= t,
            _ => true,
        };
        let other_starts_before_end = match (other.from, self.to) {
            (Some(f), Some(t)) => f <= t,
            _ => true,
        };
        starts_before_other_ends && other_starts_before_end
    }

    /// The part of this interval within `[start, end]`, if any.
    pub fn clip(&self, start: NaiveDate, end: NaiveDate) -> Option<(NaiveDate, NaiveDate)> {
        let a = self.from.map_or(start, |f| f.max(start));
        let b = self.to.map_or(end, |t| t.min(end));
        (a <= b).then_some((a, b))
    }
}

impl std::fmt::Display for Interval {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let side = |d: Option<NaiveDate>| d.map_or(String::new(), |d| d.to_string());
        write!(f, "{}..{}", side(self.from), side(self.to))
    }
}

/// A security's tickers, each with its interval, in time order.
pub type TickerHistory = Vec<(Symbol, Interval)>;

/// Whether two tickers' exchanges can be one venue: the same exchange, or either on none (the
/// consolidated US ticker).
fn same_venue(a: Option<&str>, b: Option<&str>) -> bool {
    a.is_none() || b.is_none() || a == b
}

/// A ticker a security had over an interval, as one source gives it (a row of `reference_symbology`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TickerInterval {
    pub security_id: SecurityId,
    pub ticker: Symbol,
    pub exchange: Option<String>,
    #[serde(flatten)]
    pub valid: Interval,
    pub source: SecuritySource,
    /// The vendor's date of the change, when it was not a session.
    pub vendor_date: Option<NaiveDate>,
    pub origin: String,
    pub imported_at: i64,
}

impl TickerInterval {
    /// Whether two intervals of one ticker could name two securities on one date: the same exchange,
    /// or either on no particular exchange.
    fn collides(&self, other: &TickerInterval) -> bool {
        self.ticker == other.ticker
            && same_venue(self.exchange.as_deref(), other.exchange.as_deref())
            && self.valid.overlaps(&other.valid)
    }

    fn describe(&self) -> String {
        let on = self.exchange.as_deref().map_or(String::new(), |e| format!(" on {e}"));
        format!("{} {}{on} of security {} ({})", self.ticker, self.valid, self.security_id, self.source)
    }
}

/// A row of `reference_securities`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityRow {
    pub security_id: SecurityId,
    pub source: SecuritySource,
    #[serde(flatten)]
    pub attributes: Attributes,
    pub origin: String,
    pub imported_at: i64,
}

/// A row of `reference_membership`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MembershipRow {
    pub universe: String,
    pub security_id: SecurityId,
    #[serde(flatten)]
    pub valid: Interval,
    pub source: SecuritySource,
    pub origin: String,
    pub imported_at: i64,
}

/// One security as a source delivers it, before it is matched to a stored security or minted.
#[derive(Debug, Clone)]
pub struct Delivered {
    /// The stored security this is, when the source says (a file's `security_id` column).
    pub security_id: Option<SecurityId>,
    pub attributes: Attributes,
    /// Its tickers, oldest first.
    pub tickers: Vec<DeliveredTicker>,
    /// Its membership interval in the universe an import names; `None`: from its listing (or first
    /// ticker) to its delisting.
    pub member: Option<Interval>,
    /// Names it in errors: "lines 2-3 of F", "polygon BBG000MM2P62".
    pub what: String,
}

/// A ticker interval as delivered.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveredTicker {
    pub ticker: Symbol,
    pub exchange: Option<String>,
    pub valid: Interval,
    pub vendor_date: Option<NaiveDate>,
    /// Names it in errors: "line 3", "event of 2022-06-11".
    pub what: String,
}

impl Delivered {
    /// The identity a new security is minted from: its FIGI, else its IB contract id, else its first
    /// ticker and that ticker's first date.
    fn identity(&self) -> String {
        let a = &self.attributes;
        if let Some(f) = a.composite_figi.as_ref().or(a.share_class_figi.as_ref()) {
            return format!("figi:{f}");
        }
        if let Some(c) = a.con_id {
            return format!("ib:{c}");
        }
        match self.tickers.first() {
            Some(t) => format!("ticker:{}@{}", t.ticker, t.valid.from.map_or("-".into(), |d| d.to_string())),
            None => format!("record:{}", self.what),
        }
    }

    /// Its membership interval: as delivered, else from its listing (or first ticker) to its
    /// delisting (or the end of its last ticker).
    fn membership(&self) -> Interval {
        self.member.unwrap_or_else(|| {
            let first = self.tickers.first().and_then(|t| t.valid.from);
            let last = self.tickers.last().and_then(|t| t.valid.to);
            Interval::new(self.attributes.listed.or(first), self.attributes.delisted.or(last))
        })
    }

    /// Checks the record on its own: intervals in order, none of two tickers at once on one exchange,
    /// none after the delisting.
    fn check(&self) -> Result<()> {
        for t in &self.tickers {
            if let (Some(f), Some(to)) = (t.valid.from, t.valid.to)
                && to < f
            {
                return Err(Error::invalid(format!(
                    "{} ({}): {} valid_to {to} is before valid_from {f}",
                    self.what, t.what, t.ticker
                )));
            }
            let Some(delisted) = self.attributes.delisted else { continue };
            if let Some(f) = t.valid.from.filter(|f| *f > delisted) {
                return Err(Error::invalid(format!(
                    "{} ({}): {} starts {f}, after the delisting on {delisted}",
                    self.what, t.what, t.ticker
                )));
            }
            if let Some(to) = t.valid.to.filter(|to| *to > delisted) {
                return Err(Error::invalid(format!(
                    "{} ({}): {} runs to {to}, after the delisting on {delisted}",
                    self.what, t.what, t.ticker
                )));
            }
        }
        for (i, a) in self.tickers.iter().enumerate() {
            for b in &self.tickers[i + 1..] {
                if same_venue(a.exchange.as_deref(), b.exchange.as_deref()) && a.valid.overlaps(&b.valid) {
                    return Err(Error::invalid(format!(
                        "{}: one security with two tickers at once: {} {} ({}) and {} {} ({})",
                        self.what, a.ticker, a.valid, a.what, b.ticker, b.valid, b.what
                    )));
                }
            }
        }
        Ok(())
    }
}

/// A universe's name: 1 to 64 of `A-Z a-z 0-9 _ - .`.
pub fn check_universe_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'));
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(format!(
            "universe name '{}': use 1 to 64 of A-Z, a-z, 0-9, '_', '-', '.'",
            name.escape_default()
        )))
    }
}

/// The ids of `rows`, once each.
fn ids<'a>(rows: impl IntoIterator<Item = &'a SecurityId>) -> BTreeSet<SecurityId> {
    rows.into_iter().copied().collect()
}

/// Rows grouped by security.
fn by_security<T, F: Fn(&T) -> SecurityId>(rows: &[T], id: F) -> HashMap<SecurityId, Vec<usize>> {
    let mut out: HashMap<SecurityId, Vec<usize>> = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        out.entry(id(r)).or_default().push(i);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn intervals_are_inclusive_and_open_ends_reach_everything() {
        let fb = Interval::new(Some(d("2012-05-18")), Some(d("2022-06-08")));
        let meta = Interval::new(Some(d("2022-06-09")), None);
        assert!(!fb.overlaps(&meta) && !meta.overlaps(&fb));
        assert!(fb.contains(d("2022-06-08")) && !fb.contains(d("2022-06-09")));
        assert!(Interval::default().overlaps(&fb) && Interval::default().contains(d("1990-01-01")));
        assert!(Interval::new(None, Some(d("2022-06-09"))).overlaps(&meta));
        assert_eq!(fb.clip(d("2022-01-03"), d("2022-12-30")), Some((d("2022-01-03"), d("2022-06-08"))));
        assert_eq!(meta.clip(d("2020-01-02"), d("2021-01-04")), None);
        assert_eq!(fb.to_string(), "2012-05-18..2022-06-08");
    }

    #[test]
    fn precedence_fills_in_the_unlisted_sources() {
        let s = SecuritySettings { source_precedence: vec![SecuritySource::Polygon], ..Default::default() };
        assert_eq!(
            s.ranking().unwrap(),
            [SecuritySource::Polygon, SecuritySource::Csv, SecuritySource::Tws, SecuritySource::Universe]
        );
        let twice = SecuritySettings {
            source_precedence: vec![SecuritySource::Csv, SecuritySource::Csv],
            ..Default::default()
        };
        assert!(twice.ranking().unwrap_err().to_string().contains("twice"));
    }
}
