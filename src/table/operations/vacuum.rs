//! Vacuum: removes what no retained snapshot needs. Retained are the latest snapshot, every snapshot
//! visible within the retention window (including the one current at its start), and every tagged
//! snapshot. Version files younger than the grace period are kept too: a concurrent writer may be
//! about to commit them.

use std::collections::HashSet;
use std::time::Duration;

use chrono::Utc;
use serde::Serialize;

use crate::error::Result;
use crate::table::layout::{is_live_temp, snapshot_of};
use crate::table::manifest::Action;
use crate::table::operations::tag;
use crate::table::Dataset;

/// Version files newer than this are never deleted (an in-flight commit may own them).
const GRACE: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize)]
pub struct VacuumReport {
    pub dataset: String,
    pub dry_run: bool,
    pub latest_snapshot: u64,
    /// Oldest snapshot that stays readable, tags aside.
    pub oldest_retained_snapshot: u64,
    pub tagged_snapshots: Vec<u64>,
    pub files_deleted: usize,
    pub bytes_freed: u64,
    pub log_entries_deleted: usize,
    pub checkpoints_deleted: usize,
}

pub async fn vacuum(ds: &Dataset, retention: Duration, dry_run: bool) -> Result<VacuumReport> {
    let latest = if dry_run { ds.latest().await? } else { crate::table::transaction::recover(ds, false).await?.1 };
    let now = Utc::now();
    let cutoff = now - chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
    let ids = ds.log.list_snapshots().await?;
    // The snapshot that was current at the cutoff is still readable "as of" any time in the window.
    let mut oldest = latest.snapshot_id;
    for &id in ids.iter().rev() {
        oldest = id;
        match ds.log.read_commit(id).await? {
            Some(c) if c.committed_at > cutoff => continue,
            _ => break,
        }
    }
    let tags = tag::list(ds).await?;
    let tagged: Vec<u64> = tags.iter().map(|t| t.snapshot_id).collect();

    // Files any retained snapshot references.
    let mut keep: HashSet<String> = HashSet::new();
    if oldest > 0 {
        let base = ds.log.state_at(oldest).await?;
        keep.extend(base.partitions.values().map(|e| e.file_id.clone()));
        for id in oldest + 1..=latest.snapshot_id {
            if let Some(c) = ds.log.read_commit(id).await? {
                keep.extend(c.actions.iter().filter_map(|a| if let Action::Add(e) = a { Some(e.file_id.clone()) } else { None }));
            }
        }
    }
    for &t in &tagged {
        keep.extend(ds.log.state_at(t).await?.partitions.values().map(|e| e.file_id.clone()));
    }
    keep.extend(latest.partitions.values().map(|e| e.file_id.clone()));

    let grace = chrono::Duration::from_std(retention.min(GRACE)).unwrap_or(chrono::Duration::zero());
    let mut report = VacuumReport {
        dataset: ds.name().into(),
        dry_run,
        latest_snapshot: latest.snapshot_id,
        oldest_retained_snapshot: oldest,
        tagged_snapshots: tagged.clone(),
        files_deleted: 0,
        bytes_freed: 0,
        log_entries_deleted: 0,
        checkpoints_deleted: 0,
    };
    for meta in ds.store.list(&ds.paths.versions_root()).await? {
        let id = meta.location.filename().and_then(|f| f.strip_suffix(".parquet")).unwrap_or_default();
        if keep.contains(id) || meta.last_modified > now - grace {
            continue;
        }
        report.files_deleted += 1;
        report.bytes_freed += meta.size;
        if !dry_run {
            ds.store.delete(&meta.location).await?;
        }
    }
    // Temporary links a crash left in the live tree.
    for meta in ds.store.list(&ds.paths.live_root()).await? {
        if meta.location.filename().is_some_and(is_live_temp) && meta.last_modified <= now - grace {
            report.files_deleted += 1;
            report.bytes_freed += meta.size;
            if !dry_run {
                ds.store.delete(&meta.location).await?;
            }
        }
    }
    if oldest > 1 {
        // Replay of the retained snapshots starts at a checkpoint of the oldest one: write it first.
        if !dry_run {
            let base = ds.log.state_at(oldest).await?;
            ds.log.write_table(&ds.paths.checkpoint(oldest), &base).await?;
        }
        for &id in ids.iter().filter(|id| **id < oldest && !tagged.contains(id)) {
            report.log_entries_deleted += 1;
            if !dry_run {
                ds.store.delete(&ds.paths.log_entry(id)).await?;
            }
        }
        for meta in ds.store.list(&ds.paths.checkpoints_root()).await? {
            if snapshot_of(&meta.location).is_some_and(|id| id < oldest && !tagged.contains(&id)) {
                report.checkpoints_deleted += 1;
                if !dry_run {
                    ds.store.delete(&meta.location).await?;
                }
            }
        }
    }
    Ok(report)
}
