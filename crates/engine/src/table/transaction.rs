//! The commit protocol. Every operation that changes a dataset (write, restore, a stage's writes)
//! commits through here, and so do the other manifest writes (tags, checkpoints, vacuum's deletions).
//!
//! 1. **Stage**: each new partition file is written once, durably, to its immutable version path
//!    `_versions/<dataset>/<partition>/<file_id>.parquet`. Nothing in the live tree changes.
//! 2. **Commit point**: the log entry `N+1` is created with put-if-absent (S3 `If-None-Match: *`; local
//!    disk: a hard link, which fails if the name exists). If another writer took `N+1`, its commit is read:
//!    touching any of our partitions is a [`Conflict`], otherwise we rebase and try `N+2`.
//! 3. **Apply**: each partition's live file is atomically replaced by its version (local: link + rename;
//!    S3: server-side copy), or deleted.
//! 4. **Settle**: commits by others that landed around ours are applied too (so the last writer to touch
//!    the live tree leaves it at the latest snapshot), then the partition table is rewritten.
//!
//! A crash before 2 leaves unreferenced version files (vacuum removes them). A crash after 2 leaves a
//! committed snapshot whose live files are not all in place; [`recover`] (run on every writer's open)
//! replays the apply step for commits newer than the partition table. Manifest readers read version
//! files, so they see whole snapshots at every instant; glob readers see each partition switch atomically.
//!
//! A stage's entry (see [`crate::table::lake_log`]) is created in step 2 like any other, but steps 3
//! and 4 wait for the stage's decision. A writer that finds such an entry undecided in its way waits
//! for the decision (or makes it, if the stage's writer is gone) before it commits past it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};

use crate::contract::SchemaRecord;
use crate::error::{Error, Result};
use crate::table::Dataset;
use crate::table::data_file::EncodedFile;
use crate::table::delta;
use crate::table::lake_log::{StageMark, StageOutcome, Visibility};
use crate::table::manifest::{Action, Commit, FORMAT_VERSION, PartitionEntry, TableState};

/// How many object-store requests a commit keeps in flight.
pub const IO_CONCURRENCY: usize = 16;

/// Crash injection for the crash-safety tests: `QUANTLAKE_FAILPOINT=<name>[:<n>]` aborts the process
/// (like `kill -9`: no destructors, no flushing) the `n`-th time (default 1st) the named point is hit.
pub fn failpoint(name: &str) {
    static SPEC: OnceLock<Option<(String, u64)>> = OnceLock::new();
    static HITS: AtomicU64 = AtomicU64::new(0);
    let spec = SPEC.get_or_init(|| {
        let v = std::env::var("QUANTLAKE_FAILPOINT").ok()?;
        let (point, nth) = v.split_once(':').map_or((v.as_str(), 1), |(p, n)| (p, n.parse().unwrap_or(1)));
        Some((point.to_string(), nth))
    });
    if let Some((point, nth)) = spec
        && point == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth
    {
        eprintln!("quantlake: failpoint {name}:{nth} hit, aborting");
        std::process::abort();
    }
}

/// Writes a partition's new version file and describes it for the log.
pub(crate) async fn stage(
    dataset: &Dataset,
    partition: &str,
    file: EncodedFile,
    schema_version: u32,
) -> Result<PartitionEntry> {
    let file_id = uuid::Uuid::now_v7().simple().to_string();
    let path = dataset.paths.version_file(partition, &file_id);
    let bytes = file.bytes.len() as u64;
    let put = dataset.store.put(&path, file.bytes).await?;
    Ok(PartitionEntry {
        partition: partition.to_string(),
        file_id,
        snapshot_id: 0,
        rows: file.rows,
        bytes,
        sha256: file.sha256,
        e_tag: put.e_tag,
        min_ts: file.min_ts.and_then(DateTime::from_timestamp_micros),
        max_ts: file.max_ts.and_then(DateTime::from_timestamp_micros),
        symbols: file.symbols,
        schema_version,
        null_counts: file.null_counts,
        quality: None,
    })
}

/// A change to one dataset, built on the snapshot `read` and committed with [`Transaction::commit`].
pub(crate) struct Transaction<'a> {
    pub dataset: &'a Dataset,
    pub read: &'a TableState,
    /// Partitions whose content this commit decides, beyond those its actions name (e.g. a partition an
    /// overwrite leaves absent): a concurrent commit to any of them is a conflict too.
    pub covers: BTreeSet<String>,
    pub operation: String,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub schema: Option<SchemaRecord>,
    pub actions: Vec<Action>,
    /// Set when this commit is one dataset's part of a stage.
    pub stage: Option<StageMark>,
}

/// A log entry this transaction created (step 2), not yet applied.
pub(crate) struct Reserved {
    pub commit: Commit,
    /// Commits by others between the read snapshot and ours, as the log decided them.
    skipped: Vec<(Commit, Visibility)>,
}

/// What a successful commit did.
#[derive(Debug, Clone)]
pub struct Committed {
    pub commit: Commit,
    /// Bytes of log and partition-table objects written (data files are counted by the caller).
    pub manifest_bytes: u64,
}

/// Why a commit did not land.
pub(crate) enum CommitError {
    /// Snapshot `snapshot` (by another writer) changed `partitions` that this commit also changes.
    Conflict { snapshot: u64, partitions: Vec<String> },
    /// Failed before the commit point: nothing references the staged files.
    Failed(Error),
    /// Failed after the commit point: the snapshot exists (the next open finishes applying it), so its
    /// staged files must stay.
    Committed(Error),
}

impl From<Error> for CommitError {
    fn from(e: Error) -> Self {
        CommitError::Failed(e)
    }
}

impl Transaction<'_> {
    /// Steps 2 to 4: a commit of one dataset on its own.
    pub(crate) async fn commit(self) -> std::result::Result<Committed, CommitError> {
        let reserved = self.reserve().await?;
        failpoint("commit.after_log");
        match self.apply(&reserved, Visibility::Visible { seq: 0 }).await {
            Ok(manifest_bytes) => Ok(Committed { commit: reserved.commit, manifest_bytes }),
            Err(e) => Err(CommitError::Committed(e)),
        }
    }

    /// Step 2: creates the next log entry (rebasing over commits to other partitions). For a stage's
    /// entry this reserves the snapshot number; it counts once the stage is decided.
    pub(crate) async fn reserve(&self) -> std::result::Result<Reserved, CommitError> {
        let ds = self.dataset;
        let ours: BTreeSet<&str> =
            self.actions.iter().map(Action::partition).chain(self.covers.iter().map(String::as_str)).collect();
        let txn_id = uuid::Uuid::now_v7().to_string();
        let mut base = self.read.snapshot_id;
        let mut base_time = self.read.committed_at;
        let mut skipped = Vec::new();
        let commit = loop {
            let n = base + 1;
            // Commit times never go backwards along the log, so time travel can binary-search them.
            let now = Utc::now();
            let committed_at = base_time.map_or(now, |t| now.max(t + chrono::Duration::milliseconds(1)));
            let actions = self
                .actions
                .iter()
                .map(|a| match a {
                    Action::Add(e) => Action::Add(PartitionEntry { snapshot_id: n, ..e.clone() }),
                    other => other.clone(),
                })
                .collect();
            let commit = Commit {
                format_version: FORMAT_VERSION,
                dataset: ds.name().to_string(),
                snapshot_id: n,
                read_snapshot: self.read.snapshot_id,
                committed_at,
                operation: self.operation.clone(),
                parameters: self.parameters.clone(),
                txn_id: txn_id.clone(),
                schema: self.schema.clone(),
                actions,
                stage: self.stage.clone(),
            };
            let json = serde_json::to_vec_pretty(&commit).map_err(Error::from)?;
            failpoint("commit.before_log");
            if ds.store.put_if_absent(&ds.paths.log_entry(n), json.into()).await?.is_some() {
                break commit;
            }
            // Another writer took `n`, or a retried request of ours did after a lost response.
            let Some(other) = ds.log.read_commit(n).await? else { continue };
            if other.txn_id == txn_id {
                break commit;
            }
            // Nobody commits past a stage's undecided entry: wait for (or make) its decision.
            let seen = match &other.stage {
                None => Visibility::Visible { seq: 0 },
                Some(mark) => decided(ds, mark).await?,
            };
            if let Visibility::Visible { .. } = seen {
                let overlap: Vec<String> =
                    other.partitions().filter(|p| ours.contains(p)).map(str::to_string).collect();
                let schema_race = other.schema.is_some() && self.schema.is_some();
                if !overlap.is_empty() || schema_race {
                    return Err(CommitError::Conflict { snapshot: n, partitions: overlap });
                }
            }
            tracing::debug!(dataset = ds.name(), snapshot = n, "lost the race for a snapshot number; rebasing");
            base = n;
            base_time = Some(other.committed_at);
            skipped.push((other, seen));
        };
        Ok(Reserved { commit, skipped })
    }

    /// Steps 3 and 4, after the commit point: `own` is how the log decided our entry (a stage's, by
    /// its lake log decision).
    pub(crate) async fn apply(&self, reserved: &Reserved, own: Visibility) -> Result<u64> {
        let ds = self.dataset;
        let (commit, skipped) = (&reserved.commit, &reserved.skipped);
        // Removals first: a glob reader of a commit that regroups partitions (compaction) sees rows
        // missing for a moment, never the old and the new partition side by side.
        let (removes, adds): (Vec<&Action>, Vec<&Action>) =
            commit.actions.iter().partition(|a| matches!(a, Action::Remove { .. }));
        for phase in [removes, adds] {
            futures::stream::iter(phase.into_iter().map(|a| apply_action(ds, a)))
                .buffer_unordered(IO_CONCURRENCY)
                .try_for_each(|()| async {
                    failpoint("commit.apply");
                    Ok(())
                })
                .await?;
        }
        failpoint("commit.after_apply");

        // Commits we rebased over may belong to a writer that crashed before applying them.
        let mut state = self.read.clone();
        let mut touched: BTreeSet<String> = BTreeSet::new();
        for (c, seen) in skipped {
            if state.apply_seen(c, *seen) && matches!(seen, Visibility::Visible { .. }) {
                touched.extend(c.partitions().map(str::to_string));
            }
        }
        let before = state.clone();
        state.apply_seen(commit, own);
        reconcile(ds, &state, touched.iter().map(String::as_str)).await?;
        let known = delta::Known { state: Some(&before), next: Some(commit) };
        Ok(settle(ds, state, true, known).await?.0)
    }
}

/// How the log decided a stage's entry, waiting for the decision (or deciding a stalled stage).
async fn decided(ds: &Dataset, mark: &StageMark) -> Result<Visibility> {
    let d = ds.lake_log.await_decision(mark).await?;
    Ok(match d.outcome {
        StageOutcome::Committed => Visibility::Visible { seq: d.seq },
        StageOutcome::Aborted => Visibility::Skipped { seq: d.seq },
    })
}

/// Replays the log after `state` to its end, waiting for (or deciding) stages in progress on the way:
/// what a writer builds on. Returns the commits applied.
pub(crate) async fn catch_up_deciding(ds: &Dataset, state: &mut TableState) -> Result<Vec<Commit>> {
    let mut applied = Vec::new();
    loop {
        let replay = ds.log.catch_up(state, &ds.lake_log.lazy_view()).await?;
        applied.extend(replay.applied);
        match replay.blocked.as_ref().and_then(|c| c.stage.as_ref()) {
            None => return Ok(applied),
            Some(mark) => {
                decided(ds, mark).await?;
            }
        }
    }
}

/// Makes one partition's live file match an action.
async fn apply_action(ds: &Dataset, action: &Action) -> Result<()> {
    match action {
        Action::Add(e) => {
            ds.store
                .replace_live(&ds.paths.version_file(&e.partition, &e.file_id), &ds.paths.live_file(&e.partition))
                .await
        }
        Action::Remove { partition } => ds.store.delete_live(&ds.paths.live_file(partition)).await,
    }
}

/// Makes the live files of `partitions` match `state`, touching only those that differ.
pub(crate) async fn reconcile<'p>(
    ds: &Dataset,
    state: &TableState,
    partitions: impl Iterator<Item = &'p str>,
) -> Result<usize> {
    let fixes = futures::stream::iter(partitions.map(|p| async move {
        let live = ds.store.head(&ds.paths.live_file(p)).await?;
        let action = match (state.partitions.get(p), live) {
            (Some(e), Some(meta)) if e.e_tag.is_some() && meta.e_tag == e.e_tag => return Ok(0),
            (Some(e), _) => Action::Add(e.clone()),
            (None, Some(_)) => Action::Remove { partition: p.to_string() },
            (None, None) => return Ok(0),
        };
        tracing::info!(
            dataset = ds.name(),
            partition = p,
            snapshot = state.snapshot_id,
            "restoring live file to the committed version"
        );
        apply_action(ds, &action).await?;
        Ok::<_, Error>(1)
    }))
    .buffer_unordered(IO_CONCURRENCY)
    .try_fold(0, |n, k| async move { Ok(n + k) })
    .await?;
    Ok(fixes)
}

/// After a commit or a recovery: catch up with newer commits (applying them too, so whoever touches the
/// live tree last leaves it at the latest snapshot), then rewrite the partition table and checkpoint,
/// then publish the Delta log's new versions (`known`: the state before the caller's own commit, and
/// that commit).
/// Returns the bytes written and the latest state.
/// With `decide_stages` off (checks), it stops at a stage's undecided entry instead of waiting for it.
pub(crate) async fn settle(
    ds: &Dataset,
    mut state: TableState,
    decide_stages: bool,
    known: delta::Known<'_>,
) -> Result<(u64, TableState)> {
    let mut written = 0;
    if state.snapshot_id > 0 && state.snapshot_id.is_multiple_of(ds.settings.checkpoint_interval) {
        written += write_table(ds, &ds.paths.checkpoint(state.snapshot_id), &state).await?;
    }
    loop {
        let newer = if decide_stages {
            catch_up_deciding(ds, &mut state).await?
        } else {
            ds.log.catch_up(&mut state, &ds.lake_log.lazy_view()).await?.applied
        };
        if newer.is_empty() {
            break;
        }
        let touched: BTreeSet<String> = newer.iter().flat_map(|c| c.partitions().map(str::to_string)).collect();
        reconcile(ds, &state, touched.iter().map(String::as_str)).await?;
    }
    failpoint("commit.before_table");
    written += write_table(ds, &ds.paths.partition_table(), &state).await?;
    failpoint("commit.before_delta");
    delta::publish(ds, state.snapshot_id, known).await?;
    Ok((written, state))
}

pub(crate) async fn write_table(ds: &Dataset, path: &object_store::path::Path, state: &TableState) -> Result<u64> {
    let bytes = crate::table::manifest::encode_table(state, &ds.paths)?;
    let n = bytes.len() as u64;
    ds.store.put(path, bytes).await?;
    Ok(n)
}

/// Finishes interrupted commits: applies every commit newer than the partition table (or, with `full`,
/// checks every partition and removes live files no snapshot has). Returns what it did and the latest
/// state, which writers build on.
pub(crate) async fn recover(ds: &Dataset, full: bool) -> Result<(RecoveryReport, TableState)> {
    recover_with(ds, full, true).await
}

/// [`recover`], optionally leaving an undecided stage alone (for checks that report it instead).
pub(crate) async fn recover_with(
    ds: &Dataset,
    full: bool,
    decide_stages: bool,
) -> Result<(RecoveryReport, TableState)> {
    let (mut state, mut pending, blocked) = ds.log.latest_with_pending(&ds.lake_log.lazy_view()).await?;
    let mut stages_decided = Vec::new();
    if let Some(mark) = blocked.and_then(|c| c.stage).filter(|_| decide_stages) {
        // A stage in progress, or one whose writer died: wait for it, or decide it.
        let d = ds.lake_log.await_decision(&mark).await?;
        stages_decided.push(StageDecided {
            stage_id: mark.id.clone(),
            outcome: d.outcome,
            decided_by: d.decided_by.clone(),
            lake_seq: d.seq,
        });
        pending.extend(catch_up_deciding(ds, &mut state).await?);
    }
    let mut touched: BTreeSet<String> = pending.iter().flat_map(|c| c.partitions().map(str::to_string)).collect();
    if full {
        touched.extend(state.partitions.keys().cloned());
        touched.extend(ds.live_partitions().await?);
    }
    let files_fixed = reconcile(ds, &state, touched.iter().map(String::as_str)).await?;
    let stray_removed = if full { ds.remove_stray_live_objects().await? } else { 0 };
    let report = RecoveryReport {
        dataset: ds.name().to_string(),
        snapshot_id: state.snapshot_id,
        commits_replayed: pending.len(),
        files_fixed,
        stray_removed,
        stages: stages_decided,
    };
    if pending.is_empty() && !full {
        return Ok((report, state));
    }
    let (_, state) = settle(ds, state, decide_stages, delta::Known::default()).await?;
    Ok((report, state))
}

/// What [`recover`] found and did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RecoveryReport {
    pub dataset: String,
    pub snapshot_id: u64,
    pub commits_replayed: usize,
    pub files_fixed: usize,
    pub stray_removed: usize,
    /// Stages this recovery found undecided, and how they ended.
    pub stages: Vec<StageDecided>,
}

/// A stage a recovery found undecided.
#[derive(Debug, Clone, serde::Serialize)]
pub struct StageDecided {
    pub stage_id: String,
    pub outcome: StageOutcome,
    /// `recovery` when this process decided it; `writer` when its writer did while we waited.
    pub decided_by: String,
    pub lake_seq: u64,
}

impl CommitError {
    pub(crate) fn into_error(self, ds: &Dataset, read_snapshot: u64, attempts: u32) -> Error {
        match self {
            CommitError::Conflict { snapshot, partitions } => {
                Error::Conflict { dataset: ds.name().to_string(), read_snapshot, snapshot, partitions, attempts }
            }
            CommitError::Failed(e) | CommitError::Committed(e) => e,
        }
    }
}

/// Keeps a copy of `state`'s partition table under `checkpoints/` (a tag's snapshot stays readable
/// after vacuum removes its log entries). Returns the bytes written.
pub(crate) async fn write_checkpoint(ds: &Dataset, state: &TableState) -> Result<u64> {
    write_table(ds, &ds.paths.checkpoint(state.snapshot_id), state).await
}

/// Creates a tag object (a dataset's or the lake's), or moves it with `force`; `false` when it
/// exists and `force` is not set.
pub(crate) async fn put_tag(
    store: &crate::storage::LakeStore,
    path: &object_store::path::Path,
    tag: &impl serde::Serialize,
    force: bool,
) -> Result<bool> {
    let bytes = bytes::Bytes::from(serde_json::to_vec_pretty(tag)?);
    if force {
        store.put(path, bytes).await?;
        return Ok(true);
    }
    Ok(store.put_if_absent(path, bytes).await?.is_some())
}

pub(crate) async fn delete_tag(store: &crate::storage::LakeStore, path: &object_store::path::Path) -> Result<()> {
    store.delete(path).await
}

/// What vacuum removes from a dataset's manifest and history; each a separate object, so a crash
/// midway leaves a lake that still reads (what is left is removed by the next vacuum).
pub(crate) enum Removal<'p> {
    /// A version file no retained snapshot references.
    Version(&'p object_store::path::Path),
    /// A log entry older than the retained snapshots (a checkpoint of the oldest retained one exists).
    LogEntry(u64),
    Checkpoint(u64),
    /// A temporary link a crash left in the live tree.
    LiveTemp(&'p object_store::path::Path),
}

pub(crate) async fn remove(ds: &Dataset, what: Removal<'_>) -> Result<()> {
    match what {
        Removal::Version(p) | Removal::LiveTemp(p) => ds.store.delete(p).await,
        Removal::LogEntry(n) => ds.store.delete(&ds.paths.log_entry(n)).await,
        Removal::Checkpoint(n) => ds.store.delete(&ds.paths.checkpoint(n)).await,
    }
}
