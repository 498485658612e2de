//! Label sets: forward returns and residual returns, computed natively from the curated partitions.
//!
//! The input is read one session partition at a time, in order, and only its regular-session rows
//! and the columns labels need ([`bars`]). A session is labelled once the sessions its horizons reach
//! are read ([`forward`], on rayon), so a few sessions are held at a time; the trailing betas need only
//! the daily closes of the sessions before, kept for the whole range ([`daily`]).
//!
//! Semantics (the set's contract describes them for readers): sessions are numbered over the NYSE
//! calendar of the range read; a minute horizon h reads the row h rows on in the symbol-session's
//! minute order, and only if it is h minutes on; a session horizon the same minute h sessions on;
//! returns across sessions use split-adjusted closes; the daily return is from one session's last close
//! to the next's, only between consecutive sessions; beta is DuckDB's `regr_slope` of the symbol's
//! daily returns on the market's over the `beta_sessions` sessions before the day (by number), null
//! with fewer than `beta_min_sessions` pairs; the market's forward return at a ts is the mean over
//! the symbols' (or the market symbol's).

mod bars;
mod daily;
mod forward;

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use arrow::array::RecordBatch;
use chrono::NaiveDate;
use futures::{SinkExt, StreamExt};

use self::bars::SessionBars;
use self::daily::DailyReturns;
use self::forward::Targets;
use super::definition::{Horizon, LabelSet};
use crate::calendar::NyseCalendar;
use crate::contract::Partitioning;
use crate::error::{Error, Result};
use crate::reference::corporate_actions::SplitHistory;
use crate::table::Dataset;
use crate::table::layout::PartitionKey;
use crate::table::manifest::TableState;
use crate::table::operations::write::{StagedPartition, Stager};

/// The sessions a label set reads to label `start..=end`: the trailing beta window before, and the
/// longest session horizon after.
pub fn read_range(set: &LabelSet, start: NaiveDate, end: NaiveDate) -> (NaiveDate, NaiveDate) {
    let ahead = set
        .targets
        .iter()
        .filter_map(|t| if let Horizon::Sessions(n) = t.horizon { Some(n) } else { None })
        .max()
        .unwrap_or(0);
    (
        NyseCalendar.add_sessions(start, -(i64::from(set.beta_sessions) + 1)),
        NyseCalendar.add_sessions(end, i64::from(ahead)),
    )
}

/// Each (symbol, session) of `from..=to` whose prices a later split in the range changes, with the
/// factor that puts them on the share basis of `to`: the split-adjustment [`compute`] applies to
/// returns across sessions (1.0, and so no row, elsewhere).
pub fn split_factors(splits: &SplitHistory, from: NaiveDate, to: NaiveDate) -> Vec<(String, NaiveDate, f64)> {
    let sessions = NyseCalendar.sessions(from, to);
    let mut symbols: Vec<&str> =
        splits.splits().filter(|(_, ex, _)| *ex > from && *ex <= to).map(|(s, _, _)| s.as_str()).collect();
    symbols.sort_unstable();
    symbols.dedup();
    let mut out = Vec::new();
    for symbol in symbols {
        for s in &sessions {
            let factor = splits.price_ratio_between(symbol, s.date, to);
            if factor != 1.0 {
                out.push((symbol.to_string(), s.date, factor));
            }
        }
    }
    out
}

/// Input partitions read ahead of the session being labelled.
const PARTITIONS_IN_FLIGHT: usize = 2;

/// Computes `set`'s labels for the sessions `start..=end` from `input` at `state` and stages each
/// session's partition of `out` (the set's dataset) as soon as it is labelled, so memory holds a few
/// sessions, not the range; returns the staged partitions (none staged if it fails). `price_factors`
/// back-adjusts each (symbol, session)'s prices for the splits after it (1.0 when absent).
pub async fn compute(
    input: &Dataset,
    state: &TableState,
    set: &LabelSet,
    start: NaiveDate,
    end: NaiveDate,
    price_factors: &[(String, NaiveDate, f64)],
    out: &Dataset,
) -> Result<Vec<StagedPartition>> {
    let partitioning = input.contract().partitioning;
    if partitioning != Partitioning::Date {
        return Err(Error::invalid(format!(
            "label set '{}': input '{}' must be date-partitioned",
            set.name,
            input.name()
        )));
    }
    let targets = Arc::new(Targets::of(set)?);
    let (read_start, read_end) = read_range(set, start, end);
    let sessions = NyseCalendar.sessions(read_start, read_end);
    let mut factors: HashMap<NaiveDate, HashMap<String, f64>> = HashMap::new();
    for (symbol, date, factor) in price_factors {
        factors.entry(*date).or_default().insert(symbol.clone(), *factor);
    }

    // Sessions are read ahead, in order, while the consumer labels: a channel joins the two so the
    // reads go on while a session is labelled.
    let (tx, mut rx) = futures::channel::mpsc::channel::<SessionBars>(1);
    let reads = futures::stream::iter(sessions.iter().enumerate().map(|(idx, s)| {
        let date = s.date;
        let entry = state.partitions.get(&PartitionKey::for_date(partitioning, date).to_string()).cloned();
        let factors = factors.remove(&date).unwrap_or_default();
        async move {
            let Some(entry) = entry else { return Ok(SessionBars::empty(idx, date)) };
            let batches = input.read_partition_columns(&entry, &super::input_columns(input, &bars::COLUMNS)).await?;
            blocking(move || SessionBars::from_batches(idx, date, &batches, &factors)).await
        }
    }))
    .buffered(PARTITIONS_IN_FLIGHT);
    let produce = reads.forward(tx.sink_map_err(|_| Error::invalid("labels: the session reader lost its consumer")));

    let consume = async {
        let mut labeller = Labeller::new(set, targets, start..=end);
        let mut stager = Stager::new(out, PARTITIONS_IN_FLIGHT);
        let mut labelled = Ok(());
        // A session is labelled when the sessions its horizons reach are in, the last ones at the end.
        loop {
            let next = match rx.next().await {
                Some(bars) => labeller.push(bars).await,
                None if labeller.is_empty() => break,
                None => labeller.label_oldest().await,
            };
            let done = match next {
                Ok(Some((date, rows))) => stage_session(&mut stager, out, date, rows).await,
                Ok(None) => Ok(()),
                Err(e) => Err(e),
            };
            if done.is_err() {
                labelled = done;
                break; // dropping the receiver stops the reads
            }
        }
        (labelled, stager, labeller.seconds)
    };
    let started = std::time::Instant::now();
    // Both run to their end, so that whatever was staged is known and can be discarded on a failure.
    let (read, (labelled, stager, label_seconds)) = futures::join!(produce, consume);
    if let Err(e) = labelled.and(read) {
        stager.abandon().await;
        return Err(e);
    }
    let staged = stager.finish().await?;
    tracing::debug!(set = %set.name, sessions = sessions.len(), seconds = started.elapsed().as_secs_f64(), label_seconds, "labels computed");
    Ok(staged)
}

/// One labelled session's rows.
type Labelled = (NaiveDate, Vec<RecordBatch>);

/// Stages a labelled session's rows as its partition of `out` (in the background).
async fn stage_session(stager: &mut Stager, out: &Dataset, date: NaiveDate, rows: Vec<RecordBatch>) -> Result<()> {
    let rows: Vec<RecordBatch> =
        rows.iter().filter(|b| b.num_rows() > 0).map(|b| out.contract().conform_batch(b)).collect::<Result<_>>()?;
    if rows.is_empty() {
        return Ok(());
    }
    stager.stage(PartitionKey::for_date(out.contract().partitioning, date), rows, None).await
}

/// Labels sessions as they come in, in order.
struct Labeller {
    targets: Arc<Targets>,
    range: std::ops::RangeInclusive<NaiveDate>,
    daily: DailyReturns,
    /// The sessions read and not yet labelled: the oldest is labelled once the sessions its horizons
    /// reach are in.
    window: VecDeque<Arc<SessionBars>>,
    /// Time spent labelling (the rest is waiting for input or staging).
    seconds: f64,
}

impl Labeller {
    fn new(set: &LabelSet, targets: Arc<Targets>, range: std::ops::RangeInclusive<NaiveDate>) -> Self {
        let daily = DailyReturns::new(daily::Market::parse(&set.market), set.beta_sessions, set.beta_min_sessions);
        Self { targets, range, daily, window: VecDeque::new(), seconds: 0.0 }
    }

    /// Takes the next session read; returns the session this lets be labelled, if any (and in range).
    async fn push(&mut self, bars: SessionBars) -> Result<Option<Labelled>> {
        self.daily.add(&bars);
        self.window.push_back(Arc::new(bars));
        if self.window.len() > self.targets.sessions_ahead() {
            return self.label_oldest().await;
        }
        Ok(None)
    }

    /// Whether every session read is labelled.
    fn is_empty(&self) -> bool {
        self.window.is_empty()
    }

    /// Labels the oldest session not labelled yet (at the end: their horizons reach past the range
    /// read); `None` if it is outside the range or has no rows.
    async fn label_oldest(&mut self) -> Result<Option<Labelled>> {
        let Some(session) = self.window.pop_front() else { return Ok(None) };
        if !self.range.contains(&session.date) || session.rows() == 0 {
            return Ok(None);
        }
        let t0 = std::time::Instant::now();
        let date = session.date;
        let betas: Vec<Option<f64>> =
            session.symbols.iter().map(|run| self.daily.beta(&run.series, session.idx)).collect();
        let later: Vec<Arc<SessionBars>> = self.window.iter().cloned().collect();
        let targets = self.targets.clone();
        let rows = blocking(move || forward::label_session(&session, &later, &betas, &targets)).await?;
        self.seconds += t0.elapsed().as_secs_f64();
        Ok(Some((date, rows)))
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use arrow::array::{
        Array, AsArray, BooleanArray, Float64Array, Int32Array, StringArray, TimestampMicrosecondArray,
    };
    use arrow::datatypes::{Float64Type, TimestampMicrosecondType};
    use chrono::Duration;

    use super::*;
    use crate::features::definition::Target;

    const MINUTE: i64 = 60_000_000;

    fn day(idx: usize) -> NaiveDate {
        NaiveDate::from_ymd_opt(2024, 3, 4).unwrap() + Duration::days(idx as i64)
    }

    /// Bar ts of a minute of session `idx` (sessions a day apart).
    fn ts(idx: usize, minute: i32) -> i64 {
        1_709_562_600_000_000 + idx as i64 * 86_400 * 1_000_000 + i64::from(minute) * MINUTE
    }

    /// A symbol's security and (minute, close) rows.
    type SecurityRows<'a> = (&'a str, Option<i64>, &'a [(i32, f64)]);

    /// Session `idx` with each symbol's (minute, close) rows, through the same reduction as a partition.
    fn session(idx: usize, symbols: &[(&str, &[(i32, f64)])], factors: &[(&str, f64)]) -> SessionBars {
        let ids: Vec<SecurityRows> = symbols.iter().map(|(s, bars)| (*s, None, *bars)).collect();
        session_of(idx, &ids, factors)
    }

    /// [`session`] with each symbol's security (`security_id`).
    fn session_of(idx: usize, symbols: &[SecurityRows], factors: &[(&str, f64)]) -> SessionBars {
        let rows: Vec<(&str, i32, f64, Option<i64>)> =
            symbols.iter().flat_map(|(s, id, bars)| bars.iter().map(move |(m, c)| (*s, *m, *c, *id))).collect();
        let batch = RecordBatch::try_from_iter([
            ("symbol", Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.0))) as _),
            (
                "ts",
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| ts(idx, r.1))).with_timezone("UTC"),
                ) as _,
            ),
            ("close", Arc::new(Float64Array::from_iter_values(rows.iter().map(|r| r.2))) as _),
            ("is_rth", Arc::new(BooleanArray::from(vec![true; rows.len()])) as _),
            ("minute_idx", Arc::new(Int32Array::from_iter_values(rows.iter().map(|r| r.1))) as _),
            ("security_id", Arc::new(arrow::array::Int64Array::from_iter(rows.iter().map(|r| r.3))) as _),
        ])
        .unwrap();
        let factors: HashMap<String, f64> = factors.iter().map(|(s, f)| (s.to_string(), *f)).collect();
        SessionBars::from_batches(idx, day(idx), &[batch], &factors).unwrap()
    }

    /// A 2-minute and a 1-session target with their residuals.
    fn label_set(market: &str, beta_sessions: u32, beta_min_sessions: u32) -> LabelSet {
        let target = |name: &str, horizon| Target { name: name.into(), horizon };
        LabelSet {
            name: "labels_unit".into(),
            version: 1,
            input: "curated_1m_bars".into(),
            bar_minutes: 1,
            market: market.into(),
            beta_sessions,
            beta_min_sessions,
            targets: vec![
                target("fwd_2m", Horizon::Minutes(2)),
                target("fwd_1d", Horizon::Sessions(1)),
                target("resid_2m", Horizon::ResidualOf("fwd_2m".into())),
                target("resid_1d", Horizon::ResidualOf("fwd_1d".into())),
            ],
            definition_sha256: String::new(),
        }
    }

    /// The labels of sessions `labelled` (by number) out of `sessions`, as one batch.
    async fn labels(
        set: &LabelSet,
        sessions: Vec<SessionBars>,
        labelled: std::ops::RangeInclusive<usize>,
    ) -> RecordBatch {
        let targets = Arc::new(Targets::of(set).unwrap());
        let schema = targets.schema();
        let mut labeller = Labeller::new(set, targets, day(*labelled.start())..=day(*labelled.end()));
        let mut batches = Vec::new();
        for s in sessions {
            batches.extend(labeller.push(s).await.unwrap().into_iter().flat_map(|(_, rows)| rows));
        }
        while !labeller.is_empty() {
            batches.extend(labeller.label_oldest().await.unwrap().into_iter().flat_map(|(_, rows)| rows));
        }
        arrow::compute::concat_batches(&schema, &batches).unwrap()
    }

    /// The value of `col` on the row of `symbol` at minute `minute` of session `idx`.
    fn at(b: &RecordBatch, col: &str, symbol: &str, idx: usize, minute: i32) -> Option<f64> {
        let row = row_of(b, symbol, idx, minute);
        let c = b.column_by_name(col).unwrap().as_primitive::<Float64Type>();
        c.is_valid(row).then(|| c.value(row))
    }

    fn end_at(b: &RecordBatch, col: &str, symbol: &str, idx: usize, minute: i32) -> Option<i64> {
        let row = row_of(b, symbol, idx, minute);
        let c = b.column_by_name(col).unwrap().as_primitive::<TimestampMicrosecondType>();
        c.is_valid(row).then(|| c.value(row))
    }

    fn row_of(b: &RecordBatch, symbol: &str, idx: usize, minute: i32) -> usize {
        let symbols = b.column_by_name("symbol").unwrap().as_string::<i32>();
        let times = b.column_by_name("ts").unwrap().as_primitive::<TimestampMicrosecondType>();
        (0..b.num_rows())
            .find(|&i| symbols.value(i) == symbol && times.value(i) == ts(idx, minute))
            .unwrap_or_else(|| panic!("no row {symbol} {idx} {minute}"))
    }

    fn close_to(got: Option<f64>, want: f64) -> bool {
        got.is_some_and(|g| (g - want).abs() <= 1e-12 * want.abs().max(1e-3))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn minute_returns_need_the_bar_exactly_h_minutes_on() {
        // Minute 3 is missing; the session's rows run to minute 7.
        let closes = [(0, 10.0), (1, 10.5), (2, 11.0), (4, 12.0), (5, 12.5), (6, 13.0), (7, 12.8)];
        let b = labels(&label_set("equal_weight", 2, 2), vec![session(0, &[("AAA", &closes)], &[])], 0..=0).await;
        assert_eq!(b.num_rows(), 7);
        assert!(close_to(at(&b, "fwd_2m", "AAA", 0, 0), (11.0f64 / 10.0).ln()));
        assert_eq!(end_at(&b, "fwd_2m_end", "AAA", 0, 0), Some(ts(0, 3)), "known when the bar of minute 2 ends");
        assert_eq!(end_at(&b, "decision_time", "AAA", 0, 0), Some(ts(0, 1)));
        assert_eq!(at(&b, "fwd_2m", "AAA", 0, 1), None, "two rows on is minute 4: minute 3 is missing");
        assert_eq!(end_at(&b, "fwd_2m_end", "AAA", 0, 1), None);
        assert_eq!(at(&b, "fwd_2m", "AAA", 0, 2), None, "two rows on is minute 5");
        assert!(
            close_to(at(&b, "fwd_2m", "AAA", 0, 4), (13.0f64 / 12.0).ln()),
            "after the gap the rows are minutes again"
        );
        assert!(close_to(at(&b, "fwd_2m", "AAA", 0, 5), (12.8f64 / 12.5).ln()));
        assert_eq!(at(&b, "fwd_2m", "AAA", 0, 6), None, "the last two minutes of the session have none");
        assert_eq!(at(&b, "fwd_2m", "AAA", 0, 7), None);
        assert_eq!(at(&b, "fwd_1d", "AAA", 0, 0), None, "no session after the data");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn session_returns_are_split_adjusted() {
        // A 1-for-2 split before session 1: session 0's prices halve to be on its basis.
        let sessions = vec![
            session(0, &[("AAA", &[(0, 200.0), (1, 202.0), (2, 204.0)])], &[("AAA", 0.5)]),
            session(1, &[("AAA", &[(0, 101.0), (2, 99.0)])], &[]),
        ];
        let b = labels(&label_set("equal_weight", 2, 2), sessions, 0..=1).await;
        assert!(close_to(at(&b, "fwd_1d", "AAA", 0, 0), (101.0f64 / 100.0).ln()), "not ln(101/200)");
        assert_eq!(end_at(&b, "fwd_1d_end", "AAA", 0, 0), Some(ts(1, 1)));
        assert_eq!(at(&b, "fwd_1d", "AAA", 0, 1), None, "session 1 has no minute 1");
        assert!(close_to(at(&b, "fwd_1d", "AAA", 0, 2), (99.0f64 / 102.0).ln()));
        // Inside a session the ratio is of raw prices (the factor cancels).
        assert!(close_to(at(&b, "fwd_2m", "AAA", 0, 0), (204.0f64 / 200.0).ln()));
        assert_eq!(at(&b, "fwd_1d", "AAA", 1, 0), None);
    }

    #[test]
    fn daily_returns_are_only_between_consecutive_sessions() {
        let mut daily = DailyReturns::new(daily::Market::EqualWeight, 2, 2);
        daily.add(&session(0, &[("AAA", &[(0, 9.0), (389, 10.0)]), ("BBB", &[(389, 20.0)])], &[]));
        daily.add(&session(1, &[("AAA", &[(0, 10.0), (389, 11.0)])], &[]));
        daily.add(&SessionBars::empty(2, day(2)));
        daily.add(&session(3, &[("AAA", &[(389, 12.0)]), ("BBB", &[(389, 21.0)])], &[]));
        daily.add(&session(4, &[("AAA", &[(389, 12.5)]), ("BBB", &[(389, 21.5)])], &[]));
        assert!(close_to(daily.market_return(1), (11.0f64 / 10.0).ln()), "the last minute's close, from AAA alone");
        assert_eq!(daily.market_return(2), None, "no data");
        assert_eq!(
            daily.market_return(3),
            None,
            "AAA's session 3 follows session 1 and BBB's session 0: no return across the gap"
        );
        let want = ((12.5f64 / 12.0).ln() + (21.5f64 / 21.0).ln()) / 2.0;
        assert!(close_to(daily.market_return(4), want), "the mean over the symbols");
    }

    /// Daily closes of AAA and the market symbol MKT (and BBB, which has no bearing on MKT's market)
    /// over sessions 0..=5, minutes 0..=3 each; AAA lacks minute 2 in session 5.
    fn beta_sessions() -> (Vec<SessionBars>, [f64; 5], [f64; 5]) {
        let aaa = [100.0, 102.0, 100.5, 103.0, 104.0, 103.5];
        let mkt = [50.0, 50.5, 50.1, 50.9, 51.0, 51.3];
        let bbb = [20.0, 20.2, 20.1, 20.4, 20.0, 20.6];
        let bars = |c: f64| [(0, c * 0.99), (1, c * 1.005), (2, c * 0.995), (3, c)];
        let sessions = (0..6)
            .map(|d| {
                let a: Vec<(i32, f64)> = bars(aaa[d]).into_iter().filter(|(m, _)| d != 5 || *m != 2).collect();
                session(d, &[("AAA", &a), ("BBB", &bars(bbb[d])), ("MKT", &bars(mkt[d]))], &[])
            })
            .collect();
        let r = |c: &[f64; 6]| -> [f64; 5] { std::array::from_fn(|i| (c[i + 1] / c[i]).ln()) };
        (sessions, r(&aaa), r(&mkt))
    }

    /// The OLS slope of y on x, from the textbook sums.
    fn ols(x: &[f64], y: &[f64]) -> f64 {
        let n = x.len() as f64;
        let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
        let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
        let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
        sxy / sxx
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn beta_is_the_trailing_ols_slope_from_enough_sessions() {
        let (sessions, aaa, mkt) = beta_sessions();
        // Returns r[i] are of session i + 1. Beta over the 4 sessions before, from at least 3.
        let b = labels(&label_set("MKT", 4, 3), sessions, 0..=5).await;
        assert_eq!(at(&b, "beta", "AAA", 2, 0), None, "one return before session 2 (session 0 has none)");
        assert_eq!(at(&b, "beta", "AAA", 3, 0), None, "two returns before session 3: fewer than 3");
        assert!(close_to(at(&b, "beta", "AAA", 4, 0), ols(&mkt[0..3], &aaa[0..3])), "sessions 1 to 3");
        assert!(
            close_to(at(&b, "beta", "AAA", 5, 3), ols(&mkt[0..4], &aaa[0..4])),
            "sessions 1 to 4: the window's first session has no return"
        );
        assert!(close_to(at(&b, "beta", "MKT", 5, 0), 1.0), "the market on itself");
        assert_eq!(at(&b, "resid_2m", "AAA", 3, 0), None, "no beta, no residual");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_market_is_a_symbol_or_the_equal_weight_mean() {
        let fwd = |c: &[(i32, f64)], from: usize, to: usize| (c[to].1 / c[from].1).ln();
        let (sessions, ..) = beta_sessions();
        let closes = |idx: usize, symbol: &str| -> Vec<(i32, f64)> {
            let s = &sessions[idx];
            let run = s.find(symbol).unwrap();
            run.rows.clone().map(|r| (s.minute[r].unwrap(), s.close[r])).collect()
        };

        // Against MKT: its forward return at the same ts.
        let b = labels(&label_set("MKT", 4, 3), beta_sessions().0, 4..=5).await;
        let (bbb, mkt) = (closes(5, "BBB"), closes(5, "MKT"));
        let beta = at(&b, "beta", "BBB", 5, 0).unwrap();
        assert!(close_to(at(&b, "resid_2m", "BBB", 5, 0), fwd(&bbb, 0, 2) - beta * fwd(&mkt, 0, 2)));
        assert_eq!(at(&b, "resid_2m", "AAA", 5, 0), None, "AAA has no minute 2 in session 5: no 2-minute return");
        assert_eq!(at(&b, "fwd_2m", "AAA", 5, 1), None, "nor from minute 1: two rows on is past its last");

        // Equal weight: the mean over the symbols with a value at that ts.
        let b = labels(&label_set("equal_weight", 4, 3), beta_sessions().0, 4..=5).await;
        let (aaa4, bbb4, mkt4) = (closes(4, "AAA"), closes(4, "BBB"), closes(4, "MKT"));
        let market = (fwd(&aaa4, 0, 2) + fwd(&bbb4, 0, 2) + fwd(&mkt4, 0, 2)) / 3.0;
        let beta = at(&b, "beta", "AAA", 4, 0).unwrap();
        assert!(close_to(at(&b, "resid_2m", "AAA", 4, 0), fwd(&aaa4, 0, 2) - beta * market));
        // AAA's is null at minute 0 of session 5: the mean of the other two.
        let market = (fwd(&bbb, 0, 2) + fwd(&mkt, 0, 2)) / 2.0;
        let beta = at(&b, "beta", "BBB", 5, 0).unwrap();
        assert!(close_to(at(&b, "resid_2m", "BBB", 5, 0), fwd(&bbb, 0, 2) - beta * market));
        // The 1-session horizon's market return too; none after the last session.
        let (aaa5, bbb5, mkt5) = (closes(5, "AAA"), bbb.clone(), mkt.clone());
        let one_day = |a: &[(i32, f64)], b: &[(i32, f64)]| (b[0].1 / a[0].1).ln();
        let market = (one_day(&aaa4, &aaa5) + one_day(&bbb4, &bbb5) + one_day(&mkt4, &mkt5)) / 3.0;
        assert!(close_to(
            at(&b, "resid_1d", "BBB", 4, 0),
            one_day(&bbb4, &bbb5) - at(&b, "beta", "BBB", 4, 0).unwrap() * market
        ));
        assert_eq!(at(&b, "resid_1d", "BBB", 5, 0), None);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn returns_across_sessions_follow_the_security_across_a_rename() {
        // Security 7 trades as OLD in sessions 0 to 2 and as NEW from session 3; REUSE names security 8
        // through session 2 and security 9 after.
        let bars = |c: f64| [(0, c), (1, c * 1.01), (2, c * 1.02)];
        let closes = [100.0, 101.0, 99.0, 103.0, 104.0];
        let sessions: Vec<SessionBars> = (0..5)
            .map(|d| {
                let (ticker, reuse) = if d < 3 { ("OLD", 8) } else { ("NEW", 9) };
                let mine = bars(closes[d]);
                let other = bars(50.0 + d as f64);
                let mut rows: Vec<SecurityRows> = vec![(ticker, Some(7), &mine), ("REUSE", Some(reuse), &other)];
                rows.sort_by_key(|r| r.0);
                session_of(d, &rows, &[])
            })
            .collect();
        let b = labels(&label_set("equal_weight", 4, 2), sessions, 0..=4).await;
        assert!(
            close_to(at(&b, "fwd_1d", "OLD", 2, 0), (103.0f64 / 99.0).ln()),
            "OLD's last session reaches NEW's first: one security"
        );
        assert_eq!(at(&b, "fwd_1d", "REUSE", 2, 0), None, "the reused ticker's next session is another security's");
        assert!(at(&b, "beta", "NEW", 4, 0).is_some(), "NEW's beta fits on OLD's daily returns too");
        assert_eq!(at(&b, "beta", "REUSE", 4, 0), None, "security 9 has one session before: too few for a beta");
        let ids = b.column_by_name("security_id").unwrap().as_primitive::<arrow::datatypes::Int64Type>();
        let symbols = b.column_by_name("symbol").unwrap().as_string::<i32>();
        assert!(
            (0..b.num_rows()).all(|i| (symbols.value(i) != "NEW" && symbols.value(i) != "OLD") || ids.value(i) == 7)
        );
    }

    #[test]
    fn unsorted_input_is_refused() {
        let batch = |symbols: Vec<&str>, minutes: Vec<i32>| {
            RecordBatch::try_from_iter([
                ("symbol", Arc::new(StringArray::from(symbols.clone())) as _),
                ("ts", Arc::new(TimestampMicrosecondArray::from_iter_values(minutes.iter().map(|m| ts(0, *m)))) as _),
                ("close", Arc::new(Float64Array::from(vec![1.0; symbols.len()])) as _),
                ("is_rth", Arc::new(BooleanArray::from(vec![true; symbols.len()])) as _),
                ("minute_idx", Arc::new(Int32Array::from(minutes)) as _),
            ])
            .unwrap()
        };
        let read = |b: RecordBatch| SessionBars::from_batches(0, day(0), &[b], &HashMap::new()).map(|s| s.rows());
        assert_eq!(read(batch(vec!["A", "A", "B"], vec![0, 1, 0])).unwrap(), 3);
        assert!(read(batch(vec!["B", "A"], vec![0, 0])).unwrap_err().to_string().contains("not sorted by symbol"));
        assert!(read(batch(vec!["A", "A"], vec![1, 0])).unwrap_err().to_string().contains("strictly rising"));
    }
}
