//! Models: a baseline ridge regression trained on a point-in-time training set, stored in the lake
//! with its lineage, and batch scoring into the `predictions` dataset with data quality on what it
//! wrote.
//!
//! - [`ridge`]: the fit (standardized features, unpenalized intercept, Cholesky solve; deterministic).
//! - [`design`]: a set's batches as a design matrix (booleans 0/1, rows with nulls skipped and counted,
//!   a fixed row order).
//! - [`eval`]: the time-ordered holdout split with an embargo, and R², MSE, IC and rank IC.
//! - [`registry`]: the artifact (`_models/<id>/model.json`, id = hash of the content) and the `models`
//!   registry dataset.
//! - [`train`]: `quantlake train`; [`score`]: `quantlake score` and `health --dataset predictions`;
//!   [`drift`]: the prediction checks (null rate, PSI, mean shift).
//!
//! ```no_run
//! # async fn demo(lake: quantlake::table::Lake) -> quantlake::Result<()> {
//! use chrono::NaiveDate;
//! use quantlake::dq::HealthSettings;
//! use quantlake::models::{ModelSettings, ScoreRequest, TrainOptions, score, train};
//! use quantlake::progress::NoProgress;
//! use quantlake::sets::FallbackSettings;
//!
//! let end = NaiveDate::from_ymd_opt(2024, 2, 15).unwrap();
//! let request = TrainOptions { end: Some(end), ..Default::default() }.resolve(&ModelSettings::default(), chrono::Utc::now())?;
//! let fallback = FallbackSettings::from(&HealthSettings::default());
//! let trained = train::train(&lake, &request, fallback, &NoProgress).await?;
//! println!("model {}", trained.model_id);
//! let next = NaiveDate::from_ymd_opt(2024, 2, 16).unwrap();
//! // The next session: the model saw the sessions through its fit end, and `score` refuses those.
//! assert!(trained.fit_end < next);
//! let scored = score::score(&lake, &ScoreRequest::new(next, next), &ModelSettings::default().quality, &NoProgress).await?;
//! println!("{} predictions in snapshot {}", scored.rows, scored.snapshot_id);
//! # Ok(()) }
//! ```

pub mod design;
pub mod drift;
pub mod eval;
pub mod registry;
pub mod ridge;
pub mod score;
pub mod train;

use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::table::Lake;

pub use drift::PredictionQualitySettings;
pub use registry::{ModelArtifact, ModelEntry, list as list_models};
pub use score::{ModelChoice, PREDICTIONS, ScoreReport, ScoreRequest, dataset_health, predictions_health};
pub use train::{TrainOptions, TrainReport, TrainRequest};

/// `[models]` settings: `train`'s defaults and the prediction checks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelSettings {
    /// Feature set and label trained on when `train` is not told.
    pub feature_set: String,
    pub label: String,
    /// Years of sessions in the training window, ending at `--end`.
    pub window_years: u32,
    /// Ridge penalty on the standardized weights (per row: 1.0 weighs like one unit of feature variance).
    pub alpha: f64,
    /// Share of the window's sessions (the last ones) held out for the metrics.
    pub holdout_fraction: f64,
    /// Sessions left out between the training part and the holdout (covers labels up to that horizon).
    pub embargo_sessions: usize,
    /// Data quality of predictions.
    pub quality: PredictionQualitySettings,
}

impl Default for ModelSettings {
    fn default() -> Self {
        Self {
            feature_set: "features_price_1m_v1".into(),
            label: "fwd_ret_resid_15m".into(),
            window_years: 1,
            alpha: 0.01,
            holdout_fraction: 0.2,
            embargo_sessions: 1,
            quality: PredictionQualitySettings::default(),
        }
    }
}

/// A feature set's version (its definition's `version`), as models and predictions record it.
pub fn feature_set_version(lake: &Lake, feature_set: &str) -> Result<String> {
    Ok(crate::sets::feature_set(lake, feature_set)?.version.to_string())
}
