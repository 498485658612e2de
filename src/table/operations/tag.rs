//! Named snapshots. A tag is one object, `_manifest/<dataset>/tags/<name>.json`; creating it also keeps
//! a checkpoint of the tagged snapshot, so the snapshot stays readable after vacuum removes its log.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::table::layout::validate_tag_name;
use crate::table::Dataset;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tag {
    pub name: String,
    pub snapshot_id: u64,
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
    let state = ds.log.state_at(id).await?;
    ds.log.write_table(&ds.paths.checkpoint(id), &state).await?;
    let tag = Tag { name: name.to_string(), snapshot_id: id, created_at: Utc::now(), message: message.to_string() };
    let bytes = bytes::Bytes::from(serde_json::to_vec_pretty(&tag)?);
    let path = ds.paths.tag(name);
    if force {
        ds.store.put(&path, bytes).await?;
    } else if ds.store.put_if_absent(&path, bytes).await?.is_none() {
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
    ds.store.delete(&ds.paths.tag(name)).await
}
