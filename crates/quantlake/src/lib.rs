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
//! ## Modules, from the bottom up
//! This crate is the pipeline; the lake engine under it is the `quantlake-engine` crate, whose modules
//! are re-exported here under their own names: [`error`], [`outcome`] (the exit-code contract),
//! [`duration`], [`names`], [`progress`], [`bars`], [`calendar`], [`quality`], [`contract`], [`storage`], [`table`]
//! (the lake, datasets, the manifest, stages) and [`maintenance`]. The command line and the dashboard
//! are the `quantlake-cli` crate, above this one.
//!
//! Floors, from the bottom up: `query`, `universe`, `sources`, `reference`, `ingest`, `dq`,
//! `curate`, `adv`, `features`, `sets`, `models`, `ops`, `config`. A module imports only the engine's
//! modules and modules on a lower floor (`tests/lake/modules.rs` checks it). The data flows
//! **sources -> ingest -> curate -> features -> sets/models -> ops**:
//!
//! - [`query`]: DuckDB SQL over any snapshot.
//! - [`universe`]: the symbols the lake tracks (`reference_universe`).
//! - [`sources`]: where bars come from ([`sources::BarSource`]: [`sources::tws`], [`sources::polygon`],
//!   [`sources::alpaca`], [`sources::synthetic`] which needs no account; [`sources::file`] imports files).
//! - [`reference`]: reference data beside the bars: [`reference::securities`] (the security master:
//!   stable security ids, ticker histories, delistings, universes over time),
//!   [`reference::corporate_actions`] (splits and dividends in `reference_corporate_actions`, and the
//!   adjustment factors read-time adjustment uses) and [`reference::fundamentals`] (company filings, point in time by filing date:
//!   [`reference::fundamentals::fundamentals_as_of`]).
//! - [`ingest`]: a source's bars into its raw dataset, one commit per chunk of sessions, with
//!   [`ingest::progress`] records for resuming; [`ingest::IngestOptions`] resolves a request's defaults.
//! - [`dq`]: data-quality metrics of a stage's output ([`dq::metrics`]) per symbol-session
//!   (`dq_metrics`) and each partition's verdict in its manifest entry,
//!   [`dq::get_data_quality_summary`], [`dq::get_dataset_health`], [`dq::validate`] and
//!   [`dq::target_coverage`]; [`dq::annotations`]: outages and accepted problems, shown beside the
//!   sessions they touch.
//! - [`curate`]: raw bars -> `curated_1m_bars` and `curated_1d_bars` (NYSE calendar, rayon kernels for
//!   fills and outliers), and [`curate::get_curated_bars`].
//! - [`adv`]: average daily share and dollar volume per symbol (`features_adv`), split-adjusted.
//! - [`features`]: curated bars -> feature sets and label sets (rayon kernels), as their contracts'
//!   `[definition]` says, one stage per run.
//! - [`sets`]: point-in-time training, inference and scoring sets with the leakage check and the target
//!   fallback ([`sets::get_features_for_training`], [`sets::get_features_for_inference`]), and their
//!   lineage records.
//! - [`models`]: a baseline ridge model trained on a training set, stored in the lake with its lineage
//!   (`_models/<id>/model.json` and the `models` registry), and batch scoring into `predictions` with
//!   null-rate and distribution-shift checks.
//! - [`ops`]: operations over the stages, each a job ([`ops::jobs`]): the daily run, backfills
//!   ([`ops::tasks::backfill`]), the worker queue, the schedule, bootstrap, alerts.
//! - [`config`]: the config file and environment, gathering each module's settings type.
//!
//! ## Exit codes
//! Every command of the `quantlake` binary exits by one contract, [`Outcome`], the Nagios plugin
//! convention: **0** OK (done; health GREEN), **1** WARNING (partial success such as an ingest with
//! failed symbols; health YELLOW), **2** CRITICAL (health RED; `verify` found missing, damaged or
//! stray files), **3** UNKNOWN (the command could not run: bad input or flags, no lake or an
//! unreachable one, any [`Error`], an internal error).
//!
//! ## Example
//! ```no_run
//! # async fn demo() -> quantlake::Result<()> {
//! use chrono::NaiveDate;
//! use quantlake::ingest::{ingest, IngestRequest};
//! use quantlake::bars::BarSize;
//! use quantlake::progress::NoProgress;
//! use quantlake::sources::synthetic::{SyntheticSettings, SyntheticSource};
//! use quantlake::query::QueryEngine;
//! use quantlake::symbol::SymbolList;
//! use quantlake::table::{AsOf, Lake, LakeOptions};
//!
//! let lake = Lake::init("./lake", LakeOptions::default()).await?;
//! let source = SyntheticSource::new(SyntheticSettings::default())?;
//! let request = IngestRequest {
//!     // Symbols are checked where they enter: a typo like "AAPL MSFT" is an error here.
//!     symbols: "AAPL,MSFT".parse::<SymbolList>()?.into_vec(),
//!     start: NaiveDate::from_ymd_opt(2024, 1, 2).unwrap(),
//!     end: NaiveDate::from_ymd_opt(2024, 1, 31).unwrap(),
//!     bar_size: BarSize::Minute,
//!     chunk_sessions: 10,
//!     job_id: None,
//!     resume: false,
//! };
//! let report = ingest(&lake, &source, &request, &NoProgress).await?;
//! println!("{} rows in snapshots {:?}", report.rows, report.snapshots);
//!
//! let engine = QueryEngine::open(&lake, &AsOf::latest()).await?;
//! let batches = engine.query("SELECT symbol, count(*) FROM raw_synthetic_bars GROUP BY symbol")?;
//! # Ok(()) }
//! ```

pub use quantlake_engine::{
    bars, calendar, contract, duration, error, maintenance, names, outcome, progress, quality, security, storage,
    symbol, table,
};

pub mod adv;
pub mod config;
pub mod curate;
pub mod dq;
pub mod features;
pub mod ingest;
pub mod models;
pub mod ops;
pub mod query;
pub mod reference;
pub mod sets;
pub mod sources;
pub mod universe;

pub use error::{Error, Result};
pub use outcome::Outcome;
