//! Benchmark jobs (`quantlake bench`): the peer benchmark's curate + features job
//! (`../shared/bench/peers/README.md`) run through the pipeline's own stages, so its timing is the
//! pipeline's: the file import of the directory in one call, [`quantlake::curate::curate`] and
//! [`quantlake::features::compute_features`], each committing through the manifest to a new lake in the
//! output folder. The lake is the job's product: the harness verifies it in place (it recognises the
//! `_lake.json` marker and joins the live files of `curated_1m_bars`, `features_price_1m_v1` and
//! `labels_fwd_ret_v1`), so there is no export step.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
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
    pub seconds: f64,
}

impl PeerJobReport {
    /// The harness's one-line summary (its last stdout line).
    pub fn line(&self) -> String {
        format!(
            "ENGINE=quantlake-{} rows_out={} import={:.2} curate={:.2} features={:.2} seconds={:.2}",
            env!("CARGO_PKG_VERSION"),
            self.rows_out,
            self.import_seconds,
            self.curate_seconds,
            self.features_seconds,
            self.seconds
        )
    }
}

/// Runs the peer job on `raw_dir` (`date=YYYY-MM-DD/*.parquet`) into a new lake at `out_dir` (absent
/// or empty).
pub async fn peer_job(raw_dir: &Path, out_dir: &Path, config: &Config) -> Result<PeerJobReport> {
    let started = Instant::now();
    let files = raw_files(raw_dir)?;
    let (Some(first), Some(last)) = (files.first().map(|f| f.0), files.last().map(|f| f.0)) else {
        return Err(Error::invalid(format!("{}: no date=YYYY-MM-DD/*.parquet files", raw_dir.display())));
    };
    if out_dir.read_dir().is_ok_and(|mut d| d.next().is_some()) {
        return Err(Error::invalid(format!(
            "{} is not empty: the peer job writes a new lake there (give an absent or empty folder)",
            out_dir.display()
        )));
    }
    let lake = Lake::init(
        &out_dir.display().to_string(),
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

    // The harness's rows: every regular-session minute, which is what the feature set holds.
    let features = lake.dataset("features_price_1m_v1")?.latest().await?;
    let rows_out = features.partitions.values().map(|p| p.rows).sum();
    Ok(PeerJobReport {
        files: files.len(),
        raw_rows,
        curated_rows: curated.rows,
        rows_out,
        import_seconds,
        curate_seconds,
        features_seconds,
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
