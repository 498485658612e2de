//! `import quantlake`: the library crate's reads for Python, the CLI's names and defaults.
//!
//! ```python
//! import quantlake as ql, polars as pl
//! lake = ql.Lake("lake")                       # or "s3://bucket/prefix"; config file and env as the CLI
//! bars = lake.bars(["AAPL"], "2024-01-02", "2024-01-31", frequency="5m", adjust="splits")
//! df = pl.DataFrame(bars)                      # zero-copy through __arrow_c_stream__
//! lake.query("SELECT symbol, count(*) AS n FROM curated_1m_bars GROUP BY 1", as_of="latest")
//! ```
//!
//! Results are [`Table`]s: Arrow record batches the library produced, handed to polars, pandas or
//! pyarrow through the Arrow PyCapsule interface without a copy. The interpreter is released while the
//! library works. A library error is a `QuantlakeError` with the CLI's message and its exit code.

use std::path::PathBuf;
use std::sync::Arc;

use arrow::array::{Array, RecordBatch, RecordBatchIterator};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use chrono::NaiveDate;
use pyo3::create_exception;
use pyo3::exceptions::PyException;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use ql::config::Config;
use ql::curate::{Adjustment, BarsRequest, Frequency};
use ql::query::QueryEngine;
use ql::symbol::{MissingSymbols, Symbol};
use ql::table::{AsOf, Lake as LakeHandle};

create_exception!(
    quantlake,
    QuantlakeError,
    PyException,
    "A call quantlake could not do; `exit_code` is the command line's for it (3: could not run)."
);

/// The name the Arrow PyCapsule interface gives a stream capsule.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// A library error as the exception the CLI's exit code 3 stands for.
fn error(e: ql::error::Error) -> PyErr {
    let err = QuantlakeError::new_err(e.to_string());
    Python::attach(|py| {
        let _ = err.value(py).setattr("exit_code", 3);
    });
    err
}

/// Bad input named as the CLI names it.
fn invalid(what: String) -> PyErr {
    error(ql::error::Error::invalid(what))
}

fn date(what: &str, text: &str) -> PyResult<NaiveDate> {
    text.parse().map_err(|_| invalid(format!("{what} '{text}' is not a date (YYYY-MM-DD)")))
}

fn as_of(text: Option<&str>) -> PyResult<AsOf> {
    match text {
        None => Ok(AsOf::latest()),
        Some(t) => AsOf::parse(&[t]).map_err(error),
    }
}

/// A lake, opened as the command line opens it: `root` (a path or `s3://bucket/prefix`) or the
/// config's `lake.root`; the config file (`config/quantlake.toml` or `config`) and the environment.
#[pyclass(module = "quantlake", frozen)]
struct Lake {
    lake: LakeHandle,
    runtime: Arc<tokio::runtime::Runtime>,
    root: String,
    config: Config,
}

impl Lake {
    /// Runs `work` with the interpreter released; a Ctrl-C (any signal handler raising) stops it
    /// within `SIGNAL_POLL` and raises `KeyboardInterrupt`. Reads hold nothing a stop leaves behind.
    fn run<T: Send, F: std::future::Future<Output = ql::error::Result<T>>>(
        &self,
        py: Python<'_>,
        work: impl FnOnce() -> F + Send,
    ) -> PyResult<T> {
        py.detach(|| {
            self.runtime.block_on(async {
                // Made on this thread, so the future itself need not be `Send`.
                let work = work();
                tokio::pin!(work);
                let mut poll = tokio::time::interval(SIGNAL_POLL);
                loop {
                    tokio::select! {
                        done = &mut work => return done.map_err(error),
                        _ = poll.tick() => Python::attach(|py| py.check_signals())?,
                    }
                }
            })
        })
    }
}

/// How often a running call checks for Ctrl-C.
const SIGNAL_POLL: std::time::Duration = std::time::Duration::from_millis(100);

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
            .map_err(|e| invalid(format!("cannot start the runtime: {e}")))?;
        let options = config.lake.options();
        let lake = py.detach(|| runtime.block_on(LakeHandle::open(&root, options))).map_err(error)?;
        Ok(Self { lake, runtime: Arc::new(runtime), root, config })
    }

    /// Curated bars of `symbols` from `start` to `end` (default: `start`), sorted by symbol and ts, as
    /// `quantlake bars`: `frequency` 1m, 5m, 15m, 30m, 1h or 1d; `adjust` none, splits or all;
    /// `as_of` a snapshot, tag or time; `resolve_at` the date tickers name securities on (default:
    /// `end`). A symbol without rows is named in the result's `warnings`.
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
        let symbols = parse_symbols(symbols)?;
        let start = date("start", start)?;
        let request = BarsRequest {
            symbols: symbols.clone(),
            start,
            end: end.map(|e| date("end", e)).transpose()?.unwrap_or(start),
            frequency: frequency.parse::<Frequency>().map_err(error)?,
            extended_hours,
            adjust: adjust.parse::<Adjustment>().map_err(error)?,
            resolve_at: resolve_at.map(|d| date("resolve_at", d)).transpose()?,
        };
        let as_of = self::as_of(as_of)?;
        let batches = self.run(py, || ql::curate::get_curated_bars(&self.lake, &request, &as_of))?;
        let mut missing = MissingSymbols::of(&symbols);
        batches.iter().for_each(|b| missing.see(b));
        let missing: Vec<&str> = missing.missing().map(Symbol::as_str).collect();
        let mut table = Table::new(batches)?;
        if !missing.is_empty() {
            table.warnings.push(format!(
                "no bars between {} and {} for {}",
                request.start,
                request.end,
                missing.join(", ")
            ));
        }
        Ok(table)
    }

    /// The rows of a DuckDB SQL statement over the lake's datasets at `as_of` (every dataset is a
    /// view), as `quantlake query`.
    #[pyo3(signature = (sql, as_of = None))]
    fn query(&self, py: Python<'_>, sql: &str, as_of: Option<&str>) -> PyResult<Table> {
        let as_of = self::as_of(as_of)?;
        let batches = self.run(py, || async {
            let engine = QueryEngine::open_for_sql(&self.lake, &as_of, sql).await?;
            engine.query(sql)
        })?;
        Table::new(batches)
    }

    /// A point-in-time training set, as `quantlake training-set`: for each label row of `label` (a
    /// target of a label set, e.g. `fwd_ret_resid_15m`) from `start` to `end`, the latest features
    /// complete at its decision time. `symbols` default to the members of `securities.default_universe`
    /// on each decision date (`universe="all"`: every symbol with data); `embargo` e.g. "1d";
    /// `fundamentals` columns of `fundamentals` to add; `progress` is called with (sessions done,
    /// sessions in all). `target`, `feature_columns`, `lineage` and `rows_left_out` describe the rows.
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
        let universe = ql::sets::UniverseFilter::from_flag(universe, &self.config.securities.default_universe);
        let request = ql::sets::TrainingRequest {
            feature_set: feature_set.to_string(),
            label: label.to_string(),
            symbols: parse_symbols(symbols.unwrap_or_default())?,
            start: date("start", start)?,
            end: date("end", end)?,
            as_of: self::as_of(as_of)?,
            embargo,
            fallback: ql::sets::FallbackSettings::from(&self.config.health),
            fundamentals: fundamentals.unwrap_or_default(),
            universe,
        };
        let progress = Callback::new(progress);
        let (batches, set) = self.run(py, || async {
            let mut batches = Vec::new();
            let set = ql::sets::training_set(&self.lake, &request, &progress, &mut |b| {
                batches.push(b);
                Ok(())
            })
            .await?;
            Ok((batches, set))
        })?;
        let table = Table::new(batches)?;
        let rows = PyClassInitializer::from(table).add_subclass(TrainingSet {
            target: set.target,
            feature_columns: set.feature_columns,
            lineage: set.lineage,
        });
        Py::new(py, rows)
    }

    /// The latest complete features per symbol at `at` (an RFC 3339 time), as `quantlake
    /// inference-set`: `symbols` default to the default universe's members then.
    #[pyo3(signature = (at, feature_set = "features_price_1m_v1", symbols = None, as_of = None))]
    fn inference_set(
        &self,
        py: Python<'_>,
        at: &str,
        feature_set: &str,
        symbols: Option<Vec<String>>,
        as_of: Option<&str>,
    ) -> PyResult<Table> {
        let at = chrono::DateTime::parse_from_rfc3339(at)
            .map_err(|_| invalid(format!("at '{at}' is not a time (RFC 3339, e.g. 2024-04-30T19:00:00Z)")))?
            .with_timezone(&chrono::Utc);
        let symbols = parse_symbols(symbols.unwrap_or_default())?;
        let as_of = self::as_of(as_of)?;
        let batches =
            self.run(py, || ql::sets::get_features_for_inference(&self.lake, feature_set, &symbols, at, &as_of))?;
        Table::new(batches)
    }

    /// A dataset's health, as `quantlake health --json`: GREEN, YELLOW or RED with its checks, as of
    /// the last completed session or `as_of_date`.
    #[pyo3(signature = (dataset = "curated_1m_bars", as_of_date = None))]
    fn health<'py>(&self, py: Python<'py>, dataset: &str, as_of_date: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let as_of_date = as_of_date.map(|d| date("as_of_date", d)).transpose()?;
        let c = &self.config;
        let health = self.run(py, || {
            ql::models::dataset_health(&self.lake, dataset, as_of_date, &c.health, &c.universe, &c.models.quality)
        })?;
        json(py, &health)
    }

    /// A dataset's snapshots, newest first, as `quantlake snapshots --dataset D --json`.
    #[pyo3(signature = (dataset, limit = 20))]
    fn snapshots<'py>(&self, py: Python<'py>, dataset: &str, limit: usize) -> PyResult<Bound<'py, PyAny>> {
        let ds = self.lake.dataset(dataset).map_err(error)?;
        let list = self.run(py, || ql::table::operations::history::list(&ds, limit))?;
        json(py, &list)
    }

    /// Data-quality metrics of `dataset` per session from `start` to `end` (default: `start`) and in
    /// total, as `quantlake dq summary --json`.
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
    /// jobs --json`: of `kind` only, created after `since` (an RFC 3339 time) only.
    #[pyo3(signature = (kind = None, since = None))]
    fn jobs<'py>(&self, py: Python<'py>, kind: Option<&str>, since: Option<&str>) -> PyResult<Bound<'py, PyAny>> {
        let since = since
            .map(|s| {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&chrono::Utc))
                    .map_err(|_| invalid(format!("since '{s}' is not a time (RFC 3339)")))
            })
            .transpose()?;
        let store = ql::ops::jobs::JobStore::new(&self.lake, self.config.jobs.clone());
        let mut records = self.run(py, || store.list(since))?;
        records.retain(|r| kind.is_none_or(|k| r.kind == k));
        json(py, &records)
    }

    /// The members of `universe` (default: `securities.default_universe`) on the date `at`, each with
    /// its ticker then, as the security master knew at `as_of`: `quantlake universe show --at`.
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
        let as_of = self::as_of(as_of)?;
        let master = self.run(py, || ql::reference::securities::SecurityMaster::load(&self.lake, &as_of))?;
        master.check_universe(universe).map_err(error)?;
        json(py, &master.members(universe, at))
    }

    /// Tags the latest snapshot of `dataset`, or with `all=True` one consistent cut of every dataset
    /// (a lake tag), as `quantlake snapshot tag`; `as_of=name` reads it back.
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

    fn __repr__(&self) -> String {
        format!("Lake({:?})", self.root)
    }
}

/// Rows as Arrow record batches; polars (`pl.DataFrame(t)`), pyarrow (`pa.table(t)`) and pandas
/// (`t.to_pandas()`) take them through `__arrow_c_stream__` without a copy.
#[pyclass(module = "quantlake", frozen, subclass)]
struct Table {
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
    /// What a partial result lacks (the CLI's exit 1 warnings).
    #[pyo3(get)]
    warnings: Vec<String>,
}

impl Table {
    fn new(batches: Vec<RecordBatch>) -> PyResult<Self> {
        let schema =
            batches.first().map(RecordBatch::schema).ok_or_else(|| invalid("the read returned no schema".into()))?;
        let batches = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        Ok(Self { batches, schema, warnings: Vec::new() })
    }
}

#[pymethods]
impl Table {
    /// The Arrow PyCapsule interface: a stream of the batches, each exported, not copied.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The batches go as they are; a consumer casts to a requested schema itself.
        let _ = requested_schema;
        let reader = RecordBatchIterator::new(self.batches.clone().into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, STREAM_CAPSULE)
    }

    /// Rows in all.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The columns' names.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The addresses of each batch's data buffers of column `column` (the validity bitmap aside): how a
    /// test shows a consumer got these very buffers, not copies.
    fn buffer_addresses(&self, column: &str) -> PyResult<Vec<Vec<usize>>> {
        let index = self.schema.index_of(column).map_err(|_| invalid(format!("no column '{column}'")))?;
        Ok(self
            .batches
            .iter()
            .map(|b| b.column(index).to_data().buffers().iter().map(|buf| buf.as_ptr() as usize).collect())
            .collect())
    }

    /// A `pyarrow.Table` (pyarrow must be installed).
    fn to_pyarrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("pyarrow")?.getattr("table")?.call1((slf,))
    }

    /// A `pandas.DataFrame`, through pyarrow.
    fn to_pandas<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::to_pyarrow(slf)?.call_method0("to_pandas")
    }

    /// A `polars.DataFrame`.
    fn to_polars<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("polars")?.getattr("DataFrame")?.call1((slf,))
    }

    fn __len__(&self) -> usize {
        self.num_rows()
    }

    fn __repr__(&self) -> String {
        format!("Table({} rows: {})", self.num_rows(), self.column_names().join(", "))
    }
}

/// A training set's rows (a [`Table`]) with what they are: the target, the feature columns, the
/// lineage the CLI prints, and the candidate rows each rule left out.
#[pyclass(module = "quantlake", frozen, extends = Table)]
struct TrainingSet {
    /// Which label the rows' `target` column holds: the one asked for, or its fallback.
    #[pyo3(get)]
    target: String,
    #[pyo3(get)]
    feature_columns: Vec<String>,
    lineage: ql::sets::Lineage,
}

#[pymethods]
impl TrainingSet {
    /// The lineage record, as `quantlake training-set --json` prints it.
    #[getter]
    fn lineage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json(py, &self.lineage)
    }

    /// Candidate rows left out, by rule: no target, purged (the label ends after the cutoff), no
    /// features, excluded by annotations, not members of the universe.
    #[getter]
    fn rows_left_out(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let l = &self.lineage;
        std::collections::BTreeMap::from([
            ("no_target", l.rows_without_target),
            ("purged", l.rows_purged),
            ("no_features", l.rows_without_features),
            ("annotations", l.rows_excluded_by_annotations),
            ("not_members", l.rows_not_members),
        ])
    }
}

/// A Python callable told `(done, total)` as a long call advances (sessions, for a training set):
/// `tqdm`'s `update` fits through a small lambda. An exception it raises is ignored (the call goes
/// on); the callback runs with the interpreter held, between units of work.
struct Callback {
    callback: Option<Py<PyAny>>,
    done: std::sync::atomic::AtomicU64,
    total: std::sync::atomic::AtomicU64,
}

impl Callback {
    fn new(callback: Option<Py<PyAny>>) -> Self {
        Self { callback, done: Default::default(), total: Default::default() }
    }

    fn tell(&self) {
        use std::sync::atomic::Ordering::Relaxed;
        if let Some(callback) = &self.callback {
            let (done, total) = (self.done.load(Relaxed), self.total.load(Relaxed));
            Python::attach(|py| {
                if let Err(e) = callback.call1(py, (done, total)) {
                    e.write_unraisable(py, None);
                }
            });
        }
    }
}

impl ql::progress::Progress for Callback {
    fn set_length(&self, len: u64) {
        self.total.store(len, std::sync::atomic::Ordering::Relaxed);
        self.done.store(0, std::sync::atomic::Ordering::Relaxed);
    }

    fn inc(&self, n: u64) {
        self.done.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
        self.tell();
    }

    fn message(&self, _: &str) {}

    fn finish(&self) {}
}

/// `symbols` as the CLI parses them.
fn parse_symbols(symbols: Vec<String>) -> PyResult<Vec<Symbol>> {
    symbols.iter().map(|s| s.parse::<Symbol>()).collect::<Result<_, _>>().map_err(error)
}

/// A serializable report as Python values (dicts, lists, numbers, strings), as the CLI's `--json`.
fn json<'py, T: serde::Serialize>(py: Python<'py>, value: &T) -> PyResult<Bound<'py, PyAny>> {
    let text = serde_json::to_string(value).map_err(|e| invalid(format!("report: {e}")))?;
    py.import("json")?.call_method1("loads", (text,))
}

#[pymodule]
fn quantlake(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<Lake>()?;
    m.add_class::<Table>()?;
    m.add_class::<TrainingSet>()?;
    m.add("QuantlakeError", m.py().get_type::<QuantlakeError>())?;
    Ok(())
}
