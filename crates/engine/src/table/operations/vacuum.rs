//! Vacuum: removes what no retained snapshot needs. Retained are the latest snapshot, every snapshot
//! visible within the retention window (including the one current at its start), and every tagged
//! snapshot. A version file no commit references may belong to a writer about to commit it, so such
//! files are only removed after a grace period; replaced versions of committed snapshots are removed
//! as soon as no retained snapshot needs them.

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::table::Dataset;
use crate::table::delta;
use crate::table::layout::{DELTA_LOG, is_live_temp, snapshot_of};
use crate::table::manifest::{Action, Commit};
use crate::table::operations::tag;
use crate::table::transaction::{self, Removal};

/// Version files no commit references are kept this long: an in-flight commit may own them, and a
/// long stage stages its partitions as it computes them ([`Dataset::stage_partition`]), hours before
/// its commit.
const GRACE: Duration = Duration::from_secs(24 * 3600);

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
    /// Delta log commit files and checkpoints of versions no longer kept.
    pub delta_entries_deleted: usize,
}

fn adds(c: &Commit) -> impl Iterator<Item = String> + '_ {
    c.actions.iter().filter_map(|a| if let Action::Add(e) = a { Some(e.file_id.clone()) } else { None })
}

pub async fn vacuum(ds: &Dataset, retention: Duration, dry_run: bool) -> Result<VacuumReport> {
    // Listed before the log is read: a file committed after this listing is not in it.
    let versions = ds.store.list(&ds.paths.versions_root()).await?;
    let latest = if dry_run { ds.latest().await? } else { transaction::recover(ds, false).await?.1 };
    if !dry_run {
        // Pruned below with the manifest's log: it must hold every version first.
        delta::publish(ds, latest.snapshot_id, delta::Known::state(&latest)).await?;
    }
    let view = ds.lake_log.lazy_view();
    let now = Utc::now();
    let cutoff = chrono::Duration::from_std(retention)
        .ok()
        .and_then(|r| now.checked_sub_signed(r))
        .unwrap_or(DateTime::<Utc>::MIN_UTC);

    // The unbroken run of log entries that ends at the latest snapshot (an earlier vacuum leaves gaps
    // below it, where only tagged entries remain).
    let ids = ds.log.list_snapshots().await?;
    let mut commits: BTreeMap<u64, Commit> = BTreeMap::new();
    let mut oldest = latest.snapshot_id;
    for &id in ids.iter().rev() {
        if id > latest.snapshot_id {
            continue;
        }
        if id + 1 != oldest && id != latest.snapshot_id {
            break;
        }
        let commit = ds.log.read_commit(id).await?.ok_or_else(|| Error::Integrity {
            dataset: ds.name().into(),
            reason: format!("log entry {id} disappeared during vacuum"),
        })?;
        oldest = id;
        let visible_at_cutoff = commit.committed_at <= cutoff;
        commits.insert(id, commit);
        // The snapshot that was current at the cutoff is still readable "as of" any time in the window.
        if visible_at_cutoff {
            break;
        }
    }
    let tagged: Vec<u64> = tag::held_snapshots(ds).await?;

    // Files any retained snapshot references.
    let mut keep: HashSet<String> = latest.partitions.values().map(|e| e.file_id.clone()).collect();
    let base = if oldest > 0 { Some(ds.log.state_at(oldest, &view).await?) } else { None };
    if let Some(base) = &base {
        keep.extend(base.partitions.values().map(|e| e.file_id.clone()));
    }
    keep.extend(commits.range(oldest + 1..).flat_map(|(_, c)| adds(c)));
    for &t in &tagged {
        keep.extend(ds.log.state_at(t, &view).await?.partitions.values().map(|e| e.file_id.clone()));
    }
    // Commits after the latest snapshot (landed while we read, or a stage's entries not decided
    // yet): their files stay.
    for id in ds.log.list_snapshots().await?.into_iter().filter(|id| *id > latest.snapshot_id) {
        if let Some(c) = ds.log.read_commit(id).await? {
            keep.extend(adds(&c));
        }
    }
    // Files some commit still in the log references are committed history, not in-flight staging.
    let mut committed: HashSet<String> = HashSet::new();
    for &id in ids.iter().filter(|id| !commits.contains_key(id)) {
        if let Some(c) = ds.log.read_commit(id).await? {
            committed.extend(adds(&c));
        }
    }
    committed.extend(commits.values().flat_map(adds));

    let grace = chrono::Duration::from_std(GRACE).unwrap_or(chrono::Duration::zero());
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
        delta_entries_deleted: 0,
    };
    for meta in versions {
        // The Delta log beside the version files is pruned below, with the log.
        if meta.location.parts().any(|p| p.as_ref() == DELTA_LOG) {
            continue;
        }
        let id = meta.location.filename().and_then(|f| f.strip_suffix(".parquet")).unwrap_or_default();
        if keep.contains(id) || (!committed.contains(id) && meta.last_modified > now - grace) {
            continue;
        }
        report.files_deleted += 1;
        report.bytes_freed += meta.size;
        if !dry_run {
            transaction::remove(ds, Removal::Version(&meta.location)).await?;
        }
    }
    // Temporary links a crash left in the live tree (a commit in flight retries if it loses its own).
    for meta in ds.store.list(&ds.paths.live_root()).await? {
        if meta.location.filename().is_some_and(is_live_temp) {
            report.files_deleted += 1;
            report.bytes_freed += meta.size;
            if !dry_run {
                transaction::remove(ds, Removal::LiveTemp(&meta.location)).await?;
            }
        }
    }
    if let (Some(base), true) = (&base, oldest > 1) {
        // Replay of the retained snapshots starts at a checkpoint of the oldest one: write it first.
        if !dry_run {
            transaction::write_checkpoint(ds, base).await?;
        }
        for &id in ids.iter().filter(|id| **id < oldest && !tagged.contains(id)) {
            report.log_entries_deleted += 1;
            if !dry_run {
                transaction::remove(ds, Removal::LogEntry(id)).await?;
            }
        }
        for meta in ds.store.list(&ds.paths.checkpoints_root()).await? {
            if let Some(id) = snapshot_of(&meta.location).filter(|id| *id < oldest && !tagged.contains(id)) {
                report.checkpoints_deleted += 1;
                if !dry_run {
                    transaction::remove(ds, Removal::Checkpoint(id)).await?;
                }
            }
        }
        // The Delta log offers the retained run of versions: those before `oldest` lost their files.
        report.delta_entries_deleted = delta::prune(ds, oldest, dry_run).await?;
    }
    Ok(report)
}
