//! `get_curated_bars`: curated bars of some symbols over some sessions, at 1m or resampled within
//! sessions (5m, 15m, 30m, 1h, 1d; SQL in `resample.sql`), at the latest or any earlier snapshot, as
//! stored or back-adjusted for splits (and dividends) at read time: the stored files never change.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::bars::Frequency;
use crate::error::{Error, Result};
use crate::query::QueryEngine;
use crate::reference::corporate_actions::{Adjustment, AdjustmentFactors};
use crate::symbol::Symbol;
use crate::table::AsOf;
use crate::table::layout::PartitionKey;
use crate::table::pruned::SymbolRows;
use crate::table::{Lake, PartitionEntry};
use arrow::array::{AsArray, Date32Array, RecordBatch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;

const RESAMPLE_SQL: &str = include_str!("resample.sql");

/// What to read.
#[derive(Debug, Clone)]
pub struct BarsRequest {
    pub symbols: Vec<Symbol>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub frequency: Frequency,
    /// 1m only: also the extended-hours bars (resampled bars are regular-session only).
    pub extended_hours: bool,
    /// Back-adjustment of prices (open, high, low, close, vwap) and volume; `None` (the default) gives
    /// the stored prices. Factors come from `reference_corporate_actions` at the same `as_of`.
    pub adjust: Adjustment,
}

/// Curated bars for `request`, sorted by (symbol, ts). One-minute bars carry curation's flags;
/// resampled bars carry `minutes`, `filled_minutes` and `has_outlier`. `ts` is the bar's first minute.
///
/// One-minute bars are read natively: only the pages of the partition files that can hold the
/// symbols are fetched and decoded ([`Dataset::read_symbols`]), no DuckDB. Resampling is SQL (DuckDB).
pub async fn get_curated_bars(lake: &Lake, request: &BarsRequest, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
    check(request)?;
    let batches = match request.frequency {
        Frequency::M1 => read_minutes(lake, request, as_of).await?,
        _ => read_sql(lake, request, as_of).await?,
    };
    adjust(lake, request, as_of, batches).await
}

impl BarsRequest {
    /// [`get_curated_bars`] with every frequency through DuckDB SQL: the reference the native
    /// one-minute read is tested and benchmarked against.
    #[doc(hidden)]
    pub async fn read_with_sql(&self, lake: &Lake, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
        check(self)?;
        let batches = read_sql(lake, self, as_of).await?;
        adjust(lake, self, as_of, batches).await
    }
}

fn check(request: &BarsRequest) -> Result<()> {
    if request.end < request.start {
        return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
    }
    if request.symbols.is_empty() {
        return Err(Error::invalid("no symbols"));
    }
    Ok(())
}

async fn read_sql(lake: &Lake, request: &BarsRequest, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
    let filter = format!(
        "symbol IN ({}) AND date BETWEEN DATE '{}' AND DATE '{}'",
        crate::query::sql_strings(&request.symbols),
        request.start,
        request.end
    );
    let sql = match request.frequency {
        Frequency::M1 => format!(
            "SELECT {} \
             FROM {DATASET} WHERE {filter}{} ORDER BY symbol, ts",
            M1_COLUMNS.join(", "),
            if request.extended_hours { "" } else { " AND is_rth" }
        ),
        f => super::fill_template(RESAMPLE_SQL, &[("filter", filter), ("minutes", f.minutes().to_string())])?,
    };
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    tokio::task::block_in_place(|| engine.query(&sql))
}

async fn adjust(
    lake: &Lake,
    request: &BarsRequest,
    as_of: &AsOf,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    if request.adjust == Adjustment::None {
        return Ok(batches);
    }
    let factors = AdjustmentFactors::load(lake, &request.symbols, as_of).await?;
    factors.check(&request.symbols, request.start, request.adjust)?;
    tokio::task::block_in_place(|| batches.iter().map(|b| factors.adjust_batch(b, request.adjust)).collect())
}

const DATASET: &str = "curated_1m_bars";

/// The one-minute columns, in output order (`date` is the partition's, as the SQL views' hive column).
const M1_COLUMNS: [&str; 15] = [
    "symbol",
    "ts",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "vwap",
    "trade_count",
    "source",
    "is_rth",
    "is_filled",
    "is_outlier",
    "minute_idx",
    "date",
];

/// One-minute bars without SQL: the snapshot's partitions in the range (resolved exactly as the SQL
/// views resolve `as_of`), the symbols' pages of each, then the rows in (symbol, ts) order.
async fn read_minutes(lake: &Lake, request: &BarsRequest, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
    as_of.check_datasets(lake)?;
    let ds = lake.dataset(DATASET)?;
    let state = ds.state_as_of(as_of, &lake.view().await?).await?;
    let partitions: Vec<PartitionEntry> = state
        .partitions
        .values()
        .filter(|e| matches!(PartitionKey::parse(&e.partition), Ok(PartitionKey::Date(d)) if d >= request.start && d <= request.end))
        .cloned()
        .collect();
    let symbols: BTreeSet<Symbol> = request.symbols.iter().cloned().collect();
    let stored = &M1_COLUMNS[..M1_COLUMNS.len() - 1];
    let files = ds.read_symbols(&partitions, &symbols, stored).await?;
    let contract = ds.contract().arrow_schema();
    // Nullable like every column DuckDB returns, so both paths give the same schema.
    let mut fields: Vec<Field> = stored
        .iter()
        .filter_map(|c| contract.field_with_name(c).ok())
        .map(|f| Field::new(f.name(), f.data_type().clone(), true))
        .collect();
    fields.push(Field::new("date", DataType::Date32, true));
    let schema = Arc::new(Schema::new(fields));
    order_minutes(files, &schema, request.extended_hours)
}

/// Each file's rows (sorted by symbol, ts) with its `date`, regular-session only unless
/// `extended_hours`, as runs of one symbol, ordered by symbol and then by partition: (symbol, ts).
fn order_minutes(files: Vec<SymbolRows>, schema: &SchemaRef, extended_hours: bool) -> Result<Vec<RecordBatch>> {
    let mut runs: Vec<(String, RecordBatch)> = Vec::new();
    for file in files {
        let Ok(PartitionKey::Date(date)) = PartitionKey::parse(&file.entry.partition) else { continue };
        let days = i32::try_from(date.signed_duration_since(chrono::DateTime::UNIX_EPOCH.date_naive()).num_days())
            .map_err(|_| Error::invalid(format!("date {date} out of range")))?;
        for batch in file.batches {
            let batch = match (extended_hours, batch.column_by_name("is_rth").and_then(|c| c.as_boolean_opt())) {
                (false, Some(rth)) if rth.true_count() < batch.num_rows() => {
                    arrow::compute::filter_record_batch(&batch, &rth.clone())?
                }
                _ => batch,
            };
            let n = batch.num_rows();
            if n == 0 {
                continue;
            }
            let mut columns = batch.columns().to_vec();
            columns.push(Arc::new(Date32Array::from(vec![days; n])));
            let batch = RecordBatch::try_new(schema.clone(), columns)?;
            let symbol = batch.column(0).as_string::<i32>();
            let mut start = 0;
            for i in 1..=n {
                if i == n || symbol.value(i) != symbol.value(start) {
                    runs.push((symbol.value(start).to_string(), batch.slice(start, i - start)));
                    start = i;
                }
            }
        }
    }
    // Stable: a symbol's runs stay in partition order, which is ts order.
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    if runs.is_empty() {
        return Ok(vec![RecordBatch::new_empty(schema.clone())]);
    }
    Ok(runs.into_iter().map(|(_, b)| b).collect())
}
