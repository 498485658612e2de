//! One session's regular-session bars, reduced to what labels read: per symbol, its rows in `ts` order
//! with the minute of the session, the close and the split factor of the symbol-session, and the
//! series it belongs to across sessions (its security, when stamped: [`SeriesKey`]).

use std::collections::HashMap;
use std::ops::Range;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use chrono::NaiveDate;

use crate::error::{Error, Result};
use crate::reference::securities::{SECURITY_ID, SeriesKey, security_column};

/// The input columns labels read (`security_id` when the input has it).
pub(super) const COLUMNS: [&str; 6] = ["symbol", "ts", "close", "is_rth", "minute_idx", SECURITY_ID];

/// The regular-session rows of every symbol in one session.
#[derive(Debug)]
pub(super) struct SessionBars {
    /// The session's number in the range read: session horizons and daily returns count sessions by it.
    pub idx: usize,
    pub date: NaiveDate,
    /// In ascending order of symbol, each with a contiguous range of the rows below.
    pub symbols: Vec<SymbolRows>,
    pub ts: Vec<i64>,
    /// None on a row without a minute: it has no forward return and no daily close.
    pub minute: Vec<Option<i32>>,
    pub close: Vec<f64>,
    /// Index into `symbols` by series: what a later session finds this one's rows by.
    by_series: HashMap<SeriesKey, usize>,
}

/// One symbol's rows of a session.
#[derive(Debug)]
pub(super) struct SymbolRows {
    pub symbol: String,
    /// The security the rows are stamped with.
    pub security_id: Option<i64>,
    /// What the symbol's rows continue across sessions: its security, else the symbol.
    pub series: SeriesKey,
    pub rows: Range<usize>,
    /// Puts the session's prices on the share basis of the range's last session (1.0 without a later split).
    pub factor: f64,
    /// The split-adjusted close of the last minute; None when no row has a minute.
    pub daily_close: Option<f64>,
}

impl SymbolRows {
    /// The split-adjusted close, what a ratio across sessions divides.
    pub fn adj_close(&self, close: f64) -> f64 {
        close * self.factor
    }
}

impl SessionBars {
    /// A session without data.
    pub fn empty(idx: usize, date: NaiveDate) -> Self {
        Self {
            idx,
            date,
            symbols: Vec::new(),
            ts: Vec::new(),
            minute: Vec::new(),
            close: Vec::new(),
            by_series: HashMap::new(),
        }
    }

    pub fn rows(&self) -> usize {
        self.ts.len()
    }

    /// The regular-session rows of `batches` (columns [`COLUMNS`], rows sorted by symbol then ts as the
    /// curated layer stores them), with each symbol's split factor from `factors` (1.0 when absent).
    pub fn from_batches(
        idx: usize,
        date: NaiveDate,
        batches: &[RecordBatch],
        factors: &HashMap<String, f64>,
    ) -> Result<Self> {
        let mut out = Self::empty(idx, date);
        let bad = |what: String| Error::invalid(format!("labels: input partition {date}: {what}"));
        // Minute of the previous row with one, within the current symbol.
        let mut last_minute: Option<i32> = None;
        for b in batches {
            let [symbol, ts, close, rth, minute, _] = COLUMNS.map(|c| b.column_by_name(c));
            let security = security_column(b)?;
            let (Some(symbol), Some(ts), Some(close), Some(rth), Some(minute)) = (
                symbol.and_then(|c| c.as_string_opt::<i32>()),
                ts.and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()),
                close.and_then(|c| c.as_primitive_opt::<Float64Type>()),
                rth.and_then(|c| c.as_boolean_opt()),
                minute.and_then(|c| c.as_primitive_opt::<Int32Type>()),
            ) else {
                return Err(bad(
                    "needs symbol (utf8), ts (timestamp), close (float64), is_rth (bool), minute_idx (int32)".into(),
                ));
            };
            for r in 0..b.num_rows() {
                if !rth.is_valid(r) || !rth.value(r) {
                    continue;
                }
                if symbol.is_null(r) || ts.is_null(r) || close.is_null(r) {
                    return Err(bad("a regular-session row without symbol, ts or close".into()));
                }
                let (s, t, c) = (symbol.value(r), ts.value(r), close.value(r));
                // Daily returns and every horizon take logs of ratios: DuckDB refused non-positive ones.
                if !(c.is_finite() && c > 0.0) {
                    return Err(bad(format!("{s}: close {c} at ts {t} is not a positive price")));
                }
                let m = minute.is_valid(r).then(|| minute.value(r));
                let i = out.ts.len();
                match out.symbols.last_mut() {
                    Some(run) if run.symbol == s => {
                        // Horizons step through a symbol's rows in minute order: the layer's (symbol, ts)
                        // order is that order when minutes rise with ts, as they do on the session grid.
                        if t <= out.ts[i - 1] || m.is_some_and(|m| last_minute.is_some_and(|l| m <= l)) {
                            return Err(bad(format!(
                                "{s}: rows are not in strictly rising ts and minute_idx order at ts {t}"
                            )));
                        }
                        run.rows.end = i + 1;
                    }
                    last => {
                        if let Some(prev) = last.filter(|run| run.symbol.as_str() > s) {
                            return Err(bad(format!("rows are not sorted by symbol ({s} after {})", prev.symbol)));
                        }
                        let factor = factors.get(s).copied().unwrap_or(1.0);
                        let security_id = security.and_then(|ids| ids.is_valid(r).then(|| ids.value(r)));
                        let series = SeriesKey::of(s, security_id)?;
                        if out.by_series.insert(series.clone(), out.symbols.len()).is_some() {
                            return Err(bad(format!(
                                "{s}: security {} has rows under two symbols",
                                security_id.unwrap_or_default()
                            )));
                        }
                        out.symbols.push(SymbolRows {
                            symbol: s.to_string(),
                            security_id,
                            series,
                            rows: i..i + 1,
                            factor,
                            daily_close: None,
                        });
                        last_minute = None;
                    }
                }
                if let (Some(m), Some(run)) = (m, out.symbols.last_mut()) {
                    last_minute = Some(m);
                    run.daily_close = Some(run.adj_close(c));
                }
                out.ts.push(t);
                out.minute.push(m);
                out.close.push(c);
            }
        }
        Ok(out)
    }

    /// The rows of `series`, if it has any this session.
    pub fn find_series(&self, series: &SeriesKey) -> Option<&SymbolRows> {
        self.by_series.get(series).map(|&i| &self.symbols[i])
    }

    /// The rows of `symbol`, if it has any this session.
    pub fn find(&self, symbol: &str) -> Option<&SymbolRows> {
        self.symbols.binary_search_by(|run| run.symbol.as_str().cmp(symbol)).ok().map(|i| &self.symbols[i])
    }

    /// The rows of `run` that have a minute, in minute order, into `out`.
    pub fn timed_rows(&self, run: &SymbolRows, out: &mut Vec<usize>) {
        out.clear();
        out.extend(run.rows.clone().filter(|&r| self.minute[r].is_some()));
    }
}
