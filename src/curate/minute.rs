//! Minute curation: the raw minute datasets -> `curated_1m_bars` (`curate_1m.sql`, beside this file).

use std::time::Instant;

use arrow::array::AsArray;
use arrow::datatypes::Int64Type;
use chrono::{NaiveDate, Utc};

use super::kernels::{self, KernelParams};
use super::{count_true, fill_template, metrics, raw_union, sessions_table, CurateReport, CurateRequest, CurateSettings, FillPolicy, Outputs, StageCounts, DATASET};
use crate::calendar::NyseCalendar;
use crate::error::Result;
use crate::query::{AsOf, QueryEngine};
use crate::reference::corporate_actions::SplitHistory;
use crate::bars::BarSize;
use crate::table::layout::PartitionKey;
use crate::table::Lake;

pub(super) const CURATE_SQL: &str = include_str!("curate_1m.sql");

/// Curates minute bars; `request` is checked by [`super::curate`].
pub(super) async fn curate(lake: &Lake, settings: &CurateSettings, request: &CurateRequest, job_id: String) -> Result<CurateReport> {
    let started = Instant::now();
    let sessions = NyseCalendar.sessions(request.start, request.end);
    // In SQL string literals below.
    let job_sql = job_id.replace('\'', "''");
    // One session before the range seeds the forward fill of its first minutes.
    let seed_start = NyseCalendar.previous_session(request.start);
    let (raw_datasets, raw_sql) = raw_union(lake, settings, BarSize::Minute, &format!("date BETWEEN DATE '{seed_start}' AND DATE '{}'", request.end)).await?;
    let script = fill_template(
        CURATE_SQL,
        &[("raw", raw_sql.clone()), ("validity", super::VALIDITY_SQL.to_string())],
    )?;
    let engine = QueryEngine::open_for_sql(lake, &AsOf::default(), &raw_sql).await?;
    let sessions_sql = sessions_table(seed_start, request.end);
    let curated_at = Utc::now().timestamp_micros();
    let (merged, rejects, stats, sources) = tokio::task::block_in_place(|| -> Result<_> {
        let conn = engine.connection();
        conn.execute_batch(&sessions_sql)?;
        conn.execute_batch(&script)?;
        let merged = engine.query("SELECT * FROM merged_in_order")?;
        let rejects = engine.query(&format!(
            "SELECT symbol, ts_us AS ts, open, high, low, close, volume, source, dataset, reason, '{job_sql}' AS job_id, {curated_at} AS curated_at, date \
             FROM checked WHERE reason IS NOT NULL AND date >= DATE '{}' ORDER BY symbol, ts_us",
            request.start
        ))?;
        let stats = engine.query(&format!(
            "SELECT
               (SELECT coalesce(sum(bars), 0) FROM source_counts WHERE date >= DATE '{s}'),
               (SELECT coalesce(sum(c.bars), 0) FROM source_counts c JOIN chosen h USING (symbol, date) WHERE c.date >= DATE '{s}' AND c.precedence <> h.precedence),
               (SELECT coalesce(sum(c.bars), 0) FROM source_counts c JOIN chosen h USING (symbol, date, precedence) WHERE c.date >= DATE '{s}'),
               (SELECT coalesce(sum(s.minutes), 0) FROM chosen JOIN sessions s USING (date) WHERE date >= DATE '{s}')",
            s = request.start
        ))?;
        let sources = super::source_bars(&engine, request.start, request.end)?;
        Ok((merged, rejects, stats, sources))
    })?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "curation SQL done");
    // A close carried into the range's sessions crosses their ex-dates on the new share basis.
    let splits = SplitHistory::load(lake, None, &AsOf::default()).await?;
    let mut inputs = engine.snapshots.clone();
    if splits.snapshot_id > 0 {
        inputs.insert(crate::reference::corporate_actions::DATASET.to_string(), splits.snapshot_id);
    }
    let params = KernelParams {
        keep_filled: settings.fill == FillPolicy::ForwardFill,
        outlier_k: settings.outlier_k,
        outlier_window: settings.outlier_window,
        start_days: request.start.to_epoch_days(),
        job_id: job_id.clone(),
        curated_at,
        splits: std::sync::Arc::new(splits),
    };
    let curated = tokio::task::block_in_place(|| kernels::fill_and_flag(&merged, &params))?;
    drop(merged); // the kernels' output replaces it: do not hold both
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "fill and outlier kernels done");
    let stat = |i: usize| -> u64 {
        stats.first().and_then(|b| arrow::compute::cast(b.column(i), &arrow::datatypes::DataType::Int64).ok()).map_or(0, |c| c.as_primitive::<Int64Type>().value(0).max(0) as u64)
    };
    // Every active universe symbol is expected in every session: one that delivered nothing is a gap.
    let universe = crate::universe::active_symbols(lake).await?;
    let expected: Vec<(String, NaiveDate)> = sessions.iter().flat_map(|s| universe.iter().map(|u| (u.clone(), s.date))).collect();
    let minutes = sessions.iter().map(|s| (s.date, u64::from(s.minutes()))).collect();
    let metrics = metrics::session_metrics(minutes, &expected, &curated, &rejects, &sources)?;
    tracing::debug!(seconds = started.elapsed().as_secs_f64(), "metrics counted");
    let rows: u64 = curated.iter().map(|b| b.num_rows() as u64).sum();
    let (filled_rows, rth_rows, outliers) = (count_true(&curated, "is_filled"), count_true(&curated, "is_rth"), count_true(&curated, "is_outlier"));
    let partitioning = lake.dataset(DATASET)?.contract().partitioning;
    Outputs {
        lake,
        dataset: DATASET,
        partitions: sessions.iter().map(|s| PartitionKey::for_date(partitioning, s.date)).collect(),
        curated,
        rejects,
        raw_datasets,
        sessions: &sessions,
        metrics,
        request,
        job_id,
        inputs,
        settings,
        counts: StageCounts {
            valid_raw_rows: stat(0),
            superseded_rows: stat(1),
            // The chosen sources' valid bars, less the distinct ones (every output row that is not a fill).
            duplicates_removed: stat(2).saturating_sub(rows - filled_rows),
            filled_rows,
            // Regular-session minutes of the chosen symbol-sessions that are not in the output.
            unfilled_gaps: stat(3).saturating_sub(rth_rows),
            extended_hours_rows: rows - rth_rows,
            outliers,
        },
        started,
    }
    .commit()
    .await
}

