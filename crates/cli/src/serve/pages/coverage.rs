//! `/coverage`: symbols x sessions coloured by completeness (`/api/coverage`); every hole links to
//! the dry-run plan of the backfill that would fill it.

use axum::extract::State;
use maud::{Markup, display, html};

use super::{PageError, PageQuery, pct, query, render};
use crate::serve::AppState;
use crate::serve::api::RangeParams;
use crate::serve::data;

/// Green when complete, through yellow to red as bars go missing; grey-red when nothing arrived.
fn colour(cell: Option<f64>) -> &'static str {
    match cell {
        None => "#8c1d18",
        Some(c) if c >= 1.0 => "#2da44e",
        Some(c) if c >= 0.99 => "#a2d9a4",
        Some(c) if c >= 0.95 => "#e3b341",
        Some(c) if c >= 0.8 => "#f0883e",
        Some(_) => "#cf222e",
    }
}

pub async fn page(State(state): State<AppState>, PageQuery(p): PageQuery<RangeParams>) -> Result<Markup, PageError> {
    render(&state, "/coverage", "Coverage", move |state| async move {
        let dataset = p.dataset().to_string();
        let (start, end) = p.range(&state).await?;
        let c = data::coverage(state.lake(), &dataset, start, end).await?;
        let datasets: Vec<String> = state.lake().all_datasets().iter().filter(|d| d.contract().quality.is_some()).map(|d| d.name().to_string()).collect();
        Ok(html! {
            form.inline method="get" {
                label { "dataset" select name="dataset" { @for d in &datasets { option value=(d) selected[*d == dataset] { (d) } } } }
                label { "start" input type="date" name="start" value=(display(start)); }
                label { "end" input type="date" name="end" value=(display(end)); }
                button type="submit" { "Show" }
            }
            div.cards {
                div.card { div.label { "symbol-sessions" } div.value data-figure="cells" { (c.symbols.len() * c.sessions.len()) } }
                div.card { div.label { "complete" } div.value data-figure="complete" { (c.complete) } }
                div.card { div.label { "holes" } div.value data-figure="holes" { (c.holes) } }
            }
            p.muted { "A cell is one symbol in one session: present / expected bars. Click a hole to plan the backfill that fills it (a dry run: nothing is written until you confirm)." }
            @if c.symbols.is_empty() {
                p.muted { "No symbols have metrics in " (dataset) " between " (display(start)) " and " (display(end)) "." }
            } @else {
                table.heatmap #heatmap {
                    thead { tr { th {} @for d in &c.sessions { th.session { (display(d)) } } } }
                    tbody {
                        @for (i, symbol) in c.symbols.iter().enumerate() {
                            tr {
                                th { a href={ "/dq?" (query(&[("dataset", dataset.as_str()), ("symbol", symbol.as_str()), ("start", start.to_string().as_str()), ("end", end.to_string().as_str())])) } { (symbol) } }
                                @for (j, d) in c.sessions.iter().enumerate() {
                                    @let cell = c.cells[i][j];
                                    @let title = format!("{symbol} {d}: {}", cell.map(pct).unwrap_or_else(|| "no bars".into()));
                                    td {
                                        @if cell.is_some_and(|v| v >= 1.0) {
                                            span style={ "background:" (colour(cell)) } title=(title) {}
                                        } @else {
                                            a.hole href={ "/backfill?" (query(&[("dataset_name", dataset.as_str()), ("symbols", symbol.as_str()), ("start", d.to_string().as_str()), ("end", d.to_string().as_str())])) }
                                                style={ "background:" (colour(cell)) } title=(title) data-symbol=(symbol) data-session=(display(d)) data-missing[cell.is_none()] {}
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        })
    })
    .await
}
