//! Symbol breadth of a feature set (the robustness guide's `feature_breadth_check`, `quantlake check
//! breadth`): how many symbols have features in the latest session against
//! `FEATURE_BREADTH_MIN_SYMBOLS` (critical) and `FEATURE_BREADTH_WARN_SYMBOLS` (warning), and the
//! coverage rate within the features (symbol-sessions with rows / expected, below the contract's
//! `min_symbols_covered` warn threshold, 90%, a warning).
//!
//! Both verdicts are the dataset's health ([`get_dataset_health`]'s `breadth` check and its
//! partitions' `symbols_covered` checks, which log the guide's `Symbol count ... below ... threshold`
//! and `Coverage rate ... low`); this module only picks them out and adds the numbers behind them.

use chrono::NaiveDate;
use serde::Serialize;

use crate::dq::{DatasetHealth, HealthSettings, Status, get_dataset_health};
use crate::error::Result;
use crate::table::layout::PartitionKey;
use crate::table::{Lake, SnapshotSpec};
use crate::universe::UniverseSettings;

/// One partition's coverage rate within the features.
#[derive(Debug, Clone, Serialize)]
pub struct PartitionCoverage {
    pub partition: String,
    /// Symbol-sessions with rows / expected symbol-sessions.
    pub rate: Option<f64>,
    pub status: Status,
    pub detail: String,
}

/// The breadth check's report.
#[derive(Debug, Clone, Serialize)]
pub struct BreadthReport {
    pub dataset: String,
    pub snapshot_id: u64,
    pub reference_session: NaiveDate,
    pub latest_session: Option<NaiveDate>,
    /// Symbols with rows in the latest session.
    pub symbols: u64,
    pub breadth_min_symbols: usize,
    pub breadth_warn_symbols: usize,
    pub breadth: Status,
    /// The coverage rate of each partition in the health window, and the worst verdict among them.
    pub coverage: Vec<PartitionCoverage>,
    pub coverage_status: Status,
    /// The worse of `breadth` and `coverage_status`.
    pub status: Status,
}

/// Judges `dataset`'s breadth as of `as_of_date` (default: the last completed session).
pub async fn check_breadth(
    lake: &Lake,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
    health: &HealthSettings,
    breadth: &UniverseSettings,
) -> Result<BreadthReport> {
    let h = get_dataset_health(lake, dataset, as_of_date, health, breadth).await?;
    breadth_of(lake, &h, breadth).await
}

/// The breadth part of a health report already computed.
pub async fn breadth_of(lake: &Lake, h: &DatasetHealth, breadth: &UniverseSettings) -> Result<BreadthReport> {
    let ds = lake.dataset(&h.dataset)?;
    // Snapshot 0 is a dataset never written: no partitions.
    let partitions = if h.snapshot_id == 0 {
        Default::default()
    } else {
        ds.snapshot(&SnapshotSpec::Id(h.snapshot_id)).await?.partitions
    };
    // Health counts the symbols of the partition holding the latest session.
    let symbols = h
        .latest_session
        .and_then(|d| partitions.get(&PartitionKey::for_date(ds.contract().partitioning, d).to_string()))
        .map_or(0, |e| e.symbols);
    let breadth_status = h.checks.iter().find(|c| c.name == "breadth").map_or(Status::Green, |c| c.status);
    let coverage: Vec<PartitionCoverage> = h
        .partitions
        .iter()
        .filter_map(|p| {
            let check = p.checks.iter().find(|c| c.name == "symbols_covered")?;
            let rate =
                partitions.get(&p.partition).and_then(|e| e.quality.as_ref()).map(|q| q.totals.symbols_covered());
            Some(PartitionCoverage {
                partition: p.partition.clone(),
                rate,
                status: check.status,
                detail: check.detail.clone(),
            })
        })
        .collect();
    let coverage_status = coverage.iter().map(|c| c.status).max().unwrap_or(Status::Green);
    let status = breadth_status.max(coverage_status);
    let latest = h.latest_session.map_or("no session".to_string(), |d| d.to_string());
    tracing::info!(dataset = %h.dataset, "Symbol breadth: {symbols} symbols with rows on {latest} (critical below {}, warning below {}): {breadth_status}", breadth.breadth_min_symbols, breadth.breadth_warn_symbols);
    Ok(BreadthReport {
        dataset: h.dataset.clone(),
        snapshot_id: h.snapshot_id,
        reference_session: h.reference_session,
        latest_session: h.latest_session,
        symbols,
        breadth_min_symbols: breadth.breadth_min_symbols,
        breadth_warn_symbols: breadth.breadth_warn_symbols,
        breadth: breadth_status,
        coverage,
        coverage_status,
        status,
    })
}
