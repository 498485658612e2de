//! Polygon (also sold as "Massive") aggregates: `GET /v2/aggs/ticker/{ticker}/range/1/{minute|day}/{from}/{to}`,
//! one request per symbol and range, following `next_url` pages. The key travels in an
//! `Authorization: Bearer` header (from `POLYGON_API_KEY` or `[polygon] api_key`), never in a URL.

use chrono::{DateTime, NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use reqwest::header::{AUTHORIZATION, HeaderMap, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{HttpSettings, RestClient, Secret, parse_json};
use super::{Bar, BarSize, BarSource, Fetched, into_sessions};
use crate::calendar::Session;
use crate::error::{Error, Result};
use crate::symbol::Symbol;

/// `[polygon]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct PolygonSettings {
    /// API root; `POLYGON_BASE_URL` overrides it (tests point it at 127.0.0.1).
    pub base_url: String,
    /// API key; `POLYGON_API_KEY` overrides it.
    pub api_key: Option<Secret>,
    /// Split-adjusted prices. Off by default: the raw layer keeps prices as traded, so re-ingesting
    /// an old day after a split gives the same rows.
    pub adjusted: bool,
    /// Symbols fetched at once.
    pub concurrency: usize,
    pub http: HttpSettings,
}

impl Default for PolygonSettings {
    fn default() -> Self {
        Self {
            base_url: "https://api.polygon.io".into(),
            api_key: None,
            adjusted: false,
            concurrency: 4,
            // The free plan allows 5 requests a minute; paid plans raise this in the config.
            http: HttpSettings { requests_per_minute: 5, ..HttpSettings::default() },
        }
    }
}

pub struct PolygonSource {
    http: RestClient,
    base: Url,
    headers: HeaderMap,
    adjusted: bool,
    concurrency: usize,
}

/// Page size Polygon allows at most.
const PAGE_LIMIT: u32 = 50_000;

/// One page of a Polygon list endpoint (aggregates, splits, dividends, financials).
#[derive(Deserialize)]
pub(crate) struct Page<T> {
    pub status: Option<String>,
    /// Omitted or `null` when there is nothing (a holiday, no trades).
    pub results: Option<Vec<T>>,
    pub next_url: Option<String>,
}

#[derive(Deserialize)]
struct AggBar {
    /// Window start, Unix milliseconds.
    t: i64,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
    vw: Option<f64>,
    n: Option<f64>,
}

impl PolygonSource {
    pub fn new(settings: &PolygonSettings) -> Result<Self> {
        Ok(Self {
            http: RestClient::new("polygon", &settings.http)?,
            base: base_url("polygon", &settings.base_url)?,
            headers: auth_headers(settings)?,
            adjusted: settings.adjusted,
            concurrency: settings.concurrency.max(1),
        })
    }

    async fn symbol_bars(&self, symbol: &str, from: NaiveDate, to: NaiveDate, size: BarSize) -> Result<Vec<Bar>> {
        let what = format!("{symbol} {} bars {from}..{to}", size.as_str());
        let timespan = match size {
            BarSize::Minute => "minute",
            BarSize::Day => "day",
        };
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| self.http.error(&what, "base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["v2", "aggs", "ticker", symbol, "range", "1", timespan, &from.to_string(), &to.to_string()]);
        url.query_pairs_mut()
            .append_pair("adjusted", if self.adjusted { "true" } else { "false" })
            .append_pair("sort", "asc")
            .append_pair("limit", &PAGE_LIMIT.to_string());
        let mut bars = Vec::new();
        for b in get_pages::<AggBar>(&self.http, &self.base, &self.headers, url, &what).await? {
            let ts = DateTime::<Utc>::from_timestamp_millis(b.t)
                .ok_or_else(|| self.http.error(&what, format!("bar time {} is out of range", b.t)))?;
            bars.push(Bar {
                ts,
                open: b.o,
                high: b.h,
                low: b.l,
                close: b.c,
                volume: b.v,
                vwap: b.vw,
                trade_count: b.n.map(|n| n as i64),
            });
        }
        Ok(bars)
    }
}

/// The `Authorization: Bearer` header of `settings`' key (marked sensitive: never logged).
pub(crate) fn auth_headers(settings: &PolygonSettings) -> Result<HeaderMap> {
    let key = settings
        .api_key
        .as_ref()
        .ok_or_else(|| Error::Config("polygon: no API key; set POLYGON_API_KEY or [polygon] api_key".into()))?;
    let mut auth = HeaderValue::from_str(&format!("Bearer {}", key.expose()))
        .map_err(|_| Error::Config("polygon: the API key has characters a header cannot carry".into()))?;
    auth.set_sensitive(true);
    let mut headers = HeaderMap::new();
    headers.insert(AUTHORIZATION, auth);
    Ok(headers)
}

/// Every page's results of a Polygon list request, from `url` on: each page's `next_url` is followed
/// on `base` ([`rebase`]), and a cursor that comes back is an error, not an endless loop.
pub(crate) async fn get_pages<T: serde::de::DeserializeOwned>(
    http: &RestClient,
    base: &Url,
    headers: &HeaderMap,
    mut url: Url,
    what: &str,
) -> Result<Vec<T>> {
    let mut out = Vec::new();
    let mut seen = std::collections::HashSet::from([url.to_string()]);
    for page_no in 1.. {
        let page_what = format!("{what} (page {page_no})");
        let body = http.get(&url, headers, &page_what).await?;
        let page: Page<T> = parse_json(http, &page_what, &body)?;
        if let Some(status) = page.status.as_deref().filter(|s| !matches!(*s, "OK" | "DELAYED")) {
            return Err(http.error(&page_what, format!("status {status}")));
        }
        out.extend(page.results.unwrap_or_default());
        match page.next_url {
            Some(next) => {
                let next = rebase(http, base, &next, &page_what)?;
                if !seen.insert(next.to_string()) {
                    return Err(http.error(&page_what, "next_url repeats an earlier page's; stopping".into()));
                }
                url = next;
            }
            None => break,
        }
    }
    Ok(out)
}

/// A `next_url` on `base`: only its path and query are kept, so an overridden base (a proxy, a test
/// server) stays in use, and the auth header is attached again by `get`.
pub(crate) fn rebase(http: &RestClient, base: &Url, next: &str, what: &str) -> Result<Url> {
    let next = Url::parse(next).map_err(|e| http.error(what, format!("bad next_url '{next}': {e}")))?;
    let mut url = base.clone();
    url.set_path(next.path());
    url.set_query(next.query());
    Ok(url)
}

/// Parses a configured base URL, naming the setting when it is not one.
pub(crate) fn base_url(vendor: &str, raw: &str) -> Result<Url> {
    let url = Url::parse(raw).map_err(|e| Error::Config(format!("{vendor}.base_url '{raw}': {e}")))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(Error::Config(format!("{vendor}.base_url '{raw}': not an http(s) URL")));
    }
    Ok(url)
}

impl BarSource for PolygonSource {
    fn name(&self) -> &str {
        "polygon"
    }

    fn request_metadata(&self) -> serde_json::Value {
        serde_json::json!({ "adjusted": self.adjusted, "base_url": self.base.as_str() })
    }

    async fn fetch(&self, symbols: &[Symbol], sessions: &[Session], size: BarSize) -> Result<Fetched> {
        let (from, to) = (sessions[0].date, sessions[sessions.len() - 1].date);
        // Futures built first: a closure inside the stream would tie them to a higher-ranked lifetime
        // that the `Send` check of a trait's async fn cannot prove.
        let requests: Vec<_> = symbols.iter().map(|s| self.symbol_bars(s, from, to, size)).collect();
        let per_symbol: Vec<Vec<Bar>> =
            futures::stream::iter(requests).buffered(self.concurrency).try_collect().await?;
        let mut out = Fetched::default();
        for (symbol, bars) in symbols.iter().zip(per_symbol) {
            into_sessions(symbol, sessions, bars, &mut out);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_shapes_parse_as_no_bars() {
        for body in [
            r#"{"status":"OK","resultsCount":0}"#,
            r#"{"status":"OK","results":null}"#,
            r#"{"status":"OK","results":[]}"#,
        ] {
            let page: Page<AggBar> = serde_json::from_str(body).unwrap();
            assert!(page.results.unwrap_or_default().is_empty(), "{body}");
            assert!(page.next_url.is_none());
        }
        // Fractional volume and an absent vw / n are accepted.
        let page: Page<AggBar> = serde_json::from_str(
            r#"{"results":[{"t":1,"o":1,"h":1,"l":1,"c":1,"v":0.5}],"next_url":"https://x/y?cursor=c"}"#,
        )
        .unwrap();
        let bar = &page.results.unwrap()[0];
        assert_eq!((bar.v, bar.vw, bar.n), (0.5, None, None));
    }

    #[test]
    fn next_url_is_followed_on_the_configured_base() {
        let settings = PolygonSettings {
            api_key: Some(Secret::new("k")),
            base_url: "http://127.0.0.1:9/".into(),
            ..Default::default()
        };
        let source = PolygonSource::new(&settings).unwrap();
        let next = rebase(
            &source.http,
            &source.base,
            "https://api.massive.com/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=AB%3D",
            "t",
        )
        .unwrap();
        assert_eq!(next.as_str(), "http://127.0.0.1:9/v2/aggs/ticker/AAPL/range/1/day/1/2?cursor=AB%3D");
        assert!(PolygonSource::new(&PolygonSettings::default()).is_err(), "no key");
        assert!(PolygonSource::new(&PolygonSettings { base_url: "ftp://x".into(), ..settings }).is_err());
    }
}
