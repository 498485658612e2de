//! Point-in-time sets: what a model trains on and what it scores.
//!
//! [`get_features_for_training`], [`get_features_for_inference`] and [`get_features_for_sessions`]
//! join entity rows `(symbol, decision_time)` to a feature set's rows as of the decision time (the
//! latest row whose bar is complete by then), followed by the **leakage check**, which fails loudly
//! when a joined row's features were not all known at the decision time (`available_at` > decision
//! time) or a label's window opens before it. Training sets stream: a merge per session
//! ([`training`]); inference and scoring read few rows and join them in DuckDB (`point_in_time.sql`,
//! the same join over a window, kept as the merge's reference).
//!
//! Sets are **survivorship-free**: when the security master records the universe's membership, a
//! training set holds the rows of its members on each decision date, and an inference set of every
//! symbol the members on its date ([`UniverseFilter`]); the lineage names the universe and the
//! master's snapshots.
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
//!     universe: Default::default(), // the default universe's members on each decision date
//! };
//! let set = get_features_for_training(&lake, &request).await?;
//! println!("{} rows, target {}, lineage {}", set.lineage.rows, set.target, set.lineage.id);
//! # Ok(()) }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::Int64Type;
use chrono::{DateTime, NaiveDate, Utc};
use serde::Serialize;

pub mod lineage;
mod merge;
pub mod training;
mod universe;

pub use lineage::{CodeVersion, Exclusion, Fallback, LeakageCheck, Lineage};
pub use training::{
    TrainingRequest, TrainingSet, TrainingSetInfo, get_features_for_training, training_set, training_set_sql,
};
pub use universe::UniverseFilter;

use crate::calendar::NyseCalendar;
use crate::curate::fill_template;
use crate::dq::HealthSettings;
use crate::error::{Error, Result};
use crate::features::{FeatureSet, LabelSet, SetDefinition};
use crate::query::{QueryEngine, SqlResult};
use crate::reference::securities::SECURITY_ID;
use crate::symbol::Symbol;
use crate::table::AsOf;
use crate::table::Lake;
use crate::table::manifest::TableState;

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
    // Every target looked at, for the error that names the valid ones.
    let mut targets: Vec<String> = Vec::new();
    for ds in lake.all_datasets() {
        if set_name.is_some_and(|s| s != ds.name()) {
            continue;
        }
        if let Ok(SetDefinition::Labels(l)) = SetDefinition::from_contract(ds.contract()) {
            targets.extend(l.targets.iter().map(|t| t.name.clone()));
            if l.target(target).is_some() {
                found.push(l);
            }
        }
    }
    match found.len() {
        1 => Ok((found.remove(0), target.to_string())),
        0 => {
            targets.sort();
            targets.dedup();
            Err(Error::invalid(format!(
                "no label set has a target '{label}'{}; the targets are: {}",
                crate::error::did_you_mean(target, &targets),
                targets.join(", ")
            )))
        }
        _ => Err(Error::invalid(format!(
            "target '{target}' is in several label sets ({}): name one, e.g. {}.{target}",
            found.iter().map(|l| l.name.as_str()).collect::<Vec<_>>().join(", "),
            found[0].name
        ))),
    }
}

/// Each dataset's snapshot `as_of` names, all through one lake view.
pub(crate) async fn pin(lake: &Lake, datasets: &[&str], as_of: &AsOf) -> Result<(BTreeMap<String, u64>, u64)> {
    let (states, lake_seq) = pin_states(lake, datasets, as_of).await?;
    Ok((states.into_iter().map(|(name, state)| (name, state.snapshot_id)).collect(), lake_seq))
}

/// [`pin`]'s states themselves (their partitions), for a reader that goes on to read them.
pub(crate) async fn pin_states(
    lake: &Lake,
    datasets: &[&str],
    as_of: &AsOf,
) -> Result<(BTreeMap<String, TableState>, u64)> {
    as_of.check_datasets(lake)?;
    let view = lake.view().await?;
    let mut out = BTreeMap::new();
    for name in datasets {
        let ds = lake.dataset(name)?;
        let state = ds.snapshot_in(as_of.spec_for(ds.name()), &view).await?;
        out.insert(ds.name().to_string(), state);
    }
    Ok((out, view.pinned().unwrap_or(0)))
}

pub(crate) fn symbol_filter(symbols: &[Symbol]) -> String {
    if symbols.is_empty() { String::new() } else { format!(" AND symbol IN ({})", crate::query::sql_strings(symbols)) }
}

/// Runs the point-in-time join of `entities` (a temp table the caller's `setup` statements create)
/// with `set`'s rows from `read_start..=read_end` into the temp table `joined`, and checks it.
/// `label_bar_us`: the entity rows carry a label (`ts`, `label_end`) of bars this long, whose window
/// the check covers too.
pub(crate) fn join_features(
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
    judge_leakage(set, check, worst)
}

/// `check` if it holds, else the leakage error naming each violation (`worst`: the row with the largest
/// feature lead, `symbol decision_time`).
pub(crate) fn judge_leakage(set: &FeatureSet, check: LeakageCheck, worst: Option<String>) -> Result<LeakageCheck> {
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

/// Per symbol, the latest feature row available at the decision time `at` (`symbol, decision_time,
/// feature_ts, available_at, <features>`; nulls for a symbol without a row in the last
/// [`INFERENCE_LOOKBACK_SESSIONS`] sessions), read from the lake state `as_of` (live inference pinned
/// to the tag a model was trained on reads what that model saw). Empty `symbols`: the symbols with
/// rows in that window that `universe` holds on the decision date.
pub async fn get_features_for_inference(
    lake: &Lake,
    feature_set: &str,
    symbols: &[Symbol],
    universe: &UniverseFilter,
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
    let batches = tokio::task::block_in_place(|| {
        join_features(&engine, &set, &[entities], read_start, day, None)?;
        let features: String = set.features.iter().map(|f| format!(", {}", f.name)).collect();
        engine.query(&format!(
            "SELECT symbol, decision_time, feature_ts, available_at{features} FROM joined ORDER BY symbol"
        ))
    })?;
    // Every symbol: the universe's members on the decision date (by default the configured default
    // universe's, when the security master records them: survivorship-free, as training sets are).
    let members = if symbols.is_empty() { universe::Members::load(lake, universe, as_of).await? } else { None };
    let (batches, mut read) = match members {
        Some(members) => {
            let kept = batches.into_iter().map(|b| members.keep(b).map(|(b, _)| b)).collect::<Result<Vec<_>>>()?;
            (kept, members.snapshots.iter().map(|(d, id)| format!("{d}@{id}")).collect::<Vec<_>>())
        }
        None => (batches, Vec::new()),
    };
    // The lake state read goes with the rows (their schema's metadata, which Parquet and Arrow files
    // keep) and to the log: reading the same snapshot again gives the same rows.
    read.splice(0..0, snapshots.iter().map(|(d, id)| format!("{d}@{id}")));
    let read = read.join(",");
    tracing::info!(feature_set, as_of = %as_of, "inference set at {at}: read {read}");
    let metadata: std::collections::HashMap<String, String> =
        [("quantlake.read".to_string(), read), ("quantlake.decision_time".to_string(), at.to_string())].into();
    batches
        .into_iter()
        .map(|b| {
            let schema = Arc::new(b.schema().as_ref().clone().with_metadata(metadata.clone()));
            b.with_schema(schema).map_err(Error::from)
        })
        .collect()
}

/// Every decision time of the sessions `start..=end` (each feature row's bar end) with its features:
/// `symbol, ts, decision_time, feature_ts, available_at, <features>` and `security_id` when the set
/// has it; what batch scoring reads.
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
    // Each row's security goes with it (predictions carry it), when the set's rows have one.
    let security = match lake.dataset(&set.name)?.contract().arrow_schema().field_with_name(SECURITY_ID) {
        Ok(_) => format!(", {SECURITY_ID}"),
        Err(_) => String::new(),
    };
    let entities = format!(
        "CREATE TEMP TABLE entities AS SELECT symbol, ts, (ts::TIMESTAMP + INTERVAL {} MINUTE)::TIMESTAMPTZ AS decision_time{security} FROM {} WHERE date BETWEEN DATE '{start}' AND DATE '{end}'{};",
        set.bar_minutes,
        set.name,
        symbol_filter(symbols)
    );
    let engine = QueryEngine::open_for_sql(lake, &AsOf::pinned(&snapshots), &set.name).await?;
    tokio::task::block_in_place(|| {
        join_features(&engine, &set, &[entities], start, end, None)?;
        let features: String = set.features.iter().map(|f| format!(", {}", f.name)).collect();
        engine.query(&format!("SELECT symbol, ts, decision_time, feature_ts, available_at{features}{security} FROM joined ORDER BY symbol, decision_time"))
    })
}
