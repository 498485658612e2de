//! Curation: raw bars -> curated bars, with the NYSE calendar.
//!
//! - [`minute`]: the raw minute datasets -> `curated_1m_bars`, natively in Rust, partition by
//!   partition ([`merge`], then [`kernels`]): sessions, early closes and regular-hours flags from the
//!   calendar, every regular-session minute present (missing ones filled by the fill policy and
//!   flagged), outliers within each session. Millions of rows a run, in sorted partitions: a merge
//!   beats SQL's hash aggregate, grid join and sort.
//! - [`daily`]: the raw daily datasets -> `curated_1d_bars` in DuckDB SQL (`curate_1d.sql`): one bar
//!   per symbol and session, missing sessions counted as gaps (never filled), outliers against the
//!   previous sessions. A few thousand rows a year: SQL says it best.
//!
//! Both take each symbol-session whole from the best source with valid bars (`source_precedence`),
//! deduplicate (the latest ingested wins), check OHLC order and positive finite prices (failures go to
//! `curation_rejects` with a reason), and commit through the manifest: the range's partitions are
//! replaced exactly, each with its data-quality verdict, and the metrics per symbol-session go to
//! `dq_metrics`.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{AsArray, BooleanArray, RecordBatch};
use chrono::{NaiveDate, Utc};
use serde::{Deserialize, Serialize};

mod bars;
mod daily;
mod kernels;
mod merge;
mod minute;
mod validity;

pub use crate::bars::Frequency;
pub use crate::reference::corporate_actions::Adjustment;
pub use bars::{BarsRequest, get_curated_bars};

use crate::bars::BarSize;
use crate::calendar::{NyseCalendar, Session};
use crate::dq::{SessionMetrics, metrics};
use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};
use crate::reference::securities::{SYMBOLOGY, SecurityMaster};
use crate::symbol::Symbol;
use crate::table::lake_log::LakeView;
use crate::table::layout::PartitionKey;
use crate::table::manifest::TableState;
use crate::table::operations::write::{StagedPartition, WriteMode};
use crate::table::{AsOf, Dataset, Lake};

/// The curated minute dataset.
pub const DATASET: &str = "curated_1m_bars";
/// The curated daily dataset.
pub const DAILY_DATASET: &str = "curated_1d_bars";
/// The curated dataset of a bar size.
pub fn dataset_for(bar_size: BarSize) -> &'static str {
    match bar_size {
        BarSize::Minute => DATASET,
        BarSize::Day => DAILY_DATASET,
    }
}

/// Where invalid raw bars go.
pub const REJECTS: &str = "curation_rejects";

/// The validity checks both stages apply (a SQL CASE expression).
const VALIDITY_SQL: &str = include_str!("validity.sql");
const SOURCE_BARS_SQL: &str = include_str!("source_bars.sql");

/// Valid bars per symbol-session of the chosen and the superseded sources (`source_bars.sql`), once a
/// stage's script has built its `source_counts` and `chosen` tables.
fn source_bars(engine: &crate::query::QueryEngine, start: NaiveDate, end: NaiveDate) -> Result<Vec<RecordBatch>> {
    engine.query(&fill_template(SOURCE_BARS_SQL, &[("start", start.to_string()), ("end", end.to_string())])?)
}

/// What to do with regular-session minutes the source did not deliver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FillPolicy {
    /// Carry the last close forward (open = high = low = close, volume 0), flagged `is_filled`.
    ForwardFill,
    /// Leave the minute out (gaps are still counted by data quality).
    None,
}

impl Named for FillPolicy {
    const WHAT: &'static str = "fill policy";
    const ALL: &'static [Self] = &[FillPolicy::ForwardFill, FillPolicy::None];

    fn name(self) -> &'static str {
        match self {
            FillPolicy::ForwardFill => "forward-fill",
            FillPolicy::None => "none",
        }
    }

    /// Configs and commits spell it `forward_fill`.
    fn aliases(self) -> &'static [&'static str] {
        match self {
            FillPolicy::ForwardFill => &["forward_fill"],
            FillPolicy::None => &[],
        }
    }

    fn help(self) -> Option<&'static str> {
        Some(match self {
            FillPolicy::ForwardFill => {
                "Carry the last close forward (open = high = low = close, volume 0), flagged `is_filled`"
            }
            FillPolicy::None => "Leave the minute out (gaps are still counted by data quality)",
        })
    }
}

named_display_and_from_str!(FillPolicy);

/// `[curate]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct CurateSettings {
    pub fill: FillPolicy,
    /// A bar is an outlier when |1-minute log return| > `outlier_k` x the sample std of the previous
    /// `outlier_window` returns of its session.
    pub outlier_k: f64,
    pub outlier_window: usize,
    /// Sources by preference: a symbol-session comes whole from the first one that has valid bars.
    pub source_precedence: Vec<String>,
    /// The universe whose members on each session curation expects bars of (`securities.
    /// default_universe`, set by the config loader); while the security master records no
    /// membership of it, every active `reference_universe` symbol is expected in every session.
    #[serde(skip)]
    pub expected_universe: String,
}

impl Default for CurateSettings {
    fn default() -> Self {
        Self {
            fill: FillPolicy::ForwardFill,
            outlier_k: 10.0,
            outlier_window: 30,
            source_precedence: ["tws", "polygon", "alpaca", "file", "synthetic"].map(String::from).to_vec(),
            expected_universe: crate::reference::securities::SecuritySettings::default().default_universe,
        }
    }
}

/// What to curate.
#[derive(Debug, Clone)]
pub struct CurateRequest {
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub job_id: Option<String>,
    /// Minute bars into `curated_1m_bars`, or daily bars into `curated_1d_bars` (whole years: its
    /// partitions).
    pub bar_size: BarSize,
}

impl CurateRequest {
    /// The sessions `start..=end` at `bar_size`, with the defaults: `start` is the last completed
    /// session, `end` is `start`; the job id stays `None` (a fresh one per run).
    pub fn for_sessions(
        start: Option<NaiveDate>,
        end: Option<NaiveDate>,
        bar_size: BarSize,
        job_id: Option<String>,
    ) -> Self {
        let start = start.unwrap_or_else(|| NyseCalendar.last_completed_session(Utc::now()));
        Self { start, end: end.unwrap_or(start), job_id, bar_size }
    }
}

impl CurateSettings {
    /// These settings with `fill` as the fill policy when it is given (a flag over the config).
    pub fn with_fill(mut self, fill: Option<FillPolicy>) -> Self {
        self.fill = fill.unwrap_or(self.fill);
        self
    }
}

/// What a curation did.
#[derive(Debug, Clone, Serialize)]
pub struct CurateReport {
    pub dataset: String,
    pub job_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub sessions: usize,
    /// Raw datasets read, at these snapshots (the curated snapshot's lineage).
    pub inputs: BTreeMap<String, u64>,
    pub raw_rows: u64,
    /// Valid bars of a source that lost to a preferred one for the same symbol-session.
    pub superseded_rows: u64,
    pub duplicates_removed: u64,
    pub invalid_rows: u64,
    pub filled_rows: u64,
    /// Regular-session minutes left out: nothing to fill from (no earlier bar), or the fill policy is `none`.
    pub unfilled_gaps: u64,
    pub extended_hours_rows: u64,
    pub outliers: u64,
    pub rows: u64,
    pub snapshot_id: u64,
    pub rejects_snapshot_id: Option<u64>,
    /// The `dq_metrics` snapshot holding this run's metrics per symbol-session.
    pub dq_snapshot_id: u64,
    /// The stage that committed the curated rows, rejects and metrics together, and its lake snapshot.
    pub stage_id: String,
    pub lake_seq: u64,
    pub seconds: f64,
    pub rows_per_second: f64,
}

/// Curates `request` with `settings`.
pub async fn curate(lake: &Lake, settings: &CurateSettings, request: &CurateRequest) -> Result<CurateReport> {
    curate_with_progress(lake, settings, request, &crate::progress::NoProgress).await
}

/// [`curate`], reporting partitions (minute bars: sessions; daily bars: years) to `progress`.
pub async fn curate_with_progress(
    lake: &Lake,
    settings: &CurateSettings,
    request: &CurateRequest,
    progress: &dyn crate::progress::Progress,
) -> Result<CurateReport> {
    if request.end < request.start {
        return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
    }
    if !(settings.outlier_k.is_finite() && settings.outlier_k > 0.0) || settings.outlier_window < 2 {
        return Err(Error::Config(format!(
            "curate: outlier_k must be > 0 ({}) and outlier_window >= 2 ({})",
            settings.outlier_k, settings.outlier_window
        )));
    }
    // A session still in progress would be filled to its close with bars that never traded.
    let last_completed = NyseCalendar.last_completed_session(Utc::now());
    if request.end > last_completed {
        return Err(Error::invalid(format!(
            "end {} is after the last completed session {last_completed}",
            request.end
        )));
    }
    if NyseCalendar.sessions(request.start, request.end).is_empty() {
        return Err(Error::invalid(format!("no NYSE session between {} and {}", request.start, request.end)));
    }
    let job_id = request.job_id.clone().unwrap_or_else(|| format!("curate-{}", uuid::Uuid::now_v7().simple()));
    match request.bar_size {
        BarSize::Minute => minute::curate(lake, settings, request, job_id, progress).await,
        BarSize::Day => {
            // One SQL statement per year partition: the bar shows that it runs, not how far.
            progress.set_length(1);
            let report = daily::curate(lake, settings, request, job_id, last_completed).await;
            progress.finish();
            report
        }
    }
}

/// What a run knows about securities: the master it stamps rows with and follows series by, and the
/// symbols it expects in each session.
pub(crate) struct Securities {
    pub master: Arc<SecurityMaster>,
    /// The universe whose members are expected, when the master records its membership.
    universe: Option<String>,
    /// Otherwise: the active `reference_universe` symbols, in every session.
    active: Vec<Symbol>,
}

impl Securities {
    pub async fn load(lake: &Lake, settings: &CurateSettings) -> Result<Self> {
        let master = SecurityMaster::load(lake, &AsOf::latest()).await?;
        let universe = master
            .universes()
            .contains(settings.expected_universe.as_str())
            .then(|| settings.expected_universe.clone());
        let active = match universe {
            Some(_) => Vec::new(),
            None => crate::universe::active_symbols(lake).await?,
        };
        Ok(Self { master: Arc::new(master), universe, active })
    }

    /// The symbols expected in the session of `date`: the tickers the universe's members had that day
    /// (a delisted one up to its delisting, a renamed one under its name then), or every active symbol.
    pub fn expected(&self, date: NaiveDate) -> Vec<Symbol> {
        match &self.universe {
            Some(u) => self.master.members(u, date).into_iter().filter_map(|m| m.ticker).collect(),
            None => self.active.clone(),
        }
    }

    /// Records the symbology snapshot rows were stamped from among a run's inputs.
    pub fn record_input(&self, inputs: &mut BTreeMap<String, u64>) {
        let id = self.master.snapshots.get(SYMBOLOGY).copied().unwrap_or(0);
        if id > 0 {
            inputs.insert(SYMBOLOGY.to_string(), id);
        }
    }
}

/// The raw datasets of `bar_size` in `settings.source_precedence` order (`raw_<source>_bars` or
/// `raw_<source>_daily_bars`), each with its latest snapshot as `view` sees it.
async fn raw_datasets(
    lake: &Lake,
    settings: &CurateSettings,
    bar_size: BarSize,
    view: &LakeView,
) -> Result<Vec<(Dataset, TableState)>> {
    let mut out = Vec::new();
    for source in &settings.source_precedence {
        let name = bar_size.raw_dataset(source);
        let ds = lake.dataset(&name).map_err(|_| {
            Error::Config(format!("curate.source_precedence: no raw dataset '{name}' for source '{source}'"))
        })?;
        let state = ds.latest_in(view).await?;
        out.push((ds, state));
    }
    if out.iter().all(|(_, state)| state.snapshot_id == 0) {
        let names: Vec<&str> = out.iter().map(|(ds, _)| ds.name()).collect();
        return Err(Error::invalid(format!(
            "nothing to curate: no raw {} dataset has data ({})",
            bar_size.as_str(),
            names.join(", ")
        )));
    }
    Ok(out)
}

/// The raw datasets of `bar_size` in precedence order, and, for those with data, one SQL union of
/// them with `dataset` and `precedence` columns, each filtered by the SQL condition `filter`.
async fn raw_union(
    lake: &Lake,
    settings: &CurateSettings,
    bar_size: BarSize,
    filter: &str,
) -> Result<(Vec<String>, String)> {
    let raw = raw_datasets(lake, settings, bar_size, &lake.view().await?).await?;
    let selects: Vec<String> = raw
        .iter()
        .enumerate()
        .filter(|(_, (_, state))| state.snapshot_id > 0)
        .map(|(precedence, (ds, _))| {
            format!(
                "SELECT *, '{name}' AS dataset, {precedence} AS precedence FROM {name} WHERE {filter}",
                name = ds.name()
            )
        })
        .collect();
    Ok((raw.iter().map(|(ds, _)| ds.name().to_string()).collect(), selects.join("\nUNION ALL BY NAME\n")))
}

/// What a curation stage produced: committed and reported by [`Outputs::commit`].
struct Outputs<'a> {
    lake: &'a Lake,
    /// The curated dataset, and the partitions its run replaces.
    dataset: &'static str,
    partitions: Vec<PartitionKey>,
    curated: CuratedRows,
    /// Refused raw bars (with a `date` column), and the raw datasets whose refusals this run decides.
    rejects: Vec<RecordBatch>,
    raw_datasets: Vec<String>,
    sessions: &'a [Session],
    metrics: Vec<SessionMetrics>,
    /// The range actually curated (daily curation widens it to whole years).
    request: &'a CurateRequest,
    job_id: String,
    /// Raw datasets read, at these snapshots.
    inputs: BTreeMap<String, u64>,
    settings: &'a CurateSettings,
    counts: StageCounts,
    started: std::time::Instant,
}

/// A stage's curated partitions.
enum CuratedRows {
    /// Rows to write at the commit: the dataset's columns (extra ones are dropped), judged by the metrics.
    Batches(Vec<RecordBatch>),
    /// Partitions already staged with their verdicts, as they were computed.
    Staged(Vec<StagedPartition>),
}

/// What a stage counted for its report; the rest (rows, invalid rows, snapshots) the commit knows.
struct StageCounts {
    /// Valid raw bars in the range (the report adds the invalid ones).
    valid_raw_rows: u64,
    superseded_rows: u64,
    duplicates_removed: u64,
    filled_rows: u64,
    unfilled_gaps: u64,
    extended_hours_rows: u64,
    outliers: u64,
}

impl Outputs<'_> {
    /// Commits the curated rows with each partition's verdict, the rejects and the metrics as one
    /// stage: a reader sees all three of this run or none of them.
    async fn commit(self) -> Result<CurateReport> {
        let lake = self.lake;
        let ds = lake.dataset(self.dataset)?;
        let (curated_write, rows) = match self.curated {
            CuratedRows::Batches(batches) => {
                let curated: Vec<RecordBatch> = batches
                    .iter()
                    .filter(|b| b.num_rows() > 0)
                    .map(|b| ds.contract().conform_batch(b))
                    .collect::<Result<_>>()?;
                let rows: u64 = curated.iter().map(|b| b.num_rows() as u64).sum();
                (ds.write(curated).quality(metrics::partition_quality(ds.contract(), &self.metrics)?), rows)
            }
            CuratedRows::Staged(staged) => {
                let rows = staged.iter().map(StagedPartition::rows).sum();
                (ds.write(Vec::new()).prebuilt(staged), rows)
            }
        };
        let curated_write = curated_write
            .mode(WriteMode::Overwrite)
            .covering(self.partitions)
            .operation("curate")
            .parameter("job_id", &self.job_id)
            .parameter("start", self.request.start)
            .parameter("end", self.request.end)
            .parameter("inputs", &self.inputs)
            .parameter("settings", self.settings);
        let rejects_ds = lake.dataset(REJECTS)?;
        let contract = rejects_ds.contract().clone();
        let rejects: Vec<RecordBatch> = self
            .rejects
            .iter()
            .filter(|b| b.num_rows() > 0)
            .map(|b| contract.conform_batch(b))
            .collect::<Result<_>>()?;
        let invalid_rows: u64 = rejects.iter().map(|b| b.num_rows() as u64).sum();
        // This run's refusals replace earlier runs' for the same raw datasets and days (weekends too:
        // a bar stamped on a Saturday is refused there); other raw datasets' refusals stay.
        let raw = self.raw_datasets;
        let of_these = move |b: &RecordBatch| -> Result<BooleanArray> {
            let col = b
                .column_by_name("dataset")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| Error::invalid("curation_rejects has no dataset column"))?;
            Ok(col.iter().map(|v| Some(v.is_some_and(|v| raw.iter().any(|r| r == v)))).collect())
        };
        let days = self.request.start.iter_days().take_while(|d| *d <= self.request.end);
        let rejects_write = rejects_ds
            .write(rejects)
            .removing_where(Arc::new(of_these))
            .covering_dates(days)
            .operation("curate")
            .parameter("job_id", &self.job_id);
        let dq_ds = lake.dataset(crate::dq::DATASET)?;
        let metrics_write = crate::dq::metrics_write(&dq_ds, self.dataset, self.sessions, &self.metrics, &self.job_id)?;
        let stage = lake
            .stage("curate")
            .parameter("job_id", &self.job_id)
            .parameter("dataset", self.dataset)
            .parameter("start", self.request.start)
            .parameter("end", self.request.end)
            .write(curated_write)
            .write(rejects_write)
            .write(metrics_write)
            .commit()
            .await?;
        let snapshot = |name: &str| stage.write(name).map_or(0, |w| w.snapshot_id);
        let rejects_changed = stage.write(REJECTS).is_some_and(|w| w.partitions > 0);
        let seconds = self.started.elapsed().as_secs_f64();
        let c = self.counts;
        tracing::info!(
            dataset = self.dataset,
            rows,
            snapshot = snapshot(self.dataset),
            lake_seq = stage.lake_seq,
            invalid = invalid_rows,
            filled = c.filled_rows,
            gaps = c.unfilled_gaps,
            outliers = c.outliers,
            "curated"
        );
        Ok(CurateReport {
            dataset: self.dataset.into(),
            job_id: self.job_id,
            start: self.request.start,
            end: self.request.end,
            sessions: self.sessions.len(),
            inputs: self.inputs,
            raw_rows: c.valid_raw_rows + invalid_rows,
            superseded_rows: c.superseded_rows,
            duplicates_removed: c.duplicates_removed,
            invalid_rows,
            filled_rows: c.filled_rows,
            unfilled_gaps: c.unfilled_gaps,
            extended_hours_rows: c.extended_hours_rows,
            outliers: c.outliers,
            rows,
            snapshot_id: snapshot(self.dataset),
            rejects_snapshot_id: rejects_changed.then(|| snapshot(REJECTS)),
            dq_snapshot_id: snapshot(crate::dq::DATASET),
            stage_id: stage.stage_id.clone(),
            lake_seq: stage.lake_seq,
            seconds,
            rows_per_second: rows as f64 / seconds.max(1e-9),
        })
    }
}

/// How many rows of some batches hold `true` in a boolean column.
fn count_true(batches: &[RecordBatch], column: &str) -> u64 {
    batches
        .iter()
        .filter_map(|b| b.column_by_name(column))
        .filter_map(|c| c.as_boolean_opt())
        .map(|c| c.true_count() as u64)
        .sum()
}

/// A `.sql` file with its `{name}` placeholders filled in. Every placeholder must be given and used, so
/// a renamed one fails here rather than as a DuckDB syntax error.
pub(crate) fn fill_template(template: &str, values: &[(&str, String)]) -> Result<String> {
    // Checked on the template, not the result: values are SQL and may hold braces of their own.
    for (i, _) in template.match_indices('{') {
        let Some(len) = template[i..].find('}') else { continue };
        let name = &template[i + 1..i + len];
        if !values.iter().any(|(n, _)| *n == name) {
            return Err(Error::invalid(format!("SQL template placeholder {{{name}}} has no value")));
        }
    }
    let mut out = template.to_string();
    for (name, value) in values {
        let key = format!("{{{name}}}");
        if !out.contains(&key) {
            return Err(Error::invalid(format!("SQL template has no placeholder {key}")));
        }
        out = out.replace(&key, value);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_are_filled_completely() {
        let filled = fill_template("SELECT {a} + {b}", &[("a", "1".into()), ("b", "2".into())]).unwrap();
        assert_eq!(filled, "SELECT 1 + 2");
        assert!(fill_template("SELECT {a}", &[("a", "1".into()), ("b", "2".into())]).is_err(), "unused value");
        assert!(fill_template("SELECT {a} + {c}", &[("a", "1".into())]).unwrap_err().to_string().contains("{c}"));
        // The shipped templates take exactly the values the code gives them.
        let daily = [
            ("raw", "r"),
            ("start", "s"),
            ("end", "e"),
            ("outlier_k", "k"),
            ("outlier_window", "w"),
            ("validity", "v"),
        ]
        .map(|(k, v)| (k, v.to_string()));
        assert!(fill_template(daily::CURATE_SQL, &daily).is_ok());
        assert!(fill_template(SOURCE_BARS_SQL, &[("start", "s".into()), ("end", "e".into())]).is_ok());
        assert!(
            fill_template(include_str!("resample.sql"), &[("filter", "f".into()), ("minutes", "5".into())]).is_ok()
        );
    }

    #[test]
    fn fill_policies_read_both_spellings() {
        assert_eq!("forward-fill".parse::<FillPolicy>().unwrap(), FillPolicy::ForwardFill);
        assert_eq!("forward_fill".parse::<FillPolicy>().unwrap(), FillPolicy::ForwardFill);
        assert_eq!(FillPolicy::ForwardFill.to_string(), "forward-fill");
        assert_eq!(
            serde_json::to_value(FillPolicy::ForwardFill).unwrap(),
            "forward_fill",
            "configs and commits keep theirs"
        );
        assert!("ffill".parse::<FillPolicy>().unwrap_err().to_string().contains("expected one of: forward-fill, none"));
        assert_eq!(CurateSettings::default().with_fill(Some(FillPolicy::None)).fill, FillPolicy::None);
        assert_eq!(CurateSettings::default().with_fill(None).fill, FillPolicy::ForwardFill);
    }
}
