//! The README's main job, end to end on any lake: synthetic ingest, a correction that overwrites some
//! partitions, the snapshot list, time travel to before the correction, verify, curation with its
//! data-quality summary and health, and the one-liners that read the result with DuckDB and pandas.

use chrono::NaiveDate;
use serde::Serialize;

use quantlake::bars::BarSize;
use quantlake::config::Config;
use quantlake::curate::{self, CurateReport, CurateRequest};
use quantlake::dq::{self, DatasetHealth, QualitySummary};
use quantlake::error::Result;
use quantlake::ingest::{IngestReport, IngestRequest, ingest};
use quantlake::outcome::Outcome;
use quantlake::progress::Progress;
use quantlake::query::{QueryEngine, SqlResult};
use quantlake::sources::BarSource;
use quantlake::sources::synthetic::{SyntheticSettings, SyntheticSource, symbol_names};
use quantlake::storage::LakeLocation;
use quantlake::symbol::SymbolList;
use quantlake::table::AsOf;
use quantlake::table::operations::history::{self, SnapshotInfo};
use quantlake::table::operations::tag;
use quantlake::table::operations::verify::{self, VerifyReport};
use quantlake::table::{Lake, LakeOptions, SnapshotSpec};

#[derive(Debug, Serialize)]
pub struct DemoReport {
    pub lake: String,
    pub initial_ingest: IngestReport,
    pub tag: String,
    pub correction: IngestReport,
    pub snapshots: Vec<SnapshotInfo>,
    /// `(snapshot, rows, average close)` of AAPL on 2024-01-09 before and after the correction.
    pub before: (u64, i64, f64),
    pub after: (u64, i64, f64),
    pub verify: VerifyReport,
    pub curate: CurateReport,
    pub quality: QualitySummary,
    pub health: DatasetHealth,
    pub glob: String,
    pub readers: Vec<String>,
}

const SYMBOLS: usize = 20;
const TAG: &str = "demo-before-correction";

fn date(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap_or(NaiveDate::MIN)
}

impl DemoReport {
    /// `Critical` when the verify step found a problem, `Ok` otherwise.
    pub fn outcome(&self) -> Outcome {
        Outcome::critical_if(!self.verify.is_clean())
    }
}

/// Runs the walk-through on the lake at `url`; curation and health use the config's settings.
pub async fn run(url: &str, options: LakeOptions, config: &Config, progress: &dyn Progress) -> Result<DemoReport> {
    let lake = Lake::init(url, options).await?;
    let vendor = SyntheticSource::new(SyntheticSettings {
        seed: 42,
        gap_rate: 0.002,
        duplicate_rate: 0.001,
        outlier_rate: 0.0005,
    })?;
    let request = IngestRequest {
        symbols: symbol_names(SYMBOLS)?,
        start: date("2024-01-02"),
        end: date("2024-01-12"),
        bar_size: BarSize::Minute,
        chunk_sessions: 5,
        job_id: Some("demo-initial".into()),
        resume: false,
    };
    let initial_ingest = ingest(&lake, &vendor, &request, progress).await?;
    let ds = lake.dataset(&vendor.dataset(BarSize::Minute))?;
    tag::create(&ds, TAG, None, "before the vendor correction", true).await?;

    // A vendor re-sends three symbols for three sessions: those rows are replaced, nothing else.
    let corrected = SyntheticSource::new(SyntheticSettings { seed: 7, ..Default::default() })?;
    let request = IngestRequest {
        symbols: "AAPL,MSFT,NVDA".parse::<SymbolList>()?.into_vec(),
        start: date("2024-01-08"),
        end: date("2024-01-10"),
        chunk_sessions: 5,
        job_id: Some("demo-correction".into()),
        ..request
    };
    progress.reset();
    let correction = ingest(&lake, &corrected, &request, progress).await?;
    let snapshots = history::list(&ds, 10).await?;

    let sql = "SELECT count(*) AS n, round(avg(close), 4) AS avg_close FROM raw_synthetic_bars WHERE symbol = 'AAPL' AND date = DATE '2024-01-09'";
    let probe = |spec: SnapshotSpec| {
        let lake = &lake;
        async move {
            let engine = QueryEngine::open_for_sql(lake, &AsOf::lake(spec), sql).await?;
            let conn = engine.connection();
            let (n, avg): (i64, f64) = conn.query_row(sql, [], |r| Ok((r.get(0)?, r.get(1)?))).sql()?;
            Ok::<_, quantlake::Error>((engine.snapshots.get("raw_synthetic_bars").copied().unwrap_or(0), n, avg))
        }
    };
    let before = probe(SnapshotSpec::Tag(TAG.into())).await?;
    let after = probe(SnapshotSpec::Latest).await?;
    let verify = verify::verify(&ds, false).await?;

    // Curate the demo's sessions, then what data quality and health say about them.
    let (first, last) = (date("2024-01-02"), date("2024-01-12"));
    let curate = curate::curate(
        &lake,
        &config.curate,
        &CurateRequest { start: first, end: last, job_id: Some("demo-curate".into()), bar_size: BarSize::Minute },
    )
    .await?;
    let quality = dq::get_data_quality_summary(&lake, curate::DATASET, first, last).await?;
    let health = dq::get_dataset_health(&lake, curate::DATASET, Some(last), &config.health, &config.universe).await?;

    let live = ds.paths().live_root().to_string();
    let (glob, readers) = match lake.store().location() {
        LakeLocation::Local(root) => {
            let root = std::fs::canonicalize(root).unwrap_or_else(|_| root.clone());
            let folder = root.join(&live);
            let glob = format!("{}/*/*.parquet", folder.display());
            let readers = vec![
                format!(
                    "duckdb -c \"SELECT symbol, count(*) AS bars, min(ts), max(ts) FROM read_parquet('{glob}', hive_partitioning = true) GROUP BY symbol ORDER BY symbol\""
                ),
                format!(
                    "python3 -c \"import pandas as pd; df = pd.read_parquet('{}'); print(df.groupby('symbol').size())\"",
                    folder.display()
                ),
                format!(
                    "python3 -c \"import polars as pl; print(pl.scan_parquet('{glob}', hive_partitioning=True).group_by('symbol').len().collect())\""
                ),
            ];
            (glob, readers)
        }
        LakeLocation::S3 { bucket, prefix } => {
            let key = if prefix.is_empty() { live } else { format!("{prefix}/{live}") };
            let glob = format!("s3://{bucket}/{key}/*/*.parquet");
            let readers = vec![format!(
                "python3 -c \"import pandas as pd; print(pd.read_parquet('s3://{bucket}/{key}/').groupby('symbol').size())\"  # with s3fs, AWS_ENDPOINT_URL as for quantlake"
            )];
            (glob, readers)
        }
    };
    Ok(DemoReport {
        lake: lake.url().to_string(),
        initial_ingest,
        tag: TAG.into(),
        correction,
        snapshots,
        before,
        after,
        verify,
        curate,
        quality,
        health,
        glob,
        readers,
    })
}
