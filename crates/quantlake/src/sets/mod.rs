//! Point-in-time sets: what a model trains on and what it scores.
//!
//! [`get_features_for_training`], [`get_features_for_inference`] and [`get_features_for_sessions`]
//! share one code path: entity rows `(symbol, decision_time)` joined to a feature set's rows as of the
//! decision time (`point_in_time.sql`: the latest row whose bar is complete by then), followed by the
//! **leakage check**, which fails loudly when a joined row's features were not all known at the
//! decision time (`available_at` > decision time) or a label's window opens before it.
//!
//! A training set's entity rows are a label set's rows: the decision for the bar stamped `ts` is taken
//! at `ts` + one bar, and its target covers the bars after. Rows are left out, and counted, when their
//! target is unknown, their label window ends after the range (less the embargo: **purging**), or an
//! annotation marks their cells unusable. When a residual target's coverage over the last `DAYS_BACK`
//! sessions is below `MIN_TARGET_COVERAGE`, the plain forward return of the same horizon is used
//! instead, logged (`falling back to ...`) and recorded in `target_fallbacks`. Every training set
//! writes a [`Lineage`] record to the `lineage` dataset.
//!
//! ```no_run
//! # async fn demo(lake: quantlake::table::Lake) -> quantlake::Result<()> {
//! use chrono::NaiveDate;
//! use quantlake::sets::{FallbackSettings, TrainingRequest, get_features_for_training};
//! use quantlake::table::AsOf;
//!
//! let request = TrainingRequest {
//!     feature_set: "features_price_1m_v1".into(),
//!     label: "fwd_ret_resid_15m".into(),
//!     symbols: Vec::new(), // every symbol
//!     start: NaiveDate::from_ymd_opt(2024, 3, 1).unwrap(),
//!     end: NaiveDate::from_ymd_opt(2024, 4, 30).unwrap(),
//!     as_of: "model-2024-04".parse::<AsOf>()?, // a lake-wide tag: reproducible later
//!     embargo: Some(chrono::Duration::days(1)),
//!     fallback: FallbackSettings { min_target_coverage: 0.6, days_back: 20 },
//!     fundamentals: Vec::new(),
//! };
//! let set = get_features_for_training(&lake, &request).await?;
//! println!("{} rows, target {}, lineage {}", set.lineage.rows, set.target, set.lineage.id);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub mod lineage;

pub use lineage::{CodeVersion, Exclusion, Fallback, LeakageCheck, Lineage};

use crate::calendar::NyseCalendar;
use crate::curate::fill_template;
use crate::dq::HealthSettings;
use crate::error::{Error, Result};
use crate::features::{FeatureSet, LabelSet, SetDefinition};
use crate::query::{QueryEngine, SqlResult};
use crate::symbol::Symbol;
use crate::table::AsOf;
use crate::table::Lake;

const POINT_IN_TIME_SQL: &str = include_str!("point_in_time.sql");

/// Sessions an inference looks back for a symbol's latest feature row.
pub const INFERENCE_LOOKBACK_SESSIONS: i64 = 5;

/// The target fallback's threshold and window (`MIN_TARGET_COVERAGE`, `DAYS_BACK`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct FallbackSettings {
    pub min_target_coverage: f64,
    pub days_back: u32,
}

impl Default for FallbackSettings {
    fn default() -> Self {
        Self::from(&HealthSettings::default())
    }
}

impl From<&HealthSettings> for FallbackSettings {
    fn from(h: &HealthSettings) -> Self {
        Self { min_target_coverage: h.min_target_coverage, days_back: h.target_days_back }
    }
}

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
}

/// A training set: rows `symbol, ts, decision_time, feature_ts, available_at, label_end, <features>,
/// target`, ordered by symbol and decision time.
#[derive(Debug, Clone)]
pub struct TrainingSet {
    pub batches: Vec<RecordBatch>,
    pub feature_columns: Vec<String>,
    /// The target actually used, after fallback.
    pub target: String,
    pub lineage: Lineage,
}

/// The feature set `name` (a dataset whose contract defines features).
pub fn feature_set(lake: &Lake, name: &str) -> Result<FeatureSet> {
    match SetDefinition::from_contract(lake.dataset(name)?.contract())? {
        SetDefinition::Features(f) => Ok(f),
        SetDefinition::Labels(_) => Err(Error::invalid(format!("'{name}' is a label set, not a feature set"))),
    }
}

/// The label set holding target `label` (`set.target` or a target name unique among label sets).
pub fn label_set_of(lake: &Lake, label: &str) -> Result<(LabelSet, String)> {
    let (set_name, target) = match label.split_once('.') {
        Some((s, t)) => (Some(s), t),
        None => (None, label),
    };
    let mut found = Vec::new();
    for ds in lake.all_datasets() {
        if set_name.is_some_and(|s| s != ds.name()) {
            continue;
        }
        if let Ok(SetDefinition::Labels(l)) = SetDefinition::from_contract(ds.contract())
            && l.target(target).is_some()
        {
            found.push(l);
        }
    }
    match found.len() {
        1 => Ok((found.remove(0), target.to_string())),
        0 => Err(Error::invalid(format!("no label set has a target '{label}'"))),
        _ => Err(Error::invalid(format!(
            "target '{target}' is in several label sets ({}): name one, e.g. {}.{target}",
            found.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "),
            found[0].name
        ))),
    }
}

/// Each dataset's snapshot `as_of` names, all through one lake view.
async fn pin(lake: &Lake, datasets: &[&str], as_of: &AsOf) -> Result<(BTreeMap<String, u64>, u64)> {
    as_of.check_datasets(lake)?;
    let view = lake.view().await?;
    let mut out = BTreeMap::new();
    for name in datasets {
        let ds = lake.dataset(name)?;
        let state = ds.snapshot_in(as_of.spec_for(ds.name()), &view).await?;
        out.insert(ds.name().to_string(), state.snapshot_id);
    }
    Ok((out, view.pinned().unwrap_or(0)))
}

fn symbol_filter(symbols: &[Symbol]) -> String {
    if symbols.is_empty() { String::new() } else { format!(" AND symbol IN ({})", crate::query::sql_strings(symbols)) }
}

/// Runs the point-in-time join of `entities` (a temp table the caller's `setup` statements create)
/// with `set`'s rows from `read_start..=read_end` into the temp table `joined`, and checks it.
/// `label_bar_us`: the entity rows carry a label (`ts`, `label_end`) of bars this long, whose window
/// the check covers too.
fn join_features(
    engine: &QueryEngine,
    set: &FeatureSet,
    setup: &[String],
    read_start: NaiveDate,
    read_end: NaiveDate,
    label_bar_us: Option<i64>,
) -> Result<LeakageCheck> {
    let conn = engine.connection();
    for statement in setup {
        conn.execute_batch(statement).sql()?;
    }
    let columns: String = set.features.iter().map(|f| format!(", f.{}", f.name)).collect();
    let sql = fill_template(
        POINT_IN_TIME_SQL,
        &[
            ("features", set.name.clone()),
            ("bar_minutes", set.bar_minutes.to_string()),
            ("read_start", read_start.to_string()),
            ("read_end", read_end.to_string()),
            ("feature_columns", columns),
        ],
    )?;
    conn.execute_batch(&format!("CREATE TEMP TABLE joined AS {sql};")).sql()?;
    leakage_check(engine, set, label_bar_us)
}

/// The leakage check over `joined`: every feature row known by its decision time; every label window
/// (when the rows have one) opening at or after it and ending after it.
fn leakage_check(engine: &QueryEngine, set: &FeatureSet, label_bar_us: Option<i64>) -> Result<LeakageCheck> {
    // A label's first bar after its decision bar starts one label bar after the decision bar's start.
    let labels = if let Some(bar_us) = label_bar_us {
        format!(
            "min(epoch_us(ts::TIMESTAMP) + {bar_us} - epoch_us(decision_time::TIMESTAMP)), min(epoch_us(label_end::TIMESTAMP) - epoch_us(decision_time::TIMESTAMP))"
        )
    } else {
        "NULL::BIGINT, NULL::BIGINT".into()
    };
    let rows = engine.query(&format!(
        "SELECT count(*), max(epoch_us(available_at::TIMESTAMP) - epoch_us(decision_time::TIMESTAMP)), {labels}, \
         arg_max(symbol || ' ' || strftime(decision_time::TIMESTAMP, '%Y-%m-%dT%H:%M:%SZ'), epoch_us(available_at::TIMESTAMP) - epoch_us(decision_time::TIMESTAMP)) FROM joined"
    ))?;
    let b = rows.first().ok_or_else(|| Error::invalid("leakage check: no result"))?;
    let int = |i: usize| -> Option<i64> {
        let c = b.column(i).as_primitive_opt::<Int64Type>()?;
        (!c.is_null(0)).then(|| c.value(0))
    };
    let worst = b.column(4).as_string_opt::<i32>().and_then(|c| (!c.is_null(0)).then(|| c.value(0).to_string()));
    let check = LeakageCheck {
        rows: int(0).unwrap_or(0) as u64,
        max_feature_lead_us: int(1),
        min_label_start_gap_us: int(2),
        min_label_end_gap_us: int(3),
        max_filing_lead_days: None,
        passed: true,
    };
    let mut problems = Vec::new();
    if let Some(lead) = check.max_feature_lead_us.filter(|l| *l > 0) {
        problems.push(format!(
            "a feature row is available {} s after its decision time ({}): the set reads bars after its row's (lookahead {} bars)",
            lead / 1_000_000,
            worst.unwrap_or_default(),
            set.lookahead()
        ));
    }
    if let Some(gap) = check.min_label_start_gap_us.filter(|g| *g < 0) {
        problems.push(format!("a label window opens {} s before its decision time", -gap / 1_000_000));
    }
    if let Some(gap) = check.min_label_end_gap_us.filter(|g| *g <= 0) {
        problems.push(format!("a label ends {} s before its decision time", -gap / 1_000_000));
    }
    if !problems.is_empty() {
        return Err(Error::Leakage { set: set.name.clone(), detail: problems.join("; ") });
    }
    Ok(check)
}

/// A training set of `request.feature_set` and `request.label` over the sessions `start..=end`, joined
/// point-in-time, with the fallback applied and its lineage written to the lake.
pub async fn get_features_for_training(lake: &Lake, request: &TrainingRequest) -> Result<TrainingSet> {
    if request.end < request.start {
        return Err(Error::invalid(format!("end {} is before start {}", request.end, request.start)));
    }
    let set = feature_set(lake, &request.feature_set)?;
    let (labels, requested) = label_set_of(lake, &request.label)?;
    let embargo = request.embargo.unwrap_or_else(chrono::Duration::zero);
    if embargo < chrono::Duration::zero() {
        return Err(Error::invalid("embargo must not be negative"));
    }
    let items = fundamental_items(lake, &request.fundamentals)?;
    let fundamentals = crate::reference::fundamentals::DATASET;
    let mut read = vec![set.name.as_str(), labels.name.as_str(), set.input.as_str()];
    if !items.is_empty() {
        read.push(fundamentals);
    }
    let (snapshots, lake_seq) = pin(lake, &read, &request.as_of).await?;
    for name in [&set.name, &labels.name] {
        if snapshots[name.as_str()] == 0 {
            return Err(Error::invalid(format!("'{name}' has no data at that snapshot (run `quantlake features`)")));
        }
    }
    let as_of = AsOf::pinned(&snapshots);

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
    let annotations = crate::dq::annotations::list_annotations(lake, None, request.start_time()?, last.close).await?;
    let relevant: Vec<&crate::dq::annotations::Annotation> = annotations
        .iter()
        .filter(|a| a.unusable && [&set.name, &labels.name, &set.input].iter().any(|d| **d == a.dataset))
        .collect();

    let setup = candidates_sql(request, &labels.name, &target, &end_column, cutoff, &relevant)?;
    let engine = QueryEngine::open_for_sql(lake, &as_of, &read.join(" ")).await?;
    let read_start = NyseCalendar.add_sessions(request.start, -1);
    let mut leakage = tokio::task::block_in_place(|| {
        join_features(&engine, &set, &setup, read_start, request.end, Some(i64::from(labels.bar_minutes) * 60_000_000))
    })?;
    if !items.is_empty() {
        leakage.max_filing_lead_days = tokio::task::block_in_place(|| join_fundamentals(&engine, &set, &items))?;
    }

    let counts = tokio::task::block_in_place(|| RowCounts::of(&engine))?;
    let mut feature_columns = set.columns();
    feature_columns.extend(items.iter().cloned());
    let features: String = feature_columns.iter().map(|f| format!(", {f}")).collect();
    let filing = if items.is_empty() { "" } else { ", fundamentals_filing_date" };
    let batches = tokio::task::block_in_place(|| {
        engine.query(&format!("SELECT symbol, ts, decision_time, feature_ts, available_at, label_end{filing}{features}, target FROM joined WHERE feature_ts IS NOT NULL ORDER BY symbol, decision_time"))
    })?;
    let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();

    let lineage = Lineage {
        id: format!("ts-{}", uuid::Uuid::now_v7().simple()),
        kind: "training_set".into(),
        created_at: Utc::now(),
        feature_set: set.name.clone(),
        feature_set_version: set.version,
        feature_columns: feature_columns.clone(),
        fundamentals: items.clone(),
        label_set: labels.name.clone(),
        label_set_version: labels.version,
        label_definition: labels.target(&target).cloned(),
        label_requested: requested.clone(),
        target: target.clone(),
        fallback: fallback.then_some(lineage::Fallback {
            coverage: requested_coverage,
            threshold: request.fallback.min_target_coverage,
            days_back: request.fallback.days_back,
        }),
        target_coverage: coverage.targets.clone(),
        symbols: request.symbols.clone(),
        start: request.start,
        end: request.end,
        as_of_snapshot: request.as_of.label(),
        embargo_seconds: embargo.num_seconds(),
        label_cutoff: cutoff,
        inputs: snapshots.clone(),
        lake_seq,
        candidate_rows: counts.candidates,
        rows_without_target: counts.no_target,
        rows_purged: counts.purged,
        rows_without_features: counts.no_features,
        rows_excluded_by_annotations: counts.annotated,
        excluded: relevant
            .iter()
            .map(|a| Exclusion::of(a, counts.excluded_by.get(&a.id).copied().unwrap_or(0)))
            .collect(),
        rows,
        code: CodeVersion::of(&[set.definition_sha256.as_str(), labels.definition_sha256.as_str()]),
        leakage_check: leakage,
    };
    lineage::record(lake, &lineage, &labels.name, coverage.end).await?;
    tracing::info!(id = lineage.id, rows, target, "training set built");
    Ok(TrainingSet { batches, feature_columns, target, lineage })
}

/// The statements that build `candidates` (every labelled row of the range), `marked` (each with
/// whether it is purged or inside an unusable annotation) and `entities` (the rows kept).
fn candidates_sql(
    request: &TrainingRequest,
    labels: &str,
    target: &str,
    end_column: &str,
    cutoff: DateTime<Utc>,
    unusable: &[&crate::dq::annotations::Annotation],
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

/// Per symbol, the latest feature row available at the decision time `at` (`symbol, decision_time,
/// feature_ts, available_at, <features>`; nulls for a symbol without a row in the last
/// [`INFERENCE_LOOKBACK_SESSIONS`] sessions), read from the lake state `as_of` (live inference pinned
/// to the tag a model was trained on reads what that model saw). Empty `symbols`: every symbol with
/// rows in that window.
pub async fn get_features_for_inference(
    lake: &Lake,
    feature_set: &str,
    symbols: &[Symbol],
    at: DateTime<Utc>,
    as_of: &AsOf,
) -> Result<Vec<RecordBatch>> {
    let set = self::feature_set(lake, feature_set)?;
    let (snapshots, _) = pin(lake, &[&set.name], as_of).await?;
    let day = NyseCalendar.trading_date(at);
    let read_start = NyseCalendar.add_sessions(
        if NyseCalendar.is_session(day) { day } else { NyseCalendar.previous_session(day) },
        -INFERENCE_LOOKBACK_SESSIONS,
    );
    let at = at.format("%Y-%m-%dT%H:%M:%S%.6fZ");
    let entities = if symbols.is_empty() {
        format!(
            "CREATE TEMP TABLE entities AS SELECT DISTINCT symbol, TIMESTAMPTZ '{at}' AS decision_time FROM {} WHERE date BETWEEN DATE '{read_start}' AND DATE '{day}';",
            set.name
        )
    } else {
        format!(
            "CREATE TEMP TABLE entities AS SELECT unnest([{}]) AS symbol, TIMESTAMPTZ '{at}' AS decision_time;",
            crate::query::sql_strings(symbols)
        )
    };
    let engine = QueryEngine::open_for_sql(lake, &AsOf::pinned(&snapshots), &set.name).await?;
    tokio::task::block_in_place(|| {
        join_features(&engine, &set, &[entities], read_start, day, None)?;
        let features: String = set.features.iter().map(|f| format!(", {}", f.name)).collect();
        engine.query(&format!(
            "SELECT symbol, decision_time, feature_ts, available_at{features} FROM joined ORDER BY symbol"
        ))
    })
}

/// Every decision time of the sessions `start..=end` (each feature row's bar end) with its features:
/// `symbol, ts, decision_time, feature_ts, available_at, <features>`; what batch scoring reads.
pub async fn get_features_for_sessions(
    lake: &Lake,
    feature_set: &str,
    symbols: &[Symbol],
    start: NaiveDate,
    end: NaiveDate,
) -> Result<Vec<RecordBatch>> {
    if end < start {
        return Err(Error::invalid(format!("end {end} is before start {start}")));
    }
    let set = self::feature_set(lake, feature_set)?;
    let (snapshots, _) = pin(lake, &[&set.name], &AsOf::latest()).await?;
    let entities = format!(
        "CREATE TEMP TABLE entities AS SELECT symbol, ts, (ts::TIMESTAMP + INTERVAL {} MINUTE)::TIMESTAMPTZ AS decision_time FROM {} WHERE date BETWEEN DATE '{start}' AND DATE '{end}'{};",
        set.bar_minutes,
        set.name,
        symbol_filter(symbols)
    );
    let engine = QueryEngine::open_for_sql(lake, &AsOf::pinned(&snapshots), &set.name).await?;
    tokio::task::block_in_place(|| {
        join_features(&engine, &set, &[entities], start, end, None)?;
        let features: String = set.features.iter().map(|f| format!(", {}", f.name)).collect();
        engine.query(&format!("SELECT symbol, ts, decision_time, feature_ts, available_at{features} FROM joined ORDER BY symbol, decision_time"))
    })
}
