//! Stage: writes to several datasets committed together, so that a reader sees all of a stage's
//! outputs or none of them (the protocol is in [`crate::table::lake_log`]).
//!
//! ```no_run
//! # async fn demo(lake: quantlake::table::Lake, bars: Vec<arrow::array::RecordBatch>, metrics: Vec<arrow::array::RecordBatch>) -> quantlake::Result<()> {
//! use quantlake::table::operations::write::WriteMode;
//! let curated = lake.dataset("curated_1m_bars")?;
//! let dq = lake.dataset("dq_metrics")?;
//! let done = lake
//!     .stage("curate")
//!     .parameter("job_id", "curate-1")
//!     .write(curated.write(bars).mode(WriteMode::Overwrite))
//!     .write(dq.write(metrics).mode(WriteMode::ReplaceSymbols))
//!     .commit()
//!     .await?;
//! println!("lake snapshot {}: {:?}", done.lake_seq, done.writes.iter().map(|w| (&w.dataset, w.snapshot_id)).collect::<Vec<_>>());
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use chrono::Utc;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::table::lake_log::{Decision, Holder, StageMark, StageOutcome, Visibility};
use crate::table::manifest::TableState;
use crate::table::operations::write::{PreparedWrite, WriteBuilder, WriteResult};
use crate::table::transaction::{self, failpoint, CommitError, Reserved};
use crate::table::Lake;

/// Builder for a stage; see the module docs.
pub struct Stage<'a> {
    lake: &'a Lake,
    operation: String,
    parameters: BTreeMap<String, serde_json::Value>,
    writes: Vec<Result<PreparedWrite<'a>>>,
}

/// What a stage did.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    pub stage_id: String,
    /// The lake snapshot that committed the stage (0 when no dataset changed, and nothing was committed).
    pub lake_seq: u64,
    /// One result per write, in the order they were added.
    pub writes: Vec<WriteResult>,
}

impl StageResult {
    /// The result of the write to `dataset`.
    pub fn write(&self, dataset: &str) -> Option<&WriteResult> {
        self.writes.iter().find(|w| w.dataset == dataset)
    }
}

impl<'a> Stage<'a> {
    pub(crate) fn new(lake: &'a Lake, operation: &str) -> Self {
        Self { lake, operation: operation.to_string(), parameters: BTreeMap::new(), writes: Vec::new() }
    }

    /// A parameter the lake log records with the stage's decision.
    pub fn parameter(mut self, key: &str, value: impl Serialize) -> Self {
        self.parameters.insert(key.to_string(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
        self
    }

    /// Adds one dataset's write (at most one per dataset). Each dataset's log records the write's own
    /// operation and parameters, with the stage's mark.
    pub fn write(mut self, write: WriteBuilder<'a>) -> Self {
        self.writes.push(write.prepare());
        self
    }

    /// Adds a prepared change (a restore of one dataset, for a restore of the whole lake).
    pub(crate) fn change(mut self, change: PreparedWrite<'a>) -> Self {
        self.writes.push(Ok(change));
        self
    }

    /// Stages every write's files, reserves each dataset's log entry in name order, then commits the
    /// stage with one lake log entry and applies the files.
    pub async fn commit(self) -> Result<StageResult> {
        let lake = self.lake;
        let mut prepared: Vec<PreparedWrite<'a>> = self.writes.into_iter().collect::<Result<_>>()?;
        let order: Vec<String> = prepared.iter().map(|w| w.dataset.name().to_string()).collect();
        prepared.sort_by(|a, b| a.dataset.name().cmp(b.dataset.name()));
        if let Some(w) = prepared.windows(2).find(|w| w[0].dataset.name() == w[1].dataset.name()) {
            return Err(Error::invalid(format!("a stage writes each dataset once; '{}' is written twice", w[0].dataset.name())));
        }
        let stage_id = uuid::Uuid::now_v7().to_string();
        let lake_base = lake.lake_log.head().await?;

        // Build every dataset's files first, on a settled snapshot of each, so that the entries are
        // then reserved in quick succession.
        let mut reads: Vec<TableState> = Vec::with_capacity(prepared.len());
        for w in &mut prepared {
            let (_, read) = transaction::recover(w.dataset, false).await?;
            w.build(&read).await?;
            reads.push(read);
        }
        let changing: Vec<bool> = prepared.iter().zip(&reads).map(|(w, r)| w.transaction(r, None).is_some()).collect();
        let datasets: Vec<String> = prepared.iter().zip(&changing).filter(|(_, c)| **c).map(|(w, _)| w.dataset.name().to_string()).collect();
        if datasets.is_empty() {
            let writes = order.iter().filter_map(|name| prepared.iter().zip(&reads).find(|(w, _)| w.dataset.name() == name).map(|(w, r)| w.result(r.snapshot_id, 0, 0))).collect();
            return Ok(StageResult { stage_id, lake_seq: 0, writes });
        }
        let now = Utc::now();
        let timeout = chrono::Duration::from_std(lake.settings.stage_timeout).unwrap_or(chrono::Duration::seconds(60));
        let mark = StageMark { id: stage_id.clone(), datasets: datasets.clone(), lake_base, started_at: now, expires_at: now + timeout, holder: Holder::this_process() };

        // Reserve: one pending entry per changing dataset, in name order.
        let mut reserved: Vec<Option<Reserved>> = Vec::with_capacity(prepared.len());
        for (i, w) in prepared.iter_mut().enumerate() {
            if !changing[i] {
                reserved.push(None);
                continue;
            }
            match reserve(w, &mut reads[i], &mark).await {
                Ok(r) => reserved.push(Some(r)),
                Err(e) => {
                    let done: BTreeMap<String, u64> = reserved.iter().flatten().map(|r| (r.commit.dataset.clone(), r.commit.snapshot_id)).collect();
                    abort(lake, &mark, &self.operation, &self.parameters, done, &e).await;
                    for w in &prepared {
                        w.discard().await;
                    }
                    return Err(e);
                }
            }
            failpoint("stage.after_reserve");
        }

        // Decide: the commit point.
        failpoint("stage.before_decide");
        let snapshots: BTreeMap<String, u64> = reserved.iter().flatten().map(|r| (r.commit.dataset.clone(), r.commit.snapshot_id)).collect();
        let decision = lake
            .lake_log
            .decide(Decision {
                stage_id: stage_id.clone(),
                lake_base,
                outcome: StageOutcome::Committed,
                operation: self.operation.clone(),
                parameters: self.parameters.clone(),
                datasets: snapshots,
                decided_by: "writer",
                reason: None,
            })
            .await?;
        if decision.outcome == StageOutcome::Aborted {
            for w in &prepared {
                w.discard().await;
            }
            return Err(Error::StageAborted { stage: stage_id, reason: decision.reason.clone().unwrap_or_else(|| "aborted by another process".into()) });
        }
        failpoint("stage.after_decide");
        tracing::debug!(stage = %stage_id, lake_seq = decision.seq, "stage committed");

        // Apply: every dataset's live files and partition table.
        let own = Visibility::Visible { seq: decision.seq };
        let applied = futures::future::try_join_all(prepared.iter().zip(&reads).zip(&reserved).map(|((w, read), r)| async move {
            let Some(r) = r else { return Ok(w.result(read.snapshot_id, 0, 0)) };
            let txn = w.transaction(read, None).ok_or_else(|| Error::invalid("a reserved write lost its actions"))?;
            let manifest_bytes = txn.apply(r, own).await?;
            let mut result = w.result(r.commit.snapshot_id, r.commit.actions.len(), w.rows_written(&r.commit.actions));
            result.bytes_written += manifest_bytes;
            Ok::<_, Error>(result)
        }))
        .await?;
        let writes = order.iter().filter_map(|name| applied.iter().find(|w| &w.dataset == name).cloned()).collect();
        Ok(StageResult { stage_id, lake_seq: decision.seq, writes })
    }
}

/// Reserves one dataset's entry, rebuilding and retrying on a conflicting concurrent commit.
async fn reserve(w: &mut PreparedWrite<'_>, read: &mut TableState, mark: &StageMark) -> Result<Reserved> {
    let ds = w.dataset;
    loop {
        let Some(txn) = w.transaction(read, Some(mark.clone())) else {
            return Err(Error::invalid(format!("stage {}: the write to '{}' no longer changes anything after a concurrent commit", mark.id, ds.name())));
        };
        match txn.reserve().await {
            Ok(r) => return Ok(r),
            Err(CommitError::Conflict { snapshot, partitions }) if w.attempts <= ds.settings.commit_retries => {
                tracing::info!(dataset = ds.name(), snapshot, ?partitions, attempt = w.attempts, stage = %mark.id, "concurrent commit touched the same partitions; rebuilding and retrying");
                *read = transaction::recover(ds, false).await?.1;
                w.build(read).await?;
            }
            Err(e) => return Err(e.into_error(ds, read.snapshot_id, w.attempts)),
        }
    }
}

/// Records that a stage failed before its commit point, so nobody waits for its lease.
async fn abort(lake: &Lake, mark: &StageMark, operation: &str, parameters: &BTreeMap<String, serde_json::Value>, reserved: BTreeMap<String, u64>, why: &Error) {
    if reserved.is_empty() {
        return;
    }
    let decision = Decision {
        stage_id: mark.id.clone(),
        lake_base: mark.lake_base,
        outcome: StageOutcome::Aborted,
        operation: operation.to_string(),
        parameters: parameters.clone(),
        datasets: reserved,
        decided_by: "writer",
        reason: Some(why.to_string()),
    };
    if let Err(e) = lake.lake_log.decide(decision).await {
        tracing::warn!(stage = %mark.id, error = %e, "could not record the stage's abort; it is undone when its lease expires");
    }
}
