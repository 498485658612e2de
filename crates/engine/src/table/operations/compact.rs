//! Compaction: a dataset's files as its contract writes them now, in one commit.
//!
//! - **Regroup.** A dataset whose partitions are not in its contract's partitioning (per-session
//!   records kept in `date=` folders by an older quantlake, now `month=`) is regrouped: every target
//!   partition is encoded once from the source partitions overlapping it, and the sources are removed,
//!   in the same commit. The live tree never holds both layouts: the commit removes the old live files
//!   before it links the new ones, so a glob reader sees either layout (or, for a moment, fewer rows),
//!   never both, and DuckDB's hive detection never meets mixed folder keys.
//! - **Rewrite.** Files whose row groups are not cut as the contract cuts them now (`row_group_rows`
//!   changed) or that were written with an older schema version are re-encoded in place.
//! - **Checkpoint.** The partition table at the latest snapshot is written under `checkpoints/`, so
//!   readers of that snapshot never replay the log.
//!
//! Rows never change: a compaction commit's partitions hold exactly the rows they held before, and
//! every earlier snapshot stays readable (its files are untouched until vacuum).
//!
//! ```no_run
//! # async fn demo(lake: quantlake_engine::table::Lake) -> quantlake_engine::Result<()> {
//! let dq = lake.dataset("dq_metrics")?;
//! let report = quantlake_engine::table::operations::compact::compact(&dq, false).await?;
//! println!("{} partitions -> {}", report.partitions_before, report.partitions_after);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use parquet::errors::ParquetError;
use parquet::file::metadata::ParquetMetaDataReader;
use serde::Serialize;

use crate::error::Result;
use crate::table::Dataset;
use crate::table::layout::{self, Partitioning};
use crate::table::manifest::{PartitionEntry, TableState};
use crate::table::operations::write::{PreparedWrite, layout_name};
use crate::table::transaction;

/// Bytes read from a file's end to find its footer (small files: most footers fit).
const TAIL: u64 = 64 * 1024;

/// What a compaction found and did.
#[derive(Debug, Clone, Serialize)]
pub struct CompactReport {
    pub dataset: String,
    pub dry_run: bool,
    /// The contract's partitioning: what the dataset is stored in after.
    pub layout: String,
    /// The partitioning it was stored in, when it differed (then every partition was regrouped).
    pub regrouped_from: Option<String>,
    pub partitions_before: usize,
    pub partitions_after: usize,
    /// Partitions re-encoded in place, with why.
    pub rewritten: Vec<Rewrite>,
    pub rows: u64,
    pub bytes_before: u64,
    pub bytes_after: u64,
    /// Data files and manifest bytes this compaction wrote.
    pub bytes_written: u64,
    /// The compaction's commit (none when nothing needed it, or on a dry run).
    pub snapshot_id: Option<u64>,
    /// The snapshot whose partition table was checkpointed (none when it already was, or on a dry run).
    pub checkpoint: Option<u64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Rewrite {
    pub partition: String,
    pub reason: String,
}

impl CompactReport {
    /// Whether there was (or, on a dry run, is) anything to compact.
    pub fn changed(&self) -> bool {
        self.regrouped_from.is_some() || !self.rewritten.is_empty()
    }
}

/// Compacts one dataset (see the module docs). `dry_run` only reports what would be done.
pub async fn compact(ds: &Dataset, dry_run: bool) -> Result<CompactReport> {
    let before = if dry_run { ds.latest().await? } else { transaction::recover(ds, false).await?.1 };
    let contract = &ds.contract;
    let found = layout::layout_of(before.partitions.keys());
    let regroup_from = found.filter(|l| *l != contract.partitioning);
    let rewritten = if regroup_from.is_some() { Vec::new() } else { stale_files(ds, &before).await? };
    let mut report = CompactReport {
        dataset: ds.name().to_string(),
        dry_run,
        layout: layout_name(contract.partitioning).into(),
        regrouped_from: regroup_from.map(|l| layout_name(l).to_string()),
        partitions_before: before.partitions.len(),
        partitions_after: before.partitions.len(),
        rewritten,
        rows: before.rows(),
        bytes_before: before.bytes(),
        bytes_after: before.bytes(),
        bytes_written: 0,
        snapshot_id: None,
        checkpoint: None,
    };
    if dry_run {
        if regroup_from.is_some() {
            report.partitions_after = target_count(&before, contract.partitioning);
        }
        return Ok(report);
    }
    if report.changed() {
        let partitions = (regroup_from.is_none())
            .then(|| report.rewritten.iter().map(|r| r.partition.clone()).collect::<BTreeSet<_>>());
        let mut parameters = BTreeMap::new();
        parameters.insert("layout".to_string(), serde_json::json!(report.layout));
        if let Some(from) = &report.regrouped_from {
            parameters.insert("regrouped_from".to_string(), serde_json::json!(from));
        }
        parameters.insert(
            "partitions".to_string(),
            serde_json::json!(partitions.as_ref().map_or(before.partitions.len(), BTreeSet::len)),
        );
        let done = PreparedWrite::regroup(ds, partitions, parameters).commit_alone().await?;
        report.bytes_written += done.bytes_written;
        report.snapshot_id = Some(done.snapshot_id);
        tracing::info!(
            dataset = ds.name(),
            snapshot = done.snapshot_id,
            partitions = done.partitions,
            regrouped_from = report.regrouped_from.as_deref(),
            rewritten = report.rewritten.len(),
            "compacted"
        );
    }
    let after = ds.latest().await?;
    (report.partitions_after, report.bytes_after, report.rows) = (after.partitions.len(), after.bytes(), after.rows());
    if after.snapshot_id > 0 {
        let path = ds.paths.checkpoint(after.snapshot_id);
        if ds.store.head(&path).await?.is_none() {
            report.bytes_written += transaction::write_table(ds, &path, &after).await?;
            report.checkpoint = Some(after.snapshot_id);
        }
    }
    Ok(report)
}

/// How many partitions a regroup into `to` makes of a snapshot's partitions.
fn target_count(state: &TableState, to: Partitioning) -> usize {
    let keys = state.partitions.keys().filter_map(|p| layout::PartitionKey::parse(p).ok());
    keys.flat_map(|k| k.regrouped(to)).collect::<BTreeSet<_>>().len()
}

/// The partitions whose files the contract would not write as they are.
async fn stale_files(ds: &Dataset, state: &TableState) -> Result<Vec<Rewrite>> {
    use futures::{StreamExt, TryStreamExt};
    let found: Vec<Option<Rewrite>> = futures::stream::iter(state.partitions.values().map(|e| async move {
        Ok::<_, crate::error::Error>(
            stale_reason(ds, e).await?.map(|reason| Rewrite { partition: e.partition.clone(), reason }),
        )
    }))
    .buffered(transaction::IO_CONCURRENCY)
    .try_collect()
    .await?;
    Ok(found.into_iter().flatten().collect())
}

async fn stale_reason(ds: &Dataset, e: &PartitionEntry) -> Result<Option<String>> {
    let contract = &ds.contract;
    if e.schema_version < contract.schema_version {
        return Ok(Some(format!(
            "written with schema version {}, the contract is at {}",
            e.schema_version, contract.schema_version
        )));
    }
    let path = ds.paths.version_file(&e.partition, &e.file_id);
    let missing = || crate::error::Error::Integrity {
        dataset: ds.name().into(),
        reason: format!("data file {path} of partition {} is missing (run `quantlake verify`)", e.partition),
    };
    let tail_len = e.bytes.min(TAIL);
    let tail = ds
        .store
        .get_ranges(&path, std::slice::from_ref(&(e.bytes - tail_len..e.bytes)))
        .await?
        .and_then(|mut v| v.pop())
        .ok_or_else(missing)?;
    let groups = match row_groups(&tail, e.bytes) {
        Err(ParquetError::NeedMoreData(_)) => row_groups(&ds.store.get(&path).await?.ok_or_else(missing)?, e.bytes)?,
        r => r?,
    };
    let expected = (e.rows as usize).div_ceil(contract.row_group_rows.max(1)).max(1);
    Ok((groups != expected).then(|| {
        format!("{groups} row groups; the contract's {} rows per group make {expected}", contract.row_group_rows)
    }))
}

/// The number of row groups of a file, from its tail (`NeedMoreData` when the footer is longer).
fn row_groups(tail: &Bytes, size: u64) -> std::result::Result<usize, ParquetError> {
    let mut reader = ParquetMetaDataReader::new();
    reader.try_parse_sized(tail, size)?;
    Ok(reader.finish()?.num_row_groups())
}
