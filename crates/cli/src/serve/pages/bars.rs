//! `/bars`: a price chart of `get_curated_bars` for a symbol and range, gaps (filled minutes) and
//! outliers marked (`/api/bars`).

use axum::extract::State;
use maud::{Markup, html};
use serde_json::Value;

use super::{PageError, PageQuery, render, svg};
use crate::serve::AppState;
use crate::serve::api::BarsParams;
use crate::serve::charts::{self, PricePoint};
use crate::serve::data;

/// At most this many points are drawn; longer series are thinned evenly, keeping every gap and
/// outlier bar.
const MAX_POINTS: usize = 4000;

pub async fn page(State(state): State<AppState>, PageQuery(p): PageQuery<BarsParams>) -> Result<Markup, PageError> {
    render(&state, "/bars", "Bars", move |state| async move {
        let form = html! {
            form.inline method="get" {
                label { "symbols" input name="symbols" value=(p.symbols.clone().unwrap_or_default()) placeholder="AAPL" required; }
                label { "start" input type="date" name="start" value=(p.start.map(|d| d.to_string()).unwrap_or_default()); }
                label { "end" input type="date" name="end" value=(p.end.map(|d| d.to_string()).unwrap_or_default()); }
                label { "frequency" select name="frequency" {
                    @for f in ["1m", "5m", "15m", "30m", "1h", "1d"] { option selected[p.frequency.as_deref() == Some(f)] { (f) } }
                } }
                label { "adjust" select name="adjust" {
                    @for a in ["none", "splits", "all"] { option selected[p.adjust.as_deref() == Some(a)] { (a) } }
                } }
                label { "as_of" input name="as_of" value=(p.as_of.clone().unwrap_or_default()) placeholder="latest"; }
                label title="The date each symbol is resolved to a security on (default: the end date): GOOG in 2014 is the class A share only if resolved before 2014-04-03" {
                    "resolve at" input type="date" name="resolve_at" value=(p.resolve_at.map(|d| d.to_string()).unwrap_or_default());
                }
                button type="submit" { "Show" }
            }
        };
        if p.symbols.is_none() {
            return Ok(html! { (form) p.muted { "Name a symbol. The range defaults to the last session (1m) or the last 20 sessions (resampled)." } });
        }
        let (request, as_of) = p.request(&state).await?;
        let b = data::bars(state.lake(), &request, &as_of).await?;
        let one_day = request.start == request.end;
        let mut charts_html = Vec::new();
        for symbol in &request.symbols {
            let rows: Vec<&Value> = b.bars.iter().filter(|r| r["symbol"].as_str() == Some(symbol)).collect();
            let points = thin(rows.iter().filter_map(|r| point(r, one_day)).collect());
            let title = format!("{symbol}{} {} {} to {}", tickers(&rows, symbol), b.frequency, request.start, request.end);
            charts_html.push(if points.is_empty() { html! { p.muted { "No bars for " (symbol) "." } } } else { svg(charts::prices(&title, &points, (1100, 380))) });
        }
        Ok(html! {
            (form)
            div.cards {
                div.card { div.label { "bars" } div.value data-figure="rows" { (b.rows) } }
                div.card { div.label { "gaps (filled)" } div.value data-figure="gaps" { (b.gaps) } }
                div.card { div.label { "outliers" } div.value data-figure="outliers" { (b.outliers) } }
            }
            @for c in charts_html { (c) }
            p.muted { "Grey dots: bars the source did not deliver (filled by curation's fill policy). Red dots: outliers flagged by curation. Adjustment: " (b.adjust) " (none: the prices as stored)." }
            details {
                summary { "First rows" }
                table {
                    @if let Some(first) = b.bars.first().and_then(Value::as_object) {
                        thead { tr { @for k in first.keys() { th { (k) } } } }
                    }
                    tbody {
                        @for r in b.bars.iter().take(50).filter_map(Value::as_object) {
                            tr { @for v in r.values() { td { (cell(v)) } } }
                        }
                    }
                }
            }
        })
    })
    .await
}

/// The other tickers a series' rows were stored under (a renamed security), with their last date:
/// ` (FB until 2022-06-08)`, or nothing.
fn tickers(rows: &[&Value], symbol: &str) -> String {
    let mut spans: Vec<(String, String)> = Vec::new();
    for r in rows {
        let (Some(ticker), Some(date)) = (r["ticker"].as_str(), r["date"].as_str()) else { continue };
        match spans.last_mut() {
            Some((t, last)) if t == ticker => *last = date.to_string(),
            _ => spans.push((ticker.to_string(), date.to_string())),
        }
    }
    let others: Vec<String> =
        spans.into_iter().filter(|(t, _)| t != symbol).map(|(t, last)| format!("{t} until {last}")).collect();
    if others.is_empty() { String::new() } else { format!(" ({})", others.join(", ")) }
}

fn cell(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

/// A row as a chart point: time of day within one session, else the date.
fn point(r: &Value, one_day: bool) -> Option<PricePoint> {
    let close = r["close"].as_f64()?;
    let ts = r["ts"].as_str().unwrap_or_default();
    let ny = chrono::DateTime::parse_from_rfc3339(ts).ok().map(|t| t.with_timezone(&chrono_tz::America::New_York));
    let label = match ny {
        Some(t) if one_day => t.format("%H:%M").to_string(),
        Some(t) => t.format("%m-%d %H:%M").to_string(),
        None => ts.chars().take(16).collect(),
    };
    let flag = |k: &str| r[k].as_bool().unwrap_or(false);
    let gap = flag("is_filled") || r["filled_minutes"].as_i64().is_some_and(|n| n > 0);
    let outlier = flag("is_outlier") || flag("has_outlier");
    Some(PricePoint { label, close, gap, outlier })
}

/// Every n-th point, and every marked one.
fn thin(points: Vec<PricePoint>) -> Vec<PricePoint> {
    if points.len() <= MAX_POINTS {
        return points;
    }
    let step = points.len().div_ceil(MAX_POINTS);
    points.into_iter().enumerate().filter(|(i, p)| i % step == 0 || p.gap || p.outlier).map(|(_, p)| p).collect()
}
