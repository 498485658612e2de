//! `/lineage`: training sets' lineage records (inputs at their snapshots, target requested and used,
//! target coverage, leakage check), the target fallback history, and the models (`/api/lineage`).

use axum::extract::State;
use maud::{Markup, display, html};
use serde_json::Value;

use super::{PageError, PageQuery, render, time};
use crate::serve::AppState;
use crate::serve::api::HealthParams;
use crate::serve::data;

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        v => v.to_string(),
    }
}

pub async fn page(State(state): State<AppState>, PageQuery(p): PageQuery<HealthParams>) -> Result<Markup, PageError> {
    render(&state, "/lineage", "Training sets and models", move |state| async move {
        let l = data::lineage(state.lake(), p.limit.unwrap_or(50)).await?;
        Ok(html! {
            div.cards {
                div.card { div.label { "training sets" } div.value data-figure="records" { (l.records.len()) } }
                div.card { div.label { "target fallbacks" } div.value data-figure="fallbacks" { (l.fallbacks.len()) } }
                div.card { div.label { "models" } div.value data-figure="models" { (l.models.len()) } }
            }
            h2 { "Training sets" }
            @if l.records.is_empty() { p.muted { "No training set written yet (quantlake training-set)." } }
            @for r in &l.records {
                details.lineage data-id=(text(&r["id"])) {
                    summary {
                        code { (text(&r["id"])) } " · " (text(&r["created_at"])) " · " (text(&r["feature_set"])) " → " b { (text(&r["target"])) }
                        " · " (text(&r["rows"])) " rows"
                        @if !r["fallback"].is_null() { " · " span.badge.YELLOW { "fallback" } }
                        " · leakage check " (if r["leakage_check"]["passed"].as_bool().unwrap_or(false) { "passed" } else { "FAILED" })
                    }
                    table.kv {
                        tr { td { "label requested / used" } td { (text(&r["label_requested"])) " / " (text(&r["target"])) } }
                        tr { td { "range" } td { (text(&r["start"])) " to " (text(&r["end"])) ", embargo " (text(&r["embargo_seconds"])) " s" } }
                        tr { td { "inputs (dataset: snapshot)" } td { @if let Some(m) = r["inputs"].as_object() { @for (k, v) in m { div { (k) ": " (text(v)) } } } } }
                        tr { td { "excluded by annotations" } td { (text(&r["rows_excluded_by_annotations"])) " rows" } }
                        tr { td { "code" } td { code { (r["code"].to_string()) } } }
                    }
                    @if let Some(rows) = r["target_coverage"].as_array() {
                        table {
                            thead { tr { th { "target" } th.num { "rows" } th.num { "covered" } th.num { "coverage" } th { "below MIN_TARGET_COVERAGE" } } }
                            tbody {
                                @for c in rows {
                                    tr {
                                        td { (text(&c["target"])) } td.num { (text(&c["rows"])) } td.num { (text(&c["covered"])) }
                                        td.num { (c["coverage"].as_f64().map(|v| format!("{v:.3}")).unwrap_or_default()) }
                                        td { (if c["below_threshold"].as_bool().unwrap_or(false) { "yes" } else { "no" }) }
                                    }
                                }
                            }
                        }
                    }
                    details { summary { "Whole record (JSON)" } pre { (serde_json::to_string_pretty(r).unwrap_or_default()) } }
                }
            }
            h2 { "Target fallback history" }
            p.muted { "Each time training fell back from the residual target because its coverage was below MIN_TARGET_COVERAGE." }
            table #fallbacks {
                thead { tr { th { "when" } th { "session" } th { "label set" } th { "requested" } th { "chosen" } th.num { "coverage" } th.num { "threshold" } th.num { "days back" } th { "training set" } } }
                tbody {
                    @for f in &l.fallbacks {
                        tr {
                            td { (time(f.created_at)) } td { (f.date.map(|d| d.to_string()).unwrap_or_default()) } td { (f.label_set) } td { (f.requested) } td { (f.chosen) }
                            td.num { (f.coverage.map(|c| format!("{c:.3}")).unwrap_or_default()) } td.num { (f.threshold.map(|c| format!("{c:.3}")).unwrap_or_default()) }
                            td.num { (f.days_back.map(|d| d.to_string()).unwrap_or_default()) } td { (f.training_set.clone().unwrap_or_default()) }
                        }
                    }
                }
            }
            h2 { "Models" }
            table #models {
                thead { tr { th { "model" } th { "kind" } th { "target" } th { "window" } th.num { "rows" } th.num { "holdout R²" } th.num { "holdout IC" } th { "training set" } th { "trained" } } }
                tbody {
                    @for m in &l.models {
                        tr {
                            td { code { (m.model_id) } } td { (m.kind) } td { (m.target) } td { (display(m.window_start)) " to " (display(m.window_end)) } td.num { (m.rows) }
                            td.num { (m.holdout_r2.map(|v| format!("{v:.4}")).unwrap_or_default()) } td.num { (m.holdout_ic.map(|v| format!("{v:.4}")).unwrap_or_default()) }
                            td { (m.training_set_id.clone().unwrap_or_default()) } td { (time(Some(m.trained_at))) }
                        }
                    }
                }
            }
        })
    })
    .await
}
