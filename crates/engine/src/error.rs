//! One error type for the library. Every variant names the thing that was wrong, so the CLI can print
//! it as is; none of them carries a secret (keys never reach an error message).

use std::path::PathBuf;

/// A `Result` with quantlake's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    #[error("unknown dataset '{name}'{}; known datasets: {}", did_you_mean(name, known), known.join(", "))]
    UnknownDataset { name: String, known: Vec<String> },

    #[error("invalid {kind} '{value}': {reason}")]
    InvalidName { kind: &'static str, value: String, reason: &'static str },

    #[error("invalid argument: {0}")]
    InvalidArgument(String),

    #[error("invalid dataset contract {path}: {reason}")]
    InvalidContract { path: String, reason: String },

    #[error("schema mismatch for dataset '{dataset}': {detail}")]
    SchemaMismatch { dataset: String, detail: String },

    #[error("schema change for dataset '{dataset}' refused: {detail} (only adding nullable columns is allowed)")]
    SchemaEvolution { dataset: String, detail: String },

    #[error(
        "commit conflict on dataset '{dataset}': snapshot {snapshot} changed partition(s) {} since this \
         write read snapshot {read_snapshot}; {attempts} attempt(s) made",
        partitions.join(", ")
    )]
    Conflict { dataset: String, read_snapshot: u64, snapshot: u64, partitions: Vec<String>, attempts: u32 },

    #[error("leakage check failed for {set}: {detail}")]
    Leakage { set: String, detail: String },

    #[error("stage {stage} did not commit: {reason}")]
    StageAborted { stage: String, reason: String },

    #[error("{what} has format version {found}, newer than this quantlake supports ({supported}); upgrade quantlake")]
    NewerFormat { what: String, found: u32, supported: u32 },

    #[error("cannot reach the lake at {url}: {reason}")]
    LakeUnreachable { url: String, reason: String },

    #[error("no lake at {url}; run `quantlake init` (or `quantlake --lake {url} init`) first")]
    LakeNotInitialized { url: String },

    #[error("dataset '{dataset}' has no snapshot matching '{spec}': {reason}")]
    SnapshotNotFound { dataset: String, spec: String, reason: String },

    #[error(
        "dataset '{dataset}' is stored in {found} partitions but its contract now asks for {expected}: \
         run `quantlake compact {dataset}` once to regroup it (one commit; earlier snapshots stay readable)"
    )]
    LayoutMigration { dataset: String, found: String, expected: String },

    #[error("dataset '{dataset}': {reason}")]
    Integrity { dataset: String, reason: String },

    /// A source refused or failed a request; `request` names it (symbols, range), never a key.
    #[error("{source_name}: {request}: {message}")]
    Source { source_name: String, request: String, message: String },

    /// A job cannot do what was asked: cancelled, taken over, or in the wrong state.
    #[error("job {id}: {reason}")]
    Job { id: String, reason: String },

    #[error("configuration: {0}")]
    Config(String),

    #[error("cannot read {path}: {source}")]
    ReadFile { path: PathBuf, source: std::io::Error },

    #[error("storage: {0}")]
    Storage(#[from] object_store::Error),

    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),

    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),

    /// The SQL engine (DuckDB, in the `quantlake` crate) failed; the engine itself runs no SQL.
    #[error("duckdb: {0}")]
    Sql(#[source] Box<dyn std::error::Error + Send + Sync>),

    #[error("manifest JSON: {0}")]
    Json(#[from] serde_json::Error),

    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
}

/// A blocking or spawned task that panicked or was cancelled: an i/o failure of the work it ran.
impl From<tokio::task::JoinError> for Error {
    fn from(e: tokio::task::JoinError) -> Self {
        Error::Io(std::io::Error::other(e))
    }
}

impl Error {
    /// An [`Error::InvalidArgument`] with this message.
    pub fn invalid(msg: impl Into<String>) -> Self {
        Error::InvalidArgument(msg.into())
    }
}

/// `; did you mean 'x'?` for the known name closest to `name`, if one is close; else nothing.
pub fn did_you_mean(name: &str, known: &[String]) -> String {
    closest(name, known.iter().map(String::as_str)).map(|k| format!("; did you mean '{k}'?")).unwrap_or_default()
}

/// The name of `known` closest to `name` (a likely misspelling of it), if one is close enough.
pub fn closest<'a>(name: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (strsim::jaro_winkler(k, name), k))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| k)
}
