//! A backfill's impact report: what it changed, partition by partition, against the lake-wide tag it
//! took before writing.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Float64Type, Int64Type};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::manifest::PartitionEntry;
use crate::table::{Dataset, Lake, SnapshotSpec};

/// One rewritten partition of a bar dataset.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartitionImpact {
    pub dataset: String,
    pub partition: String,
    pub rows_before: u64,
    pub rows_after: u64,
    /// Rows of the scope's symbols present before and after with a different open, high, low, close or volume.
    pub rows_changed: u64,
    pub rows_added: u64,
    pub rows_removed: u64,
}

/// The largest relative change of a close.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PriceChange {
    pub dataset: String,
    pub symbol: String,
    pub ts: DateTime<Utc>,
    pub before: f64,
    pub after: f64,
    /// |after - before| / |before|.
    pub relative: f64,
}

/// What a backfill changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Impact {
    /// The bar partitions whose file changed.
    pub partitions: Vec<PartitionImpact>,
    pub largest_price_change: Option<PriceChange>,
    /// Per feature or label set, the partitions rewritten.
    pub feature_partitions_refreshed: BTreeMap<String, usize>,
}

/// Each dataset's partitions at `snapshot` (none before its first commit).
async fn partitions_at(ds: &Dataset, snapshot: Option<u64>) -> Result<BTreeMap<String, PartitionEntry>> {
    match snapshot {
        Some(id) if id > 0 => Ok(ds.snapshot(&SnapshotSpec::Id(id)).await?.partitions),
        _ => Ok(BTreeMap::new()),
    }
}

/// Compares `bar_datasets` and `feature_sets` over `sessions` between the snapshots in `before` (the
/// lake-wide tag taken before the backfill) and now, for `symbols` (all when empty).
pub async fn measure(
    lake: &Lake,
    before: &BTreeMap<String, u64>,
    bar_datasets: &[String],
    feature_sets: &[String],
    sessions: &[NaiveDate],
    symbols: &BTreeSet<Symbol>,
) -> Result<Impact> {
    let mut impact = Impact::default();
    let keys: Vec<String> = sessions.iter().map(|d| PartitionKey::Date(*d).to_string()).collect();
    let tagged = before;
    for name in bar_datasets {
        let ds = lake.dataset(name)?;
        let before = partitions_at(&ds, tagged.get(name).copied()).await?;
        let after = ds.latest().await?.partitions;
        for key in &keys {
            let (old, new) = (before.get(key), after.get(key));
            if old.map(|e| &e.file_id) == new.map(|e| &e.file_id) {
                continue;
            }
            let old_rows = match old {
                Some(e) => closes(&ds, e, symbols).await?,
                None => HashMap::new(),
            };
            let new_rows = match new {
                Some(e) => closes(&ds, e, symbols).await?,
                None => HashMap::new(),
            };
            let mut p = PartitionImpact {
                dataset: name.clone(),
                partition: key.clone(),
                rows_before: old_rows.len() as u64,
                rows_after: new_rows.len() as u64,
                rows_changed: 0,
                rows_added: 0,
                rows_removed: old_rows.keys().filter(|k| !new_rows.contains_key(*k)).count() as u64,
            };
            for (k, values) in &new_rows {
                let Some(was) = old_rows.get(k) else {
                    p.rows_added += 1;
                    continue;
                };
                if !same(was, values) {
                    p.rows_changed += 1;
                }
                let (b, a) = (was[3], values[3]);
                if b.is_finite() && a.is_finite() && b != 0.0 {
                    let relative = ((a - b) / b).abs();
                    if relative > impact.largest_price_change.as_ref().map_or(0.0, |c| c.relative) {
                        let ts = DateTime::from_timestamp_micros(k.1).unwrap_or_default();
                        impact.largest_price_change = Some(PriceChange {
                            dataset: name.clone(),
                            symbol: k.0.clone(),
                            ts,
                            before: b,
                            after: a,
                            relative,
                        });
                    }
                }
            }
            impact.partitions.push(p);
        }
    }
    for name in feature_sets {
        let ds = lake.dataset(name)?;
        let before = partitions_at(&ds, tagged.get(name).copied()).await?;
        let after = ds.latest().await?.partitions;
        let refreshed = keys
            .iter()
            .filter(|k| {
                after.get(*k).map(|e| &e.file_id) != before.get(*k).map(|e| &e.file_id) && after.contains_key(*k)
            })
            .count();
        impact.feature_partitions_refreshed.insert(name.clone(), refreshed);
    }
    Ok(impact)
}

/// Bit-equal, or both NaN/null.
fn same(a: &[f64; 5], b: &[f64; 5]) -> bool {
    a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits() || (x.is_nan() && y.is_nan()))
}

/// (symbol, ts µs) -> open, high, low, close, volume, for the partition's rows of `symbols`.
async fn closes(
    ds: &Dataset,
    entry: &PartitionEntry,
    symbols: &BTreeSet<Symbol>,
) -> Result<HashMap<(String, i64), [f64; 5]>> {
    let batches = ds.read_partition_columns(entry, &["symbol", "ts", "open", "high", "low", "close", "volume"]).await?;
    let mut out = HashMap::new();
    for b in &batches {
        collect_rows(b, symbols, &mut out)?;
    }
    Ok(out)
}

fn collect_rows(b: &RecordBatch, symbols: &BTreeSet<Symbol>, out: &mut HashMap<(String, i64), [f64; 5]>) -> Result<()> {
    let symbol = arrow::compute::cast(b.column(0), &DataType::Utf8)?;
    let symbol = symbol.as_string::<i32>();
    let ts = arrow::compute::cast(b.column(1), &DataType::Int64)?;
    let ts = ts.as_primitive::<Int64Type>();
    let values: Vec<_> =
        (2..7).map(|i| arrow::compute::cast(b.column(i), &DataType::Float64)).collect::<std::result::Result<_, _>>()?;
    let values: Vec<_> = values.iter().map(|v| v.as_primitive::<Float64Type>()).collect();
    for row in 0..b.num_rows() {
        let s = symbol.value(row);
        if !symbols.is_empty() && !symbols.contains(s) {
            continue;
        }
        let mut v = [f64::NAN; 5];
        for (i, col) in values.iter().enumerate() {
            if col.is_valid(row) {
                v[i] = col.value(row);
            }
        }
        out.insert((s.to_string(), ts.value(row)), v);
    }
    Ok(())
}
