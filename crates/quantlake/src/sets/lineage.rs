//! Lineage records: exactly which data, definitions and code produced a training set. Written to the
//! `lineage` dataset (one row per record, the record as JSON beside a few columns to filter on), with
//! the fallback activation, if any, in `target_fallbacks`, as one stage.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{ArrayRef, Date32Array, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::dq::target_coverage::TargetCoverageRow;
use crate::error::Result;
use crate::features::Target;
use crate::symbol::Symbol;
use crate::table::Lake;
use crate::table::operations::write::WriteMode;

/// The lineage dataset.
pub const DATASET: &str = "lineage";
/// Where fallback activations are recorded.
pub const FALLBACKS: &str = "target_fallbacks";

/// A training set's lineage.
#[derive(Debug, Clone, Serialize)]
pub struct Lineage {
    pub id: String,
    pub kind: String,
    pub created_at: DateTime<Utc>,
    pub feature_set: String,
    pub feature_set_version: u32,
    /// The feature set's columns, then the fundamentals items.
    pub feature_columns: Vec<String>,
    pub fundamentals: Vec<String>,
    pub label_set: String,
    pub label_set_version: u32,
    /// The definition of the target used.
    pub label_definition: Option<Target>,
    pub label_requested: String,
    /// The target actually used, after fallback.
    pub target: String,
    pub fallback: Option<Fallback>,
    pub target_coverage: Vec<TargetCoverageRow>,
    /// Empty: every symbol.
    pub symbols: Vec<Symbol>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub as_of_snapshot: Option<String>,
    pub embargo_seconds: i64,
    /// Rows whose label ends after this were purged.
    pub label_cutoff: DateTime<Utc>,
    /// Every dataset read, at its snapshot.
    pub inputs: BTreeMap<String, u64>,
    /// The lake log head the snapshots were read at.
    pub lake_seq: u64,
    pub candidate_rows: u64,
    pub rows_without_target: u64,
    pub rows_purged: u64,
    pub rows_without_features: u64,
    pub rows_excluded_by_annotations: u64,
    /// The universe whose members on each decision date the set holds (`None`: every symbol with data).
    pub universe: Option<String>,
    /// Rows of securities that were no members then.
    pub rows_not_members: u64,
    /// The annotations that marked cells unusable, with the rows each removed.
    pub excluded: Vec<Exclusion>,
    pub rows: u64,
    pub code: CodeVersion,
    pub leakage_check: LeakageCheck,
}

/// Why the target is not the one requested.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Fallback {
    pub coverage: f64,
    pub threshold: f64,
    pub days_back: u32,
}

/// An annotation that removed rows from a set.
#[derive(Debug, Clone, Serialize)]
pub struct Exclusion {
    pub annotation: String,
    pub dataset: String,
    /// None: every symbol.
    pub symbols: Option<Vec<Symbol>>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub rows: u64,
}

impl Exclusion {
    pub fn of(a: &crate::dq::annotations::Annotation, rows: u64) -> Self {
        Self {
            annotation: a.id.clone(),
            dataset: a.dataset.clone(),
            symbols: a.symbols.clone(),
            start: a.start,
            end: a.end,
            reason: a.reason.clone(),
            rows,
        }
    }
}

/// The code that produced a set.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct CodeVersion {
    pub crate_version: String,
    /// The git revision the binary was built from, when built from a checkout.
    pub git_revision: Option<String>,
    /// SHA-256 of the sets' definitions, the kernels, the label and point-in-time SQL.
    pub definitions_sha256: String,
}

impl CodeVersion {
    pub fn of(definition_hashes: &[&str]) -> Self {
        let mut h = Sha256::new();
        for d in definition_hashes {
            h.update(d.as_bytes());
        }
        h.update(include_str!("point_in_time.sql").as_bytes());
        h.update(include_str!("mod.rs").as_bytes());
        Self {
            crate_version: env!("CARGO_PKG_VERSION").into(),
            git_revision: option_env!("QUANTLAKE_GIT_REVISION").map(String::from),
            definitions_sha256: hex::encode(h.finalize()),
        }
    }
}

/// What the leakage check measured (microseconds; a feature lead must be <= 0, a label start gap
/// >= 0, a label end gap > 0).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LeakageCheck {
    pub rows: u64,
    /// max(available_at - decision_time) over the joined rows.
    pub max_feature_lead_us: Option<i64>,
    /// min(first label bar's start - decision_time).
    pub min_label_start_gap_us: Option<i64>,
    /// min(label end - decision_time).
    pub min_label_end_gap_us: Option<i64>,
    /// max(fundamentals filing date - decision date), days: must be < 0 (with fundamentals only).
    pub max_filing_lead_days: Option<i64>,
    pub passed: bool,
}

/// Writes `lineage` and, when the target fell back, its activation, as one stage.
pub async fn record(lake: &Lake, lineage: &Lineage, label_set: &str, coverage_end: NaiveDate) -> Result<()> {
    let ds = lake.dataset(DATASET)?;
    let now = lineage.created_at.timestamp_micros();
    let json = serde_json::to_string(lineage)?;
    let row = ds.contract().batch_from(|name| -> Option<ArrayRef> {
        Some(match name {
            "id" => Arc::new(StringArray::from(vec![lineage.id.as_str()])),
            "kind" => Arc::new(StringArray::from(vec![lineage.kind.as_str()])),
            "created_at" => Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
            "feature_set" => Arc::new(StringArray::from(vec![lineage.feature_set.as_str()])),
            "target" => Arc::new(StringArray::from(vec![lineage.target.as_str()])),
            "rows" => Arc::new(Int64Array::from(vec![lineage.rows as i64])),
            "record" => Arc::new(StringArray::from(vec![json.as_str()])),
            _ => return None,
        })
    })?;
    let fallbacks = lake.dataset(FALLBACKS)?;
    let mut stage = lake
        .stage("training_set")
        .parameter("lineage", &lineage.id)
        .write(ds.write(vec![row]).mode(WriteMode::Append).operation("lineage").parameter("id", &lineage.id));
    if let Some(f) = &lineage.fallback {
        // Days since 1970-01-01 (NaiveDate's default), what date32 holds.
        let date = coverage_end.signed_duration_since(NaiveDate::default()).num_days() as i32;
        let row = fallbacks.contract().batch_from(|name| -> Option<ArrayRef> {
            Some(match name {
                "created_at" => Arc::new(TimestampMicrosecondArray::from(vec![now]).with_timezone("UTC")),
                "date" => Arc::new(Date32Array::from(vec![date])),
                "label_set" => Arc::new(StringArray::from(vec![label_set])),
                "requested" => Arc::new(StringArray::from(vec![lineage.label_requested.as_str()])),
                "chosen" => Arc::new(StringArray::from(vec![lineage.target.as_str()])),
                "coverage" => Arc::new(Float64Array::from(vec![f.coverage])),
                "threshold" => Arc::new(Float64Array::from(vec![f.threshold])),
                "days_back" => Arc::new(Int64Array::from(vec![i64::from(f.days_back)])),
                "training_set" => Arc::new(StringArray::from(vec![Some(lineage.id.as_str())])),
                _ => return None,
            })
        })?;
        stage = stage.write(fallbacks.write(vec![row]).mode(WriteMode::Append).operation("target_fallback"));
    }
    stage.commit().await?;
    Ok(())
}
