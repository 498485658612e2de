//! Job records: every stage of the daily run, every backfill and every queued task is a job, recorded
//! in the lake under `_jobs/` so it reads the same from any machine, on local disk or S3.
//!
//! ```no_run
//! # async fn example(lake: &quantlake::table::Lake) -> quantlake::error::Result<()> {
//! use quantlake::ops::jobs::{JobSpec, JobStore, JobSettings, Finish};
//!
//! let jobs = JobStore::new(lake, JobSettings::default());
//! let job = jobs.start(JobSpec::new("curate", serde_json::json!({ "date": "2024-03-25" }))).await?;
//! job.progress("curate", 0, 1, None);
//! // ... the work; `job.check()?` between steps stops it when someone runs `jobs cancel`.
//! let record = job.finish(Finish::succeeded(390, 390)).await?;
//! println!("{} {:?} in {:.1}s", record.id, record.status, record.duration_seconds.unwrap_or(0.0));
//! # Ok(()) }
//! ```
//!
//! ## Protocol
//! A job is an append-only log of events, `_jobs/<id>/events/<seq>.json`, each written with
//! put-if-absent at the next sequence number (the store primitive the manifest commits with). The
//! record is the fold of its events ([`JobRecord`]). Because every change, claiming the job included,
//! takes the next sequence number, two processes can never both hold a job: a worker whose heartbeat
//! loses the race re-reads, finds another claim, and stops ([`JobHandle::check`] then fails).
//!
//! - `created`: kind, parameters, parent job, `queued` (a worker runs it) or not (its creator does),
//!   `not_before`, the time it was scheduled for (its lag is measured from that).
//! - `claimed`: a process takes the job with a lease (`jobs.lease`), renewed by `heartbeat` events that
//!   also carry progress. A claim whose lease expired, or whose process is known dead (same host:
//!   `/proc`), may be taken over: a queued job by any worker, any job by an explicit resume.
//! - `cancel_requested`: `jobs cancel` on a running job; its holder stops at its next check. A job
//!   nobody holds is cancelled at once (`finished`).
//! - `checkpoint`: a unit of work committed (a backfill's chunk), so a resumed job skips it.
//! - `finished`: the status (succeeded, partial, failed, cancelled, skipped), rows in and out, the
//!   snapshots produced, the error, and the job's report.
//!
//! A job's log ([`log`]) is stored beside its events, one object per attempt, rewritten at each heartbeat.

pub mod log;
mod stage;
mod store;

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};
use crate::outcome::Outcome;
use crate::table::lake_log::Holder;

pub use stage::StageCounts;
pub use store::{JobHandle, JobStore, observe_progress};

/// The `tracing` target of the line that says how a job ended (`Failed to complete job ...`): a
/// command that prints the same error itself can leave it out of stderr; the log file keeps it.
pub const JOB_END_TARGET: &str = "quantlake::job_end";

/// `[jobs]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct JobSettings {
    /// How long a claim holds without a heartbeat; after it, another process may take the job over.
    #[serde(with = "crate::duration")]
    pub lease: std::time::Duration,
    /// How often a running job renews its lease and records its progress.
    #[serde(with = "crate::duration")]
    pub heartbeat: std::time::Duration,
    /// Finished job records older than this are removed by maintenance (`jobs clean`).
    #[serde(with = "crate::duration")]
    pub retention: std::time::Duration,
    /// This process's share of the queue, when workers are given theirs (`worker --shard I/N`, or a
    /// cluster's job index); not a setting of the file.
    #[serde(skip)]
    pub shard: Option<Shard>,
}

/// A worker's fixed share of the queue, `index` of `count` (`I/N`, 0-based): it takes the jobs queued
/// with a share `s` where `s % count == index` (a backfill's chunks, round robin), and any other job;
/// another share's job only once it has waited a lease in the queue (its worker never came).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Self> {
        if count == 0 || index >= count {
            return Err(Error::invalid(format!(
                "shard {index}/{count}: expected I/N with 0 <= I < N (e.g. 2/8, the third of eight workers)"
            )));
        }
        Ok(Self { index, count })
    }

    /// Whether a job queued with share `share` is this worker's (a job without one is everyone's).
    pub fn owns(&self, share: Option<u32>) -> bool {
        share.is_none_or(|s| s % self.count == self.index)
    }

    /// The shard a scheduler gave this process through the environment: a Kubernetes Indexed Job's
    /// `JOB_COMPLETION_INDEX` with `JOB_COMPLETION_COUNT` (set it to the Job's `completions`), or an AWS
    /// Batch array job's `AWS_BATCH_JOB_ARRAY_INDEX` with `AWS_BATCH_JOB_ARRAY_SIZE` (set it to the
    /// array's size). `None` when neither index is set.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Option<Self>> {
        const PAIRS: [(&str, &str); 2] = [
            ("JOB_COMPLETION_INDEX", "JOB_COMPLETION_COUNT"),
            ("AWS_BATCH_JOB_ARRAY_INDEX", "AWS_BATCH_JOB_ARRAY_SIZE"),
        ];
        for (index_var, count_var) in PAIRS {
            let Some(index) = var(index_var) else { continue };
            let count = var(count_var).ok_or_else(|| {
                Error::invalid(format!(
                    "{index_var}={index} is set but {count_var} is not: set {count_var} to the number of workers \
                     (or pass worker --shard I/N)"
                ))
            })?;
            let number = |name: &str, v: &str| {
                v.trim().parse::<u32>().map_err(|_| Error::invalid(format!("{name}='{v}' is not a whole number")))
            };
            return Self::new(number(index_var, &index)?, number(count_var, &count)?).map(Some);
        }
        Ok(None)
    }
}

impl std::str::FromStr for Shard {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        let bad = || Error::invalid(format!("shard '{s}': expected I/N (e.g. 2/8, the third of eight workers)"));
        let (i, n) = s.split_once('/').ok_or_else(bad)?;
        Self::new(i.trim().parse().map_err(|_| bad())?, n.trim().parse().map_err(|_| bad())?)
    }
}

impl std::fmt::Display for Shard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Default for JobSettings {
    fn default() -> Self {
        Self {
            lease: std::time::Duration::from_secs(120),
            heartbeat: std::time::Duration::from_secs(20),
            retention: std::time::Duration::from_secs(90 * 86_400),
            shard: None,
        }
    }
}

/// What to create.
#[derive(Debug, Clone)]
pub struct JobSpec {
    pub kind: String,
    pub params: Value,
    pub parent: Option<String>,
    /// Not before this time (a worker holds it back; `backfill --not-before`).
    pub not_before: Option<DateTime<Utc>>,
    /// When the schedule wanted it to start; the record's lag is measured from it.
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The share of the queue it is in ([`Shard::owns`]); `None`: any worker's.
    pub share: Option<u32>,
}

impl JobSpec {
    pub fn new(kind: &str, params: Value) -> Self {
        Self { kind: kind.to_string(), params, parent: None, not_before: None, scheduled_for: None, share: None }
    }

    /// Which worker's share the job is in, for sharded workers ([`Shard`]): a backfill chunk's position.
    pub fn share(mut self, share: u32) -> Self {
        self.share = Some(share);
        self
    }

    pub fn child_of(mut self, parent: &str) -> Self {
        self.parent = Some(parent.to_string());
        self
    }

    pub fn scheduled_for(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.scheduled_for = at;
        self
    }

    pub fn not_before(mut self, at: Option<DateTime<Utc>>) -> Self {
        self.not_before = at;
        self
    }
}

/// A job's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum JobStatus {
    /// Waiting for a worker.
    Queued,
    /// Held by a live process.
    Running,
    /// Started by a process that stopped without finishing it (its lease expired, or it is known
    /// dead): `backfill resume` (or a worker, for a queued job) takes it over.
    Abandoned,
    Succeeded,
    /// Done, with some of the work failed (e.g. a symbol the source refused).
    Partial,
    Failed,
    /// Not run: a RED input partition (`--force` runs it anyway).
    Blocked,
    Cancelled,
    /// Nothing to do (a holiday).
    Skipped,
}

impl JobStatus {
    pub fn is_finished(self) -> bool {
        !matches!(self, JobStatus::Queued | JobStatus::Running | JobStatus::Abandoned)
    }

    /// The exit-code contract's view of a finished job.
    pub fn outcome(self) -> Outcome {
        match self {
            JobStatus::Succeeded | JobStatus::Skipped | JobStatus::Queued | JobStatus::Running => Outcome::Ok,
            JobStatus::Partial | JobStatus::Cancelled | JobStatus::Abandoned => Outcome::Warning,
            JobStatus::Failed | JobStatus::Blocked => Outcome::Critical,
        }
    }
}

impl std::fmt::Display for JobStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let text = serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default();
        f.write_str(&text)
    }
}

/// Where a running job is: its current stage and how far along.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobProgress {
    pub stage: String,
    pub done: u64,
    pub total: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// How a job ended, as its runner reports it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Finish {
    pub status: JobStatus,
    pub rows_in: u64,
    pub rows_out: u64,
    /// Snapshots produced, per dataset.
    #[serde(default)]
    pub snapshots: BTreeMap<String, u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The job's report (the command's `--json` output).
    #[serde(default)]
    pub report: Value,
    /// The process's peak resident memory when the job ended, bytes (set by [`JobHandle::finish`];
    /// a worker that ran several jobs reports the most any of them needed so far).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
}

impl Finish {
    pub fn with_status(status: JobStatus) -> Self {
        Self {
            status,
            rows_in: 0,
            rows_out: 0,
            snapshots: BTreeMap::new(),
            error: None,
            report: Value::Null,
            peak_rss_bytes: None,
        }
    }

    pub fn succeeded(rows_in: u64, rows_out: u64) -> Self {
        Self { rows_in, rows_out, ..Self::with_status(JobStatus::Succeeded) }
    }

    pub fn failed(error: &crate::error::Error) -> Self {
        Self { error: Some(error.to_string()), ..Self::with_status(JobStatus::Failed) }
    }

    pub fn snapshot(mut self, dataset: &str, id: u64) -> Self {
        if id > 0 {
            self.snapshots.insert(dataset.to_string(), id);
        }
        self
    }

    pub fn report(mut self, report: &impl Serialize) -> Self {
        self.report = serde_json::to_value(report).unwrap_or(Value::Null);
        self
    }
}

/// One entry of a job's event log.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct JobEvent {
    pub seq: u64,
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub change: Change,
}

/// What an event changes.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Change {
    Created {
        kind: String,
        params: Value,
        parent: Option<String>,
        queued: bool,
        not_before: Option<DateTime<Utc>>,
        scheduled_for: Option<DateTime<Utc>>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        share: Option<u32>,
    },
    Claimed {
        /// The claim's name: host:pid and a random suffix, unique per claim.
        worker: String,
        holder: Holder,
        lease_until: DateTime<Utc>,
    },
    Heartbeat {
        lease_until: DateTime<Utc>,
        progress: Option<JobProgress>,
    },
    CancelRequested {
        reason: String,
    },
    /// A unit of work the job has committed (a backfill chunk): a resumed job skips it.
    Checkpoint {
        name: String,
        value: Value,
    },
    Finished(Finish),
}

/// A job as its events leave it.
#[derive(Debug, Clone, Serialize)]
pub struct JobRecord {
    pub id: String,
    pub kind: String,
    pub params: Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parent: Option<String>,
    pub status: JobStatus,
    pub queued: bool,
    pub created_at: DateTime<Utc>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub not_before: Option<DateTime<Utc>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scheduled_for: Option<DateTime<Utc>>,
    /// The share of the queue it is in, for sharded workers.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub share: Option<u32>,
    /// First claim, and when it finished.
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    pub duration_seconds: Option<f64>,
    /// Start minus the scheduled time (a job with no schedule has none).
    pub lag_seconds: Option<f64>,
    /// Claims so far (a resumed job has more than one).
    pub attempts: u32,
    pub worker: Option<String>,
    #[serde(skip)]
    pub holder: Option<Holder>,
    pub lease_until: Option<DateTime<Utc>>,
    pub cancel_requested: bool,
    pub progress: Option<JobProgress>,
    /// Estimated seconds left, from the progress so far in the current stage.
    pub eta_seconds: Option<f64>,
    pub rows_in: u64,
    pub rows_out: u64,
    pub snapshots: BTreeMap<String, u64>,
    pub error: Option<String>,
    #[serde(skip_serializing_if = "Value::is_null")]
    pub report: Value,
    /// The process's peak resident memory when the job ended, bytes ([`Finish::peak_rss_bytes`]).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub peak_rss_bytes: Option<u64>,
    /// Units of work committed so far, by name.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub checkpoints: BTreeMap<String, Value>,
    /// The last event's sequence number: the next event takes the one after.
    #[serde(skip)]
    pub last_seq: u64,
    #[serde(skip)]
    progress_since: Option<DateTime<Utc>>,
}

impl JobRecord {
    /// Folds a job's events (in sequence order) as of `now`; `None` without a `created` event first.
    pub fn fold(id: &str, events: &[JobEvent], now: DateTime<Utc>) -> Option<Self> {
        let (first, rest) = events.split_first()?;
        let Change::Created { kind, params, parent, queued, not_before, scheduled_for, share } = &first.change else {
            return None;
        };
        let mut r = JobRecord {
            id: id.to_string(),
            kind: kind.clone(),
            params: params.clone(),
            parent: parent.clone(),
            status: if *queued { JobStatus::Queued } else { JobStatus::Abandoned },
            queued: *queued,
            created_at: first.at,
            not_before: *not_before,
            scheduled_for: *scheduled_for,
            share: *share,
            started_at: None,
            ended_at: None,
            duration_seconds: None,
            lag_seconds: None,
            attempts: 0,
            worker: None,
            holder: None,
            lease_until: None,
            cancel_requested: false,
            progress: None,
            eta_seconds: None,
            rows_in: 0,
            rows_out: 0,
            snapshots: BTreeMap::new(),
            error: None,
            report: Value::Null,
            peak_rss_bytes: None,
            checkpoints: BTreeMap::new(),
            last_seq: first.seq,
            progress_since: None,
        };
        for e in rest {
            r.last_seq = e.seq;
            match &e.change {
                Change::Created { .. } => {}
                Change::Claimed { worker, holder, lease_until } => {
                    r.attempts += 1;
                    r.started_at.get_or_insert(e.at);
                    r.worker = Some(worker.clone());
                    r.holder = Some(holder.clone());
                    r.lease_until = Some(*lease_until);
                }
                Change::Heartbeat { lease_until, progress } => {
                    r.lease_until = Some(*lease_until);
                    if let Some(p) = progress {
                        if r.progress.as_ref().map(|q| &q.stage) != Some(&p.stage) {
                            r.progress_since = Some(e.at);
                        }
                        r.progress = Some(p.clone());
                    }
                }
                Change::CancelRequested { .. } => r.cancel_requested = true,
                Change::Checkpoint { name, value } => {
                    r.checkpoints.insert(name.clone(), value.clone());
                }
                Change::Finished(f) => {
                    r.status = f.status;
                    r.ended_at = Some(e.at);
                    r.rows_in = f.rows_in;
                    r.rows_out = f.rows_out;
                    r.snapshots = f.snapshots.clone();
                    r.error = f.error.clone();
                    r.report = f.report.clone();
                    r.peak_rss_bytes = f.peak_rss_bytes;
                }
            }
        }
        if !r.status.is_finished() {
            let held =
                matches!((&r.holder, r.lease_until), (Some(holder), Some(until)) if until > now && !holder.is_dead());
            // A queued job whose worker stopped goes back to the queue; a foreground one waits for a resume.
            r.status = if held {
                JobStatus::Running
            } else if r.queued {
                JobStatus::Queued
            } else {
                JobStatus::Abandoned
            };
        }
        let seconds = |a: DateTime<Utc>, b: DateTime<Utc>| (b - a).num_milliseconds() as f64 / 1000.0;
        r.duration_seconds = r.started_at.map(|s| seconds(s, r.ended_at.unwrap_or(now)));
        r.lag_seconds = r.scheduled_for.zip(r.started_at).map(|(due, s)| seconds(due, s));
        if r.status == JobStatus::Running {
            r.eta_seconds = r.progress.as_ref().zip(r.progress_since).and_then(|(p, since)| {
                let done = p.done.min(p.total);
                (done > 0 && p.total > 0).then(|| seconds(since, now) / done as f64 * (p.total - done) as f64)
            });
        }
        Some(r)
    }

    /// Whether a worker may take this job now: queued, due, and nobody live holds it.
    pub fn claimable(&self, now: DateTime<Utc>) -> bool {
        self.status == JobStatus::Queued && !self.cancel_requested && self.not_before.is_none_or(|t| t <= now)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_come_from_the_flag_or_the_schedulers_variables() {
        let shard: Shard = "2/8".parse().unwrap();
        assert_eq!((shard.index, shard.count, shard.to_string()), (2, 8, "2/8".to_string()));
        assert!(shard.owns(Some(10)) && !shard.owns(Some(11)) && shard.owns(None));
        for bad in ["8/8", "1/0", "a/2", "3"] {
            let err = bad.parse::<Shard>().unwrap_err().to_string();
            assert!(err.contains("I/N"), "{bad}: {err}");
        }
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |name: &str| pairs.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
        };
        assert_eq!(Shard::from_env(env(&[])).unwrap(), None);
        let k8s = env(&[("JOB_COMPLETION_INDEX", "3"), ("JOB_COMPLETION_COUNT", "4")]);
        assert_eq!(Shard::from_env(k8s).unwrap(), Some(Shard { index: 3, count: 4 }));
        let batch = env(&[("AWS_BATCH_JOB_ARRAY_INDEX", "0"), ("AWS_BATCH_JOB_ARRAY_SIZE", "2")]);
        assert_eq!(Shard::from_env(batch).unwrap(), Some(Shard { index: 0, count: 2 }));
        let err = Shard::from_env(env(&[("JOB_COMPLETION_INDEX", "3")])).unwrap_err().to_string();
        assert!(err.contains("JOB_COMPLETION_COUNT"), "{err}");
    }

    fn event(seq: u64, secs: i64, change: Change) -> JobEvent {
        JobEvent { seq, at: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(), change }
    }

    fn created(queued: bool) -> Change {
        Change::Created {
            kind: "curate".into(),
            params: Value::Null,
            parent: None,
            queued,
            not_before: None,
            scheduled_for: None,
            share: None,
        }
    }

    fn claimed(secs: i64, holder: Holder) -> Change {
        Change::Claimed {
            worker: "w".into(),
            holder,
            lease_until: DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap(),
        }
    }

    #[test]
    fn a_claim_holds_while_its_lease_runs() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let events = vec![event(0, 0, created(true)), event(1, 1, claimed(60, Holder::this_process()))];
        let r = JobRecord::fold("j", &events, t(30)).unwrap();
        assert_eq!((r.status, r.attempts), (JobStatus::Running, 1));
        assert!(!r.claimable(t(30)));
        // Lease expired: a queued job goes back to the queue, a foreground one is abandoned.
        let r = JobRecord::fold("j", &events, t(61)).unwrap();
        assert_eq!(r.status, JobStatus::Queued);
        assert!(r.claimable(t(61)));
        let foreground = vec![event(0, 0, created(false)), event(1, 1, claimed(60, Holder::this_process()))];
        assert_eq!(JobRecord::fold("j", &foreground, t(61)).unwrap().status, JobStatus::Abandoned);
    }

    #[test]
    fn a_dead_holder_releases_its_claim_at_once() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let mut dead = Holder::this_process();
        dead.pid = u32::MAX - 1;
        let events = vec![event(0, 0, created(true)), event(1, 1, claimed(600, dead))];
        let r = JobRecord::fold("j", &events, t(2)).unwrap();
        assert!(r.claimable(t(2)), "{:?}", r.status);
    }

    #[test]
    fn progress_gives_an_eta_and_finish_the_outcome() {
        let t = |s: i64| DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        let p = |done| Some(JobProgress { stage: "curate".into(), done, total: 10, message: None });
        let mut events = vec![
            event(0, 0, created(false)),
            event(1, 0, claimed(600, Holder::this_process())),
            event(2, 10, Change::Heartbeat { lease_until: t(600), progress: p(0) }),
            event(3, 20, Change::Heartbeat { lease_until: t(600), progress: p(5) }),
        ];
        let r = JobRecord::fold("j", &events, t(20)).unwrap();
        assert_eq!(r.eta_seconds, Some(10.0));
        events.push(event(4, 30, Change::Finished(Finish::succeeded(10, 9).snapshot("curated_1m_bars", 7))));
        let r = JobRecord::fold("j", &events, t(40)).unwrap();
        assert_eq!((r.status, r.rows_out, r.duration_seconds), (JobStatus::Succeeded, 9, Some(30.0)));
        assert_eq!(r.snapshots.get("curated_1m_bars"), Some(&7));
        assert_eq!(r.eta_seconds, None);
        assert!(!r.claimable(t(40)));
    }
}
