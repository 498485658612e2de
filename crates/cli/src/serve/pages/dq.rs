//! `/dq`: a dataset's quality metrics over time (`/api/dq/summary`, `/api/dq/null_rates`): charts of
//! gap rate, coverage, null rate, outliers, invalid and duplicate rows per session, drill-down to one
//! session's symbols or one symbol's sessions (`/api/dq/metrics`).

use axum::extract::State;
use maud::{Markup, display, html};

use super::{PageError, PageQuery, pct, query, render, svg};
use crate::serve::AppState;
use crate::serve::api::RangeParams;
use crate::serve::charts::{self, Scale, Series};
use crate::serve::data;
use quantlake::dq::{self, QualityTotals, SessionMetrics};

/// `session` narrows to one session's symbols.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct DqParams {
    #[serde(flatten)]
    pub range: RangeParams,
    #[serde(default, deserialize_with = "crate::serve::params::date")]
    pub session: Option<chrono::NaiveDate>,
}

fn rate(n: u64, d: u64) -> f64 {
    if d == 0 { 0.0 } else { n as f64 / d as f64 }
}

/// Gap rate as health computes it: expected bars not delivered, over expected bars.
fn gap_rate(t: &QualityTotals) -> f64 {
    rate(t.gap_count, t.expected_bars)
}

pub async fn page(State(state): State<AppState>, PageQuery(p): PageQuery<DqParams>) -> Result<Markup, PageError> {
    render(&state, "/dq", "Data quality", move |state| async move {
        let dataset = p.range.dataset().to_string();
        let (start, end) = p.range.range(&state).await?;
        let lake = state.lake();
        let summary = dq::get_data_quality_summary(lake, &dataset, start, end).await?;
        let nulls = data::dq_null_rates(lake, &dataset, start, end).await?;
        let null_labels: Vec<String> = nulls.iter().map(|n| n.date.format("%m-%d").to_string()).collect();
        let datasets: Vec<String> = lake.all_datasets().iter().filter(|d| d.contract().quality.is_some()).map(|d| d.name().to_string()).collect();
        let sessions: Vec<_> = summary.sessions.iter().filter(|s| s.has_metrics).collect();
        let labels: Vec<String> = sessions.iter().map(|s| s.date.map(|d| d.format("%m-%d").to_string()).unwrap_or_default()).collect();
        let series = |name: &'static str, color, f: &dyn Fn(&QualityTotals) -> f64| Series { name, values: sessions.iter().map(|s| Some(f(&s.totals))).collect(), color };
        let drill = match (&p.range.symbol, p.session) {
            (Some(symbol), _) => Some((format!("{symbol}, every session"), data::dq_metrics(lake, &dataset, start, end, Some(symbol)).await?)),
            (None, Some(d)) => Some((format!("session {d}, every symbol"), data::dq_metrics(lake, &dataset, d, d, None).await?)),
            _ => None,
        };
        let total = summary.total.as_ref().map(|t| t.totals.clone()).unwrap_or_default();
        let base = |extra: &[(&str, &str)]| {
            let (s, e) = (start.to_string(), end.to_string());
            let mut pairs = vec![("dataset", dataset.as_str()), ("start", s.as_str()), ("end", e.as_str())];
            pairs.extend_from_slice(extra);
            format!("/dq?{}", query(&pairs))
        };
        Ok(html! {
            form.inline method="get" {
                label { "dataset" select name="dataset" { @for d in &datasets { option value=(d) selected[*d == dataset] { (d) } } } }
                label { "start" input type="date" name="start" value=(display(start)); }
                label { "end" input type="date" name="end" value=(display(end)); }
                label { "symbol" input name="symbol" value=(p.range.symbol.as_deref().unwrap_or_default()) placeholder="all"; }
                button type="submit" { "Show" }
            }
            div.cards {
                div.card { div.label { "coverage" } div.value data-figure="coverage" { (pct(total.coverage)) } }
                div.card { div.label { "gap rate" } div.value data-figure="gap_rate" { (pct(gap_rate(&total))) } }
                div.card { div.label { "outliers" } div.value data-figure="outliers" { (total.outlier_count) } }
                div.card { div.label { "symbols" } div.value data-figure="symbols" { (total.symbols) } }
                div.card { div.label { "sessions with data" } div.value { span data-figure="sessions_with_data" { (summary.sessions_with_data) } " / " (summary.sessions_expected) } }
            }
            @if sessions.is_empty() {
                p.muted { "No metrics for " (dataset) " between " (display(start)) " and " (display(end)) ". Metrics are written by the stage that produces a dataset (curate for curated bars)." }
            } @else {
                div.charts {
                    (svg(charts::lines("gap rate", &labels, &[series("gap rate", charts::RED_MARK, &gap_rate)], Scale::FromZero(0.01), (560, 260))))
                    (svg(charts::lines("coverage", &labels, &[series("coverage", charts::BLUE, &|t| t.coverage), series("min symbol coverage", charts::PURPLE, &|t| t.min_symbol_coverage)], Scale::Data, (560, 260))))
                    (svg(charts::lines("null rate", &null_labels, &[
                        Series { name: "vwap", values: nulls.iter().map(|n| Some(n.null_rate_vwap)).collect(), color: charts::BLUE },
                        Series { name: "trade_count", values: nulls.iter().map(|n| Some(n.null_rate_trade_count)).collect(), color: charts::ORANGE },
                    ], Scale::FromZero(0.01), (560, 260))))
                    (svg(charts::lines("outliers", &labels, &[series("outlier bars", charts::ORANGE, &|t| t.outlier_count as f64)], Scale::FromZero(1.0), (560, 260))))
                    (svg(charts::lines("invalid and duplicate rows", &labels, &[series("invalid", charts::RED_MARK, &|t| t.invalid_rows as f64), series("duplicates removed", charts::GREY, &|t| t.duplicates_removed as f64)], Scale::FromZero(1.0), (560, 260))))
                }
            }
            h2 { "Null rates" }
            @if summary.null_rates.is_empty() { p.muted { "No nulls in any column." } }
            table #null-rates { @for (c, r) in &summary.null_rates { tr { td { (c) } td.num data-column=(c) { (pct(*r)) } } } }
            h2 { "Sessions" }
            table #sessions {
                thead { tr { th { "session" } th.num { "symbols" } th.num { "coverage" } th.num { "gap rate" } th.num { "gaps" } th.num { "filled" } th.num { "invalid" } th.num { "duplicates" } th.num { "outliers" } th { "annotations" } } }
                tbody {
                    @for s in &summary.sessions {
                        @let d = s.date.map(|d| d.to_string()).unwrap_or_default();
                        tr data-session=(d) {
                            td { a href=(base(&[("session", d.as_str())])) { (d) } }
                            td.num { (s.totals.symbols) }
                            td.num data-field="coverage" { (pct(s.totals.coverage)) }
                            td.num { (pct(gap_rate(&s.totals))) }
                            td.num { (s.totals.gap_count) }
                            td.num { (s.totals.filled_bars) }
                            td.num { (s.totals.invalid_rows) }
                            td.num { (s.totals.duplicates_removed) }
                            td.num { (s.totals.outlier_count) }
                            td { @for a in &s.annotations { div { (a.summary()) } } }
                        }
                    }
                }
            }
            @if let Some((what, rows)) = &drill {
                h2 #drill { "Drill-down: " (what) }
                (metrics_table(rows, &|m: &SessionMetrics| base(&[("symbol", m.symbol.as_str())]), &|m: &SessionMetrics| format!("/bars?{}", query(&[("symbols", m.symbol.as_str()), ("start", m.date.to_string().as_str())]))))
            }
        })
    })
    .await
}

/// Symbol-session metrics, each symbol linking to its sessions and each row to its bars.
fn metrics_table(
    rows: &[SessionMetrics],
    symbol_link: &dyn Fn(&SessionMetrics) -> String,
    bars_link: &dyn Fn(&SessionMetrics) -> String,
) -> Markup {
    html! {
        table #metrics {
            thead { tr { th { "session" } th { "symbol" } th { "source" } th.num { "expected" } th.num { "present" } th.num { "filled" } th.num { "invalid" } th.num { "duplicates" } th.num { "outliers" } th.num { "coverage" } th {} } }
            tbody {
                @for m in rows {
                    tr {
                        td { (display(m.date)) }
                        td { a href=(symbol_link(m)) { (m.symbol) } }
                        td { (m.source.clone().unwrap_or_default()) }
                        td.num { (m.expected_bars) }
                        td.num { (m.present_bars) }
                        td.num { (m.filled_bars) }
                        td.num { (m.invalid_rows) }
                        td.num { (m.duplicates_removed) }
                        td.num { (m.outlier_count) }
                        td.num { (pct(if m.expected_bars == 0 { 1.0 } else { rate(m.present_bars, m.expected_bars).min(1.0) })) }
                        td { a href=(bars_link(m)) { "bars" } }
                    }
                }
            }
        }
    }
}
