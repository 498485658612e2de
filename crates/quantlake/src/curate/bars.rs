//! `get_curated_bars`: curated bars of some symbols over some sessions, at 1m or resampled within
//! sessions (5m, 15m, 30m, 1h, 1d; SQL in `resample.sql`), at the latest or any earlier snapshot, as
//! stored or back-adjusted for splits (and dividends) at read time: the stored files never change.
//!
//! A symbol asked for is a security: the one the security master says it names at the request's end
//! (or `resolve_at`), read under each ticker it had in the range, so a series runs on across a rename
//! and a reused ticker never mixes two securities. Each row's `symbol` is the ticker asked for, its
//! `ticker` the one it traded under that day, and `security_id` the security's.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::bars::Frequency;
use crate::error::{Error, Result};
use crate::query::QueryEngine;
use crate::reference::corporate_actions::{Adjustment, AdjustmentFactors};
use crate::reference::securities::{Interval, SecurityMaster, TickerHistory};
use crate::security::SecurityId;
use crate::symbol::Symbol;
use crate::table::AsOf;
use crate::table::lake_log::LakeView;
use crate::table::layout::PartitionKey;
use crate::table::pruned::SymbolRows;
use crate::table::{Lake, PartitionEntry};
use arrow::array::{Array, ArrayRef, AsArray, Date32Array, Int64Array, RecordBatch, StringArray};
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
    /// The date each symbol is resolved to a security on (default: `end`, or the last date in the
    /// range the symbol named one).
    pub resolve_at: Option<NaiveDate>,
}

/// Curated bars for `request`, sorted by (symbol, ts). One-minute bars carry curation's flags;
/// resampled bars carry `minutes`, `filled_minutes` and `has_outlier`. `ts` is the bar's first minute.
///
/// One-minute bars are read natively: only the pages of the partition files that can hold the
/// symbols are fetched and decoded ([`Dataset::read_symbols`]), no DuckDB. Resampling is SQL (DuckDB).
pub async fn get_curated_bars(lake: &Lake, request: &BarsRequest, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
    check(request)?;
    // One view for the security master and the bars: both as of one lake state.
    let view = lake.view().await?;
    let series = Series::plan(lake, request, as_of, &view).await?;
    let stored = BarsRequest { symbols: Series::tickers(&series), ..request.clone() };
    let batches = match request.frequency {
        Frequency::M1 => read_minutes(lake, &stored, as_of, &view).await?,
        _ => read_sql(lake, &stored, as_of).await?,
    };
    let batches = tokio::task::block_in_place(|| Series::label(&series, request, batches))?;
    adjust(lake, request, &series, as_of, batches).await
}

impl BarsRequest {
    /// [`get_curated_bars`] with every frequency through DuckDB SQL: the reference the native
    /// one-minute read is tested and benchmarked against.
    #[doc(hidden)]
    pub async fn read_with_sql(&self, lake: &Lake, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
        check(self)?;
        let series = Series::plan(lake, self, as_of, &lake.view().await?).await?;
        let stored = BarsRequest { symbols: Series::tickers(&series), ..self.clone() };
        let batches = read_sql(lake, &stored, as_of).await?;
        let batches = Series::label(&series, self, batches)?;
        adjust(lake, self, &series, as_of, batches).await
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
    series: &[Series],
    as_of: &AsOf,
    batches: Vec<RecordBatch>,
) -> Result<Vec<RecordBatch>> {
    if request.adjust == Adjustment::None {
        return Ok(batches);
    }
    let tickers: BTreeSet<Symbol> = series.iter().flat_map(|s| s.history.iter().map(|h| h.0.clone())).collect();
    let tickers: Vec<Symbol> = tickers.into_iter().collect();
    let by_ticker = AdjustmentFactors::load(lake, &tickers, as_of).await?;
    let history: Vec<_> = series.iter().map(|s| (s.key.clone(), s.history.clone())).collect();
    let factors = by_ticker.for_series(&history);
    factors.check(&request.symbols, request.start, request.adjust)?;
    tokio::task::block_in_place(|| batches.iter().map(|b| factors.adjust_batch(b, request.adjust)).collect())
}

const DATASET: &str = "curated_1m_bars";

/// One symbol asked for: the security it names, and the tickers its rows are stored under.
#[derive(Debug, Clone)]
struct Series {
    key: Symbol,
    security: Option<SecurityId>,
    /// Its tickers within the request's range, in time order: `(ticker, first, last)`.
    spans: Vec<(Symbol, NaiveDate, NaiveDate)>,
    /// Its whole ticker history, for the corporate actions of every ticker.
    history: TickerHistory,
}

impl Series {
    /// Each requested symbol's series: the security master's at `as_of` when it knows the symbol,
    /// else the symbol itself over the range.
    async fn plan(lake: &Lake, request: &BarsRequest, as_of: &AsOf, view: &LakeView) -> Result<Vec<Series>> {
        let master = SecurityMaster::load_in(lake, as_of, view).await?;
        let mut out = Vec::with_capacity(request.symbols.len());
        for key in &request.symbols {
            let found = master.security_for(key, request.start, request.end, request.resolve_at)?;
            out.push(match found {
                Some(id) => Series {
                    key: key.clone(),
                    security: Some(id),
                    spans: master.ticker_spans(id, request.start, request.end),
                    history: master.history(id).iter().map(|r| (r.ticker.clone(), r.valid)).collect(),
                },
                // Named none on `resolve_at`, though the master knows it: nothing.
                None if master.knows(key) => {
                    Series { key: key.clone(), security: None, spans: Vec::new(), history: Vec::new() }
                }
                None => Series {
                    key: key.clone(),
                    security: None,
                    spans: vec![(key.clone(), request.start, request.end)],
                    history: vec![(key.clone(), Interval::default())],
                },
            });
        }
        Ok(out)
    }

    /// The stored tickers to read (at least one, so a read with nothing to find still has a schema).
    fn tickers(series: &[Series]) -> Vec<Symbol> {
        let set: BTreeSet<Symbol> = series.iter().flat_map(|s| s.spans.iter().map(|x| x.0.clone())).collect();
        if set.is_empty() {
            return series.iter().map(|s| s.key.clone()).take(1).collect();
        }
        set.into_iter().collect()
    }

    /// Whether the series reads its own ticker over the whole range: its stored rows are its rows.
    fn is_own_ticker(&self, request: &BarsRequest) -> bool {
        matches!(self.spans.as_slice(), [(t, a, z)] if *t == self.key && *a == request.start && *z == request.end)
    }

    /// The stored rows (sorted by symbol, ts) as each series' rows in (symbol, ts) order: `symbol` the
    /// ticker asked for, `ticker` the stored one, `security_id` appended.
    fn label(series: &[Series], request: &BarsRequest, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
        let Some(first) = batches.first() else { return Ok(batches) };
        let mut fields: Vec<Field> = first.schema().fields().iter().map(|f| f.as_ref().clone()).collect();
        fields.push(Field::new("ticker", DataType::Utf8, true));
        fields.push(Field::new("security_id", DataType::Int64, true));
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let symbol_at = first.schema().index_of("symbol")?;
        let symbols = |b: &RecordBatch| -> Result<StringArray> {
            b.column(symbol_at)
                .as_string_opt::<i32>()
                .cloned()
                .ok_or_else(|| Error::invalid("bars: 'symbol' is not utf8"))
        };
        if series.iter().all(|s| s.is_own_ticker(request)) {
            // Every row is its own series' already: append the columns, keep the rows.
            let ids: std::collections::HashMap<&str, Option<i64>> =
                series.iter().map(|s| (s.key.as_str(), s.security.map(SecurityId::get))).collect();
            let none_known = ids.values().all(Option::is_none);
            return batches
                .iter()
                .map(|b| {
                    let id: ArrayRef = if none_known {
                        arrow::array::new_null_array(&DataType::Int64, b.num_rows())
                    } else {
                        Arc::new(run_ids(&symbols(b)?, &ids))
                    };
                    let mut columns = b.columns().to_vec();
                    columns.push(b.column(symbol_at).clone());
                    columns.push(id);
                    Ok(RecordBatch::try_new(schema.clone(), columns)?)
                })
                .collect();
        }
        // Which series and span each stored (ticker, date) belongs to.
        let mut spans_of: std::collections::HashMap<&str, Vec<(usize, usize, NaiveDate, NaiveDate)>> =
            std::collections::HashMap::new();
        for (s, one) in series.iter().enumerate() {
            for (k, (ticker, a, z)) in one.spans.iter().enumerate() {
                spans_of.entry(ticker.as_str()).or_default().push((s, k, *a, *z));
            }
        }
        let mut rows: Vec<Vec<Vec<(usize, usize)>>> = series.iter().map(|s| vec![Vec::new(); s.spans.len()]).collect();
        for (b, batch) in batches.iter().enumerate() {
            let symbol = symbols(batch)?;
            let date = batch
                .column_by_name("date")
                .and_then(|c| c.as_primitive_opt::<arrow::datatypes::Date32Type>())
                .ok_or_else(|| Error::invalid("bars: rows have no date column 'date'"))?;
            for i in 0..batch.num_rows() {
                let (Some(spans), Some(day)) =
                    (spans_of.get(symbol.value(i)), NaiveDate::from_epoch_days(date.value(i)))
                else {
                    continue;
                };
                for &(s, k, a, z) in spans {
                    if a <= day && day <= z {
                        rows[s][k].push((b, i));
                    }
                }
            }
        }
        let width = first.num_columns();
        let mut order: Vec<usize> = (0..series.len()).collect();
        order.sort_by(|a, b| series[*a].key.cmp(&series[*b].key));
        let mut out = Vec::new();
        for s in order {
            // Spans are in time order and rows within a span in (ticker, ts) order: ts order.
            let indices: Vec<(usize, usize)> = rows[s].concat();
            if indices.is_empty() {
                continue;
            }
            let mut columns: Vec<ArrayRef> = Vec::with_capacity(width + 2);
            for c in 0..width {
                let parts: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
                columns.push(arrow::compute::interleave(&parts, &indices)?);
            }
            let n = indices.len();
            let stored = std::mem::replace(
                &mut columns[symbol_at],
                Arc::new(StringArray::from_iter_values(std::iter::repeat_n(series[s].key.as_str(), n))),
            );
            columns.push(stored);
            columns.push(Arc::new(Int64Array::from(vec![series[s].security.map(SecurityId::get); n])));
            out.push(RecordBatch::try_new(schema.clone(), columns)?);
        }
        if out.is_empty() {
            out.push(RecordBatch::new_empty(schema));
        }
        Ok(out)
    }
}

/// Each row's id in `ids` by its symbol, looked up once per run of one symbol (rows are sorted by it).
fn run_ids(symbol: &StringArray, ids: &std::collections::HashMap<&str, Option<i64>>) -> Int64Array {
    let mut out = Int64Array::builder(symbol.len());
    let mut start = 0;
    for i in 1..=symbol.len() {
        if i == symbol.len() || symbol.value(i) != symbol.value(start) {
            let id = if symbol.is_valid(start) { ids.get(symbol.value(start)).copied().flatten() } else { None };
            match id {
                Some(v) => out.append_slice(&vec![v; i - start]),
                None => out.append_nulls(i - start),
            }
            start = i;
        }
    }
    out.finish()
}

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
async fn read_minutes(lake: &Lake, request: &BarsRequest, as_of: &AsOf, view: &LakeView) -> Result<Vec<RecordBatch>> {
    as_of.check_datasets(lake)?;
    let ds = lake.dataset(DATASET)?;
    let state = ds.state_as_of(as_of, view).await?;
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
/// `extended_hours`, ordered by symbol and then by partition: (symbol, ts). Runs of one symbol are
/// slices of their file's batches; runs that end up next to each other in one batch (one partition's
/// symbols, the one-session read) go out as one slice, so a consumer imports one array per column,
/// not one per symbol.
fn order_minutes(files: Vec<SymbolRows>, schema: &SchemaRef, extended_hours: bool) -> Result<Vec<RecordBatch>> {
    // (symbol, the batch it is a slice of, offset, length)
    let mut runs: Vec<(String, usize, usize, usize)> = Vec::new();
    let mut batches: Vec<RecordBatch> = Vec::new();
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
                    runs.push((symbol.value(start).to_string(), batches.len(), start, i - start));
                    start = i;
                }
            }
            batches.push(batch);
        }
    }
    // Stable: a symbol's runs stay in partition order, which is ts order.
    runs.sort_by(|a, b| a.0.cmp(&b.0));
    if runs.is_empty() {
        return Ok(vec![RecordBatch::new_empty(schema.clone())]);
    }
    let mut merged: Vec<(usize, usize, usize)> = Vec::new();
    for (_, b, offset, len) in runs {
        match merged.last_mut() {
            Some((last_b, last_offset, last_len)) if *last_b == b && *last_offset + *last_len == offset => {
                *last_len += len
            }
            _ => merged.push((b, offset, len)),
        }
    }
    Ok(merged.into_iter().map(|(b, offset, len)| batches[b].slice(offset, len)).collect())
}
