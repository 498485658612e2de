//! Every dataset is also a Delta Lake table, so engines that read Delta (Spark, Trino, DuckDB's
//! `delta_scan`, polars' `read_delta`, the `deltalake` package) read any snapshot, by version or by
//! time, without quantlake.
//!
//! The table root is `_versions/<dataset>/`: the immutable, uniquely named version files are the
//! table's data files, and `_delta_log/` sits beside them. Delta version N is the dataset's snapshot N
//! (version 0 is the empty table): each holds a `commitInfo` with an in-commit timestamp (the
//! snapshot's commit time, or its stage's decision, in milliseconds, strictly increasing), a `txn`
//! whose version is the snapshot, a `metaData` when the schema or the partition column changes (a
//! schema evolution, a regroup), and an `add`/`remove` per partition changed, with the manifest's
//! statistics. An aborted stage's entry is a version with no data change. Every tenth version has
//! a Parquet checkpoint.
//!
//! The log is derived from the manifest, never the other way round: each commit publishes its
//! version after it is applied, with put-if-absent, together with any earlier ones a crash left out
//! (publishing is idempotent: every version's bytes follow from the manifest alone, so writers racing
//! write the same file). `recover` catches the log up too, and `quantlake export delta` ([`export`])
//! builds it for a lake written before it existed; `vacuum` keeps the versions whose files it keeps
//! (`prune`); `verify` compares the log with the manifest ([`check`]) and reports a lag.
//!
//! ```no_run
//! # async fn demo(lake: quantlake_engine::table::Lake) -> quantlake_engine::Result<()> {
//! let bars = lake.dataset("raw_synthetic_bars")?;
//! let report = quantlake_engine::table::delta::export(&bars).await?;
//! println!("{} is at version {:?}", report.table, report.version);
//! # Ok(()) }
//! ```

pub mod actions;
pub mod checkpoint;

use std::collections::BTreeSet;

use bytes::Bytes;
use object_store::path::Path;
use serde::Serialize;

use crate::contract::SchemaRecord;
use crate::error::{Error, Result};
use crate::table::Dataset;
use crate::table::lake_log::{LakeView, Visibility};
use crate::table::manifest::{Action as ManifestAction, Commit, Log, PartitionEntry, TableState};
use crate::table::operations::write::layout_name;
use crate::table::transaction::failpoint;
use actions::{Action, CommitInfo, Files, MetaData, PartitionColumn, Protocol, Provenance, Txn};
use checkpoint::LastCheckpoint;

/// Every this-many versions a checkpoint is written (Delta's own default).
pub const CHECKPOINT_INTERVAL: u64 = 10;

/// What [`export`] (or a catch-up) found and wrote.
#[derive(Debug, Clone, Serialize)]
pub struct DeltaReport {
    pub dataset: String,
    /// The table's root, as readers are given it.
    pub table: String,
    /// The log's latest version (the latest snapshot), none for a dataset never written.
    pub version: Option<u64>,
    pub versions_written: u64,
    pub checkpoints_written: u64,
}

/// The table root of `ds` as a path or URL for readers (`<lake>/_versions/<dataset>`).
pub fn table_url(ds: &Dataset) -> String {
    let root = ds.paths.delta_root();
    match ds.store.local_path(&root) {
        Some(p) => p.display().to_string(),
        None => format!("{}/{root}", ds.store.url().trim_end_matches('/')),
    }
}

/// Builds or catches up the Delta log of `ds` to its latest snapshot.
pub async fn export(ds: &Dataset) -> Result<DeltaReport> {
    let latest = ds.latest().await?;
    publish(ds, latest.snapshot_id, Known::state(&latest)).await
}

/// The commit files and checkpoints in a log listing.
#[derive(Debug, Default)]
struct Listing {
    commits: BTreeSet<u64>,
    checkpoints: BTreeSet<u64>,
}

impl Listing {
    fn add(&mut self, location: &Path) {
        let Some(name) = location.filename() else { return };
        let number = |s: &str| (s.len() == 20).then(|| s.parse::<u64>().ok()).flatten();
        if let Some(v) = name.strip_suffix(".checkpoint.parquet").and_then(number) {
            self.checkpoints.insert(v);
        } else if let Some(v) = name.strip_suffix(".json").and_then(number) {
            self.commits.insert(v);
        }
    }

    async fn read(ds: &Dataset, after: Option<u64>) -> Result<Self> {
        let root = ds.paths.delta_log_root();
        let metas = match after {
            Some(v) => ds.store.list_after(&root, &ds.paths.delta_commit(v)).await?,
            None => ds.store.list(&root).await?,
        };
        let mut listing = Listing::default();
        metas.iter().for_each(|m| listing.add(&m.location));
        Ok(listing)
    }
}

/// The newest version in the log, looked for near `upto` first (one listing when the log is
/// current), then in the whole folder.
async fn head(ds: &Dataset, upto: u64) -> Result<Option<u64>> {
    let near = upto.checked_sub(2 * CHECKPOINT_INTERVAL);
    if near.is_some() {
        let listing = Listing::read(ds, near).await?;
        if let Some(v) = listing.commits.last() {
            return Ok(Some(*v));
        }
    }
    Ok(Listing::read(ds, None).await?.commits.last().copied())
}

/// The in-commit timestamp of version `v`, from its commit file.
async fn stored_timestamp(ds: &Dataset, v: u64) -> Result<Option<i64>> {
    let Some(bytes) = ds.store.get(&ds.paths.delta_commit(v)).await? else { return Ok(None) };
    let lines = actions::decode_lines(&bytes, ds.name())?;
    Ok(lines.iter().find_map(|l| l.get("commitInfo")?.get("inCommitTimestamp")?.as_i64()))
}

/// One version's commit file, built from the manifest.
struct Version {
    number: u64,
    actions: Vec<Action>,
    timestamp: i64,
}

/// How the log describes a state: its schema and partition column, and the metaData they make.
#[derive(Debug, Clone)]
struct Description {
    schema: SchemaRecord,
    column: Option<PartitionColumn>,
    meta: MetaData,
}

impl Description {
    /// `state` described: its recorded schema and the partition column its folders spell, else
    /// (a state with no partitions, or no commit yet) those of `previous`, else the contract's.
    fn of(ds: &Dataset, state: &TableState, previous: Option<&Description>) -> Result<Self> {
        let schema = state
            .schema
            .clone()
            .or_else(|| previous.map(|p| p.schema.clone()))
            .unwrap_or_else(|| ds.contract.schema_record());
        let otherwise = match previous {
            Some(p) => p.column.clone(),
            None => PartitionColumn::of_key(layout_name(ds.contract.partitioning).trim_end_matches('=')),
        };
        let column =
            actions::partition_column(state.partitions.keys().map(String::as_str), &schema, otherwise.as_ref());
        // Most versions change neither: their metaData is the previous one.
        if let Some(p) = previous.filter(|p| p.schema == schema && p.column == column) {
            return Ok(p.clone());
        }
        let meta = actions::metadata(ds.name(), &schema, column.as_ref())?;
        Ok(Self { schema, column, meta })
    }

    /// The empty table of version 0, described as the first commit describes the table (so a build
    /// with other contracts describes it alike).
    async fn initial(ds: &Dataset) -> Result<Self> {
        let mut first = TableState::empty(ds.name());
        if let Some(commit) = ds.log.read_commit(1).await? {
            first.apply(&commit);
        }
        Self::of(ds, &first, None)
    }

    fn files<'d>(&'d self, ds: &'d Dataset) -> Files<'d> {
        Files { time_column: &ds.contract.partition_column, schema: &self.schema, column: self.column.clone() }
    }
}

/// Turns the manifest's snapshots into Delta versions, in order, from a known state.
struct Builder<'a> {
    ds: &'a Dataset,
    view: LakeView,
    state: TableState,
    description: Description,
    /// The previous version's in-commit timestamp.
    timestamp: i64,
    /// A commit the caller holds, used instead of reading it when it is the next one.
    known: Option<Commit>,
}

impl<'a> Builder<'a> {
    /// Continues after version `state.snapshot_id`, whose in-commit timestamp was `timestamp`.
    async fn after(ds: &'a Dataset, state: TableState, timestamp: i64) -> Result<Self> {
        let description =
            if state.snapshot_id == 0 { Description::initial(ds).await? } else { Description::of(ds, &state, None)? };
        Ok(Self { ds, view: ds.lake_log.lazy_view(), state, description, timestamp, known: None })
    }

    /// The first version of a log: version 0 (the empty table) when the manifest's log starts at its
    /// first commit, else the oldest snapshot a checkpoint still gives, written whole.
    async fn first(ds: &'a Dataset) -> Result<(Version, Self)> {
        let view = ds.lake_log.lazy_view();
        if let Some(first) = ds.log.read_commit(1).await? {
            let timestamp = own_timestamp(ds, &first, Log::seen(&first, &view).await?).await? - 1;
            let builder = Self::after(ds, TableState::empty(ds.name()), timestamp).await?;
            let actions = vec![
                Action::CommitInfo(commit_info(0, timestamp, "create", &Default::default(), "", None)),
                Action::Protocol(Protocol::current()),
                Action::MetaData(builder.description.meta.clone()),
                Action::Txn(Txn { app_id: actions::APP_ID.into(), version: 0, last_updated: timestamp }),
            ];
            return Ok((Version { number: 0, actions, timestamp }, builder));
        }
        // Vacuum removed the log's start: begin at the oldest checkpoint a replay can start from.
        let mut state = None;
        for id in ds.log.list_checkpoints().await? {
            if let Ok(s) = ds.log.state_at(id, &view).await {
                state = Some(s);
                break;
            }
        }
        let state = state.ok_or_else(|| Error::Integrity {
            dataset: ds.name().to_string(),
            reason: "the manifest's log has no first commit and no checkpoint to start a Delta log from".into(),
        })?;
        let timestamp = state.committed_at.map_or(0, |t| t.timestamp_millis());
        let number = state.snapshot_id;
        let builder = Self::after(ds, state, timestamp).await?;
        let files = builder.description.files(ds);
        let mut actions = vec![
            Action::CommitInfo(commit_info(number, timestamp, "create", &Default::default(), "", None)),
            Action::Protocol(Protocol::current()),
            Action::MetaData(builder.description.meta.clone()),
            Action::Txn(Txn { app_id: actions::APP_ID.into(), version: number, last_updated: timestamp }),
        ];
        for e in builder.state.partitions.values() {
            actions.push(Action::Add(files.add(e, timestamp)?));
        }
        Ok((Version { number, actions, timestamp }, builder))
    }

    /// The version after the current one; `None` when its commit is not decided for this view yet.
    async fn next(&mut self) -> Result<Option<Version>> {
        let n = self.state.snapshot_id + 1;
        let commit = match self.known.take().filter(|c| c.snapshot_id == n) {
            Some(c) => c,
            None => self.ds.log.read_commit(n).await?.ok_or_else(|| Error::Integrity {
                dataset: self.ds.name().to_string(),
                reason: format!("log entry {n} is missing while the Delta log is built"),
            })?,
        };
        let seen = Log::seen(&commit, &self.view).await?;
        if seen == Visibility::Pending {
            return Ok(None);
        }
        let timestamp = own_timestamp(self.ds, &commit, seen).await?.max(self.timestamp + 1);
        // The previous versions of the partitions the commit changes, and how they were described.
        let replaced: Vec<Option<PartitionEntry>> =
            commit.actions.iter().map(|a| self.state.partitions.get(a.partition()).cloned()).collect();
        self.state.apply_seen(&commit, seen);
        let old = self.description.clone();
        self.description = Description::of(self.ds, &self.state, Some(&old))?;
        let lake_seq = match seen {
            Visibility::Visible { seq } | Visibility::Skipped { seq } if commit.stage.is_some() => Some(seq),
            _ => None,
        };
        let mut info = commit_info(
            n,
            timestamp,
            &commit.operation,
            &commit.parameters,
            &commit.txn_id,
            commit.stage.as_ref().map(|s| s.id.clone()),
        );
        info.quantlake.lake_seq = lake_seq;
        info.quantlake.aborted = matches!(seen, Visibility::Skipped { .. });
        let mut out = vec![Action::CommitInfo(info)];
        if self.description.meta != old.meta {
            out.push(Action::MetaData(self.description.meta.clone()));
        }
        out.push(Action::Txn(Txn { app_id: actions::APP_ID.into(), version: n, last_updated: timestamp }));
        if let Visibility::Visible { .. } = seen {
            let files = self.description.files(self.ds);
            for (a, previous) in commit.actions.iter().zip(&replaced) {
                let remove = |e: &PartitionEntry| Action::Remove(Files::remove(e, old.column.as_ref(), timestamp));
                match (a, previous) {
                    (ManifestAction::Add(e), Some(p)) if p.file_id == e.file_id => {}
                    (ManifestAction::Add(e), p) => {
                        out.extend(p.as_ref().map(remove));
                        out.push(Action::Add(files.add(e, timestamp)?));
                    }
                    (ManifestAction::Remove { .. }, p) => out.extend(p.as_ref().map(remove)),
                }
            }
        }
        self.timestamp = timestamp;
        Ok(Some(Version { number: n, actions: out, timestamp }))
    }
}

/// When a snapshot became visible, in milliseconds: its commit, or its stage's decision.
async fn own_timestamp(ds: &Dataset, commit: &Commit, seen: Visibility) -> Result<i64> {
    let mut at = commit.committed_at;
    if let (Some(_), Visibility::Visible { seq } | Visibility::Skipped { seq }) = (&commit.stage, seen)
        && let Some(decision) = ds.lake_log.entry(seq).await?
    {
        at = at.max(decision.committed_at);
    }
    Ok(at.timestamp_millis())
}

fn commit_info(
    snapshot_id: u64,
    timestamp: i64,
    operation: &str,
    parameters: &std::collections::BTreeMap<String, serde_json::Value>,
    txn_id: &str,
    stage_id: Option<String>,
) -> CommitInfo {
    CommitInfo {
        in_commit_timestamp: timestamp,
        timestamp,
        operation: operation.to_string(),
        operation_parameters: actions::parameters(parameters),
        engine_info: concat!("quantlake/", env!("CARGO_PKG_VERSION")).to_string(),
        is_blind_append: false,
        quantlake: Provenance {
            snapshot_id,
            txn_id: txn_id.to_string(),
            job_id: parameters.get("job_id").and_then(|v| v.as_str()).map(str::to_string),
            stage_id,
            lake_seq: None,
            aborted: false,
        },
    }
}

/// What a caller of [`publish`] already holds: a snapshot and, optionally, the commit after it (a
/// writer: the snapshot it built on and its own commit), so they are not read again.
#[derive(Clone, Copy, Default)]
pub(crate) struct Known<'a> {
    pub state: Option<&'a TableState>,
    pub next: Option<&'a Commit>,
}

impl<'a> Known<'a> {
    pub fn state(state: &'a TableState) -> Self {
        Self { state: Some(state), next: None }
    }
}

/// Writes the versions the log lacks, up to snapshot `upto` (which must be decided), starting after
/// the log's newest.
pub(crate) async fn publish(ds: &Dataset, upto: u64, known: Known<'_>) -> Result<DeltaReport> {
    let mut report = DeltaReport {
        dataset: ds.name().to_string(),
        table: table_url(ds),
        version: None,
        versions_written: 0,
        checkpoints_written: 0,
    };
    if upto == 0 {
        return Ok(report);
    }
    // A writer publishing its own commit: the log almost always ends just before it, and that
    // version's timestamp is all it needs (versions are written in order, so no listing is needed to
    // know the ones before it are there; one after it, by a racing writer, is found by put-if-absent).
    if let Some(before) = known.state.filter(|s| s.snapshot_id + 1 == upto)
        && let Some(timestamp) = stored_timestamp(ds, before.snapshot_id).await?
    {
        report.version = Some(before.snapshot_id);
        let builder = Builder::after(ds, before.clone(), timestamp).await?;
        return finish(ds, builder, upto, known.next, report).await;
    }
    let head = head(ds, upto).await?;
    report.version = head;
    if head.is_some_and(|h| h >= upto) {
        return Ok(report);
    }
    let builder = match head {
        Some(h) => {
            let state = match known.state.filter(|s| s.snapshot_id == h) {
                Some(s) => s.clone(),
                None => ds.log.state_at(h, &ds.lake_log.lazy_view()).await?,
            };
            let timestamp = stored_timestamp(ds, h).await?.ok_or_else(|| Error::Integrity {
                dataset: ds.name().to_string(),
                reason: format!("Delta log version {h} has no in-commit timestamp"),
            })?;
            Builder::after(ds, state, timestamp).await?
        }
        None => {
            let (first, builder) = Builder::first(ds).await?;
            write_version(ds, &first, &mut report).await?;
            if first.number > 0 {
                // A log that starts past version 0 needs a checkpoint there for readers to begin at.
                write_checkpoint(ds, first.number, &builder.state, &builder.description, first.timestamp).await?;
                report.checkpoints_written += 1;
            }
            builder
        }
    };
    finish(ds, builder, upto, known.next, report).await
}

/// Writes the versions after `builder`'s up to `upto`, with their checkpoints.
async fn finish(
    ds: &Dataset,
    mut builder: Builder<'_>,
    upto: u64,
    next: Option<&Commit>,
    mut report: DeltaReport,
) -> Result<DeltaReport> {
    builder.known = next.cloned();
    while builder.state.snapshot_id < upto {
        let Some(version) = builder.next().await? else { break };
        failpoint("delta.before_version");
        write_version(ds, &version, &mut report).await?;
        if version.number.is_multiple_of(CHECKPOINT_INTERVAL) {
            write_checkpoint(ds, version.number, &builder.state, &builder.description, version.timestamp).await?;
            report.checkpoints_written += 1;
        }
    }
    if report.versions_written > 0 {
        tracing::debug!(dataset = ds.name(), version = ?report.version, written = report.versions_written, "Delta log caught up");
    }
    Ok(report)
}

async fn write_version(ds: &Dataset, version: &Version, report: &mut DeltaReport) -> Result<()> {
    let path = ds.paths.delta_commit(version.number);
    let bytes = Bytes::from(actions::encode_lines(&version.actions)?);
    // Another writer may have published it: it holds the same bytes.
    if ds.store.put_if_absent(&path, bytes).await?.is_some() {
        report.versions_written += 1;
        set_modified(ds, &path, version.timestamp);
    }
    report.version = Some(version.number);
    Ok(())
}

/// On local disk the commit file's time is its in-commit timestamp, for readers that travel by
/// file times (delta-rs: `deltalake` and polars). S3 objects keep the time they were written.
fn set_modified(ds: &Dataset, path: &Path, millis: i64) {
    let Some(file) = ds.store.local_path(path) else { return };
    let Ok(at) = u64::try_from(millis) else { return };
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_millis(at);
    if let Err(e) = std::fs::File::options().write(true).open(&file).and_then(|f| f.set_modified(time)) {
        tracing::warn!(path = %file.display(), error = %e, "could not set the Delta log entry's file time");
    }
}

/// Writes the checkpoint of version `number` (`state`, as `description` describes it) and points
/// `_last_checkpoint` at it, unless it points at a newer one already.
async fn write_checkpoint(
    ds: &Dataset,
    number: u64,
    state: &TableState,
    description: &Description,
    timestamp: i64,
) -> Result<()> {
    let files = description.files(ds);
    let mut actions = vec![
        Action::Protocol(Protocol::current()),
        Action::MetaData(description.meta.clone()),
        Action::Txn(Txn { app_id: actions::APP_ID.into(), version: number, last_updated: timestamp }),
    ];
    for e in state.partitions.values() {
        actions.push(Action::Add(files.add(e, timestamp)?));
    }
    let bytes = checkpoint::encode(&actions)?;
    let last = LastCheckpoint {
        version: number,
        size: actions.len() as u64,
        size_in_bytes: bytes.len() as u64,
        num_of_add_files: state.partitions.len() as u64,
    };
    ds.store.put(&ds.paths.delta_checkpoint(number), bytes).await?;
    let current = match ds.store.get(&ds.paths.delta_last_checkpoint()).await? {
        Some(b) => serde_json::from_slice::<LastCheckpoint>(&b).ok(),
        None => None,
    };
    if current.is_none_or(|c| c.version < number) {
        ds.store.put(&ds.paths.delta_last_checkpoint(), Bytes::from(serde_json::to_vec(&last)?)).await?;
    }
    Ok(())
}

/// After vacuum kept the snapshots from `oldest` on: the log keeps the same run of versions, with a
/// checkpoint at `oldest` to start from, and loses the commit files and checkpoints before it, whose
/// data files are gone. Snapshots older than that which a tag keeps stay readable through quantlake,
/// not in the log: a Delta log is one unbroken run of versions (delta-rs' time travel needs it).
/// Returns how many objects it removed (or, with `dry_run`, would remove).
pub(crate) async fn prune(ds: &Dataset, oldest: u64, dry_run: bool) -> Result<usize> {
    let listing = Listing::read(ds, None).await?;
    let removals: Vec<Path> = listing
        .commits
        .range(..oldest)
        .map(|v| ds.paths.delta_commit(*v))
        .chain(listing.checkpoints.range(..oldest).map(|v| ds.paths.delta_checkpoint(*v)))
        .collect();
    if dry_run || removals.is_empty() {
        return Ok(removals.len());
    }
    if !listing.checkpoints.contains(&oldest) && listing.commits.contains(&oldest) {
        let state = ds.log.state_at(oldest, &ds.lake_log.lazy_view()).await?;
        let timestamp = stored_timestamp(ds, oldest).await?.unwrap_or_default();
        let description = Description::of(ds, &state, None)?;
        write_checkpoint(ds, oldest, &state, &description, timestamp).await?;
    }
    for path in &removals {
        ds.store.delete(path).await?;
    }
    Ok(removals.len())
}

/// A disagreement between the Delta log and the manifest.
#[derive(Debug, Clone)]
pub struct Mismatch {
    pub path: String,
    pub detail: String,
}

/// Compares the log with the manifest at `latest`: the log ends at the latest snapshot, and each
/// version from the newest checkpoint on (with `history`, every version kept) holds the actions the
/// manifest gives it, and the checkpoints readers start from are whole.
pub async fn check(ds: &Dataset, latest: &TableState, history: bool) -> Result<Vec<Mismatch>> {
    let mut out = Vec::new();
    if latest.snapshot_id == 0 {
        return Ok(out);
    }
    let listing = Listing::read(ds, None).await?;
    let fix = "run `quantlake export delta` (any write to the dataset also catches it up)";
    let Some(&head) = listing.commits.last() else {
        out.push(Mismatch {
            path: ds.paths.delta_log_root().to_string(),
            detail: format!("the dataset has no Delta log: {fix}"),
        });
        return Ok(out);
    };
    if head < latest.snapshot_id {
        out.push(Mismatch {
            path: ds.paths.delta_commit(head + 1).to_string(),
            detail: format!(
                "the Delta log ends at version {head}, the manifest at snapshot {}: {fix}",
                latest.snapshot_id
            ),
        });
    }
    // The unbroken run of versions that ends at the head (a stray older file is not part of it).
    let mut first = head;
    while first > 0 && listing.commits.contains(&(first - 1)) {
        first -= 1;
    }
    let newest_checkpoint = listing.checkpoints.range(..=head).next_back().copied();
    let from = if history { first } else { newest_checkpoint.unwrap_or(first).max(first) };
    let view = ds.lake_log.lazy_view();
    // Each version is rebuilt from the one before it: from the version before `from` when the log
    // still has it, else `from` is taken as it is.
    let start = if from > 0 && listing.commits.contains(&(from - 1)) { from - 1 } else { from };
    let mut builder = after_stored(ds, start, &view).await?;
    while builder.state.snapshot_id < head.min(latest.snapshot_id) {
        let Some(version) = builder.next().await? else { break };
        compare(ds, &version, &mut out).await?;
    }
    for v in listing.checkpoints.iter().filter(|v| **v >= from) {
        let path = ds.paths.delta_checkpoint(*v);
        let state = ds.log.state_at(*v, &view).await?;
        let rows = match ds.store.get(&path).await? {
            Some(bytes) => checkpoint::rows(bytes).map_err(|e| e.to_string()),
            None => Err("disappeared while being read".into()),
        };
        let expected = 3 + state.partitions.len();
        if rows.as_ref().ok() != Some(&expected) {
            out.push(Mismatch {
                path: path.to_string(),
                detail: format!("checkpoint of version {v} should hold {expected} actions, found {rows:?}: {fix}"),
            });
        }
    }
    Ok(out)
}

/// A builder that continues after stored version `v`.
async fn after_stored<'a>(ds: &'a Dataset, v: u64, view: &LakeView) -> Result<Builder<'a>> {
    let state = ds.log.state_at(v, view).await?;
    let timestamp = stored_timestamp(ds, v).await?.ok_or_else(|| Error::Integrity {
        dataset: ds.name().to_string(),
        reason: format!("Delta log version {v} is missing or has no in-commit timestamp"),
    })?;
    Builder::after(ds, state, timestamp).await
}

async fn compare(ds: &Dataset, version: &Version, out: &mut Vec<Mismatch>) -> Result<()> {
    let path = ds.paths.delta_commit(version.number);
    // The build that wrote a version names itself in it; any build must agree on the rest.
    let comparable = |mut line: serde_json::Value| {
        if let Some(info) = line.get_mut("commitInfo").and_then(|i| i.as_object_mut()) {
            info.remove("engineInfo");
        }
        line
    };
    let expected: Vec<serde_json::Value> =
        version.actions.iter().map(|a| serde_json::to_value(a).map(comparable)).collect::<serde_json::Result<_>>()?;
    let found = match ds.store.get(&path).await? {
        Some(bytes) => actions::decode_lines(&bytes, ds.name())
            .map(|lines| lines.into_iter().map(comparable).collect::<Vec<_>>())
            .map_err(|e| e.to_string()),
        None => Err("missing".to_string()),
    };
    match found {
        Ok(found) if found == expected => {}
        Ok(_) => out.push(Mismatch {
            path: path.to_string(),
            detail: format!(
                "Delta version {} differs from what the manifest gives its snapshot (remove `_delta_log/` and run `quantlake export delta` to rebuild it)",
                version.number
            ),
        }),
        Err(e) => out.push(Mismatch { path: path.to_string(), detail: format!("Delta version {}: {e}", version.number) }),
    }
    Ok(())
}
