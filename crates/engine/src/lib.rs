//! # quantlake-engine
//!
//! The lake engine under quantlake: datasets of date-partitioned Parquet files on local disk or S3,
//! each with a manifest that gives every commit a snapshot, and a lake log that commits writes to
//! several datasets at once. It knows nothing of bars' sources, SQL or the command line: the
//! `quantlake` crate builds the pipeline on it, and re-exports every module here under the same name
//! (`quantlake_engine::table` is this crate's [`table`]).
//!
//! The files are an interface: `<lake>/<layer>/<dataset>/date=YYYY-MM-DD/part.parquet`, one file per
//! partition, readable with a plain glob from DuckDB, pandas, polars or Spark at every instant, even
//! during a commit. Through the manifest, the same data is readable at any retained snapshot.
//!
//! ## Modules
//! Floors, from the bottom up: `error`, `duration`, `outcome`, `names`, `symbol`, `security`, `progress`, `bars`, `calendar`,
//! `quality`, `contract`, `storage`, `table`, `maintenance`. A module imports only modules on a lower
//! floor (`tests/lake/modules.rs` checks it).
//!
//! - [`error`] (one error type), [`duration`] (durations in settings and flags), [`outcome`] (the exit-code contract), [`names`] (enums with one
//!   spelling), [`symbol`] (a checked ticker symbol and lists of them), [`security`] (a security's stable id), [`progress`] (the [`progress::Progress`] trait long work reports to), [`bars`]
//!   (`Bar`, `BarSize`, `Frequency`), [`calendar`] (the NYSE calendar), [`quality`] (`[quality]`
//!   rules and the verdicts partitions carry in the manifest).
//! - [`contract`]: dataset contracts, loaded from `schemas/`; [`storage`]: one `object_store` path for
//!   local disk and S3.
//! - [`table`]: [`table::Lake`], [`table::Dataset`], the manifest, and the operations (write, stage,
//!   tag, restore, vacuum, verify, compact) that all commit through [`table::transaction`]. A **stage**
//!   ([`table::Lake::stage`]) commits writes to several datasets at once: its commit point is one
//!   entry of the lake log ([`table::lake_log`]), and readers that open a [`table::Lake::view`] see
//!   each stage in all of its datasets or in none.
//! - [`maintenance`]: verify, recover and vacuum over a whole lake.
//!
//! ## Example
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> quantlake_engine::Result<()> {
//! use quantlake_engine::table::{AsOf, Lake, LakeOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let lake = Lake::init(dir.path().to_str().unwrap(), LakeOptions::default()).await?;
//! let bars = lake.dataset("raw_synthetic_bars")?;
//! assert_eq!(bars.latest().await?.snapshot_id, 0, "a new dataset has no snapshot yet");
//!
//! // Every read names the lake state it sees (`--as-of`): the latest, a snapshot, a tag or a time,
//! // through one view of the lake, so a stage shows in all of its datasets or in none.
//! let view = lake.view().await?;
//! let state = bars.state_as_of(&"latest".parse::<AsOf>()?, &view).await?;
//! assert!(bars.read(&state, &Default::default()).await?.is_empty());
//! # Ok(()) }
//! ```

pub mod bars;
pub mod calendar;
pub mod contract;
pub mod duration;
pub mod error;
pub mod maintenance;
pub mod names;
pub mod outcome;
pub mod progress;
pub mod quality;
pub mod security;
pub mod storage;
pub mod symbol;
pub mod table;

pub use error::{Error, Result};
pub use outcome::Outcome;
