//! Filings from a CSV or Parquet file, one row per (symbol, fiscal period, filing). Columns are found
//! by name, in any order and case:
//! - required: `symbol` (or `ticker`), `fiscal_year`, `fiscal_period` (Q1..Q4, H1, H2, FY),
//!   `period_end` (or `end_date`), `filing_date` (dates as YYYY-MM-DD);
//! - optional: `period_start` (or `start_date`), `cik`, `company_name`, `filing_id`, `filing_url`,
//!   `currency` (of the monetary items; default USD);
//! - items: a common item by its bare name (`revenues`, `net_income_loss`, `assets`, ... the
//!   dataset's float64 columns), or any item as `statement.item` (`income_statement.research_and_development`).
//!
//! Any other column, a bad value, or a key given twice fails the import with every problem found
//! (up to [`MAX_PROBLEMS`]), each naming its line (CSV, counting the header as line 1) or row
//! (Parquet, from 1) and column.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{NaiveDate, Utc};

use super::{COMMON_ITEMS, Filing, FilingKey, Item, Statements};
use crate::error::{Error, Result};
use crate::sources::file::FileFormat;

/// How many problems an error lists.
pub const MAX_PROBLEMS: usize = 20;

/// What a column holds.
#[derive(Debug, Clone, PartialEq)]
enum Field {
    Symbol,
    FiscalYear,
    FiscalPeriod,
    PeriodStart,
    PeriodEnd,
    FilingDate,
    Cik,
    CompanyName,
    FilingId,
    FilingUrl,
    Currency,
    Item { statement: String, item: String },
}

const FIELDS: &[(&str, &[&str])] = &[
    ("symbol", &["symbol", "ticker"]),
    ("fiscal_year", &["fiscal_year"]),
    ("fiscal_period", &["fiscal_period"]),
    ("period_start", &["period_start", "start_date"]),
    ("period_end", &["period_end", "end_date"]),
    ("filing_date", &["filing_date"]),
    ("cik", &["cik"]),
    ("company_name", &["company_name"]),
    ("filing_id", &["filing_id"]),
    ("filing_url", &["filing_url"]),
    ("currency", &["currency"]),
];

const REQUIRED: &[&str] = &["symbol", "fiscal_year", "fiscal_period", "period_end", "filing_date"];

fn field(name: &str) -> Option<Field> {
    Some(match name {
        "symbol" => Field::Symbol,
        "fiscal_year" => Field::FiscalYear,
        "fiscal_period" => Field::FiscalPeriod,
        "period_start" => Field::PeriodStart,
        "period_end" => Field::PeriodEnd,
        "filing_date" => Field::FilingDate,
        "cik" => Field::Cik,
        "company_name" => Field::CompanyName,
        "filing_id" => Field::FilingId,
        "filing_url" => Field::FilingUrl,
        "currency" => Field::Currency,
        _ => return None,
    })
}

/// What each header names; an unknown or repeated column is an error.
fn resolve(origin: &str, headers: &[String]) -> Result<Vec<Field>> {
    let mut out = Vec::with_capacity(headers.len());
    for raw in headers {
        let h = raw.trim().trim_start_matches('\u{feff}').to_ascii_lowercase();
        let f = if let Some((canonical, _)) = FIELDS.iter().find(|(_, names)| names.contains(&h.as_str())) {
            field(canonical)
        } else if let Some((statement, item)) = COMMON_ITEMS.iter().find(|(_, i)| *i == h) {
            Some(Field::Item { statement: statement.to_string(), item: item.to_string() })
        } else if let Some((statement, item)) = h.split_once('.').filter(|(s, i)| is_name(s) && is_name(i)) {
            Some(Field::Item { statement: statement.into(), item: item.into() })
        } else {
            None
        };
        let f = f.ok_or_else(|| {
            Error::invalid(format!(
                "{origin}: column '{raw}' is not a fundamentals column (known: {}, the common items {}, ..., or statement.item for any other item)",
                FIELDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
                COMMON_ITEMS.iter().take(3).map(|(_, i)| *i).collect::<Vec<_>>().join(", ")
            ))
        })?;
        if out.contains(&f) {
            return Err(Error::invalid(format!("{origin}: column '{raw}' repeats another column's field")));
        }
        out.push(f);
    }
    let missing: Vec<&str> = REQUIRED.iter().copied().filter(|r| field(r).is_some_and(|f| !out.contains(&f))).collect();
    crate::reference::text_rows::check_required(origin, &missing, headers)?;
    Ok(out)
}

fn is_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

/// Reads every filing of the file at `path` (format from `format` or the extension).
pub(super) fn read(path: &Path, format: Option<FileFormat>) -> Result<Vec<Filing>> {
    let origin = path.display().to_string();
    let mut parser = Parser { problems: Vec::new(), filings: Vec::new(), first_line: BTreeMap::new(), now: Utc::now() };
    crate::reference::text_rows::read_text_rows(
        path,
        format,
        |headers| Ok((headers.to_vec(), resolve(&origin, headers)?)),
        |(headers, fields), at, values| parser.row(at, fields, headers, values),
    )?;
    if !parser.problems.is_empty() {
        let n = parser.problems.len();
        let shown: Vec<String> = parser.problems.into_iter().take(MAX_PROBLEMS).collect();
        return Err(Error::invalid(format!(
            "{origin}: {n} problem(s), nothing imported: {}{}",
            shown.join("; "),
            if n > MAX_PROBLEMS { "; ..." } else { "" }
        )));
    }
    Ok(parser.filings)
}

struct Parser {
    problems: Vec<String>,
    filings: Vec<Filing>,
    /// Where each key was first seen, to name both places of a repeated key.
    first_line: BTreeMap<FilingKey, String>,
    now: chrono::DateTime<Utc>,
}

impl Parser {
    fn row(&mut self, at: &str, fields: &[Field], headers: &[String], values: &[&str]) {
        if values.len() != fields.len() {
            self.problems.push(format!("{at}: {} field(s), the header has {}", values.len(), fields.len()));
            return;
        }
        match parse_row(fields, headers, values, self.now) {
            Err(problem) => self.problems.push(format!("{at}, {problem}")),
            Ok(f) => {
                if let Err(reason) = f.check() {
                    self.problems.push(format!("{at}: {reason}"));
                    return;
                }
                let key = f.key();
                if let Some(first) = self.first_line.get(&key) {
                    self.problems
                        .push(format!("{at}: {key} is also on {first} (one row per symbol, fiscal period and filing)"));
                    return;
                }
                self.first_line.insert(key, at.to_string());
                self.filings.push(f);
            }
        }
    }
}

/// One row as a filing; the problem names the column.
fn parse_row(
    fields: &[Field],
    headers: &[String],
    values: &[&str],
    now: chrono::DateTime<Utc>,
) -> std::result::Result<Filing, String> {
    let bad = |i: usize, what: &str| format!("column '{}': '{}' {what}", headers[i], values[i]);
    let date = |i: usize| -> std::result::Result<NaiveDate, String> {
        // Parquet timestamps print as 2022-05-03T00:00:00: their date is taken.
        let v = values[i];
        let day = v.get(..10).filter(|_| v.len() == 10 || matches!(v.as_bytes().get(10), Some(b'T' | b' ')));
        day.and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
            .ok_or_else(|| bad(i, "is not a date (YYYY-MM-DD)"))
    };
    let text = |i: usize| Some(values[i].to_string()).filter(|v| !v.is_empty());
    let (mut symbol, mut year, mut period, mut start, mut end, mut filed) = (None, None, None, None, None, None);
    let mut f = Filing {
        symbol: String::new(),
        fiscal_year: 0,
        fiscal_period: String::new(),
        period_start: None,
        period_end: NaiveDate::MIN,
        filing_date: NaiveDate::MIN,
        cik: None,
        company_name: None,
        filing_id: None,
        filing_url: None,
        source: "file".into(),
        currency: None,
        items: Statements::new(),
        upserted_at: now,
    };
    let mut values_of: Vec<(&str, &str, f64)> = Vec::new();
    for (i, field) in fields.iter().enumerate() {
        let empty = values[i].is_empty();
        match field {
            Field::Symbol => symbol = text(i),
            Field::FiscalYear if !empty => {
                let y = values[i]
                    .parse::<f64>()
                    .ok()
                    .filter(|y| y.fract() == 0.0 && (1.0..=9999.0).contains(y))
                    .ok_or_else(|| bad(i, "is not a year"))?;
                year = Some(y as i32);
            }
            Field::FiscalPeriod => period = text(i).map(|p| p.to_ascii_uppercase()),
            Field::PeriodStart if !empty => start = Some(date(i)?),
            Field::PeriodEnd if !empty => end = Some(date(i)?),
            Field::FilingDate if !empty => filed = Some(date(i)?),
            Field::Cik => f.cik = text(i),
            Field::CompanyName => f.company_name = text(i),
            Field::FilingId => f.filing_id = text(i),
            Field::FilingUrl => f.filing_url = text(i),
            Field::Currency => f.currency = text(i),
            Field::Item { statement, item } if !empty => {
                let v =
                    values[i].parse::<f64>().ok().filter(|v| v.is_finite()).ok_or_else(|| bad(i, "is not a number"))?;
                values_of.push((statement.as_str(), item.as_str(), v));
            }
            _ => {}
        }
    }
    fn need<T>(v: Option<T>, name: &str) -> std::result::Result<T, String> {
        v.ok_or_else(|| format!("column '{name}': empty (required)"))
    }
    f.symbol = need(symbol, "symbol")?;
    f.fiscal_year = need(year, "fiscal_year")?;
    f.fiscal_period = need(period, "fiscal_period")?;
    f.period_end = need(end, "period_end")?;
    f.filing_date = need(filed, "filing_date")?;
    f.period_start = start;
    let currency = f.currency.get_or_insert_with(|| "USD".into()).clone();
    for (statement, item, value) in values_of {
        let unit = if item.ends_with("_per_share") {
            format!("{currency} / shares")
        } else if item.ends_with("_shares") {
            "shares".into()
        } else {
            currency.clone()
        };
        f.items
            .entry(statement.to_string())
            .or_default()
            .insert(item.to_string(), Item { value: Some(value), unit: Some(unit) });
    }
    Ok(f)
}
