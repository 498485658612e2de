//! The job store on the lake's object store, and the handle a process holds while it runs a job.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectMeta;
use object_store::path::Path;
use serde::Serialize;

use super::{Change, Finish, JobEvent, JobProgress, JobRecord, JobSettings, JobSpec, JobStatus, log};
use crate::error::{Error, Result};
use crate::progress::Progress;
use crate::storage::LakeStore;
use crate::table::Lake;
use crate::table::lake_log::Holder;

/// The folder of every job's objects; outside every dataset's folder.
const ROOT: &str = "_jobs";

/// Reads of event objects in flight at once (S3 round trips overlap).
const READ_CONCURRENCY: usize = 32;

/// The queue's index: one empty object per queued job not yet finished, `_jobs/_queue/<id>`, so a
/// worker's claim reads what is queued, not every job that ever ran. Written before the job's first
/// event and removed after its last, so a crash leaves an entry too many (dropped by the next claim
/// that finds its job finished, or absent for [`ORPHAN_AGE`]), never a queued job without one.
const QUEUE: &str = "_queue";

/// Marks a lake whose queued jobs are all in the index: a lake from before the index is indexed
/// once, by the first claim that finds this missing.
const QUEUE_INDEXED: &str = "_queue.v1";

/// How long an index entry may wait for its job's first event before a claim drops it.
const ORPHAN_AGE: chrono::Duration = chrono::Duration::minutes(10);

/// The lake's job records: create, claim, list, cancel.
#[derive(Debug, Clone)]
pub struct JobStore {
    store: LakeStore,
    settings: JobSettings,
    /// Whether this process has seen [`QUEUE_INDEXED`] (it is never removed).
    indexed: Arc<std::sync::atomic::AtomicBool>,
}

fn events_dir(id: &str) -> Path {
    Path::from_iter([ROOT, id, "events"])
}

fn event_path(id: &str, seq: u64) -> Path {
    Path::from_iter([ROOT, id, "events", &format!("{seq:010}.json")])
}

fn queue_entry(id: &str) -> Path {
    Path::from_iter([ROOT, QUEUE, id])
}

fn log_path(id: &str, attempt: u32) -> Path {
    Path::from_iter([ROOT, id, "log", &format!("{attempt:03}.txt")])
}

/// A job id: its creation time (so ids sort by age), its kind, and a random suffix.
fn new_id(kind: &str, now: DateTime<Utc>) -> String {
    let suffix = uuid::Uuid::new_v4().simple().to_string();
    format!("{}-{kind}-{}", now.format("%Y%m%dT%H%M%SZ"), &suffix[..6])
}

/// Job ids name folders: refuse anything that is not one (a typo, a path). A child job's id is its
/// parent's and a dotted suffix.
fn check_id(id: &str) -> Result<()> {
    let valid = !id.is_empty()
        && id.len() <= 200
        && !id.starts_with('.')
        && !id.contains("..")
        && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if valid {
        Ok(())
    } else {
        Err(Error::invalid(format!("'{id}' is not a job id (e.g. 20240325T213000Z-daily_run-3f9a2c)")))
    }
}

/// What `jobs clean` removed.
#[derive(Debug, Clone, Serialize)]
pub struct CleanReport {
    pub jobs_removed: usize,
    pub objects_removed: usize,
    pub jobs_kept: usize,
    /// The scheduler's markers of events fired before the cutoff (`_jobs/_schedule/fired/`).
    pub schedule_markers_removed: usize,
}

impl JobStore {
    pub fn new(lake: &Lake, settings: JobSettings) -> Self {
        Self { store: lake.store().clone(), settings, indexed: Default::default() }
    }

    pub fn settings(&self) -> &JobSettings {
        &self.settings
    }

    async fn put_event(&self, id: &str, seq: u64, change: Change) -> Result<Option<JobEvent>> {
        let event = JobEvent { seq, at: Utc::now(), change };
        let written = self.store.put_if_absent(&event_path(id, seq), Bytes::from(serde_json::to_vec(&event)?)).await?;
        Ok(written.map(|_| event))
    }

    async fn read_events(&self, paths: Vec<Path>) -> Result<Vec<JobEvent>> {
        let mut events: Vec<JobEvent> = futures::stream::iter(paths)
            .map(|p| async move {
                let bytes = self
                    .store
                    .get(&p)
                    .await?
                    .ok_or_else(|| Error::invalid(format!("job event {p} vanished while being read")))?;
                Ok::<_, Error>(serde_json::from_slice::<JobEvent>(&bytes)?)
            })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        events.sort_by_key(|e| e.seq);
        Ok(events)
    }

    /// Every event of job `id`, in order.
    async fn events(&self, id: &str) -> Result<Vec<JobEvent>> {
        let paths = self.store.list(&events_dir(id)).await?.into_iter().map(|m| m.location).collect();
        self.read_events(paths).await
    }

    /// The events of job `id` after sequence number `seq`.
    async fn events_after(&self, id: &str, seq: u64) -> Result<Vec<JobEvent>> {
        let paths = self
            .store
            .list_after(&events_dir(id), &event_path(id, seq))
            .await?
            .into_iter()
            .map(|m| m.location)
            .collect();
        self.read_events(paths).await
    }

    /// Job `id`'s record; a clear error when there is no such job.
    pub async fn get(&self, id: &str) -> Result<JobRecord> {
        check_id(id)?;
        let events = self.events(id).await?;
        JobRecord::fold(id, &events, Utc::now())
            .ok_or_else(|| Error::invalid(format!("no job '{id}' in this lake (quantlake jobs lists them)")))
    }

    /// Every job created at or after `since` (all when `None`), oldest first.
    pub async fn list(&self, since: Option<DateTime<Utc>>) -> Result<Vec<JobRecord>> {
        let mut by_job: BTreeMap<String, Vec<Path>> = BTreeMap::new();
        for meta in self.store.list(&Path::from(ROOT)).await? {
            let parts: Vec<String> = meta.location.parts().map(|p| p.as_ref().to_string()).collect();
            if let [_, id, folder, _] = parts.as_slice()
                && folder == "events"
            {
                by_job.entry(id.clone()).or_default().push(meta.location);
            }
        }
        let now = Utc::now();
        let mut records = Vec::new();
        for (id, paths) in by_job {
            let events = self.read_events(paths).await?;
            if let Some(r) = JobRecord::fold(&id, &events, now)
                && since.is_none_or(|s| r.created_at >= s)
            {
                records.push(r);
            }
        }
        records.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(records)
    }

    fn created(spec: &JobSpec, queued: bool) -> Change {
        Change::Created {
            kind: spec.kind.clone(),
            params: spec.params.clone(),
            parent: spec.parent.clone(),
            queued,
            not_before: spec.not_before,
            scheduled_for: spec.scheduled_for,
            share: spec.share,
        }
    }

    async fn create(&self, spec: &JobSpec, queued: bool) -> Result<JobRecord> {
        loop {
            let now = Utc::now();
            let id = new_id(&spec.kind, now);
            if queued {
                self.index(&id).await?;
            }
            // A clash of two random suffixes in the same second: draw again (the entry written for
            // the other job's id is harmless: a claim reads the job itself).
            if let Some(event) = self.put_event(&id, 0, Self::created(spec, queued)).await? {
                return JobRecord::fold(&id, &[event], now).ok_or_else(|| Error::invalid("job record did not fold"));
            }
        }
    }

    /// Queues a job under a chosen id, or returns the job already there: creating it again (a
    /// coordinator resumed after a crash) never makes a second job for the same work.
    pub async fn enqueue_as(&self, id: &str, spec: JobSpec) -> Result<JobRecord> {
        check_id(id)?;
        self.index(id).await?;
        if self.put_event(id, 0, Self::created(&spec, true)).await?.is_some() {
            tracing::debug!(job_id = %id, kind = %spec.kind, "queued job {id}");
        }
        self.get(id).await
    }

    /// Queues a job for a worker (`quantlake worker`).
    pub async fn enqueue(&self, spec: JobSpec) -> Result<JobRecord> {
        let record = self.create(&spec, true).await?;
        tracing::info!(job_id = %record.id, kind = %record.kind, "queued job {}", record.id);
        Ok(record)
    }

    /// Creates a job and claims it for this process: the caller runs it.
    pub async fn start(&self, spec: JobSpec) -> Result<JobHandle> {
        let record = self.create(&spec, false).await?;
        self.try_claim(&record).await?.ok_or_else(|| {
            Error::invalid(format!("job {} was claimed by another process as it was created", record.id))
        })
    }

    /// Takes over job `id` to resume it: it must be queued or abandoned (its process gone or its lease
    /// expired), not running elsewhere or finished.
    pub async fn claim(&self, id: &str) -> Result<JobHandle> {
        for _ in 0..8 {
            let record = self.get(id).await?;
            match record.status {
                JobStatus::Queued | JobStatus::Abandoned if !record.cancel_requested => {}
                JobStatus::Running => {
                    let reason = format!(
                        "is running on {} (lease until {}); it can be resumed when that process stops",
                        record.worker.as_deref().unwrap_or("?"),
                        record.lease_until.map(|t| t.to_rfc3339()).unwrap_or_default()
                    );
                    return Err(Error::Job { id: id.to_string(), reason });
                }
                status => {
                    return Err(Error::Job {
                        id: id.to_string(),
                        reason: format!("is {status}; only a queued or abandoned job can be resumed"),
                    });
                }
            }
            if let Some(handle) = self.try_claim(&record).await? {
                return Ok(handle);
            }
        }
        Err(Error::Job { id: id.to_string(), reason: "could not claim it, other processes kept changing it".into() })
    }

    /// Enters job `id` in the queue's index.
    async fn index(&self, id: &str) -> Result<()> {
        self.store.put(&queue_entry(id), Bytes::new()).await.map(drop)
    }

    /// Takes job `id` out of the queue's index once it is finished; a failure only leaves an entry
    /// the next claim drops.
    async fn unindex(&self, id: &str) {
        if let Err(e) = self.store.delete(&queue_entry(id)).await {
            tracing::warn!(job_id = %id, "job {id}: could not remove its queue entry (the next claim will): {e}");
        }
    }

    /// The queued jobs that have not finished, oldest first: the index's entries, each job's record
    /// read (a claim's cost follows the queue, not the jobs that ever ran). Entries of finished jobs
    /// and orphans are dropped on the way.
    async fn queued(&self) -> Result<Vec<JobRecord>> {
        self.index_existing().await?;
        let now = Utc::now();
        let entries = self.store.list(&Path::from_iter([ROOT, QUEUE])).await?;
        let records: Vec<(ObjectMeta, Option<JobRecord>)> = futures::stream::iter(entries)
            .map(|entry| async move {
                let id = entry.location.filename().unwrap_or_default().to_string();
                let events = self.events(&id).await?;
                Ok::<_, Error>((entry, JobRecord::fold(&id, &events, now)))
            })
            .buffer_unordered(READ_CONCURRENCY)
            .try_collect()
            .await?;
        let mut queued = Vec::new();
        for (entry, record) in records {
            match record {
                Some(r) if r.queued && !r.status.is_finished() => queued.push(r),
                Some(r) => self.unindex(&r.id).await,
                None if entry.last_modified < now - ORPHAN_AGE => {
                    self.unindex(entry.location.filename().unwrap_or_default()).await;
                }
                None => {}
            }
        }
        queued.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        Ok(queued)
    }

    /// Indexes the queued jobs of a lake from before the index, once per lake.
    async fn index_existing(&self) -> Result<()> {
        use std::sync::atomic::Ordering::Relaxed;
        let marker = Path::from_iter([ROOT, QUEUE_INDEXED]);
        if self.indexed.load(Relaxed) || self.store.head(&marker).await?.is_some() {
            self.indexed.store(true, Relaxed);
            return Ok(());
        }
        let unfinished = self.list(None).await?.into_iter().filter(|r| r.queued && !r.status.is_finished());
        for record in unfinished {
            self.index(&record.id).await?;
        }
        self.store.put(&marker, Bytes::from_static(b"{\"queue_index\": 1}\n")).await?;
        self.indexed.store(true, Relaxed);
        Ok(())
    }

    /// Whether this process takes `record` now: a claimable job of its share (all when it has
    /// none), or of another share once it has waited a lease in the queue (that worker never came).
    pub fn takes(&self, record: &JobRecord, now: DateTime<Utc>) -> bool {
        record.claimable(now)
            && self.settings.shard.is_none_or(|shard| {
                shard.owns(record.share)
                    || record.created_at.max(record.not_before.unwrap_or(record.created_at)) + self.settings.lease
                        <= now
            })
    }

    /// Whether a queued job is running or claimable now (by any share): what a sharded `worker --once`
    /// waits on, since a running backfill queues its next step's chunks, some of them its share, and
    /// another share's chunk becomes its after a lease. A job held back (`not_before`) is not waited on.
    pub async fn queue_busy(&self) -> Result<bool> {
        let now = Utc::now();
        Ok(self.queued().await?.iter().any(|r| r.status == JobStatus::Running || r.claimable(now)))
    }

    /// Claims the oldest queued job of one of `kinds` (any kind when empty) this process takes
    /// ([`Self::takes`]: its own share's first), if there is one.
    pub async fn claim_next(&self, kinds: &[&str]) -> Result<Option<JobHandle>> {
        let now = Utc::now();
        let mut candidates: Vec<JobRecord> = self
            .queued()
            .await?
            .into_iter()
            .filter(|r| self.takes(r, now) && (kinds.is_empty() || kinds.contains(&r.kind.as_str())))
            .collect();
        // Stable: oldest first within its own share, then the others'.
        candidates.sort_by_key(|r| self.settings.shard.is_some_and(|shard| !shard.owns(r.share)));
        for record in candidates {
            // Losing the race for one job is normal with several workers: try the next.
            if let Some(handle) = self.try_claim(&record).await? {
                return Ok(Some(handle));
            }
        }
        Ok(None)
    }

    /// Appends a claim after `record`'s last event (read just before); `None` when another process
    /// changed the job first.
    pub async fn try_claim(&self, record: &JobRecord) -> Result<Option<JobHandle>> {
        let holder = Holder::this_process();
        let suffix = uuid::Uuid::new_v4().simple().to_string();
        let worker = format!("{}:{}:{}", holder.host, holder.pid, &suffix[..6]);
        let lease_until = Utc::now() + self.settings.lease;
        let change = Change::Claimed { worker: worker.clone(), holder, lease_until };
        let Some(event) = self.put_event(&record.id, record.last_seq + 1, change).await? else { return Ok(None) };
        tracing::info!(job_id = %record.id, kind = %record.kind, worker = %worker, attempt = record.attempts + 1, "claimed job {}", record.id);
        Ok(Some(JobHandle::new(self.clone(), record.clone(), worker, event.seq)))
    }

    /// Cancels job `id`: a job nobody holds is finished `CANCELLED` at once; a running one is asked to
    /// stop, and stops at its next check.
    pub async fn cancel(&self, id: &str, reason: &str) -> Result<JobRecord> {
        for _ in 0..8 {
            let record = self.get(id).await?;
            if record.status.is_finished() {
                return Err(Error::Job { id: id.to_string(), reason: format!("already finished ({})", record.status) });
            }
            let change = if record.status == JobStatus::Running {
                Change::CancelRequested { reason: reason.to_string() }
            } else {
                Change::Finished(Finish {
                    error: Some(format!("cancelled: {reason}")),
                    ..Finish::with_status(JobStatus::Cancelled)
                })
            };
            let finishes = matches!(change, Change::Finished(_));
            if self.put_event(id, record.last_seq + 1, change).await?.is_some() {
                tracing::info!(job_id = %id, "cancel requested for job {id}: {reason}");
                if finishes {
                    self.unindex(id).await;
                }
                return self.get(id).await;
            }
        }
        Err(Error::Job {
            id: id.to_string(),
            reason: "could not record the cancel, other processes kept changing it".into(),
        })
    }

    /// The job's log, one entry per attempt.
    pub async fn log(&self, id: &str) -> Result<Vec<(u32, String)>> {
        check_id(id)?;
        let mut logs = Vec::new();
        for meta in self.store.list(&Path::from_iter([ROOT, id, "log"])).await? {
            let attempt =
                meta.location.filename().and_then(|f| f.strip_suffix(".txt")).and_then(|n| n.parse().ok()).unwrap_or(0);
            if let Some(bytes) = self.store.get(&meta.location).await? {
                logs.push((attempt, String::from_utf8_lossy(&bytes).into_owned()));
            }
        }
        logs.sort_by_key(|(a, _)| *a);
        Ok(logs)
    }

    /// Removes finished jobs that ended before `now - age` (the runbook's 90-day cleanup).
    pub async fn clean_older_than(&self, age: std::time::Duration) -> Result<CleanReport> {
        let age = chrono::Duration::from_std(age).map_err(|_| Error::invalid("age is too long"))?;
        let cutoff = Utc::now() - age;
        let (old, kept): (Vec<_>, Vec<_>) = self
            .list(None)
            .await?
            .into_iter()
            .partition(|r| r.status.is_finished() && r.ended_at.is_some_and(|t| t < cutoff));
        let mut objects_removed = 0;
        for r in &old {
            for meta in self.store.list(&Path::from_iter([ROOT, r.id.as_str()])).await? {
                self.store.delete(&meta.location).await?;
                objects_removed += 1;
            }
        }
        // A fired event's marker only matters while the event can come due again: within
        // `schedule.catch_up` (hours), far less than any retention.
        let mut schedule_markers_removed = 0;
        for meta in self.store.list(&Path::from_iter([ROOT, "_schedule", "fired"])).await? {
            if meta.last_modified < cutoff {
                self.store.delete(&meta.location).await?;
                schedule_markers_removed += 1;
            }
        }
        Ok(CleanReport { jobs_removed: old.len(), objects_removed, jobs_kept: kept.len(), schedule_markers_removed })
    }

    async fn put_log(&self, id: &str, attempt: u32, lines: &[String]) -> Result<()> {
        let mut text = lines.join("\n");
        text.push('\n');
        self.store.put(&log_path(id, attempt), Bytes::from(text)).await?;
        Ok(())
    }
}

/// Why a held job must stop.
const GO: u8 = 0;
const CANCELLED: u8 = 1;
const LOST: u8 = 2;

struct Shared {
    jobs: JobStore,
    record: JobRecord,
    worker: String,
    attempt: u32,
    /// The last sequence number this handle knows of; appends go through this lock, one at a time.
    last_seq: tokio::sync::Mutex<u64>,
    progress: std::sync::Mutex<Option<JobProgress>>,
    /// The stage and count last shown on the [`observe_progress`] observer.
    shown: std::sync::Mutex<(String, u64)>,
    stop: AtomicU8,
}

/// Where this process's jobs also report their progress, if anywhere: the command line's bar.
static OBSERVER: std::sync::OnceLock<Arc<dyn Progress>> = std::sync::OnceLock::new();

/// Shows the progress of every job this process runs on `observer` too (the command line sets its
/// bar for a job it runs in the foreground: a backfill, the daily run, a bootstrap). Once per process.
pub fn observe_progress(observer: Arc<dyn Progress>) {
    let _ = OBSERVER.set(observer);
}

/// A claimed job: renews its lease in the background until it is finished or dropped (a dropped
/// handle's job is abandoned when the lease runs out, and can be resumed).
pub struct JobHandle {
    shared: Arc<Shared>,
    heartbeat: tokio::task::JoinHandle<()>,
    span: tracing::Span,
}

impl Drop for JobHandle {
    fn drop(&mut self) {
        self.heartbeat.abort();
    }
}

impl JobHandle {
    fn new(jobs: JobStore, record: JobRecord, worker: String, claim_seq: u64) -> Self {
        let attempt = record.attempts + 1;
        log::capture(&record.id);
        let span = tracing::info_span!(parent: None, "job", job_id = %record.id, kind = %record.kind);
        let shared = Arc::new(Shared {
            progress: std::sync::Mutex::new(record.progress.clone()),
            jobs,
            record,
            worker,
            attempt,
            last_seq: tokio::sync::Mutex::new(claim_seq),
            shown: std::sync::Mutex::new((String::new(), 0)),
            stop: AtomicU8::new(GO),
        });
        let heartbeat = tokio::spawn(heartbeats(Arc::clone(&shared)));
        Self { shared, heartbeat, span }
    }

    pub fn id(&self) -> &str {
        &self.shared.record.id
    }

    pub fn kind(&self) -> &str {
        &self.shared.record.kind
    }

    /// The parameters the job was created with.
    pub fn params(&self) -> &serde_json::Value {
        &self.shared.record.params
    }

    /// The record as it was when this process claimed the job (a resumed job's earlier progress).
    pub fn claimed_record(&self) -> &JobRecord {
        &self.shared.record
    }

    pub fn attempt(&self) -> u32 {
        self.shared.attempt
    }

    /// The span to run the job's work in: its events go to the job's log and carry its id.
    pub fn span(&self) -> tracing::Span {
        self.span.clone()
    }

    /// Records where the job is; the next heartbeat stores it.
    pub fn progress(&self, stage: &str, done: u64, total: u64, message: Option<String>) {
        if let Some(observer) = OBSERVER.get() {
            let mut shown = self.shared.shown.lock().unwrap_or_else(|e| e.into_inner());
            if shown.0 != stage || done < shown.1 {
                observer.reset();
                observer.message(stage);
                *shown = (stage.to_string(), 0);
            }
            observer.set_length(total);
            observer.inc(done - shown.1);
            shown.1 = done;
        }
        let p = JobProgress { stage: stage.to_string(), done, total, message };
        *self.shared.progress.lock().unwrap_or_else(|e| e.into_inner()) = Some(p);
    }

    /// Stores the progress now, rather than at the next heartbeat.
    pub async fn save_progress(&self) -> Result<()> {
        heartbeat(&self.shared).await
    }

    /// Records that the unit of work `name` is committed (a resumed job finds it in
    /// [`JobRecord::checkpoints`]).
    pub async fn checkpoint(&self, name: &str, value: serde_json::Value) -> Result<()> {
        append(&self.shared, Change::Checkpoint { name: name.to_string(), value }).await
    }

    /// Whether someone asked this job to stop (`jobs cancel`).
    pub fn cancel_requested(&self) -> bool {
        self.shared.stop.load(Ordering::SeqCst) == CANCELLED
    }

    /// `Err` when the job must stop: cancelled, or its lease was taken over.
    pub fn check(&self) -> Result<()> {
        let id = &self.shared.record.id;
        match self.shared.stop.load(Ordering::SeqCst) {
            GO => Ok(()),
            CANCELLED => Err(Error::Job { id: id.clone(), reason: "cancelled".into() }),
            _ => Err(Error::Job {
                id: id.clone(),
                reason: "this process lost its claim (its lease expired and another process took the job over)".into(),
            }),
        }
    }

    /// Finishes the job with `result`'s status: an error is `FAILED`, or `CANCELLED` when the job was
    /// asked to stop.
    pub async fn finish_with(self, result: Result<Finish>) -> Result<JobRecord> {
        let finish = match result {
            Ok(f) => f,
            Err(e) if self.cancel_requested() => {
                Finish { error: Some(e.to_string()), ..Finish::with_status(JobStatus::Cancelled) }
            }
            Err(e) => Finish::failed(&e),
        };
        self.finish(finish).await
    }

    /// Records how the job ended, stores its log, and returns the final record.
    pub async fn finish(self, mut finish: Finish) -> Result<JobRecord> {
        self.heartbeat.abort();
        finish.peak_rss_bytes = finish.peak_rss_bytes.or_else(peak_rss_bytes);
        let s = &self.shared;
        let id = s.record.id.clone();
        match &finish.error {
            Some(e) => tracing::error!(
                target: super::JOB_END_TARGET,
                parent: &self.span,
                job_id = %id,
                "Failed to complete job {id} ({}): {e}",
                finish.status
            ),
            None => {
                tracing::info!(target: super::JOB_END_TARGET, parent: &self.span, job_id = %id, "job {id} {}", finish.status)
            }
        }
        let lines = log::release(&id);
        s.jobs.put_log(&id, s.attempt, &lines).await?;
        append(s, Change::Finished(finish)).await?;
        if s.record.queued {
            s.jobs.unindex(&id).await;
        }
        s.jobs.get(&id).await
    }
}

/// This process's peak resident set size (Linux: `VmHWM` in /proc/self/status), bytes; `None` where
/// the system does not say.
fn peak_rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: u64 = line.trim_start_matches("VmHWM:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib * 1024)
}

/// Appends `change` after the last event, re-reading when another process appended first: a cancel
/// request is noted and the append retried; a claim or finish by someone else means the job is lost.
async fn append(s: &Shared, change: Change) -> Result<()> {
    let id = &s.record.id;
    let mut last = s.last_seq.lock().await;
    loop {
        if s.stop.load(Ordering::SeqCst) == LOST {
            return Err(Error::Job { id: id.clone(), reason: "this process lost its claim".into() });
        }
        if s.jobs.put_event(id, *last + 1, change.clone()).await?.is_some() {
            *last += 1;
            return Ok(());
        }
        for e in s.jobs.events_after(id, *last).await? {
            match &e.change {
                Change::CancelRequested { reason } => {
                    tracing::warn!(job_id = %id, "job {id}: cancel requested: {reason}");
                    s.stop.store(CANCELLED, Ordering::SeqCst);
                }
                Change::Claimed { worker, .. } if *worker != s.worker => s.stop.store(LOST, Ordering::SeqCst),
                Change::Finished(_) => s.stop.store(LOST, Ordering::SeqCst),
                _ => {}
            }
            *last = e.seq;
        }
    }
}

async fn heartbeat(s: &Shared) -> Result<()> {
    let progress = s.progress.lock().unwrap_or_else(|e| e.into_inner()).clone();
    append(s, Change::Heartbeat { lease_until: Utc::now() + s.jobs.settings.lease, progress }).await?;
    s.jobs.put_log(&s.record.id, s.attempt, &log::buffered(&s.record.id)).await
}

/// Renews the lease every `jobs.heartbeat` until the handle finishes or is dropped. A failed renewal
/// is retried at the next beat: the lease is several beats long.
async fn heartbeats(s: Arc<Shared>) {
    let mut tick = tokio::time::interval(s.jobs.settings.heartbeat);
    tick.tick().await;
    loop {
        tick.tick().await;
        if let Err(e) = heartbeat(&s).await {
            tracing::warn!(job_id = %s.record.id, "job {}: heartbeat failed: {e}", s.record.id);
        }
        if s.stop.load(Ordering::SeqCst) == LOST {
            tracing::error!(job_id = %s.record.id, "Failed to keep job {}: another process claimed it; stopping", s.record.id);
            return;
        }
    }
}
