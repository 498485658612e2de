//! The lake log: the commit point of a **stage**, a commit that changes several datasets at once
//! (curation writes bars, rejects and metrics; a restore of the whole lake writes every dataset).
//!
//! A stage `S` over datasets `D1..Dk` (in name order, so two stages never wait on each other in a
//! circle) commits in four steps:
//! 1. **Stage** every dataset's new partition files, as a single-dataset write does.
//! 2. **Reserve**: create each dataset's next log entry with put-if-absent, marked with S
//!    ([`StageMark`]). A marked entry is *pending*: readers do not apply it, and writers do not commit
//!    past it until S is decided (they wait, and a stage whose writer died is decided for it).
//! 3. **Decide** (the commit point): create the next entry of the lake log,
//!    `_manifest/_lake/log/<seq>.json`, with put-if-absent, recording S as committed with each dataset's
//!    snapshot id. The first decision about S in the lake log is final: a recovery that finds S stalled
//!    (its process gone, or its lease expired) writes `aborted` the same way, and a writer that arrives
//!    second defers to it. Before its commit point a stage has changed nothing anyone sees.
//! 4. **Apply** each dataset's live files and partition table, as a single-dataset commit does.
//!
//! Readers pin the lake log's head once ([`LakeView`]): a marked entry is visible when S's decision is at
//! or below that head and says committed, is skipped (changes nothing) when it says aborted, and
//! otherwise ends the dataset's visible log. Every dataset of a reader's view therefore shows S or none
//! of them show it. Partition tables remember the newest decision they include
//! ([`TableState::lake_seq`](crate::table::manifest::TableState)), so a reader never starts from a table
//! that is ahead of its pinned head.
//!
//! A single-dataset commit costs what it did before. A stage adds one object write (its decision) and,
//! for readers, one listing of the lake log's new entries.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::LakeStore;
use crate::table::layout::{self, snapshot_of};
use crate::table::manifest::{Commit, FORMAT_VERSION, parse_commit};

/// How many lake log entries a lookup reads at once.
const READ_CONCURRENCY: usize = 16;

/// What a dataset's log entry says about the stage it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StageMark {
    /// The stage's id (a UUIDv7: ordered by start time).
    pub id: String,
    /// Every dataset the stage writes, in the order it reserves them.
    pub datasets: Vec<String>,
    /// The lake log's head when the stage started: its decision comes after it.
    pub lake_base: u64,
    pub started_at: DateTime<Utc>,
    /// After this instant a stage still undecided may be decided by anyone (recovery).
    pub expires_at: DateTime<Utc>,
    /// The process that runs the stage: on the same host, its death is noticed at once.
    pub holder: Holder,
}

/// A process: host name and pid, and the kernel boot and pid namespace the pid means something in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Holder {
    pub host: String,
    pub pid: u32,
    #[serde(default)]
    pub boot_id: String,
    #[serde(default)]
    pub pid_namespace: String,
}

impl Holder {
    pub fn this_process() -> Self {
        let read = |path: &str| std::fs::read_to_string(path).map(|s| s.trim().to_string()).unwrap_or_default();
        let pid_namespace =
            std::fs::read_link("/proc/self/ns/pid").map(|p| p.display().to_string()).unwrap_or_default();
        Self {
            host: read("/proc/sys/kernel/hostname"),
            pid: std::process::id(),
            boot_id: read("/proc/sys/kernel/random/boot_id"),
            pid_namespace,
        }
    }

    /// Whether the process is known to be gone: the same host, boot and pid namespace as this
    /// process, and no such pid (Linux `/proc`). Anywhere else only the lease tells.
    pub fn is_dead(&self) -> bool {
        let here = Self::this_process();
        let comparable = !here.host.is_empty() && !here.boot_id.is_empty() && !here.pid_namespace.is_empty();
        comparable
            && (&self.host, &self.boot_id, &self.pid_namespace) == (&here.host, &here.boot_id, &here.pid_namespace)
            && self.pid != here.pid
            && !std::path::Path::new(&format!("/proc/{}", self.pid)).exists()
    }
}

/// How a stage ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageOutcome {
    Committed,
    Aborted,
}

impl StageOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            StageOutcome::Committed => "committed",
            StageOutcome::Aborted => "aborted",
        }
    }
}

/// One entry of the lake log: the decision about one stage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LakeCommit {
    pub format_version: u32,
    /// The entry's number in the lake log (the lake snapshot id).
    pub seq: u64,
    /// Never decreases along the lake log.
    pub committed_at: DateTime<Utc>,
    pub stage_id: String,
    pub outcome: StageOutcome,
    /// `curate`, `restore`, ...
    pub operation: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    /// The snapshot of each dataset that belongs to the stage.
    pub datasets: BTreeMap<String, u64>,
    /// `writer`, or `recovery` when another process decided a stalled stage.
    pub decided_by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// What a stage-marked entry means to one reader.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Visibility {
    /// Committed at lake snapshot `seq`: apply the entry.
    Visible { seq: u64 },
    /// Aborted at `seq`: the entry changes nothing.
    Skipped { seq: u64 },
    /// Not decided as far as this reader is concerned: the dataset's visible log ends before it.
    Pending,
}

/// A decision about a stage, for [`LakeLog::decide`].
#[derive(Debug, Clone)]
pub struct Decision {
    pub stage_id: String,
    pub lake_base: u64,
    pub outcome: StageOutcome,
    pub operation: String,
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub datasets: BTreeMap<String, u64>,
    pub decided_by: &'static str,
    pub reason: Option<String>,
    /// The newest commit time of the stage's entries: the decision is stamped after it, so that
    /// `--as-of` a time includes the stage's entries in every dataset exactly when it includes the
    /// decision.
    pub after: Option<DateTime<Utc>>,
}

/// The lake log of one lake, with what this process already knows of it (entries never change).
#[derive(Debug, Clone)]
pub struct LakeLog {
    store: LakeStore,
    known: Arc<Known>,
}

#[derive(Debug, Default)]
struct Known {
    /// Highest lake snapshot seen to exist.
    head: AtomicU64,
    entries: Mutex<BTreeMap<u64, Arc<LakeCommit>>>,
    /// Stage id -> its first decision.
    decisions: Mutex<HashMap<String, Arc<LakeCommit>>>,
}

pub fn log_root() -> Path {
    Path::from_iter(["_manifest", "_lake", "log"])
}

pub fn log_entry(seq: u64) -> Path {
    Path::from_iter(["_manifest", "_lake", "log", &format!("{seq:020}.json")])
}

impl LakeLog {
    pub fn new(store: LakeStore) -> Self {
        Self { store, known: Arc::default() }
    }

    /// The newest lake snapshot (0 if no stage ever committed): one listing of the entries after the
    /// newest one this process knows.
    pub async fn head(&self) -> Result<u64> {
        let known = self.known.head.load(Ordering::Acquire);
        let listed = if known == 0 {
            self.store.list(&log_root()).await?
        } else {
            self.store.list_after(&log_root(), &log_entry(known)).await?
        };
        let head = listed.iter().filter_map(|m| snapshot_of(&m.location)).max().unwrap_or(0).max(known);
        self.known.head.fetch_max(head, Ordering::AcqRel);
        Ok(head)
    }

    /// Entry `seq`, or `None` if there is none.
    pub async fn entry(&self, seq: u64) -> Result<Option<Arc<LakeCommit>>> {
        if let Some(e) = self.lock_entries().get(&seq) {
            return Ok(Some(e.clone()));
        }
        let Some(bytes) = self.store.get(&log_entry(seq)).await? else { return Ok(None) };
        let entry = Arc::new(parse_entry(seq, &bytes)?);
        self.remember(&entry);
        Ok(Some(entry))
    }

    fn lock_entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<u64, Arc<LakeCommit>>> {
        self.known.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn remember(&self, e: &Arc<LakeCommit>) {
        self.known.head.fetch_max(e.seq, Ordering::AcqRel);
        self.lock_entries().insert(e.seq, e.clone());
        let mut decisions = self.known.decisions.lock().unwrap_or_else(|p| p.into_inner());
        // The first decision in log order holds; a later one for the same stage never should exist.
        match decisions.get(&e.stage_id) {
            Some(d) if d.seq <= e.seq => {}
            _ => {
                decisions.insert(e.stage_id.clone(), e.clone());
            }
        }
    }

    /// The decision about `mark`'s stage at or below lake snapshot `upto`, if any.
    pub async fn decision(&self, mark: &StageMark, upto: u64) -> Result<Option<Arc<LakeCommit>>> {
        if let Some(d) = self.known.decisions.lock().unwrap_or_else(|p| p.into_inner()).get(&mark.id) {
            return Ok((d.seq <= upto).then(|| d.clone()));
        }
        // A view pinned before the stage began cannot hold its decision (and an empty range must
        // not reach `BTreeMap::range`, which panics when start > end).
        if upto <= mark.lake_base {
            return Ok(None);
        }
        let missing: Vec<u64> = {
            let entries = self.lock_entries();
            (mark.lake_base + 1..=upto).filter(|s| !entries.contains_key(s)).collect()
        };
        futures::stream::iter(missing.into_iter().map(|s| self.entry(s)))
            .buffer_unordered(READ_CONCURRENCY)
            .try_for_each(|_| async { Ok(()) })
            .await?;
        let entries = self.lock_entries();
        Ok(entries.range(mark.lake_base + 1..=upto).map(|(_, e)| e).find(|e| e.stage_id == mark.id).cloned())
    }

    /// Records a decision about a stage, unless the lake log already holds one: returns the decision
    /// in force (ours, or the earlier one).
    pub async fn decide(&self, d: Decision) -> Result<Arc<LakeCommit>> {
        let mut n = d.lake_base;
        loop {
            // Everything after the stage's base is read, so an earlier decision about it is seen.
            while let Some(e) = self.entry(n + 1).await? {
                if e.stage_id == d.stage_id {
                    return Ok(e);
                }
                n += 1;
            }
            let previous = if n == 0 { None } else { self.entry(n).await? };
            let tick = chrono::Duration::milliseconds(1);
            let now = Utc::now().max(d.after.map_or(DateTime::<Utc>::MIN_UTC, |t| t + tick));
            let committed_at = previous.map_or(now, |p| now.max(p.committed_at + tick));
            let entry = LakeCommit {
                format_version: FORMAT_VERSION,
                seq: n + 1,
                committed_at,
                stage_id: d.stage_id.clone(),
                outcome: d.outcome,
                operation: d.operation.clone(),
                parameters: d.parameters.clone(),
                datasets: d.datasets.clone(),
                decided_by: d.decided_by.to_string(),
                reason: d.reason.clone(),
            };
            let bytes = Bytes::from(serde_json::to_vec_pretty(&entry)?);
            if self.store.put_if_absent(&log_entry(n + 1), bytes).await?.is_some() {
                let entry = Arc::new(entry);
                self.remember(&entry);
                return Ok(entry);
            }
            // Another decision took n + 1 (perhaps ours, after a lost response): read it and go on.
        }
    }

    /// Waits until the stage of `mark` is decided, undoing it (aborted) if its writer is gone or its
    /// lease ran out. Writers call this before committing past a pending entry.
    pub async fn await_decision(&self, mark: &StageMark) -> Result<Arc<LakeCommit>> {
        let mut pause = Duration::from_millis(10);
        let mut logged = false;
        loop {
            let head = self.head().await?;
            if let Some(d) = self.decision(mark, head).await? {
                return Ok(d);
            }
            let expired = Utc::now() > mark.expires_at;
            if expired || mark.holder.is_dead() {
                let why = if expired {
                    format!("its lease expired at {}", mark.expires_at.to_rfc3339())
                } else {
                    format!("its process {} on {} is gone", mark.holder.pid, mark.holder.host)
                };
                return self.settle_stalled(mark, &why).await;
            }
            if !logged {
                tracing::info!(stage = %mark.id, datasets = ?mark.datasets, "waiting for a stage in progress to commit");
                logged = true;
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Undoes a stage whose writer stopped before its commit point: its entries stop counting.
    async fn settle_stalled(&self, mark: &StageMark, why: &str) -> Result<Arc<LakeCommit>> {
        let found = self.find_entries(mark).await?;
        let reason = format!("stage {} stopped before its commit point ({why}): undone by recovery", mark.id);
        tracing::warn!(stage = %mark.id, datasets = ?found, "{reason}");
        let operation = self.first_entry_operation(mark, &found).await.unwrap_or_else(|| "stage".into());
        self.decide(Decision {
            stage_id: mark.id.clone(),
            lake_base: mark.lake_base,
            outcome: StageOutcome::Aborted,
            operation,
            parameters: BTreeMap::new(),
            datasets: found,
            decided_by: "recovery",
            reason: Some(reason),
            after: None,
        })
        .await
    }

    async fn first_entry_operation(&self, mark: &StageMark, found: &BTreeMap<String, u64>) -> Option<String> {
        let (dataset, n) = found.iter().next()?;
        let bytes = self.store.get(&layout::log_entry_of(dataset, *n)).await.ok()??;
        parse_commit(dataset, *n, &bytes)
            .ok()
            .filter(|c| c.stage.as_ref().is_some_and(|s| s.id == mark.id))
            .map(|c| c.operation)
    }

    /// Each dataset's log entry that belongs to the stage, found from the newest entry back to the
    /// stage's start.
    pub async fn find_entries(&self, mark: &StageMark) -> Result<BTreeMap<String, u64>> {
        let mut found = BTreeMap::new();
        for dataset in &mark.datasets {
            let mut ids: Vec<u64> = self
                .store
                .list(&layout::log_root_of(dataset))
                .await?
                .iter()
                .filter_map(|m| snapshot_of(&m.location))
                .collect();
            ids.sort_unstable();
            for n in ids.into_iter().rev() {
                let Some(bytes) = self.store.get(&layout::log_entry_of(dataset, n)).await? else { continue };
                let c: Commit = parse_commit(dataset, n, &bytes)?;
                if c.stage.as_ref().is_some_and(|s| s.id == mark.id) {
                    found.insert(dataset.clone(), n);
                    break;
                }
                if c.committed_at < mark.started_at {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The newest `limit` entries, newest first.
    pub async fn list(&self, limit: usize) -> Result<Vec<Arc<LakeCommit>>> {
        let head = self.head().await?;
        let seqs: Vec<u64> = (1..=head).rev().take(limit).collect();
        let entries: Vec<Option<Arc<LakeCommit>>> = futures::stream::iter(seqs.into_iter().map(|s| self.entry(s)))
            .buffered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        Ok(entries.into_iter().flatten().collect())
    }

    /// The newest lake snapshot committed at or before `t` (0 if none): a binary search, since commit
    /// times never decrease along the lake log.
    pub async fn head_at(&self, t: DateTime<Utc>) -> Result<u64> {
        let (mut lo, mut hi) = (1u64, self.head().await? + 1);
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            let e = self.entry(mid).await?.ok_or_else(|| Error::Integrity {
                dataset: "_lake".into(),
                reason: format!("lake log entry {mid} is missing"),
            })?;
            if e.committed_at <= t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        Ok(lo - 1)
    }

    /// A view that pins the head now: for readers of several datasets.
    pub async fn pinned_view(&self) -> Result<LakeView> {
        let head = self.head().await?;
        Ok(LakeView { log: self.clone(), head: Mutex::new(Some(head)) })
    }

    /// A view pinned at lake snapshot `head`.
    pub fn view_at(&self, head: u64) -> LakeView {
        LakeView { log: self.clone(), head: Mutex::new(Some(head)) }
    }

    /// A view that pins the head the first time it meets a stage: for one dataset's reader or writer.
    pub fn lazy_view(&self) -> LakeView {
        LakeView { log: self.clone(), head: Mutex::new(None) }
    }
}

fn parse_entry(seq: u64, bytes: &[u8]) -> Result<LakeCommit> {
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(bytes)?;
    if v.format_version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: format!("lake log entry {seq}"),
            found: v.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let e: LakeCommit = serde_json::from_slice(bytes)?;
    if e.seq != seq {
        return Err(Error::Integrity {
            dataset: "_lake".into(),
            reason: format!("lake log entry {seq} claims to be {}", e.seq),
        });
    }
    Ok(e)
}

/// One reader's cut of the lake: which stages it sees. Every dataset read through the same view shows
/// each stage in all of its datasets or in none.
#[derive(Debug)]
pub struct LakeView {
    log: LakeLog,
    head: Mutex<Option<u64>>,
}

impl LakeView {
    /// The pinned head, if pinned yet.
    pub fn pinned(&self) -> Option<u64> {
        *self.head.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn head(&self) -> Result<u64> {
        if let Some(h) = self.pinned() {
            return Ok(h);
        }
        let h = self.log.head().await?;
        Ok(*self.head.lock().unwrap_or_else(|p| p.into_inner()).get_or_insert(h))
    }

    /// Whether a table built against lake snapshot `lake_seq` may be used by this view.
    pub fn admits(&self, lake_seq: u64) -> bool {
        self.pinned().is_none_or(|h| lake_seq <= h)
    }

    /// What an entry marked with `mark` means to this view.
    pub async fn visibility(&self, mark: &StageMark) -> Result<Visibility> {
        let head = self.head().await?;
        Ok(match self.log.decision(mark, head).await? {
            Some(d) if d.outcome == StageOutcome::Committed => Visibility::Visible { seq: d.seq },
            Some(d) => Visibility::Skipped { seq: d.seq },
            None => Visibility::Pending,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decision(stage: &str, outcome: StageOutcome) -> Decision {
        Decision {
            stage_id: stage.into(),
            lake_base: 0,
            outcome,
            operation: "test".into(),
            parameters: BTreeMap::new(),
            datasets: BTreeMap::new(),
            decided_by: "writer",
            reason: None,
            after: None,
        }
    }

    fn mark(stage: &str) -> StageMark {
        StageMark {
            id: stage.into(),
            datasets: vec![],
            lake_base: 0,
            started_at: Utc::now(),
            expires_at: Utc::now(),
            holder: Holder::this_process(),
        }
    }

    #[tokio::test]
    async fn the_first_decision_holds_and_pinned_views_do_not_see_later_ones() {
        let dir = tempfile::tempdir().unwrap();
        let store = LakeStore::open(dir.path().to_str().unwrap(), &Vec::new(), true).unwrap();
        let recovery = LakeLog::new(store.clone());
        assert_eq!(recovery.decide(decision("s1", StageOutcome::Aborted)).await.unwrap().seq, 1);
        // The stage's own writer, arriving second (another process: its own caches), defers to it.
        let writer = LakeLog::new(store.clone());
        let held = writer.decide(decision("s1", StageOutcome::Committed)).await.unwrap();
        assert_eq!((held.seq, held.outcome), (1, StageOutcome::Aborted));

        let before = writer.pinned_view().await.unwrap();
        assert_eq!(writer.decide(decision("s2", StageOutcome::Committed)).await.unwrap().seq, 2);
        assert_eq!(
            before.visibility(&mark("s2")).await.unwrap(),
            Visibility::Pending,
            "decided after the view was pinned"
        );
        assert_eq!(before.visibility(&mark("s1")).await.unwrap(), Visibility::Skipped { seq: 1 });
        let after = recovery.pinned_view().await.unwrap();
        assert_eq!(after.visibility(&mark("s2")).await.unwrap(), Visibility::Visible { seq: 2 });
        assert!(!before.admits(2) && after.admits(2) && recovery.lazy_view().admits(u64::MAX));
        // By the entries' own times (a second decision within a millisecond of the first is stamped
        // a millisecond later, so a test's `Utc::now()` can precede it).
        let second = recovery.entry(2).await.unwrap().unwrap().committed_at;
        assert_eq!(recovery.head_at(second).await.unwrap(), 2);
        assert_eq!(recovery.head_at(second - chrono::Duration::milliseconds(1)).await.unwrap(), 1);
        assert_eq!(recovery.list(10).await.unwrap().iter().map(|e| e.seq).collect::<Vec<_>>(), vec![2, 1]);
    }

    #[tokio::test]
    async fn a_stage_begun_after_the_view_was_pinned_is_pending_to_it() {
        // A reader pins its view, then meets the entry of a stage that started at that same head
        // (lake_base == the view's head): nothing after the base is in view, so it is pending.
        let dir = tempfile::tempdir().unwrap();
        let store = LakeStore::open(dir.path().to_str().unwrap(), &Vec::new(), true).unwrap();
        let log = LakeLog::new(store.clone());
        log.decide(decision("s1", StageOutcome::Committed)).await.unwrap();
        let view = log.pinned_view().await.unwrap();
        let later = StageMark { lake_base: 1, ..mark("s2") };
        assert_eq!(view.visibility(&later).await.unwrap(), Visibility::Pending);
        log.decide(Decision { lake_base: 1, ..decision("s2", StageOutcome::Committed) }).await.unwrap();
        assert_eq!(view.visibility(&later).await.unwrap(), Visibility::Pending, "decided after the view was pinned");
        assert_eq!(log.pinned_view().await.unwrap().visibility(&later).await.unwrap(), Visibility::Visible { seq: 2 });
    }

    #[tokio::test]
    async fn a_stage_whose_process_is_gone_is_undone() {
        let dir = tempfile::tempdir().unwrap();
        let log = LakeLog::new(LakeStore::open(dir.path().to_str().unwrap(), &Vec::new(), true).unwrap());
        // A lease far in the future, but a pid that no process has.
        let mut gone = mark("s1");
        gone.expires_at = Utc::now() + chrono::Duration::hours(1);
        gone.holder.pid = u32::MAX;
        let d = log.await_decision(&gone).await.unwrap();
        assert_eq!((d.outcome, d.decided_by.as_str()), (StageOutcome::Aborted, "recovery"));
    }
}
