//! # quantlake
//!
//! An embedded, file-based market-data lake. Bars flow
//! **sources → raw → curated → features → sets**, each layer a set of datasets stored as
//! date-partitioned Parquet on local disk or S3, with a manifest that gives every commit a snapshot.
//!
//! The files are an interface: `<lake>/<layer>/<dataset>/date=YYYY-MM-DD/part.parquet`, one file per
//! partition, readable with a plain glob from DuckDB, pandas, polars or Spark at every instant, even
//! during a commit. Through the manifest, the same data is readable at any retained snapshot.
//!
//! ## Modules, in the order data flows
//! - [`sources`]: where bars come from ([`sources::BarSource`]: [`sources::tws`], [`sources::polygon`],
//!   [`sources::alpaca`], [`sources::synthetic`] which needs no account; [`sources::file`] imports files).
//! - [`universe`]: the symbols the lake tracks (`reference_universe`).
//! - [`ingest`]: a source's bars into its raw dataset, one commit per chunk of sessions, with
//!   [`ingest::progress`] records for resuming and [`ingest::backfill`] for adaptive historical fills.
//! - [`curate`]: raw bars -> `curated_1m_bars` and `curated_1d_bars` (DuckDB SQL, NYSE calendar, rayon
//!   kernels for fills and outliers), and [`curate::get_curated_bars`].
//! - [`dq`]: data-quality metrics per symbol-session (`dq_metrics`), each partition's verdict in its
//!   manifest entry, [`dq::get_data_quality_summary`] and [`dq::get_dataset_health`].
//! - [`table`]: the lake engine: [`table::Lake`], [`table::Dataset`], the manifest, and the operations
//!   (write, tag, restore, vacuum, verify) that all commit through [`table::transaction`].
//! - [`query`]: DuckDB SQL over any snapshot.
//! - [`contract`]: dataset contracts, loaded from `schemas/`; [`quality`]: their `[quality]` rules and
//!   the verdicts they give, which partitions carry in the manifest.
//! - [`calendar`]: the NYSE calendar (sessions, early closes, business-day arithmetic).
//! - [`storage`]: one `object_store` path for local disk and S3.
//!
//! ## Example
//! ```no_run
//! # async fn demo() -> quantlake::Result<()> {
//! use chrono::NaiveDate;
//! use quantlake::ingest::{ingest, IngestRequest};
//! use quantlake::sources::{synthetic::{SyntheticSettings, SyntheticSource}, BarSize};
//! use quantlake::query::{AsOf, QueryEngine};
//! use quantlake::table::{Lake, LakeOptions};
//!
//! let lake = Lake::init("./lake", LakeOptions::default()).await?;
//! let source = SyntheticSource::new(SyntheticSettings::default())?;
//! let request = IngestRequest {
//!     symbols: vec!["AAPL".into(), "MSFT".into()],
//!     start: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
//!     end: NaiveDate::from_ymd_opt(2024, 1, 31).unwrap(),
//!     bar_size: BarSize::Minute,
//!     chunk_sessions: 10,
//!     job_id: None,
//!     resume: false,
//! };
//! let report = ingest(&lake, &source, &request, &indicatif::ProgressBar::hidden()).await?;
//! println!("{} rows in snapshots {:?}", report.rows, report.snapshots);
//!
//! let engine = QueryEngine::open(&lake, &AsOf::default()).await?;
//! let batches = engine.query("SELECT symbol, count(*) FROM raw_synthetic_bars GROUP BY symbol")?;
//! # Ok(()) }
//! ```

pub mod calendar;
pub mod cli;
pub mod config;
pub mod contract;
pub mod curate;
pub mod demo;
pub mod dq;
pub mod error;
pub mod ingest;
pub mod quality;
pub mod query;
pub mod sources;
pub mod storage;
pub mod table;
pub mod universe;

pub use error::{Error, Result};
