//! The three datasets' rows to and from Arrow batches.

use std::sync::Arc;

use arrow::array::{
    Array, ArrayRef, AsArray, Date32Array, Int64Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use arrow::datatypes::{DataType, Date32Type, Int64Type, TimeUnit};

use super::*;
use crate::contract::DatasetContract;

/// Typed access to one batch's columns, cast to the contract's types (a file of an older schema
/// version reads the same).
struct Columns<'a> {
    batch: &'a RecordBatch,
    dataset: &'static str,
}

impl Columns<'_> {
    fn cast(&self, name: &str, to: &DataType) -> Result<ArrayRef> {
        let col = self.batch.column_by_name(name).ok_or_else(|| Error::SchemaMismatch {
            dataset: self.dataset.into(),
            detail: format!("no column '{name}'"),
        })?;
        Ok(arrow::compute::cast(col, to)?)
    }

    fn text(&self, name: &str) -> Result<StringArray> {
        Ok(self.cast(name, &DataType::Utf8)?.as_string::<i32>().clone())
    }

    fn int(&self, name: &str) -> Result<Int64Array> {
        Ok(self.cast(name, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
    }

    fn date(&self, name: &str) -> Result<Date32Array> {
        Ok(self.cast(name, &DataType::Date32)?.as_primitive::<Date32Type>().clone())
    }

    fn micros(&self, name: &str) -> Result<Int64Array> {
        let ts = self.cast(name, &DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())))?;
        self.int_of(&ts)
    }

    fn int_of(&self, a: &ArrayRef) -> Result<Int64Array> {
        Ok(arrow::compute::cast(a, &DataType::Int64)?.as_primitive::<Int64Type>().clone())
    }
}

fn opt_text(a: &StringArray, i: usize) -> Option<String> {
    a.is_valid(i).then(|| a.value(i).to_string())
}

fn opt_date(a: &Date32Array, i: usize) -> Option<NaiveDate> {
    if a.is_valid(i) { NaiveDate::from_epoch_days(a.value(i)) } else { None }
}

fn opt_int(a: &Int64Array, i: usize) -> Option<i64> {
    a.is_valid(i).then(|| a.value(i))
}

pub(super) fn securities(batches: &[RecordBatch]) -> Result<Vec<SecurityRow>> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch, dataset: SECURITIES };
        let (id, con_id, at) = (c.int("security_id")?, c.int("con_id")?, c.micros("imported_at")?);
        let text: Vec<StringArray> = [
            "source",
            "kind",
            "name",
            "composite_figi",
            "share_class_figi",
            "cik",
            "primary_exchange",
            "currency",
            "delisted_reason",
            "origin",
        ]
        .iter()
        .map(|n| c.text(n))
        .collect::<Result<_>>()?;
        let (listed, delisted) = (c.date("listed")?, c.date("delisted")?);
        for i in 0..batch.num_rows() {
            out.push(SecurityRow {
                security_id: SecurityId::new(id.value(i))?,
                source: text[0].value(i).parse()?,
                attributes: Attributes {
                    kind: opt_text(&text[1], i),
                    name: opt_text(&text[2], i),
                    composite_figi: opt_text(&text[3], i),
                    share_class_figi: opt_text(&text[4], i),
                    cik: opt_text(&text[5], i),
                    con_id: opt_int(&con_id, i),
                    primary_exchange: opt_text(&text[6], i),
                    currency: opt_text(&text[7], i),
                    listed: opt_date(&listed, i),
                    delisted: opt_date(&delisted, i),
                    delisted_reason: opt_text(&text[8], i),
                },
                origin: text[9].value(i).to_string(),
                imported_at: at.value(i),
            });
        }
    }
    Ok(out)
}

pub(super) fn symbology(batches: &[RecordBatch]) -> Result<Vec<TickerInterval>> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch, dataset: SYMBOLOGY };
        let (id, at) = (c.int("security_id")?, c.micros("imported_at")?);
        let (ticker, exchange, source, origin) =
            (c.text("ticker")?, c.text("exchange")?, c.text("source")?, c.text("origin")?);
        let (from, to, vendor) = (c.date("valid_from")?, c.date("valid_to")?, c.date("vendor_date")?);
        for i in 0..batch.num_rows() {
            out.push(TickerInterval {
                security_id: SecurityId::new(id.value(i))?,
                ticker: Symbol::new(ticker.value(i))?,
                exchange: opt_text(&exchange, i),
                valid: Interval::new(opt_date(&from, i), opt_date(&to, i)),
                source: source.value(i).parse()?,
                vendor_date: opt_date(&vendor, i),
                origin: origin.value(i).to_string(),
                imported_at: at.value(i),
            });
        }
    }
    Ok(out)
}

pub(super) fn membership(batches: &[RecordBatch]) -> Result<Vec<MembershipRow>> {
    let mut out = Vec::new();
    for batch in batches {
        let c = Columns { batch, dataset: MEMBERSHIP };
        let (id, at) = (c.int("security_id")?, c.micros("imported_at")?);
        let (universe, source, origin) = (c.text("universe")?, c.text("source")?, c.text("origin")?);
        let (from, to) = (c.date("valid_from")?, c.date("valid_to")?);
        for i in 0..batch.num_rows() {
            out.push(MembershipRow {
                universe: universe.value(i).to_string(),
                security_id: SecurityId::new(id.value(i))?,
                valid: Interval::new(opt_date(&from, i), opt_date(&to, i)),
                source: source.value(i).parse()?,
                origin: origin.value(i).to_string(),
                imported_at: at.value(i),
            });
        }
    }
    Ok(out)
}

fn text_col<T>(rows: &[T], f: impl Fn(&T) -> Option<&str>) -> ArrayRef {
    Arc::new(StringArray::from_iter(rows.iter().map(f)))
}

fn date_col<T>(rows: &[T], f: impl Fn(&T) -> Option<NaiveDate>) -> ArrayRef {
    Arc::new(Date32Array::from_iter(rows.iter().map(|r| f(r).map(|d| d.to_epoch_days()))))
}

fn id_col<T>(rows: &[T], f: impl Fn(&T) -> SecurityId) -> ArrayRef {
    Arc::new(Int64Array::from_iter_values(rows.iter().map(|r| f(r).get())))
}

fn micros_col<T>(rows: &[T], f: impl Fn(&T) -> i64) -> ArrayRef {
    Arc::new(TimestampMicrosecondArray::from_iter_values(rows.iter().map(f)).with_timezone("UTC"))
}

pub(super) fn securities_batch(contract: &DatasetContract, rows: &[SecurityRow]) -> Result<RecordBatch> {
    contract.batch_from(|name| {
        Some(match name {
            "security_id" => id_col(rows, |r| r.security_id),
            "source" => text_col(rows, |r| Some(r.source.name())),
            "kind" => text_col(rows, |r| r.attributes.kind.as_deref()),
            "name" => text_col(rows, |r| r.attributes.name.as_deref()),
            "composite_figi" => text_col(rows, |r| r.attributes.composite_figi.as_deref()),
            "share_class_figi" => text_col(rows, |r| r.attributes.share_class_figi.as_deref()),
            "cik" => text_col(rows, |r| r.attributes.cik.as_deref()),
            "con_id" => Arc::new(Int64Array::from_iter(rows.iter().map(|r| r.attributes.con_id))),
            "primary_exchange" => text_col(rows, |r| r.attributes.primary_exchange.as_deref()),
            "currency" => text_col(rows, |r| r.attributes.currency.as_deref()),
            "listed" => date_col(rows, |r| r.attributes.listed),
            "delisted" => date_col(rows, |r| r.attributes.delisted),
            "delisted_reason" => text_col(rows, |r| r.attributes.delisted_reason.as_deref()),
            "origin" => text_col(rows, |r| Some(r.origin.as_str())),
            "imported_at" => micros_col(rows, |r| r.imported_at),
            _ => return None,
        })
    })
}

pub(super) fn symbology_batch(contract: &DatasetContract, rows: &[TickerInterval]) -> Result<RecordBatch> {
    contract.batch_from(|name| {
        Some(match name {
            "security_id" => id_col(rows, |r| r.security_id),
            "ticker" => text_col(rows, |r| Some(r.ticker.as_str())),
            "exchange" => text_col(rows, |r| r.exchange.as_deref()),
            "valid_from" => date_col(rows, |r| r.valid.from),
            "valid_to" => date_col(rows, |r| r.valid.to),
            "source" => text_col(rows, |r| Some(r.source.name())),
            "vendor_date" => date_col(rows, |r| r.vendor_date),
            "origin" => text_col(rows, |r| Some(r.origin.as_str())),
            "imported_at" => micros_col(rows, |r| r.imported_at),
            _ => return None,
        })
    })
}

pub(super) fn membership_batch(contract: &DatasetContract, rows: &[MembershipRow]) -> Result<RecordBatch> {
    contract.batch_from(|name| {
        Some(match name {
            "universe" => text_col(rows, |r| Some(r.universe.as_str())),
            "security_id" => id_col(rows, |r| r.security_id),
            "valid_from" => date_col(rows, |r| r.valid.from),
            "valid_to" => date_col(rows, |r| r.valid.to),
            "source" => text_col(rows, |r| Some(r.source.name())),
            "origin" => text_col(rows, |r| Some(r.origin.as_str())),
            "imported_at" => micros_col(rows, |r| r.imported_at),
            _ => return None,
        })
    })
}

/// Which rows of a batch an import replaces: those of `source` whose `security_id` is in `ids` (and,
/// for membership, whose universe is `universe`).
pub(super) fn replaced(
    b: &RecordBatch,
    dataset: &'static str,
    source: SecuritySource,
    ids: &BTreeSet<SecurityId>,
    universe: Option<&str>,
) -> Result<arrow::array::BooleanArray> {
    let c = Columns { batch: b, dataset };
    let (id, src) = (c.int("security_id")?, c.text("source")?);
    let uni = match universe {
        Some(_) => Some(c.text("universe")?),
        None => None,
    };
    Ok((0..b.num_rows())
        .map(|i| {
            let ours = src.value(i) == source.name()
                && SecurityId::new(id.value(i)).is_ok_and(|x| ids.contains(&x))
                && match (&uni, universe) {
                    (Some(u), Some(want)) => u.value(i) == want,
                    _ => true,
                };
            Some(ours)
        })
        .collect())
}
