//! `/validation`: the last validation report, check by check, filterable by dataset and status, and
//! a button to run one (`/api/validation`); `/alerts`: the conditions now, with the thresholds they
//! are judged against, and the alert history (`/api/alerts`).

use axum::extract::State;
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, display, html};

use super::{PageError, PageQuery, badge, name_of, query, render, time};
use crate::serve::AppState;
use crate::serve::actions::{self, ValidationRequest};
use crate::serve::api::HealthParams;
use crate::serve::data;
use crate::serve::params::Body;

#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct ValidationParams {
    #[serde(default, deserialize_with = "crate::serve::params::text")]
    pub dataset: Option<String>,
    #[serde(default, deserialize_with = "crate::serve::params::text")]
    pub status: Option<String>,
}

pub async fn page(
    State(state): State<AppState>,
    PageQuery(p): PageQuery<ValidationParams>,
) -> Result<Markup, PageError> {
    render(&state, "/validation", "Validation", move |state| async move {
        let v = data::validation(state.lake(), state.config()).await?;
        let run_form = html! {
            form.inline method="post" action="/validation" {
                label { "full (every partition)" input type="checkbox" name="full" checked; }
                button.primary type="submit" { "Run validation" }
            }
        };
        let (Some(job), Some(report)) = (&v.job, &v.report) else {
            return Ok(html! { p.muted data-figure="no-report" { "No validation has run yet." } (run_form) });
        };
        let datasets: std::collections::BTreeSet<&str> = report.checks.iter().map(|c| c.dataset.as_str()).collect();
        let shown: Vec<_> = report
            .checks
            .iter()
            .filter(|c| p.dataset.as_deref().is_none_or(|d| c.dataset == d))
            .filter(|c| p.status.as_deref().is_none_or(|s| c.status.to_string().eq_ignore_ascii_case(s)))
            .collect();
        let count = |s: &str| report.checks.iter().filter(|c| c.status.to_string() == s).count();
        Ok(html! {
            p {
                "Report of job " a href={ "/jobs/" (job.id) } { (job.id) } " (" (if report.full { "full" } else { "quick" }) "), finished " (time(job.ended_at)) ": "
                span data-figure="status" { (badge(report.status)) }
            }
            (run_form)
            div.cards {
                div.card { div.label { "checks" } div.value data-figure="checks" { (report.checks.len()) } }
                div.card { div.label { "GREEN" } div.value data-figure="green" { (count("GREEN")) } }
                div.card { div.label { "YELLOW" } div.value data-figure="yellow" { (count("YELLOW")) } }
                div.card { div.label { "RED" } div.value data-figure="red" { (count("RED")) } }
            }
            form.inline method="get" {
                label { "dataset" select name="dataset" {
                    option value="" { "all" }
                    @for d in &datasets { option value=(d) selected[p.dataset.as_deref() == Some(*d)] { (d) } }
                } }
                label { "status" select name="status" {
                    option value="" { "all" }
                    @for s in ["GREEN", "YELLOW", "RED"] { option selected[p.status.as_deref() == Some(s)] { (s) } }
                } }
                button type="submit" { "Filter" }
            }
            table #checks {
                thead { tr { th { "dataset" } th { "check" } th { "status" } th { "detail" } } }
                tbody {
                    @for c in &shown {
                        tr data-status=(c.status.to_string()) {
                            td { a href={ "/dq?" (query(&[("dataset", c.dataset.as_str())])) } { (c.dataset) } }
                            td { (c.check) }
                            td { (badge(c.status)) }
                            td { details { summary { (c.detail.chars().take(80).collect::<String>()) } (c.detail) } }
                        }
                    }
                }
            }
        })
    })
    .await
}

pub async fn run(State(state): State<AppState>, Body(request): Body<ValidationRequest>) -> Result<Response, PageError> {
    match state.run(move |s| async move { actions::run_validation(&s, &request).await }).await {
        Ok(job) => Ok(Redirect::to(&format!("/jobs/{}", job.id)).into_response()),
        Err(e) => Err(PageError::new(&state, "/validation", "Validation", e)),
    }
}

pub async fn alerts(State(state): State<AppState>, PageQuery(p): PageQuery<HealthParams>) -> Result<Markup, PageError> {
    render(&state, "/alerts", "Alerts", move |state| async move {
        let a = data::alerts(state.lake(), state.config(), p.as_of_date, p.limit.unwrap_or(100)).await?;
        Ok(html! {
            p { "Now, against session " (display(a.reference_session)) ": " span data-figure="severity" { (badge(a.severity)) } }
            h2 { "Conditions" }
            table #conditions {
                thead { tr { th { "condition" } th { "severity" } th { "summary" } th { "figures and thresholds" } } }
                tbody {
                    @for c in &a.conditions {
                        tr data-key=(c.key) {
                            td { (c.key) } td { (badge(c.severity)) } td { (c.summary) }
                            td { @if let Some(m) = c.details.as_object() { @for (k, v) in m { div { span.muted { (k) ": " } (v.to_string()) } } } }
                        }
                    }
                }
            }
            h2 { "History" }
            p.muted { "One alert per change of state (repeats of a bad state throttled by alerts.repeat_after), newest first." }
            @if a.history.is_empty() { p.muted { "No alerts yet." } }
            table #history {
                thead { tr { th { "when" } th { "condition" } th { "change" } th { "severity" } th { "before" } th { "summary" } } }
                tbody {
                    @for e in &a.history {
                        tr { td { (time(Some(e.at))) } td { (e.key) } td { (name_of(&e.kind)) } td { (badge(e.severity)) } td { (display(e.previous)) } td { (e.summary) } }
                    }
                }
            }
        })
    })
    .await
}
