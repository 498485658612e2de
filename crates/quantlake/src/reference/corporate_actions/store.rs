//! Imports: a source's rows upserted into `reference_corporate_actions`, and reads of the stored rows.

use super::*;

/// What to import.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub source: ActionSource,
    /// CSV: the file.
    pub path: Option<PathBuf>,
    /// Only these symbols. Vendors: default the active universe; CSV: default every row.
    pub symbols: Option<Vec<Symbol>>,
    /// Only ex-dates in this range (inclusive).
    pub start: Option<NaiveDate>,
    pub end: Option<NaiveDate>,
}

/// The vendor settings an import may need.
#[derive(Debug, Clone, Copy)]
pub struct Vendors<'a> {
    pub polygon: &'a PolygonSettings,
    pub alpaca: &'a AlpacaSettings,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportReport {
    pub source: ActionSource,
    pub origin: String,
    /// Rows the source returned.
    pub fetched: usize,
    /// Rows left out, by reason (another symbol than asked for, ex-date outside the range, no ex-date).
    pub skipped: BTreeMap<String, usize>,
    /// Rows of one key the source returned more than once: identical ones are kept once, dividends
    /// with different amounts on one ex-date are summed (two dividends going ex together).
    pub merged: usize,
    /// Distinct rows written: new keys, and keys whose stored row was replaced.
    pub rows: usize,
    pub inserted: usize,
    pub replaced: usize,
    pub splits: usize,
    pub dividends: usize,
    pub symbols: usize,
    /// The snapshot written; `None` when there was nothing to write.
    pub snapshot_id: Option<u64>,
}

/// Imports corporate actions from `request.source` and upserts them.
pub async fn import(
    lake: &Lake,
    settings: &CorporateActionSettings,
    vendors: Vendors<'_>,
    request: &ImportRequest,
) -> Result<ImportReport> {
    let precedence = ranking(&settings.source_precedence)?;
    if let (Some(s), Some(e)) = (request.start, request.end)
        && e < s
    {
        return Err(Error::invalid(format!("end {e} is before start {s}")));
    }
    if request.symbols.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::invalid("no symbols"));
    }
    if request.source != ActionSource::Csv && request.path.is_some() {
        return Err(Error::invalid(format!("--path is for --source csv, not {}", request.source)));
    }
    let (fetched, origin, mut skipped) = match request.source {
        ActionSource::Csv => {
            let path = request.path.as_deref().ok_or_else(|| Error::invalid("--source csv needs --path FILE"))?;
            (read_csv(path)?, path.display().to_string(), BTreeMap::new())
        }
        ActionSource::Polygon => {
            let symbols = symbols_or_universe(lake, request.symbols.as_deref()).await?;
            let (rows, origin) = fetch_polygon(vendors.polygon, &symbols, request.start, request.end).await?;
            (rows, origin, BTreeMap::new())
        }
        ActionSource::Alpaca => {
            let symbols = symbols_or_universe(lake, request.symbols.as_deref()).await?;
            let end = request.end.unwrap_or_else(|| Utc::now().date_naive());
            let start = request.start.unwrap_or(end - Duration::days(settings.alpaca_default_days.max(1)));
            fetch_alpaca(vendors.alpaca, &symbols, start, end).await?
        }
    };
    let count = fetched.len();
    let wanted: Option<HashSet<&str>> = request.symbols.as_ref().map(|l| l.iter().map(Symbol::as_str).collect());
    let mut kept = Vec::with_capacity(fetched.len());
    for a in fetched {
        let reason = if wanted.as_ref().is_some_and(|w| !w.contains(a.symbol.as_str())) {
            Some("other symbol")
        } else if request.start.is_some_and(|s| a.ex_date < s) || request.end.is_some_and(|e| a.ex_date > e) {
            Some("ex_date outside the range")
        } else {
            None
        };
        match reason {
            Some(r) => *skipped.entry(r.to_string()).or_default() += 1,
            None => kept.push(a),
        }
    }
    let imported_at = Utc::now().timestamp_micros();
    let (rows, merged) = merge_duplicates(kept)?;
    let rows: Vec<CorporateAction> =
        rows.into_iter().map(|a| CorporateAction { origin: origin.clone(), imported_at, ..a }).collect();
    let mut report = ImportReport {
        source: request.source,
        origin,
        fetched: count,
        skipped,
        merged,
        rows: rows.len(),
        inserted: 0,
        replaced: 0,
        splits: rows.iter().filter(|a| a.kind == ActionKind::Split).count(),
        dividends: rows.iter().filter(|a| a.kind == ActionKind::CashDividend).count(),
        symbols: rows.iter().map(|a| a.symbol.as_str()).collect::<BTreeSet<_>>().len(),
        snapshot_id: None,
    };
    if rows.is_empty() {
        return Ok(report);
    }
    let (stored, _) = read_actions(lake, None, &AsOf::latest()).await?;
    let stored: HashSet<Key> = stored.iter().map(CorporateAction::key).collect();
    report.replaced = rows.iter().filter(|a| stored.contains(&a.key())).count();
    report.inserted = rows.len() - report.replaced;
    report.snapshot_id = Some(upsert(lake, &rows, &precedence, request.source).await?);
    Ok(report)
}

/// `symbols`, or the active universe (a vendor import needs a list).
async fn symbols_or_universe(lake: &Lake, symbols: Option<&[Symbol]>) -> Result<Vec<Symbol>> {
    if let Some(list) = symbols {
        return Ok(list.to_vec());
    }
    let active = crate::universe::active_symbols(lake).await?;
    if active.is_empty() {
        return Err(Error::invalid("no symbols: pass --symbols or rebuild the universe (quantlake universe rebuild)"));
    }
    Ok(active)
}

/// Rows of one key collapse: identical rows (or rows with the same vendor id) are one; cash dividends
/// with different amounts on one ex-date are summed; splits with different ratios are an error.
fn merge_duplicates(rows: Vec<CorporateAction>) -> Result<(Vec<CorporateAction>, usize)> {
    let mut by_key: BTreeMap<Key, CorporateAction> = BTreeMap::new();
    let mut merged = 0;
    for a in rows {
        let Some(old) = by_key.get_mut(&a.key()) else {
            by_key.insert(a.key(), a);
            continue;
        };
        merged += 1;
        let same_id = old.vendor_id.is_some() && old.vendor_id == a.vendor_id;
        if same_id || *old == a {
            continue;
        }
        match a.kind {
            ActionKind::Split if old.split_ratio() == a.split_ratio() => {}
            ActionKind::Split => {
                return Err(Error::invalid(format!(
                    "{} lists two different splits of {} with ex-date {}: {}:{} and {}:{}",
                    a.source,
                    a.symbol,
                    a.ex_date,
                    old.split_from.unwrap_or(f64::NAN),
                    old.split_to.unwrap_or(f64::NAN),
                    a.split_from.unwrap_or(f64::NAN),
                    a.split_to.unwrap_or(f64::NAN)
                )));
            }
            ActionKind::CashDividend => {
                old.cash_amount = Some(old.cash_amount.unwrap_or(0.0) + a.cash_amount.unwrap_or(0.0));
                old.vendor_id = match (old.vendor_id.take(), a.vendor_id) {
                    (Some(x), Some(y)) => Some(format!("{x},{y}")),
                    (x, y) => x.or(y),
                };
                if old.dividend_type != a.dividend_type {
                    old.dividend_type = None;
                }
            }
        }
    }
    Ok((by_key.into_values().collect(), merged))
}

/// Writes `rows` (distinct keys) replacing stored rows with the same keys, in one snapshot; the
/// removal is re-run on a concurrent import's newer content, so two imports never lose each other's rows.
async fn upsert(
    lake: &Lake,
    rows: &[CorporateAction],
    precedence: &[ActionSource],
    source: ActionSource,
) -> Result<u64> {
    let ds = lake.dataset(DATASET)?;
    let batch = to_batch(ds.contract(), rows)?;
    let keys: Arc<HashSet<Key>> = Arc::new(rows.iter().map(CorporateAction::key).collect());
    let replaced = move |b: &RecordBatch| -> Result<BooleanArray> {
        let text = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>().cloned())
                .ok_or_else(|| Error::invalid(format!("{DATASET}: no utf8 column '{name}'")))
        };
        let (symbol, kind, source) = (text("symbol")?, text("kind")?, text("source")?);
        let ex = b
            .column_by_name("ex_date")
            .and_then(|c| c.as_primitive_opt::<Date32Type>().cloned())
            .ok_or_else(|| Error::invalid(format!("{DATASET}: no date column 'ex_date'")))?;
        (0..b.num_rows())
            .map(|i| {
                let (Ok(kind), Ok(source), Some(ex)) = (
                    kind.value(i).parse::<ActionKind>(),
                    source.value(i).parse::<ActionSource>(),
                    NaiveDate::from_epoch_days(ex.value(i)),
                ) else {
                    return Ok(Some(false)); // a row of a kind this build does not know stays
                };
                Ok(Some(keys.contains(&(Symbol::new(symbol.value(i))?, ex, kind, source))))
            })
            .collect()
    };
    let precedence: Vec<&str> = precedence.iter().map(|s| s.name()).collect();
    let done = ds
        .write(vec![batch])
        .removing_where(Arc::new(replaced))
        .covering([PartitionKey::All])
        .operation("corporate_actions_import")
        .parameter("source", source)
        .parameter("source_precedence", &precedence)
        .execute()
        .await?;
    Ok(done.snapshot_id)
}

fn to_batch(contract: &crate::contract::DatasetContract, rows: &[CorporateAction]) -> Result<RecordBatch> {
    let text =
        |f: fn(&CorporateAction) -> Option<&str>| -> ArrayRef { Arc::new(StringArray::from_iter(rows.iter().map(f))) };
    let float =
        |f: fn(&CorporateAction) -> Option<f64>| -> ArrayRef { Arc::new(Float64Array::from_iter(rows.iter().map(f))) };
    let date = |f: fn(&CorporateAction) -> Option<NaiveDate>| -> ArrayRef {
        Arc::new(Date32Array::from_iter(rows.iter().map(|r| f(r).map(|d| d.to_epoch_days()))))
    };
    contract.batch_from(|name| {
        Some(match name {
            "symbol" => text(|r| Some(r.symbol.as_str())),
            "ex_date" => date(|r| Some(r.ex_date)),
            "kind" => text(|r| Some(r.kind.name())),
            "source" => text(|r| Some(r.source.name())),
            "split_from" => float(|r| r.split_from),
            "split_to" => float(|r| r.split_to),
            "cash_amount" => float(|r| r.cash_amount),
            "currency" => text(|r| r.currency.as_deref()),
            "dividend_type" => text(|r| r.dividend_type.as_deref()),
            "frequency" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.frequency))),
            "declaration_date" => date(|r| r.declaration_date),
            "record_date" => date(|r| r.record_date),
            "pay_date" => date(|r| r.pay_date),
            "vendor_id" => text(|r| r.vendor_id.as_deref()),
            "origin" => text(|r| Some(r.origin.as_str())),
            "imported_at" => Arc::new(
                TimestampMicrosecondArray::from_iter_values(rows.iter().map(|r| r.imported_at)).with_timezone("UTC"),
            ),
            _ => return None,
        })
    })
}

/// The stored actions of `symbols` (all with `None`) at `as_of`, sorted by symbol, ex-date, kind and
/// source, and the snapshot read.
pub async fn read_actions(
    lake: &Lake,
    symbols: Option<&[Symbol]>,
    as_of: &AsOf,
) -> Result<(Vec<CorporateAction>, u64)> {
    let filter = match symbols {
        Some([]) => return Ok((Vec::new(), 0)),
        Some(list) => format!("WHERE symbol IN ({})", crate::query::sql_strings(list)),
        None => String::new(),
    };
    let sql = format!(
        "SELECT symbol, ex_date, kind, source, split_from, split_to, cash_amount, currency, dividend_type, frequency, \
         declaration_date, record_date, pay_date, vendor_id, origin, epoch_us(imported_at) AS imported_at \
         FROM {DATASET} {filter} ORDER BY symbol, ex_date, kind, source"
    );
    let engine = QueryEngine::open_for_sql(lake, as_of, &sql).await?;
    let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
    let snapshot = engine.snapshots.get(DATASET).copied().unwrap_or(0);
    Ok((from_batches(&batches)?, snapshot))
}

fn from_batches(batches: &[RecordBatch]) -> Result<Vec<CorporateAction>> {
    let mut out = Vec::new();
    for b in batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .ok_or_else(|| Error::SchemaMismatch { dataset: DATASET.into(), detail: format!("no column '{name}'") })
        };
        let text = |name: &str| -> Result<StringArray> {
            Ok(arrow::compute::cast(col(name)?, &DataType::Utf8)?.as_string::<i32>().clone())
        };
        let float = |name: &str| -> Result<Float64Array> {
            Ok(arrow::compute::cast(col(name)?, &DataType::Float64)?.as_primitive::<Float64Type>().clone())
        };
        let int = |name: &str| -> Result<Int64Array> {
            Ok(arrow::compute::cast(col(name)?, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
        };
        let date = |name: &str| -> Result<Date32Array> {
            Ok(arrow::compute::cast(col(name)?, &DataType::Date32)?.as_primitive::<Date32Type>().clone())
        };
        let (symbol, kind, source, currency, dividend_type, vendor_id, origin) = (
            text("symbol")?,
            text("kind")?,
            text("source")?,
            text("currency")?,
            text("dividend_type")?,
            text("vendor_id")?,
            text("origin")?,
        );
        let (split_from, split_to, cash) = (float("split_from")?, float("split_to")?, float("cash_amount")?);
        let (frequency, imported_at) = (int("frequency")?, int("imported_at")?);
        let (ex, declared, record, pay) =
            (date("ex_date")?, date("declaration_date")?, date("record_date")?, date("pay_date")?);
        let opt_text = |a: &StringArray, i: usize| a.is_valid(i).then(|| a.value(i).to_string());
        let opt_float = |a: &Float64Array, i: usize| a.is_valid(i).then(|| a.value(i));
        let opt_date =
            |a: &Date32Array, i: usize| if a.is_valid(i) { NaiveDate::from_epoch_days(a.value(i)) } else { None };
        for i in 0..b.num_rows() {
            let ex_date = opt_date(&ex, i)
                .ok_or_else(|| Error::invalid(format!("{DATASET}: row of {} has no ex_date", symbol.value(i))))?;
            out.push(CorporateAction {
                symbol: Symbol::new(symbol.value(i))?,
                ex_date,
                kind: kind.value(i).parse()?,
                source: source.value(i).parse()?,
                split_from: opt_float(&split_from, i),
                split_to: opt_float(&split_to, i),
                cash_amount: opt_float(&cash, i),
                currency: opt_text(&currency, i),
                dividend_type: opt_text(&dividend_type, i),
                frequency: frequency.is_valid(i).then(|| frequency.value(i)),
                declaration_date: opt_date(&declared, i),
                record_date: opt_date(&record, i),
                pay_date: opt_date(&pay, i),
                vendor_id: opt_text(&vendor_id, i),
                origin: origin.value(i).to_string(),
                imported_at: imported_at.value(i),
            });
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

    #[test]
    fn duplicates_merge_or_fail() {
        let a = CorporateAction::dividend(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Polygon, 0.5);
        let b = CorporateAction::dividend(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Polygon, 0.25);
        let (rows, merged) = merge_duplicates(vec![a.clone(), a.clone(), b]).unwrap();
        assert_eq!((rows.len(), merged), (1, 2));
        assert_eq!(
            rows[0].cash_amount,
            Some(0.75),
            "two dividends going ex together are summed; the identical copy is not"
        );
        let s1 = CorporateAction::split(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Csv, 1.0, 2.0);
        let s2 = CorporateAction::split(Symbol::from_static("A"), d("2024-01-02"), ActionSource::Csv, 1.0, 3.0);
        assert!(merge_duplicates(vec![s1, s2]).unwrap_err().to_string().contains("two different splits"));
    }
}
