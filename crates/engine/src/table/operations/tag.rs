//! Named snapshots. A dataset's tag is one object, `_manifest/<dataset>/tags/<name>.json`; a lake-wide
//! tag, `_manifest/_lake/tags/<name>.json`, names one snapshot of every dataset, read through one
//! [`LakeView`](crate::table::lake_log::LakeView) so that it holds each stage whole. Creating a tag
//! also keeps a checkpoint of each tagged snapshot, so it stays readable after vacuum removes its log.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::storage::LakeStore;
use crate::table::layout::{lake_tag, lake_tags_root, validate_tag_name};
use crate::table::transaction;
use crate::table::{Dataset, Lake};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub snapshot_id: u64,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub message: String,
}

/// A consistent state of the whole lake: each dataset's snapshot (0 = not written yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LakeTag {
    pub name: String,
    /// The lake snapshot (lake log head) the datasets' snapshots were read at.
    pub lake_seq: u64,
    pub datasets: BTreeMap<String, u64>,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub message: String,
}

/// Tags `snapshot` (default: the latest) as `name`. An existing tag is an error unless `force`.
pub async fn create(ds: &Dataset, name: &str, snapshot: Option<u64>, message: &str, force: bool) -> Result<Tag> {
    validate_tag_name(name)?;
    let latest = ds.latest().await?;
    let id = snapshot.unwrap_or(latest.snapshot_id);
    if id == 0 || id > latest.snapshot_id {
        return Err(Error::SnapshotNotFound {
            dataset: ds.name().into(),
            spec: id.to_string(),
            reason: format!("snapshots run from 1 to {}", latest.snapshot_id),
        });
    }
    let state = ds.log.state_at(id, &ds.lake_log.lazy_view()).await?;
    transaction::write_checkpoint(ds, &state).await?;
    let tag = Tag { name: name.to_string(), snapshot_id: id, created_at: Utc::now(), message: message.to_string() };
    if !transaction::put_tag(&ds.store, &ds.paths.tag(name), &tag, force).await? {
        let existing = get(ds, name).await?.map_or(0, |t| t.snapshot_id);
        return Err(Error::invalid(format!(
            "tag '{name}' already exists on dataset '{}' (snapshot {existing}); use --force to move it",
            ds.name()
        )));
    }
    Ok(tag)
}

pub async fn get(ds: &Dataset, name: &str) -> Result<Option<Tag>> {
    validate_tag_name(name)?;
    match ds.store.get(&ds.paths.tag(name)).await? {
        Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
        None => Ok(None),
    }
}

pub async fn list(ds: &Dataset) -> Result<Vec<Tag>> {
    let mut tags = Vec::new();
    for meta in ds.store.list(&ds.paths.tags_root()).await? {
        if let Some(b) = ds.store.get(&meta.location).await? {
            tags.push(serde_json::from_slice::<Tag>(&b)?);
        }
    }
    tags.sort_by(|a, b| (a.snapshot_id, &a.name).cmp(&(b.snapshot_id, &b.name)));
    Ok(tags)
}

pub async fn delete(ds: &Dataset, name: &str) -> Result<()> {
    if get(ds, name).await?.is_none() {
        return Err(Error::invalid(format!("no tag '{name}' on dataset '{}'", ds.name())));
    }
    transaction::delete_tag(&ds.store, &ds.paths.tag(name)).await
}

/// Tags the latest state of every dataset as `name`, as one consistent cut of the lake.
pub async fn create_lake(lake: &Lake, name: &str, message: &str, force: bool) -> Result<LakeTag> {
    validate_tag_name(name)?;
    let view = lake.view().await?;
    let mut datasets = BTreeMap::new();
    for ds in lake.all_datasets() {
        let state = ds.latest_in(&view).await?;
        if state.snapshot_id > 0 {
            transaction::write_checkpoint(&ds, &state).await?;
        }
        datasets.insert(ds.name().to_string(), state.snapshot_id);
    }
    let lake_seq = view.pinned().unwrap_or(0);
    let tag =
        LakeTag { name: name.to_string(), lake_seq, datasets, created_at: Utc::now(), message: message.to_string() };
    if !transaction::put_tag(lake.store(), &lake_tag(name), &tag, force).await? {
        return Err(Error::invalid(format!("lake-wide tag '{name}' already exists; use --force to move it")));
    }
    Ok(tag)
}

pub async fn get_lake(store: &LakeStore, name: &str) -> Result<Option<LakeTag>> {
    validate_tag_name(name)?;
    match store.get(&lake_tag(name)).await? {
        Some(b) => Ok(Some(serde_json::from_slice(&b)?)),
        None => Ok(None),
    }
}

pub async fn list_lake(store: &LakeStore) -> Result<Vec<LakeTag>> {
    let mut tags = Vec::new();
    for meta in store.list(&lake_tags_root()).await? {
        if let Some(b) = store.get(&meta.location).await? {
            tags.push(serde_json::from_slice::<LakeTag>(&b)?);
        }
    }
    tags.sort_by(|a, b| (a.lake_seq, a.created_at, &a.name).cmp(&(b.lake_seq, b.created_at, &b.name)));
    Ok(tags)
}

pub async fn delete_lake(store: &LakeStore, name: &str) -> Result<()> {
    if get_lake(store, name).await?.is_none() {
        return Err(Error::invalid(format!("no lake-wide tag '{name}'")));
    }
    transaction::delete_tag(store, &lake_tag(name)).await
}

/// Snapshots of `ds` that a tag holds (its own tags and lake-wide tags): vacuum keeps them readable.
pub async fn held_snapshots(ds: &Dataset) -> Result<Vec<u64>> {
    let mut held: Vec<u64> = list(ds).await?.iter().map(|t| t.snapshot_id).collect();
    held.extend(
        list_lake(&ds.store).await?.iter().filter_map(|t| t.datasets.get(ds.name()).copied()).filter(|id| *id > 0),
    );
    held.sort_unstable();
    held.dedup();
    Ok(held)
}
