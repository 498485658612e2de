//! The lake engine: datasets of date-partitioned Parquet files with a snapshot manifest.
//!
//! [`Lake`] is the entry point; [`Dataset`] is one dataset's handle. Reading goes through a
//! [`TableState`] (a snapshot); every change goes through an operation in [`operations`], and every
//! operation commits through [`transaction`].
//!
//! ```no_run
//! # async fn demo() -> quantlake_engine::Result<()> {
//! use quantlake_engine::table::{Lake, LakeOptions, SnapshotSpec};
//! let lake = Lake::init("./lake", LakeOptions::default()).await?;
//! let bars = lake.dataset("raw_synthetic_bars")?;
//! let latest = bars.latest().await?;
//! println!("{} rows in {} partitions at snapshot {}", latest.rows(), latest.partitions.len(), latest.snapshot_id);
//! let before = bars.snapshot(&SnapshotSpec::parse("1")?).await?;
//! let rows = bars.read(&before, &Default::default()).await?;
//! # Ok(()) }
//! ```

pub mod as_of;
pub mod data_file;
pub mod delta;
pub mod lake_log;
pub mod layout;
pub mod manifest;
pub mod operations;
pub mod pruned;
pub mod transaction;

use std::collections::BTreeSet;
use std::sync::Arc;

use arrow::array::RecordBatch;
use bytes::Bytes;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};

use crate::contract::{Contracts, DatasetContract};
use crate::error::{Error, Result};
use crate::storage::{LakeStore, StorageOptions};
use crate::symbol::Symbol;
use lake_log::{LakeLog, LakeView};
use layout::{DatasetPaths, LAKE_MARKER, LIVE_FILE, PartitionKey};
use manifest::{Log, TableState};

pub use as_of::AsOf;
pub use manifest::{Action, Commit, PartitionEntry};
pub use operations::stage::{Stage, StageResult};
pub use operations::tag::{LakeTag, Tag};
pub use transaction::RecoveryReport;

/// Version of the lake layout this build writes (the `_lake.json` marker).
pub const LAKE_FORMAT_VERSION: u32 = 1;

/// Engine settings (the `[lake]` section of the config).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct EngineSettings {
    /// Every this-many snapshots a copy of the partition table is kept under `checkpoints/`.
    pub checkpoint_interval: u64,
    /// How often a write whose partitions were changed by a concurrent commit is rebuilt and retried.
    pub commit_retries: u32,
    /// How long a stage (a commit to several datasets) may stay undecided before another process may
    /// decide it (a stage whose process died on this host is decided at once). Reserving and deciding
    /// take milliseconds: the lease only matters when a writer on another host stops mid-stage.
    #[serde(with = "crate::duration")]
    pub stage_timeout: std::time::Duration,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self { checkpoint_interval: 10, commit_retries: 8, stage_timeout: std::time::Duration::from_secs(60) }
    }
}

/// How to open a lake.
#[derive(Debug, Clone, Default)]
pub struct LakeOptions {
    pub storage: StorageOptions,
    pub settings: EngineSettings,
    /// Extra dataset contracts (a folder of `*.toml`), besides the built-in ones.
    pub schemas_dir: Option<std::path::PathBuf>,
}

#[derive(Debug, Serialize, Deserialize)]
struct LakeMarker {
    format_version: u32,
    created_at: DateTime<Utc>,
}

/// An open lake.
#[derive(Debug, Clone)]
pub struct Lake {
    store: LakeStore,
    contracts: Arc<Contracts>,
    settings: EngineSettings,
    lake_log: LakeLog,
    footers: pruned::FooterCache,
}

impl Lake {
    /// Creates the lake at `url` if there is none (idempotent) and opens it.
    pub async fn init(url: &str, options: LakeOptions) -> Result<Self> {
        let store = LakeStore::open(url, &options.storage, true)?;
        let marker = LakeMarker { format_version: LAKE_FORMAT_VERSION, created_at: Utc::now() };
        store.probe(&LAKE_MARKER.into()).await?;
        store.put_if_absent(&LAKE_MARKER.into(), Bytes::from(serde_json::to_vec_pretty(&marker)?)).await?;
        Self::open_store(store, options).await
    }

    /// Opens an existing lake; a clear error if there is none or it is unreachable.
    pub async fn open(url: &str, options: LakeOptions) -> Result<Self> {
        let store = LakeStore::open(url, &options.storage, false)?;
        Self::open_store(store, options).await
    }

    async fn open_store(store: LakeStore, options: LakeOptions) -> Result<Self> {
        let marker = store
            .probe(&LAKE_MARKER.into())
            .await?
            .ok_or_else(|| Error::LakeNotInitialized { url: store.url().to_string() })?;
        let marker: LakeMarker = serde_json::from_slice(&marker)?;
        if marker.format_version > LAKE_FORMAT_VERSION {
            return Err(Error::NewerFormat {
                what: format!("lake {}", store.url()),
                found: marker.format_version,
                supported: LAKE_FORMAT_VERSION,
            });
        }
        let contracts = match &options.schemas_dir {
            Some(dir) => Contracts::with_dir(dir)?,
            None => Contracts::builtin(),
        };
        if options.settings.checkpoint_interval == 0 {
            return Err(Error::Config("lake.checkpoint_interval must be at least 1".into()));
        }
        Ok(Self {
            lake_log: LakeLog::new(store.clone()),
            store,
            contracts: Arc::new(contracts),
            settings: options.settings,
            footers: pruned::FooterCache::default(),
        })
    }

    pub fn url(&self) -> &str {
        self.store.url()
    }

    /// The parsed footers of this lake's data files that reads keep (see [`pruned::FooterCache`]).
    pub fn footer_cache(&self) -> &pruned::FooterCache {
        &self.footers
    }

    pub fn store(&self) -> &LakeStore {
        &self.store
    }

    pub fn contracts(&self) -> &Contracts {
        &self.contracts
    }

    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// The lake log: one decision per stage (see [`lake_log`]).
    pub fn lake_log(&self) -> &LakeLog {
        &self.lake_log
    }

    /// A consistent cut of the whole lake, pinned now: read several datasets through it
    /// ([`Dataset::latest_in`], [`Dataset::snapshot_in`]) and each stage shows in all of them or none.
    pub async fn view(&self) -> Result<LakeView> {
        self.lake_log.pinned_view().await
    }

    /// Starts a stage: writes to several datasets committed together ([`Stage`]).
    pub fn stage(&self, operation: &str) -> Stage<'_> {
        Stage::new(self, operation)
    }

    /// A dataset's handle; the name must have a contract.
    pub fn dataset(&self, name: &str) -> Result<Dataset> {
        let contract = self.contracts.get(name)?;
        let paths = DatasetPaths::new(contract.layer, &contract.name);
        Ok(Dataset {
            log: Log::new(self.store.clone(), &contract.name, paths.clone()),
            store: self.store.clone(),
            contract,
            paths,
            settings: self.settings.clone(),
            lake_log: self.lake_log.clone(),
            footers: self.footers.clone(),
        })
    }

    /// Every dataset that has a contract, in name order.
    pub fn all_datasets(&self) -> Vec<Dataset> {
        self.contracts.iter().filter_map(|c| self.dataset(&c.name).ok()).collect()
    }
}

/// Which snapshot to read: `latest`, a snapshot number, a tag, or a time (`2024-01-02T15:00:00Z`,
/// `2024-01-02 15:00:00` in UTC, or a date meaning its end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotSpec {
    Latest,
    Id(u64),
    Tag(String),
    AsOf(DateTime<Utc>),
}

impl SnapshotSpec {
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        if s.is_empty() || s == "latest" {
            return Ok(SnapshotSpec::Latest);
        }
        if let Ok(n) = s.parse::<u64>() {
            return Ok(SnapshotSpec::Id(n));
        }
        if let Ok(t) = DateTime::parse_from_rfc3339(s) {
            return Ok(SnapshotSpec::AsOf(t.with_timezone(&Utc)));
        }
        for f in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
            if let Ok(t) = NaiveDateTime::parse_from_str(s, f) {
                return Ok(SnapshotSpec::AsOf(Utc.from_utc_datetime(&t)));
            }
        }
        if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
            let end = d.and_hms_micro_opt(23, 59, 59, 999_999).map(|t| Utc.from_utc_datetime(&t));
            return end.map(SnapshotSpec::AsOf).ok_or_else(|| Error::invalid(format!("bad date '{s}'")));
        }
        layout::validate_tag_name(s)?;
        Ok(SnapshotSpec::Tag(s.to_string()))
    }
}

impl std::fmt::Display for SnapshotSpec {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            SnapshotSpec::Latest => f.write_str("latest"),
            SnapshotSpec::Id(n) => write!(f, "{n}"),
            SnapshotSpec::Tag(t) => f.write_str(t),
            SnapshotSpec::AsOf(t) => write!(f, "{}", t.to_rfc3339()),
        }
    }
}

/// Which rows [`Dataset::read`] returns.
#[derive(Debug, Clone, Default)]
pub struct ReadFilter {
    /// Only rows whose partition column's local date falls between these dates (inclusive): the
    /// partitions overlapping them, and of a month or year partition only those days' rows.
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
    /// Only these symbols (empty = all).
    pub symbols: BTreeSet<Symbol>,
}

/// A dataset at its latest snapshot, in one line.
#[derive(Debug, Clone, Serialize)]
pub struct DatasetSummary {
    pub dataset: String,
    pub layer: layout::Layer,
    pub partitions: usize,
    pub rows: u64,
    pub bytes: u64,
    pub snapshot_id: u64,
    pub committed_at: Option<DateTime<Utc>>,
    pub schema_version: Option<u32>,
    pub first_partition: Option<String>,
    pub last_partition: Option<String>,
}

/// One dataset of a lake.
#[derive(Debug, Clone)]
pub struct Dataset {
    pub(crate) store: LakeStore,
    pub(crate) contract: Arc<DatasetContract>,
    pub(crate) paths: DatasetPaths,
    pub(crate) log: Log,
    pub(crate) settings: EngineSettings,
    pub(crate) lake_log: LakeLog,
    /// Parsed footers of version files, shared by every dataset of the lake.
    pub(crate) footers: pruned::FooterCache,
}

impl Dataset {
    /// The object store the lake is on (for readers that fetch a snapshot's files themselves).
    pub fn store(&self) -> &LakeStore {
        &self.store
    }

    pub fn name(&self) -> &str {
        &self.contract.name
    }

    pub fn contract(&self) -> &DatasetContract {
        &self.contract
    }

    pub fn paths(&self) -> &DatasetPaths {
        &self.paths
    }

    /// The dataset's commit log.
    pub fn log(&self) -> &Log {
        &self.log
    }

    /// Partitions, rows, bytes and last commit of the latest snapshot.
    pub async fn summary(&self) -> Result<DatasetSummary> {
        let s = self.latest().await?;
        Ok(DatasetSummary {
            dataset: self.name().to_string(),
            layer: self.contract.layer,
            partitions: s.partitions.len(),
            rows: s.rows(),
            bytes: s.bytes(),
            snapshot_id: s.snapshot_id,
            committed_at: s.committed_at,
            schema_version: s.schema.as_ref().map(|x| x.version),
            first_partition: s.partitions.keys().next().cloned(),
            last_partition: s.partitions.keys().next_back().cloned(),
        })
    }

    /// The latest snapshot (what the manifest says; the live tree may lag while a commit is applied).
    /// A stage still in progress is not part of it.
    pub async fn latest(&self) -> Result<TableState> {
        self.log.latest(&self.lake_log.lazy_view()).await
    }

    /// The latest snapshot as `view` sees it (see [`Lake::view`]).
    pub async fn latest_in(&self, view: &LakeView) -> Result<TableState> {
        self.log.latest(view).await
    }

    /// The snapshot a spec names.
    pub async fn snapshot(&self, spec: &SnapshotSpec) -> Result<TableState> {
        self.snapshot_in(spec, &self.lake_log.lazy_view()).await
    }

    /// The snapshot a spec names, as `view` sees it. A tag is this dataset's own, or else a lake-wide
    /// tag's snapshot of it; a time is resolved on the lake log too, so stages decided after it are
    /// not part of any dataset's state at that time.
    pub async fn snapshot_in(&self, spec: &SnapshotSpec, view: &LakeView) -> Result<TableState> {
        let not_found = |reason: String| Error::SnapshotNotFound {
            dataset: self.name().to_string(),
            spec: spec.to_string(),
            reason,
        };
        match spec {
            SnapshotSpec::Latest => self.latest_in(view).await,
            SnapshotSpec::Id(0) => Ok(TableState::empty(self.name())),
            SnapshotSpec::Id(n) => {
                let latest = self.latest_in(view).await?;
                if *n > latest.snapshot_id {
                    return Err(not_found(format!("the latest snapshot is {}", latest.snapshot_id)));
                }
                self.log.state_at(*n, view).await
            }
            SnapshotSpec::Tag(name) => {
                if let Some(tag) = operations::tag::get(self, name).await? {
                    return self.log.state_at(tag.snapshot_id, view).await;
                }
                let tag = operations::tag::get_lake(&self.store, name)
                    .await?
                    .ok_or_else(|| not_found(format!("no tag named '{name}' on this dataset or the lake")))?;
                match tag.datasets.get(self.name()) {
                    Some(0) => Ok(TableState::empty(self.name())),
                    // The tag's own cut: the snapshots it names were whole at its lake snapshot.
                    Some(id) => self.log.state_at(*id, &self.lake_log.view_at(tag.lake_seq)).await,
                    None => Err(not_found(format!("lake tag '{name}' was made before this dataset existed"))),
                }
            }
            SnapshotSpec::AsOf(t) => {
                let id = self
                    .snapshot_at_time(*t)
                    .await?
                    .ok_or_else(|| not_found("no snapshot was committed at or before that time".into()))?;
                let cut = self.lake_log.view_at(self.lake_log.head_at(*t).await?);
                self.log.visible_state_at(id, &cut).await
            }
        }
    }

    /// The newest snapshot committed at or before `t` (commit times never decrease along the log).
    async fn snapshot_at_time(&self, t: DateTime<Utc>) -> Result<Option<u64>> {
        let ids = self.log.list_snapshots().await?;
        let (mut lo, mut hi) = (0usize, ids.len());
        while lo < hi {
            let mid = (lo + hi) / 2;
            let commit = self.log.read_commit(ids[mid]).await?.ok_or_else(|| Error::Integrity {
                dataset: self.name().to_string(),
                reason: format!("log entry {} disappeared while reading", ids[mid]),
            })?;
            if commit.committed_at <= t {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        let Some(i) = lo.checked_sub(1) else { return Ok(None) };
        // After a vacuum only tagged entries remain below the retained run: a time that falls after a
        // tagged entry whose successor is gone cannot be resolved.
        if ids.get(i + 1).is_some_and(|next| *next != ids[i] + 1) {
            return Err(Error::SnapshotNotFound {
                dataset: self.name().to_string(),
                spec: t.to_rfc3339(),
                reason: format!("the snapshots after {} at that time were removed by vacuum", ids[i]),
            });
        }
        Ok(Some(ids[i]))
    }

    /// Reads a snapshot's rows from its immutable version files (never from the live tree, which a
    /// concurrent commit may be changing).
    pub async fn read(&self, state: &TableState, filter: &ReadFilter) -> Result<Vec<RecordBatch>> {
        // (partition, whether some of its days fall outside the filter's)
        let wanted: Vec<(&PartitionEntry, bool)> = state
            .partitions
            .values()
            .filter_map(|e| match PartitionKey::parse(&e.partition) {
                Ok(PartitionKey::All) | Err(_) => Some((e, false)),
                Ok(k) => {
                    let (first, last) = k.date_range();
                    let overlaps = filter.start.is_none_or(|s| last >= s) && filter.end.is_none_or(|e| first <= e);
                    let wider = filter.start.is_some_and(|s| first < s) || filter.end.is_some_and(|e| last > e);
                    overlaps.then_some((e, wider))
                }
            })
            .collect();
        // Rows of a month or year partition outside the filter's days are left out, as if the dataset
        // were kept in day partitions.
        let bounds =
            |d: NaiveDate| layout::day_bounds_micros(self.contract.partition_timezone, d).map(|(start, _)| start);
        let window = (
            filter.start.and_then(bounds).unwrap_or(i64::MIN),
            filter.end.and_then(|e| e.succ_opt()).and_then(bounds).unwrap_or(i64::MAX),
        );
        let files: Vec<Vec<RecordBatch>> = futures::stream::iter(wanted.into_iter().map(|(e, wider)| async move {
            let batches = self.read_partition(e, &filter.symbols).await?;
            if wider { batches.iter().map(|b| self.keep_between(b, window)).collect() } else { Ok(batches) }
        }))
        .buffered(transaction::IO_CONCURRENCY)
        .try_collect()
        .await?;
        Ok(files.into_iter().flatten().filter(|b| b.num_rows() > 0).collect())
    }

    /// The rows of `batch` whose partition column falls in `[start, end)` (µs).
    fn keep_between(&self, batch: &RecordBatch, (start, end): (i64, i64)) -> Result<RecordBatch> {
        use arrow::array::{AsArray, BooleanArray};
        use arrow::datatypes::TimestampMicrosecondType;
        let column = &self.contract.partition_column;
        let ts = batch
            .column_by_name(column)
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::SchemaMismatch {
                dataset: self.name().to_string(),
                detail: format!("partition column '{column}' is missing or not a timestamp"),
            })?;
        let keep: BooleanArray = ts.values().iter().map(|t| Some((start..end).contains(t))).collect();
        Ok(arrow::compute::filter_record_batch(batch, &keep)?)
    }

    /// Reads one partition version, conformed to the contract's current schema, optionally only some symbols.
    pub async fn read_partition(&self, e: &PartitionEntry, symbols: &BTreeSet<Symbol>) -> Result<Vec<RecordBatch>> {
        let path = self.paths.version_file(&e.partition, &e.file_id);
        let bytes = self.store.get(&path).await?.ok_or_else(|| Error::Integrity {
            dataset: self.name().to_string(),
            reason: format!("data file {path} of partition {} is missing (run `quantlake verify`)", e.partition),
        })?;
        let contract = self.contract.clone();
        let symbols = symbols.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<RecordBatch>> {
            let mut out = Vec::new();
            for b in data_file::decode(bytes)? {
                let b = data_file::conform(&contract, &b)?;
                out.push(if symbols.is_empty() { b } else { keep_symbols(&b, &symbols)? });
            }
            Ok(out)
        })
        .await?
    }

    /// Reads some columns of one partition version (see [`data_file::decode_columns`]), named as in
    /// the contract and returned in the order given.
    pub async fn read_partition_columns(&self, e: &PartitionEntry, columns: &[&str]) -> Result<Vec<RecordBatch>> {
        let schema = self.projected_schema(columns)?;
        let path = self.paths.version_file(&e.partition, &e.file_id);
        let bytes = self.store.get(&path).await?.ok_or_else(|| Error::Integrity {
            dataset: self.name().to_string(),
            reason: format!("data file {path} of partition {} is missing (run `quantlake verify`)", e.partition),
        })?;
        tokio::task::spawn_blocking(move || data_file::decode_columns(bytes, &schema)).await?
    }

    /// The contract's fields of `columns`, in that order: the schema [`Self::read_partition_columns`]
    /// returns.
    pub fn projected_schema(&self, columns: &[&str]) -> Result<arrow::datatypes::SchemaRef> {
        let full = self.contract.arrow_schema();
        let fields = columns
            .iter()
            .map(|c| {
                full.field_with_name(c)
                    .cloned()
                    .map_err(|_| Error::invalid(format!("{} has no column '{c}'", self.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Arc::new(arrow::datatypes::Schema::new(fields)))
    }

    /// Finishes any interrupted commit (see [`transaction`]), deciding a stage whose writer stopped
    /// (see [`lake_log`]); `full` checks every partition.
    pub async fn recover(&self, full: bool) -> Result<RecoveryReport> {
        let (report, state) = transaction::recover(self, full).await?;
        // A crash after a commit was settled may have left the Delta log behind (writers catch it up
        // with their next commit).
        delta::publish(self, state.snapshot_id, delta::Known::state(&state)).await?;
        Ok(report)
    }

    /// Finishes interrupted single-dataset commits only, leaving a stage in progress (or stalled) for
    /// [`Dataset::recover`]: what checks do before they look, so that they report such a stage.
    pub async fn finish_commits(&self) -> Result<RecoveryReport> {
        Ok(transaction::recover_with(self, false, false).await?.0)
    }

    /// Partition folder names present in the live tree.
    pub(crate) async fn live_partitions(&self) -> Result<BTreeSet<String>> {
        Ok(self
            .store
            .list(&self.paths.live_root())
            .await?
            .iter()
            .filter_map(|m| {
                let parts: Vec<_> = m.location.parts().collect();
                let n = parts.len();
                (n >= 2 && parts[n - 1].as_ref() == LIVE_FILE).then(|| parts[n - 2].as_ref().to_string())
            })
            .collect())
    }

    /// Deletes objects in the live tree that are not a partition's live file (temporary files left by
    /// a crash between link and rename). Returns how many.
    pub(crate) async fn remove_stray_live_objects(&self) -> Result<usize> {
        let mut n = 0;
        for m in self.store.list(&self.paths.live_root()).await? {
            if m.location.filename() != Some(LIVE_FILE) {
                self.store.delete(&m.location).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}

/// The rows of `batch` whose `symbol` is one of `symbols` (a batch without the column is kept whole).
pub fn keep_symbols(batch: &RecordBatch, symbols: &BTreeSet<Symbol>) -> Result<RecordBatch> {
    use arrow::array::{AsArray, BooleanArray};
    let Some(col) = batch.column_by_name("symbol") else { return Ok(batch.clone()) };
    let keep: BooleanArray =
        col.as_string::<i32>().iter().map(|s| Some(s.is_some_and(|s| symbols.contains(s)))).collect();
    Ok(arrow::compute::filter_record_batch(batch, &keep)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_timeout_reads_a_duration_or_seconds() {
        let read = |json: &str| serde_json::from_str::<EngineSettings>(json).map(|s| s.stage_timeout);
        assert_eq!(read(r#"{"stage_timeout": "90s"}"#).unwrap(), std::time::Duration::from_secs(90));
        assert_eq!(read(r#"{"stage_timeout": 5}"#).unwrap(), std::time::Duration::from_secs(5));
        assert_eq!(read("{}").unwrap(), std::time::Duration::from_secs(60));
        let e = read(r#"{"stage_timeout": "soon"}"#).unwrap_err().to_string();
        assert!(e.contains("'soon'") && e.contains("such as 90s"), "{e}");
    }

    #[test]
    fn snapshot_specs_parse() {
        assert_eq!(SnapshotSpec::parse("12").unwrap(), SnapshotSpec::Id(12));
        assert_eq!(SnapshotSpec::parse("latest").unwrap(), SnapshotSpec::Latest);
        assert_eq!(SnapshotSpec::parse("v1.0").unwrap(), SnapshotSpec::Tag("v1.0".into()));
        assert!(matches!(SnapshotSpec::parse("2024-01-02T10:00:00Z").unwrap(), SnapshotSpec::AsOf(_)));
        assert!(matches!(SnapshotSpec::parse("2024-01-02 10:00:00").unwrap(), SnapshotSpec::AsOf(_)));
        assert!(matches!(SnapshotSpec::parse("2024-01-02").unwrap(), SnapshotSpec::AsOf(_)));
        assert!(SnapshotSpec::parse("../x").is_err());
    }
}
