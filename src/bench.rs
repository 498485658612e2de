//! Benchmark jobs (`quantlake bench`): the peer benchmark's curate + features job
//! (`../shared/bench/peers/README.md`) run through the pipeline's own stages, so its timing is the
//! pipeline's: the file import, [`crate::curate::curate`] and [`crate::features::compute_features`]
//! committing to a scratch lake through the manifest, then the harness's output layout.

use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::NaiveDate;
use serde::Serialize;

use crate::bars::BarSize;
use crate::config::Config;
use crate::curate::{curate, CurateRequest};
use crate::error::{Error, Result};
use crate::features::{compute_features, FeaturesRequest};
use crate::ingest::ingest_file;
use crate::query::{AsOf, QueryEngine};
use crate::sources::file::FileImport;
use crate::table::{Lake, LakeOptions};

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
    let lake = Lake::init(&scratch.path().display().to_string(), LakeOptions { settings: config.lake.engine.clone(), ..LakeOptions::default() }).await?;

    let t = Instant::now();
    let mut raw_rows = 0;
    for (_, path) in &files {
        let import = FileImport { path: path.clone(), format: None, columns: Vec::new(), timezone: chrono_tz::America::New_York, bar_size: BarSize::Minute, symbol: None };
        raw_rows += ingest_file(&lake, &import, config.ingest.chunk_sessions, None).await?.rows;
    }
    let import_seconds = t.elapsed().as_secs_f64();

    let t = Instant::now();
    let curated = curate(&lake, &config.curate, &CurateRequest { start: first, end: last, job_id: None, bar_size: BarSize::Minute }).await?;
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
        let Some(date) = dir.file_name().and_then(|n| n.to_str()).and_then(|n| n.strip_prefix("date=")).and_then(|d| d.parse::<NaiveDate>().ok()) else { continue };
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

/// The harness's layout: regular-session rows of curated bars with the features and the 15-minute
/// forward return, `date=YYYY-MM-DD/*.parquet`.
async fn export(lake: &Lake, out_dir: &Path) -> Result<u64> {
    let target = out_dir.display().to_string().replace('\'', "''");
    let sql = format!(
        "COPY (SELECT c.symbol, c.ts, c.date, c.open, c.high, c.low, c.close, c.volume, c.is_filled AS is_gap, f.is_outlier, \
         f.ret_1, f.ret_5, f.ret_15, f.ret_60, f.vol_30, f.vwap_30, f.rsi_14, l.fwd_ret_15m AS fwd_ret_15 \
         FROM curated_1m_bars c JOIN features_price_1m_v1 f ON f.symbol = c.symbol AND f.ts = c.ts \
         LEFT JOIN labels_fwd_ret_v1 l ON l.symbol = c.symbol AND l.ts = c.ts WHERE c.is_rth) \
         TO '{target}' (FORMAT parquet, PARTITION_BY (date), COMPRESSION zstd, OVERWRITE_OR_IGNORE true)"
    );
    let engine = QueryEngine::open_for_sql(lake, &AsOf::default(), &sql).await?;
    let n = tokio::task::block_in_place(|| engine.connection().execute(&sql, []))?;
    Ok(n as u64)
}
