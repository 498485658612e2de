//! A file of rows written as they come (Parquet or Arrow IPC): a long build such as a training set
//! hands its rows over session by session and never holds them all. The rows go to a temporary file
//! beside the target, renamed into place by [`RowsFile::finish`]: a build that fails (a leakage
//! error after the last row) or is stopped leaves no file that looks complete.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use arrow::array::RecordBatch;
use arrow::ipc::writer::FileWriter;
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::{ArrowRowGroupWriterFactory, compute_leaves};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::file::writer::SerializedFileWriter;
use parquet::schema::types::ColumnPath;
use rayon::prelude::*;

use quantlake::error::{Error, Result};

/// The formats of a file of rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowsFormat {
    Parquet,
    Arrow,
}

impl RowsFormat {
    /// The format a path's extension names: `.parquet`, or `.arrow` / `.ipc` / `.feather`.
    pub fn of(path: &Path) -> Result<Self> {
        match path.extension().and_then(|e| e.to_str()) {
            Some("parquet") => Ok(Self::Parquet),
            Some("arrow" | "ipc" | "feather") => Ok(Self::Arrow),
            _ => Err(Error::invalid(format!("--output {}: name a .parquet or .arrow file", path.display()))),
        }
    }
}

/// Dictionaries only for `symbol`: the other columns (floats, timestamps) are mostly distinct, and
/// interning them would cost the writer more than it saves. Statistics (what readers prune row groups
/// and pages with) for the key columns, `symbol` and `ts`, where a filter goes. Values reach the
/// encoders 16,384 at a time (the default 1,024 checks the page size 16 times as often).
fn parquet_properties() -> WriterProperties {
    let mut properties = WriterProperties::builder()
        .set_dictionary_enabled(false)
        .set_statistics_enabled(EnabledStatistics::None)
        .set_write_batch_size(16_384);
    for key in ["symbol", "ts"] {
        properties = properties.set_column_statistics_enabled(ColumnPath::from(key), EnabledStatistics::Page);
    }
    properties.set_column_dictionary_enabled(ColumnPath::from("symbol"), true).build()
}

enum Writer {
    /// Each batch is one row group, its columns encoded in parallel.
    Parquet {
        file: SerializedFileWriter<BufWriter<File>>,
        columns: ArrowRowGroupWriterFactory,
        row_groups: usize,
    },
    Arrow(FileWriter<BufWriter<File>>),
}

/// Rows on their way to `path`.
pub struct RowsFile {
    path: PathBuf,
    partial: PathBuf,
    format: RowsFormat,
    writer: Option<Writer>,
    rows: u64,
}

impl RowsFile {
    pub fn create(path: &Path, format: RowsFormat) -> Result<Self> {
        let name =
            path.file_name().ok_or_else(|| Error::invalid(format!("--output {}: not a file name", path.display())))?;
        let partial = path.with_file_name(format!(".{}.partial-{}", name.to_string_lossy(), std::process::id()));
        Ok(Self { path: path.to_path_buf(), partial, format, writer: None, rows: 0 })
    }

    /// Appends `batch`; the first one (rows or not) fixes the schema.
    pub fn write(&mut self, batch: &RecordBatch) -> Result<()> {
        if self.writer.is_none() {
            let file = File::create(&self.partial)
                .map_err(|e| Error::invalid(format!("--output {}: {e}", self.path.display())))?;
            let sink = BufWriter::with_capacity(1 << 20, file);
            let schema = batch.schema();
            self.writer = Some(match self.format {
                RowsFormat::Parquet => {
                    let (file, columns) =
                        ArrowWriter::try_new(sink, schema, Some(parquet_properties()))?.into_serialized_writer()?;
                    Writer::Parquet { file, columns, row_groups: 0 }
                }
                RowsFormat::Arrow => Writer::Arrow(FileWriter::try_new(sink, &schema)?),
            });
        }
        if batch.num_rows() == 0 {
            return Ok(()); // the schema is set; no empty row group
        }
        match self.writer.as_mut() {
            Some(Writer::Parquet { file, columns, row_groups }) => {
                let schema = batch.schema();
                let mut leaves = Vec::with_capacity(batch.num_columns());
                for (field, column) in schema.fields().iter().zip(batch.columns()) {
                    leaves.extend(compute_leaves(field, column)?);
                }
                let writers = columns.create_column_writers(*row_groups)?;
                let chunks = writers
                    .into_par_iter()
                    .zip(leaves)
                    .map(|(mut writer, leaf)| {
                        writer.write(&leaf)?;
                        writer.close()
                    })
                    .collect::<parquet::errors::Result<Vec<_>>>()?;
                let mut group = file.next_row_group()?;
                for chunk in chunks {
                    chunk.append_to_row_group(&mut group)?;
                }
                group.close()?;
                *row_groups += 1;
            }
            Some(Writer::Arrow(w)) => w.write(batch)?,
            None => {}
        }
        self.rows += batch.num_rows() as u64;
        Ok(())
    }

    /// Closes the file and moves it to its path; the rows written. A file needs at least one row (its
    /// schema comes from the rows).
    pub fn finish(mut self) -> Result<u64> {
        match self.writer.take() {
            None => return Err(Error::invalid("no rows to write")),
            Some(Writer::Parquet { file, .. }) => {
                let mut sink = file.into_inner()?;
                std::io::Write::flush(&mut sink)?;
            }
            Some(Writer::Arrow(mut w)) => {
                w.finish()?;
                let mut sink = w.into_inner()?;
                std::io::Write::flush(&mut sink)?;
            }
        }
        std::fs::rename(&self.partial, &self.path)
            .map_err(|e| Error::invalid(format!("--output {}: {e}", self.path.display())))?;
        Ok(self.rows)
    }
}

impl Drop for RowsFile {
    fn drop(&mut self) {
        // Unfinished (an error or a stop): the partial file goes.
        if self.partial.exists() {
            let _ = std::fs::remove_file(&self.partial);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn batch(n: i64) -> RecordBatch {
        let a = Arc::new(arrow::array::Int64Array::from_iter_values(0..n));
        RecordBatch::try_from_iter([("a", a as arrow::array::ArrayRef)]).unwrap()
    }

    #[test]
    fn rows_appear_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        for (name, format) in [("set.parquet", RowsFormat::Parquet), ("set.arrow", RowsFormat::Arrow)] {
            let path = dir.path().join(name);
            assert_eq!(RowsFormat::of(&path).unwrap(), format);
            let mut file = RowsFile::create(&path, format).unwrap();
            file.write(&batch(3)).unwrap();
            file.write(&batch(2)).unwrap();
            assert!(!path.exists(), "nothing at the path before finish");
            assert_eq!(file.finish().unwrap(), 5);
            assert!(path.exists());
        }
        let parquet = File::open(dir.path().join("set.parquet")).unwrap();
        let rows: usize = parquet::arrow::arrow_reader::ParquetRecordBatchReader::try_new(parquet, 1024)
            .unwrap()
            .map(|b| b.unwrap().num_rows())
            .sum();
        assert_eq!(rows, 5);

        // Dropped unfinished (an error after some rows): no file, no partial file left behind.
        let path = dir.path().join("failed.parquet");
        let mut file = RowsFile::create(&path, RowsFormat::Parquet).unwrap();
        file.write(&batch(3)).unwrap();
        drop(file);
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left.len(), 2, "{left:?}");
        assert!(RowsFormat::of(Path::new("x.csv")).is_err());
        assert!(RowsFile::create(&dir.path().join("empty.parquet"), RowsFormat::Parquet).unwrap().finish().is_err());
    }
}
