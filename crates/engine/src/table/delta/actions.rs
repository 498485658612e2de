//! Delta Lake actions as serde types, and how a snapshot becomes them.
//!
//! One Delta version is a file of newline-delimited JSON objects, each holding one action
//! (`{"add": {...}}`). The same objects, decoded with the checkpoint schema, are a checkpoint's rows.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::contract::{ColumnSpec, SchemaRecord};
use crate::error::{Error, Result};
use crate::table::layout::PartitionKey;
use crate::table::manifest::PartitionEntry;

/// The application id of the `txn` action every version carries: its `version` is the snapshot.
pub const APP_ID: &str = "quantlake";

/// One line of a Delta commit file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub enum Action {
    CommitInfo(CommitInfo),
    Protocol(Protocol),
    MetaData(MetaData),
    Txn(Txn),
    Add(Add),
    Remove(Remove),
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Protocol {
    pub min_reader_version: u32,
    pub min_writer_version: u32,
    pub writer_features: Vec<String>,
}

impl Protocol {
    /// Readers need nothing beyond version 1; writers must keep in-commit timestamps.
    pub fn current() -> Self {
        Self { min_reader_version: 1, min_writer_version: 7, writer_features: vec!["inCommitTimestamp".into()] }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Format {
    pub provider: String,
    pub options: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MetaData {
    pub id: String,
    pub name: String,
    pub format: Format,
    pub schema_string: String,
    pub partition_columns: Vec<String>,
    pub configuration: BTreeMap<String, String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Txn {
    pub app_id: String,
    pub version: u64,
    pub last_updated: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Add {
    pub path: String,
    pub partition_values: BTreeMap<String, String>,
    pub size: u64,
    pub modification_time: i64,
    pub data_change: bool,
    pub stats: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Remove {
    pub path: String,
    pub deletion_timestamp: i64,
    pub data_change: bool,
    pub extended_file_metadata: bool,
    pub partition_values: BTreeMap<String, String>,
    pub size: u64,
}

/// The first action of every version. Fields past Delta's own are quantlake's, for `history()`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CommitInfo {
    /// Milliseconds since the epoch; strictly increasing along the log (the in-commit timestamp).
    pub in_commit_timestamp: i64,
    pub timestamp: i64,
    pub operation: String,
    /// Delta readers expect strings here: other JSON values are given as their JSON text.
    pub operation_parameters: BTreeMap<String, String>,
    pub engine_info: String,
    pub is_blind_append: bool,
    pub quantlake: Provenance,
}

/// Where a version comes from in quantlake's own records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The dataset's snapshot (equal to the Delta version).
    pub snapshot_id: u64,
    pub txn_id: String,
    /// The job that wrote it, when the writer named one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job_id: Option<String>,
    /// The stage (multi-dataset commit) it belongs to, and the lake log entry that decided it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stage_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lake_seq: Option<u64>,
    /// Set on an aborted stage's version: it changes no data, and exists so numbers stay aligned.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub aborted: bool,
}

/// A commit file's bytes: one JSON object per line.
pub fn encode_lines(actions: &[Action]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    for a in actions {
        serde_json::to_writer(&mut out, a)?;
        out.push(b'\n');
    }
    Ok(out)
}

/// Parses a commit file; `what` names it in errors.
pub fn decode_lines(bytes: &[u8], what: &str) -> Result<Vec<serde_json::Value>> {
    bytes
        .split(|b| *b == b'\n')
        .filter(|l| !l.iter().all(u8::is_ascii_whitespace))
        .map(|l| {
            serde_json::from_slice(l).map_err(|e| Error::Integrity {
                dataset: what.to_string(),
                reason: format!("Delta log entry is not JSON lines: {e}"),
            })
        })
        .collect()
}

/// A table's partition column: its name and Delta type.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionColumn {
    pub name: &'static str,
    pub delta_type: &'static str,
}

impl PartitionColumn {
    /// The column a folder key (`date`, `month`, `year`) gives.
    pub fn of_key(key: &str) -> Option<Self> {
        Some(match key {
            "date" => PartitionColumn { name: "date", delta_type: "date" },
            "month" => PartitionColumn { name: "month", delta_type: "string" },
            "year" => PartitionColumn { name: "year", delta_type: "integer" },
            _ => return None,
        })
    }
}

/// The partition column the folders of `partitions` spell (`date=`, `month=`, `year=`): a compaction
/// that regroups a dataset changes it. `otherwise` when there are no partitions to tell by; none for
/// unpartitioned datasets (`all`), a mix of layouts (which no committed snapshot has), and when a
/// data column already has that name.
pub fn partition_column<'p>(
    partitions: impl IntoIterator<Item = &'p str>,
    schema: &SchemaRecord,
    otherwise: Option<&PartitionColumn>,
) -> Option<PartitionColumn> {
    let kinds: std::collections::BTreeSet<&str> =
        partitions.into_iter().map(|p| p.split_once('=').map_or("", |(k, _)| k)).collect();
    let column = match kinds.len() {
        0 => otherwise.cloned(),
        1 => kinds.into_iter().next().and_then(PartitionColumn::of_key),
        _ => None,
    };
    column.filter(|c| !schema.columns.iter().any(|s| s.name == c.name))
}

/// The value a partition folder gives its partition column (`date=2024-01-02` -> `2024-01-02`).
fn partition_values(column: Option<&PartitionColumn>, partition: &str) -> BTreeMap<String, String> {
    match (column, PartitionKey::parse(partition)) {
        (Some(c), Ok(_)) => {
            partition.split_once('=').map(|(_, v)| (c.name.to_string(), v.to_string())).into_iter().collect()
        }
        _ => BTreeMap::new(),
    }
}

fn delta_type(spec: &ColumnSpec) -> Result<&'static str> {
    Ok(match spec.data_type.trim() {
        "utf8" | "string" => "string",
        "float64" | "double" => "double",
        "int64" => "long",
        "int32" => "integer",
        "bool" | "boolean" => "boolean",
        "date32" => "date",
        "timestamp[us, UTC]" => "timestamp",
        other => {
            return Err(Error::invalid(format!(
                "column '{}' has type '{other}', which has no Delta Lake type",
                spec.name
            )));
        }
    })
}

/// The table's description: the schema the files were written with (all columns nullable, since
/// older files lack columns added later), with the partition column last. It follows from what the
/// manifest recorded alone, so every writer and every later build describes a version alike.
pub fn metadata(dataset: &str, schema: &SchemaRecord, column: Option<&PartitionColumn>) -> Result<MetaData> {
    let mut fields = schema
        .columns
        .iter()
        .map(|c| {
            Ok(serde_json::json!({
                "name": c.name, "type": delta_type(c)?, "nullable": true,
                "metadata": if c.description.is_empty() { serde_json::json!({}) } else { serde_json::json!({"comment": c.description}) },
            }))
        })
        .collect::<Result<Vec<_>>>()?;
    if let Some(c) = column {
        fields.push(serde_json::json!({"name": c.name, "type": c.delta_type, "nullable": true, "metadata": {}}));
    }
    let schema_string = serde_json::to_string(&serde_json::json!({"type": "struct", "fields": fields}))?;
    Ok(MetaData {
        id: table_id(dataset),
        name: dataset.to_string(),
        format: Format { provider: "parquet".into(), options: BTreeMap::new() },
        schema_string,
        partition_columns: column.iter().map(|c| c.name.to_string()).collect(),
        configuration: BTreeMap::from([
            ("delta.enableInCommitTimestamps".into(), "true".into()),
            ("delta.checkpointInterval".into(), super::CHECKPOINT_INTERVAL.to_string()),
        ]),
    })
}

/// A stable id per dataset, so every writer (and a rebuilt log) gives the table the same one.
fn table_id(dataset: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("quantlake/{dataset}").as_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid().to_string()
}

/// The data file of a partition version, relative to the table root (`_versions/<dataset>/`).
pub fn file_path(e: &PartitionEntry) -> String {
    format!("{}/{}.parquet", e.partition, e.file_id)
}

/// Delta statistics from what the manifest recorded: rows, the time column's range and, for files
/// written with the snapshot's schema, every column's nulls.
fn stats(e: &PartitionEntry, time_column: &str, schema: &SchemaRecord) -> Result<String> {
    let mut stats = serde_json::Map::new();
    stats.insert("numRecords".into(), e.rows.into());
    // Millisecond precision: the minimum rounded down, the maximum up, so data skipping never drops a row.
    let ms = |t: DateTime<Utc>, up: bool| {
        let floor = t.timestamp_millis();
        let millis = if up && !t.timestamp_subsec_micros().is_multiple_of(1000) { floor + 1 } else { floor };
        DateTime::from_timestamp_millis(millis).map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
    };
    if schema.columns.iter().any(|c| c.name == time_column)
        && let (Some(min), Some(max)) = (e.min_ts.and_then(|t| ms(t, false)), e.max_ts.and_then(|t| ms(t, true)))
    {
        stats.insert("minValues".into(), serde_json::json!({ time_column: min }));
        stats.insert("maxValues".into(), serde_json::json!({ time_column: max }));
    }
    // The writer counted every column of its schema and recorded those with nulls; an older file's
    // columns are not known here, so only its recorded counts are given.
    let nulls: serde_json::Map<String, serde_json::Value> = if e.schema_version == schema.version {
        schema
            .columns
            .iter()
            .map(|c| (c.name.clone(), e.null_counts.get(&c.name).copied().unwrap_or(0).into()))
            .collect()
    } else {
        e.null_counts.iter().map(|(k, v)| (k.clone(), (*v).into())).collect()
    };
    stats.insert("nullCount".into(), nulls.into());
    Ok(serde_json::to_string(&stats)?)
}

/// How a version describes its files: with the partition column and the schema of its metaData.
pub struct Files<'a> {
    pub time_column: &'a str,
    pub schema: &'a SchemaRecord,
    pub column: Option<PartitionColumn>,
}

impl Files<'_> {
    pub fn add(&self, e: &PartitionEntry, at: i64) -> Result<Add> {
        Ok(Add {
            path: file_path(e),
            partition_values: partition_values(self.column.as_ref(), &e.partition),
            size: e.bytes,
            modification_time: at,
            data_change: true,
            stats: stats(e, self.time_column, self.schema)?,
        })
    }

    /// `old` as the previous version described it (its partition column may differ from this one's).
    pub fn remove(old: &PartitionEntry, old_column: Option<&PartitionColumn>, at: i64) -> Remove {
        Remove {
            path: file_path(old),
            deletion_timestamp: at,
            data_change: true,
            extended_file_metadata: true,
            partition_values: partition_values(old_column, &old.partition),
            size: old.bytes,
        }
    }
}

/// `operationParameters` as strings.
pub fn parameters(p: &BTreeMap<String, serde_json::Value>) -> BTreeMap<String, String> {
    p.iter()
        .map(|(k, v)| {
            (
                k.clone(),
                match v {
                    serde_json::Value::String(s) => s.clone(),
                    other => other.to_string(),
                },
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn actions_serialize_as_the_protocol_spells_them() {
        let lines = encode_lines(&[
            Action::Protocol(Protocol::current()),
            Action::Txn(Txn { app_id: APP_ID.into(), version: 3, last_updated: 5 }),
        ])
        .unwrap();
        let text = String::from_utf8(lines).unwrap();
        assert_eq!(
            text,
            "{\"protocol\":{\"minReaderVersion\":1,\"minWriterVersion\":7,\"writerFeatures\":[\"inCommitTimestamp\"]}}\n\
             {\"txn\":{\"appId\":\"quantlake\",\"version\":3,\"lastUpdated\":5}}\n"
        );
        assert_eq!(decode_lines(text.as_bytes(), "d").unwrap().len(), 2);
        assert_eq!(table_id("a"), table_id("a"));
        assert_ne!(table_id("a"), table_id("b"));
    }

    #[test]
    fn the_partition_column_is_the_folders_key() {
        let col = |n: &str| ColumnSpec {
            name: n.into(),
            data_type: "utf8".into(),
            nullable: true,
            description: String::new(),
        };
        let schema = SchemaRecord { version: 1, columns: vec![col("symbol")] };
        let of = |keys: &[&str], otherwise| partition_column(keys.iter().copied(), &schema, otherwise).map(|c| c.name);
        assert_eq!(of(&["date=2024-01-02", "date=2024-01-03"], None), Some("date"));
        assert_eq!(of(&["month=2024-01"], None), Some("month"));
        assert_eq!(of(&["all"], None), None, "unpartitioned");
        assert_eq!(of(&["date=2024-01-31", "month=2024-02"], None), None, "a mix has none");
        let month = PartitionColumn::of_key("month");
        assert_eq!(of(&[], month.as_ref()), Some("month"), "no partitions: the previous column");
        let clash = SchemaRecord { version: 1, columns: vec![col("date")] };
        assert_eq!(partition_column(["date=2024-01-02"], &clash, None), None, "a data column has the name");
        assert_eq!(
            partition_values(PartitionColumn::of_key("year").as_ref(), "year=2024"),
            BTreeMap::from([("year".to_string(), "2024".to_string())])
        );
    }

    #[test]
    fn stats_round_the_time_range_outwards() {
        let t = |us: i64| DateTime::from_timestamp_micros(us);
        let e = PartitionEntry {
            partition: "date=2024-01-02".into(),
            file_id: "f".into(),
            snapshot_id: 1,
            rows: 3,
            bytes: 10,
            sha256: String::new(),
            e_tag: None,
            min_ts: t(1_704_205_800_000_500),
            max_ts: t(1_704_229_140_000_500),
            symbols: 1,
            schema_version: 2,
            null_counts: BTreeMap::from([("vwap".to_string(), 2)]),
            quality: None,
        };
        let col = |n: &str| ColumnSpec {
            name: n.into(),
            data_type: "float64".into(),
            nullable: true,
            description: String::new(),
        };
        let schema = SchemaRecord { version: 2, columns: vec![col("ts"), col("vwap"), col("close")] };
        let s: serde_json::Value = serde_json::from_str(&stats(&e, "ts", &schema).unwrap()).unwrap();
        assert_eq!(s["minValues"]["ts"], "2024-01-02T14:30:00.000Z");
        assert_eq!(s["maxValues"]["ts"], "2024-01-02T20:59:00.001Z");
        assert_eq!(s["nullCount"], serde_json::json!({"ts": 0, "vwap": 2, "close": 0}));
        let older = SchemaRecord { version: 3, ..schema };
        let s: serde_json::Value = serde_json::from_str(&stats(&e, "ts", &older).unwrap()).unwrap();
        assert_eq!(s["nullCount"], serde_json::json!({"vwap": 2}), "an older file's other columns are not known");
    }
}
