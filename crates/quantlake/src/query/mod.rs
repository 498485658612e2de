//! SQL over the lake with DuckDB: every dataset is a view over the version files of one snapshot, so a
//! query sees exactly that snapshot even while another process commits. The snapshots are read through
//! one [`LakeView`](crate::table::lake_log::LakeView), so a stage (curated bars, rejects and metrics of
//! one run) shows in all of its datasets or in none. `_partitions` is the
//! partition table of every dataset. On an S3 lake the files are fetched through `object_store` into
//! a local cache first, so DuckDB needs no extension download.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> quantlake::Result<()> {
//! use arrow::array::AsArray;
//! use arrow::datatypes::Int64Type;
//! use quantlake::query::QueryEngine;
//! use quantlake::table::{AsOf, Lake, LakeOptions};
//!
//! let dir = tempfile::tempdir()?;
//! let lake = Lake::init(dir.path().to_str().unwrap(), LakeOptions::default()).await?;
//! let engine = QueryEngine::open(&lake, &AsOf::latest()).await?;
//! let rows = engine.query("SELECT count(*) AS n FROM raw_synthetic_bars")?;
//! assert_eq!(rows[0].column(0).as_primitive::<Int64Type>().value(0), 0);
//! assert_eq!(engine.snapshots["raw_synthetic_bars"], 0, "the snapshot each view reads");
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::path::{Path as FsPath, PathBuf};

use arrow::array::RecordBatch;
use futures::{StreamExt, TryStreamExt};

use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::table::manifest::{TableState, encode_table};
use crate::table::{AsOf, Dataset, Lake};

/// DuckDB's results with the lake's error type: `duckdb_call().sql()?`. (The error type is the
/// engine's, which has no DuckDB, so `?` cannot convert a DuckDB error by itself.)
pub trait SqlResult<T> {
    fn sql(self) -> Result<T>;
}

impl<T> SqlResult<T> for duckdb::Result<T> {
    fn sql(self) -> Result<T> {
        self.map_err(|e| Error::Sql(Box::new(e)))
    }
}

/// A DuckDB connection with the lake's datasets registered as views.
pub struct QueryEngine {
    conn: duckdb::Connection,
    /// Snapshot each view reads.
    pub snapshots: BTreeMap<String, u64>,
    _workdir: tempfile::TempDir,
}

impl QueryEngine {
    /// Registers every dataset (at the snapshot `as_of` gives) and `_partitions`.
    pub async fn open(lake: &Lake, as_of: &AsOf) -> Result<Self> {
        Self::open_for(lake, as_of, None).await
    }

    /// Like [`QueryEngine::open`], but only the datasets whose names occur in `sql` get views (all of
    /// them if it reads `_partitions`): a query on an S3 lake fetches only the files it can read, and a
    /// snapshot number only has to exist in the datasets the query reads.
    pub async fn open_for_sql(lake: &Lake, as_of: &AsOf, sql: &str) -> Result<Self> {
        Self::open_for(lake, as_of, Some(&sql.to_ascii_lowercase())).await
    }

    async fn open_for(lake: &Lake, as_of: &AsOf, sql: Option<&str>) -> Result<Self> {
        as_of.check_datasets(lake)?;
        let workdir = tempfile::Builder::new().prefix("quantlake-query-").tempdir()?;
        let conn = duckdb::Connection::open_in_memory().sql()?;
        // Never download an extension: a query runs offline, with what this build includes.
        conn.execute_batch("SET autoinstall_known_extensions = false; SET autoload_known_extensions = false;").sql()?;
        let mut snapshots = BTreeMap::new();
        let mut tables = Vec::new();
        let view = lake.view().await?;
        // With SQL given, only the datasets it names are read (at their snapshot), unless it reads
        // `_partitions`, which covers every dataset.
        let wants_all = sql.is_none_or(|sql| sql.contains("_partitions"));
        for ds in lake.all_datasets() {
            let named =
                |sql: &str| sql.contains(ds.name()) || ds.contract().aliases.iter().any(|a| sql.contains(a.as_str()));
            if !wants_all && !sql.is_some_and(named) {
                continue;
            }
            let state = ds.state_as_of(as_of, &view).await?;
            let files = local_files(&ds, &state, workdir.path()).await?;
            conn.execute_batch(&view_sql(ds.contract(), &files)).sql()?;
            for alias in &ds.contract().aliases {
                conn.execute_batch(&format!("CREATE VIEW \"{alias}\" AS SELECT * FROM \"{}\";", ds.name())).sql()?;
            }
            let table = workdir.path().join(format!("{}.partitions.parquet", ds.name()));
            std::fs::write(&table, encode_table(&state, ds.paths())?)?;
            tables.push(table);
            snapshots.insert(ds.name().to_string(), state.snapshot_id);
        }
        if tables.is_empty() {
            // Keep `_partitions` defined (empty) for statements that name no dataset.
            let table = workdir.path().join("none.partitions.parquet");
            let paths = crate::table::layout::DatasetPaths::new(crate::table::layout::Layer::Raw, "none");
            std::fs::write(&table, encode_table(&TableState::empty("none"), &paths)?)?;
            tables.push(table);
        }
        conn.execute_batch(&format!("CREATE VIEW _partitions AS SELECT * FROM read_parquet({});", sql_list(&tables)))
            .sql()?;
        Ok(Self { conn, snapshots, _workdir: workdir })
    }

    /// Runs one SQL statement and returns its rows.
    pub fn query(&self, sql: &str) -> Result<Vec<RecordBatch>> {
        Ok(self.query_with_schema(sql)?.1)
    }

    /// Runs one SQL statement and returns its result's schema (known when no row comes) and rows.
    pub fn query_with_schema(&self, sql: &str) -> Result<(arrow::datatypes::SchemaRef, Vec<RecordBatch>)> {
        let mut stmt = self.conn.prepare(sql).map_err(without_extension)?;
        let rows = stmt.query_arrow([]).map_err(without_extension)?;
        let schema = rows.get_schema();
        Ok((schema, rows.collect()))
    }

    pub fn connection(&self) -> &duckdb::Connection {
        &self.conn
    }
}

/// A DuckDB error, with what to do instead when the statement needs an extension this build leaves
/// out (ICU: time zones and collations).
fn without_extension(e: duckdb::Error) -> Error {
    let message = e.to_string();
    if message.contains("'icu") || message.contains("\"icu\"") {
        let duckdb = message.lines().next().unwrap_or_default();
        return Error::invalid(format!(
            "the statement needs DuckDB's ICU extension (time zones), which this build leaves out and quantlake \
             never downloads: use the `date` column (the New York trading date), compare `ts` in UTC, or \
             convert with a fixed offset (`ts - INTERVAL 5 HOUR` is New York standard time, 4 in daylight \
             time) (DuckDB: {duckdb})"
        ));
    }
    Error::Sql(Box::new(e))
}

/// Local paths of a snapshot's files: the version files themselves on a local lake, cached copies
/// (keyed by content hash, under the same `dataset/partition/` shape so hive columns still parse) on S3.
async fn local_files(ds: &Dataset, state: &TableState, cache: &FsPath) -> Result<Vec<PathBuf>> {
    futures::stream::iter(state.partitions.values().map(|e| async move {
        let path = ds.paths().version_file(&e.partition, &e.file_id);
        if let Some(local) = ds.store().local_path(&path) {
            return Ok(local);
        }
        let dir = cache.join(ds.name()).join(&e.partition);
        let local = dir.join(format!("{}.parquet", e.sha256));
        let bytes = ds.store().get(&path).await?.ok_or_else(|| Error::Integrity {
            dataset: ds.name().into(),
            reason: format!("data file {path} is missing (run `quantlake verify`)"),
        })?;
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::write(&local, bytes).await?;
        Ok::<_, Error>(local)
    }))
    .buffered(crate::table::transaction::IO_CONCURRENCY)
    .try_collect()
    .await
}

fn sql_list(paths: &[PathBuf]) -> String {
    format!("[{}]", sql_strings(paths.iter().map(|p| p.display().to_string())))
}

/// `text` as a SQL string literal: the one way text is spliced into SQL (quotes doubled).
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// `values` as comma-separated SQL string literals (`'A', 'B'`), each made by [`sql_string`], for
/// `IN (...)` lists and array literals.
pub fn sql_strings<S: AsRef<str>>(values: impl IntoIterator<Item = S>) -> String {
    values.into_iter().map(|v| sql_string(v.as_ref())).collect::<Vec<_>>().join(", ")
}

/// `CREATE VIEW` for a dataset: over its files, or an empty relation with the contract's columns.
fn view_sql(contract: &DatasetContract, files: &[PathBuf]) -> String {
    let name = &contract.name;
    if !files.is_empty() {
        return format!(
            "CREATE VIEW \"{name}\" AS SELECT * FROM read_parquet({}, hive_partitioning = true, union_by_name = true);",
            sql_list(files)
        );
    }
    let mut cols: Vec<String> = contract
        .columns
        .iter()
        .map(|c| format!("CAST(NULL AS {}) AS \"{}\"", duckdb_type(&c.data_type), c.name))
        .collect();
    // The hive column the files' folders would add.
    match contract.partitioning {
        crate::table::layout::Partitioning::Date => cols.push("CAST(NULL AS DATE) AS date".into()),
        crate::table::layout::Partitioning::Month => cols.push("CAST(NULL AS VARCHAR) AS month".into()),
        crate::table::layout::Partitioning::Year => cols.push("CAST(NULL AS BIGINT) AS year".into()),
        crate::table::layout::Partitioning::None => {}
    }
    format!("CREATE VIEW \"{name}\" AS SELECT {} WHERE false;", cols.join(", "))
}

fn duckdb_type(t: &str) -> &'static str {
    match t {
        "utf8" | "string" => "VARCHAR",
        "float64" | "double" => "DOUBLE",
        "int64" => "BIGINT",
        "int32" => "INTEGER",
        "bool" | "boolean" => "BOOLEAN",
        "date32" => "DATE",
        _ => "TIMESTAMPTZ",
    }
}
