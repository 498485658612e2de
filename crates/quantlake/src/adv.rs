//! Average daily volume (ADV), the robustness guide's bootstrap step 3: per symbol, the mean daily
//! share volume and dollar volume (close x volume) of the last `adv.window` sessions at or before a
//! date, into `features_adv` (one partition per date, replaced by each run).
//!
//! - Daily bars come from `curated_1d_bars`, else from the regular-session minutes of
//!   `curated_1m_bars` (volume summed, last close), per symbol and session.
//! - Share volumes are split-adjusted to the date's share basis (a 2-for-1 inside the window doubles
//!   the volumes before it); dollar volume needs no adjustment (price and volume scale inversely).
//! - A symbol with fewer than `window` sessions of bars in the window averages the sessions it has
//!   (`short_window`) down to `adv.min_sessions`; below that it takes the median of the other
//!   symbols' ADVs (`universe_median`), or nothing when no symbol has enough history (`unavailable`).
//!   The `method` column records which.
//! - The symbols are the active universe and every symbol with bars in the window.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Float64Array, Int64Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Date32Type, Float64Type};
use chrono::{Duration, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::query::QueryEngine;
use crate::reference::corporate_actions::{DATASET as ACTIONS, SplitHistory};
use crate::table::AsOf;
use crate::table::Lake;
use crate::table::operations::write::WriteMode;

/// The ADV dataset.
pub const DATASET: &str = "features_adv";

/// `[adv]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct AdvSettings {
    /// Sessions averaged.
    pub window: usize,
    /// Fewest sessions of a symbol's own bars for its own (shorter-window) ADV; below it, the universe median.
    pub min_sessions: usize,
}

impl Default for AdvSettings {
    fn default() -> Self {
        Self { window: 20, min_sessions: 5 }
    }
}

/// How a symbol's ADV was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AdvMethod {
    /// `window` sessions of its own bars.
    Full,
    /// Fewer (at least `min_sessions`).
    ShortWindow,
    /// Too few: the median of the symbols with their own ADV.
    UniverseMedian,
    /// Too few, and no symbol has its own ADV.
    Unavailable,
}

impl AdvMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            AdvMethod::Full => "full",
            AdvMethod::ShortWindow => "short_window",
            AdvMethod::UniverseMedian => "universe_median",
            AdvMethod::Unavailable => "unavailable",
        }
    }
}

/// One symbol's ADV.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AdvRow {
    pub symbol: String,
    /// Shares per session, on the date's share basis.
    pub adv_shares: Option<f64>,
    pub adv_dollars: Option<f64>,
    /// Sessions of the symbol's own bars averaged (0 for the median and when unavailable).
    pub sessions_used: usize,
    pub method: AdvMethod,
    pub first_session: Option<NaiveDate>,
}

/// What a recompute did.
#[derive(Debug, Clone, Serialize)]
pub struct AdvReport {
    pub date: NaiveDate,
    pub window: usize,
    pub min_sessions: usize,
    /// The window's first session.
    pub window_start: NaiveDate,
    pub symbols: usize,
    pub by_method: BTreeMap<&'static str, usize>,
    pub universe_median_shares: Option<f64>,
    pub universe_median_dollars: Option<f64>,
    /// Datasets read, at these snapshots.
    pub inputs: BTreeMap<String, u64>,
    pub snapshot_id: u64,
    pub rows: Vec<AdvRow>,
}

/// Recomputes `features_adv` for `date` (default: the latest session with curated bars).
pub async fn recompute_adv(lake: &Lake, settings: &AdvSettings, date: Option<NaiveDate>) -> Result<AdvReport> {
    if settings.window == 0 || settings.min_sessions == 0 || settings.min_sessions > settings.window {
        return Err(Error::Config(format!(
            "adv: need 1 <= min_sessions ({}) <= window ({})",
            settings.min_sessions, settings.window
        )));
    }
    let as_of = AsOf::latest();
    let date = match date {
        Some(d) if NyseCalendar.is_session(d) => d,
        Some(d) => {
            return Err(Error::invalid(format!(
                "{d} is not an NYSE session (the one before is {})",
                NyseCalendar.previous_session(d)
            )));
        }
        None => latest_session(lake).await?,
    };
    // Enough calendar days for `window` sessions (at least 252 sessions a year, holidays included).
    let reach = Duration::days(settings.window as i64 * 2 + 14);
    let all = NyseCalendar.sessions(date - reach, date);
    let sessions = &all[all.len().saturating_sub(settings.window)..];
    let window_start = sessions.first().map_or(date, |s| s.date);
    let sql = format!(
        "WITH d1 AS (
           SELECT symbol, DATE '1970-01-01' + CAST(floor(epoch_us(ts) / 86400000000) AS INTEGER) AS d, close, volume
           FROM curated_1d_bars WHERE year BETWEEN {y0} AND {y1}
         ),
         m1 AS (
           SELECT symbol, CAST(date AS DATE) AS d, arg_max(close, ts) AS close, sum(volume) AS volume
           FROM curated_1m_bars WHERE is_rth AND date BETWEEN DATE '{window_start}' AND DATE '{date}' GROUP BY symbol, date
         )
         SELECT symbol, d, CAST(close AS DOUBLE) AS close, CAST(volume AS DOUBLE) AS volume FROM d1 WHERE d BETWEEN DATE '{window_start}' AND DATE '{date}'
         UNION ALL
         SELECT m.symbol, m.d, m.close, m.volume FROM m1 m
         WHERE NOT EXISTS (SELECT 1 FROM d1 WHERE d1.symbol = m.symbol AND d1.d = m.d)
         ORDER BY symbol, d",
        y0 = window_start.format("%Y"),
        y1 = date.format("%Y"),
    );
    let engine = QueryEngine::open_for_sql(lake, &as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    let splits = SplitHistory::load(lake, None, &as_of).await?;
    let mut inputs = engine.snapshots.clone();
    inputs.insert(ACTIONS.to_string(), splits.snapshot_id);

    // Per symbol: (session, close, volume).
    let mut bars: BTreeMap<String, Vec<(NaiveDate, f64, f64)>> = BTreeMap::new();
    for b in &batches {
        let as_type = |i: usize, t: &DataType| arrow::compute::cast(b.column(i), t);
        let (symbol, day, close, volume) = (
            as_type(0, &DataType::Utf8)?,
            as_type(1, &DataType::Date32)?,
            as_type(2, &DataType::Float64)?,
            as_type(3, &DataType::Float64)?,
        );
        let (symbol, day, close, volume) = (
            symbol.as_string::<i32>(),
            day.as_primitive::<Date32Type>(),
            close.as_primitive::<Float64Type>(),
            volume.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            if close.is_null(i) || volume.is_null(i) {
                continue; // not a bar: a curated row always has both
            }
            let d = NaiveDate::from_epoch_days(day.value(i))
                .ok_or_else(|| Error::invalid(format!("adv: date {} out of range", day.value(i))))?;
            bars.entry(symbol.value(i).to_string()).or_default().push((d, close.value(i), volume.value(i)));
        }
    }
    let mut symbols: BTreeSet<String> =
        crate::universe::active_symbols(lake).await?.into_iter().map(String::from).collect();
    symbols.extend(bars.keys().cloned());
    if symbols.is_empty() {
        return Err(Error::invalid(format!(
            "adv: no symbols: the universe is empty and no curated bars fall in {window_start}..{date}"
        )));
    }
    let rows = adv_rows(&symbols, &bars, &splits, date, settings);
    let own: Vec<&AdvRow> =
        rows.iter().filter(|r| matches!(r.method, AdvMethod::Full | AdvMethod::ShortWindow)).collect();
    let median_shares = median(own.iter().filter_map(|r| r.adv_shares).collect());
    let median_dollars = median(own.iter().filter_map(|r| r.adv_dollars).collect());

    let ds = lake.dataset(DATASET)?;
    let ts = NyseCalendar
        .day_start(date)
        .ok_or_else(|| Error::invalid(format!("date {date} out of range")))?
        .timestamp_micros();
    let batch = to_batch(ds.contract(), &rows, ts, settings.window, Utc::now().timestamp_micros())?;
    let done = ds
        .write(vec![batch])
        .mode(WriteMode::Overwrite)
        .covering_dates([date])
        .operation("recompute_adv")
        .parameter("date", date)
        .parameter("window", settings.window)
        .parameter("min_sessions", settings.min_sessions)
        .parameter("inputs", &inputs)
        .execute()
        .await?;
    let mut by_method = BTreeMap::new();
    for r in &rows {
        *by_method.entry(r.method.as_str()).or_default() += 1;
    }
    tracing::info!(%date, symbols = rows.len(), snapshot = done.snapshot_id, "ADV recomputed");
    Ok(AdvReport {
        date,
        window: settings.window,
        min_sessions: settings.min_sessions,
        window_start,
        symbols: rows.len(),
        by_method,
        universe_median_shares: median_shares,
        universe_median_dollars: median_dollars,
        inputs,
        snapshot_id: done.snapshot_id,
        rows,
    })
}

/// Each symbol's ADV from its bars in the window (see the module docs for the fallbacks).
fn adv_rows(
    symbols: &BTreeSet<String>,
    bars: &BTreeMap<String, Vec<(NaiveDate, f64, f64)>>,
    splits: &SplitHistory,
    date: NaiveDate,
    settings: &AdvSettings,
) -> Vec<AdvRow> {
    let mut rows: Vec<AdvRow> = symbols
        .iter()
        .map(|symbol| {
            let own = bars.get(symbol).map_or(&[][..], Vec::as_slice);
            let n = own.len();
            if n < settings.min_sessions {
                return AdvRow {
                    symbol: symbol.clone(),
                    adv_shares: None,
                    adv_dollars: None,
                    sessions_used: 0,
                    method: AdvMethod::Unavailable,
                    first_session: None,
                };
            }
            // Shares of session d on the date's basis: divide by the price ratio of the splits in (d, date].
            let shares: f64 = own.iter().map(|(d, _, v)| v / splits.price_ratio_between(symbol, *d, date)).sum();
            let dollars: f64 = own.iter().map(|(_, c, v)| c * v).sum();
            AdvRow {
                symbol: symbol.clone(),
                adv_shares: Some(shares / n as f64),
                adv_dollars: Some(dollars / n as f64),
                sessions_used: n,
                method: if n >= settings.window { AdvMethod::Full } else { AdvMethod::ShortWindow },
                first_session: own.first().map(|(d, _, _)| *d),
            }
        })
        .collect();
    let own: Vec<&AdvRow> = rows.iter().filter(|r| r.method != AdvMethod::Unavailable).collect();
    let (shares, dollars) = (
        median(own.iter().filter_map(|r| r.adv_shares).collect()),
        median(own.iter().filter_map(|r| r.adv_dollars).collect()),
    );
    if let (Some(shares), Some(dollars)) = (shares, dollars) {
        for r in rows.iter_mut().filter(|r| r.method == AdvMethod::Unavailable) {
            (r.adv_shares, r.adv_dollars, r.method) = (Some(shares), Some(dollars), AdvMethod::UniverseMedian);
        }
    }
    rows
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    values.sort_by(f64::total_cmp);
    let n = values.len();
    Some(if n % 2 == 1 { values[n / 2] } else { (values[n / 2 - 1] + values[n / 2]) / 2.0 })
}

/// The latest session with curated bars (daily or minute).
async fn latest_session(lake: &Lake) -> Result<NaiveDate> {
    let sql = "SELECT max(d) FROM (
                 SELECT max(DATE '1970-01-01' + CAST(floor(epoch_us(ts) / 86400000000) AS INTEGER)) AS d FROM curated_1d_bars
                 UNION ALL SELECT max(CAST(date AS DATE)) FROM curated_1m_bars)";
    let engine = QueryEngine::open_for_sql(lake, &AsOf::latest(), sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(sql))?;
    let latest = batches.first().filter(|b| b.num_rows() > 0).and_then(|b| {
        let c = b.column(0).as_primitive_opt::<Date32Type>()?;
        c.is_valid(0).then(|| NaiveDate::from_epoch_days(c.value(0))).flatten()
    });
    latest.ok_or_else(|| {
        Error::invalid("adv: no curated bars (curated_1d_bars, curated_1m_bars); curate first or pass --date")
    })
}

fn to_batch(
    contract: &crate::contract::DatasetContract,
    rows: &[AdvRow],
    ts: i64,
    window: usize,
    computed_at: i64,
) -> Result<RecordBatch> {
    let float = |f: fn(&AdvRow) -> Option<f64>| -> ArrayRef { Arc::new(Float64Array::from_iter(rows.iter().map(f))) };
    let stamp =
        |v: i64| -> ArrayRef { Arc::new(TimestampMicrosecondArray::from(vec![v; rows.len()]).with_timezone("UTC")) };
    contract.batch_from(|name| {
        Some(match name {
            "symbol" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.symbol.as_str()))) as ArrayRef,
            "ts" => stamp(ts),
            "adv_shares" => float(|r| r.adv_shares),
            "adv_dollars" => float(|r| r.adv_dollars),
            "sessions_used" => Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| r.sessions_used as i64))),
            "window_sessions" => Arc::new(Int64Array::from(vec![window as i64; rows.len()])),
            "method" => Arc::new(StringArray::from_iter_values(rows.iter().map(|r| r.method.as_str()))),
            "first_session" => {
                Arc::new(Date32Array::from_iter(rows.iter().map(|r| r.first_session.map(|d| d.to_epoch_days()))))
            }
            "computed_at" => stamp(computed_at),
            _ => return None,
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn windows_fall_back_to_shorter_then_the_median() {
        let settings = AdvSettings { window: 3, min_sessions: 2 };
        let mut bars = BTreeMap::new();
        // A: 3 sessions, a 2-for-1 with ex-date 01-04 (volumes before it double on the date's basis).
        bars.insert(
            "A".to_string(),
            vec![(d("2024-01-02"), 20.0, 100.0), (d("2024-01-03"), 20.0, 100.0), (d("2024-01-04"), 10.0, 200.0)],
        );
        // B: 2 sessions; C: 1 session; D: none (universe only).
        bars.insert("B".to_string(), vec![(d("2024-01-03"), 5.0, 10.0), (d("2024-01-04"), 5.0, 30.0)]);
        bars.insert("C".to_string(), vec![(d("2024-01-04"), 1.0, 1.0)]);
        let symbols: BTreeSet<String> = ["A", "B", "C", "D"].map(String::from).into_iter().collect();
        let splits = SplitHistory::from_splits([(crate::symbol::Symbol::from_static("A"), d("2024-01-04"), 0.5)]);
        let rows = adv_rows(&symbols, &bars, &splits, d("2024-01-04"), &settings);
        let a = &rows[0];
        assert_eq!(
            (a.method, a.sessions_used, a.adv_shares, a.adv_dollars),
            (AdvMethod::Full, 3, Some(200.0), Some(2000.0))
        );
        let b = &rows[1];
        assert_eq!((b.method, b.adv_shares, b.adv_dollars), (AdvMethod::ShortWindow, Some(20.0), Some(100.0)));
        // The median of A and B: (200 + 20) / 2 shares, (2000 + 100) / 2 dollars.
        for r in &rows[2..] {
            assert_eq!(
                (r.method, r.sessions_used, r.adv_shares, r.adv_dollars),
                (AdvMethod::UniverseMedian, 0, Some(110.0), Some(1050.0)),
                "{}",
                r.symbol
            );
        }
        // Nobody with enough history: unavailable, never invented.
        let rows = adv_rows(&symbols, &BTreeMap::new(), &splits, d("2024-01-04"), &settings);
        assert!(rows.iter().all(|r| r.method == AdvMethod::Unavailable && r.adv_shares.is_none()));
        assert_eq!(median(vec![3.0, 1.0, 2.0]), Some(2.0));
    }
}
