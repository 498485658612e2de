//! Polygon's `GET /vX/reference/financials?ticker=T`: one result per filing, `start_date`/`end_date`
//! (the fiscal period), `filing_date`, `fiscal_period`, `fiscal_year` (a string), `cik`, and
//! `financials.<statement>.<item>.{value, unit, label}`. Pages follow `next_url` on the configured
//! base URL; the key travels in an `Authorization: Bearer` header (as for bars), never in a URL.

use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::HeaderMap;
use serde::Deserialize;
use url::Url;

use super::{Filing, Item, SkippedFiling, Statements, currency_of};
use crate::error::Result;
use crate::sources::http::RestClient;
use crate::sources::polygon::{PolygonSettings, auth_headers, base_url, get_pages};
use crate::symbol::Symbol;

/// Results per page: Polygon's maximum for this endpoint.
const PAGE_LIMIT: u32 = 100;

#[derive(Deserialize)]
struct FinancialsResult {
    start_date: Option<String>,
    end_date: Option<String>,
    filing_date: Option<String>,
    cik: Option<String>,
    company_name: Option<String>,
    fiscal_period: Option<String>,
    /// A string in the API ("2022"); a number is accepted too.
    fiscal_year: Option<serde_json::Value>,
    source_filing_url: Option<String>,
    #[serde(default)]
    financials: Statements,
}

/// What a fetch brought back.
pub(super) struct Fetched {
    /// Results delivered, all symbols.
    pub read: usize,
    pub filings: Vec<Filing>,
    pub skipped: Vec<SkippedFiling>,
}

struct Client {
    http: RestClient,
    base: Url,
    headers: HeaderMap,
}

/// Every filing of every symbol (symbols fetched `settings.concurrency` at a time).
pub(super) async fn fetch(settings: &PolygonSettings, symbols: &[Symbol]) -> Result<Fetched> {
    let client = Client {
        http: RestClient::new("polygon", &settings.http)?,
        base: base_url("polygon", &settings.base_url)?,
        headers: auth_headers(settings)?,
    };
    let requests: Vec<_> = symbols.iter().map(|s| client.symbol_results(s)).collect();
    let per_symbol: Vec<Vec<FinancialsResult>> =
        futures::stream::iter(requests).buffered(settings.concurrency.max(1)).try_collect().await?;
    let mut out = Fetched { read: 0, filings: Vec::new(), skipped: Vec::new() };
    let now = Utc::now();
    for (symbol, results) in symbols.iter().zip(per_symbol) {
        out.read += results.len();
        for r in results {
            match to_filing(symbol, r, now) {
                Ok(f) => out.filings.push(f),
                Err(skip) => out.skipped.push(skip),
            }
        }
    }
    Ok(out)
}

impl Client {
    async fn symbol_results(&self, symbol: &str) -> Result<Vec<FinancialsResult>> {
        let what = format!("{symbol} financials");
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| self.http.error(&what, "base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["vX", "reference", "financials"]);
        url.query_pairs_mut()
            .append_pair("ticker", symbol)
            .append_pair("limit", &PAGE_LIMIT.to_string())
            .append_pair("sort", "filing_date")
            .append_pair("order", "asc");
        get_pages(&self.http, &self.base, &self.headers, url, &what).await
    }
}

/// A result as a filing, or why it cannot be one.
fn to_filing(
    symbol: &str,
    r: FinancialsResult,
    upserted_at: chrono::DateTime<Utc>,
) -> std::result::Result<Filing, SkippedFiling> {
    let year = match &r.fiscal_year {
        Some(serde_json::Value::String(s)) => s.trim().parse::<i32>().ok(),
        Some(serde_json::Value::Number(n)) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        _ => None,
    };
    let described = format!(
        "{} {} ending {} filed {}",
        r.fiscal_year.as_ref().map_or("?".into(), |y| y.as_str().map_or(y.to_string(), str::to_string)),
        r.fiscal_period.as_deref().unwrap_or("?"),
        r.end_date.as_deref().unwrap_or("?"),
        r.filing_date.as_deref().unwrap_or("?")
    );
    let skip = |reason: String| SkippedFiling { symbol: symbol.to_string(), filing: described.clone(), reason };
    let date = |field: &str, v: &Option<String>| -> std::result::Result<Option<NaiveDate>, SkippedFiling> {
        v.as_deref()
            .map(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| skip(format!("{field} '{s}' is not a date"))))
            .transpose()
    };
    let filing_date = date("filing_date", &r.filing_date)?
        .ok_or_else(|| skip("no filing_date: it cannot be placed in time".into()))?;
    let period_end = date("end_date", &r.end_date)?.ok_or_else(|| skip("no end_date".into()))?;
    let period_start = date("start_date", &r.start_date)?;
    let fiscal_period = r.fiscal_period.clone().ok_or_else(|| skip("no fiscal_period".into()))?;
    if fiscal_period == "TTM" {
        return Err(skip("TTM is a sum Polygon derives from filings, not a filing".into()));
    }
    let fiscal_year = year.ok_or_else(|| skip("no fiscal_year".into()))?;
    // Items without a value stay out; the rest are kept whole (value and unit).
    let items: Statements = r
        .financials
        .into_iter()
        .map(|(statement, items)| {
            (
                statement,
                items
                    .into_iter()
                    .filter(|(_, i)| i.value.is_some())
                    .collect::<std::collections::BTreeMap<String, Item>>(),
            )
        })
        .filter(|(_, items)| !items.is_empty())
        .collect();
    let filing_id = r
        .source_filing_url
        .as_deref()
        .and_then(|u| u.trim_end_matches('/').rsplit('/').next())
        .filter(|id| id.chars().all(|c| c.is_ascii_digit() || c == '-') && !id.is_empty())
        .map(str::to_string);
    Ok(Filing {
        symbol: symbol.to_string(),
        fiscal_year,
        fiscal_period,
        period_start,
        period_end,
        filing_date,
        cik: r.cik,
        company_name: r.company_name,
        filing_id,
        filing_url: r.source_filing_url,
        source: "polygon".into(),
        currency: currency_of(&items),
        items,
        upserted_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_become_filings_or_named_skips() {
        let body = r#"{"status":"OK","results":[
            {"start_date":"2022-01-01","end_date":"2022-04-03","filing_date":"2022-05-03","cik":"0001413447","fiscal_period":"Q1","fiscal_year":"2022",
             "source_filing_url":"https://api.massive.com/v1/reference/sec/filings/0001413447-22-000014",
             "financials":{"income_statement":{"revenues":{"label":"Revenues","value":3.136e9,"unit":"USD","order":100},"nothing":{"label":"x","unit":"USD"}}}},
            {"end_date":"2022-04-03","fiscal_period":"Q1","fiscal_year":"2022","financials":{}},
            {"end_date":"2022-04-03","filing_date":"2022-05-03","fiscal_period":"TTM","fiscal_year":2022}]}"#;
        let page: crate::sources::polygon::Page<FinancialsResult> = serde_json::from_str(body).unwrap();
        let mut results = page.results.unwrap().into_iter();
        let f = to_filing("NXPI", results.next().unwrap(), Utc::now()).unwrap();
        assert_eq!(
            (f.fiscal_year, f.fiscal_period.as_str(), f.filing_id.as_deref(), f.currency.as_deref()),
            (2022, "Q1", Some("0001413447-22-000014"), Some("USD"))
        );
        assert_eq!(f.value("income_statement", "revenues"), Some(3.136e9));
        assert!(!f.items["income_statement"].contains_key("nothing"), "an item without a value is not a value");
        let skipped = to_filing("NXPI", results.next().unwrap(), Utc::now()).unwrap_err();
        assert!(
            skipped.reason.contains("no filing_date") && skipped.filing.contains("2022 Q1 ending 2022-04-03"),
            "{skipped:?}"
        );
        assert!(to_filing("NXPI", results.next().unwrap(), Utc::now()).unwrap_err().reason.contains("TTM"));
    }
}
