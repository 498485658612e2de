//! `historical_backfill`: `backfill-history` from a source (default `[run] source`) for the
//! universe or some symbols.

use serde::{Deserialize, Serialize};

use crate::bars::BarSize;
use crate::error::{Error, Result};
use crate::names::Named;
use crate::ops::jobs::{Finish, JobHandle, JobStatus};
use crate::ops::tasks::backfill::{self, BackfillOptions};
use crate::ops::tasks::daily_run::PipelineSettings;
use crate::progress::NoProgress;
use crate::sources::{AnySource, SourceKind};
use crate::symbol::Symbol;
use crate::table::Lake;

/// `{"source": ..., "symbols": [...], "bar_size": "1m" | "1d"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct HistoricalBackfill {
    /// Default `[run] source`.
    pub source: Option<SourceKind>,
    /// Default: the active universe.
    pub symbols: Option<Vec<Symbol>>,
    pub bar_size: BarSize,
}

impl Default for HistoricalBackfill {
    fn default() -> Self {
        Self { source: None, symbols: None, bar_size: BarSize::Minute }
    }
}

/// Runs the backfill as `job`; a symbol the source refused makes it partial.
pub async fn run(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    job: &JobHandle,
    task: &HistoricalBackfill,
) -> Result<Finish> {
    let kind = match task.source {
        Some(kind) => kind,
        None => SourceKind::parse_name(&settings.run.source).map_err(|e| Error::Config(format!("run.source: {e}")))?,
    };
    let options = BackfillOptions {
        symbols: task.symbols.clone(),
        bar_size: task.bar_size,
        end: None,
        chunk_sessions: None,
        job_id: Some(job.id().to_string()),
    };
    let request = options.resolve(lake, settings.ingest).await?;
    let source = AnySource::open(kind, settings.sources, lake).await?;
    let report = backfill::backfill_history(lake, &source, settings.backfill, &request, &NoProgress).await?;
    let status = if report.failed.is_empty() { JobStatus::Succeeded } else { JobStatus::Partial };
    Ok(Finish { status, rows_in: report.rows, rows_out: report.rows, ..Finish::with_status(status) }.report(&report))
}
