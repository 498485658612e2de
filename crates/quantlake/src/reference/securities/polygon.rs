//! Securities from Polygon: `/v3/reference/tickers` (the listings of a ticker, active and delisted:
//! a reused ticker lists every security that had it) and `/vX/reference/tickers/{figi}/events` (a
//! security's ticker changes). An event's date need not be a session (META's is a Saturday): the new
//! ticker takes effect at the first session on or after it, the old one ends at the session before,
//! and the vendor's date is kept in `vendor_date`.

use url::Url;

use super::file::effective_session;
use super::*;
use crate::calendar::NyseCalendar;
use crate::sources::http::{RestClient, parse_json};
use crate::sources::polygon::{PolygonSettings, auth_headers, base_url, get_pages};

/// Polygon rows per page, the most `/v3/reference` allows.
const LIMIT: u32 = 1000;

#[derive(Debug, Deserialize)]
struct Listing {
    ticker: Symbol,
    name: Option<String>,
    #[serde(rename = "type")]
    kind: Option<String>,
    primary_exchange: Option<String>,
    currency_name: Option<String>,
    cik: Option<String>,
    composite_figi: Option<String>,
    share_class_figi: Option<String>,
    active: Option<bool>,
    /// "The last date that the asset was traded", as a UTC time.
    delisted_utc: Option<String>,
}

#[derive(Debug, Deserialize)]
struct EventsBody {
    status: Option<String>,
    results: Option<Events>,
}

#[derive(Debug, Deserialize)]
struct Events {
    #[serde(default)]
    events: Vec<Event>,
}

#[derive(Debug, Deserialize)]
struct Event {
    #[serde(rename = "type")]
    kind: String,
    date: NaiveDate,
    ticker_change: Option<TickerChange>,
}

#[derive(Debug, Deserialize)]
struct TickerChange {
    ticker: Symbol,
}

/// The securities that had any of `symbols` (active and delisted listings), with their ticker
/// histories, and the API root they came from.
pub async fn fetch_polygon(settings: &PolygonSettings, symbols: &[Symbol]) -> Result<(Vec<Delivered>, String)> {
    let http = RestClient::new("polygon", &settings.http)?;
    let base = base_url("polygon", &settings.base_url)?;
    let headers = auth_headers(settings)?;
    let url = |segments: &[&str], query: &[(&str, &str)]| -> Result<Url> {
        let mut url = base.clone();
        url.path_segments_mut()
            .map_err(|_| Error::Config("polygon.base_url cannot take a path".into()))?
            .pop_if_empty()
            .extend(segments);
        url.query_pairs_mut().extend_pairs(query);
        Ok(url)
    };
    let mut listings: Vec<Listing> = Vec::new();
    for symbol in symbols {
        for active in ["true", "false"] {
            let limit = LIMIT.to_string();
            let query = [("ticker", symbol.as_str()), ("market", "stocks"), ("active", active), ("limit", &limit)];
            let what = format!("{symbol} listings (active={active})");
            let found: Vec<Listing> =
                get_pages(&http, &base, &headers, url(&["v3", "reference", "tickers"], &query)?, &what).await?;
            for l in found {
                let seen = listings.iter().any(|x| match (&x.composite_figi, &l.composite_figi) {
                    (Some(a), Some(b)) => a == b,
                    _ => x.ticker == l.ticker && x.delisted_utc == l.delisted_utc,
                });
                if !seen {
                    listings.push(l);
                }
            }
        }
    }
    let mut out = Vec::with_capacity(listings.len());
    for l in listings {
        let events = match &l.composite_figi {
            Some(figi) => {
                let what = format!("{} ticker events ({figi})", l.ticker);
                match http.get(&url(&["vX", "reference", "tickers", figi], &[])?, &headers, &what).await {
                    Ok(body) => {
                        let body: EventsBody = parse_json(&http, &what, &body)?;
                        if let Some(status) = body.status.as_deref().filter(|s| !matches!(*s, "OK" | "DELAYED")) {
                            return Err(http.error(&what, format!("status {status}")));
                        }
                        body.results.map(|r| r.events).unwrap_or_default()
                    }
                    // No events known for it: its listing's ticker is all there is.
                    Err(Error::Source { message, .. }) if message.starts_with("HTTP 404") => Vec::new(),
                    Err(e) => return Err(e),
                }
            }
            None => Vec::new(),
        };
        out.push(delivered(l, events)?);
    }
    Ok((out, base.to_string()))
}

/// One listing and its events as a delivered security.
fn delivered(l: Listing, events: Vec<Event>) -> Result<Delivered> {
    let delisted = match (&l.delisted_utc, l.active) {
        (Some(t), Some(false) | None) => Some(last_session_on_or_before(parse_utc_date(t).ok_or_else(|| {
            Error::invalid(format!("polygon listing of {}: delisted_utc '{t}' is not a time", l.ticker))
        })?)),
        _ => None,
    };
    let mut changes: Vec<(NaiveDate, Symbol)> = events
        .into_iter()
        .filter(|e| e.kind == "ticker_change")
        .filter_map(|e| Some((e.date, e.ticker_change?.ticker)))
        .collect();
    changes.sort_by_key(|c| c.0);
    let what_of = |d: NaiveDate| format!("ticker change of {d}");
    let mut tickers: Vec<DeliveredTicker> = Vec::new();
    for (date, ticker) in changes {
        if delisted.is_some_and(|x| date > x) {
            continue;
        }
        let (from, vendor_date) = effective_session(date);
        if let Some(prev) = tickers.last_mut() {
            if prev.ticker == ticker {
                continue;
            }
            prev.valid.to = Some(NyseCalendar.previous_session(from));
        }
        tickers.push(DeliveredTicker {
            ticker,
            exchange: None,
            valid: Interval::new(Some(from), None),
            vendor_date,
            what: what_of(date),
        });
    }
    // Events that do not end at the listing's ticker cannot be placed: the listing's ticker alone
    // is what is known (and said).
    if tickers.last().is_some_and(|t| t.ticker != l.ticker) {
        tracing::warn!(ticker = %l.ticker, figi = ?l.composite_figi, "polygon's ticker events end at another ticker than the listing's; the events are left out");
        tickers.clear();
    }
    if tickers.is_empty() {
        tickers.push(DeliveredTicker {
            ticker: l.ticker.clone(),
            exchange: None,
            valid: Interval::default(),
            vendor_date: None,
            what: "its listing".into(),
        });
    }
    Ok(Delivered {
        security_id: None,
        attributes: Attributes {
            kind: l.kind,
            name: l.name,
            composite_figi: l.composite_figi.clone(),
            share_class_figi: l.share_class_figi,
            cik: l.cik,
            con_id: None,
            primary_exchange: l.primary_exchange,
            currency: l.currency_name.map(|c| c.to_ascii_uppercase()),
            listed: None,
            delisted,
            delisted_reason: None,
        },
        tickers,
        member: None,
        what: format!("polygon {} ({})", l.ticker, l.composite_figi.as_deref().unwrap_or("no FIGI")),
    })
}

fn parse_utc_date(t: &str) -> Option<NaiveDate> {
    chrono::DateTime::parse_from_rfc3339(t).ok().map(|t| t.date_naive()).or_else(|| t.parse().ok())
}

fn last_session_on_or_before(d: NaiveDate) -> NaiveDate {
    let cal = NyseCalendar;
    if cal.is_session(d) { d } else { cal.previous_session(d) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listing(ticker: &str, figi: Option<&str>, delisted: Option<&str>) -> Listing {
        Listing {
            ticker: Symbol::new(ticker).unwrap(),
            name: None,
            kind: Some("CS".into()),
            primary_exchange: Some("XNAS".into()),
            currency_name: Some("usd".into()),
            cik: None,
            composite_figi: figi.map(str::to_string),
            share_class_figi: None,
            active: Some(delisted.is_none()),
            delisted_utc: delisted.map(str::to_string),
        }
    }

    #[test]
    fn the_meta_fixture_gives_one_security_with_session_aligned_tickers() {
        let body: EventsBody = serde_json::from_str(include_str!(
            "../../../../../tests/fixtures/vendor/polygon/ticker_events_META.fixture.json"
        ))
        .unwrap();
        let d = delivered(listing("META", Some("BBG000MM2P62"), None), body.results.unwrap().events).unwrap();
        let spans: Vec<String> = d.tickers.iter().map(|t| format!("{} {}", t.ticker, t.valid)).collect();
        // 2022-06-11 is a Saturday: META from Monday 06-13, FB through Friday 06-10.
        assert_eq!(spans, ["FB 2012-05-18..2022-06-10", "META 2022-06-13.."]);
        assert_eq!(d.tickers[1].vendor_date, Some("2022-06-11".parse().unwrap()));
        assert_eq!(d.attributes.currency.as_deref(), Some("USD"));
    }

    #[test]
    fn a_delisted_listing_ends_at_its_last_session() {
        // Saturday 2023-01-07 (UTC) -> Friday 2023-01-06.
        let d = delivered(listing("OLD", None, Some("2023-01-07T05:00:00Z")), Vec::new()).unwrap();
        assert_eq!(d.attributes.delisted, Some("2023-01-06".parse().unwrap()));
        assert_eq!(d.tickers.len(), 1);
        assert_eq!(d.tickers[0].valid, Interval::default(), "the open end is cut at the delisting when written");
    }
}
