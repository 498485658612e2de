//! Read-time adjustment: the preferred row per event, split histories and back-adjustment factors.

use super::*;
use crate::reference::securities::TickerHistory;

/// For each event (symbol, ex-date, kind), the row of the best-ranked source.
fn preferred(actions: Vec<CorporateAction>, precedence: &[ActionSource]) -> Vec<CorporateAction> {
    let rank = |s: ActionSource| precedence.iter().position(|p| *p == s).unwrap_or(precedence.len());
    let mut best: BTreeMap<(Symbol, NaiveDate, ActionKind), CorporateAction> = BTreeMap::new();
    for a in actions {
        let key = (a.symbol.clone(), a.ex_date, a.kind);
        match best.get(&key) {
            Some(b) if rank(b.source) <= rank(a.source) => {}
            _ => {
                best.insert(key, a);
            }
        }
    }
    best.into_values().collect()
}

/// The source precedence recorded by the import that wrote `snapshot` (the default before any).
async fn recorded_precedence(lake: &Lake, snapshot: u64) -> Result<Vec<ActionSource>> {
    if snapshot == 0 {
        return ranking(&DEFAULT_PRECEDENCE);
    }
    let commit = lake.dataset(DATASET)?.log().read_commit(snapshot).await?;
    let listed = commit
        .and_then(|c| c.parameters.get("source_precedence").cloned())
        .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok());
    match listed {
        Some(names) => ranking(&names.iter().map(|n| n.parse()).collect::<Result<Vec<ActionSource>>>()?),
        // A snapshot written otherwise (a restore) or a vacuumed log: the default order.
        None => ranking(&DEFAULT_PRECEDENCE),
    }
}

/// The splits of some symbols: what cross-session computations need to put two sessions' prices on
/// one share basis.
#[derive(Debug, Clone, Default)]
pub struct SplitHistory {
    /// Per symbol, (ex-date, price ratio split_from / split_to), by ex-date.
    by_symbol: HashMap<Symbol, Vec<(NaiveDate, f64)>>,
    /// The `reference_corporate_actions` snapshot read.
    pub snapshot_id: u64,
}

impl SplitHistory {
    /// The splits of `symbols` (every symbol with `None`) at `as_of`, one per ex-date by source precedence.
    pub async fn load(lake: &Lake, symbols: Option<&[Symbol]>, as_of: &AsOf) -> Result<Self> {
        let (actions, snapshot_id) = read_actions(lake, symbols, as_of).await?;
        let precedence = recorded_precedence(lake, snapshot_id).await?;
        Ok(Self::from_actions(&preferred(actions, &precedence), snapshot_id))
    }

    fn from_actions(chosen: &[CorporateAction], snapshot_id: u64) -> Self {
        let splits = chosen
            .iter()
            .filter(|a| a.kind == ActionKind::Split)
            .filter_map(|a| Some((a.symbol.clone(), a.ex_date, a.split_ratio()?)));
        Self { snapshot_id, ..Self::from_splits(splits) }
    }

    /// A history of the given splits: (symbol, ex-date, price ratio split_from / split_to).
    pub fn from_splits(splits: impl IntoIterator<Item = (Symbol, NaiveDate, f64)>) -> Self {
        let mut by_symbol: HashMap<Symbol, Vec<(NaiveDate, f64)>> = HashMap::new();
        for (symbol, ex, ratio) in splits {
            by_symbol.entry(symbol).or_default().push((ex, ratio));
        }
        for v in by_symbol.values_mut() {
            v.sort_by_key(|(d, _)| *d);
        }
        Self { by_symbol, snapshot_id: 0 }
    }

    /// The product of the price ratios of `symbol`'s splits with ex-date in `(after, upto]`: multiply a
    /// price of session `after` by it to put it on the share basis of session `upto` (1.0 without splits).
    pub fn price_ratio_between(&self, symbol: &str, after: NaiveDate, upto: NaiveDate) -> f64 {
        self.by_symbol
            .get(symbol)
            .map_or(1.0, |v| v.iter().filter(|(d, _)| *d > after && *d <= upto).map(|(_, r)| r).product())
    }

    pub fn is_empty(&self) -> bool {
        self.by_symbol.is_empty()
    }

    /// Every split: (symbol, ex-date, price ratio).
    pub fn splits(&self) -> impl Iterator<Item = (&Symbol, NaiveDate, f64)> {
        self.by_symbol.iter().flat_map(|(s, v)| v.iter().map(move |(d, r)| (s, *d, *r)))
    }
}

/// A dividend whose factor could not be computed: its adjustment is left out (factor 1), and a read
/// with [`Adjustment::All`] that needs it fails ([`AdjustmentFactors::check`]).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct UnresolvedDividend {
    pub symbol: Symbol,
    pub ex_date: NaiveDate,
    pub cash_amount: f64,
    pub reason: String,
}

/// One symbol's events, by ex-date, with suffix products: index `i` holds the product of the factors
/// of events `i..`.
#[derive(Debug, Clone, Default)]
struct Events {
    dates: Vec<NaiveDate>,
    splits: Vec<f64>,
    all: Vec<f64>,
}

impl Events {
    /// From each ex-date's (split price ratio, dividend factor).
    fn new(dates: &BTreeMap<NaiveDate, (f64, f64)>) -> Self {
        let n = dates.len();
        let mut e = Events { dates: dates.keys().copied().collect(), splits: vec![1.0; n + 1], all: vec![1.0; n + 1] };
        for (i, (split, dividend)) in dates.values().enumerate().rev() {
            e.splits[i] = e.splits[i + 1] * split;
            e.all[i] = e.all[i + 1] * split * dividend;
        }
        e
    }
}

/// Back-adjustment factors of some symbols (see the module docs for the rules).
#[derive(Debug, Clone, Default)]
pub struct AdjustmentFactors {
    events: HashMap<Symbol, Events>,
    /// Each symbol's (split price ratio, dividend factor) by ex-date, the events are built from.
    per_date: HashMap<Symbol, BTreeMap<NaiveDate, (f64, f64)>>,
    unresolved: Vec<UnresolvedDividend>,
    /// The `reference_corporate_actions` snapshot read.
    pub snapshot_id: u64,
}

/// How far back before an ex-date a dividend's previous close may be (a halted symbol's last close).
const MAX_CLOSE_GAP_DAYS: i64 = 10;

impl AdjustmentFactors {
    /// Actions of `symbols` from reference_corporate_actions (at `as_of`), plus the raw closes dividends need.
    pub async fn load(lake: &Lake, symbols: &[Symbol], as_of: &AsOf) -> Result<Self> {
        let (actions, snapshot_id) = read_actions(lake, Some(symbols), as_of).await?;
        let precedence = recorded_precedence(lake, snapshot_id).await?;
        let chosen = preferred(actions, &precedence);
        let splits = SplitHistory::from_actions(&chosen, snapshot_id);
        let dividends: Vec<&CorporateAction> = chosen.iter().filter(|a| a.kind == ActionKind::CashDividend).collect();
        let closes = previous_closes(lake, &dividends, as_of).await?;
        let mut per_date: HashMap<Symbol, BTreeMap<NaiveDate, (f64, f64)>> = HashMap::new();
        for (symbol, ex, ratio) in splits.splits() {
            per_date.entry(symbol.clone()).or_default().entry(ex).or_insert((1.0, 1.0)).0 *= ratio;
        }
        let mut unresolved = Vec::new();
        for d in dividends {
            let amount = d.cash_amount.unwrap_or(0.0);
            let factor = match closes.get(&(d.symbol.clone(), d.ex_date)) {
                None => Err(format!(
                    "no close in curated_1d_bars or curated_1m_bars within {MAX_CLOSE_GAP_DAYS} days before the ex-date"
                )),
                Some(&(close_date, close)) => {
                    // On the ex-date's share basis (a split with the same ex-date).
                    let close = close * splits.price_ratio_between(&d.symbol, close_date, d.ex_date);
                    let f = 1.0 - amount / close;
                    if f.is_finite() && f > 0.0 {
                        Ok(f)
                    } else {
                        Err(format!("dividend {amount} is not below the previous close {close}"))
                    }
                }
            };
            match factor {
                Ok(f) => per_date.entry(d.symbol.clone()).or_default().entry(d.ex_date).or_insert((1.0, 1.0)).1 *= f,
                Err(reason) => {
                    tracing::warn!(symbol = %d.symbol, ex_date = %d.ex_date, %reason, "dividend left out of the adjustment");
                    unresolved.push(UnresolvedDividend {
                        symbol: d.symbol.clone(),
                        ex_date: d.ex_date,
                        cash_amount: amount,
                        reason,
                    });
                }
            }
        }
        let events = per_date.iter().map(|(symbol, dates)| (symbol.clone(), Events::new(dates))).collect();
        Ok(Self { events, per_date, unresolved, snapshot_id })
    }

    /// Factors for series that run across ticker changes: each `(key, history)` gets the events of
    /// each ticker of the history with an ex-date inside its interval, so a security's rows before a
    /// rename are adjusted for the splits after it. Rows are then adjusted by `key`.
    pub fn for_series(&self, series: &[(Symbol, TickerHistory)]) -> Self {
        let mut per_date: HashMap<Symbol, BTreeMap<NaiveDate, (f64, f64)>> = HashMap::new();
        for (key, spans) in series {
            let merged = per_date.entry(key.clone()).or_default();
            for (ticker, valid) in spans {
                let Some(dates) = self.per_date.get(ticker) else { continue };
                for (ex, factors) in dates {
                    if valid.contains(*ex) {
                        merged.insert(*ex, *factors);
                    }
                }
            }
        }
        let events = per_date.iter().map(|(symbol, dates)| (symbol.clone(), Events::new(dates))).collect();
        let spans_of = |u: &UnresolvedDividend| {
            series.iter().find_map(|(key, spans)| {
                spans
                    .iter()
                    .any(|(t, valid)| *t == u.symbol && valid.contains(u.ex_date))
                    .then(|| UnresolvedDividend { symbol: key.clone(), ..u.clone() })
            })
        };
        let unresolved = self.unresolved.iter().filter_map(spans_of).collect();
        Self { events, per_date, unresolved, snapshot_id: self.snapshot_id }
    }

    /// Multiplier for prices of `symbol`'s session `date` (1.0 when nothing after it, or Adjustment::None).
    pub fn price_factor(&self, symbol: &str, date: NaiveDate, adjust: Adjustment) -> f64 {
        let Some(e) = self.events.get(symbol) else { return 1.0 };
        let i = e.dates.partition_point(|d| *d <= date);
        match adjust {
            Adjustment::None => 1.0,
            Adjustment::Splits => e.splits[i],
            Adjustment::All => e.all[i],
        }
    }

    /// Multiplier for volumes of `symbol`'s session `date`: the inverse of the split price factor
    /// (dividends do not change share counts).
    pub fn volume_factor(&self, symbol: &str, date: NaiveDate, adjust: Adjustment) -> f64 {
        match adjust {
            Adjustment::None => 1.0,
            Adjustment::Splits | Adjustment::All => 1.0 / self.price_factor(symbol, date, Adjustment::Splits),
        }
    }

    /// Dividends left out of the factors, and why.
    pub fn unresolved(&self) -> &[UnresolvedDividend] {
        &self.unresolved
    }

    /// Fails when `adjust` needs a dividend whose factor is unknown: one of `symbols` going ex after `from`.
    pub fn check(&self, symbols: &[Symbol], from: NaiveDate, adjust: Adjustment) -> Result<()> {
        if adjust != Adjustment::All {
            return Ok(());
        }
        match self.unresolved.iter().find(|u| u.ex_date > from && symbols.contains(&u.symbol)) {
            None => Ok(()),
            Some(u) => Err(Error::invalid(format!(
                "cannot adjust {} for its dividend of {} with ex-date {}: {} (curate the session before it, or use --adjust splits)",
                u.symbol, u.cash_amount, u.ex_date, u.reason
            ))),
        }
    }

    /// `batch` with its price columns (open, high, low, close, vwap: those present) multiplied by the
    /// price factor and `volume` by the volume factor of each row's `symbol` and `date`.
    pub fn adjust_batch(&self, batch: &RecordBatch, adjust: Adjustment) -> Result<RecordBatch> {
        if adjust == Adjustment::None || batch.num_rows() == 0 {
            return Ok(batch.clone());
        }
        let symbol = batch
            .column_by_name("symbol")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("adjustment: rows have no utf8 'symbol' column"))?;
        let date = batch
            .column_by_name("date")
            .and_then(|c| c.as_primitive_opt::<Date32Type>())
            .ok_or_else(|| Error::invalid("adjustment: rows have no date column 'date'"))?;
        let mut price = Vec::with_capacity(batch.num_rows());
        let mut volume = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            let d = NaiveDate::from_epoch_days(date.value(i))
                .ok_or_else(|| Error::invalid(format!("adjustment: date {} out of range", date.value(i))))?;
            price.push(self.price_factor(symbol.value(i), d, adjust));
            volume.push(self.volume_factor(symbol.value(i), d, adjust));
        }
        let (price, volume) = (Float64Array::from(price), Float64Array::from(volume));
        let schema = batch.schema();
        let mut columns = batch.columns().to_vec();
        for (i, field) in schema.fields().iter().enumerate() {
            let factor = match field.name().as_str() {
                "open" | "high" | "low" | "close" | "vwap" => &price,
                "volume" => &volume,
                _ => continue,
            };
            let values = arrow::compute::cast(&columns[i], &DataType::Float64)?;
            let scaled = arrow::compute::kernels::numeric::mul(&values, factor)?;
            columns[i] = arrow::compute::cast(&scaled, field.data_type())?;
        }
        Ok(RecordBatch::try_new(schema, columns)?)
    }
}

/// For each dividend, the raw close (and its date) of the last session before its ex-date within
/// [`MAX_CLOSE_GAP_DAYS`]: from `curated_1d_bars`, else the last regular-session minute of
/// `curated_1m_bars` (a daily bar wins on the same date).
async fn previous_closes(
    lake: &Lake,
    dividends: &[&CorporateAction],
    as_of: &AsOf,
) -> Result<HashMap<(Symbol, NaiveDate), (NaiveDate, f64)>> {
    let mut out = HashMap::new();
    if dividends.is_empty() {
        return Ok(out);
    }
    let symbols: Vec<Symbol> =
        dividends.iter().map(|d| d.symbol.clone()).collect::<BTreeSet<_>>().into_iter().collect();
    let lo = dividends.iter().map(|d| d.ex_date).min().unwrap_or_default() - Duration::days(MAX_CLOSE_GAP_DAYS);
    let hi = dividends.iter().map(|d| d.ex_date).max().unwrap_or_default();
    let want: Vec<String> =
        dividends.iter().map(|d| format!("({}, DATE '{}')", crate::query::sql_string(&d.symbol), d.ex_date)).collect();
    let list = crate::query::sql_strings(&symbols);
    // Daily bars are stamped 00:00 New York, which is the same date in UTC (04:00 or 05:00).
    let sql = format!(
        "WITH want(symbol, ex_date) AS (VALUES {want}),
         bars AS (
           SELECT symbol, DATE '1970-01-01' + CAST(floor(epoch_us(ts) / 86400000000) AS INTEGER) AS d, close, 0 AS pref
           FROM curated_1d_bars WHERE symbol IN ({list})
           UNION ALL
           SELECT symbol, CAST(date AS DATE) AS d, arg_max(close, ts) AS close, 1 AS pref
           FROM curated_1m_bars WHERE is_rth AND symbol IN ({list}) AND date BETWEEN DATE '{lo}' AND DATE '{hi}'
           GROUP BY symbol, date
         )
         SELECT w.symbol, w.ex_date, arg_max(b.d, (b.d - DATE '1970-01-01') * 2 - b.pref) AS close_date,
                arg_max(b.close, (b.d - DATE '1970-01-01') * 2 - b.pref) AS close
         FROM want w JOIN bars b ON b.symbol = w.symbol AND b.d < w.ex_date AND b.d >= w.ex_date - {MAX_CLOSE_GAP_DAYS}
         GROUP BY w.symbol, w.ex_date",
        want = want.join(", ")
    );
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    for b in &batches {
        let as_type = |i: usize, t: &DataType| arrow::compute::cast(b.column(i), t);
        let (symbol, ex, close_date, close) = (
            as_type(0, &DataType::Utf8)?,
            as_type(1, &DataType::Date32)?,
            as_type(2, &DataType::Date32)?,
            as_type(3, &DataType::Float64)?,
        );
        let (symbol, ex, close_date, close) = (
            symbol.as_string::<i32>(),
            ex.as_primitive::<Date32Type>(),
            close_date.as_primitive::<Date32Type>(),
            close.as_primitive::<Float64Type>(),
        );
        for i in 0..b.num_rows() {
            if close.is_null(i) {
                continue;
            }
            if let (Some(ex), Some(cd)) =
                (NaiveDate::from_epoch_days(ex.value(i)), NaiveDate::from_epoch_days(close_date.value(i)))
            {
                out.insert((Symbol::new(symbol.value(i))?, ex), (cd, close.value(i)));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    fn factors(events: &[(&str, &str, f64, f64)]) -> AdjustmentFactors {
        let mut per: HashMap<Symbol, BTreeMap<NaiveDate, (f64, f64)>> = HashMap::new();
        for (s, e, split, div) in events {
            per.entry(Symbol::new(s).unwrap()).or_default().insert(d(e), (*split, *div));
        }
        let events = per.iter().map(|(s, dates)| (s.clone(), Events::new(dates))).collect();
        AdjustmentFactors { events, per_date: per, unresolved: Vec::new(), snapshot_id: 0 }
    }

    #[test]
    fn a_series_across_a_rename_takes_both_tickers_events() {
        use crate::reference::securities::Interval;
        // OLD split 2:1 on 2020-03-02 (before the rename); NEW 3:1 on 2023-01-03 (after it).
        let f = factors(&[
            ("OLD", "2020-03-02", 0.5, 1.0),
            ("NEW", "2023-01-03", 1.0 / 3.0, 1.0),
            ("NEW", "2019-01-02", 0.1, 1.0),
        ]);
        let (old, new) = (Symbol::new("OLD").unwrap(), Symbol::new("NEW").unwrap());
        let spans = vec![
            (old, Interval::new(None, Some(d("2022-06-08")))),
            (new.clone(), Interval::new(Some(d("2022-06-09")), None)),
        ];
        let series = f.for_series(&[(new, spans)]);
        // A 2019 row of the series: both splits after it; NEW's 2019 event belongs to another security.
        let got = series.price_factor("NEW", d("2019-06-03"), Adjustment::Splits);
        assert!((got - 0.5 / 3.0).abs() < 1e-12, "{got}");
        assert!((series.price_factor("NEW", d("2022-06-10"), Adjustment::Splits) - 1.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn factors_compound_over_later_events_only() {
        // A 7-for-1 on 2024-06-10 and a dividend factor 0.99 on 2024-03-01.
        let f = factors(&[("A", "2024-06-10", 1.0 / 7.0, 1.0), ("A", "2024-03-01", 1.0, 0.99)]);
        let all = Adjustment::All;
        assert_eq!(f.price_factor("A", d("2024-06-10"), all), 1.0, "the ex-date itself is on the new basis");
        assert!((f.price_factor("A", d("2024-06-07"), all) - 1.0 / 7.0).abs() < 1e-15);
        assert!((f.price_factor("A", d("2024-02-29"), all) - 0.99 / 7.0).abs() < 1e-15);
        assert!((f.price_factor("A", d("2024-02-29"), Adjustment::Splits) - 1.0 / 7.0).abs() < 1e-15);
        assert!((f.volume_factor("A", d("2024-02-29"), all) - 7.0).abs() < 1e-12, "dividends leave volume alone");
        assert_eq!(f.price_factor("A", d("2024-02-29"), Adjustment::None), 1.0);
        assert_eq!(f.price_factor("B", d("2024-02-29"), all), 1.0);
        // The research notes' example: 700 before, 101 on the ex-date.
        let ret = (101.0f64 / (700.0 * f.price_factor("A", d("2024-06-07"), Adjustment::Splits))).ln();
        assert!((ret - 0.00995).abs() < 5e-6, "{ret}");
    }

    #[test]
    fn precedence_picks_one_row_per_event() {
        let poly = CorporateAction::split(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Polygon, 1.0, 2.0);
        let csv = CorporateAction::split(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Csv, 1.0, 3.0);
        let alp = CorporateAction::split(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Alpaca, 1.0, 4.0);
        let chosen = preferred(vec![poly.clone(), csv.clone(), alp.clone()], &ranking(&[]).unwrap());
        assert_eq!(chosen, vec![csv.clone()], "default: csv first");
        let chosen = preferred(vec![poly.clone(), csv, alp.clone()], &ranking(&[ActionSource::Alpaca]).unwrap());
        assert_eq!(chosen, vec![alp]);
        assert_eq!(
            ranking(&[ActionSource::Polygon]).unwrap(),
            [ActionSource::Polygon, ActionSource::Csv, ActionSource::Alpaca]
        );
        assert!(ranking(&[ActionSource::Csv, ActionSource::Csv]).unwrap_err().to_string().contains("twice"));
    }
}
