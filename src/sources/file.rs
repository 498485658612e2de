//! Bars from CSV and Parquet files: a column mapping, a source time zone for naive timestamps, minute or
//! daily bars. Rows that cannot be read (a bad timestamp, a missing field, a negative or NaN price) are
//! returned as rejected rows with their line numbers, for the ingest to quarantine; nothing is dropped.
//!
//! Column names are matched case-insensitively; without `--columns`, common names are recognised
//! (`ts|timestamp|datetime|date|time`, `open`, `high`, `low`, `close`, `volume`, `symbol|ticker`,
//! `vwap`, `trade_count|trades|n`). Non-standard orders such as `Date,Open,Close,High,Low` need no mapping.

use std::path::PathBuf;

use arrow::array::{Array, AsArray};
use arrow::datatypes::DataType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::names::{named_display_and_from_str, Named};
use crate::bars::{Bar, BarSize};
use crate::table::layout::validate_symbol;

/// File format; by default taken from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileFormat {
    Csv,
    Parquet,
}

impl Named for FileFormat {
    const WHAT: &'static str = "file format";
    const ALL: &'static [Self] = &[FileFormat::Csv, FileFormat::Parquet];

    fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Parquet => "parquet",
        }
    }
}

named_display_and_from_str!(FileFormat);

/// The fields a bar needs, and the names tried for each when no mapping is given.
const FIELDS: &[(&str, &[&str], bool)] = &[
    ("ts", &["ts", "timestamp", "datetime", "date", "time", "t"], true),
    ("open", &["open", "o"], true),
    ("high", &["high", "h"], true),
    ("low", &["low", "l"], true),
    ("close", &["close", "c"], true),
    ("volume", &["volume", "vol", "v"], false),
    ("symbol", &["symbol", "ticker", "sym"], false),
    ("vwap", &["vwap", "vw"], false),
    ("trade_count", &["trade_count", "trades", "n"], false),
];

/// What to import.
#[derive(Debug, Clone)]
pub struct FileImport {
    pub path: PathBuf,
    pub format: Option<FileFormat>,
    /// `field=column` overrides, e.g. `ts=Date`.
    pub columns: Vec<(String, String)>,
    /// Zone of timestamps without an offset (`11/5/2019 9:30`).
    pub timezone: Tz,
    pub bar_size: BarSize,
    /// Symbol for files without a symbol column.
    pub symbol: Option<String>,
}

/// A row that could not be imported.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    /// 1-based line in a CSV file (the header is line 1), or 1-based row in a Parquet file.
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// What a file held.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub bars: Vec<(String, Bar)>,
    pub rejected: Vec<RejectedRow>,
}

/// Parses `--columns ts=Date,open=Open`.
pub fn parse_column_map(spec: &str) -> Result<Vec<(String, String)>> {
    spec.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|pair| {
            let (field, column) = pair
                .split_once('=')
                .ok_or_else(|| Error::invalid(format!("--columns: '{pair}' is not field=column")))?;
            let field = field.trim().to_ascii_lowercase();
            if !FIELDS.iter().any(|(f, _, _)| *f == field) {
                let known: Vec<&str> = FIELDS.iter().map(|f| f.0).collect();
                return Err(Error::invalid(format!("--columns: unknown field '{field}' (fields: {})", known.join(", "))));
            }
            Ok((field, column.trim().to_string()))
        })
        .collect()
}

impl FileImport {
    fn format(&self) -> Result<FileFormat> {
        if let Some(f) = self.format {
            return Ok(f);
        }
        match self.path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
            Some("csv") | Some("txt") => Ok(FileFormat::Csv),
            Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
            _ => Err(Error::invalid(format!("cannot tell the format of {}; pass --format csv|parquet", self.path.display()))),
        }
    }

    /// Index of each field's column in `headers` (None for absent optional fields).
    fn resolve(&self, headers: &[String]) -> Result<Vec<Option<usize>>> {
        // Spreadsheet exports often start with a byte-order mark.
        let find = |name: &str| headers.iter().position(|h| h.trim().trim_start_matches('\u{feff}').eq_ignore_ascii_case(name));
        let mut out = Vec::new();
        for (field, aliases, required) in FIELDS {
            let idx = match self.columns.iter().find(|(f, _)| f == field) {
                Some((_, column)) => Some(find(column).ok_or_else(|| {
                    Error::invalid(format!("{}: no column '{column}' (for {field}); columns are: {}", self.path.display(), headers.join(", ")))
                })?),
                None => aliases.iter().find_map(|a| find(a)),
            };
            if idx.is_none() && *required {
                return Err(Error::invalid(format!(
                    "{}: no column for '{field}' (tried {}); columns are: {}; map one with --columns {field}=NAME",
                    self.path.display(),
                    aliases.join(", "),
                    headers.join(", ")
                )));
            }
            out.push(idx);
        }
        if out[6].is_none() && self.symbol.is_none() {
            return Err(Error::invalid(format!("{}: no symbol column; pass --symbol", self.path.display())));
        }
        if let Some(s) = &self.symbol {
            validate_symbol(s)?;
        }
        Ok(out)
    }

    /// Reads the whole file.
    pub fn read(&self) -> Result<ParsedFile> {
        match self.format()? {
            FileFormat::Csv => self.read_csv(),
            FileFormat::Parquet => self.read_parquet(),
        }
    }

    fn read_csv(&self) -> Result<ParsedFile> {
        let file = std::fs::File::open(&self.path).map_err(|source| Error::ReadFile { path: self.path.clone(), source })?;
        let mut reader = csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(std::io::BufReader::new(file));
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| Error::invalid(format!("{}: cannot read the header: {e}", self.path.display())))?
            .iter()
            .map(str::to_string)
            .collect();
        let columns = self.resolve(&headers)?;
        let mut out = ParsedFile::default();
        let mut record = csv::StringRecord::new();
        let mut line = 1;
        loop {
            match reader.read_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    line = record.position().map_or(line + 1, |p| p.line());
                    let fields: Vec<&str> = record.iter().collect();
                    self.accept(&mut out, line, &fields, &columns);
                }
                Err(e) => {
                    line = e.position().map_or(line + 1, |p| p.line());
                    out.rejected.push(RejectedRow { line, reason: format!("unreadable row: {e}"), raw: String::new() });
                }
            }
        }
        Ok(out)
    }

    fn read_parquet(&self) -> Result<ParsedFile> {
        let bytes = std::fs::read(&self.path).map_err(|source| Error::ReadFile { path: self.path.clone(), source })?;
        let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?.build()?;
        let mut out = ParsedFile::default();
        let mut columns: Option<Vec<Option<usize>>> = None;
        let mut row = 0u64;
        for batch in reader {
            let batch = batch?;
            let headers: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            if columns.is_none() {
                columns = Some(self.resolve(&headers)?);
            }
            let cols = columns.as_deref().unwrap_or_default();
            // Every column as text, so both formats go through one row parser (timestamps print as ISO 8601).
            let text: Vec<arrow::array::StringArray> = batch
                .columns()
                .iter()
                .map(|c| arrow::compute::cast(c, &DataType::Utf8).map(|a| a.as_string::<i32>().clone()))
                .collect::<std::result::Result<_, _>>()?;
            for i in 0..batch.num_rows() {
                row += 1;
                let fields: Vec<&str> = text.iter().map(|a| if a.is_null(i) { "" } else { a.value(i) }).collect();
                self.accept(&mut out, row, &fields, cols);
            }
        }
        Ok(out)
    }

    /// Parses one row into `out.bars`, or records why not in `out.rejected`.
    fn accept(&self, out: &mut ParsedFile, line: u64, fields: &[&str], columns: &[Option<usize>]) {
        match self.parse_row(fields, columns) {
            Ok(bar) => out.bars.push(bar),
            Err(reason) => out.rejected.push(RejectedRow { line, reason, raw: fields.join(",") }),
        }
    }

    fn parse_row(&self, fields: &[&str], columns: &[Option<usize>]) -> std::result::Result<(String, Bar), String> {
        let get = |k: usize| -> std::result::Result<Option<&str>, String> {
            match columns[k] {
                None => Ok(None),
                Some(i) => match fields.get(i) {
                    Some(v) => Ok(Some(*v)),
                    None => Err(format!("missing field '{}' (the row has {} fields)", FIELDS[k].0, fields.len())),
                },
            }
        };
        let price = |k: usize| -> std::result::Result<f64, String> {
            let v = get(k)?.unwrap_or_default();
            match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x > 0.0 => Ok(x),
                _ => Err(format!("{} is not a positive number: '{v}'", FIELDS[k].0)),
            }
        };
        let ts_text = get(0)?.unwrap_or_default();
        let mut ts = parse_timestamp(ts_text, self.timezone).ok_or_else(|| format!("ts is not a timestamp: '{ts_text}'"))?;
        if self.bar_size == BarSize::Day {
            // A daily bar is stamped with its session date at midnight New York time.
            let date = NyseCalendar.trading_date(ts);
            ts = NyseCalendar.day_start(date).ok_or_else(|| format!("date {date} out of range"))?;
        }
        let (open, high, low, close) = (price(1)?, price(2)?, price(3)?, price(4)?);
        let volume = match get(5)? {
            None | Some("") => 0.0,
            Some(v) => match v.parse::<f64>() {
                Ok(x) if x.is_finite() && x >= 0.0 && (x - x.round()).abs() < 1e-6 && x < 9.0e18 => x.round(),
                _ => return Err(format!("volume is not a non-negative whole number: '{v}'")),
            },
        };
        let symbol = match get(6)? {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => self.symbol.clone().ok_or("empty symbol and no --symbol")?,
        };
        validate_symbol(&symbol).map_err(|e| e.to_string())?;
        let optional_f64 = |k: usize| get(k).map(|v| v.and_then(|v| v.parse::<f64>().ok()).filter(|x| x.is_finite()));
        let vwap = optional_f64(7)?;
        let trade_count = optional_f64(8)?.map(|x| x.round() as i64);
        Ok((symbol, Bar { ts, open, high, low, close, volume, vwap, trade_count }))
    }
}

/// Parses the timestamp spellings files use: RFC 3339, ISO with or without `T`, US `11/5/2019 9:30`,
/// dates alone, and epoch seconds or milliseconds. Naive times are in `tz`.
pub fn parse_timestamp(s: &str, tz: Tz) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.bytes().all(|b| b.is_ascii_digit()) && s.len() >= 9 && s.len() != 14 {
        let n: i64 = s.parse().ok()?;
        return if s.len() >= 12 { DateTime::from_timestamp_millis(n) } else { DateTime::from_timestamp(n, 0) };
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f%#z") {
        return Some(t.with_timezone(&Utc));
    }
    const DATETIMES: &[&str] = &[
        "%Y-%m-%d %H:%M:%S%.f",
        "%Y-%m-%dT%H:%M:%S%.f",
        "%Y-%m-%d %H:%M",
        "%Y-%m-%dT%H:%M",
        "%m/%d/%Y %H:%M:%S",
        "%m/%d/%Y %H:%M",
        "%Y%m%d %H:%M:%S",
        "%Y%m%d%H%M%S",
    ];
    let naive = DATETIMES
        .iter()
        .find_map(|f| NaiveDateTime::parse_from_str(s, f).ok())
        .or_else(|| ["%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"].iter().find_map(|f| NaiveDate::parse_from_str(s, f).ok()).map(|d| d.and_time(chrono::NaiveTime::MIN)))?;
    // In a DST fall-back hour the earlier of the two instants; a time skipped by spring-forward is an error.
    tz.from_local_datetime(&naive).earliest().map(|t| t.with_timezone(&Utc))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_in_the_spellings_files_use() {
        let ny = crate::calendar::NEW_YORK;
        let want = Utc.with_ymd_and_hms(2019, 11, 5, 14, 30, 0).unwrap();
        for s in ["11/5/2019 9:30", "2019-11-05 09:30:00", "2019-11-05T09:30", "2019-11-05T14:30:00Z", "2019-11-05 09:30:00-05:00", "1572964200", "1572964200000"] {
            assert_eq!(parse_timestamp(s, ny), Some(want), "{s}");
        }
        // Summer: New York is UTC-4.
        assert_eq!(parse_timestamp("7/1/2024 9:30", ny), Some(Utc.with_ymd_and_hms(2024, 7, 1, 13, 30, 0).unwrap()));
        assert_eq!(parse_timestamp("2008-01-02", ny), Some(Utc.with_ymd_and_hms(2008, 1, 2, 5, 0, 0).unwrap()));
        // 02:30 on 2024-03-10 does not exist in New York.
        assert_eq!(parse_timestamp("2024-03-10 02:30", ny), None);
        for bad in ["", "yesterday", "13/45/2019 9:30", "2019-11-05 25:00"] {
            assert_eq!(parse_timestamp(bad, ny), None, "{bad}");
        }
    }

    #[test]
    fn column_maps_parse_and_name_unknown_fields() {
        assert_eq!(parse_column_map("ts=Date, open=Open").unwrap(), [("ts".to_string(), "Date".to_string()), ("open".into(), "Open".into())]);
        assert!(parse_column_map("price=Close").unwrap_err().to_string().contains("unknown field 'price'"));
        assert!(parse_column_map("ts").is_err());
    }
}
