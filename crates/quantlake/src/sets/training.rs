//! Training sets: a label set's rows joined point-in-time to a feature set's.
//!
//! [`training_set`] streams: it reads a few sessions at a time (features, labels), joins each with
//! [`super::merge`] on rayon, and hands the rows to a sink session by session, so its memory follows
//! a session, not the window. [`get_features_for_training`] collects the same rows;
//! [`training_set_sql`] builds them with DuckDB's `ASOF JOIN` over the whole window
//! (`point_in_time.sql`), the reference the merge is tested against, and the path of requests with
//! `fundamentals`. Both share the plan: the target (with its fallback), the purge cutoff, the unusable
//! annotations, the pinned snapshots; and both end with the same leakage check and lineage record.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{Int64Type, Schema};
use chrono::{DateTime, NaiveDate, Utc};
use futures::StreamExt;

use super::lineage::{self, CodeVersion, Exclusion, LeakageCheck, Lineage};
use super::merge::{self, FeatureRows, LabelRows, Rules, Tally, Unusable};
use super::universe::{Members, UniverseFilter};
use super::{FallbackSettings, feature_set, join_features, judge_leakage, label_set_of, pin_states, symbol_filter};
use crate::calendar::NyseCalendar;
use crate::dq::annotations::Annotation;
use crate::dq::target_coverage::TargetCoverage;
use crate::error::{Error, Result};
use crate::features::{FeatureSet, LabelSet};
use crate::progress::{NoProgress, Progress};
use crate::query::{QueryEngine, SqlResult};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::manifest::{PartitionEntry, TableState};
use crate::table::{AsOf, Dataset, Lake, keep_symbols};

/// Sessions read and joined at once: enough to keep both cores busy while one session is written.
const SESSIONS_IN_FLIGHT: usize = 4;

/// What to train on.
#[derive(Debug, Clone)]
pub struct TrainingRequest {
    /// A feature set, e.g. `features_price_1m_v1`.
    pub feature_set: String,
    /// A target of a label set, e.g. `fwd_ret_resid_15m` (or `labels_fwd_ret_v1.fwd_ret_resid_15m`).
    pub label: String,
    /// Empty: every symbol.
    pub symbols: Vec<Symbol>,
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The lake state read (a lake tag, a dataset tag, a snapshot number or a time; pins of single
    /// datasets); the latest by default.
    pub as_of: AsOf,
    /// Rows whose label ends within this much of the range's end are left out too.
    pub embargo: Option<chrono::Duration>,
    pub fallback: FallbackSettings,
    /// Columns of `fundamentals` to add (e.g. `revenues`), from each symbol's latest filing dated
    /// strictly before the decision date.
    pub fundamentals: Vec<String>,
    /// Whose rows: by default the members of the default universe on each decision date (when the
    /// security master records its membership).
    pub universe: UniverseFilter,
}

/// A training set: rows `symbol, ts, decision_time, feature_ts, available_at, label_end, <features>,
/// target`, by session, then symbol and decision time ([`training_set_sql`]'s: by symbol, then
/// decision time).
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub batches: Vec<RecordBatch>,
    pub feature_columns: Vec<String>,
    /// The target actually used, after fallback.
    pub target: String,
    pub lineage: Lineage,
}

/// What a streamed training set was: its columns, the target used and its lineage (the rows went to the sink).
#[derive(Debug, Clone)]
pub struct TrainingSetInfo {
    pub feature_columns: Vec<String>,
    /// The target actually used, after fallback.
    pub target: String,
    pub lineage: Lineage,
}

/// What every path of a training set decides before reading a row.
struct Plan {
    set: FeatureSet,
    labels: LabelSet,
    requested: String,
    requested_coverage: f64,
    target: String,
    fallback: bool,
    coverage: TargetCoverage,
    end_column: String,
    embargo: chrono::Duration,
    /// Rows whose label ends after this are purged.
    cutoff: DateTime<Utc>,
    /// Unusable annotations of the datasets read.
    unusable: Vec<Annotation>,
    fundamentals: Vec<String>,
    read: Vec<String>,
    snapshots: BTreeMap<String, u64>,
    /// The states of the datasets read, as pinned (the streamed set reads their partitions).
    states: BTreeMap<String, TableState>,
    lake_seq: u64,
    /// Every dataset read pinned to its snapshot.
    as_of: AsOf,
    /// The universe's members on each decision date, when the set keeps members only.
    members: Option<Arc<Members>>,
}

impl Plan {
    async fn new(lake: &Lake, request: &TrainingRequest) -> Result<Self> {
        if request.end < request.start {
            return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
        }
        let set = feature_set(lake, &request.feature_set)?;
        let (labels, requested) = label_set_of(lake, &request.label)?;
        let embargo = request.embargo.unwrap_or_else(chrono::Duration::zero);
        if embargo < chrono::Duration::zero() {
            return Err(Error::invalid("embargo must not be negative"));
        }
        let fundamentals = fundamental_items(lake, &request.fundamentals)?;
        let mut read = vec![set.name.clone(), labels.name.clone(), set.input.clone()];
        if !fundamentals.is_empty() {
            read.push(crate::reference::fundamentals::DATASET.to_string());
        }
        let names: Vec<&str> = read.iter().map(String::as_str).collect();
        let (states, lake_seq) = pin_states(lake, &names, &request.as_of).await?;
        let snapshots: BTreeMap<String, u64> = states.iter().map(|(n, s)| (n.clone(), s.snapshot_id)).collect();
        for name in [&set.name, &labels.name] {
            if snapshots[name.as_str()] == 0 {
                return Err(Error::invalid(format!(
                    "'{name}' has no data at that snapshot (run `quantlake features`)"
                )));
            }
        }
        let as_of = AsOf::pinned(&snapshots);
        let members = Members::load(lake, &request.universe, &request.as_of).await?.map(Arc::new);

        // The target: a residual one falls back to its plain target under low coverage.
        let coverage = crate::dq::target_coverage(
            lake,
            &labels.name,
            request.end,
            request.fallback.days_back,
            request.fallback.min_target_coverage,
            &as_of,
        )
        .await?;
        let requested_coverage = coverage.target(&requested).map_or(0.0, |t| t.coverage);
        let (target, fallback) = match labels.fallback_of(&requested) {
            Some(plain) if requested_coverage < request.fallback.min_target_coverage => {
                tracing::warn!(
                    "falling back to {plain} ({requested} coverage {requested_coverage:.4} < {})",
                    request.fallback.min_target_coverage
                );
                (plain.to_string(), true)
            }
            _ => (requested.clone(), false),
        };
        let end_column =
            labels.end_column(&target).ok_or_else(|| Error::invalid(format!("target '{target}' has no end column")))?;

        // Rows whose label window ends after the range (less the embargo) are purged.
        let last = NyseCalendar
            .session(NyseCalendar.previous_session(request.end.succ_opt().unwrap_or(request.end)))
            .ok_or_else(|| Error::invalid(format!("no session on or before {}", request.end)))?;
        let cutoff = last.close - embargo;
        // Annotations are read as they are now, at any snapshot: they record what is known about the data.
        let annotations =
            crate::dq::annotations::list_annotations(lake, None, request.start_time()?, last.close).await?;
        let unusable = annotations
            .into_iter()
            .filter(|a| a.unusable && [&set.name, &labels.name, &set.input].iter().any(|d| **d == a.dataset))
            .collect();
        Ok(Self {
            set,
            labels,
            requested,
            requested_coverage,
            target,
            fallback,
            coverage,
            end_column,
            embargo,
            cutoff,
            unusable,
            fundamentals,
            read,
            snapshots,
            states,
            lake_seq,
            as_of,
            members,
        })
    }

    /// The merge's rules: the purge cutoff, the unusable annotations, the symbols asked for, the bars.
    fn rules(&self, request: &TrainingRequest) -> Rules {
        let unusable = self
            .unusable
            .iter()
            .map(|a| Unusable {
                symbols: a.symbols.clone(),
                start_us: a.start.timestamp_micros(),
                end_us: a.end.timestamp_micros(),
            })
            .collect();
        Rules {
            cutoff_us: self.cutoff.timestamp_micros(),
            unusable,
            symbols: request.symbols.iter().cloned().collect(),
            feature_bar_us: i64::from(self.set.bar_minutes) * 60_000_000,
            label_bar_us: i64::from(self.labels.bar_minutes) * 60_000_000,
        }
    }

    /// The leakage check over the merge's tally (an error when it fails), and the rows each rule left out.
    fn judge(&self, tally: &Tally) -> Result<(LeakageCheck, RowCounts)> {
        let check = LeakageCheck {
            rows: tally.entities,
            max_feature_lead_us: tally.max_feature_lead_us,
            min_label_start_gap_us: tally.min_label_start_gap_us,
            min_label_end_gap_us: tally.min_label_end_gap_us,
            max_filing_lead_days: None,
            passed: true,
        };
        let leakage = judge_leakage(&self.set, check, tally.worst.clone())?;
        let excluded_by = self
            .unusable
            .iter()
            .zip(&tally.excluded_by)
            .filter(|(_, n)| **n > 0)
            .map(|(a, n)| (a.id.clone(), *n))
            .collect();
        let counts = RowCounts {
            candidates: tally.candidates,
            no_target: tally.no_target,
            purged: tally.purged,
            annotated: tally.annotated,
            no_features: tally.no_features,
            excluded_by,
            not_members: 0,
        };
        Ok((leakage, counts))
    }

    fn feature_columns(&self) -> Vec<String> {
        let mut columns = self.set.columns();
        columns.extend(self.fundamentals.iter().cloned());
        columns
    }

    /// The lineage of a set of `rows` built by this plan, and its record in the lake.
    async fn record(
        self,
        lake: &Lake,
        request: &TrainingRequest,
        counts: RowCounts,
        leakage: LeakageCheck,
        rows: u64,
    ) -> Result<TrainingSetInfo> {
        let feature_columns = self.feature_columns();
        let lineage = Lineage {
            id: format!("ts-{}", uuid::Uuid::now_v7().simple()),
            kind: "training_set".into(),
            created_at: Utc::now(),
            feature_set: self.set.name.clone(),
            feature_set_version: self.set.version,
            feature_columns: feature_columns.clone(),
            fundamentals: self.fundamentals.clone(),
            label_set: self.labels.name.clone(),
            label_set_version: self.labels.version,
            label_definition: self.labels.target(&self.target).cloned(),
            label_requested: self.requested.clone(),
            target: self.target.clone(),
            fallback: self.fallback.then_some(lineage::Fallback {
                coverage: self.requested_coverage,
                threshold: request.fallback.min_target_coverage,
                days_back: request.fallback.days_back,
            }),
            target_coverage: self.coverage.targets.clone(),
            symbols: request.symbols.clone(),
            start: request.start,
            end: request.end,
            as_of_snapshot: request.as_of.label(),
            embargo_seconds: self.embargo.num_seconds(),
            label_cutoff: self.cutoff,
            inputs: {
                let mut inputs = self.snapshots.clone();
                if let Some(m) = &self.members {
                    inputs.extend(m.snapshots.iter().map(|(k, v)| (k.clone(), *v)));
                }
                inputs
            },
            universe: self.members.as_ref().map(|m| m.universe.clone()),
            rows_not_members: counts.not_members,
            lake_seq: self.lake_seq,
            candidate_rows: counts.candidates,
            rows_without_target: counts.no_target,
            rows_purged: counts.purged,
            rows_without_features: counts.no_features,
            rows_excluded_by_annotations: counts.annotated,
            excluded: self
                .unusable
                .iter()
                .map(|a| Exclusion::of(a, counts.excluded_by.get(&a.id).copied().unwrap_or(0)))
                .collect(),
            rows,
            code: CodeVersion::of(&[self.set.definition_sha256.as_str(), self.labels.definition_sha256.as_str()]),
            leakage_check: leakage,
        };
        lineage::record(lake, &lineage, &self.labels.name, self.coverage.end).await?;
        tracing::info!(id = lineage.id, rows, target = self.target, "training set built");
        Ok(TrainingSetInfo { feature_columns, target: self.target, lineage })
    }
}

/// A training set of `request.feature_set` and `request.label` over the sessions `start..=end`, joined
/// point-in-time, with the fallback applied and its lineage written to the lake: [`training_set`]
/// collected.
pub async fn get_features_for_training(lake: &Lake, request: &TrainingRequest) -> Result<TrainingSet> {
    let mut batches = Vec::new();
    let info = training_set(lake, request, &NoProgress, &mut |b| {
        batches.push(b);
        Ok(())
    })
    .await?;
    Ok(TrainingSet { batches, feature_columns: info.feature_columns, target: info.target, lineage: info.lineage })
}

/// [`get_features_for_training`]'s rows handed to `sink` session by session, in order, as they are
/// joined: memory follows a few sessions, whatever the window. A sink error stops the build; a
/// leakage error comes after every row went to the sink (the sink's owner discards them: the CLI
/// writes to a temporary file it renames only on success). Requests with `fundamentals` take
/// [`training_set_sql`]'s path.
pub async fn training_set(
    lake: &Lake,
    request: &TrainingRequest,
    progress: &dyn Progress,
    sink: &mut (dyn FnMut(RecordBatch) -> Result<()> + Send),
) -> Result<TrainingSetInfo> {
    let plan = Plan::new(lake, request).await?;
    if !plan.fundamentals.is_empty() {
        let set = sql_rows(lake, request, plan).await?;
        for b in set.batches {
            sink(b)?;
        }
        return Ok(TrainingSetInfo { feature_columns: set.feature_columns, target: set.target, lineage: set.lineage });
    }
    let features = lake.dataset(&plan.set.name)?;
    let labels = lake.dataset(&plan.labels.name)?;
    let read_start = NyseCalendar.add_sessions(request.start, -1);
    let feature_parts = by_session(&features, &plan.states[features.name()].partitions, read_start, request.end)?;
    let label_parts = by_session(&labels, &plan.states[labels.name()].partitions, request.start, request.end)?;
    let mut sessions: Vec<NaiveDate> = feature_parts.keys().chain(label_parts.keys()).copied().collect();
    sessions.sort_unstable();
    sessions.dedup();
    progress.set_length(sessions.len() as u64);

    let mut feature_columns = vec!["symbol".to_string(), "ts".into(), "available_at".into()];
    feature_columns.extend(plan.set.columns());
    let label_columns =
        ["symbol".to_string(), "ts".into(), "decision_time".into(), plan.target.clone(), plan.end_column.clone()];
    let feature_schema = features.projected_schema(&feature_columns.iter().map(String::as_str).collect::<Vec<_>>())?;
    let schema = merge::output_schema(&feature_schema);
    let rules = std::sync::Arc::new(plan.rules(request));

    let reader = SessionReader {
        features: features.clone(),
        labels: labels.clone(),
        feature_columns: feature_columns.into(),
        label_columns: label_columns.to_vec().into(),
        feature_schema: feature_schema.clone(),
        rules: rules.clone(),
    };
    // Each session is read and selected as its own task, so the next ones progress while this loop
    // joins and writes one.
    let prepared = futures::stream::iter(sessions).map(|date| {
        let task = reader.clone().session(feature_parts.get(&date).cloned(), label_parts.get(&date).cloned());
        async move { tokio::spawn(task).await? }
    });
    let mut prepared = std::pin::pin!(prepared.buffered(SESSIONS_IN_FLIGHT));
    let mut carry = FeatureRows::empty(feature_schema.clone());
    let mut tally = Tally { excluded_by: vec![0; plan.unusable.len()], ..Tally::default() };
    let mut not_members = 0;
    while let Some(next) = prepared.next().await {
        let (features, selected) = next?;
        tokio::task::block_in_place(|| -> Result<()> {
            if let Some(selected) = selected {
                let (batch, session) = merge::join(selected, &features, &carry, &rules, &schema)?;
                tally.add(&session);
                let batch = match &plan.members {
                    Some(members) => {
                        let (kept, left_out) = members.keep(batch)?;
                        tally.rows -= left_out;
                        not_members += left_out;
                        kept
                    }
                    None => batch,
                };
                if batch.num_rows() > 0 {
                    sink(batch)?;
                }
            }
            carry = features.carry_after(&carry)?;
            Ok(())
        })?;
        progress.inc(1);
    }

    let (leakage, mut counts) = plan.judge(&tally)?;
    counts.not_members = not_members;
    plan.record(lake, request, counts, leakage, tally.rows).await
}

/// What reading one session of a training set needs, owned: each session is a task of its own.
#[derive(Clone)]
struct SessionReader {
    features: Dataset,
    labels: Dataset,
    feature_columns: std::sync::Arc<[String]>,
    label_columns: std::sync::Arc<[String]>,
    feature_schema: std::sync::Arc<Schema>,
    rules: std::sync::Arc<Rules>,
}

impl SessionReader {
    /// The session's feature rows (for the join and the carry) and its entity rows, each with its
    /// feature row of the same session when it has one.
    async fn session(
        self,
        features: Option<PartitionEntry>,
        labels: Option<PartitionEntry>,
    ) -> Result<(FeatureRows, Option<merge::Selected>)> {
        let f = match &features {
            Some(e) => Some(read(&self.features, e, &self.feature_columns).await?),
            None => None,
        };
        let l = match &labels {
            Some(e) => Some(read(&self.labels, e, &self.label_columns).await?),
            None => None,
        };
        tokio::task::spawn_blocking(move || -> Result<(FeatureRows, Option<merge::Selected>)> {
            let features = match f {
                Some(b) if self.rules.symbols.is_empty() => FeatureRows::new(b)?,
                Some(b) => FeatureRows::new(keep_symbols(&b, &self.rules.symbols)?)?,
                None => FeatureRows::empty(self.feature_schema.clone()),
            };
            let selected = match l {
                Some(b) => Some(merge::select(LabelRows::new(b)?, &features, &self.rules)?),
                None => None,
            };
            Ok((features, selected))
        })
        .await?
    }
}

/// A dataset's date partitions between two sessions (inclusive), by date.
fn by_session(
    ds: &Dataset,
    partitions: &BTreeMap<String, PartitionEntry>,
    from: NaiveDate,
    to: NaiveDate,
) -> Result<BTreeMap<NaiveDate, PartitionEntry>> {
    let mut out = BTreeMap::new();
    for (name, entry) in partitions {
        match PartitionKey::parse(name)? {
            PartitionKey::Date(d) if (from..=to).contains(&d) => {
                out.insert(d, entry.clone());
            }
            PartitionKey::Date(_) => {}
            other => {
                return Err(Error::invalid(format!(
                    "{}: partition {other} is not a session's; a point-in-time set needs date partitions",
                    ds.name()
                )));
            }
        }
    }
    Ok(out)
}

/// `columns` of one partition, as one batch (as the engine decodes a partition: no copy then).
async fn read(ds: &Dataset, entry: &PartitionEntry, columns: &[String]) -> Result<RecordBatch> {
    let names: Vec<&str> = columns.iter().map(String::as_str).collect();
    let mut batches = ds.read_partition_columns(entry, &names).await?;
    if batches.len() == 1 {
        return Ok(batches.remove(0));
    }
    Ok(arrow::compute::concat_batches(&ds.projected_schema(&names)?, &batches)?)
}

/// The same training set through DuckDB: the whole window's `ASOF JOIN` (`point_in_time.sql`), ordered
/// by symbol and decision time. Its memory grows with the window; it is the reference
/// [`training_set`]'s merge is tested against, and the path of requests with `fundamentals`.
pub async fn training_set_sql(lake: &Lake, request: &TrainingRequest) -> Result<TrainingSet> {
    let plan = Plan::new(lake, request).await?;
    sql_rows(lake, request, plan).await
}

async fn sql_rows(lake: &Lake, request: &TrainingRequest, plan: Plan) -> Result<TrainingSet> {
    let relevant: Vec<&Annotation> = plan.unusable.iter().collect();
    let setup = candidates_sql(request, &plan.labels.name, &plan.target, &plan.end_column, plan.cutoff, &relevant)?;
    let engine = QueryEngine::open_for_sql(lake, &plan.as_of, &plan.read.join(" ")).await?;
    let read_start = NyseCalendar.add_sessions(request.start, -1);
    let label_bar_us = i64::from(plan.labels.bar_minutes) * 60_000_000;
    let mut leakage = tokio::task::block_in_place(|| {
        join_features(&engine, &plan.set, &setup, read_start, request.end, Some(label_bar_us))
    })?;
    if !plan.fundamentals.is_empty() {
        leakage.max_filing_lead_days =
            tokio::task::block_in_place(|| join_fundamentals(&engine, &plan.set, &plan.fundamentals))?;
    }
    let mut counts = tokio::task::block_in_place(|| RowCounts::of(&engine))?;
    let features: String = plan.feature_columns().iter().map(|f| format!(", {f}")).collect();
    let filing = if plan.fundamentals.is_empty() { "" } else { ", fundamentals_filing_date" };
    let batches = tokio::task::block_in_place(|| {
        engine.query(&format!("SELECT symbol, ts, decision_time, feature_ts, available_at, label_end{filing}{features}, target FROM joined WHERE feature_ts IS NOT NULL ORDER BY symbol, decision_time"))
    })?;
    let batches = match &plan.members {
        Some(members) => batches
            .into_iter()
            .map(|b| {
                let (kept, left_out) = members.keep(b)?;
                counts.not_members += left_out;
                Ok(kept)
            })
            .collect::<Result<Vec<_>>>()?,
        None => batches,
    };
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();
    let info = plan.record(lake, request, counts, leakage, rows).await?;
    Ok(TrainingSet { batches, feature_columns: info.feature_columns, target: info.target, lineage: info.lineage })
}

/// The statements that build `candidates` (every labelled row of the range), `marked` (each with
/// whether it is purged or inside an unusable annotation) and `entities` (the rows kept).
fn candidates_sql(
    request: &TrainingRequest,
    labels: &str,
    target: &str,
    end_column: &str,
    cutoff: DateTime<Utc>,
    unusable: &[&Annotation],
) -> Result<Vec<String>> {
    let micros = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string();
    let mut unusable_rows = Vec::new();
    for a in unusable {
        let (id, start, end) = (crate::query::sql_string(&a.id), micros(a.start), micros(a.end));
        match &a.symbols {
            None => unusable_rows.push(format!("({id}, NULL, TIMESTAMPTZ '{start}', TIMESTAMPTZ '{end}')")),
            Some(symbols) => {
                for s in symbols {
                    let s = crate::query::sql_string(s);
                    unusable_rows.push(format!("({id}, {s}, TIMESTAMPTZ '{start}', TIMESTAMPTZ '{end}')"));
                }
            }
        }
    }
    let filter = symbol_filter(&request.symbols);
    let mut setup = vec![
        "CREATE TEMP TABLE unusable (id VARCHAR, symbol VARCHAR, start_ts TIMESTAMPTZ, end_ts TIMESTAMPTZ);".to_string(),
        format!(
            "CREATE TEMP TABLE candidates AS SELECT symbol, ts, CAST(date AS DATE) AS decision_date, decision_time, {target} AS target, {end_column} AS label_end \
             FROM {labels} WHERE date BETWEEN DATE '{start}' AND DATE '{end}'{filter};",
            start = request.start,
            end = request.end
        ),
        format!(
            "CREATE TEMP TABLE marked AS SELECT c.*, EXISTS (SELECT 1 FROM unusable u WHERE (u.symbol IS NULL OR u.symbol = c.symbol) \
             AND u.start_ts < coalesce(c.label_end, c.decision_time) AND u.end_ts >= c.ts) AS unusable, \
             c.label_end > TIMESTAMPTZ '{}' AS purged FROM candidates c;",
            micros(cutoff)
        ),
        "CREATE TEMP TABLE entities AS SELECT symbol, ts, decision_date, decision_time, target, label_end FROM marked WHERE target IS NOT NULL AND NOT purged AND NOT unusable;".to_string(),
    ];
    if !unusable_rows.is_empty() {
        setup.insert(1, format!("INSERT INTO unusable VALUES {};", unusable_rows.join(", ")));
    }
    Ok(setup)
}

/// How many candidate rows each rule left out, and the rows each unusable annotation excluded.
struct RowCounts {
    candidates: u64,
    no_target: u64,
    purged: u64,
    annotated: u64,
    no_features: u64,
    excluded_by: BTreeMap<String, u64>,
    /// Rows of securities that were no members of the universe on their decision date.
    not_members: u64,
}

impl RowCounts {
    fn of(engine: &QueryEngine) -> Result<Self> {
        let counts = engine.query(
            "SELECT count(*), count(*) FILTER (WHERE target IS NULL), count(*) FILTER (WHERE target IS NOT NULL AND purged), \
             count(*) FILTER (WHERE target IS NOT NULL AND NOT purged AND unusable), (SELECT count(*) FROM joined WHERE feature_ts IS NULL) FROM marked",
        )?;
        let c = counts.first().ok_or_else(|| Error::invalid("training set: no counts"))?;
        let count = |i: usize| c.column(i).as_primitive::<Int64Type>().value(0) as u64;
        let per_annotation = engine.query("SELECT u.id, count(DISTINCT (m.symbol, m.ts)) FROM marked m JOIN unusable u ON (u.symbol IS NULL OR u.symbol = m.symbol) AND u.start_ts < coalesce(m.label_end, m.decision_time) AND u.end_ts >= m.ts WHERE m.target IS NOT NULL AND NOT m.purged GROUP BY u.id")?;
        let mut excluded_by = BTreeMap::new();
        for b in &per_annotation {
            for i in 0..b.num_rows() {
                excluded_by.insert(
                    b.column(0).as_string::<i32>().value(i).to_string(),
                    b.column(1).as_primitive::<Int64Type>().value(i) as u64,
                );
            }
        }
        Ok(Self {
            candidates: count(0),
            no_target: count(1),
            purged: count(2),
            annotated: count(3),
            no_features: count(4),
            excluded_by,
            not_members: 0,
        })
    }
}

/// The requested `fundamentals` columns, checked against its contract (float64 items only).
fn fundamental_items(lake: &Lake, items: &[String]) -> Result<Vec<String>> {
    if items.is_empty() {
        return Ok(Vec::new());
    }
    let ds = lake.dataset(crate::reference::fundamentals::DATASET)?;
    let known: Vec<&str> =
        ds.contract().columns.iter().filter(|c| c.data_type == "float64").map(|c| c.name.as_str()).collect();
    for item in items {
        if !known.contains(&item.as_str()) {
            return Err(Error::invalid(format!(
                "fundamentals has no item column '{item}' (known: {})",
                known.join(", ")
            )));
        }
    }
    Ok(items.to_vec())
}

/// Adds to `joined` each row's symbol's latest filing dated strictly before its decision date (on a
/// day with several filings, the one of the latest period), and checks that none is later: returns the
/// largest filing date minus decision date, in days (negative when the check holds).
fn join_fundamentals(engine: &QueryEngine, set: &FeatureSet, items: &[String]) -> Result<Option<i64>> {
    let columns: String = items.iter().map(|i| format!(", {i}")).collect();
    engine.connection().execute_batch(&format!(
        "CREATE TEMP TABLE joined_fundamentals AS SELECT j.*, fu.filing_date AS fundamentals_filing_date{picked} FROM joined j \
         ASOF LEFT JOIN (SELECT symbol, filing_date{columns} FROM {table} \
           QUALIFY row_number() OVER (PARTITION BY symbol, filing_date ORDER BY period_end DESC, period_start ASC NULLS LAST) = 1) fu \
         ON fu.symbol = j.symbol AND j.decision_date > fu.filing_date; \
         DROP TABLE joined; ALTER TABLE joined_fundamentals RENAME TO joined;",
        picked = items.iter().map(|i| format!(", fu.{i}")).collect::<String>(),
        table = crate::reference::fundamentals::DATASET,
    )).sql()?;
    let lead = engine.query("SELECT max(fundamentals_filing_date - decision_date) FROM joined")?;
    let lead = lead.first().and_then(|b| {
        let c = b.column(0);
        (!c.is_null(0))
            .then(|| arrow::compute::cast(c, &arrow::datatypes::DataType::Int64).ok())
            .flatten()
            .map(|c| c.as_primitive::<Int64Type>().value(0))
    });
    if let Some(days) = lead.filter(|d| *d >= 0) {
        return Err(Error::Leakage {
            set: set.name.clone(),
            detail: format!(
                "a filing dated on or after a row's decision date ({days} day(s) after) was joined to it: filings must be dated before it"
            ),
        });
    }
    Ok(lead)
}

impl TrainingRequest {
    fn start_time(&self) -> Result<DateTime<Utc>> {
        NyseCalendar.day_start(self.start).ok_or_else(|| Error::invalid(format!("date {} out of range", self.start)))
    }
}
