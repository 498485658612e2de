//! Restore: a new snapshot whose content equals an earlier one. Version files are immutable, so a
//! restore writes no data: its commit points each partition back at the earlier version file, and the
//! apply step puts those files back in the live tree.

use crate::error::{Error, Result};
use crate::table::manifest::Action;
use crate::table::operations::write::WriteResult;
use crate::table::transaction::{self, CommitError, Transaction};
use crate::table::{Dataset, SnapshotSpec};

pub async fn restore(ds: &Dataset, to: &SnapshotSpec) -> Result<WriteResult> {
    let target = ds.snapshot(to).await?;
    // Every version file the target needs must still exist (vacuum may have removed it).
    for e in target.partitions.values() {
        let path = ds.paths.version_file(&e.partition, &e.file_id);
        if ds.store.head(&path).await?.is_none() {
            return Err(Error::SnapshotNotFound {
                dataset: ds.name().into(),
                spec: to.to_string(),
                reason: format!("its file {path} was removed by vacuum"),
            });
        }
    }
    let mut attempts = 0;
    loop {
        attempts += 1;
        let (_, read) = transaction::recover(ds, false).await?;
        let mut actions: Vec<Action> = target
            .partitions
            .values()
            .filter(|e| read.partitions.get(&e.partition).is_none_or(|cur| cur.file_id != e.file_id))
            .map(|e| Action::Add(e.clone()))
            .collect();
        actions.extend(
            read.partitions.keys().filter(|p| !target.partitions.contains_key(*p)).map(|p| Action::Remove { partition: p.clone() }),
        );
        if actions.is_empty() {
            return Ok(WriteResult { dataset: ds.name().into(), snapshot_id: read.snapshot_id, partitions: 0, rows_written: 0, bytes_written: 0, attempts });
        }
        let n = actions.len();
        let txn = Transaction {
            dataset: ds,
            read: &read,
            covers: target.partitions.keys().cloned().collect(),
            operation: "restore".into(),
            parameters: [("to".to_string(), serde_json::json!(to.to_string())), ("to_snapshot".to_string(), serde_json::json!(target.snapshot_id))].into(),
            schema: None,
            actions,
        };
        match txn.commit().await {
            Ok(done) => {
                return Ok(WriteResult {
                    dataset: ds.name().into(),
                    snapshot_id: done.commit.snapshot_id,
                    partitions: n,
                    rows_written: 0,
                    bytes_written: done.manifest_bytes,
                    attempts,
                })
            }
            Err(CommitError::Conflict { .. }) if attempts <= ds.settings.commit_retries => continue,
            Err(e) => return Err(e.into_error(ds, read.snapshot_id, attempts)),
        }
    }
}
