//! Daily curation: the raw daily datasets -> `curated_1d_bars` (`curate_1d.sql`, beside this file).
//! The dataset's partitions are years, so a run curates whole years: the range grows to the years it
//! touches (up to the last completed session) and replaces exactly their partitions.

use std::time::Instant;

use arrow::array::{AsArray, RecordBatch};
use arrow::datatypes::Date32Type;
use chrono::{Datelike, NaiveDate, Utc};

use super::{
    CurateReport, CurateRequest, CurateSettings, CuratedRows, DAILY_DATASET, Outputs, Securities, StageCounts,
    count_true, fill_template, metrics, raw_union,
};
use crate::bars::BarSize;
use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::query::{QueryEngine, SqlResult};
use crate::reference::corporate_actions::SplitHistory;
use crate::table::AsOf;
use crate::table::Lake;
use crate::table::layout::PartitionKey;

pub(super) const CURATE_SQL: &str = include_str!("curate_1d.sql");

/// Curates daily bars; `request` is checked by [`super::curate`].
pub(super) async fn curate(
    lake: &Lake,
    settings: &CurateSettings,
    request: &CurateRequest,
    job_id: String,
    last_completed: NaiveDate,
) -> Result<CurateReport> {
    let started = Instant::now();
    let year_start =
        |y: i32| NaiveDate::from_ymd_opt(y, 1, 1).ok_or_else(|| Error::invalid(format!("year {y} is out of range")));
    let start = year_start(request.start.year())?;
    let end = year_start(request.end.year() + 1)?.pred_opt().unwrap_or(request.end).min(last_completed);
    let request = CurateRequest { start, end, ..request.clone() };
    let sessions = NyseCalendar.sessions(start, end);
    // The year before seeds the outlier window of the range's first sessions.
    let seed = year_start(start.year() - 1)?;
    let job_sql = job_id.replace('\'', "''");
    let (raw_datasets, raw_sql) =
        raw_union(lake, settings, BarSize::Day, &format!("year BETWEEN {} AND {}", seed.year(), end.year())).await?;
    let script = fill_template(
        CURATE_SQL,
        &[
            ("raw", raw_sql.clone()),
            ("start", start.to_string()),
            ("end", end.to_string()),
            ("outlier_k", settings.outlier_k.to_string()),
            ("outlier_window", settings.outlier_window.to_string()),
            ("validity", super::VALIDITY_SQL.to_string()),
        ],
    )?;
    let engine = QueryEngine::open_for_sql(lake, &AsOf::latest(), &raw_sql).await?;
    let days = days_table(seed, end)?;
    // Returns across sessions are judged on one share basis: a split is not an outlier.
    let splits = SplitHistory::load(lake, None, &AsOf::latest()).await?;
    let splits_sql = splits_table(&splits)?;
    let mut inputs = engine.snapshots.clone();
    if splits.snapshot_id > 0 {
        inputs.insert(crate::reference::corporate_actions::DATASET.to_string(), splits.snapshot_id);
    }
    let curated_at = Utc::now().timestamp_micros();
    let (curated, rejects, sources, spans) = tokio::task::block_in_place(|| -> Result<_> {
        let conn = engine.connection();
        conn.execute_batch(&days).sql()?;
        conn.execute_batch(&splits_sql).sql()?;
        conn.execute_batch(&script).sql()?;
        // is_rth / is_filled: what the metrics count a minute bar by; every daily bar is a session's.
        let curated = engine.query(&format!(
            "SELECT symbol, ts_us AS ts, open, high, low, close, volume, vwap, trade_count, source, is_outlier, \
             '{job_sql}' AS job_id, {curated_at} AS curated_at, date, true AS is_rth, false AS is_filled FROM curated"
        ))?;
        let rejects = engine.query(&format!(
            "SELECT symbol, ts_us AS ts, open, high, low, close, volume, source, dataset, reason, '{job_sql}' AS job_id, {curated_at} AS curated_at, date \
             FROM checked WHERE reason IS NOT NULL AND date BETWEEN DATE '{start}' AND DATE '{end}' ORDER BY symbol, ts_us"
        ))?;
        let sources = super::source_bars(&engine, start, end)?;
        let spans = engine.query("SELECT symbol, first, last FROM spans")?;
        Ok((curated, rejects, sources, spans))
    })?;
    // Expected: every session of a member (an active universe symbol while the security master records
    // no membership), and every session between a symbol's first and last bar in the range (a hole in
    // a daily series is a gap; a listing that starts later is not).
    let securities = Securities::load(lake, settings).await?;
    securities.record_input(&mut inputs);
    let curated: Vec<RecordBatch> = curated.iter().map(|b| securities.master.stamp(b, None)).collect::<Result<_>>()?;
    let mut expected: Vec<(String, NaiveDate)> = sessions
        .iter()
        .flat_map(|s| securities.expected(s.date).into_iter().map(|u| (u.to_string(), s.date)))
        .collect();
    for b in &spans {
        let symbol = b.column(0).as_string::<i32>();
        let (first, last) = (b.column(1).as_primitive::<Date32Type>(), b.column(2).as_primitive::<Date32Type>());
        for i in 0..b.num_rows() {
            let day = |days: i32| {
                NaiveDate::from_epoch_days(days).ok_or_else(|| Error::invalid(format!("date {days} out of range")))
            };
            let (from, to) = (day(first.value(i))?, day(last.value(i))?);
            expected.extend(NyseCalendar.sessions(from, to).iter().map(|s| (symbol.value(i).to_string(), s.date)));
        }
    }
    let metrics = metrics::session_metrics(
        sessions.iter().map(|s| (s.date, 1)).collect(),
        &expected,
        &curated,
        &rejects,
        &sources,
    )?;
    let (duplicates_removed, superseded_rows) =
        metrics.iter().fold((0, 0), |(d, s), m| (d + m.duplicates_removed, s + m.superseded_rows));
    let rows: u64 = curated.iter().map(|b| b.num_rows() as u64).sum();
    let outliers = count_true(&curated, "is_outlier");
    let unfilled_gaps = metrics.iter().map(|m| m.gap_count()).sum();
    Outputs {
        lake,
        dataset: DAILY_DATASET,
        partitions: (start.year()..=end.year()).map(PartitionKey::Year).collect(),
        curated: CuratedRows::Batches(curated),
        rejects,
        raw_datasets,
        sessions: &sessions,
        metrics,
        request: &request,
        job_id,
        inputs,
        settings,
        counts: StageCounts {
            // Every valid raw bar is curated, a duplicate, or superseded.
            valid_raw_rows: rows + duplicates_removed + superseded_rows,
            superseded_rows,
            duplicates_removed,
            filled_rows: 0,
            unfilled_gaps,
            extended_hours_rows: 0,
            outliers,
        },
        started,
    }
    .commit()
    .await
}

/// `CREATE TEMP TABLE splits(symbol, ex_date, ratio)`: every split's price ratio (split_from / split_to).
fn splits_table(splits: &SplitHistory) -> Result<String> {
    let mut rows = Vec::new();
    for (symbol, ex, ratio) in splits.splits() {
        let symbol = crate::query::sql_string(symbol);
        rows.push(format!("({symbol}, DATE '{ex}', CAST({ratio:e} AS DOUBLE))"));
    }
    if rows.is_empty() {
        return Ok("CREATE TEMP TABLE splits (symbol VARCHAR, ex_date DATE, ratio DOUBLE);".into());
    }
    Ok(format!("CREATE TEMP TABLE splits AS SELECT * FROM (VALUES {}) t(symbol, ex_date, ratio);", rows.join(", ")))
}

/// `CREATE TEMP TABLE days(date, day_start_us, day_end_us, is_session)`: every New York calendar day
/// from `start` to `end`, its bounds in UTC, and whether it is an NYSE session.
fn days_table(start: NaiveDate, end: NaiveDate) -> Result<String> {
    let midnight = |d: NaiveDate| {
        NyseCalendar
            .day_start(d)
            .map(|t| t.timestamp_micros())
            .ok_or_else(|| Error::invalid(format!("date {d} out of range")))
    };
    let mut rows = Vec::new();
    for d in start.iter_days().take_while(|d| *d <= end) {
        let next = d.succ_opt().ok_or_else(|| Error::invalid(format!("date {d} out of range")))?;
        rows.push(format!("(DATE '{d}', {}, {}, {})", midnight(d)?, midnight(next)?, NyseCalendar.is_session(d)));
    }
    Ok(format!(
        "CREATE TEMP TABLE days AS SELECT * FROM (VALUES {}) t(date, day_start_us, day_end_us, is_session);",
        rows.join(", ")
    ))
}
