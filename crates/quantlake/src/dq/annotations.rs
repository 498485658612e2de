//! Annotations: an outage or an accepted upstream problem recorded against a dataset, for some
//! symbols (or all) over a time range (runbook 4.1 "document the outage times", 4.3 "accept and
//! annotate", 4.4 "mark the day as unusable"). They live in the `annotations` dataset (layer ops,
//! one unpartitioned table); `health` and `dq summary` show them beside the sessions they touch, and
//! training sets leave out the cells of the ones marked `unusable` ([`Annotation::covers`]).

use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::TimestampMicrosecondType;
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use chrono_tz::America::New_York;
use serde::Serialize;

use crate::error::{Error, Result};
use crate::symbol::Symbol;
use crate::table::layout::PartitionKey;
use crate::table::operations::write::WriteMode;
use crate::table::{Lake, ReadFilter};

/// The annotations dataset.
pub const DATASET: &str = "annotations";

/// One annotation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Annotation {
    pub id: String,
    /// The dataset annotated (its contract name, aliases resolved).
    pub dataset: String,
    /// The symbols concerned; `None` = every symbol.
    pub symbols: Option<Vec<Symbol>>,
    /// First and last instant covered (both inclusive).
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    /// The covered cells must not be used for training.
    pub unusable: bool,
    pub created_at: DateTime<Utc>,
}

impl Annotation {
    /// Whether the annotation covers `symbol` at `ts`.
    pub fn covers(&self, symbol: &str, ts: DateTime<Utc>) -> bool {
        self.start <= ts && ts <= self.end && self.symbols.as_ref().is_none_or(|s| s.iter().any(|x| x == symbol))
    }

    /// Whether it overlaps `[start, end]`.
    pub fn overlaps(&self, start: DateTime<Utc>, end: DateTime<Utc>) -> bool {
        self.start <= end && self.end >= start
    }

    /// Whether it touches the New York trading date `date` (any instant of it).
    pub fn touches_date(&self, date: NaiveDate) -> bool {
        let (start, end) = day_bounds(date);
        self.overlaps(start, end)
    }

    /// Whether it touches any day of a partition (`date=...`, `year=...`, `all`).
    pub fn touches_partition(&self, partition: &str) -> bool {
        match PartitionKey::parse(partition) {
            Ok(PartitionKey::All) | Err(_) => true,
            Ok(k) => {
                let (first, last) = k.date_range();
                self.overlaps(day_bounds(first).0, day_bounds(last).1)
            }
        }
    }

    /// The symbols as written: `all` or `A,B`.
    pub fn symbols_text(&self) -> String {
        self.symbols.as_ref().map_or("all".into(), |s| s.join(","))
    }

    /// One line for reports: `id [unusable] symbols start..end: reason`.
    pub fn summary(&self) -> String {
        format!(
            "annotation {}{} ({}, {} .. {}): {}",
            self.id,
            if self.unusable { " UNUSABLE" } else { "" },
            self.symbols_text(),
            self.start.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.end.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            self.reason
        )
    }
}

/// The first and last microsecond of a New York date, in UTC.
fn day_bounds(date: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    let midnight = |d: NaiveDate| {
        let naive = d.and_hms_opt(0, 0, 0).unwrap_or_default();
        // Midnight exists in New York every day (DST moves 02:00), so `earliest` always answers.
        New_York
            .from_local_datetime(&naive)
            .earliest()
            .map_or_else(|| Utc.from_utc_datetime(&naive), |t| t.with_timezone(&Utc))
    };
    let next = date.succ_opt().unwrap_or(date);
    (midnight(date), midnight(next) - chrono::Duration::microseconds(1))
}

/// From the first instant of New York date `start` to the last of `end`, in UTC.
pub fn span_of_dates(start: NaiveDate, end: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (day_bounds(start).0, day_bounds(end).1)
}

/// Parses `--start`/`--end`: an RFC 3339 time, or a date (New York): its first instant as a start,
/// its last as an end, so `--start D --end D` covers the whole day.
pub fn parse_bound(text: &str, is_end: bool) -> Result<DateTime<Utc>> {
    let text = text.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        let (first, last) = day_bounds(d);
        return Ok(if is_end { last } else { first });
    }
    Err(Error::invalid(format!(
        "{} '{text}': expected a date (YYYY-MM-DD, New York) or an RFC 3339 time (2024-01-03T14:30:00Z)",
        if is_end { "end" } else { "start" }
    )))
}

/// What to record: [`annotate`]'s request.
#[derive(Debug, Clone)]
pub struct NewAnnotation {
    pub dataset: String,
    /// `None` = every symbol.
    pub symbols: Option<Vec<Symbol>>,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub reason: String,
    pub unusable: bool,
}

/// `all` = every symbol, else a comma-separated list (each checked).
pub fn parse_symbols(spec: &str) -> Result<Option<Vec<Symbol>>> {
    Ok(crate::symbol::all_or_list(spec)?.map(|list| {
        let mut list = list.into_vec();
        list.sort();
        list
    }))
}

/// Records an annotation: checks that the dataset exists (by its contract), the symbols are valid
/// and `end >= start`, and appends it in one snapshot.
pub async fn annotate(lake: &Lake, new: NewAnnotation) -> Result<Annotation> {
    let dataset = lake.dataset(&new.dataset)?.name().to_string();
    if new.end < new.start {
        let t = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true);
        return Err(Error::invalid(format!("end {} is before start {}", t(new.end), t(new.start))));
    }
    if new.symbols.as_ref().is_some_and(Vec::is_empty) {
        return Err(Error::invalid("no symbols: give a list, or None for every symbol"));
    }
    if new.reason.trim().is_empty() {
        return Err(Error::invalid("an annotation needs a reason"));
    }
    let existing = read_all(lake).await?;
    let id = loop {
        let id = uuid::Uuid::new_v4().simple().to_string()[..12].to_string();
        if !existing.iter().any(|a| a.id == id) {
            break id;
        }
    };
    let now = DateTime::<Utc>::from_timestamp_micros(Utc::now().timestamp_micros()).unwrap_or_default();
    let a = Annotation {
        id,
        dataset,
        symbols: new.symbols,
        start: new.start,
        end: new.end,
        reason: new.reason.trim().to_string(),
        unusable: new.unusable,
        created_at: now,
    };
    let ds = lake.dataset(DATASET)?;
    let batch = to_batch(ds.contract(), std::slice::from_ref(&a))?;
    ds.write(vec![batch])
        .mode(WriteMode::Append)
        .operation("annotate")
        .parameter("id", &a.id)
        .parameter("dataset", &a.dataset)
        .execute()
        .await?;
    tracing::info!(id = %a.id, dataset = %a.dataset, "recorded {}", a.summary());
    Ok(a)
}

/// Removes the annotation `id` (one snapshot); returns what it was.
pub async fn remove_annotation(lake: &Lake, id: &str) -> Result<Annotation> {
    let found =
        read_all(lake).await?.into_iter().find(|a| a.id == id).ok_or_else(|| {
            Error::invalid(format!("no annotation with id '{id}' (quantlake annotations lists them)"))
        })?;
    let ds = lake.dataset(DATASET)?;
    let target = id.to_string();
    let matches = move |b: &RecordBatch| -> Result<BooleanArray> {
        let ids = b
            .column_by_name("id")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("annotations has no id column"))?;
        Ok(ids.iter().map(|v| Some(v == Some(target.as_str()))).collect())
    };
    ds.write(Vec::new())
        .removing_where(Arc::new(matches))
        .covering([PartitionKey::All])
        .operation("annotate_remove")
        .parameter("id", id)
        .execute()
        .await?;
    Ok(found)
}

/// Annotations of `dataset` overlapping [start, end].
pub async fn list_annotations(
    lake: &Lake,
    dataset: Option<&str>,
    start: DateTime<Utc>,
    end: DateTime<Utc>,
) -> Result<Vec<Annotation>> {
    let name = dataset.map(|d| lake.dataset(d).map(|ds| ds.name().to_string())).transpose()?;
    let mut out: Vec<Annotation> = read_all(lake)
        .await?
        .into_iter()
        .filter(|a| name.as_ref().is_none_or(|n| *n == a.dataset) && a.overlaps(start, end))
        .collect();
    out.sort_by(|a, b| (&a.dataset, a.start, &a.id).cmp(&(&b.dataset, b.start, &b.id)));
    Ok(out)
}

/// Every stored annotation (latest snapshot).
async fn read_all(lake: &Lake) -> Result<Vec<Annotation>> {
    let ds = lake.dataset(DATASET)?;
    let state = ds.latest().await?;
    let mut out = Vec::new();
    for b in ds.read(&state, &ReadFilter::default()).await? {
        out.extend(from_batch(&b)?);
    }
    Ok(out)
}

fn to_batch(contract: &crate::contract::DatasetContract, rows: &[Annotation]) -> Result<RecordBatch> {
    let ts = |f: fn(&Annotation) -> DateTime<Utc>| -> ArrayRef {
        Arc::new(
            TimestampMicrosecondArray::from_iter_values(rows.iter().map(|a| f(a).timestamp_micros()))
                .with_timezone("UTC"),
        )
    };
    contract.batch_from(|name| {
        Some(match name {
            "id" => Arc::new(StringArray::from_iter_values(rows.iter().map(|a| a.id.as_str()))) as ArrayRef,
            "dataset" => Arc::new(StringArray::from_iter_values(rows.iter().map(|a| a.dataset.as_str()))),
            "symbols" => Arc::new(StringArray::from_iter(rows.iter().map(|a| a.symbols.as_ref().map(|s| s.join(","))))),
            "start_ts" => ts(|a| a.start),
            "end_ts" => ts(|a| a.end),
            "reason" => Arc::new(StringArray::from_iter_values(rows.iter().map(|a| a.reason.as_str()))),
            "unusable" => Arc::new(BooleanArray::from_iter(rows.iter().map(|a| Some(a.unusable)))),
            "created_at" => ts(|a| a.created_at),
            _ => return None,
        })
    })
}

fn from_batch(b: &RecordBatch) -> Result<Vec<Annotation>> {
    let missing = |n: &str| Error::SchemaMismatch {
        dataset: DATASET.into(),
        detail: format!("missing or mistyped column '{n}'"),
    };
    let text = |n: &str| b.column_by_name(n).and_then(|c| c.as_string_opt::<i32>()).ok_or_else(|| missing(n));
    let time = |n: &str| {
        b.column_by_name(n).and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>()).ok_or_else(|| missing(n))
    };
    let (id, dataset, symbols, reason) = (text("id")?, text("dataset")?, text("symbols")?, text("reason")?);
    let (start, end, created) = (time("start_ts")?, time("end_ts")?, time("created_at")?);
    let unusable = b.column_by_name("unusable").and_then(|c| c.as_boolean_opt()).ok_or_else(|| missing("unusable"))?;
    let at = |a: &arrow::array::TimestampMicrosecondArray, i: usize| {
        DateTime::<Utc>::from_timestamp_micros(a.value(i)).unwrap_or_default()
    };
    (0..b.num_rows())
        .map(|i| {
            Ok(Annotation {
                id: id.value(i).to_string(),
                dataset: dataset.value(i).to_string(),
                symbols: symbols
                    .is_valid(i)
                    .then(|| crate::symbol::parse_all(symbols.value(i).split(',')))
                    .transpose()?,
                start: at(start, i),
                end: at(end, i),
                reason: reason.value(i).to_string(),
                unusable: unusable.value(i),
                created_at: at(created, i),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn bounds_cover_whole_new_york_days() {
        // Winter: New York is UTC-5.
        assert_eq!(parse_bound("2024-01-03", false).unwrap(), t("2024-01-03T05:00:00Z"));
        assert_eq!(parse_bound("2024-01-03", true).unwrap(), t("2024-01-04T04:59:59.999999Z"));
        // Summer: UTC-4; an explicit time is taken as given.
        assert_eq!(parse_bound("2024-07-01", false).unwrap(), t("2024-07-01T04:00:00Z"));
        assert_eq!(parse_bound("2024-01-03T14:30:00-05:00", true).unwrap(), t("2024-01-03T19:30:00Z"));
        let err = parse_bound("yesterday", false).unwrap_err().to_string();
        assert!(err.contains("start 'yesterday'") && err.contains("RFC 3339"), "{err}");
        assert_eq!(parse_symbols("all").unwrap(), None);
        assert_eq!(parse_symbols("MSFT, AAPL,MSFT").unwrap().unwrap(), ["AAPL", "MSFT"]);
        assert!(parse_symbols("A/B").is_err() && parse_symbols(" , ").is_err());
    }

    #[test]
    fn covers_symbols_and_instants() {
        let a = Annotation {
            id: "x".into(),
            dataset: "curated_1m_bars".into(),
            symbols: Some(vec!["AAPL".parse().unwrap()]),
            start: parse_bound("2024-01-03", false).unwrap(),
            end: parse_bound("2024-01-03", true).unwrap(),
            reason: "r".into(),
            unusable: true,
            created_at: Utc::now(),
        };
        assert!(a.covers("AAPL", t("2024-01-03T14:30:00Z")));
        assert!(!a.covers("MSFT", t("2024-01-03T14:30:00Z")));
        assert!(!a.covers("AAPL", t("2024-01-04T14:30:00Z")));
        assert!(a.covers("AAPL", a.end) && a.covers("AAPL", a.start), "both ends inclusive");
        assert!(a.touches_date(NaiveDate::from_ymd_opt(2024, 1, 3).unwrap()));
        assert!(!a.touches_date(NaiveDate::from_ymd_opt(2024, 1, 2).unwrap()));
        assert!(!a.touches_date(NaiveDate::from_ymd_opt(2024, 1, 4).unwrap()));
        assert!(
            a.touches_partition("year=2024")
                && !a.touches_partition("year=2023")
                && a.touches_partition("date=2024-01-03")
        );
        let all = Annotation { symbols: None, ..a };
        assert!(all.covers("ANY", t("2024-01-03T20:00:00Z")));
    }
}
