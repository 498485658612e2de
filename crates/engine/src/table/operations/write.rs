//! Writing rows: split them into partitions, build each partition's new file once, commit them all in
//! one snapshot.
//!
//! ```no_run
//! # async fn demo(ds: quantlake_engine::table::Dataset, batches: Vec<arrow::array::RecordBatch>) -> quantlake_engine::Result<()> {
//! use quantlake_engine::table::operations::write::WriteMode;
//! let done = ds.write(batches).mode(WriteMode::ReplaceSymbols).operation("ingest").parameter("source", "synthetic").execute().await?;
//! println!("snapshot {} wrote {} partitions", done.snapshot_id, done.partitions);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch, UInt32Array};
use arrow::compute::take_record_batch;
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, NaiveDate};
use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;
use serde::Serialize;

use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::quality::PartitionQuality;
use crate::symbol::Symbol;
use crate::table::Dataset;
use crate::table::data_file::{self, EncodedFile};
use crate::table::lake_log::StageMark;
use crate::table::layout::{self, PartitionKey, Partitioning};
use crate::table::manifest::{Action, PartitionEntry, TableState};
use crate::table::transaction::{self, CommitError, IO_CONCURRENCY, Transaction, failpoint};

/// What a write does to the partitions its rows fall in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// Each partition's content becomes exactly the new rows.
    Overwrite,
    /// In each partition, the rows of the symbols being written are replaced; other symbols' rows stay.
    #[default]
    ReplaceSymbols,
    /// The new rows are added to each partition's rows (for logs such as quarantined input).
    Append,
    /// In each covered partition, the old rows matching a predicate ([`WriteBuilder::removing_where`])
    /// are removed and the new rows added. The predicate runs again on a conflict's newer content.
    RemoveWhere,
}

/// Which old rows a `RemoveWhere` write removes: `true` = remove.
pub type RowPredicate = Arc<dyn Fn(&RecordBatch) -> Result<arrow::array::BooleanArray> + Send + Sync>;

/// Builder for a write; see the module docs.
pub struct WriteBuilder<'a> {
    dataset: &'a Dataset,
    batches: Vec<RecordBatch>,
    mode: WriteMode,
    operation: String,
    parameters: BTreeMap<String, serde_json::Value>,
    empty_partitions: Vec<PartitionKey>,
    dates: Option<BTreeSet<NaiveDate>>,
    symbols: Option<HashSet<String>>,
    symbols_per_partition: Option<HashMap<String, HashSet<String>>>,
    scope: Option<(String, String)>,
    window: Option<(i64, i64)>,
    predicate: Option<RowPredicate>,
    quality: Arc<BTreeMap<String, PartitionQuality>>,
    prebuilt: Vec<StagedPartition>,
}

/// A partition's new version file, encoded and stored ahead of the commit that adds it
/// ([`Dataset::stage_partition`], [`WriteBuilder::prebuilt`]).
#[derive(Debug, Clone)]
pub struct StagedPartition {
    key: PartitionKey,
    entry: PartitionEntry,
}

impl StagedPartition {
    pub fn key(&self) -> PartitionKey {
        self.key
    }

    pub fn rows(&self) -> u64 {
        self.entry.rows
    }

    pub fn bytes(&self) -> u64 {
        self.entry.bytes
    }
}

/// Stages partitions in the background ([`Dataset::stage_partition`]) while its owner computes the
/// next ones: encoding a partition is one thread's work, so a producer that staged inline would
/// leave the other cores idle. At most `limit` stagings run at once; the producer waits for the oldest
/// beyond that, which bounds the memory they hold.
pub struct Stager {
    dataset: Dataset,
    limit: usize,
    running: std::collections::VecDeque<tokio::task::JoinHandle<Result<StagedPartition>>>,
    staged: Vec<StagedPartition>,
}

impl Stager {
    pub fn new(dataset: &Dataset, limit: usize) -> Self {
        Self { dataset: dataset.clone(), limit: limit.max(1), running: Default::default(), staged: Vec::new() }
    }

    /// Starts staging `batches` as partition `key`, first waiting for the oldest staging if `limit`
    /// are running. On an error, call [`Stager::abandon`].
    pub async fn stage(
        &mut self,
        key: PartitionKey,
        batches: Vec<RecordBatch>,
        quality: Option<PartitionQuality>,
    ) -> Result<()> {
        while self.running.len() >= self.limit {
            self.wait_oldest().await?;
        }
        let dataset = self.dataset.clone();
        self.running.push_back(tokio::spawn(async move { dataset.stage_partition(key, batches, quality).await }));
        Ok(())
    }

    async fn wait_oldest(&mut self) -> Result<()> {
        if let Some(task) = self.running.pop_front() {
            self.staged.push(task.await??);
        }
        Ok(())
    }

    /// Waits for every staging; the staged partitions, or the first error (having discarded them all).
    pub async fn finish(mut self) -> Result<Vec<StagedPartition>> {
        while !self.running.is_empty() {
            if let Err(e) = self.wait_oldest().await {
                self.abandon().await;
                return Err(e);
            }
        }
        Ok(self.staged)
    }

    /// Waits for the stagings still running and deletes every staged file: nothing will commit them.
    pub async fn abandon(mut self) {
        while let Some(task) = self.running.pop_front() {
            if let Ok(Ok(s)) = task.await {
                self.staged.push(s);
            }
        }
        self.dataset.discard_staged(&self.staged).await;
    }
}

/// What a write did.
#[derive(Debug, Clone, Serialize)]
pub struct WriteResult {
    pub dataset: String,
    pub snapshot_id: u64,
    pub partitions: usize,
    pub rows_written: u64,
    /// Every byte this write put in the store: data files (including rebuilt ones), log, partition table.
    pub bytes_written: u64,
    pub attempts: u32,
}

impl Dataset {
    /// Starts a write of `batches` (in the contract's schema) to this dataset.
    pub fn write(&self, batches: Vec<RecordBatch>) -> WriteBuilder<'_> {
        WriteBuilder {
            dataset: self,
            batches,
            mode: WriteMode::default(),
            operation: "write".into(),
            parameters: BTreeMap::new(),
            empty_partitions: Vec::new(),
            dates: None,
            symbols: None,
            symbols_per_partition: None,
            scope: None,
            window: None,
            predicate: None,
            quality: Arc::default(),
            prebuilt: Vec::new(),
        }
    }

    /// Encodes `batches`, the whole new content of partition `key` (in the contract's schema), and
    /// stores its version file now, with its data-quality verdict. A stage that produces many
    /// partitions writes each as soon as it is computed and holds none of them until its commit
    /// ([`WriteBuilder::prebuilt`]). The file is invisible until that commit; if none will come,
    /// [`Dataset::discard_staged`] deletes it (else vacuum does, a day after, as any unreferenced file).
    pub async fn stage_partition(
        &self,
        key: PartitionKey,
        batches: Vec<RecordBatch>,
        quality: Option<PartitionQuality>,
    ) -> Result<StagedPartition> {
        for b in &batches {
            self.contract.check_schema(&b.schema())?;
        }
        let contract = self.contract.clone();
        let file = tokio::task::spawn_blocking(move || -> Result<EncodedFile> {
            let parts = split_by_partition(&contract, &batches)?;
            if let Some(other) = parts.keys().find(|k| **k != key) {
                return Err(Error::invalid(format!(
                    "rows staged for partition {key} of '{}' fall in {other}",
                    contract.name
                )));
            }
            if parts.is_empty() {
                return Err(Error::invalid(format!(
                    "nothing to stage for partition {key} of '{}': no rows",
                    contract.name
                )));
            }
            data_file::encode(&contract, &batches)
        })
        .await??;
        let mut entry = transaction::stage(self, &key.to_string(), file, self.contract.schema_version).await?;
        entry.quality = quality.map(Box::new);
        failpoint("commit.after_stage");
        Ok(StagedPartition { key, entry })
    }

    /// Deletes staged partitions that will not be committed.
    pub async fn discard_staged(&self, staged: &[StagedPartition]) {
        for s in staged {
            discard(self, &s.entry).await;
        }
    }
}

impl<'a> WriteBuilder<'a> {
    pub fn mode(mut self, mode: WriteMode) -> Self {
        self.mode = mode;
        self
    }

    /// The operation name the log records (`ingest`, `backfill`, ...).
    pub fn operation(mut self, name: impl Into<String>) -> Self {
        self.operation = name.into();
        self
    }

    /// A parameter the log records with the commit.
    pub fn parameter(mut self, key: &str, value: impl Serialize) -> Self {
        self.parameters.insert(key.to_string(), serde_json::to_value(value).unwrap_or(serde_json::Value::Null));
        self
    }

    /// Partitions this write covers even if no row falls in them: with `Overwrite` they are emptied (removed),
    /// with `ReplaceSymbols` the written symbols' rows are removed from them.
    pub fn covering(mut self, partitions: impl IntoIterator<Item = PartitionKey>) -> Self {
        self.empty_partitions.extend(partitions);
        self
    }

    /// Days this write covers, whatever the dataset's partitioning: their partitions are covered as
    /// with [`Self::covering`], and in partitions longer than a day (`month=`, `year=`) the mode's
    /// removal (an overwrite's too) applies only to rows of these days and of the days the new rows
    /// fall in: the partition's other days stay. Writers of per-session records use this, so that
    /// their datasets can be kept in month files.
    pub fn covering_dates(mut self, dates: impl IntoIterator<Item = NaiveDate>) -> Self {
        self.dates.get_or_insert_with(BTreeSet::new).extend(dates);
        self
    }

    /// With `ReplaceSymbols`: the symbols whose rows are replaced (default: those in the new rows). A
    /// symbol asked for that has no new rows loses its old rows in the covered partitions.
    pub fn replacing_symbols(mut self, symbols: impl IntoIterator<Item = Symbol>) -> Self {
        self.symbols = Some(symbols.into_iter().map(String::from).collect());
        self
    }

    /// With `ReplaceSymbols`: the symbols whose rows are replaced, per partition (a multi-file import:
    /// each partition loses the old rows of the symbols of the files that feed it). Partitions not in
    /// the map use the symbols of [`Self::replacing_symbols`] or of the new rows.
    pub fn replacing_symbols_per_partition(mut self, symbols: HashMap<PartitionKey, HashSet<Symbol>>) -> Self {
        let per_partition =
            symbols.into_iter().map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()));
        self.symbols_per_partition = Some(per_partition.collect());
        self
    }

    /// With `ReplaceSymbols`: replace only those of the symbols' rows whose utf8 `column` holds `value`
    /// (one dataset's records in a table several datasets share, such as `ingest_progress`).
    pub fn replacing_where(mut self, column: &str, value: &str) -> Self {
        self.scope = Some((column.to_string(), value.to_string()));
        self
    }

    /// With `ReplaceSymbols`: replace only those of the symbols' rows whose partition column falls in
    /// `[start, end)` (µs): a chunk of sessions inside a yearly partition leaves the year's other days.
    pub fn replacing_between(mut self, start_micros: i64, end_micros: i64) -> Self {
        self.window = Some((start_micros, end_micros));
        self
    }

    /// Sets `RemoveWhere` mode with this predicate (e.g. "updated before the cutoff").
    pub fn removing_where(mut self, predicate: RowPredicate) -> Self {
        self.mode = WriteMode::RemoveWhere;
        self.predicate = Some(predicate);
        self
    }

    /// The data-quality verdict of each written partition, committed in its manifest entry. With
    /// `Overwrite` only: the verdict must describe the partition's whole new content.
    pub fn quality(mut self, quality: impl IntoIterator<Item = (PartitionKey, PartitionQuality)>) -> Self {
        self.quality = Arc::new(quality.into_iter().map(|(k, q)| (k.to_string(), q)).collect());
        self
    }

    /// With `Overwrite`: partitions whose new content is already staged ([`Dataset::stage_partition`]).
    /// The write's rows must not fall in them.
    pub fn prebuilt(mut self, staged: impl IntoIterator<Item = StagedPartition>) -> Self {
        self.prebuilt.extend(staged);
        self
    }

    /// Commits the write on its own (one snapshot of this dataset), rebuilding and retrying what a
    /// concurrent commit to the same partitions made stale.
    pub async fn execute(self) -> Result<WriteResult> {
        self.prepare()?.commit_alone().await
    }

    /// Checks the rows and splits them by partition: a write ready to build on a snapshot.
    pub(crate) fn prepare(self) -> Result<PreparedWrite<'a>> {
        let ds = self.dataset;
        let contract = ds.contract.clone();
        for b in &self.batches {
            contract.check_schema(&b.schema())?;
        }
        let mut by_partition = split_by_partition(&contract, &self.batches)?;
        for k in &self.empty_partitions {
            by_partition.entry(*k).or_default();
        }
        let mut days = None;
        if let Some(dates) = &self.dates {
            for d in dates {
                by_partition.entry(PartitionKey::for_date(contract.partitioning, *d)).or_default();
            }
            if matches!(contract.partitioning, Partitioning::Month | Partitioning::Year) {
                if !self.quality.is_empty() || !self.prebuilt.is_empty() {
                    return Err(Error::invalid(format!(
                        "'{}' keeps several days per partition: a write of some days cannot replace whole partitions (quality verdicts, prebuilt files)",
                        ds.name()
                    )));
                }
                let mut all = dates.clone();
                all.extend(row_days(&contract, &self.batches)?);
                days = Some(DayScope::new(&contract, &all)?);
            }
        }
        if !self.prebuilt.is_empty() && self.mode != WriteMode::Overwrite {
            return Err(Error::invalid("prebuilt partitions can only be committed with an Overwrite of them"));
        }
        for s in &self.prebuilt {
            if by_partition.get(&s.key).is_some_and(|rows| !rows.is_empty()) {
                return Err(Error::invalid(format!(
                    "partition {} of '{}' is both prebuilt and written",
                    s.key,
                    ds.name()
                )));
            }
            by_partition.entry(s.key).or_default();
        }
        if by_partition.is_empty() {
            return Err(Error::invalid(format!("nothing to write to '{}': no rows and no partitions", ds.name())));
        }
        // Per-partition symbol sets, when given, are the whole story: no need to scan the rows.
        let mut symbols =
            if self.symbols_per_partition.is_some() { HashSet::new() } else { data_file::symbols_in(&self.batches) };
        symbols.extend(self.symbols.iter().flatten().cloned());
        if !self.quality.is_empty() && self.mode != WriteMode::Overwrite {
            return Err(Error::invalid("a partition's quality verdict can only be committed with an Overwrite of it"));
        }
        if self.mode == WriteMode::RemoveWhere && self.predicate.is_none() {
            return Err(Error::invalid("RemoveWhere needs a predicate (WriteBuilder::removing_where)"));
        }
        let removal = Arc::new(Removal {
            symbols,
            symbols_per_partition: self.symbols_per_partition.unwrap_or_default(),
            scope: self.scope.clone(),
            window: self.window.map(|(start, end)| (contract.partition_column.clone(), start, end)),
            predicate: self.predicate.clone(),
            days,
        });
        let change = Change::Rows {
            new_rows: Arc::new(by_partition.into_iter().map(|(k, v)| (k.to_string(), v)).collect()),
            removal,
            mode: self.mode,
            quality: self.quality,
        };
        let mut prepared = PreparedWrite::new(ds, change, self.operation, self.parameters);
        // An overwrite's staged file does not depend on the snapshot it lands on: it is never rebuilt.
        for s in self.prebuilt {
            prepared.bytes_written += s.entry.bytes;
            prepared.staged.insert(s.key.to_string(), (0, Action::Add(s.entry)));
        }
        Ok(prepared)
    }
}

/// What a prepared write changes.
enum Change {
    /// New rows, merged into each partition by the mode.
    Rows {
        new_rows: Arc<BTreeMap<String, Vec<RecordBatch>>>,
        removal: Arc<Removal>,
        mode: WriteMode,
        quality: Arc<BTreeMap<String, PartitionQuality>>,
    },
    /// Every partition back to its version in an earlier snapshot (no data is written).
    Restore { target: TableState },
    /// Partitions' rows regrouped into the contract's partitioning and re-encoded (compaction): these
    /// partitions, or all of them (`None`); built afresh on every attempt.
    Regroup { partitions: Option<BTreeSet<String>> },
}

/// A write whose rows are split by partition: built on a snapshot ([`PreparedWrite::build`]), then
/// committed alone or as one dataset of a stage.
pub(crate) struct PreparedWrite<'a> {
    pub dataset: &'a Dataset,
    change: Change,
    operation: String,
    parameters: BTreeMap<String, serde_json::Value>,
    /// Partition -> (the version it was built on, its action).
    staged: BTreeMap<String, (u64, Action)>,
    schema: Option<crate::contract::SchemaRecord>,
    pub bytes_written: u64,
    pub attempts: u32,
}

impl<'a> PreparedWrite<'a> {
    fn new(
        dataset: &'a Dataset,
        change: Change,
        operation: String,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self {
            dataset,
            change,
            operation,
            parameters,
            staged: BTreeMap::new(),
            schema: None,
            bytes_written: 0,
            attempts: 0,
        }
    }

    /// A restore of `dataset` to `target` (see [`crate::table::operations::restore`]).
    pub(crate) fn restore(
        dataset: &'a Dataset,
        target: TableState,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self::new(dataset, Change::Restore { target }, "restore".into(), parameters)
    }

    /// A regroup of `partitions` (all when `None`) into the contract's partitioning, with re-encoded
    /// files (see [`crate::table::operations::compact`]).
    pub(crate) fn regroup(
        dataset: &'a Dataset,
        partitions: Option<BTreeSet<String>>,
        parameters: BTreeMap<String, serde_json::Value>,
    ) -> Self {
        Self::new(dataset, Change::Regroup { partitions }, "compact".into(), parameters)
    }

    pub(crate) async fn commit_alone(mut self) -> Result<WriteResult> {
        let ds = self.dataset;
        loop {
            let (_, read) = transaction::recover(ds, false).await?;
            self.build(&read).await?;
            let Some(txn) = self.transaction(&read, None) else {
                // Nothing changes (e.g. removing symbols from partitions that do not exist): no snapshot.
                return Ok(self.result(read.snapshot_id, 0, 0));
            };
            let (partitions, rows) = (txn.actions.len(), self.rows_written(&txn.actions));
            match txn.commit().await {
                Ok(done) => {
                    self.bytes_written += done.manifest_bytes;
                    return Ok(self.result(done.commit.snapshot_id, partitions, rows));
                }
                Err(CommitError::Conflict { snapshot, partitions }) if self.attempts <= ds.settings.commit_retries => {
                    tracing::info!(
                        dataset = ds.name(),
                        snapshot,
                        ?partitions,
                        attempt = self.attempts,
                        "concurrent commit touched the same partitions; rebuilding and retrying"
                    );
                }
                Err(e) => {
                    // Staged files are garbage unless the commit landed (then the snapshot needs them).
                    if !matches!(e, CommitError::Committed(_)) {
                        self.discard().await;
                    }
                    return Err(e.into_error(ds, read.snapshot_id, self.attempts));
                }
            }
        }
    }

    /// Builds the partitions that are missing or were built on a version that is no longer current in
    /// `read` (overwrites do not depend on the old content: their staged files stay valid).
    pub(crate) async fn build(&mut self, read: &TableState) -> Result<()> {
        let ds = self.dataset;
        self.attempts += 1;
        let (new_rows, removal, mode, quality) = match &self.change {
            Change::Rows { new_rows, removal, mode, quality } => (new_rows, removal, *mode, quality),
            Change::Restore { target } => {
                // Version files are immutable: point each partition back at its earlier version.
                let mut staged: BTreeMap<String, (u64, Action)> = target
                    .partitions
                    .values()
                    .filter(|e| read.partitions.get(&e.partition).is_none_or(|cur| cur.file_id != e.file_id))
                    .map(|e| (e.partition.clone(), (0, Action::Add(e.clone()))))
                    .collect();
                staged.extend(
                    read.partitions
                        .keys()
                        .filter(|p| !target.partitions.contains_key(*p))
                        .map(|p| (p.clone(), (0, Action::Remove { partition: p.clone() }))),
                );
                self.staged = staged;
                return Ok(());
            }
            Change::Regroup { partitions } => {
                self.schema = schema_change(&ds.contract, read)?;
                let built = regroup(ds, read, partitions.as_ref()).await?;
                for (_, a) in std::mem::take(&mut self.staged).into_values() {
                    if let Action::Add(old) = a {
                        discard(ds, &old).await;
                    }
                }
                for (p, (action, bytes)) in built {
                    self.bytes_written += bytes;
                    self.staged.insert(p, (0, action));
                }
                return Ok(());
            }
        };
        if let Some(found) = layout::layout_of(read.partitions.keys()).filter(|l| *l != ds.contract.partitioning) {
            return Err(Error::LayoutMigration {
                dataset: ds.name().to_string(),
                found: layout_name(found).into(),
                expected: layout_name(ds.contract.partitioning).into(),
            });
        }
        self.schema = schema_change(&ds.contract, read)?;
        let stale: Vec<String> = new_rows
            .keys()
            .filter(|p| {
                let current = read.partitions.get(*p).map_or(0, |e| e.snapshot_id);
                match self.staged.get(*p) {
                    None => true,
                    Some((built_on, _)) => {
                        (mode != WriteMode::Overwrite || removal.days.is_some()) && *built_on != current
                    }
                }
            })
            .cloned()
            .collect();
        let built = build(ds, read, &stale, new_rows, removal, mode, quality).await?;
        for (p, (action, bytes)) in built {
            if let Some((_, Action::Add(old))) = self.staged.get(&p) {
                discard(ds, old).await;
            }
            self.bytes_written += bytes;
            self.staged.insert(p.clone(), (read.partitions.get(&p).map_or(0, |e| e.snapshot_id), action));
        }
        Ok(())
    }

    /// The commit of what was built, on `read`; `None` when it changes nothing.
    pub(crate) fn transaction<'r>(&'r self, read: &'r TableState, stage: Option<StageMark>) -> Option<Transaction<'r>> {
        // A partition that would be removed but does not exist needs no action.
        let actions: Vec<Action> = self
            .staged
            .values()
            .map(|(_, a)| a.clone())
            .filter(|a| !matches!(a, Action::Remove { partition } if !read.partitions.contains_key(partition)))
            .collect();
        let covers = match &self.change {
            Change::Rows { new_rows, .. } => new_rows.keys().cloned().collect(),
            Change::Restore { target } => target.partitions.keys().cloned().collect(),
            // Every partition it read or writes: a concurrent change to any of them makes it rebuild.
            Change::Regroup { partitions } => {
                let mut covers: BTreeSet<String> = self.staged.keys().cloned().collect();
                covers.extend(match partitions {
                    Some(p) => p.iter().cloned().collect::<Vec<_>>(),
                    None => read.partitions.keys().cloned().collect(),
                });
                covers
            }
        };
        (!actions.is_empty()).then(|| Transaction {
            dataset: self.dataset,
            read,
            covers,
            operation: self.operation.clone(),
            parameters: self.parameters.clone(),
            schema: self.schema.clone(),
            actions,
            stage,
        })
    }

    /// Rows a commit of these actions writes (a restore writes none: it points at existing files).
    pub(crate) fn rows_written(&self, actions: &[Action]) -> u64 {
        match self.change {
            Change::Rows { .. } | Change::Regroup { .. } => {
                actions.iter().map(|a| if let Action::Add(e) = a { e.rows } else { 0 }).sum()
            }
            Change::Restore { .. } => 0,
        }
    }

    /// Deletes the staged files: the write will not be committed. A restore staged none.
    pub(crate) async fn discard(&self) {
        if matches!(self.change, Change::Restore { .. }) {
            return;
        }
        for (_, a) in self.staged.values() {
            if let Action::Add(e) = a {
                discard(self.dataset, e).await;
            }
        }
    }

    pub(crate) fn result(&self, snapshot_id: u64, partitions: usize, rows_written: u64) -> WriteResult {
        WriteResult {
            dataset: self.dataset.name().to_string(),
            snapshot_id,
            partitions,
            rows_written,
            bytes_written: self.bytes_written,
            attempts: self.attempts,
        }
    }
}

/// Which old rows a write removes from the partitions it touches.
struct Removal {
    /// `ReplaceSymbols`: rows of these symbols, whose `scope` column holds the value (if set), and
    /// whose partition column falls in the `window` (if set).
    symbols: HashSet<String>,
    /// `ReplaceSymbols`: these partitions' own symbol sets, instead of `symbols`.
    symbols_per_partition: HashMap<String, HashSet<String>>,
    scope: Option<(String, String)>,
    window: Option<(String, i64, i64)>,
    /// `RemoveWhere`: rows matching this.
    predicate: Option<RowPredicate>,
    /// In partitions longer than a day: only rows of these days are removed ([`WriteBuilder::covering_dates`]).
    days: Option<DayScope>,
}

impl Removal {
    /// The rows of `batch`, old content of `partition`, that stay.
    fn keep(&self, mode: WriteMode, partition: &str, batch: &RecordBatch) -> Result<RecordBatch> {
        let remove: arrow::array::BooleanArray = match (mode, &self.predicate) {
            (WriteMode::Append, _) => return Ok(batch.clone()),
            (WriteMode::Overwrite, _) if self.days.is_none() => return Ok(batch.clone()),
            (WriteMode::Overwrite, _) => arrow::array::BooleanArray::from(vec![true; batch.num_rows()]),
            (WriteMode::RemoveWhere, Some(p)) => p(batch)?,
            (WriteMode::RemoveWhere, None) => return Ok(batch.clone()),
            (WriteMode::ReplaceSymbols, _) => {
                let Some(symbols) = batch.column_by_name("symbol").and_then(|c| c.as_string_opt::<i32>()) else {
                    return Ok(batch.clone());
                };
                let replaced = self.symbols_per_partition.get(partition).unwrap_or(&self.symbols);
                let column = |name: &str| {
                    batch
                        .column_by_name(name)
                        .ok_or_else(|| Error::invalid(format!("replacement column '{name}' is missing")))
                };
                let scope = match &self.scope {
                    Some((name, value)) => {
                        let c = column(name)?
                            .as_string_opt::<i32>()
                            .ok_or_else(|| Error::invalid(format!("replacement scope column '{name}' is not utf8")))?;
                        Some((c, value.as_str()))
                    }
                    None => None,
                };
                let window = match &self.window {
                    Some((name, start, end)) => {
                        Some((column(name)?.as_primitive::<TimestampMicrosecondType>(), *start, *end))
                    }
                    None => None,
                };
                (0..batch.num_rows())
                    .map(|i| {
                        let symbol = symbols.is_valid(i) && replaced.contains(symbols.value(i));
                        let scoped = scope.is_none_or(|(c, v)| c.is_valid(i) && c.value(i) == v);
                        let inside = window.is_none_or(|(c, start, end)| (start..end).contains(&c.value(i)));
                        Some(symbol && scoped && inside)
                    })
                    .collect()
            }
        };
        let remove = match &self.days {
            Some(days) => arrow::compute::and(&remove, &days.contains(batch)?)?,
            None => remove,
        };
        Ok(arrow::compute::filter_record_batch(batch, &arrow::compute::not(&remove)?)?)
    }
}

/// The schema record to commit: set on the first commit, evolved when the contract grew.
fn schema_change(contract: &DatasetContract, read: &TableState) -> Result<Option<crate::contract::SchemaRecord>> {
    match &read.schema {
        None => Ok(Some(contract.schema_record())),
        Some(recorded) => Ok(contract.check_evolution(recorded)?.then(|| contract.schema_record())),
    }
}

/// Builds and stages the new file of each partition in `partitions`; returns each one's action and the
/// bytes written. Encoding runs on rayon; uploads run concurrently.
async fn build(
    ds: &Dataset,
    read: &TableState,
    partitions: &[String],
    new_rows: &Arc<BTreeMap<String, Vec<RecordBatch>>>,
    removal: &Arc<Removal>,
    mode: WriteMode,
    quality: &BTreeMap<String, PartitionQuality>,
) -> Result<BTreeMap<String, (Action, u64)>> {
    // Old content, for partitions whose other rows must be kept.
    let old: BTreeMap<String, Vec<RecordBatch>> = if mode != WriteMode::Overwrite || removal.days.is_some() {
        futures::stream::iter(partitions.iter().filter_map(|p| read.partitions.get(p)).map(|e| async move {
            Ok::<_, Error>((e.partition.clone(), ds.read_partition(e, &Default::default()).await?))
        }))
        .buffer_unordered(IO_CONCURRENCY)
        .try_collect()
        .await?
    } else {
        BTreeMap::new()
    };
    let contract = ds.contract.clone();
    let (new_rows, removal, parts) = (new_rows.clone(), removal.clone(), partitions.to_vec());
    let started = std::time::Instant::now();
    let encoded: Vec<(String, Option<EncodedFile>)> = tokio::task::spawn_blocking(move || {
        parts
            .par_iter()
            .map(|p| {
                let mut batches: Vec<RecordBatch> = Vec::new();
                for b in old.get(p).into_iter().flatten() {
                    batches.push(removal.keep(mode, p, b)?);
                }
                batches.extend(new_rows.get(p).into_iter().flatten().cloned());
                let rows: usize = batches.iter().map(RecordBatch::num_rows).sum();
                let file = if rows == 0 { None } else { Some(data_file::encode(&contract, &batches)?) };
                Ok((p.clone(), file))
            })
            .collect::<Result<Vec<_>>>()
    })
    .await??;
    let encode_seconds = started.elapsed().as_secs_f64();
    let version = ds.contract.schema_version;
    let staged = futures::stream::iter(encoded.into_iter().map(|(p, file)| async move {
        match file {
            None => Ok((p.clone(), (Action::Remove { partition: p }, 0))),
            Some(file) => {
                let mut entry = transaction::stage(ds, &p, file, version).await?;
                entry.quality = quality.get(&p).cloned().map(Box::new);
                failpoint("commit.after_stage");
                let bytes = entry.bytes;
                Ok((p, (Action::Add(entry), bytes)))
            }
        }
    }))
    .buffer_unordered(IO_CONCURRENCY)
    .try_collect()
    .await;
    tracing::debug!(
        dataset = ds.name(),
        partitions = partitions.len(),
        encode_seconds,
        stage_seconds = started.elapsed().as_secs_f64() - encode_seconds,
        "built partitions"
    );
    staged
}

/// Deletes a staged version file that will never be committed.
async fn discard(ds: &Dataset, e: &PartitionEntry) {
    let path = ds.paths.version_file(&e.partition, &e.file_id);
    if let Err(err) = ds.store.delete(&path).await {
        tracing::warn!(%path, error = %err, "could not delete an uncommitted version file; vacuum will");
    }
}

/// Splits rows by the partition their partition column's local date falls in.
pub fn split_by_partition(
    contract: &DatasetContract,
    batches: &[RecordBatch],
) -> Result<BTreeMap<PartitionKey, Vec<RecordBatch>>> {
    let mut out: BTreeMap<PartitionKey, Vec<RecordBatch>> = BTreeMap::new();
    if contract.partitioning == crate::table::layout::Partitioning::None {
        let rows: Vec<RecordBatch> = batches.iter().filter(|b| b.num_rows() > 0).cloned().collect();
        if !rows.is_empty() {
            out.insert(PartitionKey::All, rows);
        }
        return Ok(out);
    }
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let ts = partition_times(contract, batch)?;
        // Rows come in runs of one day: remember the current day's UTC bounds instead of converting
        // each row, and note runs, not rows.
        let mut runs: BTreeMap<PartitionKey, Vec<std::ops::Range<usize>>> = BTreeMap::new();
        let mut day: Option<(i64, i64, PartitionKey, usize)> = None;
        for (i, t) in ts.values().iter().enumerate() {
            match day {
                Some((start, end, _, _)) if *t >= start && *t < end => {}
                _ => {
                    if let Some((_, _, k, from)) = day {
                        runs.entry(k).or_default().push(from..i);
                    }
                    let (start, end, k) = local_day(contract, *t)?;
                    day = Some((start, end, k, i));
                }
            }
        }
        if let Some((_, _, k, from)) = day {
            runs.entry(k).or_default().push(from..batch.num_rows());
        }
        for (k, ranges) in runs {
            // A partition's rows in one run are a slice of the batch (no copy); scattered rows are gathered.
            let part = match ranges.as_slice() {
                [one] => batch.slice(one.start, one.len()),
                _ => take_record_batch(
                    batch,
                    &UInt32Array::from_iter_values(ranges.into_iter().flatten().map(|i| i as u32)),
                )?,
            };
            out.entry(k).or_default().push(part);
        }
    }
    Ok(out)
}

/// The partition of instant `t` (µs), and the UTC bounds of its local calendar day.
fn local_day(contract: &DatasetContract, t: i64) -> Result<(i64, i64, PartitionKey)> {
    let (start, end, date) = local_date(contract, t)?;
    Ok((start, end, PartitionKey::for_date(contract.partitioning, date)))
}

/// The local calendar day of instant `t` (µs) in the contract's partition time zone, with its UTC bounds.
fn local_date(contract: &DatasetContract, t: i64) -> Result<(i64, i64, NaiveDate)> {
    let utc =
        DateTime::from_timestamp_micros(t).ok_or_else(|| Error::invalid(format!("timestamp {t}us is out of range")))?;
    let date = utc.with_timezone(&contract.partition_timezone).date_naive();
    let (start, end) = layout::day_bounds_micros(contract.partition_timezone, date).unwrap_or((t, t + 1));
    Ok((start, end.max(t + 1), date))
}

/// The local days the rows' partition column falls in.
fn row_days(contract: &DatasetContract, batches: &[RecordBatch]) -> Result<BTreeSet<NaiveDate>> {
    let mut days = BTreeSet::new();
    for batch in batches.iter().filter(|b| b.num_rows() > 0) {
        let ts = partition_times(contract, batch)?;
        let mut day: Option<(i64, i64)> = None;
        for t in ts.values().iter() {
            if !day.is_some_and(|(start, end)| (start..end).contains(t)) {
                let (start, end, date) = local_date(contract, *t)?;
                days.insert(date);
                day = Some((start, end));
            }
        }
    }
    Ok(days)
}

fn partition_times<'b>(
    contract: &DatasetContract,
    batch: &'b RecordBatch,
) -> Result<&'b arrow::array::TimestampMicrosecondArray> {
    let col = batch.column_by_name(&contract.partition_column).ok_or_else(|| Error::SchemaMismatch {
        dataset: contract.name.clone(),
        detail: format!("partition column '{}' is missing", contract.partition_column),
    })?;
    col.as_primitive_opt::<TimestampMicrosecondType>().ok_or_else(|| Error::SchemaMismatch {
        dataset: contract.name.clone(),
        detail: format!("partition column '{}' is not a timestamp", contract.partition_column),
    })
}

/// Some local days, as sorted UTC ranges of the partition column.
struct DayScope {
    contract: Arc<DatasetContract>,
    ranges: Vec<(i64, i64)>,
}

impl DayScope {
    fn new(contract: &Arc<DatasetContract>, days: &BTreeSet<NaiveDate>) -> Result<Self> {
        let ranges = days
            .iter()
            .map(|d| {
                layout::day_bounds_micros(contract.partition_timezone, *d)
                    .ok_or_else(|| Error::invalid(format!("date {d} is out of range")))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Self { contract: contract.clone(), ranges })
    }

    /// Which rows fall in one of the days.
    fn contains(&self, batch: &RecordBatch) -> Result<arrow::array::BooleanArray> {
        let ts = partition_times(&self.contract, batch)?;
        Ok(ts
            .values()
            .iter()
            .map(|t| {
                let i = self.ranges.partition_point(|(start, _)| start <= t);
                Some(i > 0 && *t < self.ranges[i - 1].1)
            })
            .collect())
    }
}

/// How a partitioning is named in messages (its folders' key).
pub(crate) fn layout_name(p: Partitioning) -> &'static str {
    match p {
        Partitioning::Date => "date=",
        Partitioning::Month => "month=",
        Partitioning::Year => "year=",
        Partitioning::None => "all",
    }
}

/// Builds a regroup on `read`: the rows of `partitions` (all when `None`) split into the contract's
/// partitioning, each target partition encoded once from every source partition overlapping it; the
/// sources that are no target are removed. One target's sources are held at a time (a few targets
/// are built at once).
async fn regroup(
    ds: &Dataset,
    read: &TableState,
    partitions: Option<&BTreeSet<String>>,
) -> Result<BTreeMap<String, (Action, u64)>> {
    let contract = ds.contract.clone();
    let sources: Vec<&PartitionEntry> =
        read.partitions.values().filter(|e| partitions.is_none_or(|p| p.contains(&e.partition))).collect();
    let mut targets: BTreeMap<PartitionKey, Vec<&PartitionEntry>> = BTreeMap::new();
    for e in &sources {
        for key in PartitionKey::parse(&e.partition)?.regrouped(contract.partitioning) {
            targets.entry(key).or_default().push(e);
        }
    }
    let version = contract.schema_version;
    let built: Vec<(String, Option<(Action, u64)>)> = futures::stream::iter(targets.into_iter().map(|(key, from)| {
        let contract = contract.clone();
        async move {
            let mut batches = Vec::new();
            for e in &from {
                batches.extend(ds.read_partition(e, &Default::default()).await?);
            }
            let single =
                (from.len() == 1 && from[0].partition == key.to_string()).then(|| from[0].quality.clone()).flatten();
            let file = tokio::task::spawn_blocking(move || -> Result<Option<EncodedFile>> {
                let mut parts = split_by_partition(&contract, &batches)?;
                match parts.remove(&key) {
                    Some(rows) if rows.iter().any(|b| b.num_rows() > 0) => {
                        Ok(Some(data_file::encode(&contract, &rows)?))
                    }
                    _ => Ok(None),
                }
            })
            .await??;
            let Some(file) = file else { return Ok::<_, Error>((key.to_string(), None)) };
            let mut entry = transaction::stage(ds, &key.to_string(), file, version).await?;
            // A partition rewritten in place keeps its verdict: its rows did not change.
            entry.quality = single;
            failpoint("commit.after_stage");
            let bytes = entry.bytes;
            Ok((key.to_string(), Some((Action::Add(entry), bytes))))
        }
    }))
    .buffer_unordered(IO_CONCURRENCY)
    .try_collect()
    .await?;
    let mut out: BTreeMap<String, (Action, u64)> = built.into_iter().filter_map(|(p, a)| a.map(|a| (p, a))).collect();
    for e in sources {
        if !out.contains_key(&e.partition) {
            out.insert(e.partition.clone(), (Action::Remove { partition: e.partition.clone() }, 0));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{ArrayRef, AsArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
    use arrow::datatypes::TimestampMicrosecondType;

    #[test]
    fn rows_split_by_local_day_in_runs() {
        let contract = crate::contract::Contracts::builtin().get("raw_synthetic_bars").unwrap();
        // 2024-01-02 and 2024-01-03 in New York; 03:00 UTC on the 3rd is still the 2nd there.
        let utc = |d: u32, h: u32| {
            chrono::NaiveDate::from_ymd_opt(2024, 1, d)
                .unwrap()
                .and_hms_opt(h, 0, 0)
                .unwrap()
                .and_utc()
                .timestamp_micros()
        };
        let ts = vec![utc(2, 15), utc(2, 16), utc(3, 15), utc(3, 3), utc(3, 16), utc(4, 15)];
        let n = ts.len();
        let columns: Vec<ArrayRef> = contract
            .columns
            .iter()
            .map(|c| -> ArrayRef {
                match c.data_type.as_str() {
                    "utf8" => Arc::new(StringArray::from_iter_values((0..n).map(|i| format!("S{i}")))),
                    "float64" => Arc::new(Float64Array::from_iter_values((0..n).map(|i| i as f64))),
                    "int64" => Arc::new(Int64Array::from_iter_values(0..n as i64)),
                    _ if c.name == "ts" => Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC")),
                    _ => Arc::new(TimestampMicrosecondArray::from(vec![0; n]).with_timezone("UTC")),
                }
            })
            .collect();
        let batch = RecordBatch::try_new(contract.arrow_schema(), columns).unwrap();
        let split = split_by_partition(&contract, std::slice::from_ref(&batch)).unwrap();
        let rows = |key: &str| -> Vec<String> {
            let parts = &split[&PartitionKey::parse(key).unwrap()];
            parts
                .iter()
                .flat_map(|b| (0..b.num_rows()).map(move |i| b.column(0).as_string::<i32>().value(i).to_string()))
                .collect()
        };
        assert_eq!(split.len(), 3);
        // Two runs of the 2nd, gathered in row order; one run each of the 3rd and the 4th, sliced.
        assert_eq!(rows("date=2024-01-02"), ["S0", "S1", "S3"]);
        assert_eq!(rows("date=2024-01-03"), ["S2", "S4"]);
        let third = &split[&PartitionKey::parse("date=2024-01-04").unwrap()][0];
        let (sliced, whole) = (
            third.column(1).as_primitive::<TimestampMicrosecondType>(),
            batch.column(1).as_primitive::<TimestampMicrosecondType>(),
        );
        assert_eq!(sliced.values().to_vec(), [utc(4, 15)]);
        assert!(
            std::ptr::eq(&sliced.values()[0], &whole.values()[5]),
            "a one-run partition is a view of the batch, not a copy"
        );
    }
}
