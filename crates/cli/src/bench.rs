//! Benchmark jobs (`quantlake bench`): the peer benchmark's curate + features job
//! (`../shared/bench/peers/README.md`) run through the pipeline's own stages, so its timing is the
//! pipeline's: the file import of the directory in one call, [`quantlake::curate::curate`] and
//! [`quantlake::features::compute_features`] committing to a scratch lake through the manifest, then the
//! harness's output layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch, StringArray, TimestampMicrosecondArray, UInt32Array};
use arrow::compute::concat_batches;
use arrow::datatypes::{DataType, TimestampMicrosecondType};
use chrono::NaiveDate;
use futures::{StreamExt, TryStreamExt};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::properties::WriterProperties;
use parquet::schema::types::ColumnPath;
use serde::Serialize;

use quantlake::bars::BarSize;
use quantlake::config::Config;
use quantlake::curate::{CurateRequest, curate};
use quantlake::error::{Error, Result};
use quantlake::features::{FeaturesRequest, compute_features};
use quantlake::ingest::ingest_files;
use quantlake::sources::file::{FileFormat, FileImport};
use quantlake::table::{Lake, LakeOptions};

/// What the peer job did, stage by stage.
#[derive(Debug, Clone, Serialize)]
pub struct PeerJobReport {
    pub files: usize,
    pub raw_rows: u64,
    pub curated_rows: u64,
    pub rows_out: u64,
    pub import_seconds: f64,
    pub curate_seconds: f64,
    pub features_seconds: f64,
    pub export_seconds: f64,
    pub seconds: f64,
}

impl PeerJobReport {
    /// The harness's one-line summary (its last stdout line).
    pub fn line(&self) -> String {
        format!(
            "ENGINE=quantlake-{} rows_out={} import={:.2} curate={:.2} features={:.2} export={:.2} seconds={:.2}",
            env!("CARGO_PKG_VERSION"),
            self.rows_out,
            self.import_seconds,
            self.curate_seconds,
            self.features_seconds,
            self.export_seconds,
            self.seconds
        )
    }
}

/// Runs the peer job on `raw_dir` (`date=YYYY-MM-DD/*.parquet`) into `out_dir`, in a scratch lake
/// removed afterwards.
pub async fn peer_job(raw_dir: &Path, out_dir: &Path, config: &Config) -> Result<PeerJobReport> {
    let started = Instant::now();
    let files = raw_files(raw_dir)?;
    let (Some(first), Some(last)) = (files.first().map(|f| f.0), files.last().map(|f| f.0)) else {
        return Err(Error::invalid(format!("{}: no date=YYYY-MM-DD/*.parquet files", raw_dir.display())));
    };
    let scratch = tempfile::Builder::new().prefix("quantlake-peer-job-").tempdir()?;
    let lake = Lake::init(
        &scratch.path().display().to_string(),
        LakeOptions { settings: config.lake.engine.clone(), ..LakeOptions::default() },
    )
    .await?;

    let t = Instant::now();
    let import = FileImport {
        path: raw_dir.to_path_buf(),
        format: Some(FileFormat::Parquet),
        columns: Vec::new(),
        timezone: chrono_tz::America::New_York,
        bar_size: BarSize::Minute,
        symbol: None,
    };
    let raw_rows = ingest_files(&lake, &import, config.ingest.chunk_sessions, None).await?.rows;
    let import_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let curated = curate(
        &lake,
        &config.curate,
        &CurateRequest { start: first, end: last, job_id: None, bar_size: BarSize::Minute },
    )
    .await?;
    let curate_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let sets = vec!["features_price_1m_v1".to_string(), "labels_fwd_ret_v1".to_string()];
    compute_features(&lake, &FeaturesRequest { sets, start: first, end: last, job_id: None }).await?;
    let features_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let rows_out = export(&lake, out_dir).await?;
    let export_seconds = t.elapsed().as_secs_f64();
    Ok(PeerJobReport {
        files: files.len(),
        raw_rows,
        curated_rows: curated.rows,
        rows_out,
        import_seconds,
        curate_seconds,
        features_seconds,
        export_seconds,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// `raw_dir`'s Parquet files by partition date.
fn raw_files(raw_dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>> {
    let mut out = Vec::new();
    let entries = std::fs::read_dir(raw_dir).map_err(|e| Error::ReadFile { path: raw_dir.into(), source: e })?;
    for dir in entries {
        let dir = dir?.path();
        let Some(date) = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_prefix("date="))
            .and_then(|d| d.parse::<NaiveDate>().ok())
        else {
            continue;
        };
        for f in std::fs::read_dir(&dir)? {
            let f = f?.path();
            if f.extension().is_some_and(|e| e == "parquet") {
                out.push((date, f));
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The harness's layout, `date=YYYY-MM-DD/part.parquet`: each partition's regular-session curated
/// rows with their features and 15-minute forward return. The three datasets are sorted by (symbol,
/// ts), so each partition is one merge (an inner join with the features, a left join with the
/// labels), partitions in parallel.
async fn export(lake: &Lake, out_dir: &Path) -> Result<u64> {
    let datasets = ["curated_1m_bars", "features_price_1m_v1", "labels_fwd_ret_v1"].map(|n| lake.dataset(n));
    let [curated, features, labels] = datasets;
    let (curated, features, labels) = (curated?, features?, labels?);
    let (c_state, f_state, l_state) = (curated.latest().await?, features.latest().await?, labels.latest().await?);
    let rows = futures::stream::iter(c_state.partitions.values().map(|entry| {
        let (features, labels, out_dir) = (&features, &labels, out_dir.to_path_buf());
        let (f_entry, l_entry) = (f_state.partitions.get(&entry.partition), l_state.partitions.get(&entry.partition));
        let curated = &curated;
        async move {
            let c = curated.read_partition_columns(entry, &CURATED_COLUMNS).await?;
            let f = match f_entry {
                Some(e) => features.read_partition_columns(e, &FEATURE_COLUMNS).await?,
                None => Vec::new(),
            };
            let l = match l_entry {
                Some(e) => labels.read_partition_columns(e, &["symbol", "ts", "fwd_ret_15m"]).await?,
                None => Vec::new(),
            };
            let partition = entry.partition.clone();
            tokio::task::spawn_blocking(move || write_partition(&out_dir.join(partition), &c, &f, &l))
                .await
                .map_err(|e| Error::Io(std::io::Error::other(e)))?
        }
    }))
    .buffer_unordered(2)
    .try_fold(0u64, |n, rows| async move { Ok(n + rows) })
    .await?;
    Ok(rows)
}

/// The columns the export reads from each dataset.
const CURATED_COLUMNS: [&str; 9] = ["symbol", "ts", "open", "high", "low", "close", "volume", "is_filled", "is_rth"];
const FEATURE_COLUMNS: [&str; 10] =
    ["symbol", "ts", "is_outlier", "ret_1", "ret_5", "ret_15", "ret_60", "vol_30", "vwap_30", "rsi_14"];

/// One partition's merged rows to `dir/part.parquet`; returns the rows written.
fn write_partition(
    dir: &Path,
    curated: &[RecordBatch],
    features: &[RecordBatch],
    labels: &[RecordBatch],
) -> Result<u64> {
    let concat = |b: &[RecordBatch]| -> Result<Option<RecordBatch>> {
        Ok(b.first().map(|f| concat_batches(&f.schema(), b)).transpose()?)
    };
    let (Some(c), Some(f)) = (concat(curated)?, concat(features)?) else { return Ok(0) };
    let l = concat(labels)?;
    let key = |b: &RecordBatch| -> Result<(StringArray, TimestampMicrosecondArray)> {
        let symbol = b
            .column_by_name("symbol")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("export: no symbol column"))?;
        let ts = b
            .column_by_name("ts")
            .and_then(|c| c.as_primitive_opt::<TimestampMicrosecondType>())
            .ok_or_else(|| Error::invalid("export: no ts column"))?;
        Ok((symbol.clone(), ts.clone()))
    };
    let rth = c
        .column_by_name("is_rth")
        .and_then(|c| c.as_boolean_opt())
        .ok_or_else(|| Error::invalid("export: no is_rth column"))?
        .clone();
    let (c_key, f_key) = (key(&c)?, key(&f)?);
    let l_key = l.as_ref().map(key).transpose()?;
    let cmp = |a: &(StringArray, TimestampMicrosecondArray),
               i: usize,
               b: &(StringArray, TimestampMicrosecondArray),
               j: usize| { a.0.value(i).cmp(b.0.value(j)).then(a.1.value(i).cmp(&b.1.value(j))) };
    let (mut ci, mut fi, mut li) = (Vec::new(), Vec::new(), Vec::new());
    let (mut j, mut k) = (0, 0);
    for i in (0..c.num_rows()).filter(|i| rth.value(*i)) {
        while j < f.num_rows() && cmp(&f_key, j, &c_key, i).is_lt() {
            j += 1;
        }
        if j == f.num_rows() || cmp(&f_key, j, &c_key, i).is_ne() {
            continue;
        }
        ci.push(i as u32);
        fi.push(j as u32);
        li.push(l_key.as_ref().and_then(|lk| {
            while k < lk.0.len() && cmp(lk, k, &c_key, i).is_lt() {
                k += 1;
            }
            (k < lk.0.len() && cmp(lk, k, &c_key, i).is_eq()).then_some(k as u32)
        }));
    }
    let (ci, fi, li) = (UInt32Array::from(ci), UInt32Array::from(fi), UInt32Array::from(li));
    let take = |b: &RecordBatch, name: &str, idx: &UInt32Array| -> Result<(String, ArrayRef)> {
        let col = b.column_by_name(name).ok_or_else(|| Error::invalid(format!("export: no {name} column")))?;
        Ok((name.to_string(), arrow::compute::take(col, idx, None)?))
    };
    let mut columns = Vec::new();
    for name in ["symbol", "ts", "open", "high", "low", "close", "volume"] {
        columns.push(take(&c, name, &ci)?);
    }
    columns.push(("is_gap".into(), take(&c, "is_filled", &ci)?.1));
    for name in ["is_outlier", "ret_1", "ret_5", "ret_15", "ret_60", "vol_30", "vwap_30", "rsi_14"] {
        columns.push(take(&f, name, &fi)?);
    }
    let fwd = match &l {
        Some(l) => take(l, "fwd_ret_15m", &li)?.1,
        None => arrow::array::new_null_array(&DataType::Float64, ci.len()),
    };
    columns.push(("fwd_ret_15".into(), fwd));
    let batch = RecordBatch::try_from_iter(columns)?;
    std::fs::create_dir_all(dir)?;
    let file = std::fs::File::create(dir.join("part.parquet"))?;
    // As the lake writes its own files: a dictionary only for symbols (interning every float until
    // the dictionary overflows cost more than the write), floats split by byte for zstd.
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::default()))
        .set_dictionary_enabled(false);
    for field in batch.schema().fields() {
        let path = ColumnPath::from(field.name().as_str());
        props = match field.data_type() {
            DataType::Utf8 => props.set_column_dictionary_enabled(path, true),
            DataType::Float64 => props.set_column_encoding(path, Encoding::BYTE_STREAM_SPLIT),
            _ => props,
        };
    }
    let props = props.build();
    let mut writer = ArrowWriter::try_new(file, batch.schema(), Some(props))?;
    writer.write(&batch)?;
    writer.close()?;
    Ok(batch.num_rows() as u64)
}
