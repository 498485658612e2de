//! One date partition of minute curation: the raw sources' rows of that date -> one bar per symbol
//! and minute, laid on the session's minute grid.
//!
//! Every row is checked ([`super::validity`]); each symbol-session comes whole from its best source
//! with valid regular-session bars (else its best source with valid bars); among that source's rows
//! for one minute the latest ingested wins, taken whole; then the bars and the session's grid are
//! merged in time order. Raw partitions are stored sorted by (symbol, ts), so all of this is one
//! ordered pass per partition: no hash aggregate, no join. Rows are referenced, not copied: the
//! kernels ([`super::kernels`]) read the chosen bars' values from the raw columns.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::compute::cast;
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use chrono::NaiveDate;

use super::validity::refusal;
use crate::calendar::Session;
use crate::error::{Error, Result};

/// One raw dataset's rows of one partition, with the columns curation reads in the types it reads
/// them (a source without `vwap` or `trade_count` has them all null).
pub(super) struct SourceRows {
    /// The raw dataset, and its rank in `curate.source_precedence` (lower wins).
    pub dataset: Arc<str>,
    pub precedence: u8,
    pub symbol: StringArray,
    pub ts: TimestampMicrosecondArray,
    pub open: Float64Array,
    pub high: Float64Array,
    pub low: Float64Array,
    pub close: Float64Array,
    pub volume: Float64Array,
    pub vwap: Float64Array,
    pub trade_count: Int64Array,
    pub source: StringArray,
    pub ingested: TimestampMicrosecondArray,
}

impl SourceRows {
    /// `batch` (a raw dataset's rows, conformed to its contract) in the types curation reads.
    pub fn new(dataset: Arc<str>, precedence: u8, batch: &RecordBatch) -> Result<Self> {
        let n = batch.num_rows();
        let typed = |name: &str, to: &DataType, required: bool| -> Result<ArrayRef> {
            match batch.column_by_name(name) {
                Some(c) if c.data_type() == to => Ok(c.clone()),
                Some(c) => Ok(cast(c, to)?),
                None if required => {
                    Err(Error::invalid(format!("curation: raw dataset '{dataset}' has no '{name}' column")))
                }
                None => Ok(arrow::array::new_null_array(to, n)),
            }
        };
        let utc = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let f64s = |name: &str, required: bool| -> Result<Float64Array> {
            Ok(typed(name, &DataType::Float64, required)?.as_primitive::<Float64Type>().clone())
        };
        let micros = |name: &str| -> Result<TimestampMicrosecondArray> {
            Ok(typed(name, &utc, true)?.as_primitive::<arrow::datatypes::TimestampMicrosecondType>().clone())
        };
        let strings =
            |name: &str| -> Result<StringArray> { Ok(typed(name, &DataType::Utf8, true)?.as_string::<i32>().clone()) };
        Ok(Self {
            symbol: strings("symbol")?,
            ts: micros("ts")?,
            open: f64s("open", true)?,
            high: f64s("high", true)?,
            low: f64s("low", true)?,
            close: f64s("close", true)?,
            volume: f64s("volume", true)?,
            vwap: f64s("vwap", false)?,
            trade_count: typed("trade_count", &DataType::Int64, false)?.as_primitive::<Int64Type>().clone(),
            source: strings("source")?,
            ingested: micros("ingested_at")?,
            dataset,
            precedence,
        })
    }

    pub fn f64_at(a: &Float64Array, i: usize) -> Option<f64> {
        a.is_valid(i).then(|| a.value(i))
    }
}

/// A raw row: (source index in the partition's sources, row).
pub(super) type RowRef = (u8, u32);

/// One partition's curated rows before the fill: for each symbol-session with valid bars, every
/// regular-session minute and every extended-hours bar, in (symbol, ts) order.
#[derive(Default)]
pub(super) struct Merged {
    /// Symbols with rows, sorted; `runs` index into it.
    pub symbols: Vec<String>,
    /// Each symbol's rows: (symbol index, first row, end row).
    pub runs: Vec<(u32, usize, usize)>,
    pub ts: Vec<i64>,
    /// The session's minute for a row on the grid, `None` off it (extended hours).
    pub minute_idx: Vec<Option<i32>>,
    /// The raw bar of a row, `None` for a minute the source did not deliver.
    pub bar: Vec<Option<RowRef>>,
    pub is_rth: Vec<bool>,
}

/// Valid raw bars of one symbol-session: those of its chosen source, and the others'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct SourceCount {
    pub symbol: String,
    pub chosen: u64,
    pub superseded: u64,
    /// The session's regular minutes (the grid this symbol-session gets).
    pub minutes: u64,
}

/// What merging one partition found.
pub(super) struct Partition {
    pub date: NaiveDate,
    pub merged: Merged,
    /// Refused rows with their reasons.
    pub refused: Vec<(RowRef, &'static str)>,
    pub counts: Vec<SourceCount>,
}

/// A valid raw row's sort key: (symbol, ts, precedence, newest first), then where it is.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    symbol: u32,
    ts: i64,
    precedence: u8,
    newest_first: std::cmp::Reverse<i64>,
    at: RowRef,
}

/// Merges `sources` (one date's rows of each raw dataset, `date`'s session if it is one).
pub(super) fn merge(date: NaiveDate, session: Option<&Session>, sources: &[SourceRows]) -> Result<Partition> {
    if sources.len() > usize::from(u8::MAX) {
        return Err(Error::invalid("curation: more than 255 raw sources"));
    }
    // Symbols of every source, sorted: rows get the rank of theirs (raw files are sorted, so a row
    // usually has its predecessor's symbol and needs no search).
    let mut symbols: Vec<&str> = Vec::new();
    for s in sources {
        let mut previous: Option<&str> = None;
        for v in s.symbol.iter().flatten() {
            if previous != Some(v) {
                symbols.push(v);
                previous = Some(v);
            }
        }
    }
    symbols.sort_unstable();
    symbols.dedup();

    let (open_us, close_us) = session.map_or((0, 0), |s| (s.open.timestamp_micros(), s.close.timestamp_micros()));
    let mut keys: Vec<Key> = Vec::new();
    let mut refused: Vec<(RowRef, &'static str)> = Vec::new();
    for (si, s) in sources.iter().enumerate() {
        let mut previous: Option<(&str, u32)> = None;
        for i in 0..s.symbol.len() {
            let at = (si as u8, i as u32);
            if s.symbol.is_null(i) || s.ts.is_null(i) {
                return Err(Error::invalid(format!(
                    "curation: raw dataset '{}' has a row without symbol or ts on {date}",
                    s.dataset
                )));
            }
            let f = SourceRows::f64_at;
            if let Some(reason) =
                refusal(session.is_some(), f(&s.open, i), f(&s.high, i), f(&s.low, i), f(&s.close, i), f(&s.volume, i))
            {
                refused.push((at, reason));
                continue;
            }
            let name = s.symbol.value(i);
            let symbol = match previous {
                Some((p, rank)) if p == name => rank,
                _ => symbols
                    .binary_search(&name)
                    .map_err(|_| Error::invalid(format!("curation: symbol '{name}' not ranked")))?
                    as u32,
            };
            previous = Some((name, symbol));
            let ingested = if s.ingested.is_valid(i) { s.ingested.value(i) } else { i64::MIN };
            keys.push(Key {
                symbol,
                ts: s.ts.value(i),
                precedence: s.precedence,
                newest_first: std::cmp::Reverse(ingested),
                at,
            });
        }
    }
    if !keys.is_sorted() {
        keys.sort_unstable();
    }

    let mut merged = Merged::default();
    let mut counts = Vec::new();
    let mut bars: Vec<(i64, RowRef)> = Vec::new();
    let mut start = 0;
    while start < keys.len() {
        let symbol = keys[start].symbol;
        let end = start + keys[start..].iter().position(|k| k.symbol != symbol).unwrap_or(keys.len() - start);
        let rows = &keys[start..end];
        start = end;
        // The best source with valid regular-session bars, else the best source with valid bars.
        let rth = |k: &&Key| k.ts >= open_us && k.ts < close_us;
        let Some(chosen) =
            rows.iter().filter(rth).map(|k| k.precedence).min().or_else(|| rows.iter().map(|k| k.precedence).min())
        else {
            continue;
        };
        let Some(session) = session else { continue }; // every row of a non-session date is refused
        let chosen_rows = rows.iter().filter(|k| k.precedence == chosen).count() as u64;
        counts.push(SourceCount {
            symbol: symbols[symbol as usize].to_string(),
            chosen: chosen_rows,
            superseded: rows.len() as u64 - chosen_rows,
            minutes: u64::from(session.minutes()),
        });
        // The chosen source's rows of one minute are adjacent, newest first: keep the first.
        bars.clear();
        for k in rows.iter().filter(|k| k.precedence == chosen) {
            if bars.last().is_none_or(|(ts, _)| *ts != k.ts) {
                bars.push((k.ts, k.at));
            }
        }
        let first = merged.ts.len();
        lay_on_grid(&mut merged, &bars, open_us, session.minutes());
        let index = merged.symbols.len() as u32;
        merged.symbols.push(symbols[symbol as usize].to_string());
        merged.runs.push((index, first, merged.ts.len()));
    }
    Ok(Partition { date, merged, refused, counts })
}

const MINUTE_US: i64 = 60_000_000;

/// Appends `bars` (one symbol-session's, in ts order) merged with the session's `minutes` grid minutes
/// from `open_us`: a bar on a grid minute is that minute's row, a grid minute without a bar a row to
/// fill, a bar off the grid an extended-hours row.
fn lay_on_grid(out: &mut Merged, bars: &[(i64, RowRef)], open_us: i64, minutes: u32) {
    let (mut m, mut k) = (0u32, 0usize);
    loop {
        let grid = (m < minutes).then(|| open_us + i64::from(m) * MINUTE_US);
        let bar = bars.get(k);
        let (ts, minute, at) = match (bar, grid) {
            (None, None) => break,
            (Some(&(ts, at)), Some(g)) if ts == g => {
                (k, m) = (k + 1, m + 1);
                (ts, Some(m as i32 - 1), Some(at))
            }
            (Some(&(ts, at)), Some(g)) if ts < g => {
                k += 1;
                (ts, None, Some(at))
            }
            (Some(&(ts, at)), None) => {
                k += 1;
                (ts, None, Some(at))
            }
            (_, Some(g)) => {
                m += 1;
                (g, Some(m as i32 - 1), None)
            }
        };
        out.ts.push(ts);
        out.is_rth.push(minute.is_some());
        out.minute_idx.push(minute);
        out.bar.push(at);
    }
}

/// The refused rows of `partition` as `curation_rejects` rows (plus `date`), sorted by (symbol, ts).
pub(super) fn rejects_batch(
    partition: &Partition,
    sources: &[SourceRows],
    job_id: &str,
    curated_at: i64,
) -> Result<RecordBatch> {
    let mut rows: Vec<&(RowRef, &'static str)> = partition.refused.iter().collect();
    let at = |(s, i): RowRef| (&sources[usize::from(s)], i as usize);
    // `merge` refused no row without a symbol or ts.
    rows.sort_by(|a, b| {
        let ((sa, ia), (sb, ib)) = (at(a.0), at(b.0));
        (sa.symbol.value(ia), sa.ts.value(ia)).cmp(&(sb.symbol.value(ib), sb.ts.value(ib)))
    });
    let n = rows.len();
    let f64s = |pick: fn(&SourceRows) -> &Float64Array| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| {
                    let (s, i) = at(r.0);
                    SourceRows::f64_at(pick(s), i)
                })
                .collect::<Float64Array>(),
        )
    };
    let strings = |pick: fn(&SourceRows) -> &StringArray| -> ArrayRef {
        Arc::new(
            rows.iter()
                .map(|r| {
                    let (s, i) = at(r.0);
                    let a = pick(s);
                    a.is_valid(i).then(|| a.value(i))
                })
                .collect::<StringArray>(),
        )
    };
    let ts = TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| {
        let (s, i) = at(r.0);
        s.ts.value(i)
    }));
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("symbol", strings(|s| &s.symbol)),
        ("ts", Arc::new(ts.with_timezone("UTC"))),
        ("open", f64s(|s| &s.open)),
        ("high", f64s(|s| &s.high)),
        ("low", f64s(|s| &s.low)),
        ("close", f64s(|s| &s.close)),
        ("volume", f64s(|s| &s.volume)),
        ("source", strings(|s| &s.source)),
        ("dataset", Arc::new(rows.iter().map(|r| Some(&*at(r.0).0.dataset)).collect::<StringArray>())),
        ("reason", Arc::new(rows.iter().map(|r| Some(r.1)).collect::<StringArray>())),
        ("job_id", Arc::new(StringArray::new_repeated(job_id, n))),
        ("curated_at", Arc::new(TimestampMicrosecondArray::from(vec![curated_at; n]).with_timezone("UTC"))),
        ("date", Arc::new(Date32Array::from(vec![partition.date.to_epoch_days(); n]))),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// Per symbol-session of `p`: valid bars of the chosen source and of the others, as
/// `source_bars.sql` gives them for the daily stage (`symbol, date, chosen, superseded`).
pub(super) fn counts_batch(p: &Partition) -> Result<RecordBatch> {
    let columns: Vec<(&str, ArrayRef)> = vec![
        ("symbol", Arc::new(StringArray::from_iter_values(p.counts.iter().map(|c| c.symbol.as_str())))),
        ("date", Arc::new(Date32Array::from(vec![p.date.to_epoch_days(); p.counts.len()]))),
        ("chosen", Arc::new(Int64Array::from_iter_values(p.counts.iter().map(|c| c.chosen as i64)))),
        ("superseded", Arc::new(Int64Array::from_iter_values(p.counts.iter().map(|c| c.superseded as i64)))),
    ];
    Ok(RecordBatch::try_from_iter(columns)?)
}

/// A raw source of test rows: (symbol, minutes after the open, close, ingested); prices are valid unless close <= 0.
#[cfg(test)]
pub(super) fn test_source(name: &str, precedence: u8, rows: &[(&str, i64, f64, i64)], open_us: i64) -> SourceRows {
    let f = |v: Vec<f64>| Arc::new(Float64Array::from(v)) as ArrayRef;
    let close: Vec<f64> = rows.iter().map(|r| r.2).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("symbol", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as ArrayRef),
        (
            "ts",
            Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| open_us + r.1 * MINUTE_US))
                    .with_timezone("UTC"),
            ),
        ),
        ("open", f(close.clone())),
        ("high", f(close.clone())),
        ("low", f(close.clone())),
        ("close", f(close)),
        ("volume", Arc::new(Int64Array::from(vec![10; rows.len()]))),
        ("source", Arc::new(StringArray::from(vec![name; rows.len()]))),
        (
            "ingested_at",
            Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.3)).with_timezone("UTC")),
        ),
    ])
    .unwrap();
    SourceRows::new(format!("raw_{name}_bars").into(), precedence, &batch).unwrap()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::NyseCalendar;

    type Raw<'a> = (&'a str, i64, f64, i64);

    #[test]
    fn a_symbol_session_comes_whole_from_its_best_source_deduplicated_on_the_grid() {
        let day: NaiveDate = "2024-11-29".parse().unwrap(); // an early close: 210 minutes
        let session = NyseCalendar.session(day).unwrap();
        let open = session.open.timestamp_micros();
        // tws (preferred) has only a pre-market bar for A, so A comes from polygon; B from tws.
        let tws = test_source(
            "tws",
            0,
            &[("A", -60, 10.0, 1), ("B", 0, 20.0, 1), ("B", 3, 21.0, 1), ("B", 300, 22.0, 1)],
            open,
        );
        // polygon: A's minute 1 twice (the later ingested wins), an invalid bar, an off-grid bar.
        let mut rows: Vec<Raw> =
            vec![("A", 0, 11.0, 1), ("A", 1, 12.0, 1), ("A", 1, 13.0, 5), ("A", 2, -1.0, 1), ("B", 1, 30.0, 1)];
        rows.push(("A", 209, 14.0, 1));
        let polygon = test_source("polygon", 1, &rows, open);
        let sources = [tws, polygon];
        let p = merge(day, Some(&session), &sources).unwrap();
        assert_eq!(p.refused, [((1, 3), "price <= 0")]);
        assert_eq!(p.merged.symbols, ["A", "B"]);
        let counts: Vec<(&str, u64, u64)> =
            p.counts.iter().map(|c| (c.symbol.as_str(), c.chosen, c.superseded)).collect();
        assert_eq!(counts, [("A", 4, 1), ("B", 3, 1)]);
        let (_, a0, a1) = p.merged.runs[0];
        assert_eq!(a1 - a0, 210, "A's grid, all of it regular: polygon has no extended bar");
        let bars: Vec<Option<RowRef>> = p.merged.bar[a0..a0 + 4].to_vec();
        assert_eq!(
            bars,
            [Some((1, 0)), Some((1, 2)), None, None],
            "minute 1 is the newer row; minute 2 was refused, 3 never came"
        );
        assert_eq!(p.merged.bar[a1 - 1], Some((1, 5)));
        let (_, b0, b1) = p.merged.runs[1];
        assert_eq!(b1 - b0, 211, "B's grid and its after-hours bar");
        assert_eq!(
            (p.merged.is_rth[b1 - 1], p.merged.minute_idx[b1 - 1], p.merged.ts[b1 - 1]),
            (false, None, open + 300 * MINUTE_US)
        );
        assert_eq!(p.merged.minute_idx[b0 + 3], Some(3));
        assert_eq!(p.merged.bar[b0 + 1], None, "polygon's B bar lost to tws");

        let rejects = rejects_batch(&p, &sources, "job", 7).unwrap();
        assert_eq!(rejects.num_rows(), 1);
        assert_eq!(rejects.column_by_name("dataset").unwrap().as_string::<i32>().value(0), "raw_polygon_bars");
        // A weekend date refuses everything.
        let saturday: NaiveDate = "2024-11-30".parse().unwrap();
        let p = merge(saturday, None, &sources).unwrap();
        assert_eq!((p.refused.len(), p.merged.ts.len(), p.counts.len()), (10, 0, 0));
        assert!(p.refused.iter().all(|(_, r)| *r == "not an NYSE session"));
    }

    #[test]
    fn unsorted_rows_merge_like_sorted_ones() {
        let day: NaiveDate = "2024-03-08".parse().unwrap();
        let session = NyseCalendar.session(day).unwrap();
        let open = session.open.timestamp_micros();
        let rows: Vec<Raw> = vec![("B", 5, 2.0, 1), ("A", 7, 1.0, 1), ("B", 1, 3.0, 1), ("A", 2, 4.0, 1)];
        let p = merge(day, Some(&session), &[test_source("file", 0, &rows, open)]).unwrap();
        let real: Vec<(usize, Option<i32>, RowRef)> =
            (0..p.merged.ts.len()).filter_map(|i| p.merged.bar[i].map(|b| (i, p.merged.minute_idx[i], b))).collect();
        assert_eq!(real, [(2, Some(2), (0, 3)), (7, Some(7), (0, 1)), (391, Some(1), (0, 2)), (395, Some(5), (0, 0))]);
    }
}
