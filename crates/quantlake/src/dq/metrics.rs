//! Data-quality metrics of a stage's output (today curation's): per symbol-session (for
//! `dq_metrics`) and per partition (the verdict committed in the partition's manifest entry).

use std::collections::{BTreeMap, HashMap};

use arrow::array::{Array, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::Int64Type;
use chrono::NaiveDate;

use super::{PartitionQuality, SessionMetrics};
use crate::contract::DatasetContract;
use crate::error::{Error, Result};
use crate::table::layout::PartitionKey;

/// Each partition's quality verdict by the contract's rules, from its symbol-sessions' metrics.
pub fn partition_quality(
    contract: &DatasetContract,
    metrics: &[SessionMetrics],
) -> Result<BTreeMap<PartitionKey, PartitionQuality>> {
    let rules = contract
        .quality
        .clone()
        .ok_or_else(|| Error::invalid(format!("contract '{}' has no [quality] rules", contract.name)))?;
    let mut by_partition: BTreeMap<PartitionKey, Vec<&SessionMetrics>> = BTreeMap::new();
    for m in metrics {
        by_partition.entry(PartitionKey::for_date(contract.partitioning, m.date)).or_default().push(m);
    }
    Ok(by_partition
        .into_iter()
        .map(|(k, rows)| (k, PartitionQuality::judge(crate::dq::totals_of(rows), &rules)))
        .collect())
}

/// Metrics per symbol-session being counted, keyed by borrowed (symbol, epoch day): curation's
/// output has millions of rows, so nothing is allocated per row.
struct Tally<'a> {
    bars: HashMap<NaiveDate, u64>,
    index: HashMap<(&'a str, i32), usize>,
    rows: Vec<SessionMetrics>,
}

impl<'a> Tally<'a> {
    fn get(&mut self, symbol: &'a str, days: i32) -> Result<&mut SessionMetrics> {
        let i = match self.index.get(&(symbol, days)) {
            Some(i) => *i,
            None => {
                let date = NaiveDate::from_epoch_days(days)
                    .ok_or_else(|| Error::invalid(format!("date {days} out of range")))?;
                let expected_bars = self.bars.get(&date).copied().unwrap_or(0);
                self.rows.push(SessionMetrics {
                    symbol: symbol.to_string(),
                    date,
                    expected_bars,
                    ..SessionMetrics::default()
                });
                self.index.insert((symbol, days), self.rows.len() - 1);
                self.rows.len() - 1
            }
        };
        Ok(&mut self.rows[i])
    }
}

/// The `symbol` and `date` columns of a batch of curation's output.
fn keys(b: &RecordBatch) -> Result<(&arrow::array::StringArray, &arrow::array::Date32Array)> {
    let symbol = b.column_by_name("symbol").and_then(|c| c.as_string_opt::<i32>());
    let date = b.column_by_name("date").and_then(|c| c.as_primitive_opt::<arrow::datatypes::Date32Type>());
    symbol.zip(date).ok_or_else(|| Error::invalid("curation output has no symbol or date column"))
}

/// Data-quality metrics per symbol-session from curation's output (with `date`, `is_rth`, `is_filled`
/// and `is_outlier` columns), its rejects, and the valid bars per chosen / superseded source. Each
/// session expects `bars[date]` bars per symbol. Every `expected` (symbol, session) gets a row, so a
/// symbol that delivered nothing that session shows as a gap.
pub fn session_metrics(
    bars: HashMap<NaiveDate, u64>,
    expected: &[(String, NaiveDate)],
    curated: &[RecordBatch],
    rejects: &[RecordBatch],
    sources: &[RecordBatch],
) -> Result<Vec<SessionMetrics>> {
    let mut tally = Tally { bars, index: HashMap::new(), rows: Vec::new() };
    let column = |b: &RecordBatch, name: &str| {
        b.column_by_name(name).cloned().ok_or_else(|| Error::invalid(format!("curation output has no '{name}'")))
    };
    for b in curated {
        let (sym, date) = keys(b)?;
        let flags = |n: &str| column(b, n).map(|c| c.as_boolean().clone());
        let (rth, filled, outlier) = (flags("is_rth")?, flags("is_filled")?, flags("is_outlier")?);
        let (vwap, trades, source) = (column(b, "vwap")?, column(b, "trade_count")?, column(b, "source")?);
        let source = source.as_string::<i32>();
        for i in 0..b.num_rows() {
            let m = tally.get(sym.value(i), date.value(i))?;
            if filled.value(i) {
                m.filled_bars += 1;
            } else {
                m.delivered_bars += 1;
                m.present_bars += u64::from(rth.value(i));
                m.null_vwap += u64::from(vwap.is_null(i));
                m.null_trade_count += u64::from(trades.is_null(i));
                if m.source.is_none() {
                    m.source = Some(source.value(i).to_string());
                }
            }
            m.extended_hours_bars += u64::from(!rth.value(i));
            m.outlier_count += u64::from(outlier.value(i));
        }
    }
    for b in rejects {
        let (sym, date) = keys(b)?;
        for i in 0..b.num_rows() {
            tally.get(sym.value(i), date.value(i))?.invalid_rows += 1;
        }
    }
    for b in sources {
        let (sym, date) = keys(b)?;
        let as_i64 = |n: &str| -> Result<Int64Array> {
            Ok(arrow::compute::cast(&column(b, n)?, &arrow::datatypes::DataType::Int64)?
                .as_primitive::<Int64Type>()
                .clone())
        };
        let (chosen, superseded) = (as_i64("chosen")?, as_i64("superseded")?);
        for i in 0..b.num_rows() {
            let m = tally.get(sym.value(i), date.value(i))?;
            m.superseded_rows = superseded.value(i).max(0) as u64;
            // Valid bars of the chosen source, less the distinct ones delivered.
            m.duplicates_removed = (chosen.value(i).max(0) as u64).saturating_sub(m.delivered_bars);
        }
    }
    for (symbol, date) in expected {
        tally.get(symbol, date.to_epoch_days())?;
    }
    let mut rows = tally.rows;
    rows.sort_by(|a, b| (&a.symbol, a.date).cmp(&(&b.symbol, b.date)));
    Ok(rows)
}
