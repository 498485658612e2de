//! The per-symbol, time-ordered steps of minute curation, on rayon: the forward fill and the outlier
//! flags. In SQL they were three window passes with different partitions (each a sort of every row);
//! here they are one pass over rows DuckDB has already ordered by (symbol, ts).
//!
//! Semantics, as `curate_1m.sql` had them:
//! - fill: a row's close is the last non-null close of its symbol so far (across sessions, so the
//!   session before the range seeds it; a close carried into a later session is put on that session's
//!   share basis by the splits with ex-dates in between); a filled minute takes open = high = low =
//!   that close, volume 0 and the last source. Rows with nothing to fill from are dropped, and filled rows too under the
//!   `none` policy.
//! - outliers: within each (symbol, session, regular-or-extended) group of the remaining rows in time
//!   order, `ret = ln(close / previous row's close)`; the row is an outlier when it is past the first
//!   `window + 1` rows of its group, the sample std of the previous `window` returns is > 0, and
//!   `|ret| > k * std`.

use std::collections::VecDeque;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float64Array, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{concat_batches, take_record_batch};
use arrow::datatypes::{Field, Float64Type, Int64Type, Schema};
use chrono::NaiveDate;
use rayon::prelude::*;

use crate::error::{Error, Result};
use crate::reference::corporate_actions::SplitHistory;

/// How the kernels run.
#[derive(Debug, Clone)]
pub(super) struct KernelParams {
    pub keep_filled: bool,
    pub outlier_k: f64,
    pub outlier_window: usize,
    /// First session of the range, as days since the epoch: earlier rows only seed the fill.
    pub start_days: i32,
    pub job_id: String,
    pub curated_at: i64,
    /// Splits, to carry a close across an ex-date on the new share basis.
    pub splits: Arc<SplitHistory>,
}

/// Symbols per rayon task: enough tasks to balance two to many cores, few enough to amortize the
/// concatenation.
const SYMBOLS_PER_TASK: usize = 8;

/// Runs the fill and outlier kernels over `merged` (rows ordered by symbol, ts; columns as
/// `curate_1m.sql`'s `merged` view) and returns the curated rows: the contract's columns plus `date`.
pub(super) fn fill_and_flag(merged: &[RecordBatch], p: &KernelParams) -> Result<Vec<RecordBatch>> {
    let Some(schema) = merged.first().map(RecordBatch::schema) else { return Ok(Vec::new()) };
    // Each symbol's rows as (batch, offset, length) runs; a symbol may continue into the next batch.
    let mut symbols: Vec<Vec<(usize, usize, usize)>> = Vec::new();
    let mut current: Option<String> = None;
    for (bi, b) in merged.iter().enumerate() {
        let sym = column(b, "symbol")?.as_string_opt::<i32>().ok_or_else(|| Error::invalid("curation: symbol is not utf8"))?;
        let mut i = 0;
        while i < b.num_rows() {
            let s = sym.value(i);
            let end = (i + 1..b.num_rows()).find(|&j| sym.value(j) != s).unwrap_or(b.num_rows());
            match symbols.last_mut() {
                Some(runs) if i == 0 && current.as_deref() == Some(s) => runs.push((bi, 0, end)),
                _ => symbols.push(vec![(bi, i, end - i)]),
            }
            current = Some(s.to_string());
            i = end;
        }
    }
    symbols
        .par_chunks(SYMBOLS_PER_TASK)
        .map(|task| {
            let parts: Vec<RecordBatch> = task.iter().flatten().map(|&(bi, off, len)| merged[bi].slice(off, len)).collect();
            let batch = concat_batches(&schema, &parts)?;
            kernel(&batch, p)
        })
        .collect()
}

fn column<'a>(b: &'a RecordBatch, name: &str) -> Result<&'a ArrayRef> {
    b.column_by_name(name).ok_or_else(|| Error::invalid(format!("curation: merged rows have no '{name}'")))
}

/// The sample standard deviation of the non-null values, if there are two or more.
fn sample_std(values: &VecDeque<Option<f64>>) -> Option<f64> {
    let (n, sum) = values.iter().flatten().fold((0usize, 0.0), |(n, s), v| (n + 1, s + v));
    if n < 2 {
        return None;
    }
    let mean = sum / n as f64;
    let squares: f64 = values.iter().flatten().map(|v| (v - mean) * (v - mean)).sum();
    Some((squares / (n - 1) as f64).sqrt())
}

/// One group's running state for the outlier rule.
#[derive(Default)]
struct Group {
    rows: usize,
    previous_close: Option<f64>,
    returns: VecDeque<Option<f64>>,
}

/// The kernels over rows of whole symbols.
fn kernel(b: &RecordBatch, p: &KernelParams) -> Result<RecordBatch> {
    let n = b.num_rows();
    let f64s = |name: &str| -> Result<&Float64Array> { column(b, name)?.as_primitive_opt::<Float64Type>().ok_or_else(|| Error::invalid(format!("curation: '{name}' is not float64"))) };
    let bools = |name: &str| -> Result<&BooleanArray> { column(b, name)?.as_boolean_opt().ok_or_else(|| Error::invalid(format!("curation: '{name}' is not bool"))) };
    let (open, high, low, close, volume) = (f64s("open")?, f64s("high")?, f64s("low")?, f64s("close")?, f64s("volume")?);
    let (filled, rth) = (bools("is_filled")?, bools("is_rth")?);
    let symbol = column(b, "symbol")?.as_string::<i32>();
    let source = column(b, "source")?.as_string_opt::<i32>().ok_or_else(|| Error::invalid("curation: 'source' is not utf8"))?;
    let date = column(b, "date")?.as_primitive_opt::<arrow::datatypes::Date32Type>().ok_or_else(|| Error::invalid("curation: 'date' is not a date"))?;
    let ts = column(b, "ts_us")?.as_primitive_opt::<Int64Type>().ok_or_else(|| Error::invalid("curation: 'ts_us' is not int64"))?;

    let (mut o, mut h, mut l, mut c, mut v) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let mut src: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut outlier = vec![false; n];
    let mut keep: Vec<u32> = Vec::with_capacity(n);
    let mut last_close: Option<f64> = None;
    // The session whose share basis `last_close` is on.
    let mut close_day = 0;
    // A filled minute is labelled with its own symbol-session's source (the session comes whole from
    // it), or, in a session with no bar of its own, the last one before.
    let (mut session_source, mut last_source): (Option<&str>, Option<&str>) = (None, None);
    // Groups: regular and extended rows of the current symbol-session interleave in time order.
    let mut groups: [Group; 2] = Default::default();
    for i in 0..n {
        let new_symbol = i == 0 || symbol.value(i) != symbol.value(i - 1);
        if new_symbol {
            (last_close, last_source) = (None, None);
        }
        if new_symbol || date.value(i) != date.value(i - 1) {
            // A close carried from an earlier session: on this session's share basis.
            if let (Some(close), Some(from), Some(to)) = (last_close, NaiveDate::from_epoch_days(close_day), NaiveDate::from_epoch_days(date.value(i))) {
                last_close = Some(close * p.splits.price_ratio_between(symbol.value(i), from, to));
            }
            close_day = date.value(i);
            groups = Default::default();
            let same_session = |j: &usize| symbol.value(*j) == symbol.value(i) && date.value(*j) == date.value(i);
            session_source = (i..n).take_while(same_session).find(|j| source.is_valid(*j)).map(|j| source.value(j));
        }
        let is_filled = filled.value(i);
        if close.is_valid(i) {
            last_close = Some(close.value(i));
        }
        if source.is_valid(i) {
            last_source = Some(source.value(i));
        }
        let value = |a: &Float64Array| if is_filled { last_close } else { a.is_valid(i).then(|| a.value(i)) };
        let row_close = last_close;
        o.push(value(open));
        h.push(value(high));
        l.push(value(low));
        c.push(row_close);
        v.push(if is_filled { Some(0.0) } else { volume.is_valid(i).then(|| volume.value(i)) });
        src.push(if source.is_valid(i) { Some(source.value(i)) } else { session_source.or(last_source) });
        if is_filled && !p.keep_filled {
            continue; // the `none` fill policy: the minute stays a gap
        }
        let g = &mut groups[usize::from(rth.value(i))];
        g.rows += 1;
        let ret = row_close.zip(g.previous_close).map(|(now, before)| (now / before).ln());
        if g.rows > p.outlier_window + 1
            && let (Some(ret), Some(std)) = (ret, sample_std(&g.returns))
        {
            outlier[i] = std > 0.0 && ret.abs() > p.outlier_k * std;
        }
        if g.returns.len() == p.outlier_window {
            g.returns.pop_front();
        }
        g.returns.push_back(ret);
        g.previous_close = row_close;
        if row_close.is_some() && date.value(i) >= p.start_days {
            keep.push(i as u32);
        }
    }
    let utf8 = |values: Vec<Option<&str>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let float = |values: Vec<Option<f64>>| -> ArrayRef { Arc::new(Float64Array::from(values)) };
    let rows = n;
    let out_fields: Vec<(&str, ArrayRef)> = vec![
        ("symbol", column(b, "symbol")?.clone()),
        ("ts", Arc::new(TimestampMicrosecondArray::from(ts.values().to_vec()).with_timezone("UTC"))),
        ("open", float(o)),
        ("high", float(h)),
        ("low", float(l)),
        ("close", float(c)),
        ("volume", float(v)),
        ("vwap", column(b, "vwap")?.clone()),
        ("trade_count", column(b, "trade_count")?.clone()),
        ("source", utf8(src)),
        ("is_rth", column(b, "is_rth")?.clone()),
        ("is_filled", column(b, "is_filled")?.clone()),
        ("is_outlier", Arc::new(BooleanArray::from(outlier))),
        ("minute_idx", column(b, "minute_idx")?.clone()),
        ("job_id", Arc::new(StringArray::from(vec![p.job_id.as_str(); rows]))),
        ("curated_at", Arc::new(TimestampMicrosecondArray::from(vec![p.curated_at; rows]).with_timezone("UTC"))),
        ("date", Arc::new(Date32Array::from(date.values().to_vec()))),
    ];
    let schema = Arc::new(Schema::new(out_fields.iter().map(|(name, a)| Field::new(*name, a.data_type().clone(), true)).collect::<Vec<_>>()));
    let all = RecordBatch::try_new(schema, out_fields.into_iter().map(|(_, a)| a).collect())?;
    Ok(take_record_batch(&all, &UInt32Array::from(keep))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// symbol, ts, date (epoch days), close, is_filled, is_rth
    type Row<'a> = (&'a str, i64, i32, Option<f64>, bool, bool);

    fn merged(rows: &[Row]) -> RecordBatch {
        let f = |v: Vec<Option<f64>>| Arc::new(Float64Array::from(v)) as ArrayRef;
        let close: Vec<Option<f64>> = rows.iter().map(|r| r.3).collect();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("symbol", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0)))),
            ("ts_us", Arc::new(arrow::array::Int64Array::from_iter_values(rows.iter().map(|r| r.1)))),
            ("date", Arc::new(Date32Array::from_iter_values(rows.iter().map(|r| r.2)))),
            ("minute_idx", Arc::new(arrow::array::Int32Array::from(vec![Some(0); rows.len()]))),
            ("open", f(close.clone())),
            ("high", f(close.clone())),
            ("low", f(close.clone())),
            ("close", f(close.clone())),
            ("volume", f(close.iter().map(|c| c.map(|_| 10.0)).collect())),
            ("vwap", f(vec![None; rows.len()])),
            ("trade_count", Arc::new(arrow::array::Int64Array::from(vec![None; rows.len()]))),
            ("source", Arc::new(StringArray::from(close.iter().map(|c| c.map(|_| "file")).collect::<Vec<_>>()))),
            ("is_filled", Arc::new(BooleanArray::from(rows.iter().map(|r| r.4).collect::<Vec<_>>()))),
            ("is_rth", Arc::new(BooleanArray::from(rows.iter().map(|r| r.5).collect::<Vec<_>>()))),
        ];
        let schema = Arc::new(Schema::new(columns.iter().map(|(n, a)| Field::new(*n, a.data_type().clone(), true)).collect::<Vec<_>>()));
        RecordBatch::try_new(schema, columns.into_iter().map(|(_, a)| a).collect()).unwrap()
    }

    fn params(window: usize) -> KernelParams {
        KernelParams { keep_filled: true, outlier_k: 10.0, outlier_window: window, start_days: 1, job_id: "j".into(), curated_at: 0, splits: Arc::default() }
    }

    #[test]
    fn fills_carry_the_last_close_across_sessions_and_batches() {
        // A: day 0 seeds day 1's first (filled) minute; B has nothing to fill from. Split across batches.
        let rows = [("A", 0, 0, Some(5.0), false, true), ("A", 60, 1, None, true, true), ("A", 120, 1, Some(6.0), false, true), ("B", 0, 1, None, true, true), ("B", 60, 1, Some(7.0), false, true)];
        let b = merged(&rows);
        let out = fill_and_flag(&[b.slice(0, 2), b.slice(2, 3)], &params(2)).unwrap();
        let out = concat_batches(&out[0].schema(), &out).unwrap();
        let close: Vec<f64> = out.column_by_name("close").unwrap().as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(close, [5.0, 6.0, 7.0], "day 0 only seeds; B's first minute has nothing before it");
        let volume = out.column_by_name("volume").unwrap().as_primitive::<Float64Type>().value(0);
        assert_eq!(volume, 0.0);
        assert_eq!(out.column_by_name("source").unwrap().as_string::<i32>().value(0), "file");
    }

    #[test]
    fn a_carried_close_crosses_a_split_on_the_new_basis() {
        // A 2-for-1 with ex-date day 1 (1970-01-02): day 0's close 10 seeds day 1's filled open at 5.
        let rows = [("A", 0, 0, Some(10.0), false, true), ("A", 60, 1, None, true, true), ("A", 120, 1, Some(5.1), false, true), ("A", 180, 2, None, true, true)];
        let day = |n: i32| NaiveDate::from_epoch_days(n).unwrap();
        let p = KernelParams { splits: Arc::new(SplitHistory::from_splits([("A".to_string(), day(1), 0.5), ("B".to_string(), day(2), 0.1)])), ..params(2) };
        let out = fill_and_flag(&[merged(&rows)], &p).unwrap();
        let close: Vec<f64> = out[0].column_by_name("close").unwrap().as_primitive::<Float64Type>().values().to_vec();
        assert_eq!(close, [5.0, 5.1, 5.1], "the seed is split-adjusted; a split of another symbol changes nothing");
        let without = fill_and_flag(&[merged(&rows)], &params(2)).unwrap();
        assert_eq!(without[0].column_by_name("close").unwrap().as_primitive::<Float64Type>().value(0), 10.0);
    }

    #[test]
    fn a_fill_at_the_open_has_its_sessions_source() {
        let rows = [("A", 0, 0, Some(5.0), false, true), ("A", 60, 1, None, true, true), ("A", 120, 1, Some(6.0), false, true), ("A", 180, 2, None, true, true)];
        let mut b = merged(&rows);
        let sources: ArrayRef = Arc::new(StringArray::from(vec![Some("tws"), None, Some("polygon"), None]));
        let i = b.schema().index_of("source").unwrap();
        let mut columns = b.columns().to_vec();
        columns[i] = sources;
        b = RecordBatch::try_new(b.schema(), columns).unwrap();
        let out = fill_and_flag(&[b], &params(2)).unwrap();
        let got: Vec<&str> = out[0].column_by_name("source").unwrap().as_string::<i32>().iter().flatten().collect();
        assert_eq!(got, ["polygon", "polygon", "polygon"], "day 1's fill is polygon's, not the seed day's tws; day 2 has no bar of its own");
    }

    #[test]
    fn an_outlier_needs_a_full_window_and_a_big_move() {
        let mut rows = Vec::new();
        for i in 0..40 {
            let close = if i == 35 { 200.0 } else { 100.0 + (i % 3) as f64 * 0.01 };
            rows.push(("A", i * 60, 1, Some(close), false, true));
        }
        let out = fill_and_flag(&[merged(&rows)], &params(30)).unwrap();
        let flags: Vec<usize> = out[0].column_by_name("is_outlier").unwrap().as_boolean().iter().enumerate().filter(|(_, f)| *f == Some(true)).map(|(i, _)| i).collect();
        assert_eq!(flags, [35], "the jump; the fall back is judged against a window that holds the jump");
        // The same jump inside the first window + 1 rows is not judged.
        rows[35].3 = Some(100.0);
        rows[20].3 = Some(200.0);
        let out = fill_and_flag(&[merged(&rows)], &params(30)).unwrap();
        assert_eq!(out[0].column_by_name("is_outlier").unwrap().as_boolean().true_count(), 0);
    }
}
