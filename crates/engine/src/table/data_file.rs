//! Partition data files: how a partition's rows become one Parquet file, and back.
//!
//! Files are what glob readers see, so their shape is part of the interface: rows sorted by the
//! contract's sort key (symbol, ts), the contract's codec, page-level statistics with the page index,
//! row groups small enough that a one-symbol query skips most of them, dictionary encoding only where
//! it pays (strings).

use std::collections::HashSet;
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take};
use arrow::datatypes::{DataType, SchemaRef, TimestampMicrosecondType};
use bytes::Bytes;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::Encoding;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use sha2::{Digest, Sha256};

use crate::contract::DatasetContract;
use crate::error::Result;

/// An encoded partition file and the facts the manifest records about it.
#[derive(Debug, Clone)]
pub struct EncodedFile {
    pub bytes: Bytes,
    pub rows: u64,
    pub sha256: String,
    /// Range of the contract's partition column, in microseconds since the epoch (UTC).
    pub min_ts: Option<i64>,
    pub max_ts: Option<i64>,
    /// Distinct values of the `symbol` column, when the dataset has one.
    pub symbols: u64,
    /// Nulls per column, for the columns that have any.
    pub null_counts: std::collections::BTreeMap<String, u64>,
}

/// Rows per data page: the page index then lets a reader skip within a row group too.
const PAGE_ROWS: usize = 2_048;

fn writer_properties(contract: &DatasetContract) -> WriterProperties {
    let mut props = WriterProperties::builder()
        .set_compression(contract.compression)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(contract.row_group_rows))
        .set_data_page_row_count_limit(PAGE_ROWS)
        .set_dictionary_enabled(false)
        .set_created_by(format!("quantlake {}", env!("CARGO_PKG_VERSION")))
        .set_key_value_metadata(Some(vec![
            KeyValue::new("quantlake.dataset".into(), contract.name.clone()),
            KeyValue::new("quantlake.schema_version".into(), contract.schema_version.to_string()),
        ]));
    for c in &contract.columns {
        let path = ColumnPath::from(c.name.as_str());
        props = match c.data_type.as_str() {
            "utf8" => props.set_column_dictionary_enabled(path, true),
            // Bytes of equal significance together: zstd then finds the runs in exponents and leading
            // mantissa bytes that interleaved floats hide.
            "float64" => props.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT),
            // Sorted times within a symbol, or one ingest time for the whole file: deltas are small.
            t if t.starts_with("timestamp") => props.set_column_encoding(path, Encoding::DELTA_BINARY_PACKED),
            _ => props,
        };
    }
    props.build()
}

/// Sorts rows by the contract's sort key and encodes them as one Parquet file.
pub fn encode(contract: &DatasetContract, batches: &[RecordBatch]) -> Result<EncodedFile> {
    let schema = contract.arrow_schema();
    let batch = concat_batches(&schema, batches)?;
    let batch = sort(contract, &batch)?;
    // About a quarter of 8 bytes per value, from the rows (a sliced or kept column's memory size would
    // count its whole parent buffer).
    let mut buf = Vec::with_capacity(batch.num_rows() * batch.num_columns() * 2 + 1024);
    let mut writer = ArrowWriter::try_new(&mut buf, schema, Some(writer_properties(contract)))?;
    writer.write(&batch)?;
    writer.close()?;
    let (min_ts, max_ts) = ts_range(&batch, &contract.partition_column);
    Ok(EncodedFile {
        rows: batch.num_rows() as u64,
        sha256: sha256_hex(&buf),
        min_ts,
        max_ts,
        symbols: distinct_symbols(&batch, contract.sort_key.first().is_some_and(|k| k == "symbol")),
        null_counts: batch
            .schema()
            .fields()
            .iter()
            .zip(batch.columns())
            .filter(|(_, c)| c.null_count() > 0)
            .map(|(f, c)| (f.name().clone(), c.null_count() as u64))
            .collect(),
        bytes: Bytes::from(buf),
    })
}

/// Decodes a whole file (the lake's files are one partition each, small enough to hold).
pub fn decode(bytes: Bytes) -> Result<Vec<RecordBatch>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes)?.with_batch_size(65_536).build()?;
    Ok(reader.collect::<std::result::Result<Vec<_>, _>>()?)
}

/// Decodes only the columns of `schema` (in its order, cast to its types; a column the file lacks, as
/// an older schema version's file may, comes back null): a reader that needs few columns skips the
/// pages of the others. One batch for the whole file (a partition, held whole anyway): a reader
/// that needs its rows in one piece copies nothing more.
pub fn decode_columns(bytes: Bytes, schema: &SchemaRef) -> Result<Vec<RecordBatch>> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0).max(1);
    let parquet_schema = builder.parquet_schema();
    let leaves: Vec<usize> = schema
        .fields()
        .iter()
        .filter_map(|f| {
            parquet_schema.columns().iter().position(|c| matches!(c.path().parts(), [only] if only == f.name()))
        })
        .collect();
    let mask = ProjectionMask::leaves(parquet_schema, leaves);
    let reader = builder.with_projection(mask).with_batch_size(rows).build()?;
    reader.map(|batch| project(&batch?, schema)).collect()
}

/// `batch`'s columns of `schema`, in its order and types; a column the batch lacks (a file of an older
/// schema version) comes back null.
pub fn project(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) if c.data_type() == f.data_type() => Ok(c.clone()),
            Some(c) => Ok(arrow::compute::cast(c, f.data_type())?),
            None => Ok(arrow::array::new_null_array(f.data_type(), batch.num_rows())),
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(schema.clone(), columns, &options)?)
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn sort(contract: &DatasetContract, batch: &RecordBatch) -> Result<RecordBatch> {
    if batch.num_rows() < 2 || contract.sort_key.is_empty() {
        return Ok(batch.clone());
    }
    let columns: Vec<SortColumn> = contract
        .sort_key
        .iter()
        .filter_map(|k| batch.column_by_name(k))
        .map(|values| SortColumn { values: values.clone(), options: None })
        .collect();
    // Stages usually hand rows over in order already (curation does): checking is one pass, sorting is
    // a lexsort and a copy of every column.
    if is_sorted(&columns)? {
        return Ok(batch.clone());
    }
    let indices = match symbol_ts_order(&columns) {
        Some(indices) => indices,
        None => lexsort_to_indices(&columns, None)?,
    };
    // A column holding one value in every row (a raw file's `source`, `job_id`, `ingested_at`) reads the
    // same in any order: kept as it is instead of gathered row by row.
    let columns = batch
        .columns()
        .iter()
        .map(|c| if is_constant(c.as_ref()) { Ok(c.clone()) } else { take(c.as_ref(), &indices, None) })
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(batch.schema(), columns)?)
}

/// Whether every row of `array` holds the same non-null value (checked for strings and 64-bit
/// numbers, the types of constant columns; `false` for others). Stops at the first difference.
fn is_constant(array: &dyn Array) -> bool {
    if array.len() < 2 || array.null_count() > 0 {
        return false;
    }
    if let Some(s) = array.as_string_opt::<i32>() {
        let offsets = s.value_offsets();
        let width = offsets[1] - offsets[0];
        if !offsets.windows(2).all(|w| w[1] - w[0] == width) {
            return false;
        }
        // Equal-width values are all equal exactly when the bytes repeat with that period.
        let bytes = &s.value_data()[offsets[0] as usize..offsets[offsets.len() - 1] as usize];
        let width = width as usize;
        return bytes[width..] == bytes[..bytes.len() - width];
    }
    match array.data_type() {
        DataType::Int64 | DataType::Timestamp(_, _) | DataType::Float64 => {
            // Compared as bits (a float value, NaN included, is one bit pattern). A valid 64-bit
            // primitive array's buffer is 8-byte aligned, so it reads as u64s.
            let data = array.to_data();
            let values = &data.buffer::<u64>(0)[..array.len()];
            values.iter().all(|v| *v == values[0])
        }
        _ => false,
    }
}

/// The sort order for the lake's usual key, a non-null utf8 symbol then a timestamp, without a
/// generic comparator per pair: each symbol is ranked once, rows are bucketed by rank in one stable
/// pass, and only a symbol whose rows are not already in time order is sorted by (ts, row). Input in
/// arrival order (time, then symbol) needs no sort at all. Ties keep row order, so duplicate bars
/// always come out the same way.
fn symbol_ts_order(columns: &[SortColumn]) -> Option<arrow::array::UInt32Array> {
    let [symbol, ts] = columns else { return None };
    let symbol = symbol.values.as_string_opt::<i32>().filter(|s| s.null_count() == 0)?;
    let ts = ts.values.as_primitive_opt::<TimestampMicrosecondType>().filter(|t| t.null_count() == 0)?;
    let ts = ts.values();
    // Row numbers are u32 take indices.
    u32::try_from(symbol.len()).ok()?;
    // One lookup per row: ids in order of first appearance, then mapped to ranks.
    let mut ids: foldhash::HashMap<&str, u32> = foldhash::HashMap::default();
    let row_ids: Vec<u32> = symbol
        .iter()
        .flatten()
        .map(|s| {
            let next = ids.len() as u32;
            *ids.entry(s).or_insert(next)
        })
        .collect();
    let mut names: Vec<(&str, u32)> = ids.into_iter().collect();
    names.sort_unstable();
    let mut rank = vec![0u32; names.len()];
    for (r, (_, id)) in names.iter().enumerate() {
        rank[*id as usize] = r as u32;
    }
    // Where each rank's rows start, then a stable scatter of the rows into their buckets.
    let mut next = vec![0usize; names.len() + 1];
    for id in &row_ids {
        next[rank[*id as usize] as usize + 1] += 1;
    }
    for r in 1..next.len() {
        next[r] += next[r - 1];
    }
    let bounds = next.clone();
    let mut order = vec![0u32; row_ids.len()];
    for (row, id) in row_ids.iter().enumerate() {
        let slot = &mut next[rank[*id as usize] as usize];
        order[*slot] = row as u32;
        *slot += 1;
    }
    for w in bounds.windows(2) {
        let run = &mut order[w[0]..w[1]];
        if !run.windows(2).all(|p| ts[p[0] as usize] <= ts[p[1] as usize]) {
            run.sort_unstable_by_key(|&row| (ts[row as usize], row));
        }
    }
    Some(order.into())
}

/// Whether the rows are in ascending order of `columns` (nulls first, as `lexsort_to_indices` sorts).
fn is_sorted(columns: &[SortColumn]) -> Result<bool> {
    let comparators = columns
        .iter()
        .map(|c| arrow::array::make_comparator(c.values.as_ref(), c.values.as_ref(), c.options.unwrap_or_default()))
        .collect::<std::result::Result<Vec<_>, _>>()?;
    let rows = columns.first().map_or(0, |c| c.values.len());
    Ok((1..rows).all(|i| comparators.iter().map(|cmp| cmp(i - 1, i)).find(|o| o.is_ne()).is_none_or(|o| o.is_lt())))
}

fn ts_range(batch: &RecordBatch, column: &str) -> (Option<i64>, Option<i64>) {
    let Some(col) = batch.column_by_name(column) else { return (None, None) };
    let Some(ts) = col.as_primitive_opt::<TimestampMicrosecondType>() else { return (None, None) };
    (arrow::compute::min(ts), arrow::compute::max(ts))
}

fn distinct_symbols(batch: &RecordBatch, sorted_by_symbol: bool) -> u64 {
    let Some(col) = batch.column_by_name("symbol") else { return 0 };
    match col.data_type() {
        DataType::Utf8 if sorted_by_symbol => {
            // Sorted by symbol first: counting value changes is enough.
            let s = col.as_string::<i32>();
            let mut last = None;
            s.iter().flatten().filter(|v| last.replace(*v) != Some(*v)).count() as u64
        }
        DataType::Utf8 => col.as_string::<i32>().iter().flatten().collect::<HashSet<_>>().len() as u64,
        _ => 0,
    }
}

/// The distinct symbols in some batches.
pub fn symbols_in(batches: &[RecordBatch]) -> HashSet<String> {
    let mut out = HashSet::new();
    for b in batches {
        if let Some(col) = b.column_by_name("symbol") {
            // Rows come in runs of a symbol: look up each run once, and allocate only new symbols.
            let mut last = None;
            for s in col.as_string::<i32>().iter().flatten() {
                if last != Some(s) && !out.contains(s) {
                    out.insert(s.to_string());
                }
                last = Some(s);
            }
        }
    }
    out
}

/// Adds all-null columns for any contract column a batch lacks (an older schema version's file).
pub fn conform(contract: &DatasetContract, batch: &RecordBatch) -> Result<RecordBatch> {
    let schema = contract.arrow_schema();
    if batch.schema().fields().len() == schema.fields().len() {
        return Ok(batch.clone());
    }
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => c.clone(),
            None => arrow::array::new_null_array(f.data_type(), batch.num_rows()),
        })
        .collect();
    Ok(RecordBatch::try_new(Arc::clone(&schema), columns)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Contracts;
    use arrow::compute::take_record_batch;
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn bars(contract: &DatasetContract, symbols: &[&str], n: usize) -> RecordBatch {
        use arrow::array::*;
        let rows: Vec<(String, i64)> = symbols
            .iter()
            .rev()
            .flat_map(|s| (0..n as i64).rev().map(move |i| (s.to_string(), 1_700_000_000_000_000 + i * 60_000_000)))
            .collect();
        let len = rows.len();
        let f = |v: f64| Arc::new(Float64Array::from(vec![v; len])) as ArrayRef;
        RecordBatch::try_new(
            contract.arrow_schema(),
            vec![
                Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0.as_str()))),
                Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1)).with_timezone("UTC")),
                f(1.0),
                f(2.0),
                f(0.5),
                f(1.5),
                Arc::new(Int64Array::from(vec![100; len])),
                Arc::new(Float64Array::from(vec![None; len])),
                Arc::new(Int64Array::from(vec![None; len])),
                Arc::new(StringArray::from(vec!["test"; len])),
                Arc::new(TimestampMicrosecondArray::from(vec![0; len]).with_timezone("UTC")),
                Arc::new(StringArray::from(vec!["job"; len])),
            ],
        )
        .unwrap()
    }

    #[test]
    fn sorted_input_is_recognized() {
        use arrow::array::{Int64Array, StringArray};
        let col = |s: Vec<&str>, t: Vec<i64>| {
            [
                SortColumn { values: Arc::new(StringArray::from(s)), options: None },
                SortColumn { values: Arc::new(Int64Array::from(t)), options: None },
            ]
        };
        assert!(is_sorted(&col(vec!["A", "A", "B"], vec![1, 2, 0])).unwrap());
        assert!(is_sorted(&col(vec!["A", "A"], vec![1, 1])).unwrap(), "equal keys are in order");
        assert!(!is_sorted(&col(vec!["A", "A", "B"], vec![2, 1, 0])).unwrap());
        assert!(!is_sorted(&col(vec!["B", "A"], vec![0, 1])).unwrap());
    }

    #[test]
    fn the_symbol_ts_order_is_lexsorts() {
        use arrow::array::{StringArray, TimestampMicrosecondArray};
        use rand::{RngExt, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let names = ["MSFT", "AAPL", "A", "AA", "BRK.B", "zz"];
        let n = 5_000;
        let symbols: Vec<&str> = (0..n).map(|_| names[rng.random_range(0..names.len())]).collect();
        // Few distinct times, so ties must keep row order like the stable lexsort.
        let ts: Vec<i64> = (0..n).map(|_| rng.random_range(0..50) * 60_000_000).collect();
        let columns = [
            SortColumn { values: Arc::new(StringArray::from(symbols)), options: None },
            SortColumn { values: Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC")), options: None },
        ];
        let fast = symbol_ts_order(&columns).unwrap();
        let slow = lexsort_to_indices(&columns, None).unwrap();
        let key = |i: u32| {
            (
                columns[0].values.as_string::<i32>().value(i as usize),
                columns[1].values.as_primitive::<TimestampMicrosecondType>().value(i as usize),
            )
        };
        let (fast_keys, slow_keys): (Vec<_>, Vec<_>) =
            (fast.values().iter().map(|i| key(*i)).collect(), slow.values().iter().map(|i| key(*i)).collect());
        assert_eq!(fast_keys, slow_keys);
        // Ties keep row order, so equal keys (duplicate bars) always come out the same way.
        assert!(fast.values().windows(2).all(|w| key(w[0]) != key(w[1]) || w[0] < w[1]));
    }

    #[test]
    fn arrival_order_is_bucketed_without_a_sort() {
        use arrow::array::{StringArray, TimestampMicrosecondArray};
        // Minute by minute, every symbol (a vendor's arrival order), with a duplicate bar; then one
        // late bar of AAPL, which makes AAPL's rows out of time order.
        let names = ["MSFT", "AAPL", "BRK.B", "A"];
        let mut rows: Vec<(&str, i64)> =
            (0..300).flat_map(|m| names.iter().map(move |s| (*s, m * 60_000_000))).collect();
        rows.insert(9, rows[8]);
        rows.push(("AAPL", 150 * 60_000_000 + 1));
        let columns = [
            SortColumn { values: Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))), options: None },
            SortColumn {
                values: Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.1)).with_timezone("UTC"),
                ),
                options: None,
            },
        ];
        let order = symbol_ts_order(&columns).unwrap();
        let key = |i: u32| rows[i as usize];
        let mut expected: Vec<u32> = (0..rows.len() as u32).collect();
        expected.sort_by_key(|i| (key(*i), *i));
        assert_eq!(order.values().to_vec(), expected);
    }

    #[test]
    fn constant_columns_are_recognized_and_kept_through_the_sort() {
        use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
        let strings = |v: &[&str]| StringArray::from(v.to_vec());
        assert!(is_constant(&strings(&["job-1", "job-1", "job-1"])));
        assert!(is_constant(&strings(&["", "", ""])));
        assert!(!is_constant(&strings(&["job-1", "job-1", "job-2"])));
        assert!(!is_constant(&strings(&["ab", "ab", "a"])));
        // Same bytes overall, different cuts.
        assert!(!is_constant(&strings(&["aa", "a", "a"])));
        assert!(!is_constant(&StringArray::from(vec![Some("x"), None, Some("x")])));
        assert!(is_constant(&strings(&["y", "x", "x", "x", "z"]).slice(1, 3)));
        assert!(!is_constant(&strings(&["x"])));
        assert!(is_constant(&TimestampMicrosecondArray::from(vec![7; 5]).with_timezone("UTC")));
        assert!(!is_constant(&Int64Array::from(vec![7, 7, 7, 8])));
        assert!(is_constant(&Int64Array::from(vec![1, 7, 7, 7, 2]).slice(1, 3)));
        assert!(!is_constant(&Int64Array::from(vec![1, 7, 7, 7, 2]).slice(1, 4)));
        assert!(is_constant(&Float64Array::from(vec![f64::NAN; 3])));
        assert!(!is_constant(&Float64Array::from(vec![0.0, -0.0])));

        // Arrival order (time, then symbol) with constant columns: the sorted file holds the rows of
        // a full gather.
        let contract = Contracts::builtin().get("raw_synthetic_bars").unwrap();
        let batch = bars(&contract, &["MSFT", "AAPL", "ZZZ"], 50);
        let arrival = take_record_batch(
            &batch,
            &arrow::array::UInt32Array::from_iter_values((0..50).flat_map(|i| [i, 50 + i, 100 + i])),
        )
        .unwrap();
        let sorted = sort(&contract, &arrival).unwrap();
        let gathered = take_record_batch(
            &arrival,
            &lexsort_to_indices(
                &[
                    SortColumn { values: arrival.column(0).clone(), options: None },
                    SortColumn { values: arrival.column(1).clone(), options: None },
                ],
                None,
            )
            .unwrap(),
        )
        .unwrap();
        assert_eq!(sorted, gathered);
    }

    #[test]
    fn files_are_sorted_in_the_contracts_codec_with_page_index_and_small_row_groups() {
        let contract = Contracts::builtin().get("raw_synthetic_bars").unwrap();
        let batch = bars(&contract, &["MSFT", "AAPL", "ZZZ"], 10_000);
        let file = encode(&contract, &[batch]).unwrap();
        assert_eq!(file.rows, 30_000);
        assert_eq!(file.symbols, 3);
        assert_eq!(
            file.null_counts,
            std::collections::BTreeMap::from([("trade_count".to_string(), 30_000), ("vwap".to_string(), 30_000)])
        );
        assert_eq!(file.sha256, sha256_hex(&file.bytes));
        let reader = SerializedFileReader::new(file.bytes.clone()).unwrap();
        let meta = reader.metadata();
        assert_eq!(meta.num_row_groups(), 2, "16384-row groups");
        let rg = meta.row_group(0);
        assert!(rg.columns().iter().all(|c| c.compression() == contract.compression), "the contract's codec");
        assert!(rg.column(0).column_index_offset().is_some(), "page index written");
        let back = decode(file.bytes).unwrap();
        let batch = concat_batches(&back[0].schema(), &back).unwrap();
        let sym = batch.column(0).as_string::<i32>();
        let ts = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        assert_eq!(sym.value(0), "AAPL");
        assert_eq!(sym.value(29_999), "ZZZ");
        assert!(ts.value(0) < ts.value(1), "ts ascending within a symbol");
        assert_eq!(
            batch.schema().field(1).data_type(),
            &DataType::Timestamp(arrow::datatypes::TimeUnit::Microsecond, Some("UTC".into()))
        );
    }

    #[test]
    fn some_columns_decode_in_the_order_asked() {
        use arrow::datatypes::{Field, Schema};
        let contract = Contracts::builtin().get("raw_synthetic_bars").unwrap();
        let file = encode(&contract, &[bars(&contract, &["MSFT", "AAPL"], 100)]).unwrap();
        let full = contract.arrow_schema();
        let schema: SchemaRef = Arc::new(Schema::new(vec![
            full.field_with_name("close").unwrap().clone(),
            full.field_with_name("symbol").unwrap().clone(),
            Field::new("added_later", DataType::Int32, true),
        ]));
        let back = decode_columns(file.bytes, &schema).unwrap();
        let batch = concat_batches(&schema, &back).unwrap();
        assert_eq!(batch.num_rows(), 200);
        assert_eq!(batch.column(1).as_string::<i32>().value(0), "AAPL");
        assert_eq!(batch.column(0).as_primitive::<arrow::datatypes::Float64Type>().value(0), 1.5);
        assert_eq!(batch.column(2).null_count(), 200, "a column the file lacks comes back null");
    }
}
