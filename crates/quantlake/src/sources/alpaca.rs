//! Alpaca Market Data v2 bars: `GET /v2/stocks/bars?symbols=A,B,...`, one request for many symbols,
//! following `page_token` until it is null. Keys travel in the `APCA-API-KEY-ID` and
//! `APCA-API-SECRET-KEY` headers (environment variables of the same names, or `[alpaca]`).

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, Utc};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};
use url::Url;

use super::http::{HttpSettings, RestClient, Secret, parse_json};
use super::polygon::base_url;
use super::{Bar, BarSize, BarSource, Fetched, into_sessions};
use crate::calendar::{NyseCalendar, Session};
use crate::error::{Error, Result};
use crate::symbol::Symbol;

/// `[alpaca]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AlpacaSettings {
    /// Data API root; `APCA_API_DATA_URL` overrides it.
    pub base_url: String,
    /// `APCA_API_KEY_ID` overrides it.
    pub key_id: Option<Secret>,
    /// `APCA_API_SECRET_KEY` overrides it.
    pub secret_key: Option<Secret>,
    /// Data feed: `iex` (free), `sip` (paid), `delayed_sip`, ...
    pub feed: String,
    /// Price adjustment: `raw` (the raw layer's default), `split`, `dividend`, `all`.
    pub adjustment: String,
    /// Symbols per request; the multi-symbol endpoint's `limit` counts bars across all of them.
    pub symbols_per_request: usize,
    pub http: HttpSettings,
}

impl Default for AlpacaSettings {
    fn default() -> Self {
        Self {
            base_url: "https://data.alpaca.markets".into(),
            key_id: None,
            secret_key: None,
            feed: "iex".into(),
            adjustment: "raw".into(),
            symbols_per_request: 100,
            // The free plan allows 200 requests a minute.
            http: HttpSettings { requests_per_minute: 200, ..HttpSettings::default() },
        }
    }
}

pub struct AlpacaSource {
    http: RestClient,
    base: Url,
    headers: HeaderMap,
    feed: String,
    adjustment: String,
    symbols_per_request: usize,
}

/// Bars per page, the most Alpaca allows.
const PAGE_LIMIT: u32 = 10_000;

#[derive(Deserialize)]
struct BarsPage {
    #[serde(default)]
    bars: Option<BarsField>,
    /// Present on the single-symbol shape.
    symbol: Option<String>,
    next_page_token: Option<String>,
}

/// `bars` is a map on the multi-symbol endpoint and a list on the single-symbol one.
#[derive(Deserialize)]
#[serde(untagged)]
enum BarsField {
    BySymbol(HashMap<String, Option<Vec<AlpacaBar>>>),
    List(Vec<AlpacaBar>),
}

#[derive(Deserialize)]
struct AlpacaBar {
    t: DateTime<Utc>,
    o: f64,
    h: f64,
    l: f64,
    c: f64,
    v: f64,
    vw: Option<f64>,
    n: Option<i64>,
}

impl From<AlpacaBar> for Bar {
    fn from(b: AlpacaBar) -> Self {
        Bar { ts: b.t, open: b.o, high: b.h, low: b.l, close: b.c, volume: b.v, vwap: b.vw, trade_count: b.n }
    }
}

fn header(name: &'static str, secret: Option<&Secret>, env: &str) -> Result<(HeaderName, HeaderValue)> {
    let secret =
        secret.ok_or_else(|| Error::Config(format!("alpaca: no {env}; set it in the environment or [alpaca]")))?;
    let mut value = HeaderValue::from_str(secret.expose())
        .map_err(|_| Error::Config(format!("alpaca: {env} has characters a header cannot carry")))?;
    value.set_sensitive(true);
    Ok((HeaderName::from_static(name), value))
}

/// The key headers of `settings` (marked sensitive: never logged).
pub(crate) fn auth_headers(settings: &AlpacaSettings) -> Result<HeaderMap> {
    let mut headers = HeaderMap::new();
    for (name, value) in [
        header("apca-api-key-id", settings.key_id.as_ref(), "APCA_API_KEY_ID")?,
        header("apca-api-secret-key", settings.secret_key.as_ref(), "APCA_API_SECRET_KEY")?,
    ] {
        headers.insert(name, value);
    }
    Ok(headers)
}

impl AlpacaSource {
    pub fn new(settings: &AlpacaSettings) -> Result<Self> {
        Ok(Self {
            http: RestClient::new("alpaca", &settings.http)?,
            base: base_url("alpaca", &settings.base_url)?,
            headers: auth_headers(settings)?,
            feed: settings.feed.clone(),
            adjustment: settings.adjustment.clone(),
            symbols_per_request: settings.symbols_per_request.max(1),
        })
    }

    /// All bars of `symbols` from `from` to `to` (New York dates, inclusive), by symbol.
    async fn bars(
        &self,
        symbols: &[Symbol],
        from: NaiveDate,
        to: NaiveDate,
        size: BarSize,
        out: &mut HashMap<String, Vec<Bar>>,
    ) -> Result<()> {
        let what = format!("{} {} bars {from}..{to}", symbols.join(","), size.as_str());
        let start = NyseCalendar.day_start(from);
        let end = to.succ_opt().and_then(|d| NyseCalendar.day_start(d)).map(|t| t - chrono::Duration::seconds(1));
        let (Some(start), Some(end)) = (start, end) else {
            return Err(Error::invalid(format!("alpaca: range {from}..{to} has no New York midnight")));
        };
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|_| self.http.error(&what, "base URL cannot take a path".into()))?
            .pop_if_empty()
            .extend(["v2", "stocks", "bars"]);
        url.query_pairs_mut()
            .append_pair("symbols", &symbols.join(","))
            .append_pair(
                "timeframe",
                match size {
                    BarSize::Minute => "1Min",
                    BarSize::Day => "1Day",
                },
            )
            .append_pair("start", &start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .append_pair("end", &end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .append_pair("limit", &PAGE_LIMIT.to_string())
            .append_pair("adjustment", &self.adjustment)
            .append_pair("feed", &self.feed)
            .append_pair("sort", "asc");
        let mut token: Option<String> = None;
        let mut seen = std::collections::HashSet::new();
        for page_no in 1.. {
            let page_what = format!("{what} (page {page_no})");
            let mut page_url = url.clone();
            if let Some(t) = &token {
                // Opaque: passed back as given, never parsed.
                page_url.query_pairs_mut().append_pair("page_token", t);
            }
            let body = self.http.get(&page_url, &self.headers, &page_what).await?;
            let page: BarsPage = parse_json(&self.http, &page_what, &body)?;
            match page.bars {
                Some(BarsField::BySymbol(map)) => {
                    for (symbol, bars) in map {
                        out.entry(symbol).or_default().extend(bars.unwrap_or_default().into_iter().map(Bar::from));
                    }
                }
                Some(BarsField::List(list)) => {
                    let symbol = page.symbol.clone().or_else(|| (symbols.len() == 1).then(|| symbols[0].to_string()));
                    let symbol =
                        symbol.ok_or_else(|| self.http.error(&page_what, "a bar list without a symbol".into()))?;
                    out.entry(symbol).or_default().extend(list.into_iter().map(Bar::from));
                }
                None => {}
            }
            match page.next_page_token {
                // A token that comes back would loop for ever.
                Some(t) if !t.is_empty() && !seen.insert(t.clone()) => {
                    return Err(self
                        .http
                        .error(&page_what, "next_page_token repeats an earlier page's; stopping".into()));
                }
                Some(t) if !t.is_empty() => token = Some(t),
                _ => break,
            }
        }
        Ok(())
    }
}

impl BarSource for AlpacaSource {
    fn name(&self) -> &str {
        "alpaca"
    }

    fn request_metadata(&self) -> serde_json::Value {
        serde_json::json!({ "feed": self.feed, "adjustment": self.adjustment, "base_url": self.base.as_str() })
    }

    async fn fetch(&self, symbols: &[Symbol], sessions: &[Session], size: BarSize) -> Result<Fetched> {
        let (from, to) = (sessions[0].date, sessions[sessions.len() - 1].date);
        let mut by_symbol: HashMap<String, Vec<Bar>> = HashMap::new();
        for group in symbols.chunks(self.symbols_per_request) {
            self.bars(group, from, to, size, &mut by_symbol).await?;
        }
        let mut out = Fetched::default();
        for symbol in symbols {
            into_sessions(symbol, sessions, by_symbol.remove(symbol.as_str()).unwrap_or_default(), &mut out);
        }
        for (symbol, bars) in by_symbol {
            tracing::warn!(
                symbol,
                bars = bars.len(),
                "alpaca returned bars of a symbol that was not requested; not stored"
            );
            out.outside_sessions += bars.len() as u64;
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bars(body: &str) -> usize {
        let page: BarsPage = serde_json::from_str(body).unwrap();
        match page.bars {
            None => 0,
            Some(BarsField::List(l)) => l.len(),
            Some(BarsField::BySymbol(m)) => m.into_values().map(|v| v.map_or(0, |v| v.len())).sum(),
        }
    }

    #[test]
    fn every_empty_shape_is_no_bars() {
        for body in [
            r#"{"bars": {}, "next_page_token": null}"#,
            r#"{"bars": null, "symbol": "SPY", "next_page_token": null}"#,
            r#"{"bars": [], "symbol": "SPY"}"#,
            r#"{"symbol": "SPY"}"#,
            r#"{"bars": {"SPY": null}}"#,
        ] {
            assert_eq!(bars(body), 0, "{body}");
        }
        // Integer prices occur; both shapes carry bars.
        assert_eq!(
            bars(r#"{"bars": {"A": [{"t":"2022-02-01T05:00:00Z","o":174,"h":175,"l":172,"c":174,"v":85998033}]}}"#),
            1
        );
        assert_eq!(
            bars(
                r#"{"bars": [{"t":"2022-02-01T05:00:00Z","o":1,"h":1,"l":1,"c":1,"v":1,"n":1,"vw":1}], "symbol": "A"}"#
            ),
            1
        );
    }
}
