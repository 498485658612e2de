//! `quantlake score`: a model's predictions for every feature row of some sessions, written to the
//! `predictions` dataset (one date partition per session, replaced whole: a re-score never duplicates
//! a row), and the data quality of what was written: each session's null rate and the shift of its
//! predictions against the same model's predictions in a trailing window of earlier sessions
//! ([`super::drift`]). [`predictions_health`] applies the same checks to the stored partitions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Float64Type, TimestampMicrosecondType};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

use super::design::{numeric, text, timestamps};
use super::drift::{PredictionQualitySettings, SessionQuality, judge_session};
use super::registry::ModelArtifact;
use crate::calendar::NyseCalendar;
use crate::contract::DatasetContract;
use crate::dq::annotations::{list_annotations, span_of_dates};
use crate::dq::{DatasetHealth, HealthSettings, PartitionHealth};
use crate::error::{Error, Result};
use crate::features::inputs;
use crate::progress::Progress;
use crate::quality::{Check, Status};
use crate::reference::securities::SECURITY_ID;
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::write::{Stager, WriteMode, split_by_partition};
use crate::table::{Lake, ReadFilter};

/// The predictions dataset.
pub const PREDICTIONS: &str = "predictions";

/// Which model scores a session.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub enum ModelChoice {
    /// The newest registered model.
    #[default]
    Latest,
    /// One model, by id.
    Id(String),
    /// For each session, the model of the newest model's feature set and target whose fit ended most
    /// recently before it ([`walk_forward_models`]): a backtest's history scored by a model per
    /// retrain, never by one that saw the session.
    WalkForward,
}

impl From<Option<String>> for ModelChoice {
    fn from(id: Option<String>) -> Self {
        id.map_or(Self::Latest, Self::Id)
    }
}

/// Which sessions to score, with which model.
#[derive(Debug, Clone)]
pub struct ScoreRequest {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub model: ModelChoice,
    /// Symbols to score (empty: all); a scored session's partition holds only these symbols' rows.
    pub symbols: Vec<Symbol>,
    /// Score sessions on or before the model's fit end (it saw their outcomes) instead of refusing:
    /// their rows are flagged `in_sample` and the outcome is at least a WARNING.
    pub allow_in_sample: bool,
}

impl ScoreRequest {
    /// The sessions of `start..=end` with the newest model, refusing any it saw.
    pub fn new(start: NaiveDate, end: NaiveDate) -> Self {
        Self { start, end, model: ModelChoice::Latest, symbols: Vec::new(), allow_in_sample: false }
    }
}

/// A run of consecutive scored sessions with one model: the lineage of a score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelSpan {
    pub model_id: String,
    /// The last session the model saw.
    pub fit_end: NaiveDate,
    pub first: NaiveDate,
    pub last: NaiveDate,
    pub sessions: usize,
}

/// What `score` did.
#[derive(Debug, Clone, Serialize)]
pub struct ScoreReport {
    /// The model of the range's last session (every model, by session, in `models`).
    pub model_id: String,
    pub feature_set: String,
    pub feature_set_version: String,
    pub target: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// Which model scored which sessions.
    pub models: Vec<ModelSpan>,
    /// Sessions in the range, and those with feature rows.
    pub sessions: usize,
    pub sessions_scored: usize,
    /// Scored sessions on or before their model's fit end (only with `allow_in_sample`).
    pub in_sample_sessions: Vec<NaiveDate>,
    /// Feature rows scored (one prediction row each), and those whose prediction is null.
    pub rows: u64,
    pub null_predictions: u64,
    pub snapshot_id: u64,
    /// Partitions written, and partitions of the range removed because the session has no feature rows.
    pub partitions: usize,
    pub scored_at: DateTime<Utc>,
    /// The worst of the sessions' verdicts.
    pub status: Status,
    pub quality: Vec<SessionQuality>,
}

impl ScoreReport {
    /// The exit code: the predictions' data-quality verdict (GREEN 0, YELLOW 1, RED 2), and at least
    /// a WARNING when sessions were scored in sample.
    pub fn outcome(&self) -> crate::Outcome {
        let status = if self.in_sample_sessions.is_empty() { self.status } else { self.status.max(Status::Yellow) };
        status.into()
    }
}

/// The model of each session of a range.
#[derive(Debug)]
struct Plan {
    models: Vec<ModelArtifact>,
    /// Each session of the range, in order, with its model's index in `models`.
    sessions: Vec<(NaiveDate, usize)>,
}

impl Plan {
    /// Runs of consecutive sessions with the same model: (model index, sessions).
    fn runs(&self) -> Vec<(usize, Vec<NaiveDate>)> {
        let mut runs: Vec<(usize, Vec<NaiveDate>)> = Vec::new();
        for &(d, m) in &self.sessions {
            match runs.last_mut() {
                Some((last, dates)) if *last == m => dates.push(d),
                _ => runs.push((m, vec![d])),
            }
        }
        runs
    }

    /// The sessions on or before their model's fit end.
    fn in_sample(&self) -> Vec<NaiveDate> {
        self.sessions.iter().filter(|(d, m)| *d <= self.models[*m].fit_end()).map(|(d, _)| *d).collect()
    }

    fn spans(&self) -> Vec<ModelSpan> {
        self.runs()
            .into_iter()
            .map(|(m, dates)| ModelSpan {
                model_id: self.models[m].model_id.clone(),
                fit_end: self.models[m].fit_end(),
                first: dates[0],
                last: dates[dates.len() - 1],
                sessions: dates.len(),
            })
            .collect()
    }
}

/// The sessions of `start..=end`, or why there are none.
fn sessions_of(start: NaiveDate, end: NaiveDate) -> Result<Vec<NaiveDate>> {
    if end < start {
        return Err(Error::invalid(format!("--end {end} is before --start {start}")));
    }
    let sessions: Vec<NaiveDate> = NyseCalendar.sessions(start, end).iter().map(|s| s.date).collect();
    if sessions.is_empty() {
        return Err(Error::invalid(format!("no NYSE session between {start} and {end}")));
    }
    Ok(sessions)
}

/// Which model scores each session of the request ([`checked`]).
async fn plan(lake: &Lake, request: &ScoreRequest) -> Result<Plan> {
    let sessions = sessions_of(request.start, request.end)?;
    let plan = match &request.model {
        ModelChoice::Latest | ModelChoice::Id(_) => {
            let id = if let ModelChoice::Id(id) = &request.model { Some(id.as_str()) } else { None };
            let model = super::registry::resolve(lake, id).await?;
            Plan { models: vec![model], sessions: sessions.iter().map(|d| (*d, 0)).collect() }
        }
        ModelChoice::WalkForward => {
            let models = walk_forward_models(lake).await?;
            if models.is_empty() {
                return Err(Error::invalid("no model in the registry; run `quantlake train` first"));
            }
            let mut picked = Vec::with_capacity(sessions.len());
            for &d in &sessions {
                let Some(m) = pick(&models, d) else {
                    let earliest = models.iter().map(|m| m.fit_end()).min().unwrap_or(d);
                    return Err(Error::invalid(format!(
                        "walk-forward: no model of {} -> {} was fitted before {d} (the earliest saw the sessions through {earliest}); \
                         walk-forward scoring can start at {}",
                        models[0].feature_set,
                        models[0].target,
                        NyseCalendar.next_session(earliest)
                    )));
                };
                picked.push((d, m));
            }
            Plan { models, sessions: picked }
        }
    };
    checked(lake, plan, request.allow_in_sample)
}

/// `plan` if every model scores the lake's feature-set version and, unless `allow_in_sample`, no
/// session is on or before its model's fit end.
fn checked(lake: &Lake, plan: Plan, allow_in_sample: bool) -> Result<Plan> {
    for (m, _) in plan.runs() {
        check_feature_set_version(lake, &plan.models[m])?;
    }
    let seen = plan.in_sample();
    if !seen.is_empty() && !allow_in_sample {
        let model = &plan.models[plan.sessions[0].1];
        return Err(Error::invalid(format!(
            "model {} saw the sessions through {} (its window ends {}), so scoring {}..{} would be in sample \
             ({} session(s)); score from {} on, use --walk-forward to give each session a model fitted before it, \
             or --allow-in-sample (rows flagged in_sample, exit 1)",
            model.model_id,
            model.fit_end(),
            model.hyper_parameters.window_end,
            seen[0],
            seen[seen.len() - 1],
            seen.len(),
            NyseCalendar.next_session(model.fit_end()),
        )));
    }
    Ok(plan)
}

/// The models walk-forward scoring picks from: those of the newest registered model's feature set
/// and target (a retrain's models predict the same thing), latest fit end first; none with an empty
/// registry.
pub async fn walk_forward_models(lake: &Lake) -> Result<Vec<ModelArtifact>> {
    let entries = super::registry::list(lake).await?;
    let Some(newest) = entries.first() else { return Ok(Vec::new()) };
    let (feature_set, target) = (newest.feature_set.clone(), newest.target.clone());
    let mut models = Vec::new();
    for e in entries.iter().filter(|e| e.feature_set == feature_set && e.target == target) {
        models.push(super::registry::load_artifact(lake, &e.model_id).await?);
    }
    // Stable: among models with the same fit end, the newest trained (the registry's order) first.
    models.sort_by_key(|m| std::cmp::Reverse(m.fit_end()));
    Ok(models)
}

/// The index in `models` (as [`walk_forward_models`] orders them) of the model whose fit ended most
/// recently before session `date`.
pub fn pick(models: &[ModelArtifact], date: NaiveDate) -> Option<usize> {
    models.iter().position(|m| m.fit_end() < date)
}

/// A model scores only the feature-set version it was trained on.
fn check_feature_set_version(lake: &Lake, model: &ModelArtifact) -> Result<()> {
    let version = super::feature_set_version(lake, &model.feature_set)?;
    if version != model.feature_set_version {
        return Err(Error::invalid(format!(
            "model {} was trained on {} version {}, but the lake's definition is version {version}",
            model.model_id, model.feature_set, model.feature_set_version
        )));
    }
    Ok(())
}

/// The prediction rows of one feature batch (columns symbol, ts, decision_time and the model's
/// features, and security_id when the feature set has it): one row per feature row, the prediction null where a feature is null or not finite,
/// `in_sample` where the row's session is on or before the model's fit end.
pub fn predict_batch(
    contract: &DatasetContract,
    model: &ModelArtifact,
    batch: &RecordBatch,
    scored_at: i64,
) -> Result<RecordBatch> {
    let fit = model.ridge();
    let names = model.feature_names();
    let columns: Vec<Float64Array> = names.iter().map(|f| numeric(batch, f)).collect::<Result<_>>().map_err(|e| {
        Error::invalid(format!("feature rows of '{}' do not fit model {}: {e}", model.feature_set, model.model_id))
    })?;
    let n = batch.num_rows();
    let mut row = vec![0.0; names.len()];
    let predictions: Float64Array = (0..n)
        .map(|i| {
            for (j, c) in columns.iter().enumerate() {
                if c.is_null(i) || !c.value(i).is_finite() {
                    return None;
                }
                row[j] = c.value(i);
            }
            Some(fit.predict_row(&row))
        })
        .collect();
    let (symbol, ts, decision) =
        (text(batch, "symbol")?, timestamps(batch, "ts")?, timestamps(batch, "decision_time")?);
    // A row is in sample when its New York day starts before the day after the fit end.
    let fit_end = model.fit_end();
    let out_of_sample_from =
        fit_end.succ_opt().and_then(|d| NyseCalendar.day_start(d)).map_or(i64::MAX, |t| t.timestamp_micros());
    let in_sample: BooleanArray = ts.values().iter().map(|t| Some(*t < out_of_sample_from)).collect();
    let constant = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v; n])) };
    contract.conform_batch(&contract.batch_from(|name| {
        Some(match name {
            "symbol" => Arc::new(symbol.clone()) as ArrayRef,
            "ts" => Arc::new(ts.clone()),
            "decision_time" => Arc::new(decision.clone()),
            "prediction" => Arc::new(predictions.clone()),
            "model_id" => constant(&model.model_id),
            "feature_set" => constant(&model.feature_set),
            "feature_set_version" => constant(&model.feature_set_version),
            "scored_at" => Arc::new(TimestampMicrosecondArray::from(vec![scored_at; n]).with_timezone("UTC")),
            "model_fit_end" => Arc::new(Date32Array::from(vec![Date32Type::from_naive_date(fit_end); n])),
            "in_sample" => Arc::new(in_sample.clone()),
            // The feature row's security (null from a feature set without the column).
            SECURITY_ID => match batch.column_by_name(SECURITY_ID) {
                Some(c) => c.clone(),
                None => arrow::array::new_null_array(&arrow::datatypes::DataType::Int64, n),
            },
            _ => return None,
        })
    })?)
}

/// Non-null predictions and nulls of one session and model.
#[derive(Debug, Default)]
struct Day {
    values: Vec<f64>,
    nulls: u64,
}

/// Session -> model -> predictions.
type ByDay = BTreeMap<NaiveDate, BTreeMap<String, Day>>;

fn add_batch(by_day: &mut ByDay, b: &RecordBatch) -> Result<()> {
    let ts = b
        .column_by_name("ts")
        .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
        .ok_or_else(|| Error::invalid("predictions without ts"))?;
    let pred = b
        .column_by_name("prediction")
        .and_then(|c| c.as_primitive_opt::<Float64Type>())
        .ok_or_else(|| Error::invalid("predictions without prediction"))?;
    let model = text(b, "model_id")?;
    for i in 0..b.num_rows() {
        let Some(t) = DateTime::<Utc>::from_timestamp_micros(ts.value(i)) else { continue };
        let day =
            by_day.entry(NyseCalendar.trading_date(t)).or_default().entry(model.value(i).to_string()).or_default();
        if pred.is_valid(i) {
            day.values.push(pred.value(i));
        } else {
            day.nulls += 1;
        }
    }
    Ok(())
}

/// Judges each of `dates` against the same model's predictions in up to `shift_window` earlier sessions
/// of `by_day`; a session without predictions is RED, and `missing` says why there are none (scoring:
/// no feature rows; health: not scored).
fn judge_days(
    dates: &[NaiveDate],
    by_day: &ByDay,
    settings: &PredictionQualitySettings,
    missing: &str,
) -> Vec<SessionQuality> {
    let mut out = Vec::new();
    for &d in dates {
        let Some(models) = by_day.get(&d) else {
            let mut q = judge_session(d, &[], 0, &[], 0, settings);
            if let Some(rows) = q.checks.iter_mut().find(|c| c.name == "rows") {
                rows.detail = format!("no predictions: {missing}");
            }
            out.push(q);
            continue;
        };
        for (model, day) in models {
            let earlier: Vec<&Day> =
                by_day.range(..d).rev().filter_map(|(_, m)| m.get(model)).take(settings.shift_window).collect();
            let reference: Vec<f64> = earlier.iter().flat_map(|e| e.values.iter().copied()).collect();
            let mut q = judge_session(d, &day.values, day.nulls, &reference, earlier.len(), settings);
            q.model_id = Some(model.clone());
            out.push(q);
        }
    }
    out
}

/// Reads the stored predictions of the sessions from `start` to `end` into `by_day`.
async fn read_stored(lake: &Lake, start: NaiveDate, end: NaiveDate, by_day: &mut ByDay) -> Result<u64> {
    let ds = lake.dataset(PREDICTIONS)?;
    let state = ds.latest().await?;
    if start <= end {
        for b in ds.read(&state, &ReadFilter { start: Some(start), end: Some(end), ..Default::default() }).await? {
            add_batch(by_day, &b)?;
        }
    }
    by_day.retain(|d, _| *d >= start && *d <= end);
    Ok(state.snapshot_id)
}

/// Sessions of feature rows `score` reads and predicts at a time: its memory follows this many
/// sessions' features and predictions, not the range.
const SCORE_SESSIONS_PER_READ: usize = 5;

/// Predictions partitions being staged at once while the next sessions are scored.
const PARTITIONS_IN_FLIGHT: usize = 2;

/// `quantlake score`: the model of each session ([`ModelChoice`]; sessions a model saw are refused
/// unless `allow_in_sample`), the feature rows of the sessions through
/// [`crate::sets::get_features_for_sessions`] (the training sets' point-in-time code path) a few
/// sessions at a time, each predicted, staged and judged as it is read ([`Scoring`]), then committed
/// in one stage. `progress` counts sessions.
pub async fn score(
    lake: &Lake,
    request: &ScoreRequest,
    settings: &PredictionQualitySettings,
    progress: &dyn Progress,
) -> Result<ScoreReport> {
    let plan = plan(lake, request).await?;
    let scored_at = Utc::now();
    let mut scoring = Scoring::start(lake, request, &plan, settings).await?;
    progress.set_length(plan.sessions.len() as u64);
    for (m, dates) in plan.runs() {
        let model = &plan.models[m];
        progress.message(&format!("model {}", model.model_id));
        for chunk in dates.chunks(SCORE_SESSIONS_PER_READ) {
            let (first, last) = (chunk[0], chunk[chunk.len() - 1]);
            let features =
                crate::sets::get_features_for_sessions(lake, &model.feature_set, &request.symbols, first, last).await;
            let added = match features {
                Ok(features) => scoring.add(model, &features, chunk, scored_at).await,
                Err(e) => Err(e),
            };
            if let Err(e) = added {
                return Err(scoring.abandon(e).await);
            }
            progress.inc(chunk.len() as u64);
        }
    }
    progress.message("committing");
    scoring.commit(request, scored_at).await
}

/// Scores `features` (the feature rows of the sessions `request.start..=request.end`) with `model` and
/// replaces those sessions' partitions of `predictions`; refuses sessions the model saw unless
/// `request.allow_in_sample` (`request.model` is not read: `model` scores every session).
pub async fn score_batches(
    lake: &Lake,
    request: &ScoreRequest,
    model: &ModelArtifact,
    features: &[RecordBatch],
    settings: &PredictionQualitySettings,
) -> Result<ScoreReport> {
    let sessions = sessions_of(request.start, request.end)?;
    let plan = Plan { models: vec![model.clone()], sessions: sessions.into_iter().map(|d| (d, 0)).collect() };
    let plan = checked(lake, plan, request.allow_in_sample)?;
    let scored_at = Utc::now();
    let mut scoring = Scoring::start(lake, request, &plan, settings).await?;
    let dates: Vec<NaiveDate> = plan.sessions.iter().map(|(d, _)| *d).collect();
    if let Err(e) = scoring.add(model, features, &dates, scored_at).await {
        return Err(scoring.abandon(e).await);
    }
    scoring.commit(request, scored_at).await
}

/// Partitions of `predictions` staged as they are scored, a few at a time, each session judged as soon
/// as it is complete against the trailing window: what scoring holds follows a few sessions, never the
/// range. [`Scoring::commit`] replaces the range's partitions with them in one stage.
struct Scoring<'a> {
    lake: &'a Lake,
    plan: &'a Plan,
    settings: &'a PredictionQualitySettings,
    contract: DatasetContract,
    stager: Stager,
    /// The sessions of the plan, in order.
    dates: Vec<NaiveDate>,
    /// The trailing window: each model's predictions of its last `shift_window` sessions (the stored
    /// ones before the range, then the range's as they come).
    window: ByDay,
    quality: Vec<SessionQuality>,
    /// Sessions with predictions, rows and null predictions.
    scored: BTreeSet<NaiveDate>,
    rows: u64,
    nulls: u64,
}

impl<'a> Scoring<'a> {
    async fn start(
        lake: &'a Lake,
        request: &ScoreRequest,
        plan: &'a Plan,
        settings: &'a PredictionQualitySettings,
    ) -> Result<Self> {
        let ds = lake.dataset(PREDICTIONS)?;
        let window_start = NyseCalendar.add_sessions(request.start, -(settings.shift_window as i64));
        let mut window = ByDay::new();
        read_stored(lake, window_start, NyseCalendar.previous_session(request.start), &mut window).await?;
        Ok(Self {
            lake,
            plan,
            settings,
            contract: ds.contract().clone(),
            stager: Stager::new(&ds, PARTITIONS_IN_FLIGHT),
            dates: plan.sessions.iter().map(|(d, _)| *d).collect(),
            window,
            quality: Vec::new(),
            scored: BTreeSet::new(),
            rows: 0,
            nulls: 0,
        })
    }

    /// Predicts `features`, the rows of the sessions `done` (in order, after every earlier call's),
    /// with `model`, stages them, and judges those sessions.
    async fn add(
        &mut self,
        model: &ModelArtifact,
        features: &[RecordBatch],
        done: &[NaiveDate],
        scored_at: DateTime<Utc>,
    ) -> Result<()> {
        let predictions = features
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| predict_batch(&self.contract, model, b, scored_at.timestamp_micros()))
            .collect::<Result<Vec<_>>>()?;
        self.stage(predictions).await?;
        self.quality.extend(judge_days(done, &self.window, self.settings, "no feature rows for the session"));
        // What the next sessions need: each model's last `shift_window` sessions.
        prune(&mut self.window, self.settings.shift_window);
        Ok(())
    }

    async fn stage(&mut self, predictions: Vec<RecordBatch>) -> Result<()> {
        for (key, batches) in split_by_partition(&self.contract, &predictions)? {
            // Rows outside the requested sessions would land in partitions this run does not own.
            let date = key.date_range().0;
            if !self.dates.contains(&date) {
                return Err(Error::invalid(format!(
                    "feature rows of {date} are outside the scored sessions {}..{}",
                    self.dates[0],
                    self.dates[self.dates.len() - 1]
                )));
            }
            let mut day = ByDay::new();
            for b in &batches {
                add_batch(&mut day, b)?;
            }
            for models in day.values() {
                for d in models.values() {
                    self.rows += d.values.len() as u64 + d.nulls;
                    self.nulls += d.nulls;
                }
            }
            if !day.is_empty() {
                self.scored.insert(date);
            }
            self.window.extend(day);
            self.stager.stage(key, batches, None).await?;
        }
        Ok(())
    }

    /// Discards what was staged; returns `e`.
    async fn abandon(self, e: Error) -> Error {
        self.stager.abandon().await;
        e
    }

    /// Replaces the range's partitions of `predictions` with the staged ones, with the record of the
    /// feature partitions they were scored from (so `features --stale` re-scores them), as one stage.
    async fn commit(self, request: &ScoreRequest, scored_at: DateTime<Utc>) -> Result<ScoreReport> {
        let Self { lake, plan, contract, stager, dates, quality, scored, rows, nulls, .. } = self;
        let staged = stager.finish().await?;
        let sessions = NyseCalendar.sessions(request.start, request.end);
        let in_sample_sessions: Vec<NaiveDate> = plan.in_sample().into_iter().filter(|d| scored.contains(d)).collect();
        // Walk-forward models share their feature set.
        let last = &plan.models[plan.sessions[plan.sessions.len() - 1].1];
        let features_ds = lake.dataset(&last.feature_set)?;
        let features_state = features_ds.latest().await?;
        let read: BTreeMap<NaiveDate, inputs::Inputs> =
            dates.iter().map(|d| (*d, inputs::read_inputs(&features_ds, &features_state, *d, *d))).collect();
        let records = lake.dataset(inputs::DATASET)?;
        let spans = plan.spans();
        let lineage: Vec<String> = spans.iter().map(|s| format!("{}:{}..{}", s.model_id, s.first, s.last)).collect();
        let ds = lake.dataset(PREDICTIONS)?;
        let write = ds
            .write(Vec::new())
            .prebuilt(staged)
            .mode(WriteMode::Overwrite)
            .covering(dates.iter().map(|d| PartitionKey::for_date(contract.partitioning, *d)))
            .operation("score")
            .parameter("model_id", &last.model_id)
            .parameter("models", lineage.join(","))
            .parameter("feature_set", &last.feature_set)
            .parameter("start", request.start)
            .parameter("end", request.end)
            .parameter("features_read", format!("{}@{}", last.feature_set, features_state.snapshot_id))
            .parameter("in_sample_sessions", in_sample_sessions.len());
        let job_id = format!("score-{}", uuid::Uuid::now_v7().simple());
        let stage = lake
            .stage("score")
            .parameter("model_id", &last.model_id)
            .write(write)
            .write(inputs::inputs_write(&records, &[(PREDICTIONS.to_string(), read)], &sessions, &job_id)?)
            .commit()
            .await?;
        let done = stage.write(PREDICTIONS).ok_or_else(|| Error::invalid("score: the stage wrote no predictions"))?;
        let status = quality.iter().map(|q| q.status).max().unwrap_or(Status::Green);
        for q in quality.iter().filter(|q| q.status != Status::Green) {
            let problems = crate::quality::problems(&q.checks);
            tracing::warn!(date = %q.date, status = %q.status, "predictions of {}: {}", q.date, problems.join("; "));
        }
        if let (Some(first), Some(last_seen)) = (in_sample_sessions.first(), in_sample_sessions.last()) {
            tracing::warn!(
                "scored {} session(s) in sample ({first}..{last_seen}): the model saw their outcomes; their rows are flagged in_sample",
                in_sample_sessions.len()
            );
        }
        Ok(ScoreReport {
            model_id: last.model_id.clone(),
            feature_set: last.feature_set.clone(),
            feature_set_version: last.feature_set_version.clone(),
            target: last.target.clone(),
            start: request.start,
            end: request.end,
            models: spans,
            sessions: sessions.len(),
            sessions_scored: scored.len(),
            in_sample_sessions,
            rows,
            null_predictions: nulls,
            snapshot_id: done.snapshot_id,
            partitions: done.partitions,
            scored_at,
            status,
            quality,
        })
    }
}

/// Keeps each model's predictions of its last `sessions` sessions in `window` (the reference
/// [`judge_days`] takes for the next session), dropping older ones.
fn prune(window: &mut ByDay, sessions: usize) {
    let mut kept: BTreeMap<String, usize> = BTreeMap::new();
    for models in window.values_mut().rev() {
        models.retain(|model, _| {
            let n = kept.entry(model.clone()).or_default();
            *n += 1;
            *n <= sessions
        });
    }
    window.retain(|_, models| !models.is_empty());
}
/// What re-scoring stale predictions did.
#[derive(Debug, Clone, Serialize)]
pub struct StalePredictions {
    pub stale: Vec<inputs::StalePartition>,
    /// One run per model and range of consecutive stale sessions.
    pub runs: Vec<ScoreReport>,
}

/// Re-scores exactly the predictions partitions whose feature partitions changed since they were
/// scored, each with the model that scored it (the part of `features --stale` after the features).
pub async fn refresh_stale_predictions(lake: &Lake, settings: &PredictionQualitySettings) -> Result<StalePredictions> {
    let stale = inputs::stale_sessions(lake, PREDICTIONS).await?;
    let mut by_model: BTreeMap<String, Vec<NaiveDate>> = BTreeMap::new();
    if !stale.is_empty() {
        let ds = lake.dataset(PREDICTIONS)?;
        let state = ds.latest().await?;
        let (first, last) = (stale[0].date, stale[stale.len() - 1].date);
        let mut models: BTreeMap<NaiveDate, String> = BTreeMap::new();
        for b in ds.read(&state, &ReadFilter { start: Some(first), end: Some(last), ..Default::default() }).await? {
            let (Some(ts), Some(model)) = (
                b.column_by_name("ts").and_then(|c| c.as_primitive_opt::<arrow::datatypes::TimestampMicrosecondType>()),
                b.column_by_name("model_id").and_then(|c| c.as_string_opt::<i32>()),
            ) else {
                return Err(Error::invalid("predictions lack ts or model_id"));
            };
            if let Some(t) = (b.num_rows() > 0).then(|| DateTime::from_timestamp_micros(ts.value(0))).flatten() {
                models.insert(NyseCalendar.trading_date(t), model.value(0).to_string());
            }
        }
        for p in &stale {
            // A partition the features no longer have rows for was emptied: nothing to re-score with.
            if let Some(model) = models.get(&p.date) {
                by_model.entry(model.clone()).or_default().push(p.date);
            }
        }
    }
    let mut runs = Vec::new();
    for (model, dates) in by_model {
        for (start, end) in inputs::session_runs(&dates) {
            tracing::info!(model, %start, %end, "re-scoring stale predictions");
            // The model that scored these sessions before, in sample or not: a re-score changes no verdict.
            let request = ScoreRequest {
                model: ModelChoice::Id(model.clone()),
                allow_in_sample: true,
                ..ScoreRequest::new(start, end)
            };
            runs.push(score(lake, &request, settings, &crate::progress::NoProgress).await?);
        }
    }
    Ok(StalePredictions { stale, runs })
}

/// Any dataset's health, as `quantlake health` reports it: `predictions` by its own checks
/// ([`predictions_health`]), every other dataset by its contract's rules ([`crate::dq::get_dataset_health`]).
pub async fn dataset_health(
    lake: &Lake,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
    health: &HealthSettings,
    universe: &crate::universe::UniverseSettings,
    predictions: &PredictionQualitySettings,
) -> Result<DatasetHealth> {
    if dataset == PREDICTIONS {
        return predictions_health(lake, as_of_date, health, predictions).await;
    }
    crate::dq::get_dataset_health(lake, dataset, as_of_date, health, universe).await
}

/// `health --dataset predictions`: the last `health.window_sessions` sessions' partitions judged like
/// `score` judges them (present, null rate, shift against the trailing window), and freshness.
pub async fn predictions_health(
    lake: &Lake,
    as_of_date: Option<NaiveDate>,
    health: &HealthSettings,
    settings: &PredictionQualitySettings,
) -> Result<DatasetHealth> {
    let reference = crate::dq::reference_session(as_of_date);
    let window_start = NyseCalendar.add_sessions(reference, 1 - health.window_sessions.max(1) as i64);
    let mut by_day = ByDay::new();
    let snapshot_id = read_stored(
        lake,
        NyseCalendar.add_sessions(window_start, -(settings.shift_window as i64)),
        reference,
        &mut by_day,
    )
    .await?;
    // Sessions before the first scored one are not judged: scoring started there.
    let state = lake.dataset(PREDICTIONS)?.latest().await?;
    let judged_from = crate::dq::first_session(&state).map_or(window_start, |f| f.max(window_start));
    let dates: Vec<NaiveDate> = NyseCalendar.sessions(judged_from, reference).iter().map(|s| s.date).collect();
    let mut partitions: BTreeMap<NaiveDate, PartitionHealth> = BTreeMap::new();
    for q in judge_days(&dates, &by_day, settings, "the session was not scored (`quantlake score --date D`)") {
        let p = partitions.entry(q.date).or_insert_with(|| PartitionHealth {
            partition: PartitionKey::for_date(crate::contract::Partitioning::Date, q.date).to_string(),
            status: Status::Green,
            checks: Vec::new(),
            annotations: Vec::new(),
        });
        p.status = p.status.max(q.status);
        let model = q.model_id.as_deref().map(|m| format!(" (model {m})")).unwrap_or_default();
        p.checks.extend(q.checks.into_iter().map(|mut c| {
            c.detail += &model;
            c
        }));
    }
    // Freshness: the latest scored session on or before the reference.
    let latest = state
        .partitions
        .keys()
        .filter_map(|k| PartitionKey::parse(k).ok())
        .map(|k| k.date_range().1)
        .filter(|d| *d <= reference)
        .max();
    let freshness = match latest {
        None => Check {
            name: "freshness".into(),
            status: Status::Red,
            detail: format!("no predictions on or before {reference}"),
        },
        Some(d) => {
            let lag = NyseCalendar.sessions_between(d, reference);
            let status = if lag > health.max_lag_sessions { Status::Yellow } else { Status::Green };
            Check {
                name: "freshness".into(),
                status,
                detail: format!("latest scored session {d}, {lag} session(s) behind {reference}"),
            }
        }
    };
    let mut partitions: Vec<PartitionHealth> = partitions.into_values().collect();
    // Annotations of `predictions` (an outage, an accepted problem) beside the sessions they touch.
    let (first, last) = span_of_dates(window_start, reference);
    let notes = list_annotations(lake, Some(PREDICTIONS), first, last).await?;
    for p in &mut partitions {
        p.annotations = notes.iter().filter(|a| a.touches_partition(&p.partition)).cloned().collect();
    }
    let status = partitions.iter().map(|p| p.status).chain([freshness.status]).max().unwrap_or(Status::Green);
    let no_new_data = latest.is_none_or(|d| d < NyseCalendar.previous_session(reference));
    let missing = partitions.iter().any(|p| p.checks.iter().any(|c| c.name == "rows" && c.status == Status::Red));
    let severity = match status {
        Status::Green => None,
        Status::Red if no_new_data => Some("SEV-1".to_string()),
        _ if missing => Some("SEV-2".to_string()),
        _ => Some("SEV-3".to_string()),
    };
    Ok(DatasetHealth {
        dataset: PREDICTIONS.into(),
        snapshot_id: snapshot_id.max(state.snapshot_id),
        as_of_date: as_of_date.unwrap_or(reference),
        reference_session: reference,
        latest_session: latest,
        status,
        severity,
        checks: vec![freshness],
        partitions,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::models::design::tests::batch;
    use crate::models::train::{TrainOptions, fit_model, tests::input};

    #[test]
    fn one_prediction_row_per_feature_row() {
        let request = TrainOptions { end: NaiveDate::from_ymd_opt(2024, 1, 31), ..Default::default() }
            .resolve(&Default::default(), Utc::now())
            .unwrap();
        let model = fit_model(&request, &input()).unwrap();
        let contract = crate::contract::Contracts::builtin().get(PREDICTIONS).unwrap();
        let b = batch(&[
            ("A", 1_700_000_000_000_000, Some(0.5), Some(true), Some(2), None),
            ("B", 1_700_000_000_000_000, None, Some(false), Some(1), None),
        ]);
        let p = predict_batch(&contract, &model, &b, 7).unwrap();
        assert_eq!(p.num_rows(), 2);
        let pred = p.column_by_name("prediction").unwrap().as_primitive::<Float64Type>();
        let expected = model.raw_intercept
            + model.features.iter().zip([0.5, 1.0, 2.0]).map(|(f, x)| f.coefficient * x).sum::<f64>();
        assert!((pred.value(0) - expected).abs() < 1e-12, "{} vs {expected}", pred.value(0));
        assert!(pred.is_null(1), "a null feature gives a null prediction");
        assert_eq!(text(&p, "model_id").unwrap().value(1), model.model_id);
        let missing =
            RecordBatch::try_from_iter([("symbol", Arc::new(StringArray::from(vec!["A"])) as ArrayRef)]).unwrap();
        assert!(predict_batch(&contract, &model, &missing, 7).unwrap_err().to_string().contains("do not fit model"));
    }

    #[test]
    fn days_are_judged_against_the_same_models_earlier_days() {
        let settings = PredictionQualitySettings { min_reference_rows: 10, ..Default::default() };
        let d = |n: u32| NaiveDate::from_ymd_opt(2024, 1, n).unwrap();
        let day = |shift: f64| Day { values: (0..50).map(|i| shift + (i as f64 / 49.0 - 0.5)).collect(), nulls: 0 };
        let mut by_day = ByDay::new();
        for n in [2, 3, 4] {
            by_day.entry(d(n)).or_default().insert("m1".into(), day(0.0));
        }
        by_day.entry(d(5)).or_default().insert("m1".into(), day(5.0));
        by_day.entry(d(8)).or_default().insert("m2".into(), day(5.0));
        let q = judge_days(&[d(4), d(5), d(8), d(9)], &by_day, &settings, "not scored");
        assert_eq!(
            q.iter().map(|q| q.status).collect::<Vec<_>>(),
            [Status::Green, Status::Red, Status::Green, Status::Red]
        );
        assert_eq!(q[1].reference_sessions, 3);
        assert_eq!(q[2].reference_sessions, 0, "another model's predictions are no reference");
        assert_eq!(
            (q[3].checks[0].name.as_str(), q[3].checks[0].detail.as_str()),
            ("rows", "no predictions: not scored")
        );
    }

    #[test]
    fn the_window_keeps_each_models_last_sessions() {
        use chrono::Datelike;
        let d = |n: u32| NaiveDate::from_ymd_opt(2024, 1, n).unwrap();
        let mut window = ByDay::new();
        for n in 2..=10 {
            window.entry(d(n)).or_default().insert("a".into(), Day::default());
        }
        for n in 8..=12 {
            window.entry(d(n)).or_default().insert("b".into(), Day::default());
        }
        prune(&mut window, 3);
        let of = |model: &str| -> Vec<u32> {
            window.iter().filter(|(_, m)| m.contains_key(model)).map(|(d, _)| d.day()).collect()
        };
        assert_eq!((of("a"), of("b")), (vec![8, 9, 10], vec![10, 11, 12]));
        assert_eq!(window.len(), 5, "days 2..=7 held nothing any more");
    }
}
