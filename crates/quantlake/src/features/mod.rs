//! Features and labels: curated bars -> the `features` layer, one snapshot of every set per run.
//!
//! A **feature set** (`schemas/features_*.toml`) lists features with their kernel and parameters in
//! its contract's `[definition]`; [`kernels`] compute them in Rust on rayon, per symbol-session over
//! the regular-session minute grid (no SQL, no per-row allocation). A **label set**
//! (`schemas/labels_*.toml`) lists forward targets; [`labels`] computes them natively too, a session
//! partition at a time on rayon, with trailing betas from daily closes. [`compute_features`] computes
//! the requested sets for a range of sessions and commits them as one stage with their data-quality
//! metrics, recording the input snapshot each set read, its version and the hash of its definition and
//! code.
//!
//! Features never read a bar after their row's: a row stamped `ts` (the bar's start) is available at
//! `available_at` = ts + one bar. Labels never read outside their horizon, and start after the
//! decision time (ts + one bar).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, BooleanBuilder, Float64Builder, Int32Array, RecordBatch,
    TimestampMicrosecondArray, UInt32Array,
};
use arrow::compute::{concat_batches, take};
use arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use chrono::NaiveDate;
use futures::StreamExt;
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

pub mod definition;
pub mod inputs;
pub mod kernels;
pub mod labels;

pub use definition::{Feature, FeatureSet, Horizon, LabelSet, SetDefinition, Target};

use crate::calendar::{NyseCalendar, Session};
use crate::dq::{SessionMetrics, metrics};
use crate::error::{Error, Result};
use crate::reference::corporate_actions::SplitHistory;
use crate::reference::securities::SECURITY_ID;
use crate::table::layout::PartitionKey;
use crate::table::manifest::TableState;
use crate::table::operations::write::{StagedPartition, Stager, WriteMode};
use crate::table::{AsOf, Dataset, Lake, ReadFilter};

/// `[features]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct FeaturesSettings {
    /// The sets `quantlake features` computes when no `--set` is given.
    pub sets: Vec<String>,
}

impl Default for FeaturesSettings {
    fn default() -> Self {
        Self { sets: vec!["features_price_1m_v1".into(), "labels_fwd_ret_v1".into()] }
    }
}

/// What to compute.
#[derive(Debug, Clone)]
pub struct FeaturesRequest {
    /// Feature and label set names (datasets whose contract has a `[definition]`).
    pub sets: Vec<String>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub job_id: Option<String>,
}

/// What one set's run wrote.
#[derive(Debug, Clone, Serialize)]
pub struct SetReport {
    pub set: String,
    pub kind: &'static str,
    pub version: u32,
    pub definition_sha256: String,
    /// Datasets read, at these snapshots.
    pub inputs: BTreeMap<String, u64>,
    pub partitions: usize,
    pub rows: u64,
    pub snapshot_id: u64,
    pub seconds: f64,
}

/// What a run wrote, committed as one stage.
#[derive(Debug, Clone, Serialize)]
pub struct FeaturesReport {
    pub job_id: String,
    pub start: NaiveDate,
    pub end: NaiveDate,
    pub sessions: usize,
    pub sets: Vec<SetReport>,
    pub dq_snapshot_id: Option<u64>,
    pub stage_id: String,
    pub lake_seq: u64,
    pub seconds: f64,
}

/// Computes `request.sets` over its sessions and commits them, with the feature sets' data-quality
/// metrics, as one stage: a reader sees all of this run's sets or none.
pub async fn compute_features(lake: &Lake, request: &FeaturesRequest) -> Result<FeaturesReport> {
    compute_features_with_progress(lake, request, &crate::progress::NoProgress).await
}

/// [`compute_features`], reporting each set's sessions to `progress`.
pub async fn compute_features_with_progress(
    lake: &Lake,
    request: &FeaturesRequest,
    progress: &dyn crate::progress::Progress,
) -> Result<FeaturesReport> {
    let started = std::time::Instant::now();
    if request.end < request.start {
        return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
    }
    let sessions = NyseCalendar.sessions(request.start, request.end);
    if sessions.is_empty() {
        return Err(Error::invalid(format!("no NYSE session between {} and {}", request.start, request.end)));
    }
    if request.sets.is_empty() {
        return Err(Error::invalid("no feature or label set to compute"));
    }
    let job_id = request.job_id.clone().unwrap_or_else(|| format!("features-{}", uuid::Uuid::now_v7().simple()));
    let mut outputs: Vec<Computed> = Vec::new();
    let mut all_metrics: Vec<(String, Vec<SessionMetrics>)> = Vec::new();
    let mut read: Vec<(String, BTreeMap<NaiveDate, inputs::Inputs>)> = Vec::new();
    progress.set_length((sessions.len() * request.sets.len()) as u64);
    let computed = compute_sets(lake, request, &sessions, &mut outputs, &mut all_metrics, &mut read, progress).await;
    if let Err(e) = computed {
        for out in &outputs {
            lake.dataset(&out.name)?.discard_staged(&out.staged).await;
        }
        return Err(e);
    }
    commit_sets(lake, request, &sessions, job_id, outputs, all_metrics, read, started).await
}

/// Computes each set of `request` over `sessions`, staging its partitions as they are computed, into
/// `outputs` (with the feature sets' metrics and every set's input records).
async fn compute_sets(
    lake: &Lake,
    request: &FeaturesRequest,
    sessions: &[Session],
    outputs: &mut Vec<Computed>,
    all_metrics: &mut Vec<(String, Vec<SessionMetrics>)>,
    read: &mut Vec<(String, BTreeMap<NaiveDate, inputs::Inputs>)>,
    progress: &dyn crate::progress::Progress,
) -> Result<()> {
    let view = lake.view().await?;
    for name in &request.sets {
        progress.message(name);
        let ds = lake.dataset(name)?;
        let set = SetDefinition::from_contract(ds.contract())?;
        let t0 = std::time::Instant::now();
        let (inputs, staged, kind, version, hash) = match &set {
            SetDefinition::Features(f) => {
                let input = lake.dataset(&f.input)?;
                let state = input.latest_in(&view).await?;
                let expected =
                    Arc::new(expected_symbol_sessions(lake, &view, &f.input, request.start, request.end).await?);
                let (staged, metrics) = stage_features(&input, &state, f, sessions, expected, &ds, progress).await?;
                all_metrics.push((f.name.clone(), metrics));
                read.push((
                    f.name.clone(),
                    sessions.iter().map(|s| (s.date, inputs::read_inputs(&input, &state, s.date, s.date))).collect(),
                ));
                (
                    BTreeMap::from([(f.input.clone(), state.snapshot_id)]),
                    staged,
                    "features",
                    f.version,
                    f.definition_sha256.clone(),
                )
            }
            SetDefinition::Labels(l) => {
                let input = lake.dataset(&l.input)?;
                let state = input.latest_in(&view).await?;
                // Returns across sessions use split-adjusted prices (reference_corporate_actions).
                let actions = lake.dataset(crate::reference::corporate_actions::DATASET)?;
                let actions_state = actions.latest_in(&view).await?;
                // The splits of the snapshot recorded as the labels' input.
                let splits = match actions_state.snapshot_id {
                    0 => SplitHistory::default(),
                    id => {
                        SplitHistory::load(
                            lake,
                            None,
                            &AsOf::pinned(&BTreeMap::from([(actions.name().to_string(), id)])),
                        )
                        .await?
                    }
                };
                let (read_start, read_end) = labels::read_range(l, request.start, request.end);
                let factors = labels::split_factors(&splits, read_start, read_end);
                let staged = labels::compute(&input, &state, l, request.start, request.end, &factors, &ds).await?;
                progress.inc(sessions.len() as u64);
                // A split imported later changes the labels around it: the corporate actions' version is
                // an input of every label partition (coarse: any import makes them stale).
                let reads = |d: NaiveDate| {
                    let (from, to) = labels::read_range(l, d, d);
                    let mut read = inputs::read_inputs(&input, &state, from, to);
                    read.extend(inputs::read_inputs(&actions, &actions_state, from, from));
                    read
                };
                read.push((l.name.clone(), sessions.iter().map(|s| (s.date, reads(s.date))).collect()));
                let inputs = BTreeMap::from([
                    (l.input.clone(), state.snapshot_id),
                    (actions.name().to_string(), actions_state.snapshot_id),
                ]);
                (inputs, staged, "labels", l.version, l.definition_sha256.clone())
            }
        };
        let rows = staged.iter().map(StagedPartition::rows).sum();
        outputs.push(Computed {
            name: name.clone(),
            kind,
            version,
            hash,
            inputs,
            staged,
            seconds: t0.elapsed().as_secs_f64(),
            rows,
        });
        let out = &outputs[outputs.len() - 1];
        let input = set_input(&set);
        if out.inputs.get(input).is_none_or(|s| *s == 0) {
            return Err(Error::invalid(format!(
                "set '{name}': its input '{input}' has no data yet (run `quantlake curate`)"
            )));
        }
        tracing::info!(set = name, rows, seconds = out.seconds, "computed");
    }
    Ok(())
}

/// Commits the staged sets with their metrics and input records as one stage.
#[allow(clippy::too_many_arguments)]
async fn commit_sets(
    lake: &Lake,
    request: &FeaturesRequest,
    sessions: &[Session],
    job_id: String,
    outputs: Vec<Computed>,
    all_metrics: Vec<(String, Vec<SessionMetrics>)>,
    read: Vec<(String, BTreeMap<NaiveDate, inputs::Inputs>)>,
    started: std::time::Instant,
) -> Result<FeaturesReport> {
    let dq_ds = lake.dataset(crate::dq::DATASET)?;
    let records = lake.dataset(inputs::DATASET)?;
    let datasets: Vec<_> = outputs.iter().map(|o| lake.dataset(&o.name)).collect::<Result<_>>()?;
    let mut stage = lake
        .stage("features")
        .parameter("job_id", &job_id)
        .parameter("start", request.start)
        .parameter("end", request.end);
    for (ds, out) in datasets.iter().zip(&outputs) {
        let contract = ds.contract();
        // The partitions carry their verdicts (feature sets): staged with them.
        let write = ds
            .write(Vec::new())
            .prebuilt(out.staged.clone())
            .mode(WriteMode::Overwrite)
            .covering(sessions.iter().map(|s| PartitionKey::for_date(contract.partitioning, s.date)))
            .operation("features")
            .parameter("job_id", &job_id)
            .parameter("kind", out.kind)
            .parameter("version", out.version)
            .parameter("definition_sha256", &out.hash)
            .parameter("inputs", &out.inputs)
            .parameter("start", request.start)
            .parameter("end", request.end);
        stage = stage.write(write);
    }
    let with_metrics: Vec<(&str, &[SessionMetrics])> =
        all_metrics.iter().map(|(n, m)| (n.as_str(), m.as_slice())).collect();
    if !with_metrics.is_empty() {
        stage = stage.write(crate::dq::metrics_write_many(&dq_ds, &with_metrics, sessions, &job_id)?);
    }
    stage = stage.write(inputs::inputs_write(&records, &read, sessions, &job_id)?);
    let result = stage.commit().await?;
    let sets = outputs
        .iter()
        .map(|out| {
            let w = result.write(&out.name);
            SetReport {
                set: out.name.clone(),
                kind: out.kind,
                version: out.version,
                definition_sha256: out.hash.clone(),
                inputs: out.inputs.clone(),
                partitions: w.map_or(0, |w| w.partitions),
                rows: out.rows,
                snapshot_id: w.map_or(0, |w| w.snapshot_id),
                seconds: out.seconds,
            }
        })
        .collect();
    let report = FeaturesReport {
        job_id,
        start: request.start,
        end: request.end,
        sessions: sessions.len(),
        sets,
        dq_snapshot_id: (!with_metrics.is_empty())
            .then(|| result.write(crate::dq::DATASET).map_or(0, |w| w.snapshot_id)),
        stage_id: result.stage_id.clone(),
        lake_seq: result.lake_seq,
        seconds: started.elapsed().as_secs_f64(),
    };
    tracing::info!(job_id = report.job_id, lake_seq = report.lake_seq, seconds = report.seconds, "features committed");
    Ok(report)
}

/// One set's rows, before the commit.
struct Computed {
    name: String,
    kind: &'static str,
    version: u32,
    hash: String,
    inputs: BTreeMap<String, u64>,
    /// Its partitions, staged as they were computed.
    staged: Vec<StagedPartition>,
    seconds: f64,
    rows: u64,
}

/// The dataset a set is computed from.
fn set_input(set: &SetDefinition) -> &str {
    match set {
        SetDefinition::Features(f) => &f.input,
        SetDefinition::Labels(l) => &l.input,
    }
}

/// What `features --stale` found and recomputed.
#[derive(Debug, Clone, Serialize)]
pub struct StaleReport {
    pub stale: Vec<inputs::StalePartition>,
    /// One run per set and range of consecutive stale sessions.
    pub runs: Vec<FeaturesReport>,
}

/// Recomputes exactly the partitions of `sets` whose inputs changed since they were computed
/// ([`inputs::stale_sessions`]), one run per set and range of consecutive sessions.
pub async fn refresh_stale(lake: &Lake, sets: &[String]) -> Result<StaleReport> {
    let mut stale = Vec::new();
    let mut runs = Vec::new();
    for set in sets {
        let found = inputs::stale_sessions(lake, set).await?;
        let dates: Vec<NaiveDate> = found.iter().map(|p| p.date).collect();
        for (start, end) in inputs::session_runs(&dates) {
            tracing::info!(set, %start, %end, "recomputing stale partitions");
            runs.push(
                compute_features(lake, &FeaturesRequest { sets: vec![set.clone()], start, end, job_id: None }).await?,
            );
        }
        stale.extend(found);
    }
    Ok(StaleReport { stale, runs })
}

/// Partitions read and computed at once: each is a session of every symbol, so memory is bounded by
/// these, not by the range.
const PARTITIONS_IN_FLIGHT: usize = 2;

/// Computes the feature set on each of `sessions` that `input` (at `state`) has a partition for, a
/// few partitions at a time, and stages each partition of `out` in the background as soon as it is
/// computed, judged by its metrics: memory holds the partitions in flight, not the range. Returns the staged partitions
/// and every session's metrics (against the symbol-sessions curation `expected`).
async fn stage_features(
    input: &Dataset,
    state: &TableState,
    set: &FeatureSet,
    sessions: &[Session],
    expected: Arc<BTreeMap<NaiveDate, Vec<(String, u64)>>>,
    out: &Dataset,
    progress: &dyn crate::progress::Progress,
) -> Result<(Vec<StagedPartition>, Vec<SessionMetrics>)> {
    if input.contract().partitioning != crate::contract::Partitioning::Date {
        return Err(Error::invalid(format!(
            "feature set '{}': input '{}' must be date-partitioned",
            set.name,
            input.name()
        )));
    }
    let (with_input, without): (Vec<&Session>, Vec<&Session>) = sessions.iter().partition(|s| {
        state.partitions.contains_key(&PartitionKey::for_date(input.contract().partitioning, s.date).to_string())
    });
    let set = Arc::new(set.clone());
    let mut computed = futures::stream::iter(with_input.into_iter().map(|session| {
        let (set, expected, session) = (set.clone(), expected.clone(), *session);
        let key = PartitionKey::for_date(out.contract().partitioning, session.date);
        let entry = &state.partitions[&PartitionKey::for_date(input.contract().partitioning, session.date).to_string()];
        async move {
            let batches = input.read_partition_columns(entry, &input_columns(input, &FEATURE_INPUT_COLUMNS)).await?;
            let contract = out.contract().clone();
            tokio::task::spawn_blocking(move || -> Result<_> {
                let rows = session_features(&batches, &session, &set)?;
                let metrics =
                    feature_metrics(&[(session.date, rows.clone())], std::slice::from_ref(&session), &expected);
                let quality = metrics::partition_quality(&contract, &metrics)?.remove(&key);
                Ok((key, contract.conform_batch(&rows)?, metrics, quality))
            })
            .await?
        }
    }))
    .buffered(PARTITIONS_IN_FLIGHT);
    // Each partition is staged in the background while the next ones are computed.
    let mut stager = Stager::new(out, PARTITIONS_IN_FLIGHT);
    let mut all = Vec::new();
    while let Some(next) = computed.next().await {
        let staged = match next {
            Ok((key, rows, metrics, quality)) => {
                progress.inc(1);
                all.extend(metrics);
                if rows.num_rows() > 0 { stager.stage(key, vec![rows], quality).await } else { Ok(()) }
            }
            Err(e) => Err(e),
        };
        if let Err(e) = staged {
            drop(computed);
            stager.abandon().await;
            return Err(e);
        }
    }
    let staged = stager.finish().await?;
    let without: Vec<Session> = without.into_iter().cloned().collect();
    progress.inc(without.len() as u64);
    all.extend(feature_metrics(&[], &without, &expected));
    all.sort_by(|a, b| (a.date, &a.symbol).cmp(&(b.date, &b.symbol)));
    Ok((staged, all))
}

/// Symbols per rayon task.
const SYMBOLS_PER_TASK: usize = 16;

/// The input columns the feature kernels read.
const FEATURE_INPUT_COLUMNS: [&str; 7] = ["symbol", "ts", "close", "volume", "minute_idx", "is_rth", SECURITY_ID];

/// `columns` less an optional `security_id` that `input`'s contract lacks.
pub(crate) fn input_columns<'a>(input: &Dataset, columns: &[&'a str]) -> Vec<&'a str> {
    let schema = input.contract().arrow_schema();
    columns.iter().copied().filter(|c| *c != SECURITY_ID || schema.field_with_name(c).is_ok()).collect()
}

/// The features of one session's bars (rows ordered by symbol, ts, as the curated layer stores them).
pub fn session_features(batches: &[RecordBatch], session: &Session, set: &FeatureSet) -> Result<RecordBatch> {
    let schema = feature_schema(set);
    if batches.is_empty() {
        return Ok(RecordBatch::new_empty(schema));
    }
    let b = concat_batches(&batches[0].schema(), batches)?;
    let col = |name: &str| {
        b.column_by_name(name)
            .ok_or_else(|| Error::invalid(format!("feature set '{}': input has no column '{name}'", set.name)))
    };
    let symbol = col("symbol")?.as_string_opt::<i32>().ok_or_else(|| Error::invalid("symbol is not utf8"))?;
    let ts = col("ts")?
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| Error::invalid("ts is not a timestamp"))?;
    let close =
        col("close")?.as_primitive_opt::<Float64Type>().ok_or_else(|| Error::invalid("close is not float64"))?;
    let volume =
        col("volume")?.as_primitive_opt::<Float64Type>().ok_or_else(|| Error::invalid("volume is not float64"))?;
    let minute =
        col("minute_idx")?.as_primitive_opt::<Int32Type>().ok_or_else(|| Error::invalid("minute_idx is not int32"))?;
    let rth = col("is_rth")?.as_boolean_opt().ok_or_else(|| Error::invalid("is_rth is not bool"))?;
    // The input's security, carried to each row (null from a file curated before the column existed).
    let security = match b.column_by_name(SECURITY_ID) {
        Some(c) => c.clone(),
        None => arrow::array::new_null_array(&arrow::datatypes::DataType::Int64, b.num_rows()),
    };
    let minutes = session.minutes() as usize;

    // Runs of one symbol's rows; within a run, the regular-session rows.
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    while i < b.num_rows() {
        let s = symbol.value(i);
        let mut j = i + 1;
        while j < b.num_rows() && symbol.value(j) == s {
            j += 1;
        }
        runs.push((i, j));
        i = j;
    }
    let delay = set.availability_delay_us();
    let parts: Vec<RecordBatch> = runs
        .par_chunks(SYMBOLS_PER_TASK)
        .map(|task| -> Result<RecordBatch> {
            let mut rows: Vec<u32> = Vec::new();
            let mut minute_out: Vec<i32> = Vec::new();
            let mut values: Vec<Vec<f64>> = vec![Vec::new(); set.features.len()];
            let (mut c, mut v) = (vec![f64::NAN; minutes], vec![0.0; minutes]);
            for &(from, to) in task {
                c.fill(f64::NAN);
                v.fill(0.0);
                let mut present: Vec<(usize, u32)> = Vec::new();
                for r in from..to {
                    if !rth.value(r) || minute.is_null(r) || close.is_null(r) {
                        continue;
                    }
                    let m = minute.value(r);
                    if m < 0 || m as usize >= minutes {
                        return Err(Error::invalid(format!(
                            "{} {}: minute_idx {m} outside the session's {minutes} minutes",
                            symbol.value(r),
                            session.date
                        )));
                    }
                    c[m as usize] = close.value(r);
                    v[m as usize] = if volume.is_null(r) { 0.0 } else { volume.value(r) };
                    present.push((m as usize, r as u32));
                }
                let grid = kernels::Grid::new(&c, &v);
                for &(m, r) in &present {
                    rows.push(r);
                    minute_out.push(m as i32);
                    for (f, out) in set.features.iter().zip(values.iter_mut()) {
                        out.push(grid.value(&f.kernel, m));
                    }
                }
            }
            let idx = UInt32Array::from(rows);
            let ts_taken = take(ts, &idx, None)?;
            let ts_values = ts_taken.as_primitive::<TimestampMicrosecondType>();
            let mut columns: Vec<ArrayRef> = vec![
                take(symbol, &idx, None)?,
                Arc::new(ts_values.clone().with_timezone("UTC")),
                Arc::new(
                    TimestampMicrosecondArray::from_iter_values(ts_values.values().iter().map(|t| t + delay))
                        .with_timezone("UTC"),
                ),
                Arc::new(Int32Array::from(minute_out)),
            ];
            let security_taken = take(&security, &idx, None)?;
            for (f, out) in set.features.iter().zip(values) {
                columns.push(if f.kernel.is_flag() {
                    let mut bld = BooleanBuilder::with_capacity(out.len());
                    out.iter().for_each(|x| bld.append_value(*x == 1.0));
                    Arc::new(bld.finish())
                } else {
                    let mut bld = Float64Builder::with_capacity(out.len());
                    out.iter().for_each(|x| bld.append_option((!x.is_nan()).then_some(*x)));
                    Arc::new(bld.finish())
                });
            }
            columns.push(security_taken);
            Ok(RecordBatch::try_new(schema.clone(), columns)?)
        })
        .collect::<Result<_>>()?;
    Ok(concat_batches(&schema, &parts)?)
}

/// The Arrow schema of a feature set's rows as the kernels produce them.
fn feature_schema(set: &FeatureSet) -> arrow::datatypes::SchemaRef {
    use arrow::datatypes::{DataType, Field, Schema, TimeUnit};
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("symbol", DataType::Utf8, false),
        Field::new("ts", ts.clone(), false),
        Field::new("available_at", ts, false),
        Field::new("minute_idx", DataType::Int32, false),
    ];
    for f in &set.features {
        fields.push(if f.kernel.is_flag() {
            Field::new(&f.name, DataType::Boolean, false)
        } else {
            Field::new(&f.name, DataType::Float64, true)
        });
    }
    fields.push(Field::new(SECURITY_ID, DataType::Int64, true));
    Arc::new(Schema::new(fields))
}

/// The symbol-sessions curation expected for `input` (its `dq_metrics` rows): a feature set is judged
/// against them, so a symbol curation expected but could not deliver counts as not covered.
async fn expected_symbol_sessions(
    lake: &Lake,
    view: &crate::table::lake_log::LakeView,
    input: &str,
    start: NaiveDate,
    end: NaiveDate,
) -> Result<BTreeMap<NaiveDate, Vec<(String, u64)>>> {
    let dq = lake.dataset(crate::dq::DATASET)?;
    let state = dq.latest_in(view).await?;
    let batches = dq.read(&state, &ReadFilter { start: Some(start), end: Some(end), symbols: BTreeSet::new() }).await?;
    let mut out: BTreeMap<NaiveDate, Vec<(String, u64)>> = BTreeMap::new();
    for b in &batches {
        let dataset = b.column_by_name("dataset").and_then(|c| c.as_string_opt::<i32>());
        let symbol = b.column_by_name("symbol").and_then(|c| c.as_string_opt::<i32>());
        let open = b.column_by_name("session_open").and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>());
        let expected =
            b.column_by_name("expected_bars").and_then(|c| c.as_primitive_opt::<arrow::datatypes::Int64Type>());
        let (Some(dataset), Some(symbol), Some(open), Some(expected)) = (dataset, symbol, open, expected) else {
            return Err(Error::invalid("dq_metrics lacks dataset, symbol, session_open or expected_bars"));
        };
        for i in 0..b.num_rows() {
            if dataset.value(i) != input {
                continue;
            }
            let Some(ts) = chrono::DateTime::from_timestamp_micros(open.value(i)) else { continue };
            let date = NyseCalendar.trading_date(ts);
            if date >= start && date <= end {
                out.entry(date).or_default().push((symbol.value(i).to_string(), expected.value(i) as u64));
            }
        }
    }
    Ok(out)
}

/// Metrics per symbol-session of a feature set's rows: present = feature rows, expected = the
/// session's minutes for every symbol curation expected (or, without its metrics, every symbol with rows).
fn feature_metrics(
    rows: &[(NaiveDate, RecordBatch)],
    sessions: &[Session],
    expected: &BTreeMap<NaiveDate, Vec<(String, u64)>>,
) -> Vec<SessionMetrics> {
    let mut out = Vec::new();
    for session in sessions {
        let mut by_symbol: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
        if let Some((_, b)) = rows.iter().find(|(d, _)| *d == session.date) {
            let symbol = b.column(0).as_string::<i32>();
            let outlier: Option<&BooleanArray> = b.column_by_name("is_outlier").and_then(|c| c.as_boolean_opt());
            for i in 0..b.num_rows() {
                let e = by_symbol.entry(symbol.value(i)).or_default();
                e.0 += 1;
                e.1 += u64::from(outlier.is_some_and(|o| o.value(i)));
            }
        }
        let minutes = u64::from(session.minutes());
        let mut symbols: BTreeMap<String, u64> = by_symbol.keys().map(|s| (s.to_string(), minutes)).collect();
        for (s, e) in expected.get(&session.date).into_iter().flatten() {
            symbols.insert(s.clone(), *e);
        }
        for (s, expected_bars) in symbols {
            let (present, outliers) = by_symbol.get(s.as_str()).copied().unwrap_or_default();
            out.push(SessionMetrics {
                symbol: s,
                date: session.date,
                expected_bars,
                present_bars: present.min(expected_bars),
                delivered_bars: present,
                outlier_count: outliers,
                ..SessionMetrics::default()
            });
        }
    }
    out
}
