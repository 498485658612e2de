//! `/snapshots`: a dataset's snapshots with their tags, the diff between two of them, and restore
//! after typing the dataset's name (`/api/snapshots`, `/api/snapshots/diff`,
//! `/api/snapshots/restore`); without a dataset, the lake log and the lake-wide tags.

use axum::extract::State;
use maud::{Markup, html};

use super::{PageError, PageQuery, render, time};
use crate::serve::AppState;
use crate::serve::actions::{self, RestoreRequest};
use crate::serve::api::SnapshotParams;
use crate::serve::data;
use crate::serve::params::Body;

pub async fn page(State(state): State<AppState>, PageQuery(p): PageQuery<SnapshotParams>) -> Result<Markup, PageError> {
    view(&state, p, None).await
}

async fn view(state: &AppState, p: SnapshotParams, notice: Option<String>) -> Result<Markup, PageError> {
    render(state, "/snapshots", "Snapshots", move |state| async move {
        let lake = state.lake();
        let s = data::snapshots(lake, p.dataset.as_deref(), p.limit.unwrap_or(50)).await?;
        let diff = match (&p.dataset, &p.from, &p.to) {
            (Some(d), Some(from), Some(to)) => Some(data::snapshot_diff(lake, d, from, to).await?),
            _ => None,
        };
        let names: Vec<String> = lake.all_datasets().iter().map(|d| d.name().to_string()).collect();
        let selected = p.dataset.clone().unwrap_or_default();
        let confirm_word = p.dataset.clone().unwrap_or_else(|| "lake".into());
        Ok(html! {
            @if let Some(n) = &notice { p.notice data-notice { (n) } }
            form.inline method="get" {
                label { "dataset" select name="dataset" {
                    option value="" selected[selected.is_empty()] { "(the whole lake)" }
                    @for n in &names { option value=(n) selected[*n == selected] { (n) } }
                } }
                button type="submit" { "Show" }
            }
            @if let Some(dataset) = &s.dataset {
                h2 { "Snapshots of " (dataset) }
                table #snapshots {
                    thead { tr { th.num { "snapshot" } th { "committed" } th { "operation" } th.num { "partitions changed" } th.num { "rows added" } th { "tags" } th { "stage" } } }
                    tbody {
                        @for i in &s.snapshots {
                            tr data-snapshot=(i.snapshot_id) {
                                td.num { (i.snapshot_id) } td { (time(Some(i.committed_at))) } td { (i.operation) }
                                td.num { (i.partitions_changed) } td.num { (i.rows_added) }
                                td { @for t in &i.tags { code { (t) } " " } }
                                td { (i.stage.clone().unwrap_or_default()) " " (i.stage_status.unwrap_or_default()) }
                            }
                        }
                    }
                }
                h2 { "Tags" }
                table #tags { @for t in &s.tags { tr { td { code { (t.name) } } td.num { (t.snapshot_id) } td { (time(Some(t.created_at))) } td { (t.message) } } } }
                h2 { "Diff" }
                form.inline method="get" {
                    input type="hidden" name="dataset" value=(dataset);
                    label { "from" input name="from" value=(p.from.clone().unwrap_or_default()) placeholder="snapshot, tag or time" required; }
                    label { "to" input name="to" value=(p.to.clone().unwrap_or_else(|| "latest".into())) required; }
                    button type="submit" { "Diff" }
                }
                @if let Some(d) = &diff {
                    p { span data-figure="changes" { (d.changes.len()) } " partition(s) differ between snapshot " (d.from_snapshot) " and " (d.to_snapshot) "." }
                    table #diff {
                        thead { tr { th { "partition" } th { "change" } th.num { "rows before" } th.num { "rows after" } } }
                        tbody { @for c in &d.changes { tr { td { (c.partition) } td { (c.change) } td.num { (c.rows_before.map(|r| r.to_string()).unwrap_or_default()) } td.num { (c.rows_after.map(|r| r.to_string()).unwrap_or_default()) } } } }
                    }
                }
            } @else {
                h2 { "Lake log" }
                p.muted { "One entry per stage: a commit to several datasets at once." }
                table #lake-log {
                    thead { tr { th.num { "lake snapshot" } th { "committed" } th { "operation" } th { "outcome" } th { "datasets" } } }
                    tbody {
                        @for c in &s.lake_log {
                            tr { td.num { (c.seq) } td { (time(Some(c.committed_at))) } td { (c.operation) } td { (super::name_of(&c.outcome)) } td { (c.datasets.keys().cloned().collect::<Vec<_>>().join(", ")) } }
                        }
                    }
                }
                h2 { "Lake-wide tags" }
                table #tags { @for t in &s.lake_tags { tr { td { code { (t.name) } } td.num { (t.lake_seq) } td { (time(Some(t.created_at))) } td { (t.message) } } } }
            }
            h2 { "Restore" }
            p.muted { "A restore commits a new snapshot with the old content; nothing is deleted, so it can itself be undone." }
            form #restore method="post" action="/snapshots/restore" data-confirm={ "Restore " (confirm_word) " to the snapshot given? Readers see the old content from then on." } {
                @if let Some(d) = &s.dataset { input type="hidden" name="dataset" value=(d); }
                label { "to " input name="to" value=(p.to.clone().filter(|t| t != "latest").unwrap_or_default()) placeholder=(if s.dataset.is_some() { "snapshot id, tag or time" } else { "lake-wide tag or time" }) required; }
                " "
                label { "type " code { (confirm_word) } " to confirm " input name="confirm" required autocomplete="off"; }
                " "
                button.danger type="submit" { "Restore" }
            }
        })
    })
    .await
}

pub async fn restore(State(state): State<AppState>, Body(request): Body<RestoreRequest>) -> Result<Markup, PageError> {
    let dataset = request.dataset.clone().filter(|d| !d.is_empty());
    let answer = state
        .run(move |s| async move { actions::restore(&s, &request).await })
        .await
        .map_err(|e| PageError::new(&state, "/snapshots", "Snapshots", e))?;
    view(&state, SnapshotParams { dataset, ..Default::default() }, Some(answer.message)).await
}
