//! Delta checkpoints: a version's whole state (protocol, metaData, the txn, one `add` per file) as one
//! Parquet file, so readers start there instead of replaying every commit.
//!
//! The rows are the same serde actions the commit files hold, decoded into the checkpoint schema by
//! `arrow-json` and written with the lake's Parquet writer.

use std::sync::Arc;

use arrow::datatypes::{DataType, Field, Fields, Schema};
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use serde::{Deserialize, Serialize};

use super::actions::{Action, encode_lines};
use crate::error::Result;

fn map() -> DataType {
    let entries =
        Fields::from(vec![Field::new("key", DataType::Utf8, false), Field::new("value", DataType::Utf8, true)]);
    DataType::Map(Arc::new(Field::new("key_value", DataType::Struct(entries), false)), false)
}

fn strings() -> DataType {
    DataType::List(Arc::new(Field::new("element", DataType::Utf8, true)))
}

fn group(name: &str, fields: Vec<Field>) -> Field {
    Field::new(name, DataType::Struct(Fields::from(fields)), true)
}

/// The checkpoint schema of the protocol's "Checkpoint Schema" section, for the actions quantlake writes.
pub fn schema() -> Arc<Schema> {
    let s = |n: &str| Field::new(n, DataType::Utf8, true);
    let long = |n: &str| Field::new(n, DataType::Int64, true);
    let int = |n: &str| Field::new(n, DataType::Int32, true);
    let flag = |n: &str| Field::new(n, DataType::Boolean, true);
    Arc::new(Schema::new(vec![
        group("txn", vec![s("appId"), long("version"), long("lastUpdated")]),
        group(
            "add",
            vec![
                s("path"),
                Field::new("partitionValues", map(), true),
                long("size"),
                long("modificationTime"),
                flag("dataChange"),
                s("stats"),
                Field::new("tags", map(), true),
            ],
        ),
        group(
            "remove",
            vec![
                s("path"),
                long("deletionTimestamp"),
                flag("dataChange"),
                flag("extendedFileMetadata"),
                Field::new("partitionValues", map(), true),
                long("size"),
            ],
        ),
        group(
            "metaData",
            vec![
                s("id"),
                s("name"),
                s("description"),
                group("format", vec![s("provider"), Field::new("options", map(), true)]),
                s("schemaString"),
                Field::new("partitionColumns", strings(), true),
                Field::new("configuration", map(), true),
                long("createdTime"),
            ],
        ),
        group(
            "protocol",
            vec![
                int("minReaderVersion"),
                int("minWriterVersion"),
                Field::new("readerFeatures", strings(), true),
                Field::new("writerFeatures", strings(), true),
            ],
        ),
    ]))
}

/// A checkpoint file of `actions` (no commitInfo: checkpoints hold state, not history).
pub fn encode(actions: &[Action]) -> Result<Bytes> {
    let lines = encode_lines(actions)?;
    let schema = schema();
    let reader = arrow::json::ReaderBuilder::new(schema.clone()).with_batch_size(8192).build(lines.as_slice())?;
    let mut buf = Vec::new();
    let mut writer = ArrowWriter::try_new(&mut buf, schema, None)?;
    for batch in reader {
        writer.write(&batch?)?;
    }
    writer.close()?;
    Ok(Bytes::from(buf))
}

/// `_delta_log/_last_checkpoint`: where readers start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct LastCheckpoint {
    pub version: u64,
    /// Rows (actions) in the checkpoint.
    pub size: u64,
    pub size_in_bytes: u64,
    pub num_of_add_files: u64,
}

/// The rows of a checkpoint file, for checks (`verify`).
pub fn rows(bytes: Bytes) -> Result<usize> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    Ok(reader.metadata().file_metadata().num_rows() as usize)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::table::delta::actions::{Add, Protocol, Txn};
    use arrow::array::{Array, AsArray};
    use std::collections::BTreeMap;

    #[test]
    fn a_checkpoint_holds_one_action_per_row() {
        let add = Add {
            path: "date=2024-01-02/f.parquet".into(),
            partition_values: BTreeMap::from([("date".to_string(), "2024-01-02".to_string())]),
            size: 10,
            modification_time: 1,
            data_change: true,
            stats: "{\"numRecords\":3}".into(),
        };
        let bytes = encode(&[
            Action::Protocol(Protocol::current()),
            Action::Txn(Txn { app_id: "quantlake".into(), version: 10, last_updated: 1 }),
            Action::Add(add),
        ])
        .unwrap();
        assert_eq!(rows(bytes.clone()).unwrap(), 3);
        let batches: Vec<_> = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
            .unwrap()
            .build()
            .unwrap()
            .collect::<std::result::Result<_, _>>()
            .unwrap();
        let adds = batches[0].column_by_name("add").unwrap().as_struct();
        assert_eq!(adds.null_count(), 2);
        let paths = adds.column_by_name("path").unwrap().as_string::<i32>();
        assert_eq!(paths.value(2), "date=2024-01-02/f.parquet");
        let values = adds.column_by_name("partitionValues").unwrap().as_map();
        assert_eq!(values.value(2).column(1).as_string::<i32>().value(0), "2024-01-02");
    }
}
