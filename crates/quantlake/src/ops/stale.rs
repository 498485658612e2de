//! After a backfill or a restore: every derived partition whose inputs changed is recomputed, in the
//! order the data flows: feature and label sets first ([`crate::features::refresh_stale`]), then the
//! predictions scored from those features ([`crate::models::score::refresh_stale_predictions`]).

use serde::Serialize;

use crate::error::Result;
use crate::features::StaleReport;
use crate::models::PredictionQualitySettings;
use crate::models::score::StalePredictions;
use crate::table::Lake;

/// What `features --stale` found and recomputed, per layer.
#[derive(Debug, Clone, Serialize)]
pub struct RefreshReport {
    pub features: StaleReport,
    pub predictions: StalePredictions,
}

/// Recomputes exactly the stale partitions of `sets`, then re-scores the stale predictions.
pub async fn refresh_stale(lake: &Lake, sets: &[String], quality: &PredictionQualitySettings) -> Result<RefreshReport> {
    let features = crate::features::refresh_stale(lake, sets).await?;
    let predictions = crate::models::score::refresh_stale_predictions(lake, quality).await?;
    Ok(RefreshReport { features, predictions })
}
