//! Where models live: each model's artifact is one JSON object, `_models/<model_id>/model.json`, put
//! once (put-if-absent) through the lake's store, outside every dataset's folders; the `models`
//! dataset (layer `ops`) is the registry that lists them, one row per model id.
//!
//! A model id is the first 16 hex digits of the SHA-256 of the artifact's content: everything but the
//! id itself and the training set's lineage (its record and id are made afresh by every training-set
//! call, with their own time), whose place in the hash the fingerprint of the rows fitted takes.
//! Training again on the same rows with the same settings gives the same id, finds its artifact
//! already stored (kept as it is, with the first training set's lineage), and replaces only its
//! registry row. Loading checks the content against the id.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{Date32Type, Float64Type, Int64Type, TimestampMicrosecondType};
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::eval::Metrics;
use super::ridge::RidgeFit;
use crate::error::{Error, Result};
use crate::symbol::Symbol;
use crate::table::Lake;

/// The registry dataset.
pub const REGISTRY: &str = "models";
/// Version of the artifact's JSON layout this build writes.
pub const ARTIFACT_FORMAT: u32 = 1;

/// One feature of a linear model: its standardization and weights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureWeight {
    pub name: String,
    /// Mean and population standard deviation on the training rows.
    pub mean: f64,
    pub std: f64,
    /// Weight of the standardized feature.
    pub weight: f64,
    /// Coefficient on the raw feature (weight / std).
    pub coefficient: f64,
    /// Constant on the training rows: weight 0.
    pub constant: bool,
}

/// The settings a model was trained with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HyperParameters {
    pub alpha: f64,
    pub holdout_fraction: f64,
    pub embargo_sessions: usize,
    pub window_years: u32,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    /// Symbols asked for (empty: all).
    pub symbols: Vec<Symbol>,
    /// The training set's snapshot (a lake tag or a time), if pinned.
    pub as_of_snapshot: Option<String>,
    /// Which rows the stored weights were fitted on: `all_rows` (the holdout fit only gives metrics).
    pub final_fit: String,
}

/// A range of sessions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRange {
    pub sessions: usize,
    pub first: Option<NaiveDate>,
    pub last: Option<NaiveDate>,
}

impl SessionRange {
    pub fn of(dates: &[NaiveDate]) -> Self {
        Self { sessions: dates.len(), first: dates.first().copied(), last: dates.last().copied() }
    }
}

/// Row counts of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RowCounts {
    /// Rows in the training set.
    pub read: u64,
    /// Rows with every feature and the target: the final fit's rows.
    pub used: u64,
    pub skipped_null_feature: u64,
    pub skipped_null_target: u64,
    /// Per feature: rows where it was null or not finite.
    pub null_by_feature: std::collections::BTreeMap<String, u64>,
    pub train: u64,
    /// Rows in the embargo sessions between train and holdout (in neither).
    pub embargo: u64,
    pub holdout: u64,
}

/// Metrics of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelMetrics {
    /// The fit on the training part, predicting the holdout (none without a holdout).
    pub holdout: Option<Metrics>,
    /// The same fit on its own rows.
    pub train: Metrics,
    /// The stored fit (all rows) on all rows.
    pub in_sample: Metrics,
}

/// Everything a model is: what scoring needs, and the record of how it was made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelArtifact {
    pub format_version: u32,
    pub model_id: String,
    pub kind: String,
    pub feature_set: String,
    pub feature_set_version: String,
    pub features: Vec<FeatureWeight>,
    /// Prediction = intercept + sum(weight * (x - mean) / std); the intercept is the target's mean.
    pub intercept: f64,
    /// The same on raw features: raw_intercept + sum(coefficient * x).
    pub raw_intercept: f64,
    /// The label asked for, and the one used (they differ after the coverage fallback).
    pub label: String,
    pub target: String,
    pub hyper_parameters: HyperParameters,
    pub train_sessions: SessionRange,
    pub embargo_sessions: SessionRange,
    pub holdout_sessions: SessionRange,
    /// The last session whose prices the fit saw: the window's last session plus the target's horizon
    /// in sessions. Scoring a session on or before it is in sample. Artifacts stored before it was
    /// recorded lack it ([`ModelArtifact::fit_end`] then gives the window's end).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fit_end: Option<NaiveDate>,
    pub rows: RowCounts,
    pub metrics: ModelMetrics,
    /// SHA-256 of the rows fitted (symbol, ts, decision time, features, target, in fit order).
    pub data_fingerprint: String,
    /// The training set's lineage id and record, as they were stored (not part of the model id).
    pub training_set_id: Option<String>,
    pub training_set: serde_json::Value,
    /// quantlake's version.
    pub code_version: String,
}

impl ModelArtifact {
    /// The id this content hashes to.
    pub fn content_id(&self) -> Result<String> {
        let mut content = self.clone();
        content.model_id = String::new();
        content.training_set = serde_json::Value::Null;
        content.training_set_id = None;
        let bytes = serde_json::to_vec(&content)?;
        Ok(hex::encode(Sha256::digest(&bytes))[..16].to_string())
    }

    /// Sets `model_id` from the content.
    pub fn with_id(mut self) -> Result<Self> {
        self.model_id = self.content_id()?;
        Ok(self)
    }

    /// The artifact's bytes (pretty JSON; `f64`s written exactly).
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let mut v = serde_json::to_vec_pretty(self)?;
        v.push(b'\n');
        Ok(v)
    }

    /// The fit scoring applies.
    pub fn ridge(&self) -> RidgeFit {
        RidgeFit {
            means: self.features.iter().map(|f| f.mean).collect(),
            stds: self.features.iter().map(|f| f.std).collect(),
            weights: self.features.iter().map(|f| f.weight).collect(),
            intercept: self.intercept,
            constant_features: self.features.iter().enumerate().filter(|(_, f)| f.constant).map(|(i, _)| i).collect(),
            alpha: self.hyper_parameters.alpha,
            rows: self.rows.used as usize,
        }
    }

    /// The last session the model saw (see the field `fit_end`): sessions after it are out of sample.
    pub fn fit_end(&self) -> NaiveDate {
        self.fit_end.unwrap_or(self.hyper_parameters.window_end)
    }

    pub fn feature_names(&self) -> Vec<String> {
        self.features.iter().map(|f| f.name.clone()).collect()
    }

    /// The object key of a model's artifact.
    pub fn key(model_id: &str) -> String {
        format!("_models/{model_id}/model.json")
    }
}

/// Model ids are 16 lower-case hex digits (they become object keys).
pub fn validate_model_id(id: &str) -> Result<()> {
    if id.len() == 16 && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind: "model id",
            value: id.to_string(),
            reason: "must be 16 lower-case hex digits (see `quantlake models`)",
        })
    }
}

/// Puts the artifact unless its id's object exists. Returns whether it was new.
pub async fn store_artifact(lake: &Lake, artifact: &ModelArtifact) -> Result<bool> {
    validate_model_id(&artifact.model_id)?;
    if artifact.content_id()? != artifact.model_id {
        return Err(Error::invalid(format!("model {} does not hash to its id", artifact.model_id)));
    }
    let key = ModelArtifact::key(&artifact.model_id);
    Ok(lake.store().put_if_absent(&key.as_str().into(), Bytes::from(artifact.to_bytes()?)).await?.is_some())
}

/// Loads a model's artifact, checking that its content hashes to its id.
pub async fn load_artifact(lake: &Lake, model_id: &str) -> Result<ModelArtifact> {
    validate_model_id(model_id)?;
    let key = ModelArtifact::key(model_id);
    let bytes = lake.store().get(&key.as_str().into()).await?.ok_or_else(|| {
        Error::invalid(format!("no model '{model_id}' in the lake (no {key}); see `quantlake models`"))
    })?;
    let artifact: ModelArtifact = serde_json::from_slice(&bytes)
        .map_err(|e| Error::invalid(format!("model artifact {key} is not readable: {e}")))?;
    if artifact.format_version > ARTIFACT_FORMAT {
        return Err(Error::NewerFormat {
            what: format!("model artifact {key}"),
            found: artifact.format_version,
            supported: ARTIFACT_FORMAT,
        });
    }
    if artifact.model_id != model_id || artifact.content_id()? != model_id {
        return Err(Error::Integrity {
            dataset: REGISTRY.into(),
            reason: format!("model artifact {key} does not hash to its id {model_id}: it was altered"),
        });
    }
    Ok(artifact)
}

/// One registry row.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelEntry {
    pub model_id: String,
    pub kind: String,
    pub feature_set: String,
    pub feature_set_version: String,
    pub label: String,
    pub target: String,
    pub alpha: f64,
    pub window_start: NaiveDate,
    pub window_end: NaiveDate,
    pub rows: i64,
    pub holdout_rows: i64,
    pub holdout_r2: Option<f64>,
    pub holdout_mse: Option<f64>,
    pub holdout_ic: Option<f64>,
    pub holdout_rank_ic: Option<f64>,
    pub training_set_id: Option<String>,
    pub artifact: String,
    pub trained_at: DateTime<Utc>,
}

impl ModelEntry {
    pub fn of(a: &ModelArtifact, trained_at: DateTime<Utc>) -> Self {
        let h = a.metrics.holdout.as_ref();
        Self {
            model_id: a.model_id.clone(),
            kind: a.kind.clone(),
            feature_set: a.feature_set.clone(),
            feature_set_version: a.feature_set_version.clone(),
            label: a.label.clone(),
            target: a.target.clone(),
            alpha: a.hyper_parameters.alpha,
            window_start: a.hyper_parameters.window_start,
            window_end: a.hyper_parameters.window_end,
            rows: a.rows.used as i64,
            holdout_rows: a.rows.holdout as i64,
            holdout_r2: h.and_then(|m| m.r2),
            holdout_mse: h.and_then(|m| m.mse),
            holdout_ic: h.and_then(|m| m.ic),
            holdout_rank_ic: h.and_then(|m| m.rank_ic),
            training_set_id: a.training_set_id.clone(),
            artifact: ModelArtifact::key(&a.model_id),
            trained_at,
        }
    }
}

fn epoch_days(d: NaiveDate) -> i32 {
    (d - NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default()).num_days() as i32
}

fn from_epoch_days(n: i32) -> NaiveDate {
    NaiveDate::from_ymd_opt(1970, 1, 1).unwrap_or_default() + chrono::Duration::days(n as i64)
}

/// Registers a model: its row replaces any earlier row of the same id. Returns the registry snapshot.
pub async fn register(lake: &Lake, entry: &ModelEntry) -> Result<u64> {
    let ds = lake.dataset(REGISTRY)?;
    let e = entry;
    let batch = ds.contract().batch_from(|name| {
        let text = |v: &str| -> ArrayRef { Arc::new(StringArray::from(vec![v])) };
        let float = |v: Option<f64>| -> ArrayRef { Arc::new(Float64Array::from(vec![v])) };
        Some(match name {
            "model_id" => text(&e.model_id),
            "kind" => text(&e.kind),
            "feature_set" => text(&e.feature_set),
            "feature_set_version" => text(&e.feature_set_version),
            "label" => text(&e.label),
            "target" => text(&e.target),
            "alpha" => float(Some(e.alpha)),
            "window_start" => Arc::new(Date32Array::from(vec![epoch_days(e.window_start)])),
            "window_end" => Arc::new(Date32Array::from(vec![epoch_days(e.window_end)])),
            "rows" => Arc::new(Int64Array::from(vec![e.rows])),
            "holdout_rows" => Arc::new(Int64Array::from(vec![e.holdout_rows])),
            "holdout_r2" => float(e.holdout_r2),
            "holdout_mse" => float(e.holdout_mse),
            "holdout_ic" => float(e.holdout_ic),
            "holdout_rank_ic" => float(e.holdout_rank_ic),
            "training_set_id" => Arc::new(StringArray::from(vec![e.training_set_id.as_deref()])),
            "artifact" => text(&e.artifact),
            "trained_at" => {
                Arc::new(TimestampMicrosecondArray::from(vec![e.trained_at.timestamp_micros()]).with_timezone("UTC"))
            }
            _ => return None,
        })
    })?;
    let id = e.model_id.clone();
    let same_id = move |b: &RecordBatch| -> Result<BooleanArray> {
        let c = b
            .column_by_name("model_id")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("models has no model_id column"))?;
        Ok(c.iter().map(|v| Some(v == Some(id.as_str()))).collect())
    };
    let done = ds
        .write(vec![batch])
        .removing_where(Arc::new(same_id))
        .operation("train")
        .parameter("model_id", &e.model_id)
        .execute()
        .await?;
    Ok(done.snapshot_id)
}

/// Every registered model, newest first.
pub async fn list(lake: &Lake) -> Result<Vec<ModelEntry>> {
    let ds = lake.dataset(REGISTRY)?;
    let state = ds.latest().await?;
    let mut out = Vec::new();
    for b in ds.read(&state, &Default::default()).await? {
        let bad = |n: &str| Error::SchemaMismatch {
            dataset: REGISTRY.into(),
            detail: format!("column '{n}' is missing or mistyped"),
        };
        let text = |n: &str| b.column_by_name(n).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| bad(n));
        let float =
            |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Float64Type>()).ok_or_else(|| bad(n));
        let int = |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Int64Type>()).ok_or_else(|| bad(n));
        let date = |n: &str| b.column_by_name(n).and_then(|c| c.as_primitive_opt::<Date32Type>()).ok_or_else(|| bad(n));
        let (id, kind, fs, fsv, label, target, tsid, artifact) = (
            text("model_id")?,
            text("kind")?,
            text("feature_set")?,
            text("feature_set_version")?,
            text("label")?,
            text("target")?,
            text("training_set_id")?,
            text("artifact")?,
        );
        let (alpha, r2, mse, ic, ric) = (
            float("alpha")?,
            float("holdout_r2")?,
            float("holdout_mse")?,
            float("holdout_ic")?,
            float("holdout_rank_ic")?,
        );
        let (rows, hrows, start, end) =
            (int("rows")?, int("holdout_rows")?, date("window_start")?, date("window_end")?);
        let trained = b
            .column_by_name("trained_at")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| bad("trained_at"))?;
        let opt = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        for i in 0..b.num_rows() {
            out.push(ModelEntry {
                model_id: id.value(i).into(),
                kind: kind.value(i).into(),
                feature_set: fs.value(i).into(),
                feature_set_version: fsv.value(i).into(),
                label: label.value(i).into(),
                target: target.value(i).into(),
                alpha: alpha.value(i),
                window_start: from_epoch_days(start.value(i)),
                window_end: from_epoch_days(end.value(i)),
                rows: rows.value(i),
                holdout_rows: hrows.value(i),
                holdout_r2: opt(r2, i),
                holdout_mse: opt(mse, i),
                holdout_ic: opt(ic, i),
                holdout_rank_ic: opt(ric, i),
                training_set_id: tsid.is_valid(i).then(|| tsid.value(i).to_string()),
                artifact: artifact.value(i).into(),
                trained_at: DateTime::from_timestamp_micros(trained.value(i)).unwrap_or_default(),
            });
        }
    }
    out.sort_by(|a, b| b.trained_at.cmp(&a.trained_at).then_with(|| a.model_id.cmp(&b.model_id)));
    Ok(out)
}

/// The model `id`, or the latest registered one.
pub async fn resolve(lake: &Lake, id: Option<&str>) -> Result<ModelArtifact> {
    match id {
        Some(id) => load_artifact(lake, id).await,
        None => {
            let latest = list(lake)
                .await?
                .into_iter()
                .next()
                .ok_or_else(|| Error::invalid("no model in the registry; run `quantlake train` first"))?;
            load_artifact(lake, &latest.model_id).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_checked_and_dates_round_trip() {
        assert!(validate_model_id("0123456789abcdef").is_ok());
        for bad in ["../../etc/passwd", "0123456789ABCDEF", "0123", ""] {
            assert!(validate_model_id(bad).is_err(), "{bad}");
        }
        let d = NaiveDate::from_ymd_opt(2024, 2, 29).unwrap();
        assert_eq!(from_epoch_days(epoch_days(d)), d);
    }
}
