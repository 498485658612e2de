//! Rows of a training or feature set as a design matrix: the feature columns as `f64` (booleans 0/1,
//! integers widened), in a fixed row order whatever the batches' layout, with the rows a fit cannot
//! use counted by reason.

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use serde::Serialize;

use crate::error::{Error, Result};

/// Rows left out of a fit, by reason. A row with a null (or non-finite) feature and a null target
/// counts once, as a null feature.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Skipped {
    pub null_feature: u64,
    pub null_target: u64,
    /// Per feature column: rows where it was null or not finite.
    pub by_feature: BTreeMap<String, u64>,
}

/// The usable rows of a set, sorted by (decision time, symbol, ts).
#[derive(Debug, Clone, Default)]
pub struct Design {
    pub features: Vec<String>,
    /// Distinct symbols of the usable rows in name order; `symbol[i]` indexes it.
    pub symbol_names: Vec<String>,
    pub symbol: Vec<u32>,
    pub ts: Vec<i64>,
    pub decision_time: Vec<i64>,
    /// Row-major, `features.len()` values a row.
    pub x: Vec<f64>,
    pub y: Vec<f64>,
    /// Rows in the batches, and those left out.
    pub rows_read: u64,
    pub skipped: Skipped,
}

impl Design {
    pub fn rows(&self) -> usize {
        self.y.len()
    }

    pub fn p(&self) -> usize {
        self.features.len()
    }

    pub fn row(&self, i: usize) -> &[f64] {
        &self.x[i * self.p()..(i + 1) * self.p()]
    }

    /// The rows at `idx` (in that order), as a design of their own.
    pub fn subset(&self, idx: &[usize]) -> Design {
        let p = self.p();
        let mut x = Vec::with_capacity(idx.len() * p);
        for &i in idx {
            x.extend_from_slice(self.row(i));
        }
        Design {
            features: self.features.clone(),
            symbol_names: self.symbol_names.clone(),
            symbol: idx.iter().map(|&i| self.symbol[i]).collect(),
            ts: idx.iter().map(|&i| self.ts[i]).collect(),
            decision_time: idx.iter().map(|&i| self.decision_time[i]).collect(),
            x,
            y: idx.iter().map(|&i| self.y[i]).collect(),
            rows_read: idx.len() as u64,
            skipped: Skipped::default(),
        }
    }

    /// Builds the design of a training set: rows with every feature and the target present and
    /// finite, sorted by (decision_time, symbol, ts) and then by their values, so the same rows give
    /// the same design however they were split into batches.
    pub fn training(batches: &[RecordBatch], features: &[String], target: &str) -> Result<Design> {
        let mut builder = DesignBuilder::new(features, target);
        for b in batches {
            builder.add(b)?;
        }
        Ok(builder.finish())
    }

    /// The same rows in (decision_time, symbol, ts, values) order (symbols by index: name order).
    fn sorted(self) -> Design {
        let Some(order) = order_rows(&self, 0, |k| k) else { return self };
        let mut d = self.subset(&order);
        d.rows_read = self.rows_read;
        d.skipped = self.skipped;
        d
    }
}

/// A [`Design::training`] built batch by batch, so a streamed training set never has to be held
/// as Arrow batches: only the usable rows' values are kept. Each batch's rows are put in order as
/// they come; when the batches come in decision-time order (a streamed set comes session by session),
/// the rows are in order at the end without a second copy.
#[derive(Debug)]
pub struct DesignBuilder {
    target: String,
    /// Symbols in the order first seen; `design.symbol` indexes this until [`Self::finish`].
    seen: Vec<String>,
    index: std::collections::HashMap<String, u32>,
    design: Design,
}

impl DesignBuilder {
    pub fn new(features: &[String], target: &str) -> Self {
        Self {
            target: target.to_string(),
            seen: Vec::new(),
            index: std::collections::HashMap::new(),
            design: Design { features: features.to_vec(), ..Default::default() },
        }
    }

    /// Adds the usable rows of `b` (counting the others), ordered among themselves.
    pub fn add(&mut self, b: &RecordBatch) -> Result<()> {
        let features = self.design.features.clone();
        let (symbols, ts, decision) = (text(b, "symbol")?, timestamps(b, "ts")?, timestamps(b, "decision_time")?);
        let values: Vec<Float64Array> = features.iter().map(|f| numeric(b, f)).collect::<Result<_>>()?;
        let y = numeric(b, &self.target)?;
        let d = &mut self.design;
        let first = d.rows();
        let mut row = vec![0.0; features.len()];
        let mut last: Option<(u32, &str)> = None;
        for i in 0..b.num_rows() {
            d.rows_read += 1;
            let mut complete = true;
            for (j, v) in values.iter().enumerate() {
                if v.is_null(i) || !v.value(i).is_finite() {
                    complete = false;
                    *d.skipped.by_feature.entry(features[j].clone()).or_default() += 1;
                } else {
                    row[j] = v.value(i);
                }
            }
            if !complete {
                d.skipped.null_feature += 1;
                continue;
            }
            if y.is_null(i) || !y.value(i).is_finite() {
                d.skipped.null_target += 1;
                continue;
            }
            if symbols.is_null(i) || ts.is_null(i) || decision.is_null(i) {
                return Err(Error::invalid(format!(
                    "training set row {} has a null symbol, ts or decision_time",
                    d.rows_read
                )));
            }
            let s = symbols.value(i);
            // A set comes sorted by symbol within a session: most rows repeat the previous one's.
            let k = match last.filter(|(_, l)| *l == s).map(|(k, _)| k).or_else(|| self.index.get(s).copied()) {
                Some(k) => k,
                None => {
                    let k = u32::try_from(self.seen.len()).map_err(|_| Error::invalid("too many symbols"))?;
                    self.seen.push(s.to_string());
                    self.index.insert(s.to_string(), k);
                    k
                }
            };
            last = Some((k, s));
            d.symbol.push(k);
            d.ts.push(ts.value(i));
            d.decision_time.push(decision.value(i));
            d.x.extend_from_slice(&row);
            d.y.push(y.value(i));
        }
        // This batch's rows in (decision_time, symbol name, ts, values) order, in place of their own.
        let mut by_name: Vec<u32> = (0..self.seen.len() as u32).collect();
        by_name.sort_by(|a, b| self.seen[*a as usize].cmp(&self.seen[*b as usize]));
        let mut rank = vec![0u32; by_name.len()];
        for (r, k) in by_name.into_iter().enumerate() {
            rank[k as usize] = r as u32;
        }
        if let Some(order) = order_rows(d, first, |k| rank[k as usize]) {
            let sorted = d.subset(&order);
            let p = d.p();
            d.symbol.truncate(first);
            d.ts.truncate(first);
            d.decision_time.truncate(first);
            d.x.truncate(first * p);
            d.y.truncate(first);
            d.symbol.extend(sorted.symbol);
            d.ts.extend(sorted.ts);
            d.decision_time.extend(sorted.decision_time);
            d.x.extend(sorted.x);
            d.y.extend(sorted.y);
        }
        Ok(())
    }

    /// The design: symbols renumbered in name order, rows in (decision_time, symbol, ts, values) order.
    pub fn finish(self) -> Design {
        let mut names: Vec<(usize, String)> = self.seen.into_iter().enumerate().collect();
        names.sort_by(|a, b| a.1.cmp(&b.1));
        let mut renumber = vec![0u32; names.len()];
        for (new, (old, _)) in names.iter().enumerate() {
            renumber[*old] = new as u32;
        }
        let mut d = self.design;
        for s in &mut d.symbol {
            *s = renumber[*s as usize];
        }
        d.symbol_names = names.into_iter().map(|(_, n)| n).collect();
        d.sorted()
    }
}

/// Row indices from `first` on, in (decision_time, symbol, ts, values) order, `rank` giving each
/// symbol index its place in name order; `None` when the rows are in that order already.
fn order_rows(d: &Design, first: usize, rank: impl Fn(u32) -> u32) -> Option<Vec<usize>> {
    use rayon::slice::ParallelSliceMut;
    let by_values = |a: usize, b: usize| {
        let bits = |i: usize| d.row(i).iter().map(|v| v.to_bits()).chain([d.y[i].to_bits()]).collect::<Vec<u64>>();
        bits(a).cmp(&bits(b))
    };
    let key = |i: usize| (d.decision_time[i], rank(d.symbol[i]), d.ts[i]);
    if (first + 1..d.rows()).all(|i| key(i - 1).cmp(&key(i)).then_with(|| by_values(i - 1, i)).is_le()) {
        return None;
    }
    // The keys sorted in place, not row indices compared through the columns: a year of rows is tens
    // of millions, and the comparisons stay in cache. Rows equal in all three fall back to their
    // values, then their position: one total order, so the parallel sort is deterministic.
    let mut keys: Vec<((i64, u32, i64), usize)> = (first..d.rows()).map(|i| (key(i), i)).collect();
    keys.par_sort_unstable_by(|a, b| a.0.cmp(&b.0).then_with(|| by_values(a.1, b.1)).then(a.1.cmp(&b.1)));
    Some(keys.into_iter().map(|k| k.1).collect())
}

/// A string column (utf8, or large/view/dictionary strings cast to utf8).
pub(crate) fn text(b: &RecordBatch, name: &str) -> Result<arrow::array::StringArray> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| Error::invalid(format!("column '{name}' is missing (columns: {})", column_names(b))))?;
    let cast = arrow::compute::cast(c, &DataType::Utf8)
        .map_err(|_| Error::invalid(format!("column '{name}' is {}, not text", c.data_type())))?;
    Ok(cast.as_string::<i32>().clone())
}

/// A timestamp column as µs since the epoch.
pub(crate) fn timestamps(b: &RecordBatch, name: &str) -> Result<arrow::array::TimestampMicrosecondArray> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| Error::invalid(format!("column '{name}' is missing (columns: {})", column_names(b))))?;
    if !matches!(c.data_type(), DataType::Timestamp(_, _)) {
        return Err(Error::invalid(format!("column '{name}' is {}, not a timestamp", c.data_type())));
    }
    let cast = arrow::compute::cast(c, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?;
    Ok(cast.as_primitive::<TimestampMicrosecondType>().clone())
}

/// A numeric or boolean column as `f64` (booleans 1/0); any other type is refused, naming the column.
pub(crate) fn numeric(b: &RecordBatch, name: &str) -> Result<Float64Array> {
    let c = b
        .column_by_name(name)
        .ok_or_else(|| Error::invalid(format!("column '{name}' is missing (columns: {})", column_names(b))))?;
    if !(c.data_type().is_numeric() || c.data_type() == &DataType::Boolean) {
        return Err(Error::invalid(format!(
            "column '{name}' is {}; features and targets must be numeric or boolean",
            c.data_type()
        )));
    }
    let cast = arrow::compute::cast(c, &DataType::Float64)?;
    Ok(cast.as_primitive::<arrow::datatypes::Float64Type>().clone())
}

fn column_names(b: &RecordBatch) -> String {
    b.schema().fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Int32Array, StringArray, TimestampMicrosecondArray};

    use super::*;

    /// A set-shaped batch: symbol, ts, decision_time (ts + 60 s), f1 (float), flag (bool), n (int32),
    /// and target.
    /// A test row: symbol, ts, f1, flag, n, target.
    pub type Row<'a> = (&'a str, i64, Option<f64>, Option<bool>, Option<i32>, Option<f64>);

    pub fn batch(rows: &[Row<'_>]) -> RecordBatch {
        let ts: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let cols: Vec<(&str, ArrayRef)> = vec![
            ("symbol", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)))),
            ("ts", Arc::new(TimestampMicrosecondArray::from(ts.clone()).with_timezone("UTC"))),
            (
                "decision_time",
                Arc::new(
                    TimestampMicrosecondArray::from(ts.iter().map(|t| t + 60_000_000).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ),
            ),
            ("f1", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>()))),
            ("flag", Arc::new(BooleanArray::from(rows.iter().map(|r| r.3).collect::<Vec<_>>()))),
            ("n", Arc::new(Int32Array::from(rows.iter().map(|r| r.4).collect::<Vec<_>>()))),
            ("target", Arc::new(Float64Array::from(rows.iter().map(|r| r.5).collect::<Vec<_>>()))),
        ];
        RecordBatch::try_from_iter(cols).unwrap()
    }

    fn names() -> Vec<String> {
        vec!["f1".into(), "flag".into(), "n".into()]
    }

    #[test]
    fn rows_with_nulls_are_skipped_and_counted_booleans_are_0_1() {
        let b = batch(&[
            ("B", 2, Some(1.5), Some(true), Some(3), Some(0.1)),
            ("A", 2, Some(2.5), Some(false), Some(4), Some(0.2)),
            ("A", 1, None, Some(true), Some(1), Some(0.3)),
            ("A", 3, Some(f64::NAN), None, Some(1), None),
            ("C", 1, Some(0.5), Some(true), Some(2), None),
        ]);
        let d = Design::training(&[b], &names(), "target").unwrap();
        assert_eq!(d.rows(), 2);
        assert_eq!(d.rows_read, 5);
        assert_eq!(d.skipped.null_feature, 2);
        assert_eq!(d.skipped.null_target, 1);
        assert_eq!(d.skipped.by_feature.get("f1"), Some(&2));
        assert_eq!(d.skipped.by_feature.get("flag"), Some(&1));
        // Sorted by decision time, then symbol: A before B at ts 2.
        assert_eq!(d.symbol_names, ["A", "B"], "the symbols of the usable rows");
        assert_eq!(d.symbol, [0, 1]);
        assert_eq!(d.x, [2.5, 0.0, 4.0, 1.5, 1.0, 3.0]);
        assert_eq!(d.y, [0.2, 0.1]);
    }

    #[test]
    fn the_order_does_not_depend_on_the_batches() {
        let rows = [
            ("B", 2, Some(1.5), Some(true), Some(3), Some(0.1)),
            ("A", 2, Some(2.5), Some(false), Some(4), Some(0.2)),
            ("A", 1, Some(0.5), Some(true), Some(1), Some(0.3)),
        ];
        let one = Design::training(&[batch(&rows)], &names(), "target").unwrap();
        let split =
            Design::training(&[batch(&rows[2..]), batch(&rows[..1]), batch(&rows[1..2])], &names(), "target").unwrap();
        // In decision-time order, as a streamed set comes: each batch is ordered as it is added.
        let streamed = Design::training(&[batch(&rows[2..]), batch(&rows[..2])], &names(), "target").unwrap();
        assert_eq!((&streamed.x, &streamed.y, &streamed.ts, &streamed.symbol), (&one.x, &one.y, &one.ts, &one.symbol));
        assert_eq!(streamed.symbol_names, one.symbol_names);
        assert_eq!((one.x, one.y, one.ts, one.symbol), (split.x, split.y, split.ts, split.symbol));
    }

    #[test]
    fn bad_columns_are_named() {
        let b = batch(&[("A", 1, Some(1.0), Some(true), Some(1), Some(0.1))]);
        let err = Design::training(std::slice::from_ref(&b), &["nope".into()], "target").unwrap_err().to_string();
        assert!(err.contains("'nope' is missing"), "{err}");
        let err = Design::training(&[b], &["symbol".into()], "target").unwrap_err().to_string();
        assert!(err.contains("'symbol' is Utf8; features and targets must be numeric"), "{err}");
    }
}
