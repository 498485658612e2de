//! `/`: each dataset's health, freshness and lag, breadth against its thresholds, the lake's
//! severity and conditions, the last jobs (`/api/health`).

use axum::extract::State;
use maud::{Markup, display, html};

use super::{PageError, PageQuery, badge, jobs::job_rows, name_of, query, render, time};
use crate::serve::AppState;
use crate::serve::api::HealthParams;
use crate::serve::data;

pub async fn page(State(state): State<AppState>, PageQuery(p): PageQuery<HealthParams>) -> Result<Markup, PageError> {
    render(&state, "/", "Overview", move |state| async move {
        let o = data::health(state.lake(), state.config(), p.as_of_date).await?;
        let judged: Vec<_> = o.datasets.iter().filter(|d| d.status.is_some()).collect();
        let count = |s: &str| judged.iter().filter(|d| d.status.map(|x| x.to_string()) == Some(s.into())).count();
        let as_of = p.as_of_date.map(|d| d.to_string()).unwrap_or_default();
        let newest = o.datasets.iter().filter_map(|d| d.latest_session).max();
        Ok(html! {
            form.inline method="get" {
                label { "as_of_date" input type="date" name="as_of_date" value=(as_of); }
                button type="submit" { "Judge" }
                span.muted { "reference session " (display(o.reference_session)) }
                @if let Some(newest) = newest.filter(|n| *n < o.reference_session) {
                    a href={ "/?as_of_date=" (display(newest)) } { "judge as of the newest data (" (display(newest)) ")" }
                }
            }
            div.cards {
                div.card { div.label { "lake severity" } div.value { span data-figure="severity" { (badge(o.severity)) } } }
                div.card { div.label { "datasets GREEN" } div.value data-figure="green" { (count("GREEN")) } }
                div.card { div.label { "datasets YELLOW" } div.value data-figure="yellow" { (count("YELLOW")) } }
                div.card { div.label { "datasets RED" } div.value data-figure="red" { (count("RED")) } }
            }
            h2 { "Datasets" }
            table #datasets {
                thead { tr {
                    th { "dataset" } th { "layer" } th { "health" } th { "severity" } th { "latest session" } th.num { "lag (sessions)" }
                    th { "breadth" } th.num { "rows" } th.num { "partitions" } th.num { "snapshot" } th { "committed" } th { "problems" }
                } }
                tbody {
                    @for d in o.datasets.iter().filter(|d| d.snapshot_id > 0) {
                        @let q = query(&[("dataset", d.dataset.as_str())]);
                        tr data-dataset=(d.dataset) {
                            td { a href={ "/snapshots?" (q) } { (d.dataset) } }
                            td { (name_of(&d.layer)) }
                            td data-field="status" { @if let Some(s) = d.status { a href={ "/dq?" (q) } { (badge(s)) } } @else { span.muted { "not judged" } } }
                            td { (d.severity.clone().unwrap_or_default()) }
                            td data-field="latest_session" { (d.latest_session.map(|s| s.to_string()).unwrap_or_default()) }
                            td.num data-field="lag_sessions" { (d.lag_sessions.map(|l| l.to_string()).unwrap_or_default()) }
                            td {
                                @if let Some(b) = &d.breadth {
                                    (badge(b.breadth)) " " span data-field="breadth" { (b.symbols) } " symbols"
                                    span.muted { " (min " (b.breadth_min_symbols) ", warn " (b.breadth_warn_symbols) ")" }
                                }
                            }
                            td.num data-field="rows" { (d.rows) }
                            td.num { (d.partitions) }
                            td.num { (d.snapshot_id) }
                            td { (time(d.committed_at)) }
                            td {
                                @for p in d.problems.iter().take(3) { div { (p) } }
                                @if d.problems.len() > 3 {
                                    details { summary.muted { (d.problems.len() - 3) " more" } @for p in d.problems.iter().skip(3) { div { (p) } } }
                                }
                            }
                        }
                    }
                }
            }
            @let empty: Vec<&str> = o.datasets.iter().filter(|d| d.snapshot_id == 0).map(|d| d.dataset.as_str()).collect();
            @if !empty.is_empty() {
                details { summary.muted { (empty.len()) " dataset(s) never written" } p.muted { (empty.join(", ")) } }
            }
            h2 { "Conditions" }
            p.muted { "What alerts are raised from (" a href="/alerts" { "alerts" } "): health per dataset, data lag per layer, breadth, target coverage." }
            table #conditions {
                thead { tr { th { "condition" } th { "severity" } th { "summary" } } }
                tbody {
                    @for c in &o.conditions {
                        tr data-key=(c.key) { td { (c.key) } td { (badge(c.severity)) } td { (c.summary) } }
                    }
                }
            }
            h2 { "Last jobs" }
            (job_rows(&o.last_jobs))
        })
    })
    .await
}
