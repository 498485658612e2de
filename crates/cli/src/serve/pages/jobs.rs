//! `/jobs`: jobs and backfills with live progress (`/api/jobs`, `/api/jobs/stream`); `/jobs/{id}`:
//! one job with its log and, for a backfill, its plan, steps and impact (`/api/jobs/{job_id}`);
//! `/backfill`: the plan of a dry run (`POST /api/backfills` with `dry_run`), and the form that
//! triggers it once the plan is confirmed.

use axum::extract::{Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, display, html};

use super::{PageError, PageQuery, name_of, query, render, seconds, time};
use crate::serve::AppState;
use crate::serve::actions::{self, BackfillAnswer, BackfillRequest};
use crate::serve::data::{self, JobsQuery};
use crate::serve::params::Body;
use quantlake::ops::jobs::JobRecord;
use quantlake::ops::tasks::backfill::trigger::BackfillPlan;

/// The jobs table: the overview and `/jobs` show it; unfinished rows update live.
pub fn job_rows(jobs: &[JobRecord]) -> Markup {
    html! {
        table.jobs {
            thead { tr {
                th { "job" } th { "kind" } th { "status" } th { "progress" } th { "ETA" } th { "created" } th.num { "duration" } th.num { "lag" }
                th.num { "rows in" } th.num { "rows out" } th { "error" }
            } }
            tbody {
                @for j in jobs {
                    @let status = name_of(&j.status);
                    @let live = !j.status.is_finished();
                    tr data-job-id=[live.then_some(j.id.as_str())] data-job=(j.id) {
                        td { a href={ "/jobs/" (j.id) } { (j.id) } }
                        td { (j.kind) }
                        td { span class={ "badge " (status) } data-field="status" { (status) } }
                        td {
                            @if let Some(p) = &j.progress {
                                div.progress data-field="progress" { div style={ "width:" (percent(p.done, p.total)) "%" } {} }
                                " " span.muted data-field="stage" { (p.stage) " " (p.done) "/" (p.total) }
                            }
                        }
                        td data-field="eta" { (seconds(j.eta_seconds)) }
                        td { (time(Some(j.created_at))) }
                        td.num { (seconds(j.duration_seconds)) }
                        td.num { (seconds(j.lag_seconds)) }
                        td.num { (j.rows_in) }
                        td.num { (j.rows_out) }
                        td { (j.error.clone().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

fn percent(done: u64, total: u64) -> u64 {
    (100 * done).checked_div(total).map_or(0, |p| p.min(100))
}

pub async fn list(State(state): State<AppState>, PageQuery(q): PageQuery<JobsQuery>) -> Result<Markup, PageError> {
    render(&state, "/jobs", "Jobs & backfills", move |state| async move {
        let jobs = data::jobs(state.lake(), state.config(), &q).await?;
        let running = jobs.iter().filter(|j| !j.status.is_finished()).count();
        Ok(html! {
            form.inline method="get" {
                label { "kind" input name="kind" value=(q.kind.clone().unwrap_or_default()) placeholder="daily_run, backfill, ..."; }
                label { "status" input name="status" value=(q.status.clone().unwrap_or_default()) placeholder="failed, running, ..."; }
                label { "since" input name="since" value=(q.since.clone().unwrap_or_default()) placeholder="2024-03-05"; }
                button type="submit" { "Filter" }
                a href="/backfill" { "Plan a backfill…" }
            }
            p { span data-figure="jobs" { (jobs.len()) } " job(s), " span data-figure="running" { (running) } " unfinished (progress updates live)." }
            (job_rows(&jobs))
        })
    })
    .await
}

pub async fn detail(State(state): State<AppState>, Path(job_id): Path<String>) -> Result<Markup, PageError> {
    render(&state, "/jobs", &format!("Job {job_id}"), move |state| async move {
        let d = data::job(state.lake(), state.config(), &job_id).await?;
        let j = &d.job;
        Ok(html! {
            (job_rows(std::slice::from_ref(j)))
            @if !j.status.is_finished() {
                form method="post" action={ "/jobs/" (j.id) "/cancel" } data-confirm={ "Cancel job " (j.id) "? It stops at its next checkpoint." } {
                    button.danger type="submit" { "Cancel job" }
                }
            }
            table.kv {
                tr { td { "parameters" } td { code { (j.params.to_string()) } } }
                tr { td { "attempts" } td { (j.attempts) } }
                tr { td { "worker" } td { (j.worker.clone().unwrap_or_default()) } }
                tr { td { "started / ended" } td { (time(j.started_at)) " / " (time(j.ended_at)) } }
                tr { td { "snapshots produced" } td { @for (ds, id) in &j.snapshots { div { (ds) " " (id) } } } }
                @if let Some(parent) = &j.parent { tr { td { "part of" } td { a href={ "/jobs/" (parent) } { (parent) } } } }
            }
            @if let Some(b) = &d.backfill {
                h2 { "Backfill" }
                table {
                    thead { tr { th { "step" } th.num { "chunks done" } th.num { "of" } } }
                    tbody { @for s in &b.steps { tr { td { (name_of(&s.step)) } td.num data-field="done" { (s.done) } td.num { (s.total) } } } }
                }
                p { "ETA: " (seconds(b.eta_seconds)) }
                @if let Some(r) = &b.result {
                    h2 { "Impact" }
                    p { "Tag before writing: " code { (r.tag) } " (restore it to undo the whole backfill: " a href={ "/snapshots?" (query(&[("to", r.tag.as_str())])) } { "snapshots" } ")." }
                    p { (r.rows_ingested) " rows ingested, " (r.rows_curated) " curated, " (r.feature_rows) " feature rows; " (r.chunks_committed) " chunk(s) committed, " (r.chunks_resumed) " resumed." }
                    @if !r.failed.is_empty() { p.error { "Failed symbols: " @for f in &r.failed { (serde_json::to_string(f).unwrap_or_default()) " " } } }
                    pre { (serde_json::to_string_pretty(&r.impact).unwrap_or_default()) }
                }
                h2 { "Plan" }
                (plan_view(&b.plan))
            }
            @if !j.report.is_null() && d.backfill.is_none() {
                h2 { "Report" }
                pre { (serde_json::to_string_pretty(&j.report).unwrap_or_default()) }
            }
            h2 { "Log" }
            @if d.log.is_empty() { p.muted { "No log lines recorded." } }
            @for l in &d.log {
                h3 { "attempt " (l.attempt) }
                pre.log data-field="log" { (l.text) }
            }
        })
    })
    .await
}

pub async fn cancel(State(state): State<AppState>, Path(job_id): Path<String>) -> Result<Response, PageError> {
    let id = job_id.clone();
    match state.run(move |s| async move { actions::cancel_job(&s, &id).await }).await {
        Ok(_) => Ok(Redirect::to(&format!("/jobs/{job_id}")).into_response()),
        Err(e) => Err(PageError::new(&state, "/jobs", "Cancel job", e)),
    }
}

/// A plan as a table of its steps and figures.
pub fn plan_view(p: &BackfillPlan) -> Markup {
    html! {
        table.kv.plan {
            tr { td { "dataset" } td data-field="dataset" { (p.dataset) " (" (p.layer) ", " (name_of(&p.bar_size)) ")" } }
            tr { td { "symbols" } td { (p.symbols.as_ref().map(|s| s.join(",")).unwrap_or_else(|| "all".into())) } }
            tr { td { "sessions" } td data-field="sessions" { (p.sessions.len()) " (" (display(p.start)) " to " (display(p.end)) ")" } }
            tr { td { "source" } td { (p.source.clone().unwrap_or_default()) " → " (p.raw_dataset.clone().unwrap_or_default()) } }
            tr { td { "cells to fetch" } td data-field="cells_to_fetch" { (p.cells_to_fetch) } }
            tr { td { "source requests" } td data-field="source_requests" { (p.source_requests) " (about " (seconds(Some(p.estimated_fetch_seconds))) " under pacing)" } }
            tr { td { "bytes to write" } td data-field="bytes_to_write" { (p.bytes_to_write) } }
            tr { td { "feature sets recomputed" } td { (p.feature_sets.join(", ")) } }
            tr { td { "tag before writing" } td { (p.tag.clone().unwrap_or_else(|| "pre-<job id>, named when it runs".into())) } }
            @if !p.annotations.is_empty() { tr { td { "annotations" } td { @for a in &p.annotations { div { (a) } } } } }
            @if !p.warnings.is_empty() { tr { td { "warnings" } td { @for w in &p.warnings { div { (w) } } } } }
            @if let Some(r) = &p.refused { tr { td { "refused" } td.error data-field="refused" { (r) } } }
        }
        table {
            thead { tr { th { "step" } th { "writes" } th.num { "partitions" } th.num { "chunks" } } }
            tbody {
                @for s in &p.steps {
                    tr data-step=(name_of(&s.step)) { td { (name_of(&s.step)) } td { (s.datasets.join(", ")) } td.num data-field="partitions" { (s.partitions) } td.num { (s.chunks.len()) } }
                }
            }
        }
    }
}

/// `/backfill`: the form; with a scope, its dry-run plan and the confirmed trigger.
pub async fn backfill_plan(
    State(state): State<AppState>,
    PageQuery(request): PageQuery<PlanQuery>,
) -> Result<Markup, PageError> {
    render(&state, "/jobs", "Backfill", move |state| async move {
        let form = html! {
            form.inline method="get" action="/backfill" {
                label { "dataset_name" input name="dataset_name" value=(request.dataset_name.clone().unwrap_or_default()) required placeholder="curated_1m_bars"; }
                label { "symbols" input name="symbols" value=(request.symbols.clone().unwrap_or_else(|| "all".into())); }
                label { "start" input type="date" name="start" value=(request.start.map(|d| d.to_string()).unwrap_or_default()) required; }
                label { "end" input type="date" name="end" value=(request.end.map(|d| d.to_string()).unwrap_or_default()) required; }
                label { "overwrite_curated" input type="checkbox" name="overwrite_curated" checked[request.overwrite_curated]; }
                label { "overwrite_features" input type="checkbox" name="overwrite_features" checked[request.overwrite_features]; }
                label { "reingest" input type="checkbox" name="reingest" checked[request.reingest]; }
                button type="submit" { "Plan (dry run)" }
            }
        };
        let Some(full) = request.complete() else {
            return Ok(html! { (form) p.muted { "Name the scope; the plan shows what the backfill would rewrite before anything is written." } });
        };
        let plan = match actions::trigger_backfill(&state, &BackfillRequest { dry_run: true, ..full.clone() }).await? {
            BackfillAnswer::Plan(p) => *p,
            BackfillAnswer::Queued(s) => return Err(quantlake::error::Error::invalid(format!("the dry run queued job {}; see /jobs", s.job.id))),
        };
        Ok(html! {
            (form)
            h2 { "Plan" }
            (plan_view(&plan))
            @if plan.refused.is_none() {
                form #trigger method="post" action="/backfill" data-confirm="Run this backfill? The lake is tagged first, so restoring the tag undoes it." {
                    input type="hidden" name="dataset_name" value=(full.dataset_name);
                    input type="hidden" name="symbols" value=(full.symbols.clone().unwrap_or_else(|| "all".into()));
                    input type="hidden" name="start" value=(display(full.start));
                    input type="hidden" name="end" value=(display(full.end));
                    @if full.overwrite_curated { input type="hidden" name="overwrite_curated" value="true"; }
                    @if full.overwrite_features { input type="hidden" name="overwrite_features" value="true"; }
                    @if full.reingest { input type="hidden" name="reingest" value="true"; }
                    label { input type="checkbox" required; " I have read the plan" }
                    " "
                    label { "tag " input name="tag" placeholder={ "pre-<job id>" }; }
                    " "
                    button.primary type="submit" { "Trigger backfill" }
                }
            }
        })
    })
    .await
}

/// `/backfill`'s query: a scope being filled in.
#[derive(Debug, Clone, Default, serde::Deserialize)]
pub struct PlanQuery {
    #[serde(default, deserialize_with = "crate::serve::params::text")]
    pub dataset_name: Option<String>,
    #[serde(default, deserialize_with = "crate::serve::params::text")]
    pub symbols: Option<String>,
    #[serde(default, deserialize_with = "crate::serve::params::date")]
    pub start: Option<chrono::NaiveDate>,
    #[serde(default, deserialize_with = "crate::serve::params::date")]
    pub end: Option<chrono::NaiveDate>,
    #[serde(default, deserialize_with = "crate::serve::params::flag")]
    pub overwrite_curated: bool,
    #[serde(default, deserialize_with = "crate::serve::params::flag")]
    pub overwrite_features: bool,
    #[serde(default, deserialize_with = "crate::serve::params::flag")]
    pub reingest: bool,
}

impl PlanQuery {
    fn complete(&self) -> Option<BackfillRequest> {
        Some(BackfillRequest {
            dataset_name: self.dataset_name.clone()?,
            symbols: self.symbols.clone(),
            start: self.start?,
            end: self.end?,
            overwrite_curated: self.overwrite_curated,
            overwrite_features: self.overwrite_features,
            dry_run: true,
            tag: None,
            reingest: self.reingest,
            force_large: false,
            not_before: None,
        })
    }
}

/// The confirmed form: triggers the backfill and shows its job.
pub async fn backfill_run(
    State(state): State<AppState>,
    Body(request): Body<BackfillRequest>,
) -> Result<Response, PageError> {
    match state
        .run(
            move |s| async move { actions::trigger_backfill(&s, &BackfillRequest { dry_run: false, ..request }).await },
        )
        .await
    {
        Ok(BackfillAnswer::Queued(status)) => Ok(Redirect::to(&format!("/jobs/{}", status.job.id)).into_response()),
        Ok(BackfillAnswer::Plan(_)) => Ok(Redirect::to("/jobs").into_response()),
        Err(e) => Err(PageError::new(&state, "/jobs", "Backfill", e)),
    }
}
