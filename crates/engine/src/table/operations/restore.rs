//! Restore: a new snapshot whose content equals an earlier one. Version files are immutable, so a
//! restore writes no data: its commit points each partition back at the earlier version file, and the
//! apply step puts those files back in the live tree. [`restore_lake`] restores every dataset to a
//! lake-wide tag (or a time) in one stage: readers see the whole lake go back at once.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::table::manifest::TableState;
use crate::table::operations::stage::StageResult;
use crate::table::operations::tag::get_lake;
use crate::table::operations::write::{PreparedWrite, WriteResult};
use crate::table::{Dataset, Lake, SnapshotSpec};

pub async fn restore(ds: &Dataset, to: &SnapshotSpec) -> Result<WriteResult> {
    let target = ds.snapshot(to).await?;
    check_files(ds, &target, to).await?;
    PreparedWrite::restore(ds, target.clone(), parameters(to, &target)).commit_alone().await
}

/// Restores every dataset to its state in `to` (a lake-wide tag, a time, or a lake snapshot's
/// tag): one stage, so the lake goes back in one commit. A dataset that did not exist then is emptied.
pub async fn restore_lake(lake: &Lake, to: &SnapshotSpec) -> Result<StageResult> {
    if matches!(to, SnapshotSpec::Id(_) | SnapshotSpec::Latest) {
        return Err(Error::invalid(format!(
            "restore --all needs a lake-wide tag or a time, not '{to}': snapshot numbers are per dataset"
        )));
    }
    let tag = match to {
        SnapshotSpec::Tag(name) => Some(get_lake(lake.store(), name).await?.ok_or_else(|| {
            Error::invalid(format!("no lake-wide tag named '{name}' (see `quantlake snapshot tags --all`)"))
        })?),
        _ => None,
    };
    let datasets = lake.all_datasets();
    let mut targets: Vec<(&Dataset, TableState)> = Vec::new();
    for ds in &datasets {
        // A dataset not written yet at that tag or time had no content.
        let target = match (&tag, to) {
            (Some(tag), _) => match tag.datasets.get(ds.name()) {
                None | Some(0) => TableState::empty(ds.name()),
                Some(id) => ds.log.state_at(*id, &lake.lake_log().view_at(tag.lake_seq)).await?,
            },
            (None, SnapshotSpec::AsOf(t)) if ds.snapshot_at_time(*t).await?.is_none() => TableState::empty(ds.name()),
            (None, _) => ds.snapshot(to).await?,
        };
        check_files(ds, &target, to).await?;
        targets.push((ds, target));
    }
    let mut stage = lake.stage("restore").parameter("to", to.to_string());
    for (ds, target) in targets {
        if ds.latest().await?.snapshot_id == 0 && target.partitions.is_empty() {
            continue; // never written, nothing to restore
        }
        let params = parameters(to, &target);
        stage = stage.change(PreparedWrite::restore(ds, target, params));
    }
    stage.commit().await
}

fn parameters(to: &SnapshotSpec, target: &TableState) -> BTreeMap<String, serde_json::Value> {
    [
        ("to".to_string(), serde_json::json!(to.to_string())),
        ("to_snapshot".to_string(), serde_json::json!(target.snapshot_id)),
    ]
    .into()
}

/// Every version file the target needs must still exist (vacuum may have removed it).
async fn check_files(ds: &Dataset, target: &TableState, to: &SnapshotSpec) -> Result<()> {
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
    Ok(())
}
