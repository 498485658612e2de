//! [`TickerPlan`]: which ticker a vendor is asked for, per requested symbol and date.

use super::*;

/// For each requested symbol, the security it is about ([`SecurityMaster::security_for`]) and so
/// the ticker to ask a vendor for on each date: the security's ticker then, or none (not listed yet,
/// or delisted). A symbol the master does not know is asked for as itself on every date; one it knows
/// but that named no security in the range (META in 2015) is asked for on none.
pub struct TickerPlan<'m> {
    master: &'m SecurityMaster,
    requested: Vec<Symbol>,
    securities: HashMap<Symbol, SecurityId>,
}

impl<'m> TickerPlan<'m> {
    /// The plan for `symbols` over `[start, end]`.
    pub fn new(master: &'m SecurityMaster, symbols: &[Symbol], start: NaiveDate, end: NaiveDate) -> Result<Self> {
        let mut securities = HashMap::new();
        for s in symbols {
            if let Some(id) = master.security_for(s, start, end, None)? {
                securities.insert(s.clone(), id);
            }
        }
        Ok(Self { master, requested: symbols.to_vec(), securities })
    }

    /// The security `requested` is about, when the master knows it.
    pub fn security(&self, requested: &Symbol) -> Option<SecurityId> {
        self.securities.get(requested).copied()
    }

    /// The ticker to ask for `requested`'s bars of `date`.
    pub fn ticker_on(&self, requested: &Symbol, date: NaiveDate) -> Option<Symbol> {
        match self.securities.get(requested) {
            Some(id) => self.master.ticker_of(*id, date).cloned(),
            None if self.master.knows(requested) => None,
            None => Some(requested.clone()),
        }
    }

    /// Every ticker asked for on `dates`, with its dates.
    pub fn asked(&self, dates: &[NaiveDate]) -> BTreeMap<Symbol, BTreeSet<NaiveDate>> {
        let mut out: BTreeMap<Symbol, BTreeSet<NaiveDate>> = BTreeMap::new();
        for requested in self.requested() {
            for d in dates {
                if let Some(t) = self.ticker_on(requested, *d) {
                    out.entry(t).or_default().insert(*d);
                }
            }
        }
        out
    }

    /// The requested symbols not asked for as themselves on every one of `dates`, with the tickers
    /// asked and their first and last dates: `FB 2022-01-03..2022-06-08, META 2022-06-09..2022-06-30`
    /// (`nothing` when none).
    pub fn renamed(&self, dates: &[NaiveDate]) -> BTreeMap<Symbol, String> {
        let mut out = BTreeMap::new();
        for requested in self.requested() {
            let mut runs: Vec<(Symbol, NaiveDate, NaiveDate)> = Vec::new();
            let mut asked = 0;
            for d in dates {
                let Some(t) = self.ticker_on(requested, *d) else { continue };
                asked += 1;
                match runs.last_mut() {
                    Some(run) if run.0 == t => run.2 = *d,
                    _ => runs.push((t, *d, *d)),
                }
            }
            let as_itself = asked == dates.len() && runs.iter().all(|r| &r.0 == requested);
            if !as_itself {
                let text: Vec<String> = runs.iter().map(|(t, a, b)| format!("{t} {a}..{b}")).collect();
                out.insert(requested.clone(), if text.is_empty() { "nothing".into() } else { text.join(", ") });
            }
        }
        out
    }

    fn requested(&self) -> impl Iterator<Item = &Symbol> {
        self.requested.iter()
    }
}
