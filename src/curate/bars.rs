//! `get_curated_bars`: curated bars of some symbols over some sessions, at 1m or resampled within
//! sessions (5m, 15m, 30m, 1h, 1d; SQL in `resample.sql`), at the latest or any earlier snapshot, as
//! stored or back-adjusted for splits (and dividends) at read time: the stored files never change.

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use crate::bars::Frequency;
use crate::error::{Error, Result};
use crate::query::{AsOf, QueryEngine};
use crate::reference::corporate_actions::{Adjustment, AdjustmentFactors};
use crate::table::layout::validate_symbol;
use crate::table::Lake;

const RESAMPLE_SQL: &str = include_str!("resample.sql");

/// What to read.
#[derive(Debug, Clone)]
pub struct BarsRequest {
    pub symbols: Vec<String>,
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
pub async fn get_curated_bars(lake: &Lake, request: &BarsRequest, as_of: &AsOf) -> Result<Vec<RecordBatch>> {
    if request.end < request.start {
        return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
    }
    if request.symbols.is_empty() {
        return Err(Error::invalid("no symbols"));
    }
    for s in &request.symbols {
        validate_symbol(s)?;
    }
    // Symbols are validated (letters, digits, . - _ ^ =): safe inside quotes.
    let list: Vec<String> = request.symbols.iter().map(|s| format!("'{s}'")).collect();
    let filter = format!("symbol IN ({}) AND date BETWEEN DATE '{}' AND DATE '{}'", list.join(", "), request.start, request.end);
    let sql = match request.frequency {
        Frequency::M1 => format!(
            "SELECT symbol, ts, open, high, low, close, volume, vwap, trade_count, source, is_rth, is_filled, is_outlier, minute_idx, date \
             FROM curated_1m_bars WHERE {filter}{} ORDER BY symbol, ts",
            if request.extended_hours { "" } else { " AND is_rth" }
        ),
        f => super::fill_template(RESAMPLE_SQL, &[("filter", filter), ("minutes", f.minutes().to_string())])?,
    };
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    if request.adjust == Adjustment::None {
        return Ok(batches);
    }
    let factors = AdjustmentFactors::load(lake, &request.symbols, as_of).await?;
    factors.check(&request.symbols, request.start, request.adjust)?;
    tokio::task::block_in_place(|| batches.iter().map(|b| factors.adjust_batch(b, request.adjust)).collect())
}
