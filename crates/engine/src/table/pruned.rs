//! Reads of a few symbols from a snapshot's partition files, touching only the pages that can hold
//! them. Data files are sorted by `symbol` (see [`data_file`](super::data_file)), so a symbol is one
//! contiguous run: the row-group statistics of `symbol` name the row groups, its page index (the
//! column index) names the pages, and the offset index gives those pages' byte ranges in every
//! wanted column. Only the file's tail (footer and page index) and those pages are fetched, on local
//! disk with `pread`, on S3 as ranged GETs, and decoded in parallel per row group (rayon).
//!
//! A file's footer and page index are parsed once per [`Lake`](super::Lake) and kept in a
//! [`FooterCache`]: version files never change (a new version is a new file), so a cached footer is
//! never stale, and a later read of the file fetches only its pages: one request per file on S3.
//!
//! A file written without statistics or page index (another writer, an old lake) is still read
//! correctly, just with less skipping: a row group without statistics is read whole.

use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::builder::BooleanBufferBuilder;
use arrow::array::{Array, AsArray, BooleanArray, RecordBatch};
use arrow::datatypes::{Schema, SchemaRef};
use bytes::{Buf, Bytes};
use futures::{StreamExt, TryStreamExt};
use object_store::path::Path;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder, RowSelection, RowSelectionPolicy,
    RowSelector,
};
use parquet::errors::ParquetError;
use parquet::file::metadata::{
    ColumnChunkMask, PageIndexPolicy, ParquetMetaData, ParquetMetaDataOptions, ParquetMetaDataReader,
    ParquetStatisticsPolicy,
};
use parquet::file::page_index::column_index::ColumnIndexMetaData;
use parquet::file::reader::{ChunkReader, Length};
use rayon::prelude::*;

use super::{Dataset, PartitionEntry, transaction};
use crate::error::{Error, Result};
use crate::symbol::Symbol;

/// Bytes read from a file's end before its footer's length is known: a curated partition of 500
/// symbols has a 21 KiB footer, and the page index entries of one row group sit just before it; a
/// larger need costs a second read. Below glibc's mmap threshold, so the buffer is not a fresh
/// zero-filled mapping per file.
const TAIL_PREFETCH: u64 = 64 * 1024;

/// Rows of one partition file, in file order: only rows whose `symbol` is wanted.
#[derive(Debug, Clone)]
pub struct SymbolRows {
    pub entry: PartitionEntry,
    pub batches: Vec<RecordBatch>,
}

impl Dataset {
    /// The rows of `symbols` in each of `partitions` (version files of one snapshot), with `columns`
    /// of the contract (in that order; a column an older file lacks comes back null), in the order of
    /// `partitions` and, within each, in file order (by symbol, then ts). Reads only the pages that
    /// can hold the symbols.
    pub async fn read_symbols(
        &self,
        partitions: &[PartitionEntry],
        symbols: &BTreeSet<Symbol>,
        columns: &[&str],
    ) -> Result<Vec<SymbolRows>> {
        let full = self.contract.arrow_schema();
        let fields = columns
            .iter()
            .map(|c| {
                full.field_with_name(c)
                    .cloned()
                    .map_err(|_| Error::invalid(format!("{} has no column '{c}'", self.name())))
            })
            .collect::<Result<Vec<_>>>()?;
        let schema: SchemaRef = Arc::new(Schema::new(fields));
        let want = Arc::new(Want { symbols: symbols.iter().map(|s| s.as_bytes().to_vec()).collect(), schema });
        let files: Vec<FileRead> = match partitions
            .iter()
            .map(|e| self.store.local_path(&self.paths.version_file(&e.partition, &e.file_id)))
            .collect::<Option<Vec<_>>>()
        {
            // Local: a blocking pread per range is cheaper than a round trip through the runtime.
            Some(paths) => {
                let (want, entries, footers) = (want.clone(), partitions.to_vec(), self.footers.clone());
                let keys: Vec<Path> =
                    partitions.iter().map(|e| self.paths.version_file(&e.partition, &e.file_id)).collect();
                let name = self.name().to_string();
                blocking(move || {
                    entries
                        .into_par_iter()
                        .zip(paths)
                        .zip(keys)
                        .map(|((e, p), key)| plan_local(&name, e, &p, key, &footers, &want))
                        .collect()
                })
                .await?
            }
            None => {
                futures::stream::iter(partitions.iter().map(|e| self.plan_remote(e.clone(), want.clone())))
                    .buffered(transaction::IO_CONCURRENCY)
                    .try_collect()
                    .await?
            }
        };
        blocking(move || decode_all(files, &want)).await
    }

    /// Plans one file of an object store: its footer (one request for its tail, unless cached), then
    /// the pages the plan needs (one `get_ranges`, which the store coalesces).
    async fn plan_remote(&self, entry: PartitionEntry, want: Arc<Want>) -> Result<FileRead> {
        let path = self.paths.version_file(&entry.partition, &entry.file_id);
        let size = entry.bytes;
        let missing = || Error::Integrity {
            dataset: self.name().to_string(),
            reason: format!("data file {path} of partition {} is missing (run `quantlake verify`)", entry.partition),
        };
        let footer = match self.footers.get(&path) {
            Some(footer) => footer,
            None => {
                let mut tail_len = TAIL_PREFETCH.min(size);
                let footer = loop {
                    let tail = self
                        .store
                        .get_ranges(&path, std::slice::from_ref(&(size - tail_len..size)))
                        .await?
                        .ok_or_else(missing)?;
                    let tail = tail.into_iter().next().unwrap_or_default();
                    match blocking(move || parse_footer(tail, size)).await? {
                        Step::NeedTail(n) if n > tail_len && n <= size => tail_len = n,
                        Step::NeedTail(n) => {
                            return Err(corrupt(self.name(), &entry, &format!("footer needs {n} of {size} bytes")));
                        }
                        Step::Done(footer) => break footer,
                    }
                };
                self.footers.insert(path.clone(), footer.clone());
                footer
            }
        };
        let mut plan = select(&footer, &want);
        let ranges = coalesce(std::mem::take(&mut plan.ranges));
        let bytes = if ranges.is_empty() {
            Vec::new()
        } else {
            self.store.get_ranges(&path, &ranges).await?.ok_or_else(missing)?
        };
        let chunks = ranges.iter().map(|r| r.start).zip(bytes).collect();
        Ok(FileRead { entry, plan, data: Sparse::new(size, chunks) })
    }
}

/// Parsed footers and page indexes of version files, by path, bounded by their size in memory
/// ([`FOOTER_CACHE_BYTES`]). A footer is parsed with the statistics of `symbol` only and the page
/// index this module uses (the column index of `symbol`, the offset index of every column).
#[derive(Clone)]
pub struct FooterCache(Arc<quick_cache::sync::Cache<Path, ArrowReaderMetadata, FooterWeight>>);

/// Memory the footers of one lake may hold: a curated partition of 500 symbols parses to about
/// 0.2 MiB, so a few thousand partitions' footers.
pub const FOOTER_CACHE_BYTES: u64 = 256 << 20;

impl FooterCache {
    pub fn new(bytes: u64) -> Self {
        // The item estimate only sizes the table up front.
        Self(Arc::new(quick_cache::sync::Cache::with_weighter(1024, bytes, FooterWeight)))
    }

    fn get(&self, path: &Path) -> Option<ArrowReaderMetadata> {
        self.0.get(path)
    }

    fn insert(&self, path: Path, footer: ArrowReaderMetadata) {
        self.0.insert(path, footer);
    }

    /// Footers held, and the bytes they take.
    pub fn usage(&self) -> (usize, u64) {
        (self.0.len(), self.0.weight())
    }
}

impl Default for FooterCache {
    fn default() -> Self {
        Self::new(FOOTER_CACHE_BYTES)
    }
}

impl std::fmt::Debug for FooterCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (files, bytes) = self.usage();
        f.debug_struct("FooterCache").field("files", &files).field("bytes", &bytes).finish()
    }
}

#[derive(Clone)]
struct FooterWeight;

impl quick_cache::Weighter<Path, ArrowReaderMetadata> for FooterWeight {
    fn weight(&self, path: &Path, footer: &ArrowReaderMetadata) -> u64 {
        (path.as_ref().len() + footer.metadata().memory_size()) as u64
    }
}

/// What every file is read for.
struct Want {
    /// The symbols, as bytes (Parquet statistics compare bytes), sorted.
    symbols: BTreeSet<Vec<u8>>,
    /// The output columns.
    schema: SchemaRef,
}

impl Want {
    /// Whether a sorted `[min, max]` range of symbols can contain a wanted one.
    fn overlaps(&self, min: Option<&[u8]>, max: Option<&[u8]>) -> bool {
        match (min, max) {
            (Some(lo), Some(hi)) => self.symbols.range(lo.to_vec()..).next().is_some_and(|s| s.as_slice() <= hi),
            _ => true,
        }
    }
}

/// Which rows and bytes of one file to read.
struct Plan {
    metadata: ArrowReaderMetadata,
    /// Selected row groups, each with its rows (page-granular) as selectors.
    row_groups: Vec<(usize, Vec<RowSelector>)>,
    /// Leaf columns to decode and the output column each one fills.
    leaves: Vec<usize>,
    ranges: Vec<Range<u64>>,
}

/// A planned file with the bytes its plan needs.
struct FileRead {
    entry: PartitionEntry,
    plan: Plan,
    data: Sparse,
}

enum Step<T> {
    /// The footer or page index starts this many bytes before the end.
    NeedTail(u64),
    Done(T),
}

fn corrupt(dataset: &str, e: &PartitionEntry, why: &str) -> Error {
    Error::Integrity {
        dataset: dataset.to_string(),
        reason: format!("data file of partition {} ({}): {why}", e.partition, e.file_id),
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f).await?
}

/// Plans a local file and reads what the plan needs with positioned reads.
fn plan_local(
    dataset: &str,
    entry: PartitionEntry,
    path: &std::path::Path,
    key: Path,
    footers: &FooterCache,
    want: &Want,
) -> Result<FileRead> {
    use std::os::unix::fs::FileExt;
    let file = std::fs::File::open(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => corrupt(dataset, &entry, "missing (run `quantlake verify`)"),
        _ => Error::Io(e),
    })?;
    let size = file.metadata()?.len();
    if size != entry.bytes {
        let why = format!("{size} bytes where the manifest says {} (run `quantlake verify`)", entry.bytes);
        return Err(corrupt(dataset, &entry, &why));
    }
    let read = |r: &Range<u64>| -> Result<Bytes> {
        let mut buf =
            vec![0u8; usize::try_from(r.end - r.start).map_err(|_| corrupt(dataset, &entry, "range too large"))?];
        file.read_exact_at(&mut buf, r.start)?;
        Ok(Bytes::from(buf))
    };
    let footer = match footers.get(&key) {
        Some(footer) => footer,
        None => {
            let mut tail_len = TAIL_PREFETCH.min(size);
            let footer = loop {
                match parse_footer(read(&(size - tail_len..size))?, size)? {
                    Step::NeedTail(n) if n > tail_len && n <= size => tail_len = n,
                    Step::NeedTail(n) => {
                        return Err(corrupt(dataset, &entry, &format!("footer needs {n} of {size} bytes")));
                    }
                    Step::Done(footer) => break footer,
                }
            };
            footers.insert(key, footer.clone());
            footer
        }
    };
    let mut plan = select(&footer, want);
    let ranges = coalesce(std::mem::take(&mut plan.ranges));
    let chunks = ranges.iter().map(|r| Ok((r.start, read(r)?))).collect::<Result<Vec<_>>>()?;
    Ok(FileRead { entry, plan, data: Sparse::new(size, chunks) })
}

/// The leaf column of a top-level column, by name.
fn leaf(metadata: &ParquetMetaData, name: &str) -> Option<usize> {
    let schema = metadata.file_metadata().schema_descr();
    schema.columns().iter().position(|c| matches!(c.path().parts(), [only] if only == name))
}

/// The leaf of `symbol` when it is the first (as in every curated and raw contract): the only column
/// whose statistics and column index a footer keeps.
fn symbol_leaf(metadata: &ParquetMetaData) -> Option<usize> {
    leaf(metadata, "symbol").filter(|i| *i == 0)
}

/// Parses a footer and its page index from the file's tail: the statistics of `symbol` only
/// (decoding the others' would cost more than a read), its column index, and every column's
/// offset index.
fn parse_footer(tail: Bytes, size: u64) -> Result<Step<ArrowReaderMetadata>> {
    let options = ParquetMetaDataOptions::new()
        .with_column_stats_policy(ParquetStatisticsPolicy::skip_except(&[0]))
        .with_encoding_stats_policy(ParquetStatisticsPolicy::SkipAll)
        .with_size_stats_policy(ParquetStatisticsPolicy::SkipAll);
    let mut reader = ParquetMetaDataReader::new().with_metadata_options(Some(options.clone()));
    match reader.try_parse_sized(&tail, size) {
        Err(ParquetError::NeedMoreData(n)) => return Ok(Step::NeedTail(n as u64)),
        r => r?,
    }
    let metadata = reader.finish()?;
    let row_groups = metadata.num_row_groups();
    let symbol = symbol_leaf(&metadata);
    let mut index = ParquetMetaDataReader::new_with_metadata(metadata)
        .with_metadata_options(Some(options))
        .with_column_index_policy(PageIndexPolicy::Optional)
        .with_offset_index_policy(PageIndexPolicy::Optional)
        .with_column_index_mask(ColumnChunkMask::row_groups_and_columns(0..row_groups, symbol));
    if row_groups > 0 {
        match index.read_page_indexes_sized(&tail, size) {
            Err(ParquetError::NeedMoreData(n)) => return Ok(Step::NeedTail(n as u64)),
            r => r?,
        }
    }
    let metadata = index.finish()?;
    Ok(Step::Done(ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())?))
}

/// Keeps the row groups and pages whose `symbol` range can hold a wanted symbol, and lists the byte
/// ranges of their pages in the wanted columns.
fn select(footer: &ArrowReaderMetadata, want: &Want) -> Plan {
    let metadata = footer.metadata();
    let symbol = symbol_leaf(metadata);
    let leaves: Vec<usize> = want.schema.fields().iter().filter_map(|f| leaf(metadata, f.name())).collect();
    let row_groups = (0..metadata.num_row_groups()).filter(|rg| {
        let stats = symbol.and_then(|s| metadata.row_group(*rg).column(s).statistics());
        stats.is_none_or(|st| want.overlaps(st.min_bytes_opt(), st.max_bytes_opt()))
    });
    let pages = metadata.page_index();

    let mut selected = Vec::new();
    let mut ranges = Vec::new();
    for rg in row_groups {
        let rows = usize::try_from(metadata.row_group(rg).num_rows()).unwrap_or(0);
        // Row ranges of the symbol column's pages that can hold a wanted symbol (all rows without an index).
        let locations =
            symbol.and_then(|s| Some((pages?.column_index(rg, s)?, pages?.offset_index(rg, s)?.page_locations())));
        let wanted_rows: Vec<Range<usize>> = match locations {
            Some((ColumnIndexMetaData::BYTE_ARRAY(index), locs)) if locs.len() as u64 == index.num_pages() => {
                let bounds = page_rows(locs.iter().map(|l| l.first_row_index), rows);
                merge(
                    bounds
                        .into_iter()
                        .enumerate()
                        .filter(|(p, _)| {
                            !index.is_null_page(*p) && want.overlaps(index.min_value(*p), index.max_value(*p))
                        })
                        .map(|(_, r)| r),
                )
            }
            _ => std::iter::once(0..rows).collect(),
        };
        if wanted_rows.is_empty() {
            continue;
        }
        for &c in &leaves {
            let chunk = metadata.row_group(rg).column(c);
            let (start, len) = chunk.byte_range();
            match pages.and_then(|p| p.offset_index(rg, c)) {
                Some(oi) if !oi.page_locations().is_empty() => {
                    let locs = oi.page_locations();
                    // The dictionary page, if any, sits before the first data page.
                    if locs[0].offset as u64 > start {
                        ranges.push(start..locs[0].offset as u64);
                    }
                    let bounds = page_rows(locs.iter().map(|l| l.first_row_index), rows);
                    for (loc, r) in locs.iter().zip(bounds) {
                        if wanted_rows.iter().any(|w| w.start < r.end && r.start < w.end) {
                            ranges.push(loc.offset as u64..loc.offset as u64 + loc.compressed_page_size as u64);
                        }
                    }
                }
                _ => ranges.push(start..start + len),
            }
        }
        let mut selectors = Vec::new();
        let mut at = 0;
        for w in &wanted_rows {
            if w.start > at {
                selectors.push(RowSelector::skip(w.start - at));
            }
            selectors.push(RowSelector::select(w.len()));
            at = w.end;
        }
        if rows > at {
            selectors.push(RowSelector::skip(rows - at));
        }
        selected.push((rg, selectors));
    }
    Plan { metadata: footer.clone(), row_groups: selected, leaves, ranges }
}

/// Each page's row range in its row group, from the pages' first rows.
fn page_rows(first_rows: impl Iterator<Item = i64>, rows: usize) -> Vec<Range<usize>> {
    let starts: Vec<usize> = first_rows.map(|r| usize::try_from(r).unwrap_or(0).min(rows)).collect();
    starts.iter().enumerate().map(|(i, s)| *s..starts.get(i + 1).copied().unwrap_or(rows).max(*s)).collect()
}

/// Adjacent or overlapping ranges, merged (input in ascending order).
fn merge(ranges: impl Iterator<Item = Range<usize>>) -> Vec<Range<usize>> {
    let mut out: Vec<Range<usize>> = Vec::new();
    for r in ranges.filter(|r| !r.is_empty()) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Byte ranges sorted and merged when they touch, so each contiguous stretch is one read.
fn coalesce(mut ranges: Vec<Range<u64>>) -> Vec<Range<u64>> {
    ranges.sort_by_key(|r| r.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for r in ranges.into_iter().filter(|r| r.end > r.start) {
        match out.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => out.push(r),
        }
    }
    out
}

/// Decodes every planned row group, one rayon task each, and keeps the wanted symbols' rows.
fn decode_all(files: Vec<FileRead>, want: &Want) -> Result<Vec<SymbolRows>> {
    let tasks: Vec<(usize, usize)> =
        files.iter().enumerate().flat_map(|(f, file)| (0..file.plan.row_groups.len()).map(move |g| (f, g))).collect();
    let decoded: Vec<Vec<RecordBatch>> =
        tasks.par_iter().map(|&(f, g)| decode_row_group(&files[f], g, want)).collect::<Result<_>>()?;
    let mut out: Vec<SymbolRows> =
        files.into_iter().map(|f| SymbolRows { entry: f.entry, batches: Vec::new() }).collect();
    for ((f, _), batches) in tasks.into_iter().zip(decoded) {
        out[f].batches.extend(batches);
    }
    Ok(out)
}

fn decode_row_group(file: &FileRead, g: usize, want: &Want) -> Result<Vec<RecordBatch>> {
    let (rg, selectors) = &file.plan.row_groups[g];
    let rows = selectors.iter().filter(|s| !s.skip).map(|s| s.row_count).sum::<usize>().max(1);
    let schema = file.plan.metadata.metadata().file_metadata().schema_descr_ptr();
    let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(file.data.clone(), file.plan.metadata.clone())
        .with_row_groups(vec![*rg])
        .with_row_selection(RowSelection::from(selectors.clone()))
        .with_row_selection_policy(RowSelectionPolicy::Selectors)
        .with_projection(ProjectionMask::leaves(&schema, file.plan.leaves.iter().copied()))
        .with_batch_size(rows)
        .build()?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = keep_wanted(&batch?, want)?;
        if batch.num_rows() > 0 {
            out.push(batch);
        }
    }
    Ok(out)
}

/// The wanted symbols' rows, in the output columns (cast to the contract's types, nulls for absent ones).
fn keep_wanted(batch: &RecordBatch, want: &Want) -> Result<RecordBatch> {
    let batch = match batch.column_by_name("symbol").and_then(|c| c.as_string_opt::<i32>()) {
        Some(sym) => {
            // Rows come sorted by symbol: one set lookup per run of equal symbols, not per row.
            let n = sym.len();
            let mut keep = BooleanBufferBuilder::new(n);
            let mut i = 0;
            while i < n {
                let s = sym.value(i);
                let mut j = i + 1;
                while j < n && sym.value(j) == s && sym.is_valid(j) == sym.is_valid(i) {
                    j += 1;
                }
                keep.append_n(j - i, sym.is_valid(i) && want.symbols.contains(s.as_bytes()));
                i = j;
            }
            let keep = BooleanArray::new(keep.finish(), None);
            if keep.true_count() == n { batch.clone() } else { arrow::compute::filter_record_batch(batch, &keep)? }
        }
        None => batch.clone(),
    };
    super::data_file::project(&batch, &want.schema)
}

/// Some byte ranges of a file, as a [`ChunkReader`]: the decoder asks only for pages the plan fetched.
#[derive(Clone)]
struct Sparse {
    len: u64,
    chunks: Arc<[(u64, Bytes)]>,
}

impl Sparse {
    fn new(len: u64, mut chunks: Vec<(u64, Bytes)>) -> Self {
        chunks.sort_by_key(|c| c.0);
        Self { len, chunks: chunks.into() }
    }

    fn slice(&self, start: u64, length: Option<usize>) -> parquet::errors::Result<Bytes> {
        let i = self.chunks.partition_point(|(s, _)| *s <= start);
        let found = i.checked_sub(1).map(|i| &self.chunks[i]).and_then(|(s, b)| {
            let from = usize::try_from(start - s).ok()?;
            let to = from.checked_add(length.unwrap_or(b.len().saturating_sub(from)))?;
            (to <= b.len()).then(|| b.slice(from..to))
        });
        found.ok_or_else(|| ParquetError::General(format!("bytes {start}+{length:?} of the file were not fetched")))
    }
}

impl Length for Sparse {
    fn len(&self) -> u64 {
        self.len
    }
}

impl ChunkReader for Sparse {
    type T = bytes::buf::Reader<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        Ok(self.slice(start, None)?.reader())
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.slice(start, Some(length))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_merge_and_coalesce() {
        assert_eq!(merge([0..2, 2..4, 6..8, 7..9, 9..9].into_iter()), vec![0..4, 6..9]);
        assert_eq!(coalesce(vec![10..20, 0..5, 5..7, 19..25, 30..30]), vec![0..7, 10..25]);
        assert_eq!(page_rows([0i64, 2048, 4096].into_iter(), 5000), vec![0..2048, 2048..4096, 4096..5000]);
    }

    #[test]
    fn sparse_reads_only_fetched_ranges() {
        let s = Sparse::new(100, vec![(50, Bytes::from_static(b"0123456789")), (10, Bytes::from_static(b"abc"))]);
        assert_eq!(s.get_bytes(11, 2).unwrap(), Bytes::from_static(b"bc"));
        assert_eq!(s.get_bytes(55, 5).unwrap(), Bytes::from_static(b"56789"));
        assert!(s.get_bytes(55, 6).is_err());
        assert!(s.get_bytes(0, 1).is_err());
        assert!(s.get_bytes(20, 1).is_err());
    }

    #[test]
    fn symbol_ranges_overlap() {
        let want = Want {
            symbols: ["AAPL", "MSFT"].iter().map(|s| s.as_bytes().to_vec()).collect(),
            schema: Arc::new(Schema::empty()),
        };
        assert!(want.overlaps(Some(b"A"), Some(b"B")));
        assert!(want.overlaps(Some(b"AAPL"), Some(b"AAPL")));
        assert!(!want.overlaps(Some(b"AAPM"), Some(b"MSFS")));
        assert!(want.overlaps(Some(b"MSFT"), Some(b"ZZZ")));
        assert!(!want.overlaps(Some(b"MSFU"), Some(b"ZZZ")));
        assert!(want.overlaps(None, Some(b"A")), "no statistics: read it");
    }
}
