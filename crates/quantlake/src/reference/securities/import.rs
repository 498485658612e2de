//! Imports: a source's securities matched to stored ones (or minted), checked, and upserted into the
//! three datasets in one stage.

use std::path::PathBuf;
use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};

use super::*;
use crate::sources::SourceSettings;
use crate::table::layout::PartitionKey;
use crate::table::{AsOf, Lake};

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub source: SecuritySource,
    /// A file source: the CSV or Parquet file.
    pub path: Option<PathBuf>,
    /// Polygon: the tickers to look up (default: the active universe).
    pub symbols: Option<Vec<Symbol>>,
    /// Also record the imported securities as members of this universe.
    pub universe: Option<String>,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub source: SecuritySource,
    pub origin: String,
    /// Securities the source delivered.
    pub delivered: usize,
    /// Of those, matched to a stored security (by id, FIGI, IB contract id or ticker).
    pub matched: usize,
    /// Minted: securities the lake did not know.
    pub minted: usize,
    /// Securities whose rows of this source changed (new ones included); the others were already
    /// stored exactly so.
    pub changed: usize,
    pub unchanged: usize,
    /// Ticker intervals and membership intervals written.
    pub intervals: usize,
    pub members: usize,
    pub universe: Option<String>,
    /// The lake snapshot of the stage; `None` when nothing changed.
    pub lake_seq: Option<u64>,
    /// The snapshot each dataset written is at.
    pub snapshots: BTreeMap<String, u64>,
    pub securities: Vec<ImportedSecurity>,
    /// Tickers the source was asked for and does not know (none delivered): the import is partial.
    pub not_found: Vec<Symbol>,
    /// Stored curated sessions whose rows may name another security now: they carry the ids curation
    /// stamped them with, until curated again.
    pub restamp: Option<Restamp>,
}

/// The curated sessions an import changed the securities of: `quantlake curate` over them (and then
/// `quantlake features --stale`) stamps and follows series by the new master.
#[derive(Debug, Clone, Serialize)]
pub struct Restamp {
    pub start: NaiveDate,
    pub end: NaiveDate,
    /// The curated datasets with sessions in the range.
    pub datasets: Vec<String>,
}

/// One delivered security and what became of it.
#[derive(Debug, Clone, Serialize)]
pub struct ImportedSecurity {
    pub security_id: SecurityId,
    /// How it was matched: `security_id`, `composite_figi`, `share_class_figi`, `con_id`, `ticker`,
    /// or `minted`.
    pub matched_by: &'static str,
    pub name: Option<String>,
    /// Its tickers as written, e.g. `FB 2012-05-18..2022-06-10, META 2022-06-13..` (an open end is left empty).
    pub tickers: String,
    pub changed: bool,
}

/// Imports `request.source` (a vendor's settings from `sources`) and upserts what it delivers.
pub async fn import(
    lake: &Lake,
    settings: &SecuritySettings,
    sources: SourceSettings<'_>,
    request: &ImportRequest,
) -> Result<ImportReport> {
    if request.source != SecuritySource::Csv && request.path.is_some() {
        return Err(Error::invalid(format!("--path is for --source csv, not {}", request.source)));
    }
    let by_symbol = matches!(request.source, SecuritySource::Polygon | SecuritySource::Tws);
    if !by_symbol && request.symbols.is_some() {
        return Err(Error::invalid(format!("--symbols is for --source polygon or tws, not {}", request.source)));
    }
    let symbols = match (&request.symbols, by_symbol) {
        (_, false) => Vec::new(),
        (Some(list), true) if list.is_empty() => return Err(Error::invalid("no symbols")),
        (Some(list), true) => list.clone(),
        (None, true) => {
            let active = crate::universe::active_symbols(lake).await?;
            if active.is_empty() {
                return Err(Error::invalid(
                    "no symbols: pass --symbols or rebuild the universe (quantlake universe rebuild)",
                ));
            }
            active
        }
    };
    let (delivered, not_found, origin) = match request.source {
        SecuritySource::Csv => {
            let path = request.path.as_deref().ok_or_else(|| Error::invalid("--source csv needs --path FILE"))?;
            (read_file(path)?, Vec::new(), path.display().to_string())
        }
        SecuritySource::Polygon => {
            let (delivered, origin) = fetch_polygon(sources.polygon, &symbols).await?;
            (delivered, Vec::new(), origin)
        }
        SecuritySource::Tws => fetch_tws(sources.tws, &symbols).await?,
        SecuritySource::Universe => {
            let (delivered, origin) = from_universe(lake).await?;
            (delivered, Vec::new(), origin)
        }
    };
    let mut report = store(lake, settings, request.source, origin, delivered, request.universe.as_deref()).await?;
    report.not_found = not_found;
    Ok(report)
}

/// The migration of a ticker-keyed lake: one security per `reference_universe` symbol (a ticker
/// interval open at both ends), members of the default universe while listed. Run again, it changes
/// nothing; a vendor's or a file's history imported later ranks above it.
pub async fn migrate(lake: &Lake, settings: &SecuritySettings) -> Result<ImportReport> {
    let (delivered, origin) = from_universe(lake).await?;
    store(lake, settings, SecuritySource::Universe, origin, delivered, Some(&settings.default_universe)).await
}

/// Upserts `delivered` as `source`'s, against the master ranked by `settings`.
async fn store(
    lake: &Lake,
    settings: &SecuritySettings,
    source: SecuritySource,
    origin: String,
    delivered: Vec<Delivered>,
    universe: Option<&str>,
) -> Result<ImportReport> {
    let ranking = settings.ranking()?;
    let master = SecurityMaster::load_ranked(lake, &AsOf::latest(), &lake.view().await?, Some(ranking)).await?;
    upsert(lake, &master, source, origin, delivered, universe).await
}

/// `reference_universe` as delivered securities.
async fn from_universe(lake: &Lake) -> Result<(Vec<Delivered>, String)> {
    let members = crate::universe::members(lake).await?;
    if members.is_empty() {
        return Err(Error::invalid(
            "reference_universe is empty: nothing to migrate (quantlake universe rebuild lists the symbols first)",
        ));
    }
    let out = members
        .into_iter()
        .map(|m| {
            let dropped =
                (!m.active).then(|| DateTime::from_timestamp_micros(m.last_seen).map(|t| t.date_naive())).flatten();
            Delivered {
                security_id: None,
                attributes: Attributes {
                    kind: Some(m.sec_type),
                    name: m.name,
                    con_id: m.con_id,
                    primary_exchange: m.primary_exchange,
                    currency: Some(m.currency),
                    ..Attributes::default()
                },
                tickers: vec![DeliveredTicker {
                    ticker: m.symbol.clone(),
                    exchange: None,
                    valid: Interval::default(),
                    vendor_date: None,
                    what: "its symbol".into(),
                }],
                member: Some(Interval::new(None, dropped)),
                what: format!("reference_universe {}", m.symbol),
            }
        })
        .collect();
    Ok((out, crate::universe::DATASET.to_string()))
}

/// Matches, checks and writes `delivered` as `source`'s view of those securities.
async fn upsert(
    lake: &Lake,
    master: &SecurityMaster,
    source: SecuritySource,
    origin: String,
    delivered: Vec<Delivered>,
    universe: Option<&str>,
) -> Result<ImportReport> {
    if let Some(u) = universe {
        check_universe_name(u)?;
    }
    for d in &delivered {
        d.check()?;
    }
    let assigned = assign_ids(master, &delivered)?;
    let imported_at = Utc::now().timestamp_micros();
    let mut new = NewRows::default();
    for (d, (id, _)) in delivered.iter().zip(&assigned) {
        new.add(*id, d, source, &origin, imported_at, universe);
    }
    check_collisions(master, source, &new.symbology, &delivered, &assigned)?;
    let changed = new.changed(master, source, universe);
    let mut report = ImportReport {
        source,
        origin,
        delivered: delivered.len(),
        matched: assigned.iter().filter(|(_, how)| *how != "minted").count(),
        minted: assigned.iter().filter(|(_, how)| *how == "minted").count(),
        changed: changed.len(),
        unchanged: delivered.len() - changed.len(),
        intervals: new.symbology.iter().filter(|r| changed.contains(&r.security_id)).count(),
        members: new.membership.iter().filter(|r| changed.contains(&r.security_id)).count(),
        universe: universe.map(str::to_string),
        lake_seq: None,
        snapshots: BTreeMap::new(),
        restamp: None,
        not_found: Vec::new(),
        securities: {
            let mut tickers = new.tickers();
            delivered
                .iter()
                .zip(&assigned)
                .map(|(d, (id, how))| ImportedSecurity {
                    security_id: *id,
                    matched_by: how,
                    name: d.attributes.name.clone(),
                    tickers: tickers.remove(id).unwrap_or_default(),
                    changed: changed.contains(id),
                })
                .collect()
        },
    };
    if !changed.is_empty() {
        new.retain(&changed);
        // The dates whose resolution may change: every interval, stored or new, of the changed ones.
        let touched = master
            .rows()
            .1
            .iter()
            .chain(&new.symbology)
            .filter(|r| changed.contains(&r.security_id))
            .map(|r| r.valid)
            .reduce(|a, b| Interval::new(a.from.min(b.from), a.to.zip(b.to).map(|(x, y)| x.max(y))));
        report.restamp = match touched {
            Some(span) => restamp(lake, span).await?,
            None => None,
        };
        let done = new.write(lake, master.ranking(), source, &changed, universe).await?;
        report.lake_seq = Some(done.lake_seq);
        report.snapshots = done.writes.iter().map(|w| (w.dataset.clone(), w.snapshot_id)).collect();
    }
    Ok(report)
}

/// The sessions within `span` stored in the curated datasets stamped with securities (those whose
/// contract has a `security_id` column), if any.
async fn restamp(lake: &Lake, span: Interval) -> Result<Option<Restamp>> {
    let view = lake.view().await?;
    let mut out: Option<Restamp> = None;
    let stamped: Vec<String> = lake
        .contracts()
        .iter()
        .filter(|c| c.layer == crate::contract::Layer::Curated && c.columns.iter().any(|col| col.name == SECURITY_ID))
        .map(|c| c.name.clone())
        .collect();
    for name in &stamped {
        let state = lake.dataset(name)?.latest_in(&view).await?;
        let mut dates = Vec::new();
        for e in state.partitions.values() {
            let (first, last) = PartitionKey::parse(&e.partition)?.date_range();
            if let Some(clipped) = span.clip(first, last) {
                dates.extend([clipped.0, clipped.1]);
            }
        }
        let (Some(start), Some(end)) = (dates.iter().min().copied(), dates.iter().max().copied()) else { continue };
        let r = out.get_or_insert(Restamp { start, end, datasets: Vec::new() });
        (r.start, r.end) = (r.start.min(start), r.end.max(end));
        r.datasets.push(name.clone());
    }
    Ok(out)
}

/// Each delivered security's id and how it was found; two deliveries of one stored security are an
/// error naming both.
fn assign_ids(master: &SecurityMaster, delivered: &[Delivered]) -> Result<Vec<(SecurityId, &'static str)>> {
    let known = master.ids();
    let vendor_ids = VendorIds::of(master);
    let mut claimed: HashMap<SecurityId, &str> = HashMap::new();
    let mut out = Vec::with_capacity(delivered.len());
    for d in delivered {
        let (id, how) = match find_stored(master, &known, &vendor_ids, d)? {
            Some(found) => found,
            None => {
                let identity = d.identity();
                let mut attempt = 0;
                let mut id = SecurityId::mint(&identity, attempt);
                while known.contains(&id) || claimed.contains_key(&id) {
                    attempt += 1;
                    id = SecurityId::mint(&identity, attempt);
                }
                (id, "minted")
            }
        };
        if let Some(other) = claimed.insert(id, &d.what) {
            return Err(Error::invalid(format!(
                "{other} and {} are both security {id}; deliver one security once (merge their tickers into one)",
                d.what
            )));
        }
        out.push((id, how));
    }
    Ok(out)
}

/// The vendor ids a stored security may be matched by, in the order they are tried.
const VENDOR_IDS: [&str; 3] = ["composite_figi", "share_class_figi", "con_id"];

/// `name`'s value in `a`, as text.
fn vendor_id(a: &Attributes, name: &str) -> Option<String> {
    match name {
        "composite_figi" => a.composite_figi.clone(),
        "share_class_figi" => a.share_class_figi.clone(),
        "con_id" => a.con_id.map(|c| c.to_string()),
        _ => None,
    }
}

/// The stored securities by each vendor id any source gave them.
struct VendorIds(HashMap<(&'static str, String), BTreeSet<SecurityId>>);

impl VendorIds {
    fn of(master: &SecurityMaster) -> Self {
        let mut index: HashMap<(&'static str, String), BTreeSet<SecurityId>> = HashMap::new();
        for r in master.rows().0 {
            for name in VENDOR_IDS {
                if let Some(value) = vendor_id(&r.attributes, name) {
                    index.entry((name, value)).or_default().insert(r.security_id);
                }
            }
        }
        Self(index)
    }
}

/// The stored security `d` is: by the id it names, else a vendor id, else the ticker it has last.
fn find_stored(
    master: &SecurityMaster,
    known: &BTreeSet<SecurityId>,
    vendor_ids: &VendorIds,
    d: &Delivered,
) -> Result<Option<(SecurityId, &'static str)>> {
    if let Some(id) = d.security_id {
        if !known.contains(&id) {
            return Err(Error::invalid(format!(
                "{}: security_id {id} is not in the lake (leave it empty to mint one)",
                d.what
            )));
        }
        return Ok(Some((id, "security_id")));
    }
    let a = &d.attributes;
    for name in VENDOR_IDS {
        let Some(value) = vendor_id(a, name) else { continue };
        let Some(hits) = vendor_ids.0.get(&(name, value.clone())) else { continue };
        if hits.len() > 1 {
            return Err(Error::invalid(format!(
                "{}: {name} {value} is held by several stored securities ({}); name one in a security_id column",
                d.what,
                hits.iter().map(SecurityId::to_string).collect::<Vec<_>>().join(", ")
            )));
        }
        if let Some(id) = hits.first() {
            return Ok(Some((*id, name)));
        }
    }
    let Some(last) = d.tickers.last() else { return Ok(None) };
    // A stored security with another FIGI is another security, whatever ticker it had.
    let hits: BTreeSet<SecurityId> = master
        .holders(&last.ticker, &last.valid, last.exchange.as_deref())
        .into_iter()
        .filter(|id| {
            let figi = master.security(*id).and_then(|s| s.attributes.composite_figi);
            figi.is_none() || a.composite_figi.is_none() || figi == a.composite_figi
        })
        .collect();
    match hits.len() {
        0 => Ok(None),
        1 => Ok(hits.first().map(|id| (*id, "ticker"))),
        _ => Err(Error::invalid(format!(
            "{}: its ticker {} {} matches several stored securities ({}); name one in a security_id column, or give the interval's dates",
            d.what,
            last.ticker,
            last.valid,
            hits.iter().map(SecurityId::to_string).collect::<Vec<_>>().join(", ")
        ))),
    }
}

/// Refuses an import after which one source would have one ticker (on one exchange) naming two
/// securities on a date, naming the conflicting rows.
fn check_collisions(
    master: &SecurityMaster,
    source: SecuritySource,
    new: &[TickerInterval],
    delivered: &[Delivered],
    assigned: &[(SecurityId, &'static str)],
) -> Result<()> {
    let replaced = ids(assigned.iter().map(|(id, _)| id));
    let what_of = |r: &TickerInterval| -> String {
        let i = assigned.iter().position(|(id, _)| *id == r.security_id).unwrap_or(0);
        let t = delivered[i].tickers.iter().find(|t| t.ticker == r.ticker && t.valid.from == r.valid.from);
        format!("{} ({}: {})", r.describe(), delivered[i].what, t.map_or("", |t| t.what.as_str()))
    };
    // Intervals can only collide within one ticker.
    let mut stored: HashMap<&Symbol, Vec<&TickerInterval>> = HashMap::new();
    for r in master.rows().1.iter().filter(|r| r.source == source && !replaced.contains(&r.security_id)) {
        stored.entry(&r.ticker).or_default().push(r);
    }
    let mut fresh: HashMap<&Symbol, Vec<&TickerInterval>> = HashMap::new();
    for r in new {
        fresh.entry(&r.ticker).or_default().push(r);
    }
    for (ticker, rows) in &fresh {
        for (i, a) in rows.iter().enumerate() {
            if let Some(b) = rows[i + 1..].iter().find(|b| a.security_id != b.security_id && a.collides(b)) {
                return Err(Error::invalid(format!(
                    "overlapping ticker intervals, refused: {} and {}",
                    what_of(a),
                    what_of(b)
                )));
            }
            if let Some(s) = stored.get(ticker).into_iter().flatten().find(|s| s.collides(a)) {
                return Err(Error::invalid(format!(
                    "overlapping ticker intervals, refused: {} overlaps the stored {} (imported from {})",
                    what_of(a),
                    s.describe(),
                    s.origin
                )));
            }
        }
    }
    Ok(())
}

/// What one source says of each security, when and where from aside: what an import compares.
struct Content {
    attributes: HashMap<SecurityId, Vec<String>>,
    spans: HashMap<SecurityId, BTreeSet<String>>,
    members: HashMap<SecurityId, BTreeSet<String>>,
}

impl Content {
    fn of(
        securities: &[SecurityRow],
        symbology: &[TickerInterval],
        membership: &[MembershipRow],
        source: SecuritySource,
        universe: Option<&str>,
    ) -> Self {
        let mut out = Content { attributes: HashMap::new(), spans: HashMap::new(), members: HashMap::new() };
        for r in securities.iter().filter(|r| r.source == source) {
            out.attributes.entry(r.security_id).or_default().push(format!("{:?}", r.attributes));
        }
        for r in symbology.iter().filter(|r| r.source == source) {
            let span = format!("{:?}", (&r.ticker, &r.exchange, r.valid, r.vendor_date));
            out.spans.entry(r.security_id).or_default().insert(span);
        }
        for r in membership.iter().filter(|r| r.source == source && Some(r.universe.as_str()) == universe) {
            out.members.entry(r.security_id).or_default().insert(r.valid.to_string());
        }
        out
    }
}

/// The rows an import writes.
#[derive(Default)]
struct NewRows {
    securities: Vec<SecurityRow>,
    symbology: Vec<TickerInterval>,
    membership: Vec<MembershipRow>,
}

impl NewRows {
    fn add(
        &mut self,
        id: SecurityId,
        d: &Delivered,
        source: SecuritySource,
        origin: &str,
        imported_at: i64,
        universe: Option<&str>,
    ) {
        let origin = origin.to_string();
        self.securities.push(SecurityRow {
            security_id: id,
            source,
            attributes: d.attributes.clone(),
            origin: origin.clone(),
            imported_at,
        });
        for t in &d.tickers {
            // An open end stops at the delisting.
            let to = t.valid.to.or(d.attributes.delisted);
            self.symbology.push(TickerInterval {
                security_id: id,
                ticker: t.ticker.clone(),
                exchange: t.exchange.clone(),
                valid: Interval::new(t.valid.from, to),
                source,
                vendor_date: t.vendor_date,
                origin: origin.clone(),
                imported_at,
            });
        }
        if let Some(universe) = universe {
            self.membership.push(MembershipRow {
                universe: universe.to_string(),
                security_id: id,
                valid: d.membership(),
                source,
                origin,
                imported_at,
            });
        }
    }

    /// Each security's tickers as written, e.g. `FB 2012-05-18..2022-06-10, META 2022-06-13..`.
    fn tickers(&self) -> HashMap<SecurityId, String> {
        let mut out: HashMap<SecurityId, String> = HashMap::new();
        for r in &self.symbology {
            let text = out.entry(r.security_id).or_default();
            if !text.is_empty() {
                text.push_str(", ");
            }
            text.push_str(&format!("{} {}", r.ticker, r.valid));
        }
        out
    }

    /// The securities whose rows differ from what `source` has stored for them (when and where from
    /// aside).
    fn changed(&self, master: &SecurityMaster, source: SecuritySource, universe: Option<&str>) -> BTreeSet<SecurityId> {
        let (sec, sym, mem) = master.rows();
        let new = Content::of(&self.securities, &self.symbology, &self.membership, source, universe);
        let stored = Content::of(sec, sym, mem, source, universe);
        ids(self.securities.iter().map(|r| &r.security_id))
            .into_iter()
            .filter(|id| {
                new.attributes.get(id) != stored.attributes.get(id)
                    || new.spans.get(id) != stored.spans.get(id)
                    || (universe.is_some() && new.members.get(id) != stored.members.get(id))
            })
            .collect()
    }

    fn retain(&mut self, keep: &BTreeSet<SecurityId>) {
        self.securities.retain(|r| keep.contains(&r.security_id));
        self.symbology.retain(|r| keep.contains(&r.security_id));
        self.membership.retain(|r| keep.contains(&r.security_id));
    }

    /// One stage: each dataset's rows of `source` for `changed` replaced by the new ones.
    async fn write(
        self,
        lake: &Lake,
        ranking: &[SecuritySource],
        source: SecuritySource,
        changed: &BTreeSet<SecurityId>,
        universe: Option<&str>,
    ) -> Result<crate::table::operations::stage::StageResult> {
        let (sec, sym, mem) = (lake.dataset(SECURITIES)?, lake.dataset(SYMBOLOGY)?, lake.dataset(MEMBERSHIP)?);
        let ids = Arc::new(changed.clone());
        let removing = |dataset: &'static str, universe: Option<String>| {
            let ids = ids.clone();
            Arc::new(move |b: &arrow::array::RecordBatch| rows::replaced(b, dataset, source, &ids, universe.as_deref()))
                as crate::table::operations::write::RowPredicate
        };
        let precedence: Vec<&str> = ranking.iter().map(|s| s.name()).collect();
        let write = |ds, batch, dataset, universe: Option<String>| {
            crate::table::Dataset::write(ds, vec![batch])
                .removing_where(removing(dataset, universe))
                .covering([PartitionKey::All])
                .operation("securities_import")
                .parameter("source", source)
                .parameter("source_precedence", &precedence)
        };
        let mut stage = lake
            .stage("securities_import")
            .parameter("source", source)
            .write(write(&sec, rows::securities_batch(sec.contract(), &self.securities)?, SECURITIES, None))
            .write(write(&sym, rows::symbology_batch(sym.contract(), &self.symbology)?, SYMBOLOGY, None));
        if let Some(u) = universe {
            stage = stage.write(write(
                &mem,
                rows::membership_batch(mem.contract(), &self.membership)?,
                MEMBERSHIP,
                Some(u.to_string()),
            ));
        }
        stage.commit().await
    }
}
