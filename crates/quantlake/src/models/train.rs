//! `quantlake train`: a training set -> a ridge model, evaluated on a time-ordered holdout, stored in
//! the lake with its lineage.
//!
//! The window is `window_years` years of sessions ending at `end`. Rows are ordered by decision time;
//! the last `holdout_fraction` of the sessions are the holdout and the `embargo_sessions` sessions
//! before them are left out, so no training row's label window reaches into the holdout. A fit on the
//! training part gives the holdout metrics; the stored model is then refitted on every usable row of
//! the window (train, embargo and holdout), the usual choice for a model that will score the sessions
//! after the window: the holdout metrics estimate how the train-part fit did out of sample, and the
//! final fit uses the most recent data too.

use chrono::{DateTime, Months, NaiveDate, Utc};
use serde::Serialize;
use sha2::{Digest, Sha256};

use super::design::{Design, DesignBuilder};
use super::eval::{Metrics, time_split};
use super::registry::{
    self, FeatureWeight, HyperParameters, ModelArtifact, ModelEntry, ModelMetrics, RowCounts, SessionRange,
};
use super::{ModelSettings, ridge};
use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::sets::UniverseFilter;
use crate::symbol::Symbol;
use crate::table::{AsOf, Lake};

/// `train`'s request, every field optional: [`TrainOptions::resolve`] fills the defaults.
#[derive(Debug, Clone, Default)]
pub struct TrainOptions {
    pub feature_set: Option<String>,
    pub label: Option<String>,
    pub symbols: Vec<Symbol>,
    /// Only these of the feature set's columns (empty: all).
    pub features: Vec<String>,
    pub end: Option<NaiveDate>,
    pub window_years: Option<u32>,
    pub alpha: Option<f64>,
    pub holdout_fraction: Option<f64>,
    pub embargo_sessions: Option<usize>,
    /// The lake state the training set is read at (default: the latest).
    pub as_of: AsOf,
    /// Whose rows the training set holds (default: the default universe's members on each date).
    pub universe: UniverseFilter,
}

/// A resolved training request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TrainRequest {
    pub feature_set: String,
    pub label: String,
    pub symbols: Vec<Symbol>,
    /// Only these of the feature set's columns (empty: all).
    pub features: Vec<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub window_years: u32,
    pub alpha: f64,
    pub holdout_fraction: f64,
    pub embargo_sessions: usize,
    pub as_of: AsOf,
    pub universe: UniverseFilter,
}

impl TrainOptions {
    /// Defaults from `settings`; `end` defaults to the last session completed at `now`. The window
    /// starts the day after `end` minus `window_years` years.
    pub fn resolve(&self, settings: &ModelSettings, now: DateTime<Utc>) -> Result<TrainRequest> {
        let end = self.end.unwrap_or_else(|| NyseCalendar.last_completed_session(now));
        let years = self.window_years.unwrap_or(settings.window_years);
        if years == 0 || years > 50 {
            return Err(Error::invalid(format!("--window-years must be 1 to 50, got {years}")));
        }
        let start = end
            .checked_sub_months(Months::new(12 * years))
            .and_then(|d| d.succ_opt())
            .ok_or_else(|| Error::invalid(format!("{years} year(s) before {end} is out of range")))?;
        let alpha = self.alpha.unwrap_or(settings.alpha);
        if !(alpha.is_finite() && alpha >= 0.0) {
            return Err(Error::invalid(format!("--alpha must be a finite number >= 0, got {alpha}")));
        }
        let holdout_fraction = self.holdout_fraction.unwrap_or(settings.holdout_fraction);
        if !(0.0..1.0).contains(&holdout_fraction) {
            return Err(Error::invalid(format!("--holdout-fraction must be in [0, 1), got {holdout_fraction}")));
        }
        Ok(TrainRequest {
            feature_set: self.feature_set.clone().unwrap_or_else(|| settings.feature_set.clone()),
            label: self.label.clone().unwrap_or_else(|| settings.label.clone()),
            symbols: self.symbols.clone(),
            features: self.features.clone(),
            start,
            end,
            window_years: years,
            alpha,
            holdout_fraction,
            embargo_sessions: self.embargo_sessions.unwrap_or(settings.embargo_sessions),
            as_of: self.as_of.clone(),
            universe: self.universe.clone(),
        })
    }
}

/// A training set as the model sees it (what `sets::get_features_for_training` returns).
#[derive(Debug, Clone)]
pub struct TrainingInput {
    pub batches: Vec<arrow::array::RecordBatch>,
    pub feature_columns: Vec<String>,
    /// The label actually used, after fallback; the batches' `target` column holds it.
    pub target: String,
    pub feature_set_version: String,
    /// Sessions past a row's own that its target reads ([`crate::features::LabelSet::sessions_ahead`]).
    pub target_sessions_ahead: u32,
    pub lineage_id: Option<String>,
    pub lineage: serde_json::Value,
}

/// What `train` did.
#[derive(Debug, Clone, Serialize)]
pub struct TrainReport {
    pub model_id: String,
    /// False when an identical model was already stored (the same rows and settings).
    pub new_artifact: bool,
    pub artifact: String,
    pub registry_snapshot: u64,
    pub feature_set: String,
    pub feature_set_version: String,
    pub label: String,
    pub target: String,
    pub fallback: bool,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub alpha: f64,
    pub train_sessions: SessionRange,
    pub embargo_sessions: SessionRange,
    pub holdout_sessions: SessionRange,
    /// The last session the model saw: `score` treats it and earlier ones as in sample.
    pub fit_end: NaiveDate,
    pub rows: RowCounts,
    pub metrics: ModelMetrics,
    pub features: Vec<FeatureWeight>,
    pub intercept: f64,
    pub training_set_id: Option<String>,
    pub trained_at: DateTime<Utc>,
}

/// Fits the model on a training set: holdout metrics from the train-part fit, weights from the fit on
/// every usable row. Pure: the same input gives a bit-identical artifact.
pub fn fit_model(request: &TrainRequest, input: &TrainingInput) -> Result<ModelArtifact> {
    let columns = design_columns(request, &input.feature_columns)?;
    let design = Design::training(&input.batches, &columns, "target")?;
    let about = SetFacts {
        target: &input.target,
        feature_set_version: &input.feature_set_version,
        target_sessions_ahead: input.target_sessions_ahead,
        lineage_id: input.lineage_id.as_deref(),
        lineage: &input.lineage,
    };
    fit_design(request, &design, &about)
}

/// The feature columns the model uses: `request.features`, or all of the set's.
fn design_columns(request: &TrainRequest, feature_columns: &[String]) -> Result<Vec<String>> {
    if feature_columns.is_empty() {
        return Err(Error::invalid(format!("training set of '{}' has no feature columns", request.feature_set)));
    }
    if let Some(f) = request.features.iter().find(|f| !feature_columns.contains(f)) {
        return Err(Error::invalid(format!(
            "'{f}' is not a feature of {} (its features: {})",
            request.feature_set,
            feature_columns.join(", ")
        )));
    }
    Ok(if request.features.is_empty() { feature_columns.to_vec() } else { request.features.clone() })
}

/// What an artifact records of its training set besides the rows.
struct SetFacts<'a> {
    /// The label actually used, after fallback.
    target: &'a str,
    feature_set_version: &'a str,
    target_sessions_ahead: u32,
    lineage_id: Option<&'a str>,
    lineage: &'a serde_json::Value,
}

/// [`fit_model`] on a design already built.
fn fit_design(request: &TrainRequest, design: &Design, about: &SetFacts<'_>) -> Result<ModelArtifact> {
    if design.rows() < 2 {
        let nulls: Vec<String> = design.skipped.by_feature.iter().map(|(f, n)| format!("{f} {n}")).collect();
        return Err(Error::invalid(format!(
            "training set {}..{} has {} usable row(s) of {} ({} with a null feature [null per feature: {}], {} with a null target '{}'); need at least 2 (--features can leave a feature out)",
            request.start,
            request.end,
            design.rows(),
            design.rows_read,
            design.skipped.null_feature,
            if nulls.is_empty() { "none".into() } else { nulls.join(", ") },
            design.skipped.null_target,
            about.target
        )));
    }
    let split = time_split(&design.decision_time, request.holdout_fraction, request.embargo_sessions)?;
    let p = design.p();
    let train = design.subset(&split.train_rows);
    let train_fit = ridge::fit(&train.x, &train.y, p, request.alpha)?;
    let train_metrics = Metrics::of(&train_fit.predict(&train.x), &train.y);
    let holdout_metrics = if split.holdout_rows.is_empty() {
        None
    } else {
        let holdout = design.subset(&split.holdout_rows);
        Some(Metrics::of(&train_fit.predict(&holdout.x), &holdout.y))
    };
    let fit = ridge::fit(&design.x, &design.y, p, request.alpha)?;
    let in_sample = Metrics::of(&fit.predict(&design.x), &design.y);
    let (raw_intercept, raw) = fit.raw_coefficients();
    let features = (0..p)
        .map(|j| FeatureWeight {
            name: design.features[j].clone(),
            mean: fit.means[j],
            std: fit.stds[j],
            weight: fit.weights[j],
            coefficient: raw[j],
            constant: fit.constant_features.contains(&j),
        })
        .collect();
    ModelArtifact {
        format_version: registry::ARTIFACT_FORMAT,
        model_id: String::new(),
        kind: "ridge".into(),
        feature_set: request.feature_set.clone(),
        feature_set_version: about.feature_set_version.to_string(),
        features,
        intercept: fit.intercept,
        raw_intercept,
        label: request.label.clone(),
        target: about.target.to_string(),
        hyper_parameters: HyperParameters {
            alpha: request.alpha,
            holdout_fraction: request.holdout_fraction,
            embargo_sessions: request.embargo_sessions,
            window_years: request.window_years,
            window_start: request.start,
            window_end: request.end,
            symbols: request.symbols.clone(),
            as_of_snapshot: request.as_of.label(),
            final_fit: "all_rows".into(),
        },
        train_sessions: SessionRange::of(&split.train_sessions),
        embargo_sessions: SessionRange::of(&split.embargo_sessions),
        holdout_sessions: SessionRange::of(&split.holdout_sessions),
        fit_end: Some(fit_end(request.end, about.target_sessions_ahead)),
        rows: RowCounts {
            read: design.rows_read,
            used: design.rows() as u64,
            skipped_null_feature: design.skipped.null_feature,
            skipped_null_target: design.skipped.null_target,
            null_by_feature: design.skipped.by_feature.clone(),
            train: split.train_rows.len() as u64,
            embargo: split.embargo_rows,
            holdout: split.holdout_rows.len() as u64,
        },
        metrics: ModelMetrics { holdout: holdout_metrics, train: train_metrics, in_sample },
        data_fingerprint: fingerprint(design),
        training_set_id: about.lineage_id.map(str::to_string),
        training_set: about.lineage.clone(),
        code_version: env!("CARGO_PKG_VERSION").into(),
    }
    .with_id()
}

/// The last session a fit on the window ending `end` saw: its last session, plus the sessions its
/// target reads ahead.
fn fit_end(end: NaiveDate, target_sessions_ahead: u32) -> NaiveDate {
    let last = if NyseCalendar.is_session(end) { end } else { NyseCalendar.previous_session(end) };
    NyseCalendar.add_sessions(last, i64::from(target_sessions_ahead))
}

/// SHA-256 of the fitted rows, in fit order.
fn fingerprint(d: &Design) -> String {
    let mut h = Sha256::new();
    for f in &d.features {
        h.update(f.as_bytes());
        h.update([0]);
    }
    for i in 0..d.rows() {
        h.update(d.symbol_names[d.symbol[i] as usize].as_bytes());
        h.update([0]);
        h.update(d.ts[i].to_le_bytes());
        h.update(d.decision_time[i].to_le_bytes());
        for v in d.row(i) {
            h.update(v.to_bits().to_le_bytes());
        }
        h.update(d.y[i].to_bits().to_le_bytes());
    }
    hex::encode(h.finalize())
}

/// `quantlake train`: streams the training set ([`crate::sets::training_set`], which applies the
/// target fallback by `fallback` and stores the set's lineage) into the design matrix session by
/// session, so only the usable rows' values are held, never the set's Arrow batches; then fits,
/// stores and registers the model as [`train_on`] does. `progress` counts the set's sessions.
pub async fn train(
    lake: &Lake,
    request: &TrainRequest,
    fallback: crate::sets::FallbackSettings,
    progress: &dyn crate::progress::Progress,
) -> Result<TrainReport> {
    let set_request = crate::sets::TrainingRequest {
        feature_set: request.feature_set.clone(),
        label: request.label.clone(),
        symbols: request.symbols.clone(),
        start: request.start,
        end: request.end,
        as_of: request.as_of.clone(),
        embargo: None,
        fallback,
        fundamentals: Vec::new(),
        universe: request.universe.clone(),
    };
    // The set's columns (a training set without fundamentals has exactly its feature set's).
    let feature_columns = crate::sets::feature_set(lake, &request.feature_set)?.columns();
    let mut builder = DesignBuilder::new(&design_columns(request, &feature_columns)?, "target");
    let set = crate::sets::training_set(lake, &set_request, progress, &mut |b| builder.add(&b)).await?;
    let design = builder.finish();
    let lineage = serde_json::to_value(&set.lineage)?;
    let feature_set_version = super::feature_set_version(lake, &request.feature_set)?;
    let (labels, target) = crate::sets::label_set_of(lake, &set.target)?;
    let about = SetFacts {
        target: &set.target,
        feature_set_version: &feature_set_version,
        target_sessions_ahead: labels.sessions_ahead(&target),
        lineage_id: Some(&set.lineage.id),
        lineage: &lineage,
    };
    let artifact = fit_design(request, &design, &about)?;
    drop(design);
    register(lake, request, artifact).await
}

/// Fits a model on `input`, stores its artifact (once per id) and registers it.
pub async fn train_on(lake: &Lake, request: &TrainRequest, input: &TrainingInput) -> Result<TrainReport> {
    register(lake, request, fit_model(request, input)?).await
}

/// Stores `artifact` (once per id), registers it and reports it.
async fn register(lake: &Lake, request: &TrainRequest, artifact: ModelArtifact) -> Result<TrainReport> {
    if artifact.target != request.label {
        tracing::warn!(label = %request.label, target = %artifact.target, "training on the fallback target {} instead of {}", artifact.target, request.label);
    }
    let new_artifact = registry::store_artifact(lake, &artifact).await?;
    // The same model trained before: the stored artifact (with its first lineage) is the model.
    let artifact = if new_artifact { artifact } else { registry::load_artifact(lake, &artifact.model_id).await? };
    let trained_at = Utc::now();
    let registry_snapshot = registry::register(lake, &ModelEntry::of(&artifact, trained_at)).await?;
    let a = artifact;
    Ok(TrainReport {
        fit_end: a.fit_end(),
        new_artifact,
        artifact: ModelArtifact::key(&a.model_id),
        registry_snapshot,
        fallback: a.target != a.label,
        start: request.start,
        end: request.end,
        alpha: request.alpha,
        train_sessions: a.train_sessions,
        embargo_sessions: a.embargo_sessions,
        holdout_sessions: a.holdout_sessions,
        rows: a.rows,
        metrics: a.metrics,
        intercept: a.intercept,
        training_set_id: a.training_set_id,
        trained_at,
        model_id: a.model_id,
        feature_set: a.feature_set,
        feature_set_version: a.feature_set_version,
        label: a.label,
        target: a.target,
        features: a.features,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::models::design::tests::batch;

    fn request() -> TrainRequest {
        TrainOptions { end: NaiveDate::from_ymd_opt(2024, 1, 31), ..Default::default() }
            .resolve(&ModelSettings::default(), Utc::now())
            .unwrap()
    }

    /// Rows over the sessions of January 2024, target = 0.5 f1 - 0.2 n + noise.
    pub(crate) fn input() -> TrainingInput {
        let sessions = NyseCalendar
            .sessions(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(), NaiveDate::from_ymd_opt(2024, 1, 31).unwrap());
        let mut rows = Vec::new();
        let symbols = ["AAA", "BBB", "CCC"];
        let mut k = 0u64;
        for s in &sessions {
            for m in 0..20 {
                for sym in symbols {
                    k += 1;
                    let f1 = ((k * 7919) % 101) as f64 / 50.0 - 1.0;
                    let n = ((k * 31) % 7) as i32;
                    let noise = ((k * 104729) % 13) as f64 / 130.0 - 0.05;
                    let target = if k.is_multiple_of(17) { None } else { Some(0.5 * f1 - 0.2 * n as f64 + noise) };
                    rows.push((
                        sym,
                        s.open.timestamp_micros() + m * 60_000_000,
                        Some(f1),
                        Some(k.is_multiple_of(3)),
                        Some(n),
                        target,
                    ));
                }
            }
        }
        TrainingInput {
            batches: rows.chunks(500).map(batch).collect(),
            feature_columns: vec!["f1".into(), "flag".into(), "n".into()],
            target: "fwd_ret_15m".into(),
            feature_set_version: "1".into(),
            target_sessions_ahead: 0,
            lineage_id: Some("lineage-1".into()),
            lineage: serde_json::json!({ "id": "lineage-1", "created_at": "now" }),
        }
    }

    #[test]
    fn training_twice_gives_the_same_id_and_bytes() {
        let (req, inp) = (request(), input());
        let a = fit_model(&req, &inp).unwrap();
        let b = fit_model(&req, &inp).unwrap();
        assert_eq!(a.model_id, b.model_id);
        assert_eq!(a.to_bytes().unwrap(), b.to_bytes().unwrap());
        // Batches cut differently: the same rows, the same model.
        let mut recut = inp.clone();
        recut.batches = vec![arrow::compute::concat_batches(&inp.batches[0].schema(), &inp.batches).unwrap()];
        recut.lineage = serde_json::json!({ "id": "lineage-2", "created_at": "later" });
        recut.lineage_id = Some("lineage-2".into());
        assert_eq!(
            fit_model(&req, &recut).unwrap().model_id,
            a.model_id,
            "a new training set of the same rows is the same model"
        );
        // Different settings: a different model.
        let other = TrainRequest { alpha: req.alpha * 2.0, ..req.clone() };
        assert_ne!(fit_model(&other, &inp).unwrap().model_id, a.model_id);
    }

    #[test]
    fn the_fit_end_is_the_windows_last_session_plus_the_targets_horizon() {
        let d = |m: u32, n: u32| NaiveDate::from_ymd_opt(2024, m, n).unwrap();
        assert_eq!(fit_end(d(1, 31), 0), d(1, 31));
        assert_eq!(fit_end(d(2, 17), 0), d(2, 16), "a Saturday: the Friday before");
        assert_eq!(fit_end(d(2, 16), 1), d(2, 20), "the next session after Presidents' Day");
        assert_eq!(fit_model(&request(), &input()).unwrap().fit_end, Some(d(1, 31)));
    }

    #[test]
    fn the_model_learns_and_reports_its_rows() {
        let a = fit_model(&request(), &input()).unwrap();
        let sessions = 21;
        assert_eq!(a.train_sessions.sessions + a.embargo_sessions.sessions + a.holdout_sessions.sessions, sessions);
        assert_eq!(a.holdout_sessions.sessions, 5, "20% of 21 sessions, rounded up");
        assert_eq!(a.embargo_sessions.sessions, 1);
        assert!(a.train_sessions.last < a.embargo_sessions.first && a.embargo_sessions.last < a.holdout_sessions.first);
        assert_eq!(a.rows.read, sessions as u64 * 60);
        assert_eq!(a.rows.used + a.rows.skipped_null_target, a.rows.read);
        assert_eq!(a.rows.train + a.rows.embargo + a.rows.holdout, a.rows.used);
        let h = a.metrics.holdout.as_ref().unwrap();
        assert!(h.r2.unwrap() > 0.9 && h.ic.unwrap() > 0.9, "{h:?}");
        let f1 = a.features.iter().find(|f| f.name == "f1").unwrap();
        assert!((f1.coefficient - 0.5).abs() < 0.05, "{f1:?}");
        assert!(
            (a.ridge().predict_row(&[0.0, 0.0, 0.0]) - a.raw_intercept).abs() < 1e-12,
            "raw and standardized forms agree at 0"
        );
    }

    #[test]
    fn defaults_and_bad_requests() {
        let r = request();
        assert_eq!(
            (r.start, r.end),
            (NaiveDate::from_ymd_opt(2023, 2, 1).unwrap(), NaiveDate::from_ymd_opt(2024, 1, 31).unwrap())
        );
        assert_eq!(r.feature_set, "features_price_1m_v1");
        let bad = |o: TrainOptions| o.resolve(&ModelSettings::default(), Utc::now()).unwrap_err().to_string();
        assert!(bad(TrainOptions { alpha: Some(-1.0), ..Default::default() }).contains("--alpha"));
        assert!(bad(TrainOptions { holdout_fraction: Some(1.0), ..Default::default() }).contains("--holdout-fraction"));
        assert!(bad(TrainOptions { window_years: Some(0), ..Default::default() }).contains("--window-years"));
        // A subset of the features: the model has just those; an unknown one is named.
        let subset = TrainRequest { features: vec!["f1".into()], ..r.clone() };
        let a = fit_model(&subset, &input()).unwrap();
        assert_eq!(a.feature_names(), ["f1"]);
        let unknown = TrainRequest { features: vec!["nope".into()], ..r };
        assert!(fit_model(&unknown, &input()).unwrap_err().to_string().contains("'nope' is not a feature"));
    }
}
