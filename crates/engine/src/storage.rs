//! One storage path for local disk and S3, through `object_store`.
//!
//! The lake needs five primitives from a store, and this module gives each one the same meaning on both:
//! a durable put, a put-if-absent (the commit point), get/head/list/delete, and an atomic replacement of
//! a live partition file by an immutable version file. The last is the only one that differs by backend:
//! on S3 it is a server-side copy (single-object writes are atomic); on local disk it is a hard link to a
//! hidden temporary name followed by `rename()` over the live file, so a glob reader sees the old file or
//! the new one and never a third (object_store's own local copy stages under a visible `part.parquet#N`).

use std::path::PathBuf;
use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{ObjectMeta, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload, PutResult, RetryConfig};

use crate::error::{Error, Result};

/// Options for building the store, in `object_store`'s own key names (`aws_endpoint`, `aws_allow_http`,
/// `aws_access_key_id`, ...). They override the `AWS_*` environment variables.
pub type StorageOptions = Vec<(String, String)>;

/// Where the lake lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LakeLocation {
    Local(PathBuf),
    S3 { bucket: String, prefix: String },
}

impl LakeLocation {
    /// Parses `s3://bucket/prefix`, `file:///abs/path` or a plain path.
    pub fn parse(url: &str) -> Result<Self> {
        if url.contains('\0') {
            return Err(Error::invalid(format!("lake URL {:?} contains NUL", url.escape_default().to_string())));
        }
        if let Some(rest) = url.strip_prefix("s3://").or_else(|| url.strip_prefix("s3a://")) {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(Error::invalid(format!("lake URL '{url}' has no bucket (expected s3://bucket/prefix)")));
            }
            let prefix = prefix.trim_matches('/').to_string();
            if prefix.split('/').any(|s| s == ".." || s == ".") {
                return Err(Error::invalid(format!("lake URL '{url}' has '.' or '..' in its prefix")));
            }
            return Ok(LakeLocation::S3 { bucket: bucket.to_string(), prefix });
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(LakeLocation::Local(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(Error::invalid(format!(
                "lake URL '{url}': supported schemes are s3:// and file://, or a plain path"
            )));
        }
        if url.is_empty() {
            return Err(Error::invalid("lake URL is empty"));
        }
        Ok(LakeLocation::Local(PathBuf::from(url)))
    }
}

/// The lake's object store with the lake's primitives on top.
#[derive(Debug, Clone)]
pub struct LakeStore {
    inner: Arc<dyn ObjectStore>,
    location: LakeLocation,
    url: String,
}

impl LakeStore {
    /// Opens the store behind `url`. A local root is created when `create` is set; otherwise it must exist.
    pub fn open(url: &str, options: &StorageOptions, create: bool) -> Result<Self> {
        let location = LakeLocation::parse(url)?;
        let inner: Arc<dyn ObjectStore> = match &location {
            LakeLocation::Local(path) => {
                if create {
                    std::fs::create_dir_all(path).map_err(|e| Error::LakeUnreachable {
                        url: url.to_string(),
                        reason: format!("cannot create {}: {e}", path.display()),
                    })?;
                } else if !path.is_dir() {
                    return Err(Error::LakeNotInitialized { url: url.to_string() });
                }
                let fs = LocalFileSystem::new_with_prefix(path)
                    .map_err(|e| Error::LakeUnreachable { url: url.to_string(), reason: e.to_string() })?
                    .with_fsync(true);
                Arc::new(fs)
            }
            LakeLocation::S3 { bucket, prefix } => {
                let mut builder = AmazonS3Builder::from_env()
                    .with_bucket_name(bucket)
                    // The commit protocol's compare-and-swap (tags, pointers) uses If-Match on ETags.
                    .with_config(AmazonS3ConfigKey::ConditionalPut, "etag")
                    // Transient errors are retried, but an unreachable endpoint fails within seconds.
                    .with_retry(RetryConfig {
                        max_retries: 4,
                        retry_timeout: std::time::Duration::from_secs(20),
                        ..Default::default()
                    });
                for (key, value) in options {
                    let key: AmazonS3ConfigKey =
                        key.parse().map_err(|_| Error::Config(format!("unknown S3 storage option '{key}'")))?;
                    builder = builder.with_config(key, value);
                }
                let s3 = builder
                    .build()
                    .map_err(|e| Error::LakeUnreachable { url: url.to_string(), reason: e.to_string() })?;
                if prefix.is_empty() {
                    Arc::new(s3)
                } else {
                    Arc::new(object_store::prefix::PrefixStore::new(s3, prefix.as_str()))
                }
            }
        };
        Ok(Self { inner, location, url: url.to_string() })
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// The filesystem path of an object, for a local lake.
    pub fn local_path(&self, path: &Path) -> Option<PathBuf> {
        match &self.location {
            LakeLocation::Local(root) => Some(path.parts().fold(root.clone(), |p, part| p.join(part.as_ref()))),
            LakeLocation::S3 { .. } => None,
        }
    }

    /// Writes an object durably (local: fsync of the file and its folder), replacing any previous one.
    pub async fn put(&self, path: &Path, bytes: Bytes) -> Result<PutResult> {
        Ok(self.inner.put(path, PutPayload::from(bytes)).await?)
    }

    /// Creates an object only if none exists: `Ok(None)` when another writer got there first.
    pub async fn put_if_absent(&self, path: &Path, bytes: Bytes) -> Result<Option<PutResult>> {
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.inner.put_opts(path, PutPayload::from(bytes), opts).await {
            Ok(r) => Ok(Some(r)),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads a whole object; `Ok(None)` if it does not exist.
    pub async fn get(&self, path: &Path) -> Result<Option<Bytes>> {
        match self.inner.get(path).await {
            Ok(r) => Ok(Some(r.bytes().await?)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Reads byte ranges of an object (ranged GETs on S3, merged when close); `Ok(None)` if it does not exist.
    pub async fn get_ranges(&self, path: &Path, ranges: &[std::ops::Range<u64>]) -> Result<Option<Vec<Bytes>>> {
        match self.inner.get_ranges(path, ranges).await {
            Ok(r) => Ok(Some(r)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn head(&self, path: &Path) -> Result<Option<ObjectMeta>> {
        match self.inner.head(path).await {
            Ok(m) => Ok(Some(m)),
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes an object; deleting what is not there is not an error.
    pub async fn delete(&self, path: &Path) -> Result<()> {
        match self.inner.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// Deletes a live file; on a local lake also its partition folder when that is left empty, so a
    /// removed (or regrouped) partition leaves no empty folder behind for directory-walking readers.
    pub async fn delete_live(&self, path: &Path) -> Result<()> {
        self.delete(path).await?;
        if let Some(dir) = self.local_path(path).as_deref().and_then(std::path::Path::parent) {
            // Fails (and is ignored) when the folder is not empty: a writer linked a file meanwhile.
            let _ = tokio::fs::remove_dir(dir).await;
        }
        Ok(())
    }

    /// Every object under `prefix`, recursively.
    pub async fn list(&self, prefix: &Path) -> Result<Vec<ObjectMeta>> {
        collect_listing(self.inner.list(Some(prefix))).await
    }

    /// Objects under `prefix` whose keys sort after `offset` (one request on S3, however long the folder).
    pub async fn list_after(&self, prefix: &Path, offset: &Path) -> Result<Vec<ObjectMeta>> {
        collect_listing(self.inner.list_with_offset(Some(prefix), offset)).await
    }

    /// Atomically makes `live` a copy of the immutable object `version`.
    pub async fn replace_live(&self, version: &Path, live: &Path) -> Result<()> {
        match (&self.location, self.local_path(version), self.local_path(live)) {
            (LakeLocation::Local(_), Some(from), Some(to)) => {
                tokio::task::spawn_blocking(move || local_replace(&from, &to)).await?.map_err(Error::Io)
            }
            _ => Ok(self.inner.copy(version, live).await?),
        }
    }

    /// A reachability check that names the lake in its error: the first call every command makes.
    pub async fn probe(&self, marker: &Path) -> Result<Option<Bytes>> {
        self.get(marker).await.map_err(|e| match e {
            Error::Storage(e) => {
                let reason = e.to_string();
                let hint = match self.location {
                    LakeLocation::S3 { .. } if is_credentials_error(&reason) => NO_CREDENTIALS,
                    _ => "",
                };
                Error::LakeUnreachable { url: self.url.clone(), reason: format!("{reason}{hint}") }
            }
            e => e,
        })
    }
}

/// What an S3 lake without credentials is told: where they are looked for.
const NO_CREDENTIALS: &str = "; no AWS credentials were found: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY (and \
    AWS_SESSION_TOKEN for temporary ones), or AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN, or \
    AWS_CONTAINER_CREDENTIALS_RELATIVE_URI on ECS; without them only an EC2 instance role (the metadata \
    endpoint 169.254.169.254) is tried. AWS_REGION and, for a local server, AWS_ENDPOINT_URL and \
    AWS_ALLOW_HTTP=true go with them (docs/configuration.md#s3)";

/// Whether an S3 error is the credential chain's: after the environment, `object_store` asks the
/// instance metadata endpoint, whose refusal or silence is what a machine without credentials sees.
fn is_credentials_error(reason: &str) -> bool {
    ["169.254.169.254", "/latest/api/token", "/latest/meta-data/", "credential", "Credential"]
        .iter()
        .any(|needle| reason.contains(needle))
}

/// A listing as a vector; a folder that does not exist lists as empty.
async fn collect_listing(
    stream: futures::stream::BoxStream<'static, object_store::Result<ObjectMeta>>,
) -> Result<Vec<ObjectMeta>> {
    match stream.try_collect().await {
        Ok(v) => Ok(v),
        Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
        Err(e) => Err(e.into()),
    }
}

/// Local replacement: hard link (or copy, across filesystems) to a dot-file in the destination folder,
/// fsync, `rename()` over the live file, fsync the folder. Dot-files are skipped by every glob reader.
fn local_replace(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    let dir = to.parent().ok_or_else(|| std::io::Error::other(format!("{} has no parent", to.display())))?;
    let mut attempt = 0;
    loop {
        attempt += 1;
        // Inside the loop: a removal of the partition's last file prunes its empty folder.
        std::fs::create_dir_all(dir)?;
        let tmp = dir.join(live_temp_name());
        if std::fs::hard_link(from, &tmp).is_err() {
            match std::fs::copy(from, &tmp) {
                Err(e) if e.kind() == std::io::ErrorKind::NotFound && from.exists() && attempt < 3 => continue,
                r => r?,
            };
            std::fs::File::open(&tmp)?.sync_all()?;
        }
        let renamed = std::fs::rename(&tmp, to);
        // rename() between two links of one inode succeeds without removing the source (POSIX), which
        // happens when two processes apply the same version: the temporary link must go either way.
        match std::fs::remove_file(&tmp) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound && renamed.is_ok() => return Err(e),
            _ => {}
        }
        match renamed {
            // `vacuum` or `recover --full` removed our temporary link between link and rename: again.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && attempt < 3 => continue,
            Err(e) => return Err(e),
            Ok(()) => return std::fs::File::open(dir)?.sync_all(),
        }
    }
}

/// Name of the one live file in each partition folder.
pub const LIVE_FILE: &str = "part.parquet";

/// Name of the temporary link a local commit renames over a live file. It starts with `.` and does not
/// end in `.parquet`, so no glob reader ever sees it; a crash between link and rename can leave one.
pub fn live_temp_name() -> String {
    format!(".{LIVE_FILE}.{}.tmp", uuid::Uuid::new_v4().simple())
}

/// Whether a file name in the live tree is such a temporary link.
pub fn is_live_temp(name: &str) -> bool {
    name.starts_with(&format!(".{LIVE_FILE}.")) && name.ends_with(".tmp")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lake_urls_parse() {
        assert_eq!(LakeLocation::parse("./lake").unwrap(), LakeLocation::Local("./lake".into()));
        assert_eq!(LakeLocation::parse("file:///tmp/l").unwrap(), LakeLocation::Local("/tmp/l".into()));
        assert_eq!(
            LakeLocation::parse("s3://bucket/a/b/").unwrap(),
            LakeLocation::S3 { bucket: "bucket".into(), prefix: "a/b".into() }
        );
        assert!(LakeLocation::parse("s3:///x").is_err());
        assert!(LakeLocation::parse("s3://b/../x").is_err());
        assert!(LakeLocation::parse("gs://b/x").is_err());
        assert!(LakeLocation::parse("a\0b").is_err());
    }
}
