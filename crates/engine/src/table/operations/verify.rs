//! Verify: checks that every file the latest snapshot (and, with `history`, every retained snapshot)
//! needs is present and has the recorded size and SHA-256, that each live file is the committed
//! version, that the live tree holds nothing else, and that no stage (a commit to several datasets)
//! was left undecided: readers see none of such a stage's outputs until `recover` completes or undoes it.
//! It also compares the Delta log with the manifest ([`delta::check`]).

use std::collections::{BTreeMap, BTreeSet};

use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use serde::Serialize;

use crate::error::Result;
use crate::names::{Named, named_display_and_from_str};
use crate::table::Dataset;
use crate::table::data_file::sha256_hex;
use crate::table::delta;
use crate::table::lake_log::Visibility;
use crate::table::layout::is_live_temp;
use crate::table::manifest::{Action, Log, PartitionEntry};
use crate::table::transaction::IO_CONCURRENCY;

#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum ProblemKind {
    /// A file the manifest needs is not there.
    Missing,
    /// A file is shorter or longer than recorded.
    Truncated,
    /// A file has the recorded size but other bytes.
    Altered,
    /// A file in the live tree that is not the live file of a partition of the latest snapshot.
    Stray,
    /// A log entry of a stage that was neither committed nor aborted (its writer stopped mid-stage,
    /// or is still running).
    UnfinishedStage,
    /// The Delta log lags the manifest, or one of its versions or checkpoints disagrees with it.
    DeltaLog,
}

impl Named for ProblemKind {
    const WHAT: &'static str = "problem";
    const ALL: &'static [Self] =
        &[Self::Missing, Self::Truncated, Self::Altered, Self::Stray, Self::UnfinishedStage, Self::DeltaLog];

    fn name(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Truncated => "truncated",
            Self::Altered => "altered",
            Self::Stray => "stray",
            Self::UnfinishedStage => "unfinished_stage",
            Self::DeltaLog => "delta_log",
        }
    }
}
named_display_and_from_str!(ProblemKind);

#[derive(Debug, Clone, Serialize)]
pub struct Problem {
    pub partition: String,
    pub path: String,
    pub kind: ProblemKind,
    pub detail: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub dataset: String,
    pub snapshot_id: u64,
    pub partitions: usize,
    pub files_checked: usize,
    pub bytes_checked: u64,
    /// Temporary links left in the live tree by a crash (hidden from readers; vacuum removes them).
    pub temporary_files: usize,
    pub problems: Vec<Problem>,
}

impl VerifyReport {
    pub fn is_clean(&self) -> bool {
        self.problems.is_empty()
    }
}

pub async fn verify(ds: &Dataset, history: bool) -> Result<VerifyReport> {
    verify_where(ds, history, &|_| true).await
}

/// [`verify`] of the partition versions `keep` accepts (`validate --start/--end`: the sessions' own);
/// stray live files are looked for in every partition, which costs one listing.
pub async fn verify_where(
    ds: &Dataset,
    history: bool,
    keep: &(dyn Fn(&PartitionEntry) -> bool + Sync),
) -> Result<VerifyReport> {
    let (latest, _, blocked) = ds.log.latest_with_pending(&ds.lake_log.lazy_view()).await?;
    let unfinished = blocked.and_then(|c| c.stage.clone().map(|mark| (c, mark))).map(|(c, mark)| {
        let holder = if mark.holder.is_dead() { "is gone".to_string() } else { format!("pid {} on {}", mark.holder.pid, mark.holder.host) };
        Problem {
            partition: String::new(),
            path: ds.paths.log_entry(c.snapshot_id).to_string(),
            kind: ProblemKind::UnfinishedStage,
            detail: format!(
                "snapshot {} is part of stage {} ({}; datasets {}; started {}, its process {holder}), which is not committed: readers do not see it (run `quantlake recover` to complete or undo it)",
                c.snapshot_id,
                mark.id,
                c.operation,
                mark.datasets.join(", "),
                mark.started_at.to_rfc3339()
            ),
        }
    });
    // (path, entry, is the live copy, its version's path)
    let mut checks: Vec<(Path, PartitionEntry, Option<Path>)> = Vec::new();
    for e in latest.partitions.values().filter(|e| keep(e)) {
        let version = ds.paths.version_file(&e.partition, &e.file_id);
        checks.push((version.clone(), e.clone(), None));
        checks.push((ds.paths.live_file(&e.partition), e.clone(), Some(version)));
    }
    if history {
        let mut seen: BTreeSet<String> = latest.partitions.values().map(|e| e.file_id.clone()).collect();
        let mut older: BTreeMap<String, PartitionEntry> = BTreeMap::new();
        let view = ds.lake_log.lazy_view();
        for id in ds.log.list_snapshots().await? {
            if let Some(c) = ds.log.read_commit(id).await? {
                // An aborted (or undecided) stage's entry is no snapshot anyone reads: its files may be gone.
                if !matches!(Log::seen(&c, &view).await?, Visibility::Visible { .. }) {
                    continue;
                }
                for a in c.actions {
                    if let Action::Add(e) = a
                        && keep(&e)
                    {
                        older.entry(e.file_id.clone()).or_insert(e);
                    }
                }
            }
        }
        for (id, e) in older {
            if seen.insert(id) {
                checks.push((ds.paths.version_file(&e.partition, &e.file_id), e, None));
            }
        }
    }
    let results: Vec<(u64, Option<Problem>)> =
        futures::stream::iter(checks.into_iter().map(|(path, e, version)| check_file(ds, path, e, version)))
            .buffer_unordered(IO_CONCURRENCY)
            .try_collect()
            .await?;
    let mut report = VerifyReport {
        dataset: ds.name().into(),
        snapshot_id: latest.snapshot_id,
        partitions: latest.partitions.values().filter(|e| keep(e)).count(),
        files_checked: results.len(),
        bytes_checked: results.iter().map(|r| r.0).sum(),
        temporary_files: 0,
        problems: results.into_iter().filter_map(|r| r.1).chain(unfinished).collect(),
    };
    for meta in ds.store.list(&ds.paths.live_root()).await? {
        if meta.location.filename().is_some_and(is_live_temp) {
            // Invisible to readers, like an uncommitted version file: garbage for vacuum, not damage.
            report.temporary_files += 1;
            continue;
        }
        let parts: Vec<String> = meta.location.parts().map(|p| p.as_ref().to_string()).collect();
        let partition = parts.iter().rev().nth(1).cloned().unwrap_or_default();
        let expected = ds.paths.live_file(&partition);
        if meta.location != expected || !latest.partitions.contains_key(&partition) {
            report.problems.push(Problem {
                partition,
                path: meta.location.to_string(),
                kind: ProblemKind::Stray,
                detail: "not part of the latest snapshot (run `quantlake recover --full` to remove it)".into(),
            });
        }
    }
    for m in delta::check(ds, &latest, history).await? {
        report.problems.push(Problem {
            partition: String::new(),
            path: m.path,
            kind: ProblemKind::DeltaLog,
            detail: m.detail,
        });
    }
    report.problems.sort_by(|a, b| (&a.partition, &a.path).cmp(&(&b.partition, &b.path)));
    Ok(report)
}

/// Checks one file; a live file whose ETag equals its version's is the same bytes (hard link or S3 copy).
async fn check_file(
    ds: &Dataset,
    path: Path,
    e: PartitionEntry,
    version: Option<Path>,
) -> Result<(u64, Option<Problem>)> {
    let problem =
        |kind, detail: String| Problem { partition: e.partition.clone(), path: path.to_string(), kind, detail };
    let Some(meta) = ds.store.head(&path).await? else {
        return Ok((0, Some(problem(ProblemKind::Missing, format!("expected {} bytes, found no file", e.bytes)))));
    };
    if meta.size != e.bytes {
        return Ok((
            meta.size,
            Some(problem(ProblemKind::Truncated, format!("expected {} bytes, found {}", e.bytes, meta.size))),
        ));
    }
    if version.is_some() && meta.e_tag.is_some() && meta.e_tag == e.e_tag {
        // Same object as the version file, whose bytes are checked separately.
        return Ok((0, None));
    }
    let Some(bytes) = ds.store.get(&path).await? else {
        return Ok((0, Some(problem(ProblemKind::Missing, "disappeared while being read".into()))));
    };
    let sha = tokio::task::spawn_blocking(move || sha256_hex(&bytes)).await?;
    if sha != e.sha256 {
        return Ok((
            meta.size,
            Some(problem(ProblemKind::Altered, format!("SHA-256 {sha} differs from the recorded {}", e.sha256))),
        ));
    }
    Ok((meta.size, None))
}
