//! The pages: HTML rendered on the server from the same [`data`](super::data) the API returns.
//! Figures a test compares with the API carry `data-figure` attributes.

mod bars;
mod coverage;
mod dq;
mod jobs;
mod lineage;
mod overview;
mod snapshots;
mod validation;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, PreEscaped, html};

use super::AppState;
use super::api::ApiError;
use quantlake::error::Error;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(overview::page))
        .route("/dq", get(dq::page))
        .route("/coverage", get(coverage::page))
        .route("/jobs", get(jobs::list))
        .route("/jobs/{job_id}", get(jobs::detail))
        .route("/jobs/{job_id}/cancel", post(jobs::cancel))
        .route("/backfill", get(jobs::backfill_plan).post(jobs::backfill_run))
        .route("/snapshots", get(snapshots::page))
        .route("/snapshots/restore", post(snapshots::restore))
        .route("/bars", get(bars::page))
        .route("/lineage", get(lineage::page))
        .route("/validation", get(validation::page).post(validation::run))
        .route("/alerts", get(validation::alerts))
}

/// The pages in the navigation bar.
const NAV: &[(&str, &str)] = &[
    ("/", "Overview"),
    ("/dq", "Data quality"),
    ("/coverage", "Coverage"),
    ("/jobs", "Jobs & backfills"),
    ("/snapshots", "Snapshots"),
    ("/bars", "Bars"),
    ("/lineage", "Lineage"),
    ("/validation", "Validation"),
    ("/alerts", "Alerts"),
];

/// The frame of every page.
fn layout(state: &AppState, path: &str, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · quantlake" }
                link rel="stylesheet" href="/assets/style.css";
                script src="/assets/app.js" defer {}
            }
            body {
                header {
                    span.brand { "quantlake" }
                    nav {
                        @for (href, name) in NAV {
                            a href=(href) class=[(*href == path).then_some("active")] { (name) }
                        }
                    }
                    span.lake title="the lake this dashboard serves" { (state.lake().url()) }
                }
                main { h1 { (title) } (body) }
            }
        }
    }
}

/// A page that could not be shown: the frame with the reason, and the API's status for it.
pub struct PageError {
    status: StatusCode,
    page: Markup,
}

impl PageError {
    fn new(state: &AppState, path: &str, title: &str, e: impl Into<ApiError>) -> Self {
        let e = e.into();
        let body = html! { p.error data-error { (e.message) } };
        Self { status: e.status, page: layout(state, path, title, body) }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        (self.status, self.page).into_response()
    }
}

/// The query of a page: a bad parameter gets the page's frame with the reason (and the status the
/// API gives it), not the API's JSON.
pub struct PageQuery<T>(pub T);

impl<T: serde::de::DeserializeOwned> FromRequestParts<AppState> for PageQuery<T> {
    type Rejection = PageError;

    async fn from_request_parts(parts: &mut axum::http::request::Parts, state: &AppState) -> Result<Self, PageError> {
        let path = parts.uri.path().to_string();
        super::params::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|q| PageQuery(q.0))
            .map_err(|e| PageError::new(state, &path, "Bad request", e))
    }
}

/// Runs a page's body (through [`AppState::run`]); an error (bad parameters, unknown dataset)
/// becomes the page's message.
async fn render<F, Fut>(state: &AppState, path: &str, title: &str, body: F) -> Result<Markup, PageError>
where
    F: FnOnce(AppState) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Markup, Error>>,
{
    match state.run(body).await {
        Ok(b) => Ok(layout(state, path, title, b)),
        Err(e) => Err(PageError::new(state, path, title, e)),
    }
}

/// A status word (GREEN, OK, succeeded, ...) as a coloured badge.
fn badge(status: impl std::fmt::Display) -> Markup {
    let s = status.to_string();
    html! { span class={ "badge " (s) } { (s) } }
}

/// Serialized enum names (`JobStatus::Succeeded` -> `succeeded`).
fn name_of(v: &impl serde::Serialize) -> String {
    serde_json::to_value(v).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
}

fn pct(v: f64) -> String {
    format!("{:.2}%", v * 100.0)
}

fn time(t: Option<DateTime<Utc>>) -> String {
    t.map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).unwrap_or_default()
}

fn seconds(s: Option<f64>) -> String {
    match s {
        None => String::new(),
        Some(s) if s < 90.0 => format!("{s:.1} s"),
        Some(s) if s < 5400.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

/// Query string from pairs, each value escaped.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs.iter().filter(|(_, v)| !v.is_empty()) {
        s.append_pair(k, v);
    }
    s.finish()
}

/// Inline SVG made by [`super::charts`] (trusted: drawn here, text escaped by plotters).
fn svg(chart: String) -> Markup {
    html! { div.chart { (PreEscaped(chart)) } }
}

/// The login form (only shown when the server has an access token).
pub fn login_page(next: &str, error: Option<&str>) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                title { "Log in · quantlake" }
                link rel="stylesheet" href="/assets/style.css";
            }
            body {
                main.login {
                    h1 { "quantlake dashboard" }
                    @if let Some(e) = error { p.error { (e) } }
                    form method="post" action="/login" {
                        input type="hidden" name="next" value=(next);
                        p { label { "Access token (QUANTLAKE_TOKEN)" br; input type="password" name="token" autofocus required size="40"; } }
                        button.primary type="submit" { "Log in" }
                    }
                }
            }
        }
    }
}
