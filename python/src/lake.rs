//! `quantlake.Lake`: the library's calls on one lake, with the command line's names and defaults.

use std::path::PathBuf;
use std::sync::Arc;

use pyo3::prelude::*;

use ql::config::Config;
use ql::curate::{Adjustment, BarsRequest, Frequency};
use ql::query::QueryEngine;
use ql::symbol::MissingSymbols;
use ql::table::Lake as LakeHandle;

use crate::errors::{error, invalid};
use crate::progress::Callback;
use crate::signals::{run_async, run_blocking};
use crate::table::{Table, TrainingSet};
use crate::values::{self, date, json, time};

/// A lake, opened as the command line opens it.
///
/// root: a path or `s3://bucket/prefix` (default: the config's `lake.root`).
/// config: the config file (default: `config/quantlake.toml` when it exists); the environment
///     overrides it as for the command line (`QUANTLAKE_*`, `AWS_*`, vendor keys).
///
/// Calls release the interpreter (threads may share one `Lake`) and stop on Ctrl-C. Errors are
/// `QuantlakeError`s with the command line's message and exit code; partial results carry
/// `warnings` and tell Python's `warnings` (`QuantlakeWarning`).
#[pyclass(module = "quantlake", frozen)]
pub struct Lake {
    lake: LakeHandle,
    runtime: Arc<tokio::runtime::Runtime>,
    root: String,
    config: Config,
}

impl Lake {
    fn run<T: Send, F: std::future::Future<Output = ql::error::Result<T>>>(
        &self,
        py: Python<'_>,
        work: impl FnOnce() -> F + Send,
    ) -> PyResult<T> {
        run_async(py, &self.runtime, work, &|| None)
    }
}

#[pymethods]
impl Lake {
    #[new]
    #[pyo3(signature = (root = None, config = None))]
    fn new(py: Python<'_>, root: Option<String>, config: Option<PathBuf>) -> PyResult<Self> {
        let explicit = config.is_some();
        let path = config.unwrap_or_else(|| PathBuf::from(ql::config::DEFAULT_PATH));
        let config = Config::load(&path, explicit).map_err(error)?;
        let root = root.unwrap_or_else(|| config.lake.root.clone());
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .map_err(|e| error(ql::error::Error::Io(e)))?;
        let options = config.lake.options();
        let lake = py.detach(|| runtime.block_on(LakeHandle::open(&root, options))).map_err(error)?;
        Ok(Self { lake, runtime: Arc::new(runtime), root, config })
    }

    /// Curated bars, sorted by symbol and ts, as `quantlake bars`.
    ///
    /// symbols: the tickers, each resolved to its security on `resolve_at`.
    /// start, end: the first and last session dates, inclusive (YYYY-MM-DD; `end` defaults to `start`).
    /// frequency: 1m, 5m, 15m, 30m, 1h or 1d.
    /// adjust: none, splits or all (splits and dividends), as known at `as_of`.
    /// as_of: the lake state read: a lake tag, a tag, a snapshot number, a time, or dataset@SPEC pins
    ///     (default: the latest).
    /// resolve_at: the date tickers name securities on (default: `end`).
    /// extended_hours: also the pre- and post-market minutes.
    ///
    /// A symbol without rows is named in the result's `warnings` (a `QuantlakeWarning`).
    #[pyo3(signature = (symbols, start, end = None, frequency = "1m", adjust = "none", as_of = None, resolve_at = None, extended_hours = false))]
    #[allow(clippy::too_many_arguments)]
    fn bars(
        &self,
        py: Python<'_>,
        symbols: Vec<String>,
        start: &str,
        end: Option<&str>,
        frequency: &str,
        adjust: &str,
        as_of: Option<&str>,
        resolve_at: Option<&str>,
        extended_hours: bool,
    ) -> PyResult<Table> {
        let start = date("start", start)?;
        let request = BarsRequest {
            symbols: values::symbols(symbols)?,
            start,
            end: end.map(|e| date("end", e)).transpose()?.unwrap_or(start),
            frequency: frequency.parse::<Frequency>().map_err(error)?,
            extended_hours,
            adjust: adjust.parse::<Adjustment>().map_err(error)?,
            resolve_at: resolve_at.map(|d| date("resolve_at", d)).transpose()?,
        };
        let as_of = values::as_of(as_of)?;
        let batches = self.run(py, || ql::curate::get_curated_bars(&self.lake, &request, &as_of))?;
        let mut missing = MissingSymbols::of(&request.symbols);
        batches.iter().for_each(|b| missing.see(b));
        let what = format!("bars between {} and {}", request.start, request.end);
        Table::new(batches)?.warning(py, missing.warning(&what))
    }

    /// The rows of one DuckDB SQL statement over the lake, as `quantlake query`: every dataset is a
    /// view of its snapshot at `as_of` (default: the latest). Ctrl-C interrupts the statement.
    #[pyo3(signature = (sql, as_of = None))]
    fn query(&self, py: Python<'_>, sql: &str, as_of: Option<&str>) -> PyResult<Table> {
        let as_of = values::as_of(as_of)?;
        let engine = self.run(py, || QueryEngine::open_for_sql(&self.lake, &as_of, sql))?;
        let interrupt = engine.connection().interrupt_handle();
        let (schema, batches) = run_blocking(py, move || engine.query_with_schema(sql), || interrupt.interrupt())?;
        Ok(Table::with_schema(schema, batches))
    }

    /// A point-in-time training set, as `quantlake training-set`: for each label row, the latest
    /// features complete at its decision time, never a value published after it.
    ///
    /// label: the target, a label set's target, e.g. fwd_ret_resid_15m (falls back to fwd_ret_15m when
    ///     its coverage over the last DAYS_BACK sessions is below MIN_TARGET_COVERAGE; `target` says).
    /// start, end: the first and last session dates, inclusive (YYYY-MM-DD).
    /// feature_set: the features' dataset.
    /// symbols: only these (default: the universe's members).
    /// as_of: the lake state read: a lake tag, a tag, a snapshot number, a time, or dataset@SPEC pins
    ///     (default: the latest).
    /// embargo: also leave out rows whose label ends within this long of the range's end (e.g. 1d, 30m).
    /// universe: whose rows: the members of this universe on each decision date (default:
    ///     securities.default_universe, when the security master records its membership; else every
    ///     symbol with data), or "all" for every symbol with data.
    /// fundamentals: fundamentals items to add (e.g. ["revenues"]), from each symbol's latest filing
    ///     dated before the decision date.
    /// progress: called with (sessions done, sessions in all) as the sessions are joined.
    ///
    /// The result's `target`, `feature_columns`, `lineage` and `rows_left_out` describe the rows; a
    /// symbol asked for without rows is named in its `warnings`.
    #[pyo3(signature = (label, start, end, feature_set = "features_price_1m_v1", symbols = None, as_of = None, embargo = None, universe = None, fundamentals = None, progress = None))]
    #[allow(clippy::too_many_arguments)]
    fn training_set(
        &self,
        py: Python<'_>,
        label: &str,
        start: &str,
        end: &str,
        feature_set: &str,
        symbols: Option<Vec<String>>,
        as_of: Option<&str>,
        embargo: Option<&str>,
        universe: Option<&str>,
        fundamentals: Option<Vec<String>>,
        progress: Option<Py<PyAny>>,
    ) -> PyResult<Py<TrainingSet>> {
        let embargo = embargo
            .map(|e| {
                let d = ql::duration::parse("embargo", e).map_err(error)?;
                chrono::Duration::from_std(d).map_err(|_| invalid(format!("embargo '{e}' is too long")))
            })
            .transpose()?;
        let request = ql::sets::TrainingRequest {
            feature_set: feature_set.to_string(),
            label: label.to_string(),
            symbols: values::symbols(symbols.unwrap_or_default())?,
            start: date("start", start)?,
            end: date("end", end)?,
            as_of: values::as_of(as_of)?,
            embargo,
            fallback: ql::sets::FallbackSettings::from(&self.config.health),
            fundamentals: fundamentals.unwrap_or_default(),
            universe: ql::sets::UniverseFilter::from_flag(universe, &self.config.securities.default_universe),
        };
        let progress = Callback::new(progress);
        let mut missing = MissingSymbols::of(&request.symbols);
        let interrupted = || progress.interrupted();
        let (batches, set) = run_async(
            py,
            &self.runtime,
            || async {
                let mut batches = Vec::new();
                let set = ql::sets::training_set(&self.lake, &request, &progress, &mut |b| {
                    missing.see(&b);
                    batches.push(b);
                    Ok(())
                })
                .await?;
                Ok((batches, set))
            },
            &interrupted,
        )?;
        let what = format!("training rows between {} and {}", request.start, request.end);
        let rows = Table::new(batches)?.warning(py, missing.warning(&what))?;
        Py::new(py, PyClassInitializer::from(rows).add_subclass(TrainingSet::new(set)))
    }

    /// The latest complete features per symbol at a decision time, as `quantlake inference-set`.
    ///
    /// at: the decision time, RFC 3339 (e.g. 2024-03-01T15:00:00Z; default: now): the features
    ///     known then.
    /// feature_set: the features' dataset.
    /// symbols: only these (default: the universe's members with features in the last sessions).
    /// as_of: the lake state read (e.g. the tag a model was trained on; default: the latest). Not a
    ///     time of decision: that is `at`.
    /// universe: without `symbols`, whose rows: the members of this universe on the decision date
    ///     (default: securities.default_universe, when the security master records its membership;
    ///     else every symbol with features), or "all".
    #[pyo3(signature = (at = None, feature_set = "features_price_1m_v1", symbols = None, as_of = None, universe = None))]
    fn inference_set(
        &self,
        py: Python<'_>,
        at: Option<&str>,
        feature_set: &str,
        symbols: Option<Vec<String>>,
        as_of: Option<&str>,
        universe: Option<&str>,
    ) -> PyResult<Table> {
        let at = at.map(|t| time("at", t)).transpose()?.unwrap_or_else(chrono::Utc::now);
        let symbols = values::symbols(symbols.unwrap_or_default())?;
        let as_of = values::as_of(as_of)?;
        let universe = ql::sets::UniverseFilter::from_flag(universe, &self.config.securities.default_universe);
        let batches = self.run(py, || {
            ql::sets::get_features_for_inference(&self.lake, feature_set, &symbols, &universe, at, &as_of)
        })?;
        Table::new(batches)
    }

    /// A dataset's health, as `quantlake health --dataset D --json`: GREEN, YELLOW or RED with each
    /// check, as of the last completed session or `as_of_date` (YYYY-MM-DD).
    #[pyo3(signature = (dataset = "curated_1m_bars", as_of_date = None))]
    fn health<'py>(&self, py: Python<'py>, dataset: &str, as_of_date: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let as_of_date = as_of_date.map(|d| date("as_of_date", d)).transpose()?;
        let c = &self.config;
        let health = self.run(py, || {
            ql::models::dataset_health(&self.lake, dataset, as_of_date, &c.health, &c.universe, &c.models.quality)
        })?;
        json(py, &health)
    }

    /// A dataset's snapshots, newest first (at most `limit`), with their tags, as `quantlake snapshots
    /// D --json`.
    #[pyo3(signature = (dataset, limit = 20))]
    fn snapshots<'py>(&self, py: Python<'py>, dataset: &str, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        let ds = self.lake.dataset(dataset).map_err(error)?;
        let list = self.run(py, || ql::table::operations::history::list(&ds, limit))?;
        json(py, &list)
    }

    /// Data-quality metrics of `dataset` per session from `start` to `end` (YYYY-MM-DD; `end` defaults
    /// to `start`) and in total, as `quantlake dq summary --json`.
    #[pyo3(signature = (dataset, start, end = None))]
    fn dq_summary<'py>(
        &self,
        py: Python<'py>,
        dataset: &str,
        start: &str,
        end: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let start = date("start", start)?;
        let end = end.map(|e| date("end", e)).transpose()?.unwrap_or(start);
        let summary = self.run(py, || ql::dq::get_data_quality_summary(&self.lake, dataset, start, end))?;
        json(py, &summary)
    }

    /// The job records (ingest, curate, features, backfills, runs ...), newest first, as `quantlake
    /// jobs --json`: of `kind` only; created after `since` (an RFC 3339 time) only.
    #[pyo3(signature = (kind = None, since = None))]
    fn jobs<'py>(&self, py: Python<'py>, kind: Option<&str>, since: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let since = since.map(|s| time("since", s)).transpose()?;
        let store = ql::ops::jobs::JobStore::new(&self.lake, self.config.jobs.clone());
        let mut records = self.run(py, || store.list(since))?;
        records.retain(|r| kind.is_none_or(|k| r.kind == k));
        json(py, &records)
    }

    /// The members of a universe on the date `at` (YYYY-MM-DD), each with its ticker then, as the
    /// security master knew at `as_of`: `quantlake universe show --at`.
    ///
    /// universe: default securities.default_universe.
    #[pyo3(signature = (at, universe = None, as_of = None))]
    fn universe<'py>(
        &self,
        py: Python<'py>,
        at: &str,
        universe: Option<&str>,
        as_of: Option<&str>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let at = date("at", at)?;
        let universe = universe.unwrap_or(&self.config.securities.default_universe);
        let as_of = values::as_of(as_of)?;
        let master = self.run(py, || ql::reference::securities::SecurityMaster::load(&self.lake, &as_of))?;
        master.check_universe(universe).map_err(error)?;
        json(py, &master.members(universe, at))
    }

    /// Names a snapshot, as `quantlake snapshot tag`: `dataset`'s latest, or with `all=True` one
    /// consistent cut of every dataset (a lake tag). `as_of=name` reads it back.
    ///
    /// message: kept with the tag.
    /// force: move an existing tag of that name.
    #[pyo3(signature = (name, dataset = None, all = false, message = "", force = false))]
    fn tag<'py>(
        &self,
        py: Python<'py>,
        name: &str,
        dataset: Option<&str>,
        all: bool,
        message: &str,
        force: bool,
    ) -> PyResult<Bound<'py, PyAny>> {
        use ql::table::operations::tag;
        match (dataset, all) {
            (None, true) => {
                let t = self.run(py, || tag::create_lake(&self.lake, name, message, force))?;
                json(py, &t)
            }
            (Some(dataset), false) => {
                let ds = self.lake.dataset(dataset).map_err(error)?;
                let t = self.run(py, || tag::create(&ds, name, None, message, force))?;
                json(py, &t)
            }
            _ => Err(invalid("tag a dataset (`dataset=...`) or the whole lake (`all=True`), one of them".into())),
        }
    }

    /// The lake's root.
    #[getter]
    fn root(&self) -> &str {
        &self.root
    }

    fn __repr__(&self) -> String {
        format!("Lake({:?})", self.root)
    }
}
