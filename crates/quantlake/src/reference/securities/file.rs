//! Security master files (CSV or Parquet), in one of two forms told apart by their columns:
//!
//! - **Ticker intervals** (the form of a map file or a vendor's security master): one row per ticker
//!   interval, `ticker` required, `valid_from` / `valid_to` (inclusive dates; empty: open), and any of
//!   `security_id`, `key`, `composite_figi`, `share_class_figi`, `cik`, `con_id`, `exchange`, `kind`,
//!   `name`, `primary_exchange`, `currency`, `listed`, `delisted`, `delisted_reason`. Rows are one
//!   security when they share a `security_id`, else a `key` (any label the file uses), else a
//!   `composite_figi`, `share_class_figi` or `con_id`; a row with none of them is a security alone.
//!   The rows of one security must agree on its attributes (or leave them empty).
//! - **Symbol changes** (the form of a vendor's "symbol changes" list): `date`, `old_ticker`,
//!   `new_ticker`: the security called `old_ticker` trades as `new_ticker` from `date` (the first
//!   session on or after it). Changes chain in date order, so `A -> B` then `B -> C` is one security.
//!
//! Any other column, a bad value or a conflict fails the import with every problem found, each
//! naming its line (CSV, the header is line 1) or row (Parquet).

use std::path::Path;

use super::*;
use crate::calendar::NyseCalendar;
use crate::reference::text_rows::{check_required, read_text_rows};

/// How many problems an error lists.
const MAX_PROBLEMS: usize = 20;

const INTERVAL_COLUMNS: &[(&str, &[&str])] = &[
    ("ticker", &["ticker", "symbol"]),
    ("valid_from", &["valid_from", "start_date", "from"]),
    ("valid_to", &["valid_to", "end_date", "to"]),
    ("security_id", &["security_id"]),
    ("key", &["key"]),
    ("composite_figi", &["composite_figi", "figi"]),
    ("share_class_figi", &["share_class_figi"]),
    ("cik", &["cik"]),
    ("con_id", &["con_id", "conid"]),
    ("exchange", &["exchange"]),
    ("kind", &["kind", "type"]),
    ("name", &["name"]),
    ("primary_exchange", &["primary_exchange"]),
    ("currency", &["currency"]),
    ("listed", &["listed", "list_date"]),
    ("delisted", &["delisted", "delisted_date"]),
    ("delisted_reason", &["delisted_reason", "reason"]),
];

const CHANGE_COLUMNS: &[(&str, &[&str])] = &[
    ("date", &["date", "change_date"]),
    ("old_ticker", &["old_ticker", "old_symbol"]),
    ("new_ticker", &["new_ticker", "new_symbol"]),
    ("exchange", &["exchange"]),
    ("name", &["name"]),
];

/// The securities a file delivers.
pub fn read_file(path: &Path) -> Result<Vec<Delivered>> {
    let origin = path.display().to_string();
    let mut rows: Vec<(String, BTreeMap<&'static str, String>)> = Vec::new();
    let columns = read_text_rows(
        path,
        None,
        |headers| resolve(&origin, headers),
        |columns, at, values| {
            let row = columns
                .iter()
                .zip(values)
                .filter(|(_, v)| !v.trim().is_empty())
                .map(|(c, v)| (*c, v.trim().to_string()))
                .collect();
            rows.push((at.to_string(), row));
        },
    )?;
    let changes = columns.contains(&"old_ticker");
    let mut problems = Vec::new();
    let delivered =
        if changes { from_changes(&origin, rows, &mut problems) } else { from_intervals(&origin, rows, &mut problems) };
    if !problems.is_empty() {
        let n = problems.len();
        let shown: Vec<String> = problems.into_iter().take(MAX_PROBLEMS).collect();
        return Err(Error::invalid(format!(
            "{origin}: {n} problem(s), nothing imported: {}{}",
            shown.join("; "),
            if n > MAX_PROBLEMS { "; ..." } else { "" }
        )));
    }
    if delivered.is_empty() {
        return Err(Error::invalid(format!("{origin}: no rows")));
    }
    Ok(delivered)
}

/// Each header's canonical column, in the form the headers say.
fn resolve(origin: &str, headers: &[String]) -> Result<Vec<&'static str>> {
    let lower: Vec<String> = headers.iter().map(|h| h.trim().to_ascii_lowercase()).collect();
    let changes = lower.iter().any(|h| CHANGE_COLUMNS[1].1.contains(&h.as_str()));
    let (known, required): (&[(&str, &[&str])], &[&str]) =
        if changes { (CHANGE_COLUMNS, &["date", "old_ticker", "new_ticker"]) } else { (INTERVAL_COLUMNS, &["ticker"]) };
    let mut out = Vec::with_capacity(headers.len());
    for (raw, h) in headers.iter().zip(&lower) {
        let Some((canonical, _)) = known.iter().find(|(_, names)| names.contains(&h.as_str())) else {
            return Err(Error::invalid(format!(
                "{origin}: column '{raw}' is not a {} column (known: {})",
                if changes { "symbol changes" } else { "ticker intervals" },
                known.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")
            )));
        };
        if out.contains(canonical) {
            return Err(Error::invalid(format!("{origin}: column '{raw}' repeats another column ({canonical})")));
        }
        out.push(*canonical);
    }
    let missing: Vec<&str> = required.iter().copied().filter(|r| !out.contains(r)).collect();
    check_required(origin, &missing, headers)?;
    Ok(out)
}

type Row = BTreeMap<&'static str, String>;

fn date(row: &Row, column: &str) -> std::result::Result<Option<NaiveDate>, String> {
    row.get(column)
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d").map_err(|_| format!("{column} '{v}' is not a date (YYYY-MM-DD)"))
        })
        .transpose()
}

fn ticker(row: &Row, column: &str) -> std::result::Result<Symbol, String> {
    let v = row.get(column).ok_or_else(|| format!("empty {column}"))?;
    Symbol::new(v).map_err(|e| format!("{column}: {e}"))
}

fn attributes(row: &Row) -> std::result::Result<Attributes, String> {
    let text = |c: &str| row.get(c).cloned();
    Ok(Attributes {
        kind: text("kind"),
        name: text("name"),
        composite_figi: text("composite_figi"),
        share_class_figi: text("share_class_figi"),
        cik: text("cik"),
        con_id: row
            .get("con_id")
            .map(|v| v.parse::<i64>().map_err(|_| format!("con_id '{v}' is not an integer")))
            .transpose()?,
        primary_exchange: text("primary_exchange"),
        currency: text("currency"),
        listed: date(row, "listed")?,
        delisted: date(row, "delisted")?,
        delisted_reason: text("delisted_reason"),
    })
}

/// `into` with `from`'s values filled in; a value both give differently is a problem.
fn merge(into: &mut Attributes, from: Attributes) -> std::result::Result<(), String> {
    fn one<T: PartialEq + std::fmt::Debug>(
        name: &str,
        a: &mut Option<T>,
        b: Option<T>,
    ) -> std::result::Result<(), String> {
        match (a.as_ref(), b) {
            (Some(x), Some(y)) if *x != y => {
                Err(format!("{name} {y:?} differs from {x:?} on another row of the security"))
            }
            (None, y) => {
                *a = y;
                Ok(())
            }
            _ => Ok(()),
        }
    }
    one("kind", &mut into.kind, from.kind)?;
    one("name", &mut into.name, from.name)?;
    one("composite_figi", &mut into.composite_figi, from.composite_figi)?;
    one("share_class_figi", &mut into.share_class_figi, from.share_class_figi)?;
    one("cik", &mut into.cik, from.cik)?;
    one("con_id", &mut into.con_id, from.con_id)?;
    one("primary_exchange", &mut into.primary_exchange, from.primary_exchange)?;
    one("currency", &mut into.currency, from.currency)?;
    one("listed", &mut into.listed, from.listed)?;
    one("delisted", &mut into.delisted, from.delisted)?;
    one("delisted_reason", &mut into.delisted_reason, from.delisted_reason)
}

fn from_intervals(origin: &str, rows: Vec<(String, Row)>, problems: &mut Vec<String>) -> Vec<Delivered> {
    // Group rows: by security_id, key, composite_figi, share_class_figi or con_id; else alone.
    let mut groups: BTreeMap<String, Delivered> = BTreeMap::new();
    let mut order: Vec<String> = Vec::new();
    for (at, row) in rows {
        let parsed = (|| -> std::result::Result<(Option<SecurityId>, Attributes, DeliveredTicker), String> {
            let id = row.get("security_id").map(|v| v.parse::<SecurityId>().map_err(|e| e.to_string())).transpose()?;
            let t = DeliveredTicker {
                ticker: ticker(&row, "ticker")?,
                exchange: row.get("exchange").cloned(),
                valid: Interval::new(date(&row, "valid_from")?, date(&row, "valid_to")?),
                vendor_date: None,
                what: at.clone(),
            };
            Ok((id, attributes(&row)?, t))
        })();
        let (id, attrs, t) = match parsed {
            Ok(p) => p,
            Err(problem) => {
                problems.push(format!("{at}: {problem}"));
                continue;
            }
        };
        let group = ["security_id", "key", "composite_figi", "share_class_figi", "con_id"]
            .iter()
            .find_map(|c| row.get(*c).map(|v| format!("{c}={v}")))
            .unwrap_or_else(|| format!("row:{at}"));
        let d = groups.entry(group.clone()).or_insert_with(|| {
            order.push(group.clone());
            Delivered {
                security_id: id,
                attributes: Attributes::default(),
                tickers: Vec::new(),
                member: None,
                what: String::new(),
            }
        });
        if let Err(problem) = merge(&mut d.attributes, attrs) {
            problems.push(format!("{at}: {problem}"));
        }
        d.security_id = d.security_id.or(id);
        d.what = if d.what.is_empty() { format!("{origin} {at}") } else { format!("{}, {at}", d.what) };
        d.tickers.push(t);
    }
    order
        .into_iter()
        .filter_map(|g| groups.remove(&g))
        .map(|mut d| {
            d.tickers.sort_by_key(|t| (t.valid.from.is_some(), t.valid.from));
            d
        })
        .collect()
}

/// The session a change dated `d` takes effect (the first on or after it), and the vendor's date when
/// that is not it.
pub(super) fn effective_session(d: NaiveDate) -> (NaiveDate, Option<NaiveDate>) {
    let cal = NyseCalendar;
    if cal.is_session(d) { (d, None) } else { (cal.next_session(d), Some(d)) }
}

fn from_changes(origin: &str, rows: Vec<(String, Row)>, problems: &mut Vec<String>) -> Vec<Delivered> {
    let mut changes = Vec::new();
    for (at, row) in rows {
        let parsed = (|| -> std::result::Result<_, String> {
            let d = date(&row, "date")?.ok_or("empty date")?;
            Ok((d, ticker(&row, "old_ticker")?, ticker(&row, "new_ticker")?))
        })();
        match parsed {
            Ok((d, old, new)) if old == new => problems.push(format!("{at}: {old} -> {new} changes nothing ({d})")),
            Ok((d, old, new)) => {
                changes.push((d, old, new, row.get("exchange").cloned(), row.get("name").cloned(), at))
            }
            Err(problem) => problems.push(format!("{at}: {problem}")),
        }
    }
    changes.sort_by_key(|c| c.0);
    let mut out: Vec<Delivered> = Vec::new();
    for (d, old, new, exchange, name, at) in changes {
        let (from, vendor_date) = effective_session(d);
        let before = NyseCalendar.previous_session(from);
        // The security that has `old` now: the last interval of a chain, still open and begun before
        // this change (on one date, GOOG -> GOOGL frees the ticker GOOCV -> GOOG takes).
        let found = out.iter().position(|c| {
            c.tickers.last().is_some_and(|t| {
                t.ticker == old
                    && t.valid.to.is_none()
                    && t.exchange == exchange
                    && t.valid.from.is_none_or(|f| f < from)
            })
        });
        let i = match found {
            Some(i) => {
                out[i].what = format!("{}, {at}", out[i].what);
                i
            }
            None => {
                out.push(Delivered {
                    security_id: None,
                    attributes: Attributes::default(),
                    tickers: vec![DeliveredTicker {
                        ticker: old.clone(),
                        exchange: exchange.clone(),
                        valid: Interval::default(),
                        vendor_date: None,
                        what: at.clone(),
                    }],
                    member: None,
                    what: format!("{origin} {at}"),
                });
                out.len() - 1
            }
        };
        let chain = &mut out[i];
        // Every chain starts with a ticker.
        let Some(last) = chain.tickers.last_mut() else { continue };
        if last.valid.from.is_some_and(|f| f > before) {
            problems.push(format!(
                "{at}: {old} -> {new} on {d} comes before {old}'s own start {}",
                last.valid.from.map_or(String::new(), |f| f.to_string())
            ));
            continue;
        }
        last.valid.to = Some(before);
        chain.tickers.push(DeliveredTicker {
            ticker: new,
            exchange,
            valid: Interval::new(Some(from), None),
            vendor_date,
            what: at.clone(),
        });
        if name.is_some() {
            chain.attributes.name = name;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::Builder::new().suffix(".csv").tempfile().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn interval_rows_group_into_securities() {
        let f = write(
            "key,ticker,valid_from,valid_to,name,delisted\n\
             meta,FB,2012-05-18,2022-06-08,Meta Platforms,\n\
             meta,META,2022-06-09,,Meta Platforms,\n\
             ,ZZZ,2001-01-02,2009-03-31,,2009-03-31\n",
        );
        let got = read_file(f.path()).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].tickers.iter().map(|t| t.ticker.as_str()).collect::<Vec<_>>(), ["FB", "META"]);
        assert_eq!(got[0].attributes.name.as_deref(), Some("Meta Platforms"));
        assert_eq!(got[1].attributes.delisted, Some("2009-03-31".parse().unwrap()));
    }

    #[test]
    fn problems_name_their_lines() {
        let f = write("key,ticker,valid_from,name\na,X,2020-13-01,\nb,Y,2020-01-02,one\nb,Z,2021-01-04,two\n");
        let err = read_file(f.path()).unwrap_err().to_string();
        assert!(err.contains("line 2: valid_from '2020-13-01' is not a date"), "{err}");
        assert!(err.contains("line 4: name \"two\" differs"), "{err}");
        let f = write("ticker,sector\nX,tech\n");
        assert!(
            read_file(f.path()).unwrap_err().to_string().contains("column 'sector' is not a ticker intervals column")
        );
    }

    #[test]
    fn symbol_changes_chain_and_snap_to_sessions() {
        // 2022-06-11 is a Saturday: META takes effect on Monday 06-13, and FB ends on Friday 06-10.
        let f = write(
            "date,old_ticker,new_ticker\n2022-06-11,FB,META\n2004-01-02,AAA,BBB\n2010-01-04,BBB,CCC\n2014-04-03,GOOCV,GOOG\n2014-04-03,GOOG,GOOGL\n",
        );
        let got = read_file(f.path()).unwrap();
        assert_eq!(got.len(), 4);
        let tickers =
            |i: usize| -> Vec<String> { got[i].tickers.iter().map(|t| format!("{} {}", t.ticker, t.valid)).collect() };
        assert_eq!(
            tickers(1),
            ["GOOCV ..2014-04-02", "GOOG 2014-04-03.."],
            "a ticker taken on the day it is freed is another security"
        );
        assert_eq!(tickers(2), ["GOOG ..2014-04-02", "GOOGL 2014-04-03.."]);
        let chain: Vec<String> = got[0].tickers.iter().map(|t| format!("{} {}", t.ticker, t.valid)).collect();
        assert_eq!(chain, ["AAA ..2003-12-31", "BBB 2004-01-02..2009-12-31", "CCC 2010-01-04.."]);
        assert_eq!(tickers(3), ["FB ..2022-06-10", "META 2022-06-13.."]);
        assert_eq!(got[3].tickers[1].vendor_date, Some("2022-06-11".parse().unwrap()));
    }
}
