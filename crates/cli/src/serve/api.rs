//! The JSON API: the library's read operations and the dashboard's actions over HTTP, with the
//! library's parameter names. Errors are `{"error": "..."}` with a 4xx status for bad input (unknown
//! dataset 404, anything else the caller can fix 400) and 500 for the lake's own failures.
//!
//! | endpoint | parameters | returns |
//! |---|---|---|
//! | `GET /api/health` | `dataset`, `as_of_date` | without `dataset`: every dataset's health, lag, breadth, the lake's conditions and the last jobs; with it: `get_dataset_health` |
//! | `GET /api/dq/summary` | `dataset`, `start`, `end` | `get_data_quality_summary` |
//! | `GET /api/dq/metrics` | `dataset`, `start`, `end`, `symbol` | metrics per symbol-session |
//! | `GET /api/dq/null_rates` | `dataset`, `start`, `end` | null rates of vwap and trade_count per session |
//! | `GET /api/coverage` | `dataset`, `start`, `end` | completeness per symbol x session |
//! | `GET /api/bars` | `symbols`, `start`, `end`, `frequency`, `adjust`, `extended_hours`, `as_of` | `get_curated_bars` rows, gaps and outliers |
//! | `GET /api/jobs` | `since`, `kind`, `status`, `limit` | job records, newest first |
//! | `GET /api/jobs/stream` | | server-sent events: the unfinished jobs, every 2 s |
//! | `GET /api/jobs/{job_id}` | | the record, its log, a backfill's status |
//! | `POST /api/jobs/{job_id}/cancel` | | the record |
//! | `GET /api/backfills` | `limit` | backfill jobs |
//! | `POST /api/backfills` | `dataset_name`, `symbols`, `start`, `end`, `overwrite_curated`, `overwrite_features`, `dry_run`, `tag`, `reingest`, `force_large`, `not_before` | the plan (`dry_run`) or the queued job |
//! | `GET /api/backfills/{job_id}` | | `get_backfill_job_status` |
//! | `GET /api/snapshots` | `dataset`, `limit` | a dataset's snapshots and tags, or the lake log and lake tags |
//! | `GET /api/snapshots/diff` | `dataset`, `from`, `to` | partitions changed |
//! | `POST /api/snapshots/restore` | `dataset`, `to`, `confirm` | what the restore committed |
//! | `GET /api/lineage` | `limit` | lineage records, target fallbacks, models |
//! | `GET /api/alerts` | `as_of_date`, `limit` | conditions now and the alert history |
//! | `GET /api/validation` | | the last validation job's report |
//! | `POST /api/validation` | `full` | the validation job started |

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use chrono::NaiveDate;
use futures::Stream;
use serde::{Deserialize, Serialize};

use super::AppState;
use super::actions::{self, BackfillAnswer, BackfillRequest, RestoreAnswer, RestoreRequest, ValidationRequest};
use super::data::{
    self, AlertsView, Bars, Coverage, JobDetail, JobsQuery, LineageView, Overview, SessionNullRates, Snapshots,
    ValidationView,
};
use super::params::{self, Body, Query};
use quantlake::curate::BarsRequest;
use quantlake::dq::{DatasetHealth, QualitySummary, SessionMetrics};
use quantlake::error::Error;
use quantlake::ops::jobs::JobRecord;
use quantlake::ops::tasks::backfill::trigger::{self as backfill, BackfillStatus};
use quantlake::symbol::{Symbol, SymbolList};
use quantlake::table::AsOf;
use quantlake::table::operations::history::DiffReport;

/// Dataset the quality pages and endpoints show when none is named.
pub const DEFAULT_DATASET: &str = "curated_1m_bars";

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/health", get(health))
        .route("/dq/summary", get(dq_summary))
        .route("/dq/metrics", get(dq_metrics))
        .route("/dq/null_rates", get(dq_null_rates))
        .route("/coverage", get(coverage))
        .route("/bars", get(bars))
        .route("/jobs", get(jobs))
        .route("/jobs/stream", get(jobs_stream))
        .route("/jobs/{job_id}", get(job))
        .route("/jobs/{job_id}/cancel", post(cancel_job))
        .route("/backfills", get(backfills).post(trigger_backfill))
        .route("/backfills/{job_id}", get(backfill_status))
        .route("/snapshots", get(snapshots))
        .route("/snapshots/diff", get(snapshot_diff))
        .route("/snapshots/restore", post(restore))
        .route("/lineage", get(lineage))
        .route("/alerts", get(alerts))
        .route("/validation", get(validation).post(run_validation))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "no such endpoint; the README lists them (\"Dashboard\")")
        })
}

/// An error as the API answers it.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
}

impl From<Error> for ApiError {
    fn from(e: Error) -> Self {
        let status = match &e {
            Error::UnknownDataset { .. } => StatusCode::NOT_FOUND,
            Error::InvalidName { .. }
            | Error::InvalidArgument(_)
            | Error::SnapshotNotFound { .. }
            | Error::Job { .. }
            | Error::Leakage { .. } => StatusCode::BAD_REQUEST,
            Error::Conflict { .. } => StatusCode::CONFLICT,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        if status.is_server_error() {
            tracing::error!("dashboard: Failed to answer a request: {e}");
        }
        Self::new(status, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(serde_json::json!({ "error": self.message }))).into_response()
    }
}

type ApiResult<T> = Result<Json<T>, ApiError>;

/// `dataset` and a date range; the range defaults to the dataset's last 20 sessions.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct RangeParams {
    #[serde(default, deserialize_with = "params::text")]
    pub dataset: Option<String>,
    #[serde(default, deserialize_with = "params::date")]
    pub start: Option<NaiveDate>,
    #[serde(default, deserialize_with = "params::date")]
    pub end: Option<NaiveDate>,
    /// `/api/dq/metrics`: one symbol's rows.
    #[serde(default, deserialize_with = "params::parsed")]
    pub symbol: Option<Symbol>,
}

impl RangeParams {
    pub fn dataset(&self) -> &str {
        self.dataset.as_deref().unwrap_or(DEFAULT_DATASET)
    }

    pub async fn range(&self, state: &AppState) -> Result<(NaiveDate, NaiveDate), Error> {
        data::session_range(state.lake(), self.dataset(), self.start, self.end).await
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct HealthParams {
    #[serde(default, deserialize_with = "params::text")]
    pub dataset: Option<String>,
    #[serde(default, deserialize_with = "params::date")]
    pub as_of_date: Option<NaiveDate>,
    #[serde(default, deserialize_with = "params::parsed")]
    pub limit: Option<usize>,
}

/// Either answer of `/api/health`.
#[derive(Serialize)]
#[serde(untagged)]
enum HealthAnswer {
    Lake(Box<Overview>),
    Dataset(Box<DatasetHealth>),
}

async fn health(State(state): State<AppState>, Query(p): Query<HealthParams>) -> ApiResult<HealthAnswer> {
    let answer = state
        .run(move |s| async move {
            Ok(match &p.dataset {
                Some(d) => {
                    HealthAnswer::Dataset(Box::new(data::dataset_health(s.lake(), s.config(), d, p.as_of_date).await?))
                }
                None => HealthAnswer::Lake(Box::new(data::health(s.lake(), s.config(), p.as_of_date).await?)),
            })
        })
        .await?;
    Ok(Json(answer))
}

/// Answers a ranged request: `f` gets the dataset's range with its defaults resolved.
async fn over_range<T, F, Fut>(state: AppState, p: RangeParams, f: F) -> ApiResult<T>
where
    T: Serialize + Send + 'static,
    F: FnOnce(AppState, RangeParams, NaiveDate, NaiveDate) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = quantlake::error::Result<T>>,
{
    let answer = state
        .run(move |s| async move {
            let (start, end) = p.range(&s).await?;
            f(s, p, start, end).await
        })
        .await?;
    Ok(Json(answer))
}

async fn dq_summary(State(state): State<AppState>, Query(p): Query<RangeParams>) -> ApiResult<QualitySummary> {
    over_range(state, p, |s, p, start, end| async move {
        quantlake::dq::get_data_quality_summary(s.lake(), p.dataset(), start, end).await
    })
    .await
}

async fn dq_metrics(State(state): State<AppState>, Query(p): Query<RangeParams>) -> ApiResult<Vec<SessionMetrics>> {
    over_range(state, p, |s, p, start, end| async move {
        data::dq_metrics(s.lake(), p.dataset(), start, end, p.symbol.as_ref()).await
    })
    .await
}

async fn dq_null_rates(
    State(state): State<AppState>,
    Query(p): Query<RangeParams>,
) -> ApiResult<Vec<SessionNullRates>> {
    over_range(state, p, |s, p, start, end| async move { data::dq_null_rates(s.lake(), p.dataset(), start, end).await })
        .await
}

async fn coverage(State(state): State<AppState>, Query(p): Query<RangeParams>) -> ApiResult<Coverage> {
    over_range(state, p, |s, p, start, end| async move { data::coverage(s.lake(), p.dataset(), start, end).await })
        .await
}

/// `/api/bars`: `get_curated_bars`'s request.
#[derive(Debug, Clone, Default, Deserialize, Serialize)]
pub struct BarsParams {
    #[serde(default, deserialize_with = "params::text")]
    pub symbols: Option<String>,
    #[serde(default, deserialize_with = "params::date")]
    pub start: Option<NaiveDate>,
    #[serde(default, deserialize_with = "params::date")]
    pub end: Option<NaiveDate>,
    #[serde(default, deserialize_with = "params::text")]
    pub frequency: Option<String>,
    #[serde(default, deserialize_with = "params::text")]
    pub adjust: Option<String>,
    #[serde(default, deserialize_with = "params::flag")]
    pub extended_hours: bool,
    /// A snapshot id, tag or time (default: latest).
    #[serde(default, deserialize_with = "params::text")]
    pub as_of: Option<String>,
    /// The date symbols are resolved to securities on (default: `end`).
    #[serde(default, deserialize_with = "params::date")]
    pub resolve_at: Option<NaiveDate>,
}

impl BarsParams {
    /// The request, with the range defaulting to the last session of `curated_1m_bars` (1m) or its
    /// last 20 sessions (resampled).
    pub async fn request(&self, state: &AppState) -> Result<(BarsRequest, AsOf), Error> {
        let symbols = match self.symbols.as_deref() {
            Some(list) => list.parse::<SymbolList>()?.into_vec(),
            None => return Err(Error::invalid("bars needs symbols, e.g. symbols=AAPL")),
        };
        let frequency = match self.frequency.as_deref() {
            Some(f) => <quantlake::bars::Frequency as quantlake::names::Named>::parse_name(f)?,
            None => quantlake::bars::Frequency::M1,
        };
        let adjust = match self.adjust.as_deref() {
            Some(a) => serde_json::from_value(serde_json::Value::String(a.into()))
                .map_err(|_| Error::invalid(format!("adjust '{a}': give none, splits or all")))?,
            None => Default::default(),
        };
        let (start, end) = match (self.start, self.end) {
            (Some(s), e) => (s, e.unwrap_or(s)),
            (None, e) => {
                let one_session = frequency == quantlake::bars::Frequency::M1;
                let (s, e) = data::session_range(state.lake(), DEFAULT_DATASET, None, e).await?;
                (if one_session { e } else { s }, e)
            }
        };
        if end < start {
            return Err(Error::invalid(format!("end {end} is before start {start}")));
        }
        // One answer is one JSON document: a year of minutes, or ten of resampled bars.
        let max_days = if frequency == quantlake::bars::Frequency::M1 { 366 } else { 3660 };
        if (end - start).num_days() > max_days {
            return Err(Error::invalid(format!(
                "{start}..{end} is too long for one answer at {}: at most {max_days} days",
                quantlake::names::Named::name(frequency)
            )));
        }
        let as_of = AsOf::parse(self.as_of.as_slice())?;
        let request = BarsRequest {
            symbols,
            start,
            end,
            frequency,
            extended_hours: self.extended_hours,
            adjust,
            resolve_at: self.resolve_at,
        };
        Ok((request, as_of))
    }
}

async fn bars(State(state): State<AppState>, Query(p): Query<BarsParams>) -> ApiResult<Bars> {
    Ok(Json(
        state
            .run(move |s| async move {
                let (request, as_of) = p.request(&s).await?;
                data::bars(s.lake(), &request, &as_of).await
            })
            .await?,
    ))
}

async fn jobs(State(state): State<AppState>, Query(q): Query<JobsQuery>) -> ApiResult<Vec<JobRecord>> {
    Ok(Json(state.run(move |s| async move { data::jobs(s.lake(), s.config(), &q).await }).await?))
}

/// The unfinished jobs as one `jobs` event at once and then every 2 seconds (what the jobs page
/// updates from); `finished` names the jobs that were running in the previous event and no longer are.
async fn jobs_stream(State(state): State<AppState>) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let stream = futures::stream::unfold((state, Vec::<String>::new(), true), |(state, before, first)| async move {
        if !first {
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
        let list = state
            .run(|s| async move {
                data::jobs(s.lake(), s.config(), &JobsQuery { limit: Some(500), ..Default::default() }).await
            })
            .await;
        let (event, now) = match list {
            Ok(list) => {
                let running: Vec<&JobRecord> = list.iter().filter(|j| !j.status.is_finished()).collect();
                let ids: Vec<String> = running.iter().map(|j| j.id.clone()).collect();
                let finished: Vec<&String> = before.iter().filter(|id| !ids.contains(id)).collect();
                let payload = serde_json::json!({ "running": running, "finished": finished });
                (Event::default().event("jobs").data(payload.to_string()), ids)
            }
            Err(e) => (Event::default().event("error").data(e.to_string().replace('\r', " ")), before),
        };
        Some((Ok(event), (state, now, false)))
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}

async fn job(State(state): State<AppState>, Path(job_id): Path<String>) -> ApiResult<JobDetail> {
    Ok(Json(state.run(move |s| async move { data::job(s.lake(), s.config(), &job_id).await }).await?))
}

async fn cancel_job(State(state): State<AppState>, Path(job_id): Path<String>) -> ApiResult<JobRecord> {
    Ok(Json(state.run(move |s| async move { actions::cancel_job(&s, &job_id).await }).await?))
}

async fn backfills(State(state): State<AppState>, Query(p): Query<HealthParams>) -> ApiResult<Vec<JobRecord>> {
    Ok(Json(state.run(move |s| async move { data::backfills(s.lake(), s.config(), p.limit).await }).await?))
}

async fn trigger_backfill(
    State(state): State<AppState>,
    Body(request): Body<BackfillRequest>,
) -> Result<(StatusCode, Json<BackfillAnswer>), ApiError> {
    let answer = state.run(move |s| async move { actions::trigger_backfill(&s, &request).await }).await?;
    let status = if matches!(answer, BackfillAnswer::Queued(_)) { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(answer)))
}

async fn backfill_status(State(state): State<AppState>, Path(job_id): Path<String>) -> ApiResult<BackfillStatus> {
    Ok(
        Json(
            state
                .run(move |s| async move {
                    backfill::get_backfill_job_status(s.lake(), s.config().pipeline(), &job_id).await
                })
                .await?,
        ),
    )
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct SnapshotParams {
    #[serde(default, deserialize_with = "params::text")]
    pub dataset: Option<String>,
    #[serde(default, deserialize_with = "params::parsed")]
    pub limit: Option<usize>,
    #[serde(default, deserialize_with = "params::text")]
    pub from: Option<String>,
    #[serde(default, deserialize_with = "params::text")]
    pub to: Option<String>,
}

async fn snapshots(State(state): State<AppState>, Query(p): Query<SnapshotParams>) -> ApiResult<Snapshots> {
    Ok(Json(
        state
            .run(move |s| async move { data::snapshots(s.lake(), p.dataset.as_deref(), p.limit.unwrap_or(50)).await })
            .await?,
    ))
}

async fn snapshot_diff(State(state): State<AppState>, Query(p): Query<SnapshotParams>) -> ApiResult<DiffReport> {
    let need =
        |v: &Option<String>, name: &str| v.clone().ok_or_else(|| ApiError::bad_request(format!("diff needs {name}")));
    let (dataset, from, to) = (need(&p.dataset, "dataset")?, need(&p.from, "from")?, need(&p.to, "to")?);
    Ok(Json(state.run(move |s| async move { data::snapshot_diff(s.lake(), &dataset, &from, &to).await }).await?))
}

async fn restore(State(state): State<AppState>, Body(request): Body<RestoreRequest>) -> ApiResult<RestoreAnswer> {
    Ok(Json(state.run(move |s| async move { actions::restore(&s, &request).await }).await?))
}

async fn lineage(State(state): State<AppState>, Query(p): Query<HealthParams>) -> ApiResult<LineageView> {
    Ok(Json(state.run(move |s| async move { data::lineage(s.lake(), p.limit.unwrap_or(50)).await }).await?))
}

async fn alerts(State(state): State<AppState>, Query(p): Query<HealthParams>) -> ApiResult<AlertsView> {
    Ok(Json(
        state
            .run(move |s| async move { data::alerts(s.lake(), s.config(), p.as_of_date, p.limit.unwrap_or(100)).await })
            .await?,
    ))
}

async fn validation(State(state): State<AppState>) -> ApiResult<ValidationView> {
    Ok(Json(state.run(|s| async move { data::validation(s.lake(), s.config()).await }).await?))
}

async fn run_validation(
    State(state): State<AppState>,
    Body(request): Body<ValidationRequest>,
) -> Result<(StatusCode, Json<JobRecord>), ApiError> {
    Ok((
        StatusCode::ACCEPTED,
        Json(state.run(move |s| async move { actions::run_validation(&s, &request).await }).await?),
    ))
}
