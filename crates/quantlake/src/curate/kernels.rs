//! The per-symbol, time-ordered steps of minute curation: the forward fill and the outlier flags, one
//! pass over a partition's merged rows ([`super::merge`]), which are already in (symbol, ts) order.
//!
//! - fill: a row's close is the last close of its series so far, across sessions: the state a
//!   series' last bar leaves ([`Carry`]) seeds the next session it appears in, the session before
//!   the range seeding the first. A series is a security when the master knows the symbol's
//!   ([`SeriesKey`]): the close carries across a rename, and never from one holder of a reused ticker
//!   to the next. A close carried into a later session is put on that session's
//!   share basis by the splits with ex-dates in between. A filled minute takes open = high = low =
//!   that close, volume 0 and its symbol-session's source. Rows with nothing to fill from are
//!   dropped, and filled rows too under the `none` policy.
//! - outliers: within each (symbol, session, regular-or-extended) group of the remaining rows in time
//!   order, `ret = ln(close / previous row's close)`; the row is an outlier when it is past the first
//!   `window + 1` rows of its group, the sample std of the previous `window` returns is > 0, and
//!   `|ret| > k * std`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, BooleanArray, Date32Array, Float64Array, Int32Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use chrono::NaiveDate;

use super::merge::{Partition, SourceRows};
use crate::error::Result;
use crate::reference::corporate_actions::SplitHistory;
use crate::reference::securities::{SecurityMaster, SeriesKey};

/// How the kernels run.
#[derive(Debug, Clone)]
pub(super) struct KernelParams {
    pub keep_filled: bool,
    pub outlier_k: f64,
    pub outlier_window: usize,
    pub job_id: String,
    pub curated_at: i64,
    /// Splits, to carry a close across an ex-date on the new share basis.
    pub splits: Arc<SplitHistory>,
}

/// What a symbol's last bar leaves for its next session: the close (on `day`'s share basis) and the source.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Carry {
    pub close: f64,
    pub day: NaiveDate,
    pub source: Arc<str>,
}

/// Each series' [`Carry`].
pub(super) type Carries = HashMap<SeriesKey, Carry>;

/// The carries a partition's symbols start from, by symbol.
pub(super) type Seeds = HashMap<String, Carry>;

/// The carries `partition`'s symbols start from (each one's series'), then `carries` updated with the
/// last bar of each series there. Every symbol-session of a partition has a bar (a symbol without
/// valid bars has no rows), so the update does not depend on what came before. Each symbol's series
/// is resolved once, for both.
pub(super) fn advance(
    carries: &mut Carries,
    partition: &Partition,
    sources: &[SourceRows],
    master: &SecurityMaster,
) -> Result<Seeds> {
    let m = &partition.merged;
    let series: Vec<SeriesKey> =
        m.symbols.iter().map(|s| master.series_key(s, partition.date)).collect::<Result<_>>()?;
    let seeds = m.symbols.iter().zip(&series).filter_map(|(s, k)| Some((s.clone(), carries.get(k)?.clone()))).collect();
    for &(symbol, from, to) in &m.runs {
        let Some((s, r)) = m.bar[from..to].iter().rev().flatten().next().copied() else { continue };
        let (src, r) = (&sources[usize::from(s)], r as usize);
        let carry = Carry { close: src.close.value(r), day: partition.date, source: src.source.value(r).into() };
        carries.insert(series[symbol as usize].clone(), carry);
    }
    Ok(seeds)
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

/// The curated rows of `partition` (the contract's columns plus `date`), its symbols starting from `seeds`.
pub(super) fn fill_and_flag(
    partition: &Partition,
    sources: &[SourceRows],
    seeds: &Seeds,
    p: &KernelParams,
) -> Result<RecordBatch> {
    let m = &partition.merged;
    let n = m.ts.len();
    let date = partition.date;
    let (mut symbol, mut ts, mut minute) = (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut o, mut h, mut l, mut c, mut v) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    let (mut vwap, mut trades) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut source, mut rth, mut filled, mut outlier): (Vec<&str>, Vec<bool>, Vec<bool>, Vec<bool>) =
        (Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n), Vec::with_capacity(n));
    for &(sym, from, to) in &m.runs {
        let name = m.symbols[sym as usize].as_str();
        let seed = seeds.get(name);
        // A close carried from an earlier session: on this session's share basis.
        let mut last_close = seed.map(|s| s.close * p.splits.price_ratio_between(name, s.day, date));
        let mut last_source: Option<&str> = seed.map(|s| &*s.source);
        // A filled minute is labelled with its symbol-session's source (the session comes whole from it).
        let session_source =
            m.bar[from..to].iter().flatten().next().map(|&(s, r)| sources[usize::from(s)].source.value(r as usize));
        // Groups: regular and extended rows of the symbol-session interleave in time order.
        let mut groups: [Group; 2] = Default::default();
        for i in from..to {
            let bar = m.bar[i].map(|(s, r)| (&sources[usize::from(s)], r as usize));
            if let Some((src, r)) = bar {
                last_close = Some(src.close.value(r));
                last_source = Some(src.source.value(r));
            }
            if bar.is_none() && !p.keep_filled {
                continue; // the `none` fill policy: the minute stays a gap
            }
            let row_close = last_close;
            let g = &mut groups[usize::from(m.is_rth[i])];
            g.rows += 1;
            let ret = row_close.zip(g.previous_close).map(|(now, before)| (now / before).ln());
            let mut is_outlier = false;
            if g.rows > p.outlier_window + 1
                && let (Some(ret), Some(std)) = (ret, sample_std(&g.returns))
            {
                is_outlier = std > 0.0 && ret.abs() > p.outlier_k * std;
            }
            if g.returns.len() == p.outlier_window {
                g.returns.pop_front();
            }
            g.returns.push_back(ret);
            g.previous_close = row_close;
            let Some(close) = row_close else { continue }; // nothing to fill from
            match bar {
                Some((src, r)) => {
                    o.push(src.open.value(r));
                    h.push(src.high.value(r));
                    l.push(src.low.value(r));
                    v.push(src.volume.value(r));
                    vwap.push(SourceRows::f64_at(&src.vwap, r));
                    trades.push(src.trade_count.is_valid(r).then(|| src.trade_count.value(r)));
                    source.push(src.source.value(r));
                }
                None => {
                    o.push(close);
                    h.push(close);
                    l.push(close);
                    v.push(0.0);
                    vwap.push(None);
                    trades.push(None);
                    source.push(session_source.or(last_source).unwrap_or_default());
                }
            }
            c.push(close);
            symbol.push(name);
            ts.push(m.ts[i]);
            minute.push(m.minute_idx[i]);
            rth.push(m.is_rth[i]);
            filled.push(bar.is_none());
            outlier.push(is_outlier);
        }
    }
    let rows = symbol.len();
    let float = |values: Vec<f64>| -> ArrayRef { Arc::new(Float64Array::from(values)) };
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("symbol", Arc::new(StringArray::from(symbol))),
        ("ts", Arc::new(TimestampMicrosecondArray::from(ts).with_timezone("UTC"))),
        ("open", float(o)),
        ("high", float(h)),
        ("low", float(l)),
        ("close", float(c)),
        ("volume", float(v)),
        ("vwap", Arc::new(Float64Array::from(vwap))),
        ("trade_count", Arc::new(Int64Array::from(trades))),
        ("source", Arc::new(StringArray::from(source))),
        ("is_rth", Arc::new(BooleanArray::from(rth))),
        ("is_filled", Arc::new(BooleanArray::from(filled))),
        ("is_outlier", Arc::new(BooleanArray::from(outlier))),
        ("minute_idx", Arc::new(Int32Array::from(minute))),
        ("job_id", Arc::new(StringArray::new_repeated(&p.job_id, rows))),
        ("curated_at", Arc::new(TimestampMicrosecondArray::from(vec![p.curated_at; rows]).with_timezone("UTC"))),
        ("date", Arc::new(Date32Array::from(vec![date.to_epoch_days(); rows]))),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

#[cfg(test)]
mod tests {
    use arrow::array::AsArray;
    use arrow::datatypes::Float64Type;

    use super::*;
    use crate::calendar::NyseCalendar;
    use crate::curate::merge::{merge, test_source};

    fn params(window: usize) -> KernelParams {
        KernelParams {
            keep_filled: true,
            outlier_k: 10.0,
            outlier_window: window,
            job_id: "j".into(),
            curated_at: 0,
            splits: Arc::default(),
        }
    }

    /// Curates `days` in order, each `(date, rows (symbol, minute after the open, close))` from one
    /// source named `source`, carrying closes from day to day; returns each day's rows.
    /// A test day: (date, source, rows (symbol, minute after the open, close)).
    type Day<'a> = (&'a str, &'a str, Vec<(&'a str, i64, f64)>);

    fn curate(days: &[Day<'_>], p: &KernelParams) -> Vec<RecordBatch> {
        curate_with(days, p, &SecurityMaster::default())
    }

    /// [`curate`] following series by `master`.
    fn curate_with(days: &[Day<'_>], p: &KernelParams, master: &SecurityMaster) -> Vec<RecordBatch> {
        let mut carries = Carries::new();
        let mut out = Vec::new();
        for (day, source, rows) in days {
            let date: NaiveDate = day.parse().unwrap();
            let session = NyseCalendar.session(date).unwrap();
            let rows: Vec<(&str, i64, f64, i64)> = rows.iter().map(|&(s, m, c)| (s, m, c, 1)).collect();
            let sources = [test_source(source, 0, &rows, session.open.timestamp_micros())];
            let partition = merge(date, Some(&session), &sources).unwrap();
            let seeds = advance(&mut carries, &partition, &sources, master).unwrap();
            out.push(fill_and_flag(&partition, &sources, &seeds, p).unwrap());
        }
        out
    }

    fn closes(b: &RecordBatch, symbol: &str) -> Vec<f64> {
        let s = b.column_by_name("symbol").unwrap().as_string::<i32>();
        let c = b.column_by_name("close").unwrap().as_primitive::<Float64Type>();
        (0..b.num_rows()).filter(|&i| s.value(i) == symbol).map(|i| c.value(i)).collect()
    }

    #[test]
    fn fills_carry_the_last_close_across_sessions() {
        // A: the 8th seeds the 11th's first (filled) minutes; B, new on the 11th, has nothing to fill
        // its first minute from; A skips the 12th and the 11th seeds the 13th.
        let days = [
            ("2024-03-08", "file", vec![("A", 389, 5.0)]),
            ("2024-03-11", "file", vec![("A", 2, 6.0), ("B", 1, 7.0)]),
            ("2024-03-12", "file", vec![("B", 0, 8.0)]),
            ("2024-03-13", "file", vec![("A", 389, 9.0)]),
        ];
        let out = curate(&days, &params(2));
        assert_eq!(closes(&out[1], "A")[..3], [5.0, 5.0, 6.0]);
        assert_eq!(closes(&out[1], "B").len(), 389, "B's first minute has nothing before it");
        assert_eq!(closes(&out[3], "A")[0], 6.0);
        let volume = out[1].column_by_name("volume").unwrap().as_primitive::<Float64Type>().value(0);
        assert_eq!(volume, 0.0);
        assert_eq!(out[1].column_by_name("is_filled").unwrap().as_boolean().true_count(), 389 + 388);
        let none = curate(&days, &KernelParams { keep_filled: false, ..params(2) });
        assert_eq!(none[1].num_rows(), 2, "the `none` policy keeps only delivered bars");
    }

    #[test]
    fn a_close_carries_across_a_rename_and_never_across_a_reused_ticker() {
        // Security x is OLD through the 8th and NEW from the 11th; REUSE is a through the 8th, b after.
        let master = SecurityMaster::of_intervals(&[
            ("x", "OLD", "2020-01-02", Some("2024-03-08")),
            ("x", "NEW", "2024-03-11", None),
            ("a", "REUSE", "2020-01-02", Some("2024-03-08")),
            ("b", "REUSE", "2024-03-11", None),
        ]);
        let days = [
            ("2024-03-08", "file", vec![("OLD", 389, 5.0), ("REUSE", 389, 7.0)]),
            ("2024-03-11", "file", vec![("NEW", 2, 6.0), ("REUSE", 2, 8.0)]),
        ];
        let out = curate_with(&days, &params(2), &master);
        assert_eq!(closes(&out[1], "NEW")[..3], [5.0, 5.0, 6.0], "OLD's last close seeds NEW's open");
        assert_eq!(closes(&out[1], "REUSE")[0], 8.0, "b's session starts at its first bar, not a's close");
        let plain = curate(&days, &params(2));
        assert_eq!(closes(&plain[1], "NEW")[0], 6.0, "without the master NEW is a new series");
        assert_eq!(closes(&plain[1], "REUSE")[..3], [7.0, 7.0, 8.0], "and REUSE one series");
    }

    #[test]
    fn a_carried_close_crosses_a_split_on_the_new_basis() {
        // A 2-for-1 with ex-date the 11th: the 8th's close 10 seeds the 11th's filled open at 5.
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let days = [("2024-03-08", "file", vec![("A", 389, 10.0)]), ("2024-03-11", "file", vec![("A", 1, 5.1)])];
        let p = KernelParams {
            splits: Arc::new(SplitHistory::from_splits([
                (crate::symbol::Symbol::from_static("A"), day("2024-03-11"), 0.5),
                (crate::symbol::Symbol::from_static("B"), day("2024-03-12"), 0.1),
            ])),
            ..params(2)
        };
        let out = curate(&days, &p);
        assert_eq!(
            closes(&out[1], "A")[..3],
            [5.0, 5.1, 5.1],
            "the seed is split-adjusted; a split of another symbol changes nothing"
        );
        assert_eq!(closes(&curate(&days, &params(2))[1], "A")[0], 10.0);
    }

    #[test]
    fn a_fill_at_the_open_has_its_sessions_source() {
        let days = [("2024-03-08", "tws", vec![("A", 389, 5.0)]), ("2024-03-11", "polygon", vec![("A", 1, 6.0)])];
        let out = curate(&days, &params(2));
        let sources = out[1].column_by_name("source").unwrap().as_string::<i32>();
        assert!(
            sources.iter().all(|s| s == Some("polygon")),
            "the 11th's fill at the open is polygon's, not the seed day's tws"
        );
        assert_eq!(sources.null_count(), 0);
    }

    #[test]
    fn an_outlier_needs_a_full_window_and_a_big_move() {
        let rows = |jump: i64| -> Vec<(&'static str, i64, f64)> {
            (0..40).map(|i| ("A", i, if i == jump { 200.0 } else { 100.0 + (i % 3) as f64 * 0.01 })).collect()
        };
        let flagged = |b: &RecordBatch| -> Vec<usize> {
            b.column_by_name("is_outlier")
                .unwrap()
                .as_boolean()
                .iter()
                .enumerate()
                .filter(|(_, f)| *f == Some(true))
                .map(|(i, _)| i)
                .collect()
        };
        let out = curate(&[("2024-03-08", "file", rows(35))], &params(30));
        assert_eq!(flagged(&out[0]), [35], "the jump; the fall back is judged against a window that holds the jump");
        // The same jump inside the first window + 1 rows is not judged.
        let out = curate(&[("2024-03-08", "file", rows(20))], &params(30));
        assert!(flagged(&out[0]).is_empty());
    }
}
