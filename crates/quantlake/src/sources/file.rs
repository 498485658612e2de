//! Bars from CSV and Parquet files: a column mapping, a source time zone for naive timestamps, minute or
//! daily bars. Rows that cannot be read (a bad timestamp, a missing field, a negative or NaN price) are
//! returned as rejected rows with their line numbers, for the ingest to quarantine; nothing is dropped.
//!
//! Column names are matched case-insensitively; without `--columns`, common names are recognised
//! (`ts|timestamp|datetime|date|time`, `open`, `high`, `low`, `close`, `volume`, `symbol|ticker`,
//! `vwap`, `trade_count|trades|n`). Non-standard orders such as `Date,Open,Close,High,Low` need no mapping.

use std::path::PathBuf;

use arrow::array::{Array, ArrayRef, AsArray, Float64Array, RecordBatch};
use arrow::datatypes::DataType;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::bars::{Bar, BarColumns, BarSize};
use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};
use crate::symbol::Symbol;

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
    pub symbol: Option<Symbol>,
}

/// A row that could not be imported.
#[derive(Debug, Clone, Serialize)]
pub struct RejectedRow {
    /// 1-based line in a CSV file (the header is line 1), or 1-based row in a Parquet file.
    pub line: u64,
    pub reason: String,
    pub raw: String,
}

/// What a file held: its readable bars as columns (file order), and the rows that were not.
#[derive(Debug, Default)]
pub struct ParsedFile {
    pub bars: BarColumns,
    /// The distinct symbols of `bars`.
    pub symbols: std::collections::HashSet<Symbol>,
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
                return Err(Error::invalid(format!(
                    "--columns: unknown field '{field}' (fields: {})",
                    known.join(", ")
                )));
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
        match extension(&self.path).as_deref() {
            Some("csv") | Some("txt") => Ok(FileFormat::Csv),
            Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
            _ => Err(Error::invalid(format!(
                "cannot tell the format of {}; pass --format csv|parquet",
                self.path.display()
            ))),
        }
    }

    /// Index of each field's column in `headers` (None for absent optional fields).
    fn resolve(&self, headers: &[String]) -> Result<Vec<Option<usize>>> {
        // Spreadsheet exports often start with a byte-order mark.
        let find = |name: &str| {
            headers.iter().position(|h| h.trim().trim_start_matches('\u{feff}').eq_ignore_ascii_case(name))
        };
        let mut out = Vec::new();
        for (field, aliases, required) in FIELDS {
            let idx = match self.columns.iter().find(|(f, _)| f == field) {
                Some((_, column)) => Some(find(column).ok_or_else(|| {
                    Error::invalid(format!(
                        "{}: no column '{column}' (for {field}); columns are: {}",
                        self.path.display(),
                        headers.join(", ")
                    ))
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
        Ok(out)
    }

    /// The files `path` names: itself, every CSV/Parquet file under a directory (recursively), or the
    /// files a glob pattern (`raw/*/part.parquet`, `**` for any depth) matches; sorted.
    pub fn files(&self) -> Result<Vec<PathBuf>> {
        let path = &self.path;
        let importable = |p: &std::path::Path| match self.format {
            Some(FileFormat::Csv) => matches!(extension(p).as_deref(), Some("csv" | "txt")),
            Some(FileFormat::Parquet) => matches!(extension(p).as_deref(), Some("parquet" | "pq")),
            None => matches!(extension(p).as_deref(), Some("csv" | "txt" | "parquet" | "pq")),
        };
        let mut files = if path.is_dir() {
            let mut out = Vec::new();
            let mut dirs = vec![path.clone()];
            while let Some(dir) = dirs.pop() {
                for entry in std::fs::read_dir(&dir).map_err(|source| Error::ReadFile { path: dir.clone(), source })? {
                    let p = entry?.path();
                    if p.is_dir() {
                        dirs.push(p);
                    } else if importable(&p) {
                        out.push(p);
                    }
                }
            }
            out
        } else if path.exists() {
            vec![path.clone()]
        } else {
            let pattern =
                path.to_str().ok_or_else(|| Error::invalid(format!("{}: the path is not UTF-8", path.display())))?;
            if !pattern.contains(['*', '?', '[']) {
                return Err(Error::ReadFile {
                    path: path.clone(),
                    source: std::io::Error::from(std::io::ErrorKind::NotFound),
                });
            }
            let matches = glob::glob(pattern).map_err(|e| Error::invalid(format!("--path {pattern}: {e}")))?;
            matches.filter_map(|m| m.ok()).filter(|p| p.is_file()).collect()
        };
        if files.is_empty() {
            return Err(Error::invalid(format!("{}: no CSV or Parquet files there", path.display())));
        }
        files.sort();
        Ok(files)
    }

    /// This import for one of its files.
    pub fn for_file(&self, path: PathBuf) -> FileImport {
        FileImport { path, ..self.clone() }
    }

    /// The UTC µs range of a Parquet file's bars from its footer's statistics, without reading its
    /// rows; `None` when the footer cannot tell (CSV, naive timestamps, no statistics, daily bars).
    pub fn time_range(&self) -> Result<Option<(i64, i64)>> {
        use parquet::arrow::arrow_reader::statistics::StatisticsConverter;
        if self.bar_size != BarSize::Minute || self.format()? != FileFormat::Parquet {
            return Ok(None);
        }
        let file =
            std::fs::File::open(&self.path).map_err(|source| Error::ReadFile { path: self.path.clone(), source })?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
        let headers: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        let Some(ts) = self.resolve(&headers)?[0] else { return Ok(None) };
        let field = builder.schema().field(ts);
        if !matches!(field.data_type(), DataType::Timestamp(_, Some(_))) {
            return Ok(None);
        }
        let converter = StatisticsConverter::try_new(field.name(), builder.schema(), builder.parquet_schema())?;
        let groups = builder.metadata().row_groups();
        let (mins, maxes) = (converter.row_group_mins(groups.iter())?, converter.row_group_maxes(groups.iter())?);
        let (Some(mins), Some(maxes)) = (micros_utc(&mins), micros_utc(&maxes)) else { return Ok(None) };
        // Every row group must have both statistics, or the range could miss rows.
        let (mins, maxes): (Option<Vec<i64>>, Option<Vec<i64>>) =
            (mins.into_iter().collect(), maxes.into_iter().collect());
        Ok(match (mins, maxes) {
            (Some(mins), Some(maxes)) => mins.into_iter().min().zip(maxes.into_iter().max()),
            _ => None,
        })
    }

    /// Reads the whole file.
    pub fn read(&self) -> Result<ParsedFile> {
        match self.format()? {
            FileFormat::Csv => self.read_csv(),
            FileFormat::Parquet => self.read_parquet(),
        }
    }

    fn read_csv(&self) -> Result<ParsedFile> {
        let file =
            std::fs::File::open(&self.path).map_err(|source| Error::ReadFile { path: self.path.clone(), source })?;
        let mut reader =
            csv::ReaderBuilder::new().flexible(true).trim(csv::Trim::All).from_reader(std::io::BufReader::new(file));
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
        let file =
            std::fs::File::open(&self.path).map_err(|source| Error::ReadFile { path: self.path.clone(), source })?;
        let builder = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file)?;
        let rows = usize::try_from(builder.metadata().file_metadata().num_rows()).unwrap_or(0);
        let headers: Vec<String> = builder.schema().fields().iter().map(|f| f.name().clone()).collect();
        let columns = self.resolve(&headers)?;
        let reader = builder.with_batch_size(65_536).build()?;
        let mut out = ParsedFile { bars: BarColumns::with_capacity(rows), ..ParsedFile::default() };
        let mut row = 0u64;
        for batch in reader {
            let batch = batch?;
            if !self.append_typed(&mut out, &batch, &columns, row)? {
                self.append_as_text(&mut out, &batch, &columns, row)?;
            }
            row += batch.num_rows() as u64;
        }
        Ok(out)
    }

    /// Every column as text, through the one row parser both formats share (timestamps print as ISO
    /// 8601). The general path: any column types, naive timestamps, daily bars.
    fn append_as_text(
        &self,
        out: &mut ParsedFile,
        batch: &RecordBatch,
        columns: &[Option<usize>],
        first_row: u64,
    ) -> Result<()> {
        let text: Vec<arrow::array::StringArray> = batch
            .columns()
            .iter()
            .map(|c| arrow::compute::cast(c, &DataType::Utf8).map(|a| a.as_string::<i32>().clone()))
            .collect::<std::result::Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            let fields: Vec<&str> = text.iter().map(|a| if a.is_null(i) { "" } else { a.value(i) }).collect();
            self.accept(out, first_row + i as u64 + 1, &fields, columns);
        }
        Ok(())
    }

    /// The fast path for typed columns (zoned timestamps, integer or float64 numbers, string symbols;
    /// minute bars): whole columns checked at once, with exactly the row parser's rules. Rows that fail
    /// a check go through the row parser for their reason. `false` when the batch's types need the text
    /// path.
    fn append_typed(
        &self,
        out: &mut ParsedFile,
        batch: &RecordBatch,
        columns: &[Option<usize>],
        first_row: u64,
    ) -> Result<bool> {
        if self.bar_size != BarSize::Minute {
            return Ok(false);
        }
        let column = |k: usize| columns[k].map(|i| batch.column(i));
        let Some(ts) = column(0).and_then(micros_utc) else { return Ok(false) };
        let numbers =
            |k: usize| -> Option<Option<Float64Array>> { column(k).map(exact_f64).map_or(Some(None), |a| a.map(Some)) };
        let (Some(Some(open)), Some(Some(high)), Some(Some(low)), Some(Some(close))) =
            (numbers(1), numbers(2), numbers(3), numbers(4))
        else {
            return Ok(false);
        };
        let (Some(volume), Some(vwap), Some(trades)) = (numbers(5), numbers(7), numbers(8)) else { return Ok(false) };
        let symbols = match column(6) {
            None => None,
            Some(c) => match c.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(_, _) => {
                    let cast = arrow::compute::cast(c, &DataType::Utf8)
                        .ok()
                        .filter(|a| matches!(a.data_type(), DataType::Utf8));
                    match cast {
                        Some(a) => Some(a.as_string::<i32>().clone()),
                        None => return Ok(false),
                    }
                }
                _ => return Ok(false),
            },
        };
        // The last symbol seen valid, and all of them, borrowed: rows in arrival order change symbol on
        // every row, so this set is looked up per row (foldhash: a fast hash for short keys).
        let mut last_valid: Option<&str> = None;
        let mut valid: foldhash::HashSet<&str> = foldhash::HashSet::default();
        let mut failed: Vec<usize> = Vec::new();
        #[allow(clippy::needless_range_loop)] // `i` indexes six columns, not one slice
        for i in 0..batch.num_rows() {
            let price = |a: &Float64Array| a.is_valid(i) && a.value(i).is_finite() && a.value(i) > 0.0;
            let (Some(t), true, true, true, true) = (ts[i], price(&open), price(&high), price(&low), price(&close))
            else {
                failed.push(i);
                continue;
            };
            let volume = match &volume {
                Some(v) if v.is_valid(i) => {
                    let x = v.value(i);
                    if !(x.is_finite() && x >= 0.0 && (x - x.round()).abs() < 1e-6 && x < 9.0e18) {
                        failed.push(i);
                        continue;
                    }
                    x.round()
                }
                _ => 0.0,
            };
            let symbol = match &symbols {
                Some(s) if s.is_valid(i) && !s.value(i).is_empty() => s.value(i),
                _ => match &self.symbol {
                    Some(s) => s.as_str(),
                    None => {
                        failed.push(i);
                        continue;
                    }
                },
            };
            // Symbols come in runs (or from a small set): validate each distinct one once.
            if last_valid != Some(symbol) {
                if !valid.contains(symbol) {
                    let Ok(checked) = Symbol::new(symbol) else {
                        failed.push(i);
                        continue;
                    };
                    if !out.symbols.contains(symbol) {
                        out.symbols.insert(checked);
                    }
                    valid.insert(symbol);
                }
                last_valid = Some(symbol);
            }
            let optional = |a: &Option<Float64Array>| {
                a.as_ref().filter(|a| a.is_valid(i)).map(|a| a.value(i)).filter(|x| x.is_finite())
            };
            out.bars.symbol.append_value(symbol);
            out.bars.ts.push(t);
            out.bars.open.push(open.value(i));
            out.bars.high.push(high.value(i));
            out.bars.low.push(low.value(i));
            out.bars.close.push(close.value(i));
            out.bars.volume.push(volume);
            out.bars.vwap.push(optional(&vwap));
            out.bars.trade_count.push(optional(&trades).map(|x| x.round() as i64));
        }
        for i in failed {
            self.append_as_text(out, &batch.slice(i, 1), columns, first_row + i as u64)?;
        }
        Ok(true)
    }

    /// Parses one row into `out.bars`, or records why not in `out.rejected`.
    fn accept(&self, out: &mut ParsedFile, line: u64, fields: &[&str], columns: &[Option<usize>]) {
        match self.parse_row(fields, columns) {
            Ok((symbol, bar)) => {
                out.bars.push(&symbol, &bar);
                if !out.symbols.contains(symbol.as_str()) {
                    out.symbols.insert(symbol);
                }
            }
            Err(reason) => out.rejected.push(RejectedRow { line, reason, raw: fields.join(",") }),
        }
    }

    fn parse_row(&self, fields: &[&str], columns: &[Option<usize>]) -> std::result::Result<(Symbol, Bar), String> {
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
        let mut ts =
            parse_timestamp(ts_text, self.timezone).ok_or_else(|| format!("ts is not a timestamp: '{ts_text}'"))?;
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
            Some(s) if !s.is_empty() => Symbol::new(s).map_err(|e| e.to_string())?,
            _ => self.symbol.clone().ok_or("empty symbol and no --symbol")?,
        };
        let optional_f64 = |k: usize| get(k).map(|v| v.and_then(|v| v.parse::<f64>().ok()).filter(|x| x.is_finite()));
        let vwap = optional_f64(7)?;
        let trade_count = optional_f64(8)?.map(|x| x.round() as i64);
        Ok((symbol, Bar { ts, open, high, low, close, volume, vwap, trade_count }))
    }
}

fn extension(path: &std::path::Path) -> Option<String> {
    path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase)
}

/// A zoned timestamp column as UTC µs per row (`None` for nulls and values out of range), as the text
/// path would read it; `None` for other types (naive timestamps are local times: the text path).
fn micros_utc(array: &ArrayRef) -> Option<Vec<Option<i64>>> {
    use arrow::datatypes::{
        TimeUnit, TimestampMicrosecondType, TimestampMillisecondType, TimestampNanosecondType, TimestampSecondType,
    };
    let DataType::Timestamp(unit, Some(_)) = array.data_type() else { return None };
    let convert =
        |values: Vec<Option<i64>>, f: &dyn Fn(i64) -> Option<i64>| values.into_iter().map(|v| v.and_then(f)).collect();
    // Whole seconds and milliseconds scale exactly; nanoseconds round down to the microsecond, as
    // chrono does when the text path reads them.
    Some(match unit {
        TimeUnit::Second => {
            convert(array.as_primitive::<TimestampSecondType>().iter().collect(), &|s| s.checked_mul(1_000_000))
        }
        TimeUnit::Millisecond => {
            convert(array.as_primitive::<TimestampMillisecondType>().iter().collect(), &|ms| ms.checked_mul(1_000))
        }
        TimeUnit::Microsecond => array.as_primitive::<TimestampMicrosecondType>().iter().collect(),
        TimeUnit::Nanosecond => {
            convert(array.as_primitive::<TimestampNanosecondType>().iter().collect(), &|ns| Some(ns.div_euclid(1_000)))
        }
    })
    .map(|v: Vec<Option<i64>>| {
        v.into_iter().map(|t| t.filter(|t| DateTime::from_timestamp_micros(*t).is_some())).collect()
    })
}

/// A numeric column as float64 when the conversion gives what parsing its text would (float64 and
/// integers; not float32, whose shortest text is a different float64), else `None`.
fn exact_f64(array: &ArrayRef) -> Option<Float64Array> {
    match array.data_type() {
        DataType::Float64 => Some(array.as_primitive::<arrow::datatypes::Float64Type>().clone()),
        DataType::Int8
        | DataType::Int16
        | DataType::Int32
        | DataType::Int64
        | DataType::UInt8
        | DataType::UInt16
        | DataType::UInt32
        | DataType::UInt64 => arrow::compute::cast(array, &DataType::Float64)
            .ok()
            .map(|a| a.as_primitive::<arrow::datatypes::Float64Type>().clone()),
        _ => None,
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
    let naive = DATETIMES.iter().find_map(|f| NaiveDateTime::parse_from_str(s, f).ok()).or_else(|| {
        ["%Y-%m-%d", "%m/%d/%Y", "%Y%m%d"]
            .iter()
            .find_map(|f| NaiveDate::parse_from_str(s, f).ok())
            .map(|d| d.and_time(chrono::NaiveTime::MIN))
    })?;
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
        for s in [
            "11/5/2019 9:30",
            "2019-11-05 09:30:00",
            "2019-11-05T09:30",
            "2019-11-05T14:30:00Z",
            "2019-11-05 09:30:00-05:00",
            "1572964200",
            "1572964200000",
        ] {
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

    /// The typed Parquet path accepts and refuses exactly the rows the text path does, with the same
    /// values and reasons.
    #[test]
    fn the_typed_path_reads_what_the_text_path_reads() {
        use arrow::array::{Float64Array, Int64Array, StringArray, TimestampMillisecondArray};
        use std::sync::Arc;
        let t0 = 1_704_205_800_000i64; // 2024-01-02 14:30 UTC, in ms
        let ts = TimestampMillisecondArray::from(vec![
            Some(t0),
            Some(t0 + 60_000),
            None,
            Some(t0 + 120_000),
            Some(t0 + 180_000),
            Some(t0 + 240_000),
            Some(t0 + 300_000),
            Some(t0 + 360_000),
        ])
        .with_timezone("America/New_York");
        let price = |bad: Option<f64>, at: usize| {
            Float64Array::from(
                (0..8).map(|i| if i == at { bad } else { Some(100.25 + i as f64 / 3.0) }).collect::<Vec<_>>(),
            )
        };
        let batch = RecordBatch::try_from_iter([
            ("ts", Arc::new(ts) as ArrayRef),
            (
                "symbol",
                Arc::new(StringArray::from(vec![
                    Some("AAPL"),
                    Some(""),
                    Some("AAPL"),
                    None,
                    Some("../x"),
                    Some("MSFT"),
                    Some("MSFT"),
                    Some("BRK.B"),
                ])) as ArrayRef,
            ),
            ("open", Arc::new(price(Some(-1.0), 3)) as ArrayRef),
            ("high", Arc::new(price(None, 6)) as ArrayRef),
            ("low", Arc::new(price(Some(f64::NAN), 7)) as ArrayRef),
            ("close", Arc::new(price(Some(f64::INFINITY), 1)) as ArrayRef),
            (
                "volume",
                Arc::new(Int64Array::from(vec![Some(100), None, Some(1), Some(2), Some(3), Some(-5), Some(7), Some(8)]))
                    as ArrayRef,
            ),
            (
                "vwap",
                Arc::new(Float64Array::from(vec![
                    Some(1.5),
                    Some(f64::NAN),
                    None,
                    Some(2.0),
                    None,
                    None,
                    None,
                    Some(0.1),
                ])) as ArrayRef,
            ),
            (
                "trades",
                Arc::new(Float64Array::from(vec![Some(1.6), None, None, None, None, None, None, Some(2.4)]))
                    as ArrayRef,
            ),
        ])
        .unwrap();
        for symbol in [None, Some(Symbol::new("DEF").unwrap())] {
            let import = FileImport {
                path: "x.parquet".into(),
                format: None,
                columns: Vec::new(),
                timezone: crate::calendar::NEW_YORK,
                bar_size: BarSize::Minute,
                symbol,
            };
            let headers: Vec<String> = batch.schema().fields().iter().map(|f| f.name().clone()).collect();
            let columns = import.resolve(&headers).unwrap();
            let (mut typed, mut text) = (ParsedFile::default(), ParsedFile::default());
            assert!(import.append_typed(&mut typed, &batch, &columns, 10).unwrap());
            import.append_as_text(&mut text, &batch, &columns, 10).unwrap();
            let show = |p: &mut ParsedFile| {
                let b = &mut p.bars;
                let symbols: Vec<Option<String>> =
                    b.symbol.finish_cloned().iter().map(|s| s.map(str::to_string)).collect();
                let rejected: Vec<(u64, String)> = p.rejected.iter().map(|r| (r.line, r.reason.clone())).collect();
                let distinct: std::collections::BTreeSet<&Symbol> = p.symbols.iter().collect();
                format!(
                    "{distinct:?} {symbols:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {:?} {rejected:?}",
                    b.ts, b.open, b.high, b.low, b.close, b.volume, b.vwap, b.trade_count
                )
            };
            let (typed, text) = (show(&mut typed), show(&mut text));
            assert_eq!(typed, text);
            assert!(text.contains("(13, \"ts is not a timestamp: ''\")") && text.contains("../x"), "{text}");
        }
    }

    #[test]
    fn column_maps_parse_and_name_unknown_fields() {
        assert_eq!(
            parse_column_map("ts=Date, open=Open").unwrap(),
            [("ts".to_string(), "Date".to_string()), ("open".into(), "Open".into())]
        );
        assert!(parse_column_map("price=Close").unwrap_err().to_string().contains("unknown field 'price'"));
        assert!(parse_column_map("ts").is_err());
    }
}
