//! One session's labels: the forward returns of every regular-session bar, the market's at the same
//! bar, and the residuals against it with the symbol's beta of the day.

use std::collections::HashMap;
use std::sync::Arc;

use arrow::array::{
    ArrayRef, BooleanBufferBuilder, Float64Array, Int64Array, RecordBatch, StringBuilder, TimestampMicrosecondArray,
};
use arrow::buffer::{NullBuffer, ScalarBuffer};
use arrow::datatypes::{ArrowNativeType, DataType, Field, Schema, SchemaRef, TimeUnit};
use rayon::prelude::*;

use super::bars::{SessionBars, SymbolRows};
use super::daily::Market;
use crate::error::{Error, Result};
use crate::features::definition::{Horizon, LabelSet};
use crate::reference::securities::SECURITY_ID;

/// A label set's targets as the computation needs them.
#[derive(Debug, Clone)]
pub(super) struct Targets {
    /// The targets with a horizon, in the set's order.
    pub plain: Vec<Plain>,
    /// (name, index in `plain` of the target it is the residual of), in the set's order.
    pub residuals: Vec<(String, usize)>,
    /// One bar in microseconds: a bar stamped ts is known at ts + one bar.
    pub bar_us: i64,
    pub market: Market,
}

#[derive(Debug, Clone)]
pub(super) struct Plain {
    pub name: String,
    pub ahead: Ahead,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Ahead {
    /// The bar this many minutes on, in the same session.
    Minutes(u32),
    /// The same minute this many sessions on, split-adjusted.
    Sessions(u32),
}

impl Targets {
    pub fn of(set: &LabelSet) -> Result<Self> {
        let mut plain = Vec::new();
        for t in &set.targets {
            let ahead = match &t.horizon {
                Horizon::Minutes(h) => Ahead::Minutes(*h),
                Horizon::Sessions(h) => Ahead::Sessions(*h),
                Horizon::ResidualOf(_) => continue,
            };
            plain.push(Plain { name: t.name.clone(), ahead });
        }
        if plain.is_empty() {
            return Err(Error::invalid(format!("label set '{}' has no plain target", set.name)));
        }
        let mut residuals = Vec::new();
        for t in &set.targets {
            if let Horizon::ResidualOf(of) = &t.horizon {
                let i = plain.iter().position(|p| p.name == *of).ok_or_else(|| {
                    Error::invalid(format!(
                        "label set '{}': target '{}' is the residual of '{of}', which is not a plain target",
                        set.name, t.name
                    ))
                })?;
                residuals.push((t.name.clone(), i));
            }
        }
        Ok(Self {
            plain,
            residuals,
            bar_us: i64::from(set.bar_minutes) * 60_000_000,
            market: Market::parse(&set.market),
        })
    }

    /// The most sessions a target looks ahead.
    pub fn sessions_ahead(&self) -> usize {
        self.plain
            .iter()
            .filter_map(|p| if let Ahead::Sessions(h) = p.ahead { Some(h as usize) } else { None })
            .max()
            .unwrap_or(0)
    }

    /// The columns of a session's labels: symbol, ts, decision_time, each plain target and its `_end`,
    /// beta, each residual, security_id.
    pub fn schema(&self) -> SchemaRef {
        let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
        let mut fields = vec![
            Field::new("symbol", DataType::Utf8, false),
            Field::new("ts", ts.clone(), false),
            Field::new("decision_time", ts.clone(), false),
        ];
        for p in &self.plain {
            fields.push(Field::new(&p.name, DataType::Float64, true));
            fields.push(Field::new(format!("{}_end", p.name), ts.clone(), true));
        }
        fields.push(Field::new("beta", DataType::Float64, true));
        for (name, _) in &self.residuals {
            fields.push(Field::new(name, DataType::Float64, true));
        }
        fields.push(Field::new(SECURITY_ID, DataType::Int64, true));
        Arc::new(Schema::new(fields))
    }
}

/// Values over some consecutive rows of a session, with their validity, as they become an Arrow
/// column without a copy.
#[derive(Debug)]
struct Values<T> {
    /// The session row of the first value.
    base: usize,
    values: Vec<T>,
    valid: BooleanBufferBuilder,
}

impl<T: Copy + Default> Values<T> {
    fn nulls(base: usize, len: usize) -> Self {
        let mut valid = BooleanBufferBuilder::new(len);
        valid.append_n(len, false);
        Self { base, values: vec![T::default(); len], valid }
    }

    fn set(&mut self, row: usize, value: T) {
        self.values[row - self.base] = value;
        self.valid.set_bit(row - self.base, true);
    }

    fn get(&self, row: usize) -> Option<T> {
        let i = row - self.base;
        self.valid.get_bit(i).then(|| self.values[i])
    }

    fn into_parts(mut self) -> (ScalarBuffer<T>, Option<NullBuffer>)
    where
        T: ArrowNativeType,
    {
        (ScalarBuffer::from(self.values), Some(NullBuffer::new(self.valid.finish())))
    }
}

/// One plain target over some consecutive rows of a session: the return, and when its last bar is known.
#[derive(Debug)]
struct Column {
    values: Values<f64>,
    ends: Values<i64>,
}

impl Column {
    fn set(&mut self, row: usize, value: f64, end: i64) {
        self.values.set(row, value);
        self.ends.set(row, end);
    }
}

/// Symbols per rayon task.
const SYMBOLS_PER_TASK: usize = 16;

/// The labels of every row of `bars`, in its (symbol, ts) order, a batch per group of symbols. `later`
/// holds the sessions after it (those the range has), `betas` the beta of each of its symbols.
pub(super) fn label_session(
    bars: &SessionBars,
    later: &[Arc<SessionBars>],
    betas: &[Option<f64>],
    targets: &Targets,
) -> Result<Vec<RecordBatch>> {
    let groups: Vec<(&[SymbolRows], &[Option<f64>])> =
        bars.symbols.chunks(SYMBOLS_PER_TASK).zip(betas.chunks(SYMBOLS_PER_TASK)).collect();
    let plain: Vec<Vec<Column>> =
        groups.par_iter().map(|(runs, _)| forward_returns(bars, runs, later, targets)).collect();
    let market = MarketForward::new(bars, &plain, &targets.market);
    let schema = targets.schema();
    groups
        .into_par_iter()
        .zip(plain)
        .map(|((runs, betas), columns)| group_batch(bars, runs, betas, columns, &market, targets, &schema))
        .collect()
}

/// The rows of some consecutive symbols as a batch of the label schema.
fn group_batch(
    bars: &SessionBars,
    runs: &[SymbolRows],
    betas: &[Option<f64>],
    columns: Vec<Column>,
    market: &MarketForward,
    targets: &Targets,
    schema: &SchemaRef,
) -> Result<RecordBatch> {
    let rows = runs.first().map_or(0, |r| r.rows.start)..runs.last().map_or(0, |r| r.rows.end);
    let mut symbol = StringBuilder::with_capacity(rows.len(), runs.iter().map(|r| r.symbol.len() * r.rows.len()).sum());
    let mut beta = Values::nulls(rows.start, rows.len());
    let mut security = Values::nulls(rows.start, rows.len());
    for (run, b) in runs.iter().zip(betas) {
        for r in run.rows.clone() {
            symbol.append_value(&run.symbol);
            if let Some(b) = b {
                beta.set(r, *b);
            }
            if let Some(id) = run.security_id {
                security.set(r, id);
            }
        }
    }
    let mut residuals = Vec::with_capacity(targets.residuals.len());
    for (_, of) in &targets.residuals {
        let mut residual = Values::nulls(rows.start, rows.len());
        for r in rows.clone() {
            if let (Some(v), Some(b), Some(m)) = (columns[*of].values.get(r), beta.get(r), market.value(*of, r)) {
                residual.set(r, v - b * m);
            }
        }
        residuals.push(residual);
    }
    let utc = |(values, nulls): (ScalarBuffer<i64>, Option<NullBuffer>)| {
        Arc::new(TimestampMicrosecondArray::new(values, nulls).with_timezone("UTC")) as ArrayRef
    };
    let float = |(values, nulls): (ScalarBuffer<f64>, Option<NullBuffer>)| {
        Arc::new(Float64Array::new(values, nulls)) as ArrayRef
    };
    let ts = &bars.ts[rows.clone()];
    let mut out: Vec<ArrayRef> = vec![
        Arc::new(symbol.finish()),
        utc((ScalarBuffer::from(ts.to_vec()), None)),
        utc((ts.iter().map(|t| t + targets.bar_us).collect(), None)),
    ];
    for c in columns {
        out.push(float(c.values.into_parts()));
        out.push(utc(c.ends.into_parts()));
    }
    out.push(float(beta.into_parts()));
    out.extend(residuals.into_iter().map(|r| float(r.into_parts())));
    let (ids, valid) = security.into_parts();
    out.push(Arc::new(Int64Array::new(ids, valid)));
    Ok(RecordBatch::try_new(schema.clone(), out)?)
}

/// The plain targets of some consecutive symbols' rows.
fn forward_returns(
    bars: &SessionBars,
    runs: &[SymbolRows],
    later: &[Arc<SessionBars>],
    targets: &Targets,
) -> Vec<Column> {
    let (base, end) = (runs.first().map_or(0, |r| r.rows.start), runs.last().map_or(0, |r| r.rows.end));
    let mut timed = Vec::new();
    targets
        .plain
        .iter()
        .map(|p| {
            let mut c = Column { values: Values::nulls(base, end - base), ends: Values::nulls(base, end - base) };
            for run in runs {
                bars.timed_rows(run, &mut timed);
                match p.ahead {
                    Ahead::Minutes(h) => minutes_ahead(bars, &timed, h as usize, targets.bar_us, &mut c),
                    Ahead::Sessions(h) => {
                        let next = later.iter().find(|s| s.idx == bars.idx + h as usize);
                        if let Some((next, next_run)) = next.and_then(|n| Some((n, n.find_series(&run.series)?))) {
                            sessions_ahead(bars, run, &timed, next, next_run, targets.bar_us, &mut c);
                        }
                    }
                }
            }
            c
        })
        .collect()
}

/// ln(close h bars on / close) where the bar h rows on in minute order is h minutes on (none is
/// missing between): unadjusted, inside one session.
fn minutes_ahead(bars: &SessionBars, timed: &[usize], h: usize, bar_us: i64, out: &mut Column) {
    for (k, &r) in timed.iter().enumerate() {
        let Some(&n) = timed.get(k + h) else { break };
        let (Some(m), Some(mn)) = (bars.minute[r], bars.minute[n]) else { continue };
        if i64::from(mn) == i64::from(m) + h as i64 {
            out.set(r, (bars.close[n] / bars.close[r]).ln(), bars.ts[n] + bar_us);
        }
    }
}

/// ln(split-adjusted close at the same minute of session `next` / split-adjusted close): both runs'
/// minutes rise, so one merge pass pairs them.
fn sessions_ahead(
    bars: &SessionBars,
    run: &SymbolRows,
    timed: &[usize],
    next: &SessionBars,
    next_run: &SymbolRows,
    bar_us: i64,
    out: &mut Column,
) {
    let mut j = next_run.rows.start;
    for &r in timed {
        let Some(m) = bars.minute[r] else { continue };
        while j < next_run.rows.end && next.minute[j].is_none_or(|n| n < m) {
            j += 1;
        }
        if j == next_run.rows.end {
            break;
        }
        if next.minute[j] == Some(m) {
            out.set(r, (next_run.adj_close(next.close[j]) / run.adj_close(bars.close[r])).ln(), next.ts[j] + bar_us);
        }
    }
}

/// The market's plain targets at each ts of a session: the mean over the symbols with one (ignoring
/// those without), or the market symbol's.
struct MarketForward {
    /// Per row of the session, the slot of its ts; [`NO_SLOT`] where the market has no row at that ts.
    row_slot: Vec<u32>,
    /// Per plain target, per slot.
    values: Vec<Vec<Option<f64>>>,
}

const NO_SLOT: u32 = u32::MAX;

impl MarketForward {
    /// From the plain targets of each group of symbols, in row order.
    fn new(bars: &SessionBars, groups: &[Vec<Column>], market: &Market) -> Self {
        let mut slot: HashMap<i64, u32> = HashMap::new();
        let targets = groups.first().map_or(0, Vec::len);
        match market {
            Market::EqualWeight => {
                let row_slot: Vec<u32> = bars
                    .ts
                    .iter()
                    .map(|t| {
                        let next = slot.len() as u32;
                        *slot.entry(*t).or_insert(next)
                    })
                    .collect();
                let values = (0..targets)
                    .map(|target| {
                        let (mut sum, mut count) = (vec![0.0; slot.len()], vec![0u32; slot.len()]);
                        for c in groups.iter().map(|g| &g[target].values) {
                            for (i, v) in c.values.iter().enumerate() {
                                if c.valid.get_bit(i) {
                                    let s = row_slot[c.base + i] as usize;
                                    sum[s] += v;
                                    count[s] += 1;
                                }
                            }
                        }
                        sum.iter().zip(count).map(|(s, n)| (n > 0).then(|| s / f64::from(n))).collect()
                    })
                    .collect();
                Self { row_slot, values }
            }
            Market::Symbol(m) => {
                // Its ts rise strictly: one slot per row, in the group that holds it.
                let rows = bars.find(m).map_or(0..0, |run| run.rows.clone());
                let group = groups.iter().find(|g| {
                    g.first().is_some_and(|c| {
                        rows.start >= c.values.base && rows.start < c.values.base + c.values.values.len()
                    })
                });
                slot.extend(rows.clone().enumerate().map(|(k, r)| (bars.ts[r], k as u32)));
                let row_slot = bars.ts.iter().map(|t| slot.get(t).copied().unwrap_or(NO_SLOT)).collect();
                let values = (0..targets)
                    .map(|target| rows.clone().map(|r| group.and_then(|g| g[target].values.get(r))).collect())
                    .collect();
                Self { row_slot, values }
            }
        }
    }

    /// The market's value of plain target `target` at the ts of session row `row`.
    fn value(&self, target: usize, row: usize) -> Option<f64> {
        match self.row_slot[row] {
            NO_SLOT => None,
            s => self.values[target][s as usize],
        }
    }
}
