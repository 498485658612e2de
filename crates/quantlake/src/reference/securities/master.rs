//! [`SecurityMaster`]: the three datasets read at one lake state, and the questions asked of them.

use super::*;
use crate::table::lake_log::LakeView;
use crate::table::{AsOf, Lake, ReadFilter};

/// The security master at one lake state: every source's rows, and what readers take from them.
#[derive(Debug, Clone, Default)]
pub struct SecurityMaster {
    securities: Vec<SecurityRow>,
    symbology: Vec<TickerInterval>,
    membership: Vec<MembershipRow>,
    ranking: Vec<SecuritySource>,
    /// Each security's ticker history from the source that wins it, oldest first.
    history: HashMap<SecurityId, Vec<usize>>,
    /// Indexes into `securities`, by security.
    rows_of: HashMap<SecurityId, Vec<usize>>,
    /// Indexes into `symbology` of the winning intervals, by ticker.
    by_ticker: HashMap<Symbol, Vec<usize>>,
    /// The snapshot of each dataset read.
    pub snapshots: BTreeMap<String, u64>,
}

/// A security with each attribute from the highest-ranked source that has it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SecurityView {
    pub security_id: SecurityId,
    #[serde(flatten)]
    pub attributes: Attributes,
    /// The sources with a row for it, best first.
    pub sources: Vec<SecuritySource>,
}

/// A universe's member on a date.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Member {
    pub security_id: SecurityId,
    /// Its ticker on the date (none when no source knows it then).
    pub ticker: Option<Symbol>,
    pub name: Option<String>,
    pub delisted: Option<NaiveDate>,
}

/// A ticker that names more than one security on a date, with the rows that say so.
#[derive(Debug, Clone)]
pub struct Ambiguous(pub Vec<TickerInterval>);

impl SecurityMaster {
    /// Reads the three datasets at `as_of`, through one view of the lake (an import writes them in one
    /// stage, so they are read consistently), ranking sources as the latest import at that snapshot
    /// recorded (`securities.source_precedence` then), so a read at a snapshot always answers alike.
    pub async fn load(lake: &Lake, as_of: &AsOf) -> Result<Self> {
        Self::load_ranked(lake, as_of, &lake.view().await?, None).await
    }

    /// [`Self::load`] through `view`, so a caller reading other datasets too sees one lake state.
    pub async fn load_in(lake: &Lake, as_of: &AsOf, view: &LakeView) -> Result<Self> {
        Self::load_ranked(lake, as_of, view, None).await
    }

    /// [`Self::load`] with `ranking` instead of the recorded one (an import ranks by the settings it
    /// records).
    pub(crate) async fn load_ranked(
        lake: &Lake,
        as_of: &AsOf,
        view: &LakeView,
        ranking: Option<Vec<SecuritySource>>,
    ) -> Result<Self> {
        let mut snapshots = BTreeMap::new();
        let mut batches = BTreeMap::new();
        for name in [SECURITIES, SYMBOLOGY, MEMBERSHIP] {
            let ds = lake.dataset(name)?;
            let state = ds.state_as_of(as_of, view).await?;
            snapshots.insert(name.to_string(), state.snapshot_id);
            batches.insert(name, ds.read(&state, &ReadFilter::default()).await?);
        }
        let ranking = match ranking {
            Some(r) => r,
            None => recorded_ranking(lake, snapshots[SYMBOLOGY]).await?,
        };
        Ok(Self::from_rows(
            rows::securities(&batches[SECURITIES])?,
            rows::symbology(&batches[SYMBOLOGY])?,
            rows::membership(&batches[MEMBERSHIP])?,
            ranking,
            snapshots,
        ))
    }

    pub(crate) fn from_rows(
        securities: Vec<SecurityRow>,
        symbology: Vec<TickerInterval>,
        membership: Vec<MembershipRow>,
        ranking: Vec<SecuritySource>,
        snapshots: BTreeMap<String, u64>,
    ) -> Self {
        let rows_of = by_security(&securities, |r| r.security_id);
        let mut master = Self {
            securities,
            symbology,
            membership,
            ranking,
            snapshots,
            history: HashMap::new(),
            by_ticker: HashMap::new(),
            rows_of,
        };
        for (id, rows) in by_security(&master.symbology, |r| r.security_id) {
            let best = rows.iter().map(|&i| master.rank(master.symbology[i].source)).min().unwrap_or(0);
            let mut won: Vec<usize> =
                rows.into_iter().filter(|&i| master.rank(master.symbology[i].source) == best).collect();
            won.sort_by_key(|&i| (master.symbology[i].valid.from, master.symbology[i].valid.to.is_none()));
            for &i in &won {
                master.by_ticker.entry(master.symbology[i].ticker.clone()).or_default().push(i);
            }
            master.history.insert(id, won);
        }
        master
    }

    /// The source ranking readers use.
    pub fn ranking(&self) -> &[SecuritySource] {
        &self.ranking
    }

    /// `source`'s place in the ranking, 0 the best (a handful of sources: a scan beats a map).
    fn rank(&self, source: SecuritySource) -> usize {
        self.ranking.iter().position(|s| *s == source).unwrap_or(self.ranking.len())
    }

    /// Every stored row of each dataset (all sources).
    pub fn rows(&self) -> (&[SecurityRow], &[TickerInterval], &[MembershipRow]) {
        (&self.securities, &self.symbology, &self.membership)
    }

    /// Every security id the master knows, in order.
    pub fn ids(&self) -> BTreeSet<SecurityId> {
        let mut out = ids(self.securities.iter().map(|r| &r.security_id));
        out.extend(self.symbology.iter().map(|r| r.security_id));
        out
    }

    /// The security `id` with each attribute from the best-ranked source that has it.
    pub fn security(&self, id: SecurityId) -> Option<SecurityView> {
        let mut rows: Vec<&SecurityRow> =
            self.rows_of.get(&id).into_iter().flatten().map(|&i| &self.securities[i]).collect();
        if rows.is_empty() && !self.history.contains_key(&id) {
            return None;
        }
        rows.sort_by_key(|r| self.rank(r.source));
        let pick = |f: fn(&Attributes) -> Option<String>| rows.iter().find_map(|r| f(&r.attributes));
        let attributes = Attributes {
            kind: pick(|a| a.kind.clone()),
            name: pick(|a| a.name.clone()),
            composite_figi: pick(|a| a.composite_figi.clone()),
            share_class_figi: pick(|a| a.share_class_figi.clone()),
            cik: pick(|a| a.cik.clone()),
            con_id: rows.iter().find_map(|r| r.attributes.con_id),
            primary_exchange: pick(|a| a.primary_exchange.clone()),
            currency: pick(|a| a.currency.clone()),
            listed: rows.iter().find_map(|r| r.attributes.listed),
            delisted: rows.iter().find_map(|r| r.attributes.delisted),
            delisted_reason: pick(|a| a.delisted_reason.clone()),
        };
        Some(SecurityView { security_id: id, attributes, sources: rows.iter().map(|r| r.source).collect() })
    }

    /// The ticker history readers use for `id`: the intervals of its best-ranked source, oldest first.
    pub fn history(&self, id: SecurityId) -> Vec<&TickerInterval> {
        self.history.get(&id).map_or_else(Vec::new, |rows| rows.iter().map(|&i| &self.symbology[i]).collect())
    }

    /// The securities whose ticker history has `ticker` at some date of `valid` (on the same exchange,
    /// or either on none).
    pub(crate) fn holders(&self, ticker: &Symbol, valid: &Interval, exchange: Option<&str>) -> BTreeSet<SecurityId> {
        self.by_ticker
            .get(ticker)
            .into_iter()
            .flatten()
            .map(|&i| &self.symbology[i])
            .filter(|r| r.valid.overlaps(valid))
            .filter(|r| same_venue(exchange, r.exchange.as_deref()))
            .map(|r| r.security_id)
            .collect()
    }

    /// Whether any security's history has `ticker`.
    pub fn knows(&self, ticker: &Symbol) -> bool {
        self.by_ticker.contains_key(ticker)
    }

    /// The security `ticker` named on `date` (on `exchange`, when given), or `None`. A ticker two
    /// securities' histories both claim on that date goes to the one from the best-ranked source;
    /// two from the same rank are an error naming both rows.
    pub fn resolve(
        &self,
        ticker: &Symbol,
        date: NaiveDate,
        exchange: Option<&str>,
    ) -> std::result::Result<Option<SecurityId>, Ambiguous> {
        let mut hits: Vec<&TickerInterval> = self
            .by_ticker
            .get(ticker)
            .into_iter()
            .flatten()
            .map(|&i| &self.symbology[i])
            .filter(|r| r.valid.contains(date))
            .filter(|r| same_venue(exchange, r.exchange.as_deref()))
            .collect();
        let Some(best) = hits.iter().map(|r| self.rank(r.source)).min() else { return Ok(None) };
        hits.retain(|r| self.rank(r.source) == best);
        let found = ids(hits.iter().map(|r| &r.security_id));
        match found.len() {
            1 => Ok(found.first().copied()),
            _ => Err(Ambiguous(hits.into_iter().cloned().collect())),
        }
    }

    /// The security a request for `ticker` over `[start, end]` is about: the one it names on
    /// `resolve_at` when given; else on `end`, or when it names none then (a renamed or delisted
    /// security), on the last date in the range it named one. `None`: it named none.
    pub fn security_for(
        &self,
        ticker: &Symbol,
        start: NaiveDate,
        end: NaiveDate,
        resolve_at: Option<NaiveDate>,
    ) -> std::result::Result<Option<SecurityId>, Ambiguous> {
        if let Some(at) = resolve_at {
            return self.resolve(ticker, at, None);
        }
        if let Some(id) = self.resolve(ticker, end, None)? {
            return Ok(Some(id));
        }
        let last = self
            .by_ticker
            .get(ticker)
            .into_iter()
            .flatten()
            .filter_map(|&i| self.symbology[i].valid.clip(start, end).map(|(_, b)| b))
            .max();
        match last {
            Some(day) => self.resolve(ticker, day, None),
            None => Ok(None),
        }
    }

    /// The ticker security `id` had on `date`, if any source knows.
    pub fn ticker_of(&self, id: SecurityId, date: NaiveDate) -> Option<&Symbol> {
        let rows = self.history.get(&id)?;
        rows.iter().map(|&i| &self.symbology[i]).find(|r| r.valid.contains(date)).map(|r| &r.ticker)
    }

    /// The tickers `id` had within `[start, end]`, as consecutive `(ticker, first, last)` spans (a
    /// vendor asked for this security's bars over the range asks for each span's ticker), cut at
    /// its delisting.
    pub fn ticker_spans(
        &self,
        id: SecurityId,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Vec<(Symbol, NaiveDate, NaiveDate)> {
        let end = match self.security(id).and_then(|s| s.attributes.delisted) {
            Some(delisted) => end.min(delisted),
            None => end,
        };
        self.history(id)
            .into_iter()
            .filter_map(|r| r.valid.clip(start, end).map(|(a, b)| (r.ticker.clone(), a, b)))
            .collect()
    }

    /// The universes with any membership.
    pub fn universes(&self) -> BTreeSet<&str> {
        self.membership.iter().map(|m| m.universe.as_str()).collect()
    }

    /// `Ok` when the master records membership of `universe`, else an error naming the ones it has.
    pub fn check_universe(&self, universe: &str) -> Result<()> {
        let known = self.universes();
        if known.contains(universe) {
            return Ok(());
        }
        Err(Error::invalid(format!(
            "no membership of universe '{universe}' in the security master (universes: {}); `quantlake securities migrate` records the default universe's from reference_universe",
            if known.is_empty() { "none".to_string() } else { known.into_iter().collect::<Vec<_>>().join(", ") }
        )))
    }

    /// The members of `universe` on `date`: each security with an interval of its best-ranked
    /// membership source containing the date, and not delisted before it.
    pub fn members(&self, universe: &str, date: NaiveDate) -> Vec<Member> {
        let rows: Vec<&MembershipRow> = self.membership.iter().filter(|m| m.universe == universe).collect();
        let mut best: HashMap<SecurityId, usize> = HashMap::new();
        for m in &rows {
            let r = self.rank(m.source);
            best.entry(m.security_id).and_modify(|b| *b = (*b).min(r)).or_insert(r);
        }
        let mut out: BTreeMap<SecurityId, Member> = BTreeMap::new();
        for m in rows {
            if self.rank(m.source) != best[&m.security_id] || !m.valid.contains(date) {
                continue;
            }
            let view = self.security(m.security_id);
            let delisted = view.as_ref().and_then(|v| v.attributes.delisted);
            if delisted.is_some_and(|d| d < date) {
                continue;
            }
            out.entry(m.security_id).or_insert_with(|| Member {
                security_id: m.security_id,
                ticker: self.ticker_of(m.security_id, date).cloned(),
                name: view.and_then(|v| v.attributes.name),
                delisted,
            });
        }
        out.into_values().collect()
    }
}

/// The ranking recorded by the import that wrote `snapshot` of the symbology (the default before any,
/// or when the log no longer has it).
async fn recorded_ranking(lake: &Lake, snapshot: u64) -> Result<Vec<SecuritySource>> {
    if snapshot == 0 {
        return SecuritySettings::default().ranking();
    }
    let commit = lake.dataset(SYMBOLOGY)?.log().read_commit(snapshot).await?;
    let listed = commit
        .and_then(|c| c.parameters.get("source_precedence").cloned())
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok());
    let source_precedence = match listed {
        Some(names) => names.iter().map(|n| n.parse()).collect::<Result<Vec<SecuritySource>>>()?,
        None => return SecuritySettings::default().ranking(),
    };
    SecuritySettings { source_precedence, ..SecuritySettings::default() }.ranking()
}

impl std::fmt::Display for Ambiguous {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let rows: Vec<String> = self.0.iter().map(TickerInterval::describe).collect();
        write!(f, "{}", rows.join("; "))
    }
}

impl From<Ambiguous> for Error {
    fn from(a: Ambiguous) -> Self {
        let ticker = a.0.first().map_or(String::new(), |r| r.ticker.to_string());
        Error::invalid(format!(
            "ticker {ticker} names more than one security on that date: {a}; correct the symbology (a CSV import ranks first) or ask by exchange"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    fn row(id: i64, ticker: &str, from: Option<&str>, to: Option<&str>, source: SecuritySource) -> TickerInterval {
        TickerInterval {
            security_id: SecurityId::new(id).unwrap(),
            ticker: Symbol::new(ticker).unwrap(),
            exchange: None,
            valid: Interval::new(from.map(d), to.map(d)),
            source,
            vendor_date: None,
            origin: "test".into(),
            imported_at: 0,
        }
    }

    fn master(rows: Vec<TickerInterval>) -> SecurityMaster {
        SecurityMaster::from_rows(
            Vec::new(),
            rows,
            Vec::new(),
            SecuritySettings::default().ranking().unwrap(),
            BTreeMap::new(),
        )
    }

    #[test]
    fn a_reused_ticker_resolves_by_date_and_a_rename_keeps_the_id() {
        use SecuritySource::*;
        let class_a = 11;
        let class_c = 12;
        let m = master(vec![
            row(class_a, "GOOG", Some("2004-08-19"), Some("2014-04-02"), Csv),
            row(class_a, "GOOGL", Some("2014-04-03"), None, Csv),
            row(class_c, "GOOCV", Some("2014-03-27"), Some("2014-04-02"), Csv),
            row(class_c, "GOOG", Some("2014-04-03"), None, Csv),
            // The migration's view (one security per ticker, open) ranks below the file's.
            row(13, "GOOG", None, None, Universe),
        ]);
        let goog = Symbol::new("GOOG").unwrap();
        let id = |n| Some(SecurityId::new(n).unwrap());
        assert_eq!(m.resolve(&goog, d("2010-01-04"), None).unwrap(), id(class_a));
        assert_eq!(m.resolve(&goog, d("2014-04-03"), None).unwrap(), id(class_c));
        assert_eq!(m.resolve(&Symbol::new("GOOGL").unwrap(), d("2014-04-02"), None).unwrap(), None);
        assert_eq!(m.ticker_of(SecurityId::new(class_c).unwrap(), d("2014-03-28")).unwrap(), "GOOCV");
        let spans = m.ticker_spans(SecurityId::new(class_c).unwrap(), d("2014-01-02"), d("2014-12-31"));
        assert_eq!(spans.len(), 2);
        assert_eq!((spans[0].1, spans[0].2, spans[1].1), (d("2014-03-27"), d("2014-04-02"), d("2014-04-03")));
    }

    #[test]
    fn two_securities_claiming_a_ticker_at_one_rank_is_an_error_naming_both() {
        let m = master(vec![
            row(21, "XYZ", Some("2020-01-01"), None, SecuritySource::Polygon),
            row(22, "XYZ", Some("2019-01-01"), Some("2020-06-30"), SecuritySource::Polygon),
        ]);
        let err = Error::from(m.resolve(&Symbol::new("XYZ").unwrap(), d("2020-03-02"), None).unwrap_err()).to_string();
        assert!(err.contains("security 21") && err.contains("security 22"), "{err}");
    }
}
