//! Reading the log: the list of a dataset's snapshots, the lake log's stages, and what changed
//! between two snapshots.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::Result;
use crate::table::lake_log::{LakeCommit, Visibility};
use crate::table::operations::tag;
use crate::table::{Dataset, Lake, SnapshotSpec};

#[derive(Debug, Clone, Serialize)]
pub struct SnapshotInfo {
    pub snapshot_id: u64,
    pub committed_at: DateTime<Utc>,
    pub operation: String,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub partitions_changed: usize,
    pub rows_added: u64,
    pub tags: Vec<String>,
    /// The stage the snapshot belongs to, and how it ended (`committed`, `aborted`, `pending`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stage_status: Option<&'static str>,
}

/// The newest `limit` snapshots, newest first.
pub async fn list(ds: &Dataset, limit: usize) -> Result<Vec<SnapshotInfo>> {
    let ids = ds.log.list_snapshots().await?;
    let tags = tag::list(ds).await?;
    let view = ds.lake_log.pinned_view().await?;
    let mut out = Vec::new();
    for id in ids.into_iter().rev().take(limit) {
        let Some(c) = ds.log.read_commit(id).await? else { continue };
        let stage_status = match &c.stage {
            None => None,
            Some(mark) => Some(match view.visibility(mark).await? {
                Visibility::Visible { .. } => "committed",
                Visibility::Skipped { .. } => "aborted",
                Visibility::Pending => "pending",
            }),
        };
        out.push(SnapshotInfo {
            stage: c.stage.as_ref().map(|m| m.id.clone()),
            stage_status,
            snapshot_id: id,
            committed_at: c.committed_at,
            partitions_changed: c.actions.len(),
            rows_added: c.actions.iter().map(|a| if let crate::table::Action::Add(e) = a { e.rows } else { 0 }).sum(),
            tags: tags.iter().filter(|t| t.snapshot_id == id).map(|t| t.name.clone()).collect(),
            operation: c.operation,
            parameters: c.parameters,
        });
    }
    Ok(out)
}

#[derive(Debug, Clone, Serialize)]
pub struct PartitionChange {
    pub partition: String,
    /// `added`, `removed` or `changed`.
    pub change: &'static str,
    pub rows_before: Option<u64>,
    pub rows_after: Option<u64>,
    pub sha256_before: Option<String>,
    pub sha256_after: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct DiffReport {
    pub dataset: String,
    pub from_snapshot: u64,
    pub to_snapshot: u64,
    pub changes: Vec<PartitionChange>,
}

/// Partitions that differ between two snapshots.
pub async fn diff(ds: &Dataset, from: &SnapshotSpec, to: &SnapshotSpec) -> Result<DiffReport> {
    let a = ds.snapshot(from).await?;
    let b = ds.snapshot(to).await?;
    let mut changes = Vec::new();
    let keys: std::collections::BTreeSet<&String> = a.partitions.keys().chain(b.partitions.keys()).collect();
    for p in keys {
        let (x, y) = (a.partitions.get(p), b.partitions.get(p));
        let change = match (x, y) {
            (None, Some(_)) => "added",
            (Some(_), None) => "removed",
            (Some(x), Some(y)) if x.sha256 != y.sha256 => "changed",
            _ => continue,
        };
        changes.push(PartitionChange {
            partition: p.clone(),
            change,
            rows_before: x.map(|e| e.rows),
            rows_after: y.map(|e| e.rows),
            sha256_before: x.map(|e| e.sha256.clone()),
            sha256_after: y.map(|e| e.sha256.clone()),
        });
    }
    Ok(DiffReport { dataset: ds.name().into(), from_snapshot: a.snapshot_id, to_snapshot: b.snapshot_id, changes })
}

/// The newest `limit` entries of the lake log (one per stage), newest first.
pub async fn list_lake(lake: &Lake, limit: usize) -> Result<Vec<LakeCommit>> {
    Ok(lake.lake_log().list(limit).await?.into_iter().map(|e| (*e).clone()).collect())
}
