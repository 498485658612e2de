//! Company fundamentals, point in time: the `fundamentals` dataset (`schemas/fundamentals.toml`), one
//! row per (symbol, fiscal period, filing), filled by an upsert from Polygon's
//! `/vX/reference/financials` ([`upsert_from_polygon`]) or from a CSV/Parquet file
//! ([`upsert_from_file`]), and read back as the market knew it on a date ([`fundamentals_as_of`]).
//!
//! A row's key is (symbol, fiscal_year, fiscal_period, filing_date): an upsert replaces the row of a
//! key it delivers again (never a second row), leaves rows whose content is unchanged alone (a rerun
//! commits nothing), and a restatement (the same period filed later) is a row of its own. A decision
//! on date D sees the latest filing with `filing_date < D`: filings dated D or later are not used.

mod file;
mod polygon;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Int32Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::sources::file::FileFormat;
use crate::sources::polygon::PolygonSettings;
use crate::symbol::Symbol;
use crate::table::AsOf;
use crate::table::layout::PartitionKey;
use crate::table::{Lake, ReadFilter};

/// The fundamentals dataset.
pub const DATASET: &str = "fundamentals";

/// The fiscal periods a filing may report. Polygon's `TTM` rows are sums it derives from filings,
/// not filings, and are skipped (and reported).
pub const FISCAL_PERIODS: &[&str] = &["Q1", "Q2", "Q3", "Q4", "H1", "H2", "FY"];

/// The items that are columns of their own as well as in `items`: (statement, item), Polygon's names.
pub const COMMON_ITEMS: &[(&str, &str)] = &[
    ("income_statement", "revenues"),
    ("income_statement", "cost_of_revenue"),
    ("income_statement", "gross_profit"),
    ("income_statement", "operating_expenses"),
    ("income_statement", "operating_income_loss"),
    ("income_statement", "income_loss_from_continuing_operations_before_tax"),
    ("income_statement", "income_tax_expense_benefit"),
    ("income_statement", "net_income_loss"),
    ("income_statement", "net_income_loss_attributable_to_parent"),
    ("income_statement", "basic_earnings_per_share"),
    ("income_statement", "diluted_earnings_per_share"),
    ("income_statement", "basic_average_shares"),
    ("income_statement", "diluted_average_shares"),
    ("balance_sheet", "assets"),
    ("balance_sheet", "current_assets"),
    ("balance_sheet", "noncurrent_assets"),
    ("balance_sheet", "liabilities"),
    ("balance_sheet", "current_liabilities"),
    ("balance_sheet", "noncurrent_liabilities"),
    ("balance_sheet", "long_term_debt"),
    ("balance_sheet", "equity"),
    ("balance_sheet", "equity_attributable_to_parent"),
    ("cash_flow_statement", "net_cash_flow_from_operating_activities"),
    ("cash_flow_statement", "net_cash_flow_from_investing_activities"),
    ("cash_flow_statement", "net_cash_flow_from_financing_activities"),
    ("cash_flow_statement", "net_cash_flow"),
];

/// One statement item as delivered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Item {
    pub value: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
}

/// Statement -> item -> value: every item of a filing.
pub type Statements = BTreeMap<String, BTreeMap<String, Item>>;

/// One row of `fundamentals`: a filing's figures for one fiscal period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Filing {
    pub symbol: String,
    pub fiscal_year: i32,
    /// One of [`FISCAL_PERIODS`].
    pub fiscal_period: String,
    pub period_start: Option<NaiveDate>,
    pub period_end: NaiveDate,
    /// When the filing became public: the point-in-time key.
    pub filing_date: NaiveDate,
    pub cik: Option<String>,
    pub company_name: Option<String>,
    /// SEC accession number, when known.
    pub filing_id: Option<String>,
    pub filing_url: Option<String>,
    /// `polygon` or `file`.
    pub source: String,
    /// Unit of the monetary items.
    pub currency: Option<String>,
    pub items: Statements,
    pub upserted_at: DateTime<Utc>,
}

/// What identifies a row: an upsert replaces the row with the same key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct FilingKey {
    pub symbol: String,
    pub fiscal_year: i32,
    pub fiscal_period: String,
    pub filing_date: NaiveDate,
}

impl std::fmt::Display for FilingKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {} {} filed {}", self.symbol, self.fiscal_year, self.fiscal_period, self.filing_date)
    }
}

impl Filing {
    pub fn key(&self) -> FilingKey {
        FilingKey {
            symbol: self.symbol.clone(),
            fiscal_year: self.fiscal_year,
            fiscal_period: self.fiscal_period.clone(),
            filing_date: self.filing_date,
        }
    }

    /// An item's value (`statement`, `item`: Polygon's names, e.g. `income_statement`, `revenues`).
    pub fn value(&self, statement: &str, item: &str) -> Option<f64> {
        self.items.get(statement)?.get(item)?.value
    }

    /// The same figures and facts, whenever written (`upserted_at` aside).
    fn same_content(&self, other: &Filing) -> bool {
        Filing { upserted_at: other.upserted_at, ..self.clone() } == *other
    }

    /// Checks what a filing must satisfy to be placed in time; the reason when it does not.
    pub fn check(&self) -> std::result::Result<(), String> {
        Symbol::new(&self.symbol).map_err(|e| e.to_string())?;
        if !FISCAL_PERIODS.contains(&self.fiscal_period.as_str()) {
            return Err(format!("fiscal_period '{}' is not one of {}", self.fiscal_period, FISCAL_PERIODS.join(", ")));
        }
        if !(1900..=2200).contains(&self.fiscal_year) {
            return Err(format!("fiscal_year {} is out of range", self.fiscal_year));
        }
        if let Some(start) = self.period_start.filter(|s| *s > self.period_end) {
            return Err(format!("period_start {start} is after period_end {}", self.period_end));
        }
        if self.filing_date < self.period_end {
            return Err(format!(
                "filing_date {} is before period_end {}: a filing reports a period that has ended",
                self.filing_date, self.period_end
            ));
        }
        for (statement, items) in &self.items {
            if let Some((name, _)) = items.iter().find(|(_, i)| i.value.is_some_and(|v| !v.is_finite())) {
                return Err(format!("{statement}.{name} is not a finite number"));
            }
        }
        Ok(())
    }

    /// How much of a year the period spans: the tie-break between filings of one date (a 10-K's
    /// FY before the Q4 in it).
    fn period_rank(&self) -> u8 {
        match self.fiscal_period.as_str() {
            "FY" => 3,
            "H1" | "H2" => 2,
            _ => 1,
        }
    }
}

/// The currency of a filing's monetary items: the unit of revenues or assets, else the commonest
/// unit that is not per share or a share count.
pub fn currency_of(items: &Statements) -> Option<String> {
    let unit = |s: &str, i: &str| items.get(s)?.get(i)?.unit.clone();
    if let Some(u) = unit("income_statement", "revenues").or_else(|| unit("balance_sheet", "assets")) {
        return Some(u);
    }
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for item in items.values().flat_map(|s| s.values()) {
        if let Some(u) = item.unit.as_deref().filter(|u| !u.contains('/') && *u != "shares" && *u != "pure") {
            *counts.entry(u).or_default() += 1;
        }
    }
    counts.into_iter().max_by_key(|(_, n)| *n).map(|(u, _)| u.to_string())
}

/// The latest filing of `symbol` with `filing_date` strictly before `decision_date`: a decision on
/// a date sees only what was public the day before. Ties (several filings on one date) go to the
/// later period end, then the longer period (FY before Q4).
pub fn latest_filing_before<'a>(filings: &'a [Filing], symbol: &str, decision_date: NaiveDate) -> Option<&'a Filing> {
    filings.iter().filter(|f| f.symbol == symbol && f.filing_date < decision_date).max_by(|a, b| {
        (a.filing_date, a.period_end, a.period_rank(), a.fiscal_year, &a.fiscal_period).cmp(&(
            b.filing_date,
            b.period_end,
            b.period_rank(),
            b.fiscal_year,
            &b.fiscal_period,
        ))
    })
}

/// A filing an upsert did not store, and why (never silently: the report lists each one).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SkippedFiling {
    pub symbol: String,
    /// What the vendor said of it (period, dates), as far as it said.
    pub filing: String,
    pub reason: String,
}

/// What an upsert did.
#[derive(Debug, Clone, Serialize)]
pub struct UpsertReport {
    pub dataset: String,
    /// `polygon` or `file`.
    pub source: String,
    /// The base URL asked, or the file read.
    pub origin: String,
    pub symbols: Vec<Symbol>,
    /// Filings delivered (before skipping and de-duplication).
    pub filings_read: usize,
    /// New keys stored, existing keys with new content, existing keys delivered again unchanged.
    pub inserted: usize,
    pub replaced: usize,
    pub unchanged: usize,
    /// The vendor delivered a key twice: the later delivery was kept.
    pub duplicates: usize,
    pub skipped: Vec<SkippedFiling>,
    /// File rows of symbols outside `--symbols`.
    pub not_selected: usize,
    /// The snapshot committed (none when nothing changed).
    pub snapshot_id: Option<u64>,
    /// Rows in the dataset afterwards.
    pub rows: usize,
}

/// Fetches `symbols`' filings from Polygon's `/vX/reference/financials` (every page, following
/// `next_url`) and upserts them in one snapshot. Filings Polygon cannot date (no filing date), TTM
/// sums and filings that fail [`Filing::check`] are skipped and listed in the report.
pub async fn upsert_from_polygon(lake: &Lake, settings: &PolygonSettings, symbols: &[Symbol]) -> Result<UpsertReport> {
    check_symbols(symbols)?;
    let fetched = polygon::fetch(settings, symbols).await?;
    let mut report = new_report("polygon", settings.base_url.clone(), symbols.to_vec(), fetched.read);
    report.skipped = fetched.skipped;
    let mut by_key: BTreeMap<FilingKey, Filing> = BTreeMap::new();
    for f in fetched.filings {
        match f.check() {
            Err(reason) => {
                report.skipped.push(SkippedFiling { symbol: f.symbol.clone(), filing: f.key().to_string(), reason })
            }
            Ok(()) => {
                if by_key.insert(f.key(), f).is_some() {
                    report.duplicates += 1;
                }
            }
        }
    }
    for s in &report.skipped {
        tracing::warn!(symbol = %s.symbol, filing = %s.filing, "fundamentals: skipped a filing: {}", s.reason);
    }
    upsert(lake, by_key.into_values().collect(), report).await
}

/// Reads a CSV or Parquet file of filings (columns: see the README's "Fundamentals") and upserts
/// them in one snapshot; with `symbols`, only those symbols' rows. Any bad row fails the whole
/// import, naming its line (CSV) or row (Parquet) and column; nothing is committed then.
pub async fn upsert_from_file(
    lake: &Lake,
    path: &Path,
    format: Option<FileFormat>,
    symbols: Option<&[Symbol]>,
) -> Result<UpsertReport> {
    if let Some(s) = symbols {
        check_symbols(s)?;
    }
    let rows = file::read(path, format)?;
    let mut report = new_report("file", path.display().to_string(), Vec::new(), rows.len());
    let mut keep = Vec::new();
    for f in rows {
        match symbols {
            Some(list) if !list.iter().any(|s| s.as_str() == f.symbol) => report.not_selected += 1,
            _ => keep.push(f),
        }
    }
    let mut seen = keep.iter().map(|f| Symbol::new(&f.symbol)).collect::<Result<Vec<_>>>()?;
    seen.sort();
    seen.dedup();
    report.symbols = seen;
    upsert(lake, keep, report).await
}

fn check_symbols(symbols: &[Symbol]) -> Result<()> {
    if symbols.is_empty() {
        return Err(Error::invalid("no symbols to ask for"));
    }
    Ok(())
}

fn new_report(source: &str, origin: String, symbols: Vec<Symbol>, read: usize) -> UpsertReport {
    UpsertReport {
        dataset: DATASET.into(),
        source: source.into(),
        origin,
        symbols,
        filings_read: read,
        inserted: 0,
        replaced: 0,
        unchanged: 0,
        duplicates: 0,
        skipped: Vec::new(),
        not_selected: 0,
        snapshot_id: None,
        rows: 0,
    }
}

/// Stores `incoming` (unique keys): new keys are added, changed ones replace their row, unchanged
/// ones are left alone; one snapshot, or none when nothing changed.
async fn upsert(lake: &Lake, incoming: Vec<Filing>, mut report: UpsertReport) -> Result<UpsertReport> {
    let ds = lake.dataset(DATASET)?;
    let state = ds.latest().await?;
    let current: HashMap<FilingKey, Filing> =
        from_batches(&ds.read(&state, &ReadFilter::default()).await?)?.into_iter().map(|f| (f.key(), f)).collect();
    let mut changed = Vec::new();
    for f in incoming {
        match current.get(&f.key()) {
            Some(old) if old.same_content(&f) => report.unchanged += 1,
            Some(_) => {
                report.replaced += 1;
                changed.push(f);
            }
            None => {
                report.inserted += 1;
                changed.push(f);
            }
        }
    }
    report.rows = current.len() + report.inserted;
    if changed.is_empty() {
        return Ok(report);
    }
    let keys: HashSet<FilingKey> = changed.iter().map(Filing::key).collect();
    let batch = to_batch(ds.contract(), &changed)?;
    let replaced = move |b: &RecordBatch| -> Result<BooleanArray> {
        Ok(keys_of(b)?.iter().map(|k| Some(keys.contains(k))).collect())
    };
    let done = ds
        .write(vec![batch])
        .removing_where(Arc::new(replaced))
        .covering([PartitionKey::All])
        .operation("fundamentals_upsert")
        .parameter("source", &report.source)
        .parameter("origin", &report.origin)
        .parameter("inserted", report.inserted)
        .parameter("replaced", report.replaced)
        .execute()
        .await?;
    report.snapshot_id = Some(done.snapshot_id);
    Ok(report)
}

/// The filings of `symbols` (all when empty) at the snapshot `as_of` gives for `fundamentals`.
pub async fn read_filings(lake: &Lake, symbols: &[Symbol], as_of: &AsOf) -> Result<Vec<Filing>> {
    let ds = lake.dataset(DATASET)?;
    let state = ds.snapshot(as_of.spec_for(DATASET)).await?;
    let filter = ReadFilter { symbols: symbols.iter().cloned().collect(), ..Default::default() };
    let mut filings = from_batches(&ds.read(&state, &filter).await?)?;
    filings.sort_by(|a, b| {
        (&a.symbol, a.filing_date, a.period_end, a.fiscal_year, &a.fiscal_period).cmp(&(
            &b.symbol,
            b.filing_date,
            b.period_end,
            b.fiscal_year,
            &b.fiscal_period,
        ))
    });
    Ok(filings)
}

/// Every stored filing of `symbols` (all when empty), by symbol and filing date, as rows of the
/// dataset's schema.
pub async fn fundamentals_history(lake: &Lake, symbols: &[Symbol], as_of: &AsOf) -> Result<Vec<RecordBatch>> {
    let filings = read_filings(lake, symbols, as_of).await?;
    Ok(vec![to_batch(lake.dataset(DATASET)?.contract(), &filings)?])
}

/// The latest filing per symbol with filing_date strictly before `decision_date` (None if none).
///
/// One row per symbol of `symbols` (every stored symbol when empty) that has such a filing, in the
/// dataset's schema, sorted by symbol; a symbol without one has no row. Read at the snapshot `as_of`
/// gives for `fundamentals`, so a training set pinned to a snapshot sees the filings stored then.
pub async fn fundamentals_as_of(
    lake: &Lake,
    symbols: &[Symbol],
    decision_date: NaiveDate,
    as_of: &AsOf,
) -> Result<Vec<RecordBatch>> {
    let filings = read_filings(lake, symbols, as_of).await?;
    let mut names: Vec<&str> = filings.iter().map(|f| f.symbol.as_str()).collect();
    names.dedup();
    let picked: Vec<Filing> =
        names.into_iter().filter_map(|s| latest_filing_before(&filings, s, decision_date).cloned()).collect();
    Ok(vec![to_batch(lake.dataset(DATASET)?.contract(), &picked)?])
}

/// Days since 1970-01-01 (Arrow's date32) and back.
fn to_days(d: NaiveDate) -> i32 {
    (d - epoch()).num_days() as i32
}

fn from_days(days: i32) -> Option<NaiveDate> {
    epoch().checked_add_signed(chrono::Duration::days(days.into()))
}

fn epoch() -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()
}

/// Filings as one batch of the contract's schema (common items from `items`).
fn to_batch(contract: &DatasetContract, filings: &[Filing]) -> Result<RecordBatch> {
    let text = |f: fn(&Filing) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(filings.iter().map(f))) };
    let date = |f: fn(&Filing) -> Option<NaiveDate>| -> ArrayRef {
        Arc::new(Date32Array::from_iter(filings.iter().map(|x| f(x).map(to_days))))
    };
    let items: Vec<String> =
        filings.iter().map(|f| serde_json::to_string(&f.items)).collect::<std::result::Result<_, _>>()?;
    contract.batch_from(|name| {
        if let Some((statement, item)) = COMMON_ITEMS.iter().find(|(_, i)| *i == name) {
            return Some(
                Arc::new(Float64Array::from_iter(filings.iter().map(|f| f.value(statement, item)))) as ArrayRef
            );
        }
        Some(match name {
            "symbol" => text(|f| Some(f.symbol.as_str())),
            "fiscal_year" => Arc::new(Int32Array::from_iter_values(filings.iter().map(|f| f.fiscal_year))),
            "fiscal_period" => text(|f| Some(f.fiscal_period.as_str())),
            "period_start" => date(|f| f.period_start),
            "period_end" => date(|f| Some(f.period_end)),
            "filing_date" => date(|f| Some(f.filing_date)),
            "cik" => text(|f| f.cik.as_deref()),
            "company_name" => text(|f| f.company_name.as_deref()),
            "filing_id" => text(|f| f.filing_id.as_deref()),
            "filing_url" => text(|f| f.filing_url.as_deref()),
            "source" => text(|f| Some(f.source.as_str())),
            "currency" => text(|f| f.currency.as_deref()),
            "items" => Arc::new(StringArray::from_iter_values(items.iter())),
            "upserted_at" => Arc::new(
                TimestampMicrosecondArray::from_iter_values(filings.iter().map(|f| f.upserted_at.timestamp_micros()))
                    .with_timezone("UTC"),
            ),
            _ => return None,
        })
    })
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name)
        .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("no column '{name}'") })
}

fn text_column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a StringArray> {
    column(b, name)?.as_string_opt::<i32>().ok_or_else(|| Error::SchemaMismatch {
        dataset: DATASET.into(),
        detail: format!("column '{name}' is not utf8"),
    })
}

fn date_column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a Date32Array> {
    column(b, name)?.as_primitive_opt::<Date32Type>().ok_or_else(|| Error::SchemaMismatch {
        dataset: DATASET.into(),
        detail: format!("column '{name}' is not date32"),
    })
}

fn date_at(a: &Date32Array, i: usize, name: &str) -> Result<Option<NaiveDate>> {
    if a.is_null(i) {
        return Ok(None);
    }
    from_days(a.value(i)).map(Some).ok_or_else(|| Error::SchemaMismatch {
        dataset: DATASET.into(),
        detail: format!("{name} {} is out of range", a.value(i)),
    })
}

/// The keys of a batch's rows (for the upsert's removal predicate).
fn keys_of(b: &RecordBatch) -> Result<Vec<FilingKey>> {
    let (symbol, period, filed) =
        (text_column(b, "symbol")?, text_column(b, "fiscal_period")?, date_column(b, "filing_date")?);
    let year = column(b, "fiscal_year")?
        .as_primitive_opt::<Int32Type>()
        .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: "fiscal_year is not int32".into() })?;
    (0..b.num_rows())
        .map(|i| {
            let filing_date = date_at(filed, i, "filing_date")?
                .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: "null filing_date".into() })?;
            Ok(FilingKey {
                symbol: symbol.value(i).to_string(),
                fiscal_year: year.value(i),
                fiscal_period: period.value(i).to_string(),
                filing_date,
            })
        })
        .collect()
}

/// Stored rows back as filings.
fn from_batches(batches: &[RecordBatch]) -> Result<Vec<Filing>> {
    let mut out = Vec::new();
    for b in batches {
        let keys = keys_of(b)?;
        let (start, end) = (date_column(b, "period_start")?, date_column(b, "period_end")?);
        let (cik, name, id, url, source, currency, items) = (
            text_column(b, "cik")?,
            text_column(b, "company_name")?,
            text_column(b, "filing_id")?,
            text_column(b, "filing_url")?,
            text_column(b, "source")?,
            text_column(b, "currency")?,
            text_column(b, "items")?,
        );
        let at = column(b, "upserted_at")?.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| {
            Error::SchemaMismatch { dataset: DATASET.into(), detail: "upserted_at is not a timestamp".into() }
        })?;
        let opt = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        for (i, key) in keys.into_iter().enumerate() {
            let period_end = date_at(end, i, "period_end")?
                .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: "null period_end".into() })?;
            let statements: Statements = serde_json::from_str(items.value(i)).map_err(|e| Error::SchemaMismatch {
                dataset: DATASET.into(),
                detail: format!("items of {key} are not valid JSON: {e}"),
            })?;
            out.push(Filing {
                symbol: key.symbol,
                fiscal_year: key.fiscal_year,
                fiscal_period: key.fiscal_period,
                period_start: date_at(start, i, "period_start")?,
                period_end,
                filing_date: key.filing_date,
                cik: opt(cik, i),
                company_name: opt(name, i),
                filing_id: opt(id, i),
                filing_url: opt(url, i),
                source: source.value(i).to_string(),
                currency: opt(currency, i),
                items: statements,
                upserted_at: DateTime::<Utc>::from_timestamp_micros(at.value(i)).unwrap_or_default(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn day(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    pub(super) fn filing(symbol: &str, period: &str, end: &str, filed: &str, revenues: f64) -> Filing {
        let mut items = Statements::new();
        items
            .entry("income_statement".into())
            .or_default()
            .insert("revenues".into(), Item { value: Some(revenues), unit: Some("USD".into()) });
        Filing {
            symbol: symbol.into(),
            fiscal_year: 2022,
            fiscal_period: period.into(),
            period_start: None,
            period_end: day(end),
            filing_date: day(filed),
            cik: None,
            company_name: None,
            filing_id: None,
            filing_url: None,
            source: "file".into(),
            currency: currency_of(&items),
            items,
            upserted_at: Utc::now(),
        }
    }

    #[test]
    fn point_in_time_never_sees_the_decision_date() {
        let filings = vec![
            filing("A", "Q1", "2022-04-02", "2022-05-03", 1.0),
            filing("A", "Q1", "2022-04-02", "2022-08-01", 1.5), // restatement of Q1
            filing("A", "Q2", "2022-07-02", "2022-08-01", 2.0), // same day: the later period wins
            filing("B", "Q1", "2022-04-02", "2022-05-10", 9.0),
        ];
        assert_eq!(
            latest_filing_before(&filings, "A", day("2022-05-03")),
            None,
            "filed on the decision date: not yet known"
        );
        assert_eq!(
            latest_filing_before(&filings, "A", day("2022-05-04")).map(|f| f.value("income_statement", "revenues")),
            Some(Some(1.0))
        );
        assert_eq!(
            latest_filing_before(&filings, "A", day("2022-08-01")).map(|f| f.filing_date),
            Some(day("2022-05-03"))
        );
        let after = latest_filing_before(&filings, "A", day("2022-08-02")).unwrap();
        assert_eq!((after.fiscal_period.as_str(), after.value("income_statement", "revenues")), ("Q2", Some(2.0)));
        assert_eq!(latest_filing_before(&filings, "C", day("2030-01-01")), None);
        let mut fy = filing("A", "FY", "2022-07-02", "2022-08-01", 8.0);
        fy.fiscal_year = 2022;
        let with_fy = [filings.clone(), vec![fy]].concat();
        assert_eq!(
            latest_filing_before(&with_fy, "A", day("2022-08-02")).unwrap().fiscal_period,
            "FY",
            "FY before the quarter in it"
        );
    }

    #[test]
    fn rows_round_trip_and_checks_name_the_problem() {
        let contract = crate::contract::Contracts::builtin().get(DATASET).unwrap();
        let mut f = filing("NXPI", "Q1", "2022-04-03", "2022-05-03", 3.136e9);
        f.items
            .entry("balance_sheet".into())
            .or_default()
            .insert("assets".into(), Item { value: Some(2.1321e10), unit: Some("USD".into()) });
        f.items
            .entry("income_statement".into())
            .or_default()
            .insert("diluted_earnings_per_share".into(), Item { value: Some(2.48), unit: Some("USD / shares".into()) });
        f.period_start = Some(day("2022-01-01"));
        f.upserted_at = DateTime::<Utc>::from_timestamp_micros(f.upserted_at.timestamp_micros()).unwrap();
        let batch = to_batch(&contract, std::slice::from_ref(&f)).unwrap();
        let revenues = batch.column_by_name("revenues").unwrap().as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(revenues.value(0), 3.136e9);
        assert!(batch.column_by_name("net_income_loss").unwrap().is_null(0));
        assert_eq!(from_batches(&[batch]).unwrap(), vec![f.clone()]);
        assert_eq!(f.check(), Ok(()));
        let bad = |change: fn(&mut Filing)| {
            let mut g = f.clone();
            change(&mut g);
            g.check().unwrap_err()
        };
        assert!(bad(|g| g.fiscal_period = "TTM".into()).contains("fiscal_period 'TTM' is not one of"));
        assert!(bad(|g| g.filing_date = g.period_end.pred_opt().unwrap()).contains("is before period_end"));
        assert!(bad(|g| g.period_start = Some(g.period_end.succ_opt().unwrap())).contains("is after period_end"));
        assert!(bad(|g| g.symbol = "A/B".into()).contains("invalid symbol"));
        assert_eq!(currency_of(&f.items).as_deref(), Some("USD"));
    }
}
