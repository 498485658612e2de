//! The manifest: a dataset's commit log, its snapshots and its partition table.
//!
//! Commit N is the JSON object `_manifest/<dataset>/log/<N>.json`, created with put-if-absent, so the
//! log is the single source of truth and snapshot N is the state after replaying commits 1..=N. Replay
//! starts from a partition table written as Parquet (every commit rewrites `partitions.parquet`; every
//! `checkpoint_interval`-th and every tagged snapshot keeps a copy under `checkpoints/`), so opening a
//! dataset reads one small file and probes for newer commits, however long the log is.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array, UInt64Array,
};
use arrow::datatypes::{DataType, Field, Schema, TimeUnit, TimestampMicrosecondType, UInt32Type, UInt64Type};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path;
use parquet::arrow::ArrowWriter;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};

use crate::contract::SchemaRecord;
use crate::error::{Error, Result};
use crate::quality::PartitionQuality;
use crate::storage::LakeStore;
use crate::table::lake_log::{LakeView, StageMark, Visibility};
use crate::table::layout::{DatasetPaths, snapshot_of};

/// Version of the manifest format this build writes and the newest it reads. 2: log entries may
/// belong to a stage and count only once the lake log decides it, which a build that reads 1 would
/// not know, so such builds refuse these logs instead of showing uncommitted stages.
pub const FORMAT_VERSION: u32 = 2;

/// One partition's current version, as a commit recorded it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PartitionEntry {
    /// Folder name, e.g. `date=2024-01-02`.
    pub partition: String,
    /// Name of the immutable version file under `_versions/` (without `.parquet`).
    pub file_id: String,
    /// Snapshot that wrote this version.
    pub snapshot_id: u64,
    pub rows: u64,
    pub bytes: u64,
    /// SHA-256 of the file's bytes, hex: `sha256sum` of the live file gives the same.
    pub sha256: String,
    /// The store's ETag of the version file: the live copy has the same one (hard link or S3 copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub e_tag: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_ts: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_ts: Option<DateTime<Utc>>,
    pub symbols: u64,
    pub schema_version: u32,
    /// Nulls per column, for the columns that have any (null rate = nulls / rows).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub null_counts: BTreeMap<String, u64>,
    /// The data-quality verdict of the stage that wrote the rows (curation), if it judges them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub quality: Option<Box<PartitionQuality>>,
}

impl PartitionEntry {
    /// Whether its rows may hold a session of `first..=last` (New York trading dates of its first and
    /// last row); an entry that does not record them may.
    pub fn overlaps_sessions(&self, first: chrono::NaiveDate, last: chrono::NaiveDate) -> bool {
        let day = crate::calendar::NyseCalendar;
        self.min_ts.is_none_or(|t| day.trading_date(t) <= last)
            && self.max_ts.is_none_or(|t| day.trading_date(t) >= first)
    }
}

/// What a commit does to one partition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "action", rename_all = "snake_case")]
pub enum Action {
    /// The partition's content becomes this version (new partition or replacement).
    Add(PartitionEntry),
    /// The partition no longer exists.
    Remove { partition: String },
}

impl Action {
    pub fn partition(&self) -> &str {
        match self {
            Action::Add(e) => &e.partition,
            Action::Remove { partition } => partition,
        }
    }
}

/// One entry of the log: snapshot `snapshot_id` of `dataset`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Commit {
    pub format_version: u32,
    pub dataset: String,
    pub snapshot_id: u64,
    /// The snapshot the writer built this commit on (equal to `snapshot_id - 1` unless it rebased).
    pub read_snapshot: u64,
    pub committed_at: DateTime<Utc>,
    /// `ingest`, `overwrite`, `restore`, ...
    pub operation: String,
    #[serde(default)]
    pub parameters: BTreeMap<String, serde_json::Value>,
    pub txn_id: String,
    /// Present when the commit sets or evolves the dataset's schema.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<SchemaRecord>,
    pub actions: Vec<Action>,
    /// Present when the commit is one dataset's part of a stage: it counts only once the lake log
    /// decides the stage committed (see [`crate::table::lake_log`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage: Option<StageMark>,
}

impl Commit {
    pub fn partitions(&self) -> impl Iterator<Item = &str> {
        self.actions.iter().map(Action::partition)
    }
}

/// A dataset at one snapshot.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TableState {
    pub dataset: String,
    /// 0 = no commit yet.
    pub snapshot_id: u64,
    pub committed_at: Option<DateTime<Utc>>,
    pub schema: Option<SchemaRecord>,
    pub partitions: BTreeMap<String, PartitionEntry>,
    /// The newest lake log decision this state depends on (0: none): a reader whose view is pinned
    /// below it must not start from this state.
    pub lake_seq: u64,
}

/// How a replay of the log ended.
#[derive(Debug, Default)]
pub struct Replay {
    /// Commits applied (or skipped as aborted), in order.
    pub applied: Vec<Commit>,
    /// The entry the replay stopped at: its stage is not decided for the reader's view.
    pub blocked: Option<Commit>,
}

impl TableState {
    pub fn empty(dataset: &str) -> Self {
        Self { dataset: dataset.to_string(), ..Default::default() }
    }

    pub fn apply(&mut self, commit: &Commit) {
        for action in &commit.actions {
            match action {
                Action::Add(e) => {
                    self.partitions.insert(e.partition.clone(), e.clone());
                }
                Action::Remove { partition } => {
                    self.partitions.remove(partition);
                }
            }
        }
        if let Some(s) = &commit.schema {
            self.schema = Some(s.clone());
        }
        self.snapshot_id = commit.snapshot_id;
        self.committed_at = Some(commit.committed_at);
    }

    /// Applies `commit` as a view sees it: a committed stage's entry like any other, an aborted
    /// stage's entry as a snapshot that changes nothing. `false` (and no change) when it is pending.
    pub fn apply_seen(&mut self, commit: &Commit, seen: Visibility) -> bool {
        match seen {
            Visibility::Visible { seq } => {
                self.apply(commit);
                self.lake_seq = self.lake_seq.max(seq);
            }
            Visibility::Skipped { seq } => {
                self.snapshot_id = commit.snapshot_id;
                self.committed_at = Some(commit.committed_at);
                self.lake_seq = self.lake_seq.max(seq);
            }
            Visibility::Pending => return false,
        }
        true
    }

    pub fn rows(&self) -> u64 {
        self.partitions.values().map(|p| p.rows).sum()
    }

    pub fn bytes(&self) -> u64 {
        self.partitions.values().map(|p| p.bytes).sum()
    }
}

/// Reads a dataset's log, checkpoints and partition table.
#[derive(Debug, Clone)]
pub struct Log {
    store: LakeStore,
    dataset: String,
    paths: DatasetPaths,
}

impl Log {
    pub fn new(store: LakeStore, dataset: &str, paths: DatasetPaths) -> Self {
        Self { store, dataset: dataset.to_string(), paths }
    }

    pub fn paths(&self) -> &DatasetPaths {
        &self.paths
    }

    /// Commit `n`, or `None` if there is no such object.
    pub async fn read_commit(&self, n: u64) -> Result<Option<Commit>> {
        let Some(bytes) = self.store.get(&self.paths.log_entry(n)).await? else { return Ok(None) };
        let commit = parse_commit(&self.dataset, n, &bytes)?;
        Ok(Some(commit))
    }

    /// How `view` sees commit `commit` (entries outside a stage are always visible).
    pub async fn seen(commit: &Commit, view: &LakeView) -> Result<Visibility> {
        match &commit.stage {
            None => Ok(Visibility::Visible { seq: 0 }),
            Some(mark) => view.visibility(mark).await,
        }
    }

    /// Replays commits after `state` until there are no more, or one `view` does not see yet (up to
    /// snapshot `upto` at most).
    pub async fn replay(&self, state: &mut TableState, view: &LakeView, upto: u64) -> Result<Replay> {
        let mut replay = Replay::default();
        while state.snapshot_id < upto {
            let Some(commit) = self.read_commit(state.snapshot_id + 1).await? else { break };
            if !state.apply_seen(&commit, Self::seen(&commit, view).await?) {
                replay.blocked = Some(commit);
                break;
            }
            replay.applied.push(commit);
        }
        Ok(replay)
    }

    /// Replays commits after `state` until there are no more that `view` sees: the latest snapshot.
    pub async fn catch_up(&self, state: &mut TableState, view: &LakeView) -> Result<Replay> {
        self.replay(state, view, u64::MAX).await
    }

    /// The latest snapshot `view` sees, starting from the current partition table when it is readable.
    pub async fn latest(&self, view: &LakeView) -> Result<TableState> {
        Ok(self.latest_with_pending(view).await?.0)
    }

    /// The latest snapshot `view` sees, the commits newer than the partition table (the ones whose
    /// live files may not all be in place yet), and the entry it stopped at, if a stage's is pending.
    pub async fn latest_with_pending(&self, view: &LakeView) -> Result<(TableState, Vec<Commit>, Option<Commit>)> {
        let table = match self.read_table(&self.paths.partition_table()).await {
            Ok(table) => table,
            Err(e @ Error::NewerFormat { .. }) => return Err(e),
            Err(e) => {
                // A derived file; the log stays authoritative.
                tracing::warn!(dataset = %self.dataset, error = %e, "partition table unreadable; replaying from a checkpoint");
                None
            }
        };
        // The table is rewritten without compare-and-swap, so a slow writer can leave it behind a newer
        // checkpoint (and vacuum may since have removed the log in between): start from the newer one.
        let table_snapshot = table.as_ref().map_or(0, |t| t.snapshot_id);
        // A table ahead of the view's cut may include a stage the view must not see yet: start from
        // an older checkpoint then (its commits are already applied, so none is pending).
        let table = table.filter(|t| view.admits(t.lake_seq));
        let newer =
            self.store.list_after(&self.paths.checkpoints_root(), &self.paths.checkpoint(table_snapshot)).await?;
        let newest_checkpoint = newer.iter().filter_map(|m| snapshot_of(&m.location)).max().unwrap_or(0);
        let (mut state, mut pending) = match table {
            Some(t) if t.snapshot_id >= newest_checkpoint => (t, Vec::new()),
            _ => {
                let state = self.newest_checkpoint_at_or_before(u64::MAX, view).await?;
                let mut skipped = Vec::new();
                for n in table_snapshot + 1..=state.snapshot_id {
                    skipped.extend(self.read_commit(n).await?);
                }
                (state, skipped)
            }
        };
        let replay = self.catch_up(&mut state, view).await?;
        pending.extend(replay.applied);
        Ok((state, pending, replay.blocked))
    }

    /// The state at snapshot `n` exactly, as `view` sees it: an error if a stage in the way is not
    /// committed for the view.
    pub async fn state_at(&self, n: u64, view: &LakeView) -> Result<TableState> {
        let mut state = self.newest_checkpoint_at_or_before(n, view).await?;
        let replay = self.replay(&mut state, view, n).await?;
        if let Some(blocked) = replay.blocked {
            let stage = blocked.stage.as_ref().map_or(String::new(), |s| s.id.clone());
            return Err(Error::SnapshotNotFound {
                dataset: self.dataset.clone(),
                spec: n.to_string(),
                reason: format!(
                    "commit {} belongs to stage {stage}, which is not committed (in progress, or run `quantlake recover`)",
                    blocked.snapshot_id
                ),
            });
        }
        if state.snapshot_id < n {
            return Err(Error::SnapshotNotFound {
                dataset: self.dataset.clone(),
                spec: n.to_string(),
                reason: format!(
                    "commit {} is not in the log (not written yet, or removed by vacuum)",
                    state.snapshot_id + 1
                ),
            });
        }
        Ok(state)
    }

    /// The newest snapshot at or below `n` that `view` sees whole: `n`, or the one before the first
    /// entry of a stage the view does not see yet.
    pub async fn visible_state_at(&self, n: u64, view: &LakeView) -> Result<TableState> {
        let mut state = self.newest_checkpoint_at_or_before(n, view).await?;
        let replay = self.replay(&mut state, view, n).await?;
        if replay.blocked.is_none() && state.snapshot_id < n {
            return Err(Error::SnapshotNotFound {
                dataset: self.dataset.clone(),
                spec: n.to_string(),
                reason: format!("commit {} is not in the log (removed by vacuum)", state.snapshot_id + 1),
            });
        }
        Ok(state)
    }

    /// Snapshot numbers that have a log entry, ascending.
    pub async fn list_snapshots(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> =
            self.store.list(&self.paths.log_root()).await?.iter().filter_map(|m| snapshot_of(&m.location)).collect();
        ids.sort_unstable();
        Ok(ids)
    }

    pub async fn list_checkpoints(&self) -> Result<Vec<u64>> {
        let mut ids: Vec<u64> = self
            .store
            .list(&self.paths.checkpoints_root())
            .await?
            .iter()
            .filter_map(|m| snapshot_of(&m.location))
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    async fn newest_checkpoint_at_or_before(&self, n: u64, view: &LakeView) -> Result<TableState> {
        let checkpoints = self.list_checkpoints().await?;
        for &id in checkpoints.iter().rev().filter(|id| **id <= n) {
            match self.read_table(&self.paths.checkpoint(id)).await {
                Ok(Some(state)) if state.snapshot_id == id && view.admits(state.lake_seq) => return Ok(state),
                Ok(_) => {}
                Err(e @ Error::NewerFormat { .. }) => return Err(e),
                Err(e) => {
                    tracing::warn!(dataset = %self.dataset, checkpoint = id, error = %e, "skipping unreadable checkpoint")
                }
            }
        }
        // Replaying from nothing needs the log from its start: never an empty state in its place.
        // Vacuum writes a checkpoint before it removes log entries, so only a dataset with
        // checkpoints can be missing its start (a never-written one costs no extra request).
        if !checkpoints.is_empty() && self.read_commit(1).await?.is_none() {
            return Err(Error::SnapshotNotFound {
                dataset: self.dataset.clone(),
                spec: n.to_string(),
                reason: "the log's first snapshots were removed by vacuum and no checkpoint this reader may start from remains".into(),
            });
        }
        Ok(TableState::empty(&self.dataset))
    }

    async fn read_table(&self, path: &Path) -> Result<Option<TableState>> {
        let Some(bytes) = self.store.get(path).await? else { return Ok(None) };
        decode_table(&self.dataset, bytes).map(Some)
    }
}

pub fn parse_commit(dataset: &str, n: u64, bytes: &[u8]) -> Result<Commit> {
    // Check the version before the shape, so a newer format gets the clear error, not a parse error.
    #[derive(Deserialize)]
    struct Version {
        format_version: u32,
    }
    let v: Version = serde_json::from_slice(bytes)?;
    if v.format_version > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: format!("manifest of dataset '{dataset}' (commit {n})"),
            found: v.format_version,
            supported: FORMAT_VERSION,
        });
    }
    let commit: Commit = serde_json::from_slice(bytes)?;
    if commit.snapshot_id != n || commit.dataset != dataset {
        return Err(Error::Integrity {
            dataset: dataset.to_string(),
            reason: format!("log entry {n} claims to be snapshot {} of '{}'", commit.snapshot_id, commit.dataset),
        });
    }
    Ok(commit)
}

fn table_schema() -> Arc<Schema> {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("dataset", DataType::Utf8, false),
        Field::new("snapshot_id", DataType::UInt64, false),
        Field::new("partition", DataType::Utf8, false),
        Field::new("live_path", DataType::Utf8, false),
        Field::new("version_path", DataType::Utf8, false),
        Field::new("file_id", DataType::Utf8, false),
        Field::new("written_by_snapshot", DataType::UInt64, false),
        Field::new("rows", DataType::UInt64, false),
        Field::new("bytes", DataType::UInt64, false),
        Field::new("sha256", DataType::Utf8, false),
        Field::new("e_tag", DataType::Utf8, true),
        Field::new("min_ts", ts.clone(), true),
        Field::new("max_ts", ts, true),
        Field::new("symbols", DataType::UInt64, false),
        Field::new("schema_version", DataType::UInt32, false),
        // JSON, so DuckDB can read them: `quality->>'status'`.
        Field::new("null_counts", DataType::Utf8, true),
        Field::new("quality", DataType::Utf8, true),
    ]))
}

const META_FORMAT: &str = "quantlake.manifest_format";
const META_STATE: &str = "quantlake.state";

/// State-level facts that are not per partition ride in the file's key-value metadata.
#[derive(Serialize, Deserialize)]
struct TableMeta {
    dataset: String,
    snapshot_id: u64,
    committed_at: Option<DateTime<Utc>>,
    schema: Option<SchemaRecord>,
    #[serde(default)]
    lake_seq: u64,
}

/// The partition table as a Parquet file: one row per partition, readable by DuckDB and joinable with
/// the data (`live_path`, `version_path` are relative to the lake root).
pub fn encode_table(state: &TableState, paths: &DatasetPaths) -> Result<Bytes> {
    let entries: Vec<&PartitionEntry> = state.partitions.values().collect();
    let n = entries.len();
    let strings = |f: &dyn Fn(&PartitionEntry) -> String| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(entries.iter().map(|e| f(e))))
    };
    let ts = |f: &dyn Fn(&PartitionEntry) -> Option<DateTime<Utc>>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from(
                entries.iter().map(|e| f(e).map(|t| t.timestamp_micros())).collect::<Vec<_>>(),
            )
            .with_timezone("UTC"),
        )
    };
    let json = |f: &dyn Fn(&PartitionEntry) -> serde_json::Result<Option<String>>| -> Result<ArrayRef> {
        Ok(Arc::new(StringArray::from(entries.iter().map(|e| f(e)).collect::<serde_json::Result<Vec<_>>>()?)))
    };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from(vec![state.dataset.as_str(); n])),
        Arc::new(UInt64Array::from(vec![state.snapshot_id; n])),
        strings(&|e| e.partition.clone()),
        strings(&|e| paths.live_file(&e.partition).to_string()),
        strings(&|e| paths.version_file(&e.partition, &e.file_id).to_string()),
        strings(&|e| e.file_id.clone()),
        Arc::new(UInt64Array::from_iter_values(entries.iter().map(|e| e.snapshot_id))),
        Arc::new(UInt64Array::from_iter_values(entries.iter().map(|e| e.rows))),
        Arc::new(UInt64Array::from_iter_values(entries.iter().map(|e| e.bytes))),
        strings(&|e| e.sha256.clone()),
        Arc::new(StringArray::from(entries.iter().map(|e| e.e_tag.clone()).collect::<Vec<_>>())),
        ts(&|e| e.min_ts),
        ts(&|e| e.max_ts),
        Arc::new(UInt64Array::from_iter_values(entries.iter().map(|e| e.symbols))),
        Arc::new(UInt32Array::from_iter_values(entries.iter().map(|e| e.schema_version))),
        json(&|e| (!e.null_counts.is_empty()).then(|| serde_json::to_string(&e.null_counts)).transpose())?,
        json(&|e| e.quality.as_ref().map(serde_json::to_string).transpose())?,
    ];
    let batch = RecordBatch::try_new(table_schema(), columns)?;
    let meta = TableMeta {
        dataset: state.dataset.clone(),
        snapshot_id: state.snapshot_id,
        committed_at: state.committed_at,
        schema: state.schema.clone(),
        lake_seq: state.lake_seq,
    };
    let props = WriterProperties::builder()
        .set_key_value_metadata(Some(vec![
            KeyValue::new(META_FORMAT.into(), FORMAT_VERSION.to_string()),
            KeyValue::new(META_STATE.into(), serde_json::to_string(&meta)?),
        ]))
        .build();
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, table_schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(Bytes::from(buf))
}

pub fn decode_table(dataset: &str, bytes: Bytes) -> Result<TableState> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let kv = builder.metadata().file_metadata().key_value_metadata().cloned().unwrap_or_default();
    let get = |k: &str| kv.iter().find(|e| e.key == k).and_then(|e| e.value.clone());
    let format: u32 = get(META_FORMAT).and_then(|v| v.parse().ok()).unwrap_or(0);
    if format > FORMAT_VERSION {
        return Err(Error::NewerFormat {
            what: format!("partition table of dataset '{dataset}'"),
            found: format,
            supported: FORMAT_VERSION,
        });
    }
    let meta: TableMeta = serde_json::from_str(&get(META_STATE).ok_or_else(|| Error::Integrity {
        dataset: dataset.to_string(),
        reason: "partition table has no state metadata".into(),
    })?)?;
    if meta.dataset != dataset {
        return Err(Error::Integrity {
            dataset: dataset.to_string(),
            reason: format!("partition table belongs to '{}'", meta.dataset),
        });
    }
    let mut state = TableState {
        dataset: meta.dataset,
        snapshot_id: meta.snapshot_id,
        committed_at: meta.committed_at,
        schema: meta.schema,
        partitions: BTreeMap::new(),
        lake_seq: meta.lake_seq,
    };
    for batch in builder.build()? {
        let b = batch?;
        let s = |name: &str| b.column_by_name(name).and_then(|c| c.as_string_opt::<i32>().cloned());
        let (Some(partition), Some(file_id), Some(sha), Some(etag)) =
            (s("partition"), s("file_id"), s("sha256"), s("e_tag"))
        else {
            return Err(Error::Integrity {
                dataset: dataset.to_string(),
                reason: "partition table lacks columns".into(),
            });
        };
        let u64col = |name: &str| b.column_by_name(name).and_then(|c| c.as_primitive_opt::<UInt64Type>().cloned());
        let (Some(written), Some(rows), Some(bytes_col), Some(symbols)) =
            (u64col("written_by_snapshot"), u64col("rows"), u64col("bytes"), u64col("symbols"))
        else {
            return Err(Error::Integrity {
                dataset: dataset.to_string(),
                reason: "partition table lacks columns".into(),
            });
        };
        let tscol =
            |name: &str| b.column_by_name(name).and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>().cloned());
        let (Some(min_ts), Some(max_ts)) = (tscol("min_ts"), tscol("max_ts")) else {
            return Err(Error::Integrity {
                dataset: dataset.to_string(),
                reason: "partition table lacks columns".into(),
            });
        };
        let schema_version =
            b.column_by_name("schema_version").and_then(|c| c.as_primitive_opt::<UInt32Type>().cloned());
        // Absent in tables written before these columns existed.
        let (null_counts, quality) = (s("null_counts"), s("quality"));
        let json =
            |a: &Option<StringArray>, i: usize| a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i).to_string());
        let at = |a: &arrow::array::PrimitiveArray<TimestampMicrosecondType>, i: usize| {
            (!a.is_null(i)).then(|| DateTime::from_timestamp_micros(a.value(i))).flatten()
        };
        for i in 0..b.num_rows() {
            let entry = PartitionEntry {
                partition: partition.value(i).to_string(),
                file_id: file_id.value(i).to_string(),
                snapshot_id: written.value(i),
                rows: rows.value(i),
                bytes: bytes_col.value(i),
                sha256: sha.value(i).to_string(),
                e_tag: (!etag.is_null(i)).then(|| etag.value(i).to_string()),
                min_ts: at(&min_ts, i),
                max_ts: at(&max_ts, i),
                symbols: symbols.value(i),
                schema_version: schema_version.as_ref().map(|a| a.value(i)).unwrap_or(1),
                null_counts: json(&null_counts, i).map(|v| serde_json::from_str(&v)).transpose()?.unwrap_or_default(),
                quality: json(&quality, i).map(|v| serde_json::from_str(&v)).transpose()?,
            };
            state.partitions.insert(entry.partition.clone(), entry);
        }
    }
    Ok(state)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::layout::Layer;

    fn entry(p: &str, snap: u64) -> PartitionEntry {
        PartitionEntry {
            partition: p.into(),
            file_id: format!("f{snap}"),
            snapshot_id: snap,
            rows: 10,
            bytes: 100,
            sha256: "ab".into(),
            e_tag: Some("\"e\"".into()),
            min_ts: DateTime::from_timestamp_micros(1_700_000_000_000_000),
            max_ts: None,
            symbols: 2,
            schema_version: 1,
            null_counts: if snap == 1 { BTreeMap::from([("vwap".to_string(), 3)]) } else { BTreeMap::new() },
            quality: p.ends_with("03").then(|| {
                Box::new(PartitionQuality::judge(
                    crate::quality::QualityTotals {
                        expected_bars: 390,
                        present_bars: 380,
                        coverage: 380.0 / 390.0,
                        ..Default::default()
                    },
                    &crate::quality::QualityRules::default(),
                ))
            }),
        }
    }

    #[test]
    fn partition_table_round_trips() {
        let mut state = TableState::empty("d");
        let commit = Commit {
            format_version: FORMAT_VERSION,
            dataset: "d".into(),
            snapshot_id: 1,
            read_snapshot: 0,
            committed_at: Utc::now(),
            operation: "test".into(),
            parameters: Default::default(),
            txn_id: "t".into(),
            schema: Some(SchemaRecord { version: 1, columns: vec![] }),
            actions: vec![Action::Add(entry("date=2024-01-02", 1)), Action::Add(entry("date=2024-01-03", 1))],
            stage: None,
        };
        state.apply(&commit);
        let bytes = encode_table(&state, &DatasetPaths::new(Layer::Raw, "d")).unwrap();
        let back = decode_table("d", bytes).unwrap();
        assert_eq!(back.partitions, state.partitions);
        assert_eq!(
            back.partitions["date=2024-01-03"].quality.as_ref().map(|q| q.status),
            Some(crate::quality::Status::Yellow),
            "coverage 97% is between the default warn and fail"
        );
        assert_eq!(back.snapshot_id, 1);
        assert_eq!(back.schema, state.schema);
        assert!(decode_table("other", encode_table(&state, &DatasetPaths::new(Layer::Raw, "d")).unwrap()).is_err());
    }

    #[test]
    fn newer_manifest_format_is_refused_by_name() {
        let json = br#"{"format_version": 99, "dataset": "d", "snapshot_id": 1}"#;
        let err = parse_commit("d", 1, json).unwrap_err().to_string();
        assert!(err.contains("format version 99") && err.contains("'d'"), "{err}");
    }
}
