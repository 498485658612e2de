//! Stage: writes to several datasets committed together, so that a reader sees all of a stage's
//! outputs or none of them (the protocol is in [`crate::table::lake_log`]).
//!
//! ```no_run
//! # async fn demo(lake: quantlake_engine::table::Lake, bars: Vec<arrow::array::RecordBatch>, metrics: Vec<arrow::array::RecordBatch>) -> quantlake_engine::Result<()> {
//! use quantlake_engine::table::operations::write::WriteMode;
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
use crate::table::Lake;
use crate::table::lake_log::{Decision, Holder, StageMark, StageOutcome, Visibility};
use crate::table::manifest::TableState;
use crate::table::operations::write::{PreparedWrite, WriteBuilder, WriteResult};
use crate::table::transaction::{self, CommitError, Reserved, failpoint};

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
    pub async fn commit(mut self) -> Result<StageResult> {
        let lake = self.lake;
        let mut prepared: Vec<PreparedWrite<'a>> =
            std::mem::take(&mut self.writes).into_iter().collect::<Result<_>>()?;
        let order: Vec<String> = prepared.iter().map(|w| w.dataset.name().to_string()).collect();
        prepared.sort_by(|a, b| a.dataset.name().cmp(b.dataset.name()));
        if let Some(w) = prepared.windows(2).find(|w| w[0].dataset.name() == w[1].dataset.name()) {
            return Err(Error::invalid(format!(
                "a stage writes each dataset once; '{}' is written twice",
                w[0].dataset.name()
            )));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            match self.attempt(&mut prepared).await {
                Ok(mut result) => {
                    result.writes = order
                        .iter()
                        .filter_map(|name| result.writes.iter().find(|w| &w.dataset == name).cloned())
                        .collect();
                    return Ok(result);
                }
                Err(Failure::Conflict(e)) if attempt <= lake.settings.commit_retries => {
                    tracing::info!(operation = %self.operation, attempt, error = %e, "a concurrent commit touched the same partitions; the stage is rebuilt and tried again");
                }
                Err(Failure::Conflict(e) | Failure::BeforeCommit(e)) => {
                    for w in &prepared {
                        w.discard().await;
                    }
                    return Err(e);
                }
                // Committed: the next opener finishes applying it, so its files stay.
                Err(Failure::AfterCommit(e)) => return Err(e),
            }
        }
    }

    /// One try: settle and build every dataset (keeping what is still current from an earlier try),
    /// reserve each entry once, decide, apply. A conflict undoes the reservations made so far, so a
    /// stage never rebuilds while it holds other writers back.
    async fn attempt(&self, prepared: &mut [PreparedWrite<'a>]) -> std::result::Result<StageResult, Failure> {
        let lake = self.lake;
        let stage_id = uuid::Uuid::now_v7().to_string();
        let lake_base = lake.lake_log.head().await?;

        // Build every dataset's files first, on a settled snapshot of each, so that the entries are
        // then reserved in quick succession.
        let mut reads: Vec<TableState> = Vec::with_capacity(prepared.len());
        for w in prepared.iter_mut() {
            let (_, read) = transaction::recover(w.dataset, false).await?;
            w.build(&read).await?;
            reads.push(read);
        }
        let changing: Vec<bool> = prepared.iter().zip(&reads).map(|(w, r)| w.transaction(r, None).is_some()).collect();
        let datasets: Vec<String> =
            prepared.iter().zip(&changing).filter(|(_, c)| **c).map(|(w, _)| w.dataset.name().to_string()).collect();
        if datasets.is_empty() {
            let writes = prepared.iter().zip(&reads).map(|(w, r)| w.result(r.snapshot_id, 0, 0)).collect();
            return Ok(StageResult { stage_id, lake_seq: 0, writes });
        }
        let now = Utc::now();
        let expires_at = chrono::Duration::from_std(lake.settings.stage_timeout)
            .ok()
            .and_then(|t| now.checked_add_signed(t))
            .ok_or_else(|| {
                Error::Config(format!("lake.stage_timeout {:?} is out of range", lake.settings.stage_timeout))
            })?;
        let mark = StageMark {
            id: stage_id.clone(),
            datasets,
            lake_base,
            started_at: now,
            expires_at,
            holder: Holder::this_process(),
        };
        let decision = |outcome, datasets, reason, after| Decision {
            stage_id: stage_id.clone(),
            lake_base,
            outcome,
            operation: self.operation.clone(),
            parameters: self.parameters.clone(),
            datasets,
            decided_by: "writer",
            reason,
            after,
        };

        // Reserve: one pending entry per changing dataset, in name order.
        let mut reserved: Vec<Option<Reserved>> = Vec::with_capacity(prepared.len());
        for (i, w) in prepared.iter().enumerate() {
            if !changing[i] {
                reserved.push(None);
                continue;
            }
            let txn = w
                .transaction(&reads[i], Some(mark.clone()))
                .ok_or_else(|| Error::invalid("a changing write lost its actions"))?;
            match txn.reserve().await {
                Ok(r) => reserved.push(Some(r)),
                Err(e) => {
                    let conflict = matches!(e, CommitError::Conflict { .. });
                    let e = e.into_error(w.dataset, reads[i].snapshot_id, w.attempts);
                    // Undo what is reserved, so that nobody waits for this stage's lease.
                    let held: BTreeMap<String, u64> =
                        reserved.iter().flatten().map(|r| (r.commit.dataset.clone(), r.commit.snapshot_id)).collect();
                    if !held.is_empty()
                        && let Err(err) =
                            lake.lake_log.decide(decision(StageOutcome::Aborted, held, Some(e.to_string()), None)).await
                    {
                        tracing::warn!(stage = %stage_id, error = %err, "could not record the stage's abort; it is undone when its lease expires");
                    }
                    return Err(if conflict { Failure::Conflict(e) } else { Failure::BeforeCommit(e) });
                }
            }
            failpoint("stage.after_reserve");
        }

        // Decide: the commit point.
        failpoint("stage.before_decide");
        let snapshots: BTreeMap<String, u64> =
            reserved.iter().flatten().map(|r| (r.commit.dataset.clone(), r.commit.snapshot_id)).collect();
        let after = reserved.iter().flatten().map(|r| r.commit.committed_at).max();
        let decided =
            match lake.lake_log.decide(decision(StageOutcome::Committed, snapshots.clone(), None, after)).await {
                Ok(d) => d,
                // Our decision may have landed before the error: the lake log says (deciding `aborted`
                // returns the decision already there, if any).
                Err(e) => lake
                    .lake_log
                    .decide(decision(StageOutcome::Aborted, snapshots, Some(format!("deciding failed: {e}")), None))
                    .await
                    .map_err(|_| {
                        Failure::AfterCommit(Error::StageAborted {
                            stage: stage_id.clone(),
                            reason: format!("its outcome is unknown ({e}); `quantlake recover` settles it"),
                        })
                    })?,
            };
        if decided.outcome == StageOutcome::Aborted {
            return Err(Failure::BeforeCommit(Error::StageAborted {
                stage: stage_id,
                reason: decided.reason.clone().unwrap_or_else(|| "aborted by another process".into()),
            }));
        }
        failpoint("stage.after_decide");
        tracing::debug!(stage = %stage_id, lake_seq = decided.seq, "stage committed");

        // Apply: every dataset's live files and partition table.
        let own = Visibility::Visible { seq: decided.seq };
        let writes = futures::future::try_join_all(prepared.iter().zip(&reads).zip(&reserved).map(|((w, read), r)| async move {
            let Some(r) = r else { return Ok(w.result(read.snapshot_id, 0, 0)) };
            let txn = w.transaction(read, None).ok_or_else(|| Error::invalid("a reserved write lost its actions"))?;
            let manifest_bytes = txn.apply(r, own).await?;
            let mut result = w.result(r.commit.snapshot_id, r.commit.actions.len(), w.rows_written(&r.commit.actions));
            result.bytes_written += manifest_bytes;
            Ok::<_, Error>(result)
        }))
        .await
        .map_err(|e| {
            tracing::warn!(stage = %stage_id, error = %e, "the stage is committed, but applying its files failed: the next open of each dataset finishes it");
            Failure::AfterCommit(e)
        })?;
        Ok(StageResult { stage_id, lake_seq: decided.seq, writes })
    }
}

/// Why a try of a stage failed.
enum Failure {
    /// A concurrent commit changed partitions the stage writes: try again.
    Conflict(Error),
    /// Nothing was committed: the staged files are garbage.
    BeforeCommit(Error),
    /// The stage committed (or may have): its files stay.
    AfterCommit(Error),
}

impl From<Error> for Failure {
    fn from(e: Error) -> Self {
        Failure::BeforeCommit(e)
    }
}
