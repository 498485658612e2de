//! Corporate actions from a CSV file (the documented columns, in any order and case).

use super::*;

/// The columns a corporate actions CSV may have (a header row names them, in any order and case).
const CSV_COLUMNS: &[&str] = &[
    "symbol",
    "ex_date",
    "split_from",
    "split_to",
    "cash_amount",
    "currency",
    "dividend_type",
    "declaration_date",
    "record_date",
    "pay_date",
];

/// Reads a CSV of splits (`symbol,ex_date,split_from,split_to`) and/or cash dividends
/// (`symbol,ex_date,cash_amount`); each row is one or the other. Errors name the line and column.
pub fn read_csv(path: &Path) -> Result<Vec<CorporateAction>> {
    let at = |line: u64, column: Option<&str>, msg: String| match column {
        Some(c) => Error::invalid(format!("corporate actions CSV {} line {line}, column {c}: {msg}", path.display())),
        None => Error::invalid(format!("corporate actions CSV {} line {line}: {msg}", path.display())),
    };
    let mut reader = ::csv::ReaderBuilder::new()
        .trim(::csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::invalid(format!("corporate actions CSV {}: {e}", path.display())))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("corporate actions CSV {}: {e}", path.display())))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
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
            get(name)
                .map(|v| {
                    NaiveDate::parse_from_str(v, "%Y-%m-%d")
                        .map_err(|_| at(line, Some(name), format!("'{v}' is not a date (YYYY-MM-DD)")))
                })
                .transpose()
        };
        let symbol = get("symbol").ok_or_else(|| at(line, Some("symbol"), "empty".into()))?;
        let symbol = Symbol::new(symbol).map_err(|e| at(line, Some("symbol"), e.to_string()))?;
        let ex_date = date("ex_date")?.ok_or_else(|| at(line, Some("ex_date"), "empty".into()))?;
        let (from, to, cash) = (number("split_from")?, number("split_to")?, number("cash_amount")?);
        let mut a = match (from, to, cash) {
            (Some(f), Some(t), None) => CorporateAction::split(symbol, ex_date, ActionSource::Csv, f, t),
            (None, None, Some(c)) => CorporateAction::dividend(symbol, ex_date, ActionSource::Csv, c),
            (None, None, None) => {
                return Err(at(line, None, "neither a split (split_from, split_to) nor a cash_amount".into()));
            }
            (Some(_), None, _) => return Err(at(line, Some("split_to"), "empty while split_from is given".into())),
            (None, Some(_), _) => return Err(at(line, Some("split_from"), "empty while split_to is given".into())),
            (Some(_), Some(_), Some(_)) => {
                return Err(at(line, Some("cash_amount"), "a row is a split or a dividend, not both".into()));
            }
        };
        a.currency = get("currency").map(str::to_string);
        a.dividend_type = get("dividend_type").map(str::to_string);
        (a.declaration_date, a.record_date, a.pay_date) =
            (date("declaration_date")?, date("record_date")?, date("pay_date")?);
        out.push(a);
    }
    Ok(out)
}
