//! Reference files (CSV or Parquet) as rows of text, for the importers that find their columns by
//! name: each row's values as strings (a Parquet value cast to its text form, null as empty), with
//! where it is in the file for error messages (`line N` of a CSV, counting the header as line 1;
//! `row N` of a Parquet file, from 1).

use std::path::Path;

use arrow::array::{Array, AsArray, StringArray};
use arrow::datatypes::DataType;

use crate::error::{Error, Result};
use crate::sources::file::FileFormat;

/// The format `format` names, else the one `path`'s extension says.
pub(crate) fn format_of(path: &Path, format: Option<FileFormat>) -> Result<FileFormat> {
    if let Some(f) = format {
        return Ok(f);
    }
    match path.extension().and_then(|e| e.to_str()).map(str::to_ascii_lowercase).as_deref() {
        Some("csv") | Some("txt") => Ok(FileFormat::Csv),
        Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
        _ => Err(Error::invalid(format!("cannot tell the format of {}; pass --format csv|parquet", path.display()))),
    }
}

/// An error naming the `missing` required columns and the ones the file has; `Ok` when none is missing.
pub(crate) fn check_required(origin: &str, missing: &[&str], headers: &[String]) -> Result<()> {
    if missing.is_empty() {
        return Ok(());
    }
    Err(Error::invalid(format!("{origin}: missing column(s) {} (columns: {})", missing.join(", "), headers.join(", "))))
}

/// Reads `path`: `header` once with the column names (it may refuse them, or say what they are), then
/// `row` for each row with what `header` said, where the row is and its values (as many as the
/// header's). Returns what `header` said.
pub(crate) fn read_text_rows<T>(
    path: &Path,
    format: Option<FileFormat>,
    header: impl FnOnce(&[String]) -> Result<T>,
    mut row: impl FnMut(&T, &str, &[&str]),
) -> Result<T> {
    let origin = path.display().to_string();
    let open_error = |source| Error::ReadFile { path: path.to_path_buf(), source };
    match format_of(path, format)? {
        FileFormat::Csv => {
            let file = std::fs::File::open(path).map_err(open_error)?;
            let mut reader = csv::ReaderBuilder::new().trim(csv::Trim::All).from_reader(std::io::BufReader::new(file));
            let headers: Vec<String> = reader
                .headers()
                .map_err(|e| Error::invalid(format!("{origin}: cannot read the header: {e}")))?
                .iter()
                .map(|h| h.trim_start_matches('\u{feff}').to_string())
                .collect();
            let columns = header(&headers)?;
            for record in reader.records() {
                let record = record.map_err(|e| {
                    Error::invalid(format!(
                        "{origin}: line {}: unreadable row: {e}",
                        e.position().map_or(0, |p| p.line())
                    ))
                })?;
                let line = record.position().map_or(0, |p| p.line());
                let values: Vec<&str> = record.iter().collect();
                row(&columns, &format!("line {line}"), &values);
            }
            Ok(columns)
        }
        FileFormat::Parquet => {
            let bytes = std::fs::read(path).map_err(open_error)?;
            let reader =
                parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))?;
            let headers: Vec<String> = reader.schema().fields().iter().map(|f| f.name().clone()).collect();
            let columns = header(&headers)?;
            let mut n = 0u64;
            for batch in reader.build()? {
                let batch = batch?;
                let text: Vec<StringArray> = batch
                    .columns()
                    .iter()
                    .map(|c| arrow::compute::cast(c, &DataType::Utf8).map(|a| a.as_string::<i32>().clone()))
                    .collect::<std::result::Result<_, _>>()?;
                for i in 0..batch.num_rows() {
                    n += 1;
                    let values: Vec<&str> = text.iter().map(|a| if a.is_null(i) { "" } else { a.value(i) }).collect();
                    row(&columns, &format!("row {n}"), &values);
                }
            }
            Ok(columns)
        }
    }
}
