//! Dataset contracts: the TOML files in `schemas/`, one per dataset. They are the only place a dataset's
//! columns, partitioning and sort key are written down; the engine, the sources and the query layer all
//! read them from here. The files are compiled into the binary (so it works from any folder) and a
//! config may point at a folder of extra or replacement contracts.
//!
//! A contract may `extends = "other"`: it takes the other's keys, replaces those it gives, and may
//! retype inherited columns with `column_types = { volume = "float64" }`. The per-source raw datasets
//! share one column list this way.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::Array;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::quality::QualityRules;

/// The contracts shipped in `schemas/`.
const BUILTIN: &[(&str, &str)] = &[
    ("schemas/raw_synthetic_bars.toml", include_str!("../../../schemas/raw_synthetic_bars.toml")),
    ("schemas/raw_file_bars.toml", include_str!("../../../schemas/raw_file_bars.toml")),
    ("schemas/raw_file_daily_bars.toml", include_str!("../../../schemas/raw_file_daily_bars.toml")),
    ("schemas/quarantine_rows.toml", include_str!("../../../schemas/quarantine_rows.toml")),
    ("schemas/ingest_progress.toml", include_str!("../../../schemas/ingest_progress.toml")),
    ("schemas/reference_universe.toml", include_str!("../../../schemas/reference_universe.toml")),
    ("schemas/fundamentals.toml", include_str!("../../../schemas/fundamentals.toml")),
    ("schemas/annotations.toml", include_str!("../../../schemas/annotations.toml")),
    ("schemas/curated_1m_bars.toml", include_str!("../../../schemas/curated_1m_bars.toml")),
    ("schemas/curated_1d_bars.toml", include_str!("../../../schemas/curated_1d_bars.toml")),
    ("schemas/curation_rejects.toml", include_str!("../../../schemas/curation_rejects.toml")),
    ("schemas/dq_metrics.toml", include_str!("../../../schemas/dq_metrics.toml")),
    ("schemas/raw_tws_bars.toml", include_str!("../../../schemas/raw_tws_bars.toml")),
    ("schemas/raw_polygon_bars.toml", include_str!("../../../schemas/raw_polygon_bars.toml")),
    ("schemas/raw_alpaca_bars.toml", include_str!("../../../schemas/raw_alpaca_bars.toml")),
    ("schemas/raw_tws_daily_bars.toml", include_str!("../../../schemas/raw_tws_daily_bars.toml")),
    ("schemas/raw_polygon_daily_bars.toml", include_str!("../../../schemas/raw_polygon_daily_bars.toml")),
    ("schemas/raw_alpaca_daily_bars.toml", include_str!("../../../schemas/raw_alpaca_daily_bars.toml")),
    ("schemas/raw_synthetic_daily_bars.toml", include_str!("../../../schemas/raw_synthetic_daily_bars.toml")),
    ("schemas/annotations.toml", include_str!("../../../schemas/annotations.toml")),
    ("schemas/features_price_1m_v1.toml", include_str!("../../../schemas/features_price_1m_v1.toml")),
    ("schemas/labels_fwd_ret_v1.toml", include_str!("../../../schemas/labels_fwd_ret_v1.toml")),
    ("schemas/lineage.toml", include_str!("../../../schemas/lineage.toml")),
    ("schemas/partition_inputs.toml", include_str!("../../../schemas/partition_inputs.toml")),
    ("schemas/target_fallbacks.toml", include_str!("../../../schemas/target_fallbacks.toml")),
    ("schemas/reference_corporate_actions.toml", include_str!("../../../schemas/reference_corporate_actions.toml")),
    ("schemas/reference_securities.toml", include_str!("../../../schemas/reference_securities.toml")),
    ("schemas/reference_symbology.toml", include_str!("../../../schemas/reference_symbology.toml")),
    ("schemas/reference_membership.toml", include_str!("../../../schemas/reference_membership.toml")),
    ("schemas/features_adv.toml", include_str!("../../../schemas/features_adv.toml")),
    ("schemas/models.toml", include_str!("../../../schemas/models.toml")),
    ("schemas/predictions.toml", include_str!("../../../schemas/predictions.toml")),
];

/// How deep `extends` chains may go.
const MAX_EXTENDS_DEPTH: usize = 4;

/// One column of a contract.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    pub name: String,
    /// Arrow type as Arrow prints it: `utf8`, `float64`, `int64`, `int32`, `bool`, `date32`,
    /// `timestamp[us, UTC]`.
    #[serde(rename = "type")]
    pub data_type: String,
    #[serde(default)]
    pub nullable: bool,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// The schema a dataset's commits record: what the data files were written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemaRecord {
    pub version: u32,
    pub columns: Vec<ColumnSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ContractFile {
    name: String,
    layer: Layer,
    schema_version: u32,
    #[serde(default)]
    description: String,
    #[serde(default = "default_partitioning")]
    partitioning: Partitioning,
    #[serde(default = "default_partition_column")]
    partition_column: String,
    #[serde(default = "default_timezone")]
    partition_timezone: String,
    sort_key: Vec<String>,
    #[serde(default = "default_row_group_rows")]
    row_group_rows: usize,
    #[serde(default = "default_compression")]
    compression: String,
    columns: Vec<ColumnSpec>,
    #[serde(default)]
    quality: Option<QualityRules>,
    #[serde(default)]
    aliases: Vec<String>,
    #[serde(default)]
    definition: Option<toml::Table>,
}

fn default_partitioning() -> Partitioning {
    Partitioning::Date
}
fn default_partition_column() -> String {
    "ts".into()
}
fn default_timezone() -> String {
    "America/New_York".into()
}
fn default_row_group_rows() -> usize {
    // About 40 symbols of a day of minute bars: a one-symbol query reads one row group in a dozen.
    16_384
}
fn default_compression() -> String {
    "zstd(3)".into()
}

/// The codecs a contract may name: the ones this build has and every reader of the lake's files
/// (DuckDB, pyarrow, polars, Spark 3.5) decodes.
const COMPRESSIONS: &str = "zstd(1..=22), lz4_raw, snappy, uncompressed";

/// A contract's `compression` as a Parquet codec.
fn parse_compression(text: &str) -> Option<parquet::basic::Compression> {
    use parquet::basic::Compression;
    match text.parse::<Compression>().ok()? {
        c @ (Compression::ZSTD(_) | Compression::LZ4_RAW | Compression::SNAPPY | Compression::UNCOMPRESSED) => Some(c),
        _ => None,
    }
}

/// A loaded, checked dataset contract.
#[derive(Debug, Clone)]
pub struct DatasetContract {
    pub name: String,
    pub layer: Layer,
    pub description: String,
    pub schema_version: u32,
    pub columns: Vec<ColumnSpec>,
    pub partitioning: Partitioning,
    /// The timestamp column whose local date (in `partition_timezone`) picks a row's partition.
    pub partition_column: String,
    pub partition_timezone: Tz,
    pub sort_key: Vec<String>,
    pub row_group_rows: usize,
    /// The Parquet codec of the dataset's files (`compression`, default `zstd(3)`): zstd where bytes
    /// count, lz4_raw where a layer is written far more than it is read.
    pub compression: parquet::basic::Compression,
    /// Data-quality rules, for datasets that have metrics.
    pub quality: Option<QualityRules>,
    /// Other names the dataset answers to (the runbooks' names), in the library and in SQL.
    pub aliases: Vec<String>,
    /// How a derived dataset is computed (`[definition]`: a feature set's features, a label set's
    /// horizons), read by the stage that computes it; the contract file is the one place it is written.
    pub definition: Option<toml::Table>,
    schema: SchemaRef,
}

impl DatasetContract {
    /// Parses and checks one contract; `origin` names the file in errors.
    pub fn parse(origin: &str, text: &str) -> Result<Self> {
        let table: toml::Table = toml::from_str(text)
            .map_err(|e| Error::InvalidContract { path: origin.to_string(), reason: e.to_string() })?;
        Self::from_table(origin, table)
    }

    fn from_table(origin: &str, table: toml::Table) -> Result<Self> {
        let bad = |reason: String| Error::InvalidContract { path: origin.to_string(), reason };
        if table.contains_key("extends") {
            return Err(bad("'extends' is resolved only among a set of contracts".into()));
        }
        let file: ContractFile = table.try_into().map_err(|e: toml::de::Error| bad(e.to_string()))?;
        validate_dataset_name(&file.name).map_err(|e| bad(e.to_string()))?;
        for alias in &file.aliases {
            validate_dataset_name(alias).map_err(|e| bad(format!("alias: {e}")))?;
        }
        let mut fields = Vec::with_capacity(file.columns.len());
        for c in &file.columns {
            let t = parse_type(&c.data_type).ok_or_else(|| {
                bad(format!(
                    "column '{}' has unknown type '{}' (known: utf8, float64, int64, int32, bool, date32, timestamp[us, UTC])",
                    c.name, c.data_type
                ))
            })?;
            if fields.iter().any(|f: &Field| f.name() == &c.name) {
                return Err(bad(format!("column '{}' is listed twice", c.name)));
            }
            fields.push(Field::new(&c.name, t, c.nullable));
        }
        let column = |name: &str| file.columns.iter().find(|c| c.name == name);
        match column(&file.partition_column) {
            _ if file.partitioning == Partitioning::None => {}
            Some(c) if c.data_type == "timestamp[us, UTC]" && !c.nullable => {}
            _ => {
                return Err(bad(format!(
                    "partition_column '{}' must be a non-nullable timestamp[us, UTC] column",
                    file.partition_column
                )));
            }
        }
        if column("symbol").is_some_and(|c| c.data_type != "utf8") {
            return Err(bad("column 'symbol' must be utf8".into()));
        }
        for k in &file.sort_key {
            if column(k).is_none() {
                return Err(bad(format!("sort_key column '{k}' is not a column")));
            }
        }
        let tz: Tz = file
            .partition_timezone
            .parse()
            .map_err(|_| bad(format!("unknown partition_timezone '{}'", file.partition_timezone)))?;
        if file.row_group_rows == 0 {
            return Err(bad("row_group_rows must be positive".into()));
        }
        let compression = parse_compression(&file.compression)
            .ok_or_else(|| bad(format!("unknown compression '{}' (known: {COMPRESSIONS})", file.compression)))?;
        Ok(Self {
            name: file.name,
            layer: file.layer,
            description: file.description,
            schema_version: file.schema_version,
            columns: file.columns,
            partitioning: file.partitioning,
            partition_column: file.partition_column,
            partition_timezone: tz,
            sort_key: file.sort_key,
            row_group_rows: file.row_group_rows,
            compression,
            quality: file.quality,
            aliases: file.aliases,
            definition: file.definition,
            schema: Arc::new(Schema::new(fields)),
        })
    }

    /// The Arrow schema every data file of this dataset has.
    pub fn arrow_schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    pub fn schema_record(&self) -> SchemaRecord {
        SchemaRecord { version: self.schema_version, columns: self.columns.clone() }
    }

    /// Checks a batch against the contract, naming the first column that differs.
    pub fn check_schema(&self, schema: &Schema) -> Result<()> {
        let mismatch = |detail: String| Error::SchemaMismatch { dataset: self.name.clone(), detail };
        for want in self.schema.fields() {
            match schema.field_with_name(want.name()) {
                Err(_) => return Err(mismatch(format!("column '{}' is missing", want.name()))),
                Ok(got) if got.data_type() != want.data_type() => {
                    return Err(mismatch(format!(
                        "column '{}' has type {} but the contract says {}",
                        want.name(),
                        got.data_type(),
                        want.data_type()
                    )));
                }
                Ok(got) if got.is_nullable() && !want.is_nullable() => {
                    return Err(mismatch(format!(
                        "column '{}' is nullable but the contract says not null",
                        want.name()
                    )));
                }
                Ok(_) => {}
            }
        }
        if let Some(extra) = schema.fields().iter().find(|f| self.schema.field_with_name(f.name()).is_err()) {
            return Err(mismatch(format!("column '{}' is not in the contract", extra.name())));
        }
        Ok(())
    }

    /// A batch in this contract's schema with each column from `column(name)`, by name, so the
    /// contract's column order is the contract's business. Names a column it gets no value for.
    pub fn batch_from(
        &self,
        mut column: impl FnMut(&str) -> Option<arrow::array::ArrayRef>,
    ) -> Result<arrow::array::RecordBatch> {
        let arrays = self
            .columns
            .iter()
            .map(|c| {
                column(&c.name).ok_or_else(|| Error::SchemaMismatch {
                    dataset: self.name.clone(),
                    detail: format!("no value for column '{}'", c.name),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(arrow::array::RecordBatch::try_new(self.schema.clone(), arrays)?)
    }

    /// `batch` in this contract's schema: columns picked by name and cast to the contract's types (a
    /// query engine's integer microseconds become timestamps, its BIGINT an int32 where the contract
    /// says so). Fails naming the column when one is missing, cannot be cast, or has nulls it may not.
    pub fn conform_batch(&self, batch: &arrow::array::RecordBatch) -> Result<arrow::array::RecordBatch> {
        let mismatch = |detail: String| Error::SchemaMismatch { dataset: self.name.clone(), detail };
        let mut columns = Vec::with_capacity(self.schema.fields().len());
        for want in self.schema.fields() {
            let got = batch
                .column_by_name(want.name())
                .ok_or_else(|| mismatch(format!("column '{}' is missing", want.name())))?;
            let cast = arrow::compute::cast(got, want.data_type()).map_err(|e| {
                mismatch(format!("column '{}' ({}) cannot be {}: {e}", want.name(), got.data_type(), want.data_type()))
            })?;
            if !want.is_nullable() && cast.null_count() > 0 {
                return Err(mismatch(format!(
                    "column '{}' has {} null value(s) but the contract says not null",
                    want.name(),
                    cast.null_count()
                )));
            }
            columns.push(cast);
        }
        Ok(arrow::array::RecordBatch::try_new(self.schema.clone(), columns)?)
    }

    /// Checks that this contract may replace the schema a dataset was written with: same columns in the
    /// same order with the same types, plus any number of new nullable columns at the end, with a higher
    /// schema version. Returns whether the schema changes.
    pub fn check_evolution(&self, recorded: &SchemaRecord) -> Result<bool> {
        let refuse = |detail: String| Error::SchemaEvolution { dataset: self.name.clone(), detail };
        if recorded.version > self.schema_version {
            return Err(refuse(format!(
                "the lake holds schema version {} but this contract is version {}",
                recorded.version, self.schema_version
            )));
        }
        for (i, old) in recorded.columns.iter().enumerate() {
            match self.columns.get(i) {
                None => return Err(refuse(format!("column '{}' was removed", old.name))),
                Some(new) if new.name != old.name => {
                    return Err(refuse(format!("column '{}' was renamed or moved (now '{}')", old.name, new.name)));
                }
                Some(new) if parse_type(&new.data_type) != parse_type(&old.data_type) => {
                    return Err(refuse(format!(
                        "column '{}' changed type from {} to {}",
                        old.name, old.data_type, new.data_type
                    )));
                }
                Some(new) if new.nullable != old.nullable => {
                    return Err(refuse(format!("column '{}' changed nullability", old.name)));
                }
                Some(_) => {}
            }
        }
        let added = &self.columns[recorded.columns.len()..];
        if let Some(c) = added.iter().find(|c| !c.nullable) {
            return Err(refuse(format!("new column '{}' is not nullable", c.name)));
        }
        let changed = !added.is_empty();
        if changed && self.schema_version == recorded.version {
            return Err(refuse(format!(
                "columns were added but schema_version is still {}; raise it",
                self.schema_version
            )));
        }
        Ok(changed || self.schema_version != recorded.version)
    }
}

/// Parses the type names contracts use (Arrow's own spelling).
pub fn parse_type(s: &str) -> Option<DataType> {
    Some(match s.trim() {
        "utf8" | "string" => DataType::Utf8,
        "float64" | "double" => DataType::Float64,
        "int64" => DataType::Int64,
        "int32" => DataType::Int32,
        "bool" | "boolean" => DataType::Boolean,
        "date32" => DataType::Date32,
        "timestamp[us, UTC]" => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        _ => return None,
    })
}

/// The contracts known to this process: the built-in ones, then any from an extra folder.
#[derive(Debug, Clone)]
pub struct Contracts {
    by_name: BTreeMap<String, Arc<DatasetContract>>,
}

impl Contracts {
    pub fn builtin() -> Self {
        let texts = BUILTIN.iter().map(|(origin, text)| (origin.to_string(), text.to_string())).collect();
        // The built-in contracts are checked by a unit test, so a failure here is a build defect.
        Self::from_texts(texts).unwrap_or_else(|e| panic!("built-in contract: {e}"))
    }

    /// Built-in contracts plus every `*.toml` in `dir` (a file with a built-in's name replaces it).
    pub fn with_dir(dir: &std::path::Path) -> Result<Self> {
        let mut texts: Vec<(String, String)> =
            BUILTIN.iter().map(|(origin, text)| (origin.to_string(), text.to_string())).collect();
        let entries = std::fs::read_dir(dir).map_err(|source| Error::ReadFile { path: dir.to_path_buf(), source })?;
        let mut paths: Vec<_> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        paths.sort();
        for path in paths.into_iter().filter(|p| p.extension().is_some_and(|e| e == "toml")) {
            let text =
                std::fs::read_to_string(&path).map_err(|source| Error::ReadFile { path: path.clone(), source })?;
            texts.push((path.display().to_string(), text));
        }
        Self::from_texts(texts)
    }

    /// Contracts from `(origin, text)` pairs; a later one with an earlier one's name replaces it.
    fn from_texts(texts: Vec<(String, String)>) -> Result<Self> {
        let mut tables: BTreeMap<String, (String, toml::Table)> = BTreeMap::new();
        for (origin, text) in texts {
            let table: toml::Table = toml::from_str(&text)
                .map_err(|e| Error::InvalidContract { path: origin.clone(), reason: e.to_string() })?;
            let name = table.get("name").and_then(|n| n.as_str()).map(str::to_string);
            let name =
                name.ok_or_else(|| Error::InvalidContract { path: origin.clone(), reason: "missing 'name'".into() })?;
            tables.insert(name, (origin, table));
        }
        let mut by_name = BTreeMap::new();
        for (origin, table) in tables.values() {
            let resolved = resolve_extends(origin, table.clone(), &tables, 0)?;
            let c = DatasetContract::from_table(origin, resolved)?;
            by_name.insert(c.name.clone(), Arc::new(c));
        }
        for c in by_name.values() {
            if let Some(a) = c.aliases.iter().find(|a| {
                by_name.contains_key(*a) || by_name.values().any(|o| o.name != c.name && o.aliases.contains(a))
            }) {
                return Err(Error::InvalidContract {
                    path: c.name.clone(),
                    reason: format!("alias '{a}' is already a dataset or another dataset's alias"),
                });
            }
        }
        Ok(Self { by_name })
    }

    pub fn get(&self, name: &str) -> Result<Arc<DatasetContract>> {
        validate_dataset_name(name)?;
        let by_alias = || self.by_name.values().find(|c| c.aliases.iter().any(|a| a == name)).cloned();
        self.by_name.get(name).cloned().or_else(by_alias).ok_or_else(|| Error::UnknownDataset {
            name: name.to_string(),
            known: self.by_name.keys().cloned().collect(),
        })
    }

    pub fn iter(&self) -> impl Iterator<Item = &Arc<DatasetContract>> {
        self.by_name.values()
    }
}

/// `table` with its `extends` chain merged in; see the module docs.
fn resolve_extends(
    origin: &str,
    mut table: toml::Table,
    all: &BTreeMap<String, (String, toml::Table)>,
    depth: usize,
) -> Result<toml::Table> {
    let bad = |reason: String| Error::InvalidContract { path: origin.to_string(), reason };
    let Some(parent) = table.remove("extends") else {
        return match table.contains_key("column_types") {
            true => Err(bad("'column_types' needs 'extends'".into())),
            false => Ok(table),
        };
    };
    let parent = parent.as_str().ok_or_else(|| bad("'extends' must name a contract".into()))?;
    if depth >= MAX_EXTENDS_DEPTH {
        return Err(bad(format!("'extends' chain deeper than {MAX_EXTENDS_DEPTH} (a cycle?)")));
    }
    let (parent_origin, parent_table) =
        all.get(parent).ok_or_else(|| bad(format!("extends unknown contract '{parent}'")))?;
    let mut merged = resolve_extends(parent_origin, parent_table.clone(), all, depth + 1)?;
    // A name belongs to one dataset: aliases are not inherited.
    merged.remove("aliases");
    let retype = table.remove("column_types");
    merged.extend(table);
    if let Some(retype) = retype {
        let retype =
            retype.as_table().ok_or_else(|| bad("'column_types' must be a table of column = \"type\"".into()))?;
        let columns = merged
            .get_mut("columns")
            .and_then(|c| c.as_array_mut())
            .ok_or_else(|| bad("no columns to retype".into()))?;
        for (name, ty) in retype {
            let column = columns
                .iter_mut()
                .filter_map(|c| c.as_table_mut())
                .find(|c| c.get("name").and_then(|n| n.as_str()) == Some(name))
                .ok_or_else(|| bad(format!("column_types names column '{name}', which '{parent}' does not have")))?;
            column.insert("type".into(), ty.clone());
        }
    }
    Ok(merged)
}

/// A layer of the lake: the folder that holds a dataset's live tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Layer {
    Raw,
    Curated,
    Features,
    Reference,
    Sets,
    /// Operational data (quarantine, DQ metrics, progress, jobs): never mixed into the bar layers.
    Ops,
}

impl Layer {
    pub fn as_str(self) -> &'static str {
        match self {
            Layer::Raw => "raw",
            Layer::Curated => "curated",
            Layer::Features => "features",
            Layer::Reference => "reference",
            Layer::Sets => "sets",
            Layer::Ops => "ops",
        }
    }
}

impl std::fmt::Display for Layer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a dataset's rows are split into partition folders.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Partitioning {
    Date,
    Month,
    Year,
    /// One partition, `all/`: small reference tables (the universe), rewritten whole.
    None,
}

/// Dataset names become folder names: lower-case ASCII, digits and `_`, starting with a letter.
pub fn validate_dataset_name(name: &str) -> Result<()> {
    let reason = if name.is_empty() || name.len() > 64 {
        Some("must be 1 to 64 characters")
    } else if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
        Some("must start with a lower-case letter (a-z)")
    } else if !name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_') {
        Some("may only contain a-z, 0-9 and '_' (no '/', '.', NUL or spaces)")
    } else {
        None
    };
    match reason {
        Some(reason) => Err(Error::InvalidName { kind: "dataset name", value: name.to_string(), reason }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_contracts_parse() {
        let c = Contracts::builtin();
        let bars = c.get("raw_synthetic_bars").unwrap();
        assert_eq!(bars.sort_key, ["symbol", "ts"]);
        assert!(matches!(c.get("nope"), Err(Error::UnknownDataset { .. })));
        let err = c.get("curated_1m_bar").unwrap_err().to_string();
        assert!(err.starts_with("unknown dataset 'curated_1m_bar'; did you mean 'curated_1m_bars'?"), "{err}");
        assert!(matches!(c.get("../x"), Err(Error::InvalidName { .. })));
        // Extended contracts: the parent's columns and partitioning, their own name and types.
        let polygon = c.get("raw_polygon_bars").unwrap();
        let file = c.get("raw_file_bars").unwrap();
        assert_eq!(polygon.columns.len(), file.columns.len());
        assert_eq!(polygon.partitioning, file.partitioning);
        assert_eq!(polygon.columns.iter().find(|c| c.name == "volume").unwrap().data_type, "float64");
        assert_eq!(
            c.get("raw_alpaca_bars").unwrap().columns.iter().find(|c| c.name == "volume").unwrap().data_type,
            "int64"
        );
        assert_eq!(
            c.get("raw_tws_daily_bars").unwrap().partitioning,
            c.get("raw_file_daily_bars").unwrap().partitioning
        );
        // The runbook's name for the curated bars.
        assert_eq!(c.get("curated_tws_1m_bars").unwrap().name, "curated_1m_bars");
    }

    #[test]
    fn extends_errors_name_the_problem() {
        let base = ("base.toml".to_string(), "name = \"b\"\nlayer = \"raw\"\nschema_version = 1\nsort_key = [\"ts\"]\ncolumns = [{ name = \"ts\", type = \"timestamp[us, UTC]\" }]\n".to_string());
        let child = |body: &str| ("child.toml".to_string(), format!("name = \"c\"\n{body}\n"));
        let err = |body: &str| {
            Contracts::from_texts(vec![base.clone(), child(body)]).err().map(|e| e.to_string()).unwrap_or_default()
        };
        assert!(Contracts::from_texts(vec![base.clone(), child("extends = \"b\"")]).is_ok());
        assert!(err("extends = \"zz\"").contains("unknown contract 'zz'"));
        assert!(err("extends = \"b\"\ncolumn_types = { px = \"float64\" }").contains("column 'px'"));
        assert!(err("column_types = { ts = \"int64\" }").contains("needs 'extends'"));
        assert!(err("extends = \"c\"").contains("deeper than"));
    }

    fn contract(version: u32, cols: &str) -> DatasetContract {
        let text = format!(
            "name = \"t\"\nlayer = \"raw\"\nschema_version = {version}\nsort_key = [\"ts\"]\ncolumns = [\n\
             {{ name = \"ts\", type = \"timestamp[us, UTC]\" }},\n{cols}]\n"
        );
        DatasetContract::parse("test", &text).unwrap()
    }

    #[test]
    fn only_nullable_additions_evolve() {
        let v1 = contract(1, "{ name = \"x\", type = \"float64\" },");
        let rec = v1.schema_record();
        assert!(!v1.check_evolution(&rec).unwrap());
        let v2 =
            contract(2, "{ name = \"x\", type = \"float64\" },{ name = \"y\", type = \"int64\", nullable = true },");
        assert!(v2.check_evolution(&rec).unwrap());
        let same_version =
            contract(1, "{ name = \"x\", type = \"float64\" },{ name = \"y\", type = \"int64\", nullable = true },");
        assert!(same_version.check_evolution(&rec).is_err());
        let not_null = contract(2, "{ name = \"x\", type = \"float64\" },{ name = \"y\", type = \"int64\" },");
        assert!(not_null.check_evolution(&rec).is_err());
        let retyped = contract(2, "{ name = \"x\", type = \"int64\" },");
        let err = retyped.check_evolution(&rec).unwrap_err().to_string();
        assert!(err.contains("'x' changed type from float64 to int64"), "{err}");
        let dropped = contract(2, "");
        assert!(dropped.check_evolution(&rec).unwrap_err().to_string().contains("'x' was removed"));
        assert!(v1.check_evolution(&v2.schema_record()).is_err(), "a newer lake schema is refused");
    }

    #[test]
    fn compression_defaults_to_zstd_and_refuses_codecs_readers_lack() {
        use parquet::basic::{Compression, ZstdLevel};
        let with = |line: &str| {
            DatasetContract::parse(
                "c.toml",
                &format!(
                    "name = \"t\"\nlayer = \"raw\"\nschema_version = 1\nsort_key = []\n{line}\ncolumns = [{{ name = \"ts\", type = \"timestamp[us, UTC]\" }}]\n"
                ),
            )
        };
        assert_eq!(with("").unwrap().compression, Compression::ZSTD(ZstdLevel::try_new(3).unwrap()));
        assert_eq!(with("compression = \"lz4_raw\"").unwrap().compression, Compression::LZ4_RAW);
        assert_eq!(
            with("compression = \"zstd(1)\"").unwrap().compression,
            Compression::ZSTD(ZstdLevel::try_new(1).unwrap())
        );
        for refused in ["lz4", "brotli(3)", "zstd(40)", "zstd", "fast"] {
            let err = with(&format!("compression = \"{refused}\"")).unwrap_err().to_string();
            assert!(
                err.contains("c.toml")
                    && err.contains(&format!("unknown compression '{refused}'"))
                    && err.contains("lz4_raw"),
                "{err}"
            );
        }
        // Raw minute bars are written far more than read; the layers researchers read stay zstd.
        let builtin = Contracts::builtin();
        assert_eq!(
            builtin.get("raw_polygon_bars").unwrap().compression,
            Compression::LZ4_RAW,
            "inherited through extends"
        );
        assert!(matches!(builtin.get("curated_1m_bars").unwrap().compression, Compression::ZSTD(_)));
    }

    #[test]
    fn bad_contracts_name_the_problem() {
        let err = DatasetContract::parse("f.toml", "name = \"t\"\nlayer = \"raw\"\nschema_version = 1\nsort_key = []\ncolumns = [{ name = \"ts\", type = \"decimal\" }]\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("f.toml") && err.contains("unknown type 'decimal'"), "{err}");
    }
}
