//! Lake-wide maintenance over the engine's per-dataset operations ([`crate::table::operations`]):
//! which datasets a command means, and `verify`, `recover` and `vacuum` over them. The rules:
//! - no dataset named means every dataset that has a contract ([`datasets`]);
//! - `verify` first finishes interrupted commits (as opening a dataset for writing does), then checks
//!   the result, reporting a stage left undecided rather than deciding it; with no dataset named it
//!   skips the datasets never written (nothing to check);
//! - `recover` also decides undecided stages: it waits for a stage in progress, and undoes one whose
//!   process is gone or whose lease expired;
//! - `vacuum` keeps what `retention` asks, `lake.history_retention` when no retention is given;
//! - `compact` skips the datasets never written; [`regroup_layouts`] is the part of it the daily run
//!   does first, so that a lake written by an older quantlake keeps working after an upgrade;
//! - `export delta` builds or catches up the Delta log of the datasets written ([`export_delta`]).

use std::time::Duration;

use chrono::NaiveDate;
use serde::Serialize;

use crate::error::Result;
use crate::outcome::Outcome;
use crate::table::delta::{self, DeltaReport};
use crate::table::layout;
use crate::table::manifest::PartitionEntry;
use crate::table::operations::compact::{self, CompactReport};
use crate::table::operations::vacuum::{self, VacuumReport};
use crate::table::operations::verify::{self, VerifyReport};
use crate::table::{Dataset, Lake, RecoveryReport};

/// The datasets `names` names, or every dataset that has a contract when it names none.
pub fn datasets(lake: &Lake, names: &[String]) -> Result<Vec<Dataset>> {
    if names.is_empty() { Ok(lake.all_datasets()) } else { names.iter().map(|n| lake.dataset(n)).collect() }
}

/// What `verify` found, per dataset checked.
#[derive(Debug, Clone, Serialize)]
#[serde(transparent)]
pub struct LakeVerifyReport {
    pub datasets: Vec<VerifyReport>,
}

impl LakeVerifyReport {
    /// `Critical` when any file is missing, damaged or stray, `Ok` otherwise.
    pub fn outcome(&self) -> Outcome {
        Outcome::critical_if(self.datasets.iter().any(|r| !r.is_clean()))
    }
}

/// Verifies the files of `names` (see the module docs for which datasets); `history` also checks
/// every retained older snapshot's files.
pub async fn verify(lake: &Lake, names: &[String], history: bool) -> Result<LakeVerifyReport> {
    verify_sessions(lake, names, history, None).await
}

/// [`verify`] of the partitions holding rows of the sessions `first..=last` (all when `None`).
pub async fn verify_sessions(
    lake: &Lake,
    names: &[String],
    history: bool,
    sessions: Option<(NaiveDate, NaiveDate)>,
) -> Result<LakeVerifyReport> {
    let keep = |e: &PartitionEntry| sessions.is_none_or(|(first, last)| e.overlaps_sessions(first, last));
    let mut reports = Vec::new();
    for ds in datasets(lake, names)? {
        // Finishing an interrupted commit is part of opening a dataset; verify then checks the result.
        // A stage left undecided is reported (`unfinished_stage`), not decided: that is `recover`'s job.
        let recovered = ds.finish_commits().await?;
        if names.is_empty() && recovered.snapshot_id == 0 {
            continue; // never written: nothing to check
        }
        reports.push(verify::verify_where(&ds, history, &keep).await?);
    }
    Ok(LakeVerifyReport { datasets: reports })
}

/// Finishes interrupted commits of `names`; `full` checks every partition and removes stray live files.
pub async fn recover(lake: &Lake, names: &[String], full: bool) -> Result<Vec<RecoveryReport>> {
    let mut reports = Vec::new();
    for ds in datasets(lake, names)? {
        reports.push(ds.recover(full).await?);
    }
    Ok(reports)
}

/// A retention such as `7d`, `12h` or `0s`; `None` is `default` (the config's
/// `lake.history_retention`).
pub fn retention(spec: Option<&str>, default: Duration) -> Result<Duration> {
    spec.map_or(Ok(default), |r| crate::duration::parse("--retention", r))
}

/// Deletes what no snapshot within `retention` needs, in `names` (`dry_run`: only reports it).
pub async fn vacuum(lake: &Lake, names: &[String], retention: Duration, dry_run: bool) -> Result<Vec<VacuumReport>> {
    let mut reports = Vec::new();
    for ds in datasets(lake, names)? {
        reports.push(vacuum::vacuum(&ds, retention, dry_run).await?);
    }
    Ok(reports)
}

/// Compacts `names` (see [`compact`]): regroups datasets stored in another partitioning than their
/// contract's, rewrites files not written as the contract writes them now, checkpoints the manifest.
pub async fn compact(lake: &Lake, names: &[String], dry_run: bool) -> Result<Vec<CompactReport>> {
    compact_with_progress(lake, names, dry_run, &crate::progress::NoProgress).await
}

/// [`compact`], reporting each dataset it looked at to `progress`.
pub async fn compact_with_progress(
    lake: &Lake,
    names: &[String],
    dry_run: bool,
    progress: &dyn crate::progress::Progress,
) -> Result<Vec<CompactReport>> {
    let datasets = datasets(lake, names)?;
    progress.set_length(datasets.len() as u64);
    let mut reports = Vec::new();
    for ds in datasets {
        progress.message(ds.name());
        if !(names.is_empty() && ds.latest().await?.snapshot_id == 0) {
            // (A dataset never written has nothing to compact.)
            reports.push(compact::compact(&ds, dry_run).await?);
        }
        progress.inc(1);
    }
    Ok(reports)
}

/// Regroups every dataset whose partitions are not in its contract's partitioning (an older
/// quantlake kept per-session records in `date=` folders); the others are not touched.
pub async fn regroup_layouts(lake: &Lake) -> Result<Vec<CompactReport>> {
    let mut reports = Vec::new();
    for ds in lake.all_datasets() {
        let found = layout::layout_of(ds.latest().await?.partitions.keys());
        if found.is_some_and(|l| l != ds.contract().partitioning) {
            reports.push(compact::compact(&ds, false).await?);
        }
    }
    Ok(reports)
}

/// Builds or catches up the Delta log of `names` (with none named, of every dataset written), one
/// dataset after another, reporting each to `progress`.
pub async fn export_delta(
    lake: &Lake,
    names: &[String],
    progress: &dyn crate::progress::Progress,
) -> Result<Vec<DeltaReport>> {
    let datasets = datasets(lake, names)?;
    progress.set_length(datasets.len() as u64);
    let mut reports = Vec::new();
    for ds in datasets {
        progress.message(ds.name());
        let report = delta::export(&ds).await?;
        if !(names.is_empty() && report.version.is_none()) {
            reports.push(report);
        }
        progress.inc(1);
    }
    Ok(reports)
}

/// A dataset's Delta table, as `delta-path` lists it.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaTable {
    pub dataset: String,
    pub table: String,
    /// The latest snapshot: the version a reader of the table's latest state sees.
    pub version: u64,
}

/// The Delta table of `names` (with none named, of every dataset written).
pub async fn delta_tables(lake: &Lake, names: &[String]) -> Result<Vec<DeltaTable>> {
    let mut out = Vec::new();
    for ds in datasets(lake, names)? {
        let version = ds.latest().await?.snapshot_id;
        if names.is_empty() && version == 0 {
            continue;
        }
        out.push(DeltaTable { dataset: ds.name().to_string(), table: delta::table_url(&ds), version });
    }
    Ok(out)
}
