//! Minute curation: the raw minute datasets -> `curated_1m_bars`, natively, partition by partition.
//!
//! The range's date partitions (and the session before it, which only seeds the fill) are read a few
//! at a time; each is merged ([`super::merge`]) and filled and flagged ([`super::kernels`]) on rayon.
//! Between the two, closes are carried from each session to the next in date order, which is the one
//! sequential step (a small map per partition). Each curated partition is judged and its file staged
//! in the background as soon as it is computed, so memory holds the partitions in flight, not the
//! range; the stage commits them with the rejects and metrics at the end.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Instant;

use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use chrono::{NaiveDate, Utc};
use futures::{StreamExt, TryStreamExt};
use rayon::prelude::*;

use super::kernels::{self, Carries, KernelParams, Seeds};
use super::merge::{self, Partition, SourceRows};
use super::{
    CurateReport, CurateRequest, CurateSettings, CuratedRows, DATASET, FillPolicy, Outputs, Securities, StageCounts,
    count_true, metrics, raw_datasets,
};
use crate::bars::BarSize;
use crate::calendar::NyseCalendar;
use crate::contract::DatasetContract;
use crate::dq::SessionMetrics;
use crate::error::{Error, Result};
use crate::quality::PartitionQuality;
use crate::reference::corporate_actions::SplitHistory;
use crate::table::AsOf;
use crate::table::layout::PartitionKey;
use crate::table::manifest::TableState;
use crate::table::operations::write::{StagedPartition, Stager};
use crate::table::{Dataset, Lake};

/// Curates minute bars; `request` is checked by [`super::curate`].
pub(super) async fn curate(
    lake: &Lake,
    settings: &CurateSettings,
    request: &CurateRequest,
    job_id: String,
    progress: &dyn crate::progress::Progress,
) -> Result<CurateReport> {
    let started = Instant::now();
    let sessions = NyseCalendar.sessions(request.start, request.end);
    // One session before the range seeds the forward fill of its first minutes.
    let seed_start = NyseCalendar.previous_session(request.start);
    let raw = raw_datasets(lake, settings, BarSize::Minute, &lake.view().await?).await?;
    let raw_names: Vec<String> = raw.iter().map(|(ds, _)| ds.name().to_string()).collect();
    let mut inputs: BTreeMap<String, u64> =
        raw.iter().filter(|(_, s)| s.snapshot_id > 0).map(|(ds, s)| (ds.name().to_string(), s.snapshot_id)).collect();
    // Every date any source has rows for: non-session dates too, whose rows are all refused.
    let mut dates = BTreeSet::new();
    for (ds, state) in &raw {
        for e in state.partitions.values() {
            match PartitionKey::parse(&e.partition)? {
                PartitionKey::Date(d) if d >= seed_start && d <= request.end => {
                    dates.insert(d);
                }
                PartitionKey::Date(_) => {}
                other => {
                    return Err(Error::invalid(format!(
                        "curation: raw dataset '{}' has partition {other}, not a date",
                        ds.name()
                    )));
                }
            }
        }
    }
    // A close carried into the range's sessions crosses their ex-dates on the new share basis.
    let splits = SplitHistory::load(lake, None, &AsOf::latest()).await?;
    if splits.snapshot_id > 0 {
        inputs.insert(crate::reference::corporate_actions::DATASET.to_string(), splits.snapshot_id);
    }
    let params = KernelParams {
        keep_filled: settings.fill == FillPolicy::ForwardFill,
        outlier_k: settings.outlier_k,
        outlier_window: settings.outlier_window,
        job_id: job_id.clone(),
        curated_at: Utc::now().timestamp_micros(),
        splits: Arc::new(splits),
    };

    let dates: Vec<NaiveDate> = dates.into_iter().collect();
    let ds = lake.dataset(DATASET)?;
    let securities = Securities::load(lake, settings).await?;
    securities.record_input(&mut inputs);
    let run = Run { request, params: &params, securities: &securities, contract: ds.contract(), progress };
    progress.set_length(dates.len() as u64);
    let mut produced = Produced::default();
    let mut stager = Stager::new(&ds, partitions_in_flight());
    if let Err(e) = run.produce(&mut stager, &raw, &dates, &mut produced, started).await {
        stager.abandon().await;
        return Err(e);
    }
    produced.staged = stager.finish().await?;
    // Sessions no source has a partition for: every expected symbol is a gap there.
    let missing: Vec<(String, NaiveDate)> = sessions
        .iter()
        .filter(|s| !produced.dates.contains(&s.date))
        .flat_map(|s| securities.expected(s.date).into_iter().map(|u| (u.to_string(), s.date)))
        .collect();
    let minutes = sessions.iter().map(|s| (s.date, u64::from(s.minutes()))).collect();
    produced.metrics.extend(metrics::session_metrics(minutes, &missing, &[], &[], &[])?);
    produced.metrics.sort_by(|a, b| (&a.symbol, a.date).cmp(&(&b.symbol, b.date)));
    let t = produced.totals;
    Outputs {
        lake,
        dataset: DATASET,
        partitions: sessions.iter().map(|s| PartitionKey::for_date(ds.contract().partitioning, s.date)).collect(),
        curated: CuratedRows::Staged(produced.staged),
        rejects: produced.rejects,
        raw_datasets: raw_names,
        sessions: &sessions,
        metrics: produced.metrics,
        request,
        job_id,
        inputs,
        settings,
        counts: StageCounts {
            valid_raw_rows: t.valid,
            superseded_rows: t.superseded,
            // The chosen sources' valid bars, less the distinct ones (every output row that is not a fill).
            duplicates_removed: t.chosen.saturating_sub(t.rows - t.filled),
            filled_rows: t.filled,
            // Regular-session minutes of the chosen symbol-sessions that are not in the output.
            unfilled_gaps: t.minutes.saturating_sub(t.rth),
            extended_hours_rows: t.rows - t.rth,
            outliers: t.outliers,
        },
        started,
    }
    .commit()
    .await
}

/// What a run computes each partition with.
struct Run<'a> {
    request: &'a CurateRequest,
    params: &'a KernelParams,
    /// The master rows are stamped and series followed by, and the symbols each session expects.
    securities: &'a Securities,
    contract: &'a DatasetContract,
    progress: &'a dyn crate::progress::Progress,
}

/// What the partitions produced, for the commit.
#[derive(Default)]
struct Produced {
    staged: Vec<StagedPartition>,
    rejects: Vec<RecordBatch>,
    metrics: Vec<SessionMetrics>,
    totals: Totals,
    /// Dates in the range that had raw partitions.
    dates: BTreeSet<NaiveDate>,
}

/// Counts over the range's partitions.
#[derive(Default, Clone, Copy)]
struct Totals {
    /// Valid raw bars, those of sources that lost to a preferred one, those of the chosen sources.
    valid: u64,
    superseded: u64,
    chosen: u64,
    /// Regular-session minutes of the chosen symbol-sessions.
    minutes: u64,
    /// Curated rows, and those filled, regular-session, outliers.
    rows: u64,
    filled: u64,
    rth: u64,
    outliers: u64,
}

/// One partition's results.
struct Finished {
    key: PartitionKey,
    /// Curated rows in the contract's columns (none: nothing to stage).
    rows: Option<RecordBatch>,
    quality: Option<PartitionQuality>,
    rejects: RecordBatch,
    metrics: Vec<SessionMetrics>,
    totals: Totals,
}

impl Run<'_> {
    /// Reads and curates `dates` in order, a few partitions at a time, into `out`, staging each curated
    /// partition with `stager` (in the background, while the next ones are computed).
    async fn produce(
        &self,
        stager: &mut Stager,
        raw: &[(Dataset, TableState)],
        dates: &[NaiveDate],
        out: &mut Produced,
        started: Instant,
    ) -> Result<()> {
        let in_flight = partitions_in_flight();
        let mut carries = Carries::new();
        for chunk in dates.chunks(in_flight) {
            let read: Vec<Vec<SourceRows>> = futures::stream::iter(chunk.iter().map(|d| read_sources(raw, *d)))
                .buffered(in_flight)
                .try_collect()
                .await?;
            let finished: Vec<Finished> = tokio::task::block_in_place(|| -> Result<_> {
                let partitions: Vec<Partition> = chunk
                    .par_iter()
                    .zip(&read)
                    .map(|(d, s)| merge::merge(*d, NyseCalendar.session(*d).as_ref(), s))
                    .collect::<Result<_>>()?;
                let master = &self.securities.master;
                let seeds: Vec<Seeds> = partitions
                    .iter()
                    .zip(&read)
                    .map(|(p, s)| kernels::advance(&mut carries, p, s, master))
                    .collect::<Result<_>>()?;
                partitions
                    .par_iter()
                    .zip(&read)
                    .zip(&seeds)
                    .filter(|((p, _), _)| p.date >= self.request.start)
                    .map(|((p, s), seeds)| self.finish(p, s, seeds))
                    .collect()
            })?;
            for f in finished {
                out.dates.insert(f.key.date_range().0);
                out.rejects.push(f.rejects);
                out.metrics.extend(f.metrics);
                out.totals.add(&f.totals);
                if let Some(rows) = f.rows {
                    stager.stage(f.key, vec![rows], f.quality).await?;
                }
            }
            self.progress.inc(chunk.len() as u64);
            tracing::debug!(first = %chunk[0], partitions = chunk.len(), seconds = started.elapsed().as_secs_f64(), "curated partitions");
        }
        Ok(())
    }

    /// Fills and flags one merged partition, and judges it.
    fn finish(&self, p: &Partition, sources: &[SourceRows], seeds: &Seeds) -> Result<Finished> {
        let curated = kernels::fill_and_flag(p, sources, seeds, self.params)?;
        let curated = self.securities.master.stamp(&curated, Some(p.date))?;
        let rejects = merge::rejects_batch(p, sources, &self.params.job_id, self.params.curated_at)?;
        let counts = merge::counts_batch(p)?;
        let session = NyseCalendar.session(p.date);
        let minutes = session.iter().map(|s| (s.date, u64::from(s.minutes()))).collect();
        let expected: Vec<(String, NaiveDate)> = if session.is_some() {
            self.securities.expected(p.date).into_iter().map(|u| (u.to_string(), p.date)).collect()
        } else {
            Vec::new()
        };
        let metrics = metrics::session_metrics(
            minutes,
            &expected,
            std::slice::from_ref(&curated),
            std::slice::from_ref(&rejects),
            std::slice::from_ref(&counts),
        )?;
        let key = PartitionKey::for_date(self.contract.partitioning, p.date);
        let mut totals = Totals { rows: curated.num_rows() as u64, ..Totals::default() };
        for c in &p.counts {
            totals.valid += c.chosen + c.superseded;
            totals.superseded += c.superseded;
            totals.chosen += c.chosen;
            totals.minutes += c.minutes;
        }
        let batches = std::slice::from_ref(&curated);
        (totals.filled, totals.rth, totals.outliers) =
            (count_true(batches, "is_filled"), count_true(batches, "is_rth"), count_true(batches, "is_outlier"));
        let quality = if curated.num_rows() > 0 {
            metrics::partition_quality(self.contract, &metrics)?.remove(&key)
        } else {
            None
        };
        let rows = (curated.num_rows() > 0).then(|| self.contract.conform_batch(&curated)).transpose()?;
        Ok(Finished { key, rows, quality, rejects, metrics, totals })
    }
}

impl Totals {
    fn add(&mut self, o: &Totals) {
        self.valid += o.valid;
        self.superseded += o.superseded;
        self.chosen += o.chosen;
        self.minutes += o.minutes;
        self.rows += o.rows;
        self.filled += o.filled;
        self.rth += o.rth;
        self.outliers += o.outliers;
    }
}

/// Partitions computed, and staged, at once: enough to keep every core busy, few enough to bound memory.
fn partitions_in_flight() -> usize {
    (rayon::current_num_threads() * 2).max(2)
}

/// `date`'s rows of each raw dataset that has that partition, in precedence order.
async fn read_sources(raw: &[(Dataset, TableState)], date: NaiveDate) -> Result<Vec<SourceRows>> {
    let none = BTreeSet::new();
    let mut out = Vec::new();
    for (precedence, (ds, state)) in raw.iter().enumerate() {
        let Some(entry) = state.partitions.get(&PartitionKey::for_date(ds.contract().partitioning, date).to_string())
        else {
            continue;
        };
        let batches = ds.read_partition(entry, &none).await?;
        let Some(first) = batches.first() else { continue };
        let batch = if batches.len() == 1 { first.clone() } else { concat_batches(&first.schema(), &batches)? };
        let precedence = u8::try_from(precedence)
            .map_err(|_| Error::Config("curate.source_precedence: more than 255 sources".into()))?;
        out.push(SourceRows::new(ds.name().into(), precedence, &batch)?);
    }
    Ok(out)
}
