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

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Date32Type, Float64Type, Int64Type};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, Result};
use crate::names::{named_display_and_from_str, Named};
use crate::query::{AsOf, QueryEngine};
use crate::sources::alpaca::AlpacaSettings;
use crate::sources::http::{parse_json, RestClient};
use crate::sources::polygon::{base_url, PolygonSettings};
use crate::table::layout::{validate_symbol, PartitionKey};
use crate::table::Lake;

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
    pub symbol: String,
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
type Key = (String, NaiveDate, ActionKind, ActionSource);

impl CorporateAction {
    fn split(symbol: &str, ex_date: NaiveDate, source: ActionSource, from: f64, to: f64) -> Self {
        Self {
            symbol: symbol.to_string(),
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

    fn dividend(symbol: &str, ex_date: NaiveDate, source: ActionSource, amount: f64) -> Self {
        Self { kind: ActionKind::CashDividend, split_from: None, split_to: None, cash_amount: Some(amount), ..Self::split(symbol, ex_date, source, 1.0, 1.0) }
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
        validate_symbol(&self.symbol).map_err(|e| Error::invalid(format!("{what}: {e}")))?;
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

// ---------------------------------------------------------------------------------------------
// Import
// ---------------------------------------------------------------------------------------------

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub source: ActionSource,
    /// CSV: the file.
    pub path: Option<PathBuf>,
    /// Only these symbols. Vendors: default the active universe; CSV: default every row.
    pub symbols: Option<Vec<String>>,
    /// Only ex-dates in this range (inclusive).
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// The vendor settings an import may need.
#[derive(Debug, Clone, Copy)]
pub struct Vendors<'a> {
    pub polygon: &'a PolygonSettings,
    pub alpaca: &'a AlpacaSettings,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub source: ActionSource,
    pub origin: String,
    /// Rows the source returned.
    pub fetched: usize,
    /// Rows left out, by reason (another symbol than asked for, ex-date outside the range, no ex-date).
    pub skipped: BTreeMap<String, usize>,
    /// Rows of one key the source returned more than once: identical ones are kept once, dividends
    /// with different amounts on one ex-date are summed (two dividends going ex together).
    pub merged: usize,
    /// Distinct rows written: new keys, and keys whose stored row was replaced.
    pub rows: usize,
    pub inserted: usize,
    pub replaced: usize,
    pub splits: usize,
    pub dividends: usize,
    pub symbols: usize,
    /// The snapshot written; `None` when there was nothing to write.
    pub snapshot_id: Option<u64>,
}

/// Imports corporate actions from `request.source` and upserts them.
pub async fn import(lake: &Lake, settings: &CorporateActionSettings, vendors: Vendors<'_>, request: &ImportRequest) -> Result<ImportReport> {
    let precedence = ranking(&settings.source_precedence)?;
    if let (Some(s), Some(e)) = (request.start, request.end)
        && e < s
    {
        return Err(Error::invalid(format!("end {e} is before start {s}")));
    }
    if let Some(list) = &request.symbols {
        if list.is_empty() {
            return Err(Error::invalid("no symbols"));
        }
        for s in list {
            validate_symbol(s)?;
        }
    }
    if request.source != ActionSource::Csv && request.path.is_some() {
        return Err(Error::invalid(format!("--path is for --source csv, not {}", request.source)));
    }
    let (fetched, origin, mut skipped) = match request.source {
        ActionSource::Csv => {
            let path = request.path.as_deref().ok_or_else(|| Error::invalid("--source csv needs --path FILE"))?;
            (read_csv(path)?, path.display().to_string(), BTreeMap::new())
        }
        ActionSource::Polygon => {
            let symbols = symbols_or_universe(lake, request.symbols.as_deref()).await?;
            let (rows, origin) = fetch_polygon(vendors.polygon, &symbols, request.start, request.end).await?;
            (rows, origin, BTreeMap::new())
        }
        ActionSource::Alpaca => {
            let symbols = symbols_or_universe(lake, request.symbols.as_deref()).await?;
            let end = request.end.unwrap_or_else(|| Utc::now().date_naive());
            let start = request.start.unwrap_or(end - Duration::days(settings.alpaca_default_days.max(1)));
            fetch_alpaca(vendors.alpaca, &symbols, start, end).await?
        }
    };
    let count = fetched.len();
    let wanted: Option<HashSet<&str>> = request.symbols.as_ref().map(|l| l.iter().map(String::as_str).collect());
    let mut kept = Vec::with_capacity(fetched.len());
    for a in fetched {
        let reason = if wanted.as_ref().is_some_and(|w| !w.contains(a.symbol.as_str())) {
            Some("other symbol")
        } else if request.start.is_some_and(|s| a.ex_date < s) || request.end.is_some_and(|e| a.ex_date > e) {
            Some("ex_date outside the range")
        } else {
            None
        };
        match reason {
            Some(r) => *skipped.entry(r.to_string()).or_default() += 1,
            None => kept.push(a),
        }
    }
    let imported_at = Utc::now().timestamp_micros();
    let (rows, merged) = merge_duplicates(kept)?;
    let rows: Vec<CorporateAction> = rows.into_iter().map(|a| CorporateAction { origin: origin.clone(), imported_at, ..a }).collect();
    let mut report = ImportReport {
        source: request.source,
        origin,
        fetched: count,
        skipped,
        merged,
        rows: rows.len(),
        inserted: 0,
        replaced: 0,
        splits: rows.iter().filter(|a| a.kind == ActionKind::Split).count(),
        dividends: rows.iter().filter(|a| a.kind == ActionKind::CashDividend).count(),
        symbols: rows.iter().map(|a| a.symbol.as_str()).collect::<BTreeSet<_>>().len(),
        snapshot_id: None,
    };
    if rows.is_empty() {
        return Ok(report);
    }
    let (stored, _) = read_actions(lake, None, &AsOf::default()).await?;
    let stored: HashSet<Key> = stored.iter().map(CorporateAction::key).collect();
    report.replaced = rows.iter().filter(|a| stored.contains(&a.key())).count();
    report.inserted = rows.len() - report.replaced;
    report.snapshot_id = Some(upsert(lake, &rows, &precedence, request.source).await?);
    Ok(report)
}

/// `symbols`, or the active universe (a vendor import needs a list).
async fn symbols_or_universe(lake: &Lake, symbols: Option<&[String]>) -> Result<Vec<String>> {
    if let Some(list) = symbols {
        return Ok(list.to_vec());
    }
    let active = crate::universe::active_symbols(lake).await?;
    if active.is_empty() {
        return Err(Error::invalid("no symbols: pass --symbols or rebuild the universe (quantlake universe rebuild)"));
    }
    Ok(active)
}

/// Rows of one key collapse: identical rows (or rows with the same vendor id) are one; cash dividends
/// with different amounts on one ex-date are summed; splits with different ratios are an error.
fn merge_duplicates(rows: Vec<CorporateAction>) -> Result<(Vec<CorporateAction>, usize)> {
    let mut by_key: BTreeMap<Key, CorporateAction> = BTreeMap::new();
    let mut merged = 0;
    for a in rows {
        let Some(old) = by_key.get_mut(&a.key()) else {
            by_key.insert(a.key(), a);
            continue;
        };
        merged += 1;
        let same_id = old.vendor_id.is_some() && old.vendor_id == a.vendor_id;
        if same_id || *old == a {
            continue;
        }
        match a.kind {
            ActionKind::Split if old.split_ratio() == a.split_ratio() => {}
            ActionKind::Split => {
                return Err(Error::invalid(format!(
                    "{} lists two different splits of {} with ex-date {}: {}:{} and {}:{}",
                    a.source,
                    a.symbol,
                    a.ex_date,
                    old.split_from.unwrap_or(f64::NAN),
                    old.split_to.unwrap_or(f64::NAN),
                    a.split_from.unwrap_or(f64::NAN),
                    a.split_to.unwrap_or(f64::NAN)
                )))
            }
            ActionKind::CashDividend => {
                old.cash_amount = Some(old.cash_amount.unwrap_or(0.0) + a.cash_amount.unwrap_or(0.0));
                old.vendor_id = match (old.vendor_id.take(), a.vendor_id) {
                    (Some(x), Some(y)) => Some(format!("{x},{y}")),
                    (x, y) => x.or(y),
                };
                if old.dividend_type != a.dividend_type {
                    old.dividend_type = None;
                }
            }
        }
    }
    Ok((by_key.into_values().collect(), merged))
}

/// Writes `rows` (distinct keys) replacing stored rows with the same keys, in one snapshot; the
/// removal is re-run on a concurrent import's newer content, so two imports never lose each other's rows.
async fn upsert(lake: &Lake, rows: &[CorporateAction], precedence: &[ActionSource], source: ActionSource) -> Result<u64> {
    let ds = lake.dataset(DATASET)?;
    let batch = to_batch(ds.contract(), rows)?;
    let keys: Arc<HashSet<Key>> = Arc::new(rows.iter().map(CorporateAction::key).collect());
    let replaced = move |b: &RecordBatch| -> Result<BooleanArray> {
        let text = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>().cloned()).ok_or_else(|| Error::invalid(format!("{DATASET}: no utf8 column '{name}'")));
        let (symbol, kind, source) = (text("symbol")?, text("kind")?, text("source")?);
        let ex = b.column_by_name("ex_date").and_then(|c| c.as_primitive_opt::<Date32Type>().cloned()).ok_or_else(|| Error::invalid(format!("{DATASET}: no date column 'ex_date'")))?;
        (0..b.num_rows())
            .map(|i| {
                let (Ok(kind), Ok(source), Some(ex)) = (kind.value(i).parse::<ActionKind>(), source.value(i).parse::<ActionSource>(), NaiveDate::from_epoch_days(ex.value(i))) else {
                    return Ok(Some(false)); // a row of a kind this build does not know stays
                };
                Ok(Some(keys.contains(&(symbol.value(i).to_string(), ex, kind, source))))
            })
            .collect()
    };
    let precedence: Vec<&str> = precedence.iter().map(|s| s.name()).collect();
    let done = ds
        .write(vec![batch])
        .removing_where(Arc::new(replaced))
        .covering([PartitionKey::All])
        .operation("corporate_actions_import")
        .parameter("source", source)
        .parameter("source_precedence", &precedence)
        .execute()
        .await?;
    Ok(done.snapshot_id)
}

fn to_batch(contract: &crate::contract::DatasetContract, rows: &[CorporateAction]) -> Result<RecordBatch> {
    let text = |f: fn(&CorporateAction) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(rows.iter().map(f))) };
    let float = |f: fn(&CorporateAction) -> Option<f64>| -> ArrayRef { Arc::new(Float64Array::from_iter(rows.iter().map(f))) };
    let date = |f: fn(&CorporateAction) -> Option<NaiveDate>| -> ArrayRef { Arc::new(Date32Array::from_iter(rows.iter().map(|r| f(r).map(|d| d.to_epoch_days())))) };
    contract.batch_from(|name| {
        Some(match name {
            "symbol" => text(|r| Some(r.symbol.as_str())),
            "ex_date" => date(|r| Some(r.ex_date)),
            "kind" => text(|r| Some(r.kind.name())),
            "source" => text(|r| Some(r.source.name())),
            "split_from" => float(|r| r.split_from),
            "split_to" => float(|r| r.split_to),
            "cash_amount" => float(|r| r.cash_amount),
            "currency" => text(|r| r.currency.as_deref()),
            "dividend_type" => text(|r| r.dividend_type.as_deref()),
            "frequency" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.frequency))),
            "declaration_date" => date(|r| r.declaration_date),
            "record_date" => date(|r| r.record_date),
            "pay_date" => date(|r| r.pay_date),
            "vendor_id" => text(|r| r.vendor_id.as_deref()),
            "origin" => text(|r| Some(r.origin.as_str())),
            "imported_at" => Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.imported_at)).with_timezone("UTC")),
            _ => return None,
        })
    })
}

/// SQL list of validated symbols (letters, digits, . - _ ^ =: safe inside quotes).
fn sql_symbols(symbols: &[String]) -> Result<String> {
    for s in symbols {
        validate_symbol(s)?;
    }
    Ok(symbols.iter().map(|s| format!("'{s}'")).collect::<Vec<_>>().join(", "))
}

/// The stored actions of `symbols` (all with `None`) at `as_of`, sorted by symbol, ex-date, kind and
/// source, and the snapshot read.
pub async fn read_actions(lake: &Lake, symbols: Option<&[String]>, as_of: &AsOf) -> Result<(Vec<CorporateAction>, u64)> {
    let filter = match symbols {
        Some([]) => return Ok((Vec::new(), 0)),
        Some(list) => format!("WHERE symbol IN ({})", sql_symbols(list)?),
        None => String::new(),
    };
    let sql = format!(
        "SELECT symbol, ex_date, kind, source, split_from, split_to, cash_amount, currency, dividend_type, frequency, \
         declaration_date, record_date, pay_date, vendor_id, origin, epoch_us(imported_at) AS imported_at \
         FROM {DATASET} {filter} ORDER BY symbol, ex_date, kind, source"
    );
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    let snapshot = engine.snapshots.get(DATASET).copied().unwrap_or(0);
    Ok((from_batches(&batches)?, snapshot))
}

fn from_batches(batches: &[RecordBatch]) -> Result<Vec<CorporateAction>> {
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| b.column_by_name(name).ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("no column '{name}'") });
        let text = |name: &str| -> Result<StringArray> { Ok(arrow::compute::cast(col(name)?, &DataType::Utf8)?.as_string::<i32>().clone()) };
        let float = |name: &str| -> Result<Float64Array> { Ok(arrow::compute::cast(col(name)?, &DataType::Float64)?.as_primitive::<Float64Type>().clone()) };
        let int = |name: &str| -> Result<Int64Array> { Ok(arrow::compute::cast(col(name)?, &DataType::Int64)?.as_primitive::<Int64Type>().clone()) };
        let date = |name: &str| -> Result<Date32Array> { Ok(arrow::compute::cast(col(name)?, &DataType::Date32)?.as_primitive::<Date32Type>().clone()) };
        let (symbol, kind, source, currency, dividend_type, vendor_id, origin) =
            (text("symbol")?, text("kind")?, text("source")?, text("currency")?, text("dividend_type")?, text("vendor_id")?, text("origin")?);
        let (split_from, split_to, cash) = (float("split_from")?, float("split_to")?, float("cash_amount")?);
        let (frequency, imported_at) = (int("frequency")?, int("imported_at")?);
        let (ex, declared, record, pay) = (date("ex_date")?, date("declaration_date")?, date("record_date")?, date("pay_date")?);
        let opt_text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        let opt_float = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        let opt_date = |a: &Date32Array, i: usize| if a.is_valid(i) { NaiveDate::from_epoch_days(a.value(i)) } else { None };
        for i in 0..b.num_rows() {
            let ex_date = opt_date(&ex, i).ok_or_else(|| Error::invalid(format!("{DATASET}: row of {} has no ex_date", symbol.value(i))))?;
            out.push(CorporateAction {
                symbol: symbol.value(i).to_string(),
                ex_date,
                kind: kind.value(i).parse()?,
                source: source.value(i).parse()?,
                split_from: opt_float(&split_from, i),
                split_to: opt_float(&split_to, i),
                cash_amount: opt_float(&cash, i),
                currency: opt_text(&currency, i),
                dividend_type: opt_text(&dividend_type, i),
                frequency: frequency.is_valid(i).then(|| frequency.value(i)),
                declaration_date: opt_date(&declared, i),
                record_date: opt_date(&record, i),
                pay_date: opt_date(&pay, i),
                vendor_id: opt_text(&vendor_id, i),
                origin: origin.value(i).to_string(),
                imported_at: imported_at.value(i),
            });
        }
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Sources
// ---------------------------------------------------------------------------------------------

/// Polygon rows per page, the most `/v3/reference` allows.
const POLYGON_LIMIT: u32 = 1000;

#[derive(Deserialize)]
struct PolygonSplit {
    id: Option<String>,
    ticker: String,
    execution_date: NaiveDate,
    split_from: f64,
    split_to: f64,
}

#[derive(Deserialize)]
struct PolygonDividend {
    id: Option<String>,
    ticker: String,
    ex_dividend_date: NaiveDate,
    cash_amount: f64,
    currency: Option<String>,
    declaration_date: Option<NaiveDate>,
    record_date: Option<NaiveDate>,
    pay_date: Option<NaiveDate>,
    frequency: Option<i64>,
    dividend_type: Option<String>,
}

/// Splits and dividends of `symbols` from Polygon (one paginated request per symbol and kind), and
/// the API root they came from.
pub async fn fetch_polygon(settings: &PolygonSettings, symbols: &[String], start: Option<NaiveDate>, end: Option<NaiveDate>) -> Result<(Vec<CorporateAction>, String)> {
    let http = RestClient::new("polygon", &settings.http)?;
    let base = base_url("polygon", &settings.base_url)?;
    let headers = crate::sources::polygon::auth_headers(settings)?;
    let mut out = Vec::new();
    for symbol in symbols {
        let url = |kind: &str, date_field: &str| -> Result<Url> {
            let mut url = base.clone();
            url.path_segments_mut().map_err(|_| Error::Config("polygon.base_url cannot take a path".into()))?.pop_if_empty().extend(["v3", "reference", kind]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("ticker", symbol).append_pair("limit", &POLYGON_LIMIT.to_string());
                if let Some(s) = start {
                    q.append_pair(&format!("{date_field}.gte"), &s.to_string());
                }
                if let Some(e) = end {
                    q.append_pair(&format!("{date_field}.lte"), &e.to_string());
                }
            }
            Ok(url)
        };
        let splits: Vec<PolygonSplit> = crate::sources::polygon::get_pages(&http, &base, &headers, url("splits", "execution_date")?, &format!("{symbol} splits")).await?;
        for s in splits {
            let mut a = CorporateAction::split(&s.ticker, s.execution_date, ActionSource::Polygon, s.split_from, s.split_to);
            a.vendor_id = s.id;
            a.check(&format!("polygon split of {} on {}", s.ticker, s.execution_date))?;
            out.push(a);
        }
        let dividends: Vec<PolygonDividend> = crate::sources::polygon::get_pages(&http, &base, &headers, url("dividends", "ex_dividend_date")?, &format!("{symbol} dividends")).await?;
        for d in dividends {
            let mut a = CorporateAction::dividend(&d.ticker, d.ex_dividend_date, ActionSource::Polygon, d.cash_amount);
            a.check(&format!("polygon dividend of {} on {}", d.ticker, d.ex_dividend_date))?;
            a.vendor_id = d.id;
            a.currency = d.currency;
            a.declaration_date = d.declaration_date;
            a.record_date = d.record_date;
            a.pay_date = d.pay_date;
            a.frequency = d.frequency;
            a.dividend_type = d.dividend_type;
            out.push(a);
        }
    }
    Ok((out, base.to_string()))
}

/// Alpaca rows per page, the most the endpoint allows.
const ALPACA_LIMIT: u32 = 1000;

#[derive(Deserialize)]
struct AlpacaPage {
    #[serde(default)]
    corporate_actions: Option<AlpacaActions>,
    next_page_token: Option<String>,
}

#[derive(Deserialize, Default)]
struct AlpacaActions {
    #[serde(default)]
    forward_splits: Option<Vec<AlpacaSplit>>,
    #[serde(default)]
    reverse_splits: Option<Vec<AlpacaSplit>>,
    #[serde(default)]
    cash_dividends: Option<Vec<AlpacaDividend>>,
}

#[derive(Deserialize)]
struct AlpacaSplit {
    id: Option<String>,
    symbol: String,
    old_rate: f64,
    new_rate: f64,
    ex_date: Option<NaiveDate>,
    record_date: Option<NaiveDate>,
    payable_date: Option<NaiveDate>,
}

#[derive(Deserialize)]
struct AlpacaDividend {
    id: Option<String>,
    symbol: String,
    rate: f64,
    #[serde(default)]
    special: Option<bool>,
    ex_date: Option<NaiveDate>,
    record_date: Option<NaiveDate>,
    payable_date: Option<NaiveDate>,
}

/// Forward and reverse splits and cash dividends of `symbols` from Alpaca between `start` and `end`
/// (symbols in groups of `symbols_per_request`, following `page_token`), the API root, and the rows
/// left out (without an ex-date: the research notes' rule is to use the ex-date, never the payable date).
pub async fn fetch_alpaca(settings: &AlpacaSettings, symbols: &[String], start: NaiveDate, end: NaiveDate) -> Result<(Vec<CorporateAction>, String, BTreeMap<String, usize>)> {
    let http = RestClient::new("alpaca", &settings.http)?;
    let base = base_url("alpaca", &settings.base_url)?;
    let headers = crate::sources::alpaca::auth_headers(settings)?;
    let mut out = Vec::new();
    let mut skipped = BTreeMap::new();
    for group in symbols.chunks(settings.symbols_per_request.max(1)) {
        let what = format!("{} corporate actions {start}..{end}", group.join(","));
        let mut token: Option<String> = None;
        let mut seen = HashSet::new();
        for page_no in 1.. {
            let page_what = format!("{what} (page {page_no})");
            let mut url = base.clone();
            url.path_segments_mut().map_err(|_| Error::Config("alpaca.base_url cannot take a path".into()))?.pop_if_empty().extend(["v1beta1", "corporate-actions"]);
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("symbols", &group.join(","))
                    .append_pair("types", "forward_split,reverse_split,cash_dividend")
                    .append_pair("start", &start.to_string())
                    .append_pair("end", &end.to_string())
                    .append_pair("limit", &ALPACA_LIMIT.to_string());
                if let Some(t) = &token {
                    q.append_pair("page_token", t);
                }
            }
            let body = http.get(&url, &headers, &page_what).await?;
            let page: AlpacaPage = parse_json(&http, &page_what, &body)?;
            let actions = page.corporate_actions.unwrap_or_default();
            let splits = actions.forward_splits.into_iter().flatten().chain(actions.reverse_splits.into_iter().flatten());
            for s in splits {
                let Some(ex) = s.ex_date else {
                    *skipped.entry("no ex_date".to_string()).or_default() += 1;
                    continue;
                };
                let mut a = CorporateAction::split(&s.symbol, ex, ActionSource::Alpaca, s.old_rate, s.new_rate);
                a.check(&format!("alpaca split of {} on {ex}", s.symbol))?;
                (a.vendor_id, a.record_date, a.pay_date) = (s.id, s.record_date, s.payable_date);
                out.push(a);
            }
            for d in actions.cash_dividends.into_iter().flatten() {
                let Some(ex) = d.ex_date else {
                    *skipped.entry("no ex_date".to_string()).or_default() += 1;
                    continue;
                };
                let mut a = CorporateAction::dividend(&d.symbol, ex, ActionSource::Alpaca, d.rate);
                a.check(&format!("alpaca dividend of {} on {ex}", d.symbol))?;
                (a.vendor_id, a.record_date, a.pay_date) = (d.id, d.record_date, d.payable_date);
                a.dividend_type = Some(if d.special == Some(true) { "SC" } else { "CD" }.to_string());
                out.push(a);
            }
            match page.next_page_token.filter(|t| !t.is_empty()) {
                Some(t) => {
                    if !seen.insert(t.clone()) {
                        return Err(http.error(&page_what, "page_token repeats an earlier page's; stopping".into()));
                    }
                    token = Some(t);
                }
                None => break,
            }
        }
    }
    Ok((out, base.to_string(), skipped))
}

/// The columns a corporate actions CSV may have (a header row names them, in any order and case).
const CSV_COLUMNS: &[&str] = &["symbol", "ex_date", "split_from", "split_to", "cash_amount", "currency", "dividend_type", "declaration_date", "record_date", "pay_date"];

/// Reads a CSV of splits (`symbol,ex_date,split_from,split_to`) and/or cash dividends
/// (`symbol,ex_date,cash_amount`); each row is one or the other. Errors name the line and column.
pub fn read_csv(path: &Path) -> Result<Vec<CorporateAction>> {
    let at = |line: u64, column: Option<&str>, msg: String| match column {
        Some(c) => Error::invalid(format!("corporate actions CSV {} line {line}, column {c}: {msg}", path.display())),
        None => Error::invalid(format!("corporate actions CSV {} line {line}: {msg}", path.display())),
    };
    let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_path(path).map_err(|e| Error::invalid(format!("corporate actions CSV {}: {e}", path.display())))?;
    let headers: Vec<String> = reader.headers().map_err(|e| Error::invalid(format!("corporate actions CSV {}: {e}", path.display())))?.iter().map(str::to_ascii_lowercase).collect();
    if let Some(h) = headers.iter().find(|h| !CSV_COLUMNS.contains(&h.as_str())) {
        return Err(at(1, Some(h), format!("unknown column (known: {})", CSV_COLUMNS.join(", "))));
    }
    let find = |name: &str| headers.iter().position(|h| h == name);
    for required in ["symbol", "ex_date"] {
        if find(required).is_none() {
            return Err(at(1, None, format!("no '{required}' column (columns: {})", headers.join(", "))));
        }
    }
    let has_split = find("split_from").is_some() && find("split_to").is_some();
    if !has_split && find("cash_amount").is_none() {
        return Err(at(1, None, "needs split_from and split_to columns, or a cash_amount column".into()));
    }
    let mut out = Vec::new();
    for record in reader.records() {
        let record = record.map_err(|e| Error::invalid(format!("corporate actions CSV {}: {e}", path.display())))?;
        let line = record.position().map_or(0, |p| p.line());
        let get = |name: &str| find(name).and_then(|i| record.get(i)).filter(|v| !v.is_empty());
        let number = |name: &str| -> Result<Option<f64>> {
            match get(name) {
                None => Ok(None),
                Some(v) => match v.parse::<f64>() {
                    Ok(x) if x.is_finite() && x > 0.0 => Ok(Some(x)),
                    _ => Err(at(line, Some(name), format!("'{v}' is not a positive number"))),
                },
            }
        };
        let date = |name: &str| -> Result<Option<NaiveDate>> {
            get(name).map(|v| NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| at(line, Some(name), format!("'{v}' is not a date (YYYY-MM-DD)")))).transpose()
        };
        let symbol = get("symbol").ok_or_else(|| at(line, Some("symbol"), "empty".into()))?;
        validate_symbol(symbol).map_err(|e| at(line, Some("symbol"), e.to_string()))?;
        let ex_date = date("ex_date")?.ok_or_else(|| at(line, Some("ex_date"), "empty".into()))?;
        let (from, to, cash) = (number("split_from")?, number("split_to")?, number("cash_amount")?);
        let mut a = match (from, to, cash) {
            (Some(f), Some(t), None) => CorporateAction::split(symbol, ex_date, ActionSource::Csv, f, t),
            (None, None, Some(c)) => CorporateAction::dividend(symbol, ex_date, ActionSource::Csv, c),
            (None, None, None) => return Err(at(line, None, "neither a split (split_from, split_to) nor a cash_amount".into())),
            (Some(_), None, _) => return Err(at(line, Some("split_to"), "empty while split_from is given".into())),
            (None, Some(_), _) => return Err(at(line, Some("split_from"), "empty while split_to is given".into())),
            (Some(_), Some(_), Some(_)) => return Err(at(line, Some("cash_amount"), "a row is a split or a dividend, not both".into())),
        };
        a.currency = get("currency").map(str::to_string);
        a.dividend_type = get("dividend_type").map(str::to_string);
        (a.declaration_date, a.record_date, a.pay_date) = (date("declaration_date")?, date("record_date")?, date("pay_date")?);
        out.push(a);
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------------------
// Factors
// ---------------------------------------------------------------------------------------------

/// For each event (symbol, ex-date, kind), the row of the best-ranked source.
fn preferred(actions: Vec<CorporateAction>, precedence: &[ActionSource]) -> Vec<CorporateAction> {
    let rank = |s: ActionSource| precedence.iter().position(|p| *p == s).unwrap_or(precedence.len());
    let mut best: BTreeMap<(String, NaiveDate, ActionKind), CorporateAction> = BTreeMap::new();
    for a in actions {
        let key = (a.symbol.clone(), a.ex_date, a.kind);
        match best.get(&key) {
            Some(b) if rank(b.source) <= rank(a.source) => {}
            _ => {
                best.insert(key, a);
            }
        }
    }
    best.into_values().collect()
}

/// The source precedence recorded by the import that wrote `snapshot` (the default before any).
async fn recorded_precedence(lake: &Lake, snapshot: u64) -> Result<Vec<ActionSource>> {
    if snapshot == 0 {
        return ranking(&DEFAULT_PRECEDENCE);
    }
    let commit = lake.dataset(DATASET)?.log().read_commit(snapshot).await?;
    let listed = commit.and_then(|c| c.parameters.get("source_precedence").cloned()).and_then(|v| serde_json::from_value::<Vec<String>>(v).ok());
    match listed {
        Some(names) => ranking(&names.iter().map(|n| n.parse()).collect::<Result<Vec<ActionSource>>>()?),
        // A snapshot written otherwise (a restore) or a vacuumed log: the default order.
        None => ranking(&DEFAULT_PRECEDENCE),
    }
}

/// The splits of some symbols: what cross-session computations need to put two sessions' prices on
/// one share basis.
#[derive(Debug, Clone, Default)]
pub struct SplitHistory {
    /// Per symbol, (ex-date, price ratio split_from / split_to), by ex-date.
    by_symbol: HashMap<String, Vec<(NaiveDate, f64)>>,
    /// The `reference_corporate_actions` snapshot read.
    pub snapshot_id: u64,
}

impl SplitHistory {
    /// The splits of `symbols` (every symbol with `None`) at `as_of`, one per ex-date by source precedence.
    pub async fn load(lake: &Lake, symbols: Option<&[String]>, as_of: &AsOf) -> Result<Self> {
        let (actions, snapshot_id) = read_actions(lake, symbols, as_of).await?;
        let precedence = recorded_precedence(lake, snapshot_id).await?;
        Ok(Self::from_actions(&preferred(actions, &precedence), snapshot_id))
    }

    fn from_actions(chosen: &[CorporateAction], snapshot_id: u64) -> Self {
        let splits = chosen.iter().filter(|a| a.kind == ActionKind::Split).filter_map(|a| Some((a.symbol.clone(), a.ex_date, a.split_ratio()?)));
        Self { snapshot_id, ..Self::from_splits(splits) }
    }

    /// A history of the given splits: (symbol, ex-date, price ratio split_from / split_to).
    pub fn from_splits(splits: impl IntoIterator<Item = (String, NaiveDate, f64)>) -> Self {
        let mut by_symbol: HashMap<String, Vec<(NaiveDate, f64)>> = HashMap::new();
        for (symbol, ex, ratio) in splits {
            by_symbol.entry(symbol).or_default().push((ex, ratio));
        }
        for v in by_symbol.values_mut() {
            v.sort_by_key(|(d, _)| *d);
        }
        Self { by_symbol, snapshot_id: 0 }
    }

    /// The product of the price ratios of `symbol`'s splits with ex-date in `(after, upto]`: multiply a
    /// price of session `after` by it to put it on the share basis of session `upto` (1.0 without splits).
    pub fn price_ratio_between(&self, symbol: &str, after: NaiveDate, upto: NaiveDate) -> f64 {
        self.by_symbol.get(symbol).map_or(1.0, |v| v.iter().filter(|(d, _)| *d > after && *d <= upto).map(|(_, r)| r).product())
    }

    pub fn is_empty(&self) -> bool {
        self.by_symbol.is_empty()
    }

    /// Every split: (symbol, ex-date, price ratio).
    pub fn splits(&self) -> impl Iterator<Item = (&str, NaiveDate, f64)> {
        self.by_symbol.iter().flat_map(|(s, v)| v.iter().map(move |(d, r)| (s.as_str(), *d, *r)))
    }
}

/// A dividend whose factor could not be computed: its adjustment is left out (factor 1), and a read
/// with [`Adjustment::All`] that needs it fails ([`AdjustmentFactors::check`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnresolvedDividend {
    pub symbol: String,
    pub ex_date: NaiveDate,
    pub cash_amount: f64,
    pub reason: String,
}

/// One symbol's events, by ex-date, with suffix products: index `i` holds the product of the factors
/// of events `i..`.
#[derive(Debug, Clone, Default)]
struct Events {
    dates: Vec<NaiveDate>,
    splits: Vec<f64>,
    all: Vec<f64>,
}

impl Events {
    /// From each ex-date's (split price ratio, dividend factor).
    fn new(dates: &BTreeMap<NaiveDate, (f64, f64)>) -> Self {
        let n = dates.len();
        let mut e = Events { dates: dates.keys().copied().collect(), splits: vec![1.0; n + 1], all: vec![1.0; n + 1] };
        for (i, (split, dividend)) in dates.values().enumerate().rev() {
            e.splits[i] = e.splits[i + 1] * split;
            e.all[i] = e.all[i + 1] * split * dividend;
        }
        e
    }
}

/// Back-adjustment factors of some symbols (see the module docs for the rules).
#[derive(Debug, Clone, Default)]
pub struct AdjustmentFactors {
    events: HashMap<String, Events>,
    unresolved: Vec<UnresolvedDividend>,
    /// The `reference_corporate_actions` snapshot read.
    pub snapshot_id: u64,
}

/// How far back before an ex-date a dividend's previous close may be (a halted symbol's last close).
const MAX_CLOSE_GAP_DAYS: i64 = 10;

impl AdjustmentFactors {
    /// Actions of `symbols` from reference_corporate_actions (at `as_of`), plus the raw closes dividends need.
    pub async fn load(lake: &Lake, symbols: &[String], as_of: &AsOf) -> Result<Self> {
        let (actions, snapshot_id) = read_actions(lake, Some(symbols), as_of).await?;
        let precedence = recorded_precedence(lake, snapshot_id).await?;
        let chosen = preferred(actions, &precedence);
        let splits = SplitHistory::from_actions(&chosen, snapshot_id);
        let dividends: Vec<&CorporateAction> = chosen.iter().filter(|a| a.kind == ActionKind::CashDividend).collect();
        let closes = previous_closes(lake, &dividends, as_of).await?;
        let mut per_date: HashMap<String, BTreeMap<NaiveDate, (f64, f64)>> = HashMap::new();
        for (symbol, ex, ratio) in splits.splits() {
            per_date.entry(symbol.to_string()).or_default().entry(ex).or_insert((1.0, 1.0)).0 *= ratio;
        }
        let mut unresolved = Vec::new();
        for d in dividends {
            let amount = d.cash_amount.unwrap_or(0.0);
            let factor = match closes.get(&(d.symbol.clone(), d.ex_date)) {
                None => Err(format!("no close in curated_1d_bars or curated_1m_bars within {MAX_CLOSE_GAP_DAYS} days before the ex-date")),
                Some(&(close_date, close)) => {
                    // On the ex-date's share basis (a split with the same ex-date).
                    let close = close * splits.price_ratio_between(&d.symbol, close_date, d.ex_date);
                    let f = 1.0 - amount / close;
                    if f.is_finite() && f > 0.0 { Ok(f) } else { Err(format!("dividend {amount} is not below the previous close {close}")) }
                }
            };
            match factor {
                Ok(f) => per_date.entry(d.symbol.clone()).or_default().entry(d.ex_date).or_insert((1.0, 1.0)).1 *= f,
                Err(reason) => {
                    tracing::warn!(symbol = %d.symbol, ex_date = %d.ex_date, %reason, "dividend left out of the adjustment");
                    unresolved.push(UnresolvedDividend { symbol: d.symbol.clone(), ex_date: d.ex_date, cash_amount: amount, reason });
                }
            }
        }
        let events = per_date.into_iter().map(|(symbol, dates)| (symbol, Events::new(&dates))).collect();
        Ok(Self { events, unresolved, snapshot_id })
    }

    /// Multiplier for prices of `symbol`'s session `date` (1.0 when nothing after it, or Adjustment::None).
    pub fn price_factor(&self, symbol: &str, date: NaiveDate, adjust: Adjustment) -> f64 {
        let Some(e) = self.events.get(symbol) else { return 1.0 };
        let i = e.dates.partition_point(|d| *d <= date);
        match adjust {
            Adjustment::None => 1.0,
            Adjustment::Splits => e.splits[i],
            Adjustment::All => e.all[i],
        }
    }

    /// Multiplier for volumes of `symbol`'s session `date`: the inverse of the split price factor
    /// (dividends do not change share counts).
    pub fn volume_factor(&self, symbol: &str, date: NaiveDate, adjust: Adjustment) -> f64 {
        match adjust {
            Adjustment::None => 1.0,
            Adjustment::Splits | Adjustment::All => 1.0 / self.price_factor(symbol, date, Adjustment::Splits),
        }
    }

    /// Dividends left out of the factors, and why.
    pub fn unresolved(&self) -> &[UnresolvedDividend] {
        &self.unresolved
    }

    /// Fails when `adjust` needs a dividend whose factor is unknown: one of `symbols` going ex after `from`.
    pub fn check(&self, symbols: &[String], from: NaiveDate, adjust: Adjustment) -> Result<()> {
        if adjust != Adjustment::All {
            return Ok(());
        }
        match self.unresolved.iter().find(|u| u.ex_date > from && symbols.contains(&u.symbol)) {
            None => Ok(()),
            Some(u) => Err(Error::invalid(format!(
                "cannot adjust {} for its dividend of {} with ex-date {}: {} (curate the session before it, or use --adjust splits)",
                u.symbol, u.cash_amount, u.ex_date, u.reason
            ))),
        }
    }

    /// `batch` with its price columns (open, high, low, close, vwap: those present) multiplied by the
    /// price factor and `volume` by the volume factor of each row's `symbol` and `date`.
    pub fn adjust_batch(&self, batch: &RecordBatch, adjust: Adjustment) -> Result<RecordBatch> {
        if adjust == Adjustment::None || batch.num_rows() == 0 {
            return Ok(batch.clone());
        }
        let symbol = batch.column_by_name("symbol").and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| Error::invalid("adjustment: rows have no utf8 'symbol' column"))?;
        let date = batch.column_by_name("date").and_then(|c| c.as_primitive_opt::<Date32Type>()).ok_or_else(|| Error::invalid("adjustment: rows have no date column 'date'"))?;
        let mut price = Vec::with_capacity(batch.num_rows());
        let mut volume = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let d = NaiveDate::from_epoch_days(date.value(i)).ok_or_else(|| Error::invalid(format!("adjustment: date {} out of range", date.value(i))))?;
            price.push(self.price_factor(symbol.value(i), d, adjust));
            volume.push(self.volume_factor(symbol.value(i), d, adjust));
        }
        let (price, volume) = (Float64Array::from(price), Float64Array::from(volume));
        let schema = batch.schema();
        let mut columns = batch.columns().to_vec();
        for (i, field) in schema.fields().iter().enumerate() {
            let factor = match field.name().as_str() {
                "open" | "high" | "low" | "close" | "vwap" => &price,
                "volume" => &volume,
                _ => continue,
            };
            let values = arrow::compute::cast(&columns[i], &DataType::Float64)?;
            let scaled = arrow::compute::kernels::numeric::mul(&values, factor)?;
            columns[i] = arrow::compute::cast(&scaled, field.data_type())?;
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// For each dividend, the raw close (and its date) of the last session before its ex-date within
/// [`MAX_CLOSE_GAP_DAYS`]: from `curated_1d_bars`, else the last regular-session minute of
/// `curated_1m_bars` (a daily bar wins on the same date).
async fn previous_closes(lake: &Lake, dividends: &[&CorporateAction], as_of: &AsOf) -> Result<HashMap<(String, NaiveDate), (NaiveDate, f64)>> {
    let mut out = HashMap::new();
    if dividends.is_empty() {
        return Ok(out);
    }
    let symbols: Vec<String> = dividends.iter().map(|d| d.symbol.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let lo = dividends.iter().map(|d| d.ex_date).min().unwrap_or_default() - Duration::days(MAX_CLOSE_GAP_DAYS);
    let hi = dividends.iter().map(|d| d.ex_date).max().unwrap_or_default();
    let want: Vec<String> = dividends.iter().map(|d| format!("('{}', DATE '{}')", d.symbol, d.ex_date)).collect();
    let list = sql_symbols(&symbols)?;
    // Daily bars are stamped 00:00 New York, which is the same date in UTC (04:00 or 05:00).
    let sql = format!(
        "WITH want(symbol, ex_date) AS (VALUES {want}),
         bars AS (
           SELECT symbol, DATE '1970-01-01' + CAST(floor(epoch_us(ts) / 86400000000) AS INTEGER) AS d, close, 0 AS pref
           FROM curated_1d_bars WHERE symbol IN ({list})
           UNION ALL
           SELECT symbol, CAST(date AS DATE) AS d, arg_max(close, ts) AS close, 1 AS pref
           FROM curated_1m_bars WHERE is_rth AND symbol IN ({list}) AND date BETWEEN DATE '{lo}' AND DATE '{hi}'
           GROUP BY symbol, date
         )
         SELECT w.symbol, w.ex_date, arg_max(b.d, (b.d - DATE '1970-01-01') * 2 - b.pref) AS close_date,
                arg_max(b.close, (b.d - DATE '1970-01-01') * 2 - b.pref) AS close
         FROM want w JOIN bars b ON b.symbol = w.symbol AND b.d < w.ex_date AND b.d >= w.ex_date - {MAX_CLOSE_GAP_DAYS}
         GROUP BY w.symbol, w.ex_date",
        want = want.join(", ")
    );
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    for b in &batches {
        let as_type = |i: usize, t: &DataType| arrow::compute::cast(b.column(i), t);
        let (symbol, ex, close_date, close) = (as_type(0, &DataType::Utf8)?, as_type(1, &DataType::Date32)?, as_type(2, &DataType::Date32)?, as_type(3, &DataType::Float64)?);
        let (symbol, ex, close_date, close) = (symbol.as_string::<i32>(), ex.as_primitive::<Date32Type>(), close_date.as_primitive::<Date32Type>(), close.as_primitive::<Float64Type>());
        for i in 0..b.num_rows() {
            if close.is_null(i) {
                continue;
            }
            if let (Some(ex), Some(cd)) = (NaiveDate::from_epoch_days(ex.value(i)), NaiveDate::from_epoch_days(close_date.value(i))) {
                out.insert((symbol.value(i).to_string(), ex), (cd, close.value(i)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn factors(events: &[(&str, &str, f64, f64)]) -> AdjustmentFactors {
        let mut per: HashMap<String, BTreeMap<NaiveDate, (f64, f64)>> = HashMap::new();
        for (s, e, split, div) in events {
            per.entry(s.to_string()).or_default().insert(d(e), (*split, *div));
        }
        let events = per.into_iter().map(|(s, dates)| (s, Events::new(&dates))).collect();
        AdjustmentFactors { events, unresolved: Vec::new(), snapshot_id: 0 }
    }

    #[test]
    fn factors_compound_over_later_events_only() {
        // A 7-for-1 on 2024-06-10 and a dividend factor 0.99 on 2024-03-01.
        let f = factors(&[("A", "2024-06-10", 1.0 / 7.0, 1.0), ("A", "2024-03-01", 1.0, 0.99)]);
        let all = Adjustment::All;
        assert_eq!(f.price_factor("A", d("2024-06-10"), all), 1.0, "the ex-date itself is on the new basis");
        assert!((f.price_factor("A", d("2024-06-07"), all) - 1.0 / 7.0).abs() < 1e-15);
        assert!((f.price_factor("A", d("2024-02-29"), all) - 0.99 / 7.0).abs() < 1e-15);
        assert!((f.price_factor("A", d("2024-02-29"), Adjustment::Splits) - 1.0 / 7.0).abs() < 1e-15);
        assert!((f.volume_factor("A", d("2024-02-29"), all) - 7.0).abs() < 1e-12, "dividends leave volume alone");
        assert_eq!(f.price_factor("A", d("2024-02-29"), Adjustment::None), 1.0);
        assert_eq!(f.price_factor("B", d("2024-02-29"), all), 1.0);
        // The research notes' example: 700 before, 101 on the ex-date.
        let ret = (101.0f64 / (700.0 * f.price_factor("A", d("2024-06-07"), Adjustment::Splits))).ln();
        assert!((ret - 0.00995).abs() < 5e-6, "{ret}");
    }

    #[test]
    fn precedence_picks_one_row_per_event() {
        let poly = CorporateAction::split("A", d("2024-01-02"), ActionSource::Polygon, 1.0, 2.0);
        let csv = CorporateAction::split("A", d("2024-01-02"), ActionSource::Csv, 1.0, 3.0);
        let alp = CorporateAction::split("A", d("2024-01-02"), ActionSource::Alpaca, 1.0, 4.0);
        let chosen = preferred(vec![poly.clone(), csv.clone(), alp.clone()], &ranking(&[]).unwrap());
        assert_eq!(chosen, vec![csv.clone()], "default: csv first");
        let chosen = preferred(vec![poly.clone(), csv, alp.clone()], &ranking(&[ActionSource::Alpaca]).unwrap());
        assert_eq!(chosen, vec![alp]);
        assert_eq!(ranking(&[ActionSource::Polygon]).unwrap(), [ActionSource::Polygon, ActionSource::Csv, ActionSource::Alpaca]);
        assert!(ranking(&[ActionSource::Csv, ActionSource::Csv]).unwrap_err().to_string().contains("twice"));
    }

    #[test]
    fn duplicates_merge_or_fail() {
        let a = CorporateAction::dividend("A", d("2024-01-02"), ActionSource::Polygon, 0.5);
        let b = CorporateAction::dividend("A", d("2024-01-02"), ActionSource::Polygon, 0.25);
        let (rows, merged) = merge_duplicates(vec![a.clone(), a.clone(), b]).unwrap();
        assert_eq!((rows.len(), merged), (1, 2));
        assert_eq!(rows[0].cash_amount, Some(0.75), "two dividends going ex together are summed; the identical copy is not");
        let s1 = CorporateAction::split("A", d("2024-01-02"), ActionSource::Csv, 1.0, 2.0);
        let s2 = CorporateAction::split("A", d("2024-01-02"), ActionSource::Csv, 1.0, 3.0);
        assert!(merge_duplicates(vec![s1, s2]).unwrap_err().to_string().contains("two different splits"));
    }

    #[test]
    fn vendor_shapes_parse() {
        let body = r#"{"results":[{"execution_date":"2022-07-18","split_from":1,"split_to":20,"ticker":"GOOGL","id":"E1"}],"status":"OK","next_url":"https://api.polygon.io/v3/reference/splits?cursor=X"}"#;
        let page: crate::sources::polygon::Page<PolygonSplit> = serde_json::from_str(body).unwrap();
        let split = &page.results.unwrap()[0];
        assert_eq!((split.split_from, split.split_to, split.id.as_deref(), split.execution_date), (1.0, 20.0, Some("E1"), d("2022-07-18")));
        assert!(page.next_url.is_some());
        let page: AlpacaPage = serde_json::from_str(r#"{"corporate_actions":{"cash_dividends":null},"next_page_token":null}"#).unwrap();
        assert!(page.corporate_actions.unwrap().cash_dividends.is_none());
        assert_eq!("all".parse::<Adjustment>().unwrap(), Adjustment::All);
        assert!("raw".parse::<Adjustment>().unwrap_err().to_string().contains("none, splits, all"));
    }
}
