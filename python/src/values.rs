//! Arguments parsed as the command line parses them, and reports as Python values.

use chrono::{DateTime, NaiveDate, Utc};
use pyo3::prelude::*;

use ql::symbol::Symbol;
use ql::table::AsOf;

use crate::errors::{error, invalid};

/// A date argument (YYYY-MM-DD).
pub fn date(what: &str, text: &str) -> PyResult<NaiveDate> {
    text.parse().map_err(|_| invalid(format!("{what} '{text}' is not a date (YYYY-MM-DD)")))
}

/// A time argument (RFC 3339).
pub fn time(what: &str, text: &str) -> PyResult<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| invalid(format!("{what} '{text}' is not a time (RFC 3339, e.g. 2024-04-30T19:00:00Z)")))
}

/// `as_of` (default: the latest): a snapshot, tag, lake tag, time or `dataset@spec` pins.
pub fn as_of(text: Option<&str>) -> PyResult<AsOf> {
    match text {
        None => Ok(AsOf::latest()),
        Some(t) => AsOf::parse(&[t]).map_err(error),
    }
}

/// Symbols, each checked as the command line checks them.
pub fn symbols(symbols: Vec<String>) -> PyResult<Vec<Symbol>> {
    symbols.iter().map(|s| s.parse::<Symbol>()).collect::<Result<_, _>>().map_err(error)
}

/// A serializable report as Python values (dicts, lists, numbers, strings), as the CLI's `--json`.
pub fn json<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| error(e.into()))?;
    py.import("json")?.call_method1("loads", (text,))
}
