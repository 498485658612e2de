//! The universe: which symbols the lake tracks, with what a broker needs to find them. `rebuild`
//! turns the config's list or CSV into the `reference_universe` dataset; `active_symbols` and
//! `con_ids` feed ingestion (`backfill-history` without `--symbols`, TWS contract ids).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{Int64Type, TimestampMicrosecondType};
use chrono::Utc;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::write::WriteMode;
use crate::table::{Lake, ReadFilter};

/// The universe dataset.
pub const DATASET: &str = "reference_universe";

/// `[universe]` settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct UniverseSettings {
    /// Symbols to track.
    pub symbols: Vec<Symbol>,
    /// Or a CSV with a `symbol` (or `ticker`) column and any of con_id, exchange, primary_exchange,
    /// currency, sec_type, name; missing columns take the defaults below.
    pub csv: Option<PathBuf>,
    pub default_exchange: String,
    pub default_currency: String,
    pub default_sec_type: String,
    /// Fewer active symbols than this is too narrow for cross-sectional features
    /// (`FEATURE_BREADTH_MIN_SYMBOLS`); fewer than `breadth_warn_symbols` is a warning
    /// (`FEATURE_BREADTH_WARN_SYMBOLS`).
    pub breadth_min_symbols: usize,
    pub breadth_warn_symbols: usize,
}

impl Default for UniverseSettings {
    fn default() -> Self {
        Self {
            symbols: Vec::new(),
            csv: None,
            default_exchange: "SMART".into(),
            default_currency: "USD".into(),
            default_sec_type: "STK".into(),
            // The robustness guide's thresholds.
            breadth_min_symbols: 100,
            breadth_warn_symbols: 200,
        }
    }
}

impl UniverseSettings {
    /// These settings with the command line's choice of members: a `symbols` list replaces the
    /// config's symbols and csv; a `csv` replaces the config's csv.
    pub fn with_members(mut self, symbols: Option<Vec<Symbol>>, csv: Option<PathBuf>) -> Self {
        if let Some(list) = symbols {
            self.symbols = list;
            self.csv = None;
        }
        if csv.is_some() {
            self.csv = csv;
        }
        self
    }
}

/// One symbol as listed (before merging with what the lake knows).
#[derive(Debug, Clone, PartialEq)]
pub struct Listing {
    pub symbol: Symbol,
    pub con_id: Option<i64>,
    pub exchange: Option<String>,
    pub primary_exchange: Option<String>,
    pub currency: Option<String>,
    pub sec_type: Option<String>,
    pub name: Option<String>,
}

impl Listing {
    /// `symbol` with nothing else known.
    pub fn of(symbol: Symbol) -> Self {
        Self {
            symbol,
            con_id: None,
            exchange: None,
            primary_exchange: None,
            currency: None,
            sec_type: None,
            name: None,
        }
    }
}

/// A row of `reference_universe`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub symbol: Symbol,
    pub con_id: Option<i64>,
    pub exchange: String,
    pub primary_exchange: Option<String>,
    pub currency: String,
    pub sec_type: String,
    pub name: Option<String>,
    pub active: bool,
    pub first_seen: i64,
    pub last_seen: i64,
    pub origin: String,
}

/// Whether the active universe is broad enough for cross-sectional work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Breadth {
    Ok,
    /// Below `breadth_warn_symbols`.
    Warn,
    /// Below `breadth_min_symbols`.
    BelowMin,
}

impl Named for Breadth {
    const WHAT: &'static str = "breadth";
    const ALL: &'static [Self] = &[Breadth::Ok, Breadth::Warn, Breadth::BelowMin];

    fn name(self) -> &'static str {
        match self {
            Breadth::Ok => "ok",
            Breadth::Warn => "warn",
            Breadth::BelowMin => "below_min",
        }
    }
}
named_display_and_from_str!(Breadth);

impl UniverseSettings {
    pub fn breadth(&self, active: usize) -> Breadth {
        if active < self.breadth_min_symbols {
            Breadth::BelowMin
        } else if active < self.breadth_warn_symbols {
            Breadth::Warn
        } else {
            Breadth::Ok
        }
    }
}

/// What a rebuild did.
#[derive(Debug, Clone, Serialize)]
pub struct RebuildReport {
    pub snapshot_id: u64,
    pub active: usize,
    pub inactive: usize,
    pub added: Vec<Symbol>,
    pub deactivated: Vec<Symbol>,
    pub reactivated: Vec<Symbol>,
    pub breadth: Breadth,
    pub breadth_min_symbols: usize,
    pub breadth_warn_symbols: usize,
}

/// Reads the listings of `settings`: the CSV if set, else the symbol list.
pub fn listings(settings: &UniverseSettings) -> Result<(Vec<Listing>, String)> {
    let (listed, origin) = match &settings.csv {
        Some(path) => (read_csv(path)?, path.display().to_string()),
        None => (settings.symbols.iter().cloned().map(Listing::of).collect(), "config".to_string()),
    };
    if listed.is_empty() {
        return Err(Error::Config(
            "universe: no symbols; set [universe] symbols or csv, or pass --symbols / --csv".into(),
        ));
    }
    let mut seen = BTreeMap::new();
    for (i, l) in listed.into_iter().enumerate() {
        if seen.insert(l.symbol.clone(), l).is_some() {
            return Err(Error::invalid(format!("universe ({origin}): symbol listed twice (entry {})", i + 1)));
        }
    }
    Ok((seen.into_values().collect(), origin))
}

/// Reads a universe CSV: a header row naming its columns, in any order and case.
fn read_csv(path: &Path) -> Result<Vec<Listing>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_path(path)
        .map_err(|e| Error::invalid(format!("universe CSV {}: {e}", path.display())))?;
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| Error::invalid(format!("universe CSV {}: {e}", path.display())))?
        .iter()
        .map(str::to_ascii_lowercase)
        .collect();
    let find = |names: &[&str]| headers.iter().position(|h| names.contains(&h.as_str()));
    let symbol = find(&["symbol", "ticker"]).ok_or_else(|| {
        Error::invalid(format!(
            "universe CSV {}: no 'symbol' or 'ticker' column (columns: {})",
            path.display(),
            headers.join(", ")
        ))
    })?;
    let (con_id, exchange, primary, currency, sec_type, name) = (
        find(&["con_id", "conid"]),
        find(&["exchange"]),
        find(&["primary_exchange", "primary_exch"]),
        find(&["currency"]),
        find(&["sec_type", "sectype"]),
        find(&["name", "description"]),
    );
    let mut out = Vec::new();
    for (i, record) in reader.records().enumerate() {
        let line = i + 2;
        let record = record.map_err(|e| Error::invalid(format!("universe CSV {} line {line}: {e}", path.display())))?;
        let get = |c: Option<usize>| c.and_then(|c| record.get(c)).filter(|v| !v.is_empty()).map(str::to_string);
        let con_id = match get(con_id) {
            None => None,
            Some(v) => Some(v.parse::<i64>().map_err(|_| {
                Error::invalid(format!("universe CSV {} line {line}: con_id '{v}' is not an integer", path.display()))
            })?),
        };
        let symbol = get(Some(symbol))
            .ok_or_else(|| Error::invalid(format!("universe CSV {} line {line}: empty symbol", path.display())))?;
        let symbol = Symbol::new(&symbol)
            .map_err(|e| Error::invalid(format!("universe CSV {} line {line}: {e}", path.display())))?;
        out.push(Listing {
            symbol,
            con_id,
            exchange: get(exchange),
            primary_exchange: get(primary),
            currency: get(currency),
            sec_type: get(sec_type),
            name: get(name),
        });
    }
    Ok(out)
}

/// The runbook's `ensure_universe_columns`: a listing with every required column, defaults filled in.
pub fn ensure_universe_columns(settings: &UniverseSettings, l: &Listing) -> (String, String, String) {
    (
        l.exchange.clone().unwrap_or_else(|| settings.default_exchange.clone()),
        l.currency.clone().unwrap_or_else(|| settings.default_currency.clone()),
        l.sec_type.clone().unwrap_or_else(|| settings.default_sec_type.clone()),
    )
}

/// The stored universe (empty before the first rebuild).
pub async fn members(lake: &Lake) -> Result<Vec<Member>> {
    let ds = lake.dataset(DATASET)?;
    let state = ds.latest().await?;
    let mut out = Vec::new();
    for batch in ds.read(&state, &ReadFilter::default()).await? {
        let col = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("no column '{name}'") })
        };
        let text = |name: &str| -> Result<StringArray> { Ok(col(name)?.as_string::<i32>().clone()) };
        let (symbol, exchange, primary, currency, sec_type, name, origin) = (
            text("symbol")?,
            text("exchange")?,
            text("primary_exchange")?,
            text("currency")?,
            text("sec_type")?,
            text("name")?,
            text("origin")?,
        );
        let con_id = col("con_id")?.as_primitive::<Int64Type>().clone();
        let active = col("active")?.as_boolean().clone();
        let (first, last) = (
            col("first_seen")?.as_primitive::<TimestampMicrosecondType>().clone(),
            col("last_seen")?.as_primitive::<TimestampMicrosecondType>().clone(),
        );
        let opt = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        for i in 0..batch.num_rows() {
            out.push(Member {
                symbol: Symbol::new(symbol.value(i))?,
                con_id: con_id.is_valid(i).then(|| con_id.value(i)),
                exchange: exchange.value(i).into(),
                primary_exchange: opt(&primary, i),
                currency: currency.value(i).into(),
                sec_type: sec_type.value(i).into(),
                name: opt(&name, i),
                active: active.value(i),
                first_seen: first.value(i),
                last_seen: last.value(i),
                origin: origin.value(i).into(),
            });
        }
    }
    out.sort_by(|a, b| a.symbol.cmp(&b.symbol));
    Ok(out)
}

/// The active symbols, sorted.
pub async fn active_symbols(lake: &Lake) -> Result<Vec<Symbol>> {
    Ok(members(lake).await?.into_iter().filter(|m| m.active).map(|m| m.symbol).collect())
}

/// Known IB contract ids by symbol.
pub async fn con_ids(lake: &Lake) -> Result<HashMap<Symbol, i64>> {
    Ok(members(lake).await?.into_iter().filter_map(|m| m.con_id.map(|c| (m.symbol, c))).collect())
}

/// Rebuilds `reference_universe` from `settings` in one snapshot: listed symbols become active (keeping
/// their first_seen and any known con_id), unlisted ones stay with `active = false`.
pub async fn rebuild(lake: &Lake, settings: &UniverseSettings) -> Result<RebuildReport> {
    let (listed, origin) = listings(settings)?;
    let old: BTreeMap<Symbol, Member> = members(lake).await?.into_iter().map(|m| (m.symbol.clone(), m)).collect();
    let now = Utc::now().timestamp_micros();
    let mut report = RebuildReport {
        snapshot_id: 0,
        active: listed.len(),
        inactive: 0,
        added: Vec::new(),
        deactivated: Vec::new(),
        reactivated: Vec::new(),
        breadth: settings.breadth(listed.len()),
        breadth_min_symbols: settings.breadth_min_symbols,
        breadth_warn_symbols: settings.breadth_warn_symbols,
    };
    let mut rows: BTreeMap<Symbol, Member> = BTreeMap::new();
    for l in &listed {
        let before = old.get(&l.symbol);
        match before {
            None => report.added.push(l.symbol.clone()),
            Some(m) if !m.active => report.reactivated.push(l.symbol.clone()),
            Some(_) => {}
        }
        let (exchange, currency, sec_type) = ensure_universe_columns(settings, l);
        rows.insert(
            l.symbol.clone(),
            Member {
                symbol: l.symbol.clone(),
                con_id: l.con_id.or(before.and_then(|m| m.con_id)),
                exchange,
                primary_exchange: l.primary_exchange.clone().or(before.and_then(|m| m.primary_exchange.clone())),
                currency,
                sec_type,
                name: l.name.clone().or(before.and_then(|m| m.name.clone())),
                active: true,
                first_seen: before.map_or(now, |m| m.first_seen),
                last_seen: now,
                origin: origin.clone(),
            },
        );
    }
    for (symbol, m) in old {
        if rows.contains_key(&symbol) {
            continue;
        }
        if m.active {
            report.deactivated.push(symbol.clone());
        }
        report.inactive += 1;
        rows.insert(symbol, Member { active: false, ..m });
    }
    let ds = lake.dataset(DATASET)?;
    let batch = to_batch(ds.contract(), rows.values())?;
    let done = ds
        .write(vec![batch])
        .mode(WriteMode::Overwrite)
        .covering([PartitionKey::All])
        .operation("universe_rebuild")
        .parameter("origin", &origin)
        .execute()
        .await?;
    report.snapshot_id = done.snapshot_id;
    if report.breadth != Breadth::Ok {
        tracing::warn!(
            active = report.active,
            min = settings.breadth_min_symbols,
            warn = settings.breadth_warn_symbols,
            "universe breadth is {}",
            report.breadth
        );
    }
    Ok(report)
}

fn to_batch<'a>(
    contract: &crate::contract::DatasetContract,
    members: impl Iterator<Item = &'a Member> + Clone,
) -> Result<RecordBatch> {
    let m: Vec<&Member> = members.collect();
    let text = |f: fn(&Member) -> &str| -> ArrayRef { Arc::new(StringArray::from_iter_values(m.iter().map(|x| f(x)))) };
    let opt = |f: fn(&Member) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(m.iter().map(|x| f(x)))) };
    let ts = |f: fn(&Member) -> i64| -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from_iter_values(m.iter().map(|x| f(x))).with_timezone("UTC"))
    };
    contract.batch_from(|name| {
        Some(match name {
            "symbol" => text(|x| x.symbol.as_str()),
            "con_id" => Arc::new(Int64Array::from_iter(m.iter().map(|x| x.con_id))),
            "exchange" => text(|x| &x.exchange),
            "primary_exchange" => opt(|x| x.primary_exchange.as_deref()),
            "currency" => text(|x| &x.currency),
            "sec_type" => text(|x| &x.sec_type),
            "name" => opt(|x| x.name.as_deref()),
            "active" => Arc::new(BooleanArray::from_iter(m.iter().map(|x| Some(x.active)))),
            "first_seen" => ts(|x| x.first_seen),
            "last_seen" => ts(|x| x.last_seen),
            "origin" => text(|x| &x.origin),
            _ => return None,
        })
    })
}
