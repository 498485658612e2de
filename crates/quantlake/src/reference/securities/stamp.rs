//! Stamping stored rows with their security, and the key that follows a series across a rename.
//!
//! Curated bars are stored under the ticker of their day (what the vendor delivered); the `security_id`
//! column beside `symbol` says which security that ticker named then, as the master knew at the
//! curation. Everything computed from them across sessions (the curated forward fill, labels' session
//! horizons and daily returns) follows a [`SeriesKey`]: the security when it is known, else the ticker,
//! so FB's last close seeds META's first session and a reused ticker never carries one security's
//! close into the other's.

use std::sync::Arc;

use arrow::array::{ArrayRef, AsArray, Int64Array, RecordBatch};
use arrow::datatypes::{DataType, Date32Type, Field, Schema};
use chrono::NaiveDate;

use super::SecurityMaster;
use crate::error::{Error, Result};
use crate::security::SecurityId;
use crate::symbol::Symbol;

/// The column stored rows carry their security in.
pub const SECURITY_ID: &str = "security_id";

/// What a series is followed by across sessions: its security, or its ticker when the master does
/// not know it.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum SeriesKey {
    Security(SecurityId),
    Ticker(String),
}

impl SeriesKey {
    /// The key of a stored row: its `security_id` when stamped, else its `symbol`.
    pub fn of(symbol: &str, security_id: Option<i64>) -> Result<Self> {
        match security_id {
            Some(id) => Ok(Self::Security(SecurityId::try_from(id)?)),
            None => Ok(Self::Ticker(symbol.to_string())),
        }
    }
}

impl SecurityMaster {
    /// The security `ticker` named on `date`, as a stored row records it (`None`: unknown to the
    /// master). A ticker two same-ranked sources give to two securities is an error naming the rows.
    pub fn security_on(&self, ticker: &str, date: NaiveDate) -> Result<Option<SecurityId>> {
        let Ok(symbol) = ticker.parse::<Symbol>() else { return Ok(None) };
        Ok(self.resolve(&symbol, date, None)?)
    }

    /// [`Self::security_on`] as a row's [`SeriesKey`].
    pub fn series_key(&self, ticker: &str, date: NaiveDate) -> Result<SeriesKey> {
        Ok(match self.security_on(ticker, date)? {
            Some(id) => SeriesKey::Security(id),
            None => SeriesKey::Ticker(ticker.to_string()),
        })
    }

    /// `batch` with a `security_id` column appended (replacing one it has): each row's `symbol`
    /// resolved on its date: `date` when given, else the row's `date` column.
    pub fn stamp(&self, batch: &RecordBatch, date: Option<NaiveDate>) -> Result<RecordBatch> {
        let symbol = batch
            .column_by_name("symbol")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("rows to stamp with their security need a utf8 symbol column"))?;
        let dates = batch.column_by_name("date").and_then(|c| c.as_primitive_opt::<Date32Type>());
        let day_of = |i: usize| -> Result<NaiveDate> {
            match (date, dates) {
                (Some(d), _) => Ok(d),
                (None, Some(col)) => NaiveDate::from_epoch_days(col.value(i))
                    .ok_or_else(|| Error::invalid(format!("date {} out of range", col.value(i)))),
                (None, None) => Err(Error::invalid("rows to stamp with their security need a date column")),
            }
        };
        let mut ids: Vec<Option<i64>> = Vec::with_capacity(batch.num_rows());
        // Rows come in runs of one symbol and day: resolve once per run.
        let mut last: Option<(&str, NaiveDate, Option<i64>)> = None;
        for i in 0..batch.num_rows() {
            let (s, day) = (symbol.value(i), day_of(i)?);
            let id = match last {
                Some((ls, ld, id)) if ls == s && ld == day => id,
                _ => self.security_on(s, day)?.map(i64::from),
            };
            last = Some((s, day, id));
            ids.push(id);
        }
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (f, c) in batch.schema().fields().iter().zip(batch.columns()) {
            if f.name() != SECURITY_ID {
                fields.push(f.as_ref().clone());
                columns.push(c.clone());
            }
        }
        fields.push(Field::new(SECURITY_ID, DataType::Int64, true));
        columns.push(Arc::new(Int64Array::from(ids)));
        Ok(RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)?)
    }
}

#[cfg(test)]
impl SecurityMaster {
    /// A master of csv ticker intervals `(security, ticker, valid_from, valid_to)`, each security
    /// minted from its name.
    pub(crate) fn of_intervals(rows: &[(&str, &str, &str, Option<&str>)]) -> Self {
        use super::{Interval, SecuritySource, TickerInterval};
        let day = |s: &str| s.parse::<NaiveDate>().expect("a date");
        let intervals = rows
            .iter()
            .map(|(id, ticker, from, to)| TickerInterval {
                security_id: SecurityId::mint(id, 0),
                ticker: ticker.parse().expect("a ticker"),
                exchange: None,
                valid: Interval::new(Some(day(from)), to.map(day)),
                source: SecuritySource::Csv,
                vendor_date: None,
                origin: "test".into(),
                imported_at: 0,
            })
            .collect();
        let ranking = <SecuritySource as crate::names::Named>::ALL.to_vec();
        Self::from_rows(Vec::new(), intervals, Vec::new(), ranking, Default::default())
    }
}

/// The `security_id` column of `batch`, if it has one (a file written before the column existed
/// reads back without it).
pub fn security_column(batch: &RecordBatch) -> Result<Option<&Int64Array>> {
    match batch.column_by_name(SECURITY_ID) {
        None => Ok(None),
        Some(c) => c
            .as_primitive_opt::<arrow::datatypes::Int64Type>()
            .map(Some)
            .ok_or_else(|| Error::invalid(format!("{SECURITY_ID} is not int64"))),
    }
}

#[cfg(test)]
mod tests {
    use arrow::array::{Date32Array, StringArray};

    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap()
    }

    #[test]
    fn rows_are_stamped_with_the_security_their_ticker_named_that_day() {
        let (a, b) = (SecurityId::mint("a", 0), SecurityId::mint("b", 0));
        let master = SecurityMaster::of_intervals(&[
            ("a", "OLD", "2020-01-02", Some("2024-01-09")),
            ("a", "NEW", "2024-01-10", None),
            ("b", "OLD", "2024-01-10", None),
        ]);
        let day = |s: &str| d(s).to_epoch_days();
        let batch = RecordBatch::try_from_iter([
            ("symbol", Arc::new(StringArray::from(vec!["OLD", "OLD", "NEW", "ZZZ"])) as ArrayRef),
            (
                "date",
                Arc::new(Date32Array::from(vec![
                    day("2024-01-09"),
                    day("2024-01-10"),
                    day("2024-01-10"),
                    day("2024-01-10"),
                ])) as ArrayRef,
            ),
            (SECURITY_ID, Arc::new(Int64Array::from(vec![Some(1), None, None, Some(7)])) as ArrayRef),
        ])
        .unwrap();
        let stamped = master.stamp(&batch, None).unwrap();
        assert_eq!(stamped.num_columns(), 3, "the old column is replaced");
        let ids = security_column(&stamped).unwrap().unwrap();
        assert_eq!(
            ids.iter().collect::<Vec<_>>(),
            [Some(i64::from(a)), Some(i64::from(b)), Some(i64::from(a)), None],
            "OLD is a until its rename, then the reused ticker is b; an unknown ticker is null"
        );
        assert_eq!(
            master.series_key("NEW", d("2024-01-10")).unwrap(),
            master.series_key("OLD", d("2024-01-09")).unwrap()
        );
        assert_eq!(master.series_key("ZZZ", d("2024-01-10")).unwrap(), SeriesKey::Ticker("ZZZ".into()));
        assert_eq!(SeriesKey::of("ZZZ", Some(i64::from(b))).unwrap(), SeriesKey::Security(b));
    }
}
