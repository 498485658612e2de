//! One function per command: each takes its parsed flags, calls the library and prints the report,
//! and says how the command ended ([`Outcome`], the exit-code contract). Defaults and fallbacks are
//! the library's (its request builders); flag consistency (which flags go with which source) is
//! checked here, because it is about the flags.

mod operations;
mod securities;

use std::path::PathBuf;

use chrono::NaiveDate;

use super::Context;
use super::args::{
    AnnotateArgs, BackfillArgs, BarsArgs, CurateArgs, FeaturesArgs, Format, FundamentalsSourceName, InferenceSetArgs,
    IngestArgs, ReadArgs, ScoreArgs, SnapshotCommand, SourceName, TrainArgs, TrainingSetArgs,
};
use super::output::Output;
use super::rows_file::{RowsFile, RowsFormat};
use quantlake::calendar::NyseCalendar;
use quantlake::config::Config;
use quantlake::curate::{self, BarsRequest, CurateRequest};
use quantlake::dq::annotations;
use quantlake::error::{Error, Result};
use quantlake::features::{self, FeaturesRequest};
use quantlake::ingest::{IngestOptions, ingest, ingest_files, progress};
use quantlake::maintenance;
use quantlake::models::{self, ModelChoice, ScoreRequest, TrainOptions};
use quantlake::ops::alerts;
use quantlake::ops::tasks::backfill::{BackfillOptions, backfill_history};
use quantlake::outcome::Outcome;
use quantlake::progress::Progress;
use quantlake::query::QueryEngine;
use quantlake::reference::corporate_actions::{self, ActionSource, ImportRequest, Vendors};
use quantlake::reference::fundamentals;
use quantlake::sets::{self, FallbackSettings, TrainingRequest};
use quantlake::sources::file::{FileImport, parse_column_map};
use quantlake::sources::{AnySource, SourceKind, parse_symbols};
use quantlake::symbol::{MissingSymbols, SymbolList, SymbolScope};
use quantlake::table::AsOf;
use quantlake::table::operations::{history, restore, tag};
use quantlake::table::{Lake, SnapshotSpec};
use quantlake::{dq, universe};

pub use operations::{WorkerFlags, backfill_job, bootstrap, dispatch, jobs, run, schedule, worker};
pub use securities::{securities, universe_members};

/// `serve`: the dashboard, until Ctrl-C.
pub async fn serve(ctx: &Context, options: crate::serve::ServeOptions) -> Result<Outcome> {
    let lake = ctx.open().await?;
    crate::serve::serve(lake, ctx.config.clone(), options).await?;
    Ok(Outcome::Ok)
}

/// `init`: creates the lake (idempotent).
pub async fn init(ctx: &Context, out: &Output) -> Result<Outcome> {
    let lake = Lake::init(&ctx.lake_url, ctx.config.lake.options()).await?;
    out.message(
        &serde_json::json!({ "lake": lake.url(), "initialized": true }),
        &format!("lake ready at {}", lake.url()),
    );
    Ok(Outcome::Ok)
}

/// `ingest`: a source's bars (or a file's) into its raw dataset; `Warning` when a symbol failed or
/// a file's rows were quarantined.
pub async fn ingest_bars(ctx: &Context, args: IngestArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    if args.source == SourceName::File {
        let import = file_import(&args)?;
        let chunk = ctx.config.ingest.chunk(args.range.chunk_sessions);
        let report = ingest_files(&lake, &import, chunk, args.range.job_id.clone()).await?;
        out.file_ingest(&report);
        return Ok(report.outcome());
    }
    check_source_flags(&args)?;
    let kind = source_kind(args.source);
    let spec = args
        .range
        .symbols
        .as_deref()
        .ok_or_else(|| Error::invalid("--symbols is required (e.g. --symbols AAPL,MSFT)"))?;
    let request = IngestOptions {
        symbols: parse_symbols(spec, kind)?,
        bar_size: args.range.frequency,
        start: args.start,
        end: args.end,
        chunk_sessions: args.range.chunk_sessions,
        job_id: args.range.job_id.clone(),
        resume: args.resume,
    }
    .resolve(&ctx.config.ingest);
    let source = AnySource::open(kind, config_with_synthetic_flags(&ctx.config, &args).sources(), &lake).await?;
    let progress = ctx.progress("ingest", "symbol-sessions");
    let report = ingest(&lake, &source, &request, &progress).await?;
    progress.finish();
    out.ingest(&report);
    Ok(report.outcome())
}

/// `backfill-history`: the adaptive historical backfill; `Warning` when a symbol failed.
pub async fn backfill(ctx: &Context, args: BackfillArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let request = BackfillOptions {
        symbols: args.range.symbols.as_deref().map(|spec| parse_symbols(spec, args.source)).transpose()?,
        bar_size: args.range.frequency,
        end: args.end,
        chunk_sessions: args.range.chunk_sessions,
        job_id: args.range.job_id.clone(),
    }
    .resolve(&lake, &ctx.config.ingest)
    .await?;
    let source = AnySource::open(args.source, ctx.config.sources(), &lake).await?;
    let progress = ctx.progress("backfill", "symbol-sessions");
    let report = backfill_history(&lake, &source, &ctx.config.backfill, &request, &progress).await?;
    progress.finish();
    out.backfill(&report);
    Ok(report.outcome())
}

/// `progress clean`: forgets progress records older than `older_than` (e.g. `90d`).
pub async fn progress_clean(ctx: &Context, older_than: &str, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let age = humantime::parse_duration(older_than)
        .map_err(|e| Error::invalid(format!("--older-than '{older_than}': {e}")))?;
    let report = progress::clean_older_than(&lake, age).await?;
    out.message(
        &report,
        &format!(
            "removed {} progress record(s) older than {older_than}; {} kept",
            report.rows_removed, report.rows_kept
        ),
    );
    Ok(Outcome::Ok)
}

/// `curate`: raw bars of some sessions into the curated dataset of `frequency`.
pub async fn curate(ctx: &Context, args: CurateArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let settings = ctx.config.curate.clone().with_fill(args.fill);
    let request = CurateRequest::for_sessions(args.start, args.end, args.frequency, args.job_id);
    let unit = if args.frequency == quantlake::bars::BarSize::Day { "steps" } else { "sessions" };
    let progress = ctx.progress("curate", unit);
    let report = curate::curate_with_progress(&lake, &settings, &request, &progress).await?;
    progress.finish();
    out.curate(&report);
    Ok(Outcome::Ok)
}

/// `health`: a dataset's health, checks and partitions. The report is the result: exit 0 whatever
/// the status (`health-check` exits by it).
pub async fn health(ctx: &Context, dataset: &str, as_of_date: Option<NaiveDate>, out: &Output) -> Result<Outcome> {
    let health = dataset_health(ctx, dataset, as_of_date).await?;
    out.health(&health);
    Ok(Outcome::Ok)
}

/// `health-check`: one line, and the status as the outcome (GREEN 0, YELLOW 1, RED 2).
pub async fn health_check(
    ctx: &Context,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
    out: &Output,
) -> Result<Outcome> {
    let health = dataset_health(ctx, dataset, as_of_date).await?;
    out.health_line(&health);
    Ok(health.status.into())
}

/// `health-check --docker`: Docker's HEALTHCHECK contract. GREEN and YELLOW are healthy (exit 0); RED
/// is unhealthy (exit 1, [`Outcome::Warning`]'s code); never 2, which Docker reserves. So a YELLOW lake
/// does not get its container restarted. A check that cannot run exits 1 too (`cli::main` maps it).
pub async fn health_check_docker(
    ctx: &Context,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
    out: &Output,
) -> Result<Outcome> {
    let health = dataset_health(ctx, dataset, as_of_date).await?;
    out.health_line(&health);
    Ok(if health.status == dq::Status::Red { Outcome::Warning } else { Outcome::Ok })
}

/// `check tws`: connect, handshake, current time, disconnect; an error (exit 3) when TWS does not answer.
pub async fn check_tws(
    ctx: &Context,
    host: Option<String>,
    port: Option<u16>,
    client_id: Option<i32>,
    out: &Output,
) -> Result<Outcome> {
    let mut settings = ctx.config.tws.clone();
    settings.host = host.unwrap_or(settings.host);
    settings.port = port.unwrap_or(settings.port);
    settings.client_id = client_id.unwrap_or(settings.client_id);
    let check = quantlake::sources::tws::check_connection(&settings).await?;
    out.message(
        &check,
        &format!(
            "TWS at {} (client id {}): connected, server version {}, server time {} (clock skew {} s), disconnected in {:.2} s",
            check.address,
            check.client_id,
            check.server_version,
            check.server_time.to_rfc3339(),
            check.clock_skew_seconds,
            check.seconds
        ),
    );
    Ok(Outcome::Ok)
}

/// `check breadth`: a feature set's symbol breadth and coverage rate; exits by the worse of them.
pub async fn check_breadth(
    ctx: &Context,
    dataset: &str,
    as_of_date: Option<NaiveDate>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let report =
        quantlake::ops::breadth::check_breadth(&lake, dataset, as_of_date, &ctx.config.health, &ctx.config.universe)
            .await?;
    out.breadth(&report);
    Ok(report.status.into())
}

/// `alerts check`: judges the lake's conditions, sends the alerts their changes cause; exits by the
/// worst condition.
pub async fn alerts_check(ctx: &Context, as_of_date: Option<NaiveDate>, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let report = alerts::check_lake(&lake, as_of_date, ctx.config.pipeline().conditions()).await?;
    out.alerts_check(&report);
    Ok(report.severity.into())
}

/// `alerts list`: the alert history, newest first.
pub async fn alerts_list(ctx: &Context, limit: usize, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    out.alerts(&alerts::list_alerts(&lake, limit).await?);
    Ok(Outcome::Ok)
}

/// A dataset's health: `predictions` by its own checks (null rate, distribution shift), any other
/// dataset by its contract's [quality] rules.
async fn dataset_health(ctx: &Context, dataset: &str, as_of_date: Option<NaiveDate>) -> Result<dq::DatasetHealth> {
    let (lake, c) = (ctx.open().await?, &ctx.config);
    models::dataset_health(&lake, dataset, as_of_date, &c.health, &c.universe, &c.models.quality).await
}

/// `validate`: every check across the lake (or `scope`'s datasets and sessions); the worst status is
/// the outcome.
pub async fn validate(ctx: &Context, scope: dq::ValidateScope, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let report = quantlake::ops::tasks::validation::validate_lake(&lake, &scope, ctx.config.pipeline()).await?;
    out.validate(&report);
    Ok(report.status.into())
}

/// `dq summary`: metrics per session and in total (`end` defaults to `start`).
pub async fn dq_summary(
    ctx: &Context,
    dataset: &str,
    start: NaiveDate,
    end: Option<NaiveDate>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let summary = dq::get_data_quality_summary(&lake, dataset, start, end.unwrap_or(start)).await?;
    out.dq_summary(&summary);
    Ok(Outcome::Ok)
}

/// `annotate`: records an annotation, or with `--remove ID` deletes one.
pub async fn annotate(ctx: &Context, args: AnnotateArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    if let Some(id) = &args.remove {
        let a = annotations::remove_annotation(&lake, id).await?;
        out.message(&serde_json::json!({ "removed": a }), &format!("removed {}", a.summary()));
        return Ok(Outcome::Ok);
    }
    let need =
        |v: &Option<String>, flag: &str| v.clone().ok_or_else(|| Error::invalid(format!("annotate needs {flag}")));
    let new = annotations::NewAnnotation {
        dataset: need(&args.dataset, "DATASET")?,
        symbols: annotations::parse_symbols(&need(&args.symbols, "--symbols A,B|all")?)?,
        start: annotations::parse_bound(&need(&args.start, "--start")?, false)?,
        end: annotations::parse_bound(&need(&args.end, "--end")?, true)?,
        reason: need(&args.reason, "--reason")?,
        unusable: args.unusable,
    };
    let a = annotations::annotate(&lake, new).await?;
    out.message(&a, &format!("recorded {} on {}", a.summary(), a.dataset));
    Ok(Outcome::Ok)
}

/// `annotations`: the annotations of a dataset (or all) overlapping a range (default: all time).
pub async fn annotations(
    ctx: &Context,
    dataset: Option<&str>,
    start: Option<&str>,
    end: Option<&str>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let start = start
        .map(|s| annotations::parse_bound(s, false))
        .transpose()?
        .unwrap_or(chrono::DateTime::<chrono::Utc>::MIN_UTC);
    let end =
        end.map(|s| annotations::parse_bound(s, true)).transpose()?.unwrap_or(chrono::DateTime::<chrono::Utc>::MAX_UTC);
    if end < start {
        return Err(Error::invalid("--end is before --start"));
    }
    out.annotations(&dq::list_annotations(&lake, dataset, start, end).await?);
    Ok(Outcome::Ok)
}

/// `fundamentals upsert`: filings from Polygon or a file into `fundamentals`.
pub async fn fundamentals_upsert(
    ctx: &Context,
    source: FundamentalsSourceName,
    symbols: Option<SymbolList>,
    path: Option<PathBuf>,
    format: Option<quantlake::sources::file::FileFormat>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let listed = symbols.map(SymbolList::into_vec);
    let report = match source {
        FundamentalsSourceName::Polygon => {
            if path.is_some() || format.is_some() {
                return Err(Error::invalid("--path and --format are for --source file"));
            }
            let symbols = match listed {
                Some(list) => list,
                None => universe::active_symbols(&lake).await?,
            };
            if symbols.is_empty() {
                return Err(Error::invalid(
                    "no symbols: pass --symbols A,B or rebuild the universe (quantlake universe rebuild)",
                ));
            }
            fundamentals::upsert_from_polygon(&lake, &ctx.config.polygon, &symbols).await?
        }
        FundamentalsSourceName::File => {
            let path = path.ok_or_else(|| Error::invalid("--source file needs --path FILE.csv|FILE.parquet"))?;
            fundamentals::upsert_from_file(&lake, &path, format, listed.as_deref()).await?
        }
    };
    out.fundamentals_upsert(&report);
    Ok(Outcome::Ok)
}

/// `fundamentals show`: every stored filing, or the latest per symbol filed before `--as-of-date`.
pub async fn fundamentals_show(
    ctx: &Context,
    symbols: Option<SymbolList>,
    as_of_date: Option<NaiveDate>,
    read: ReadArgs,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let symbols = symbols.map(SymbolList::into_vec).unwrap_or_default();
    let as_of: AsOf = read.as_of.iter().cloned().collect();
    let mut batches = match as_of_date {
        Some(d) => fundamentals::fundamentals_as_of(&lake, &symbols, d, &as_of).await?,
        None => fundamentals::fundamentals_history(&lake, &symbols, &as_of).await?,
    };
    // A table has no room for every item: the items JSON and the columns empty in every row shown
    // are left to the other formats.
    if read.format == Format::Table && !out.json {
        use arrow::array::Array;
        for b in &mut batches {
            let schema = b.schema();
            let shown: Vec<usize> = (0..b.num_columns())
                .filter(|&i| {
                    schema.field(i).name() != "items" && (b.num_rows() == 0 || b.column(i).null_count() < b.num_rows())
                })
                .collect();
            *b = b.project(&shown)?;
        }
    }
    write_rows(&batches, &read, out)
}

/// `universe rebuild`: from the config, or the flags' symbols or CSV.
pub async fn universe_rebuild(
    ctx: &Context,
    symbols: Option<SymbolList>,
    csv: Option<PathBuf>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let settings = ctx.config.universe.clone().with_members(symbols.map(SymbolList::into_vec), csv);
    let report = universe::rebuild(&lake, &settings).await?;
    out.universe_rebuild(&report);
    Ok(Outcome::Ok)
}

/// `universe show`: the members and the breadth of the active ones.
pub async fn universe_show(ctx: &Context, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let members = universe::members(&lake).await?;
    let active = members.iter().filter(|m| m.active).count();
    out.universe(&members, ctx.config.universe.breadth(active));
    Ok(Outcome::Ok)
}

/// `datasets`: each dataset's partitions, rows, bytes and last snapshot.
pub async fn datasets(ctx: &Context, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let mut rows = Vec::new();
    for ds in lake.all_datasets() {
        rows.push(ds.summary().await?);
    }
    out.datasets(&rows);
    Ok(Outcome::Ok)
}

/// `snapshots`: a dataset's log, newest first; with no dataset (`--all`), the lake log: one entry per
/// stage.
pub async fn snapshots(ctx: &Context, dataset: Option<&str>, limit: usize, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    match dataset {
        Some(dataset) => out.snapshots(&history::list(&lake.dataset(dataset)?, limit).await?),
        None => out.lake_log(&history::list_lake(&lake, limit).await?),
    }
    Ok(Outcome::Ok)
}

/// `partitions`: a dataset's partitions at a snapshot (default: the latest).
pub async fn partitions(ctx: &Context, dataset: &str, as_of: &AsOf, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    as_of.check_datasets(&lake)?;
    out.partitions(&lake.dataset(dataset)?.snapshot(as_of.spec_for(dataset)).await?);
    Ok(Outcome::Ok)
}

/// `snapshot tag|tags|untag|restore|diff`: of one dataset, or with `--all` of the whole lake (a
/// lake-wide tag is one consistent cut of every dataset; a lake-wide restore is one stage).
pub async fn snapshot(ctx: &Context, cmd: SnapshotCommand, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    match cmd {
        SnapshotCommand::Tag { target, snapshot, message, force } => match target.split()? {
            (Some(dataset), name) => {
                let t = tag::create(&lake.dataset(dataset)?, name, snapshot, &message, force).await?;
                out.message(&t, &format!("tagged snapshot {} of {dataset} as '{}'", t.snapshot_id, t.name));
            }
            (None, name) => {
                let t = tag::create_lake(&lake, name, &message, force).await?;
                let written = t.datasets.values().filter(|id| **id > 0).count();
                out.message(
                    &t,
                    &format!("tagged the lake as '{}': {written} dataset(s) at lake snapshot {}", t.name, t.lake_seq),
                );
            }
        },
        SnapshotCommand::Tags { dataset, .. } => match dataset {
            Some(dataset) => out.tags(&tag::list(&lake.dataset(&dataset)?).await?),
            None => out.lake_tags(&tag::list_lake(lake.store()).await?),
        },
        SnapshotCommand::Untag { target } => {
            let (dataset, name) = target.split()?;
            match dataset {
                Some(d) => tag::delete(&lake.dataset(d)?, name).await?,
                None => tag::delete_lake(lake.store(), name).await?,
            }
            let whose = dataset.unwrap_or("the lake");
            out.message(
                &serde_json::json!({ "dataset": dataset, "deleted_tag": name }),
                &format!("deleted tag '{name}' of {whose}"),
            );
        }
        SnapshotCommand::Restore { target } => match target.split()? {
            (Some(dataset), to) => {
                let r = restore::restore(&lake.dataset(dataset)?, &SnapshotSpec::parse(to)?).await?;
                let text = if r.partitions == 0 {
                    format!("{dataset} already has the content of {to}; nothing committed")
                } else {
                    format!(
                        "restored {dataset} to {to}: snapshot {} changes {} partition(s)",
                        r.snapshot_id, r.partitions
                    )
                };
                out.message(&r, &text);
            }
            (None, to) => out.stage(
                &restore::restore_lake(&lake, &SnapshotSpec::parse(to)?).await?,
                &format!("restored the lake to {to}"),
            ),
        },
        SnapshotCommand::Diff { dataset, from, to } => {
            let d = history::diff(&lake.dataset(&dataset)?, &SnapshotSpec::parse(&from)?, &SnapshotSpec::parse(&to)?)
                .await?;
            out.diff(&d);
        }
    }
    Ok(Outcome::Ok)
}

/// `verify`: every file of the datasets (see [`maintenance::verify`] for which); `Critical` when a
/// file is missing, damaged or stray.
pub async fn verify(ctx: &Context, datasets: &[String], history: bool, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let report = maintenance::verify(&lake, datasets, history).await?;
    out.verify(&report.datasets);
    Ok(report.outcome())
}

/// `recover`: finishes interrupted commits, and undoes stages left undecided.
pub async fn recover(ctx: &Context, datasets: &[String], full: bool, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    out.recover(&maintenance::recover(&lake, datasets, full).await?);
    Ok(Outcome::Ok)
}

/// `vacuum`: deletes what no retained snapshot needs (retention: the flag, else the config's).
pub async fn vacuum(
    ctx: &Context,
    datasets: &[String],
    retention: Option<&str>,
    dry_run: bool,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let retention = maintenance::retention(retention, ctx.config.lake.history_retention)?;
    out.vacuum(&maintenance::vacuum(&lake, datasets, retention, dry_run).await?);
    Ok(Outcome::Ok)
}

/// `compact`: regroups, rewrites and checkpoints (see [`quantlake::table::operations::compact`]).
pub async fn compact(ctx: &Context, datasets: &[String], dry_run: bool, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let progress = ctx.progress("compact", "datasets");
    let reports = maintenance::compact_with_progress(&lake, datasets, dry_run, &progress).await;
    progress.finish();
    out.compact(&reports?);
    Ok(Outcome::Ok)
}

/// `export delta`: builds or catches up the Delta log (see [`quantlake::table::delta`]).
pub async fn export_delta(ctx: &Context, datasets: &[String], out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let progress = ctx.progress("export delta", "datasets");
    let reports = maintenance::export_delta(&lake, datasets, &progress).await;
    progress.finish();
    out.export_delta(&reports?);
    Ok(Outcome::Ok)
}

/// `delta-path`: a dataset's Delta table root, or every written dataset's.
pub async fn delta_path(ctx: &Context, dataset: Option<String>, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let one = dataset.is_some();
    out.delta_tables(&maintenance::delta_tables(&lake, &Vec::from_iter(dataset)).await?, one);
    Ok(Outcome::Ok)
}

/// `query`: DuckDB SQL over the lake at a snapshot.
pub async fn query(ctx: &Context, sql: &str, read: ReadArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let engine = QueryEngine::open_for_sql(&lake, &read.as_of.iter().cloned().collect(), sql).await?;
    let (schema, mut batches) = tokio::task::block_in_place(|| engine.query_with_schema(sql))?;
    if batches.is_empty() {
        // No rows is still a result with columns: a CSV header, a Parquet or Arrow file of none.
        batches.push(arrow::array::RecordBatch::new_empty(schema));
    }
    write_rows(&batches, &read, out)
}

/// `bars`: curated bars, 1m or resampled (`end` defaults to `start`).
pub async fn bars(ctx: &Context, args: BarsArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let request = BarsRequest {
        symbols: args.symbols.into_vec(),
        start: args.start,
        end: args.end.unwrap_or(args.start),
        frequency: args.frequency,
        extended_hours: args.extended_hours,
        adjust: args.adjust,
        resolve_at: args.resolve_at,
    };
    let batches = curate::get_curated_bars(&lake, &request, &args.read.as_of.iter().cloned().collect()).await?;
    let mut missing = MissingSymbols::of(&request.symbols);
    batches.iter().for_each(|b| missing.see(b));
    write_rows(&batches, &args.read, out)?;
    Ok(missing_outcome(&missing, out, &format!("bars between {} and {}", request.start, request.end)))
}

/// `Ok`, or the symbols asked for without `what` named on stderr and `Warning`: a partial success,
/// never an empty answer exiting 0 in silence.
fn missing_outcome(missing: &MissingSymbols, out: &Output, what: &str) -> Outcome {
    match missing.warning(what) {
        Some(warning) => {
            out.warning(&warning);
            Outcome::Warning
        }
        None => Outcome::Ok,
    }
}

/// `corporate-actions import`: fetch or read the actions and upsert them.
pub async fn corporate_actions_import(
    ctx: &Context,
    source: ActionSource,
    path: Option<PathBuf>,
    symbols: Option<SymbolList>,
    start: Option<NaiveDate>,
    end: Option<NaiveDate>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let request = ImportRequest { source, path, symbols: symbols.map(SymbolList::into_vec), start, end };
    let vendors = Vendors { polygon: &ctx.config.polygon, alpaca: &ctx.config.alpaca };
    let report = corporate_actions::import(&lake, &ctx.config.corporate_actions, vendors, &request).await?;
    out.corporate_actions_import(&report);
    Ok(Outcome::Ok)
}

/// `corporate-actions show`: the stored actions of some symbols (default all).
pub async fn corporate_actions_show(
    ctx: &Context,
    symbols: Option<SymbolList>,
    as_of: AsOf,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let symbols = symbols.map(SymbolList::into_vec);
    let (actions, _) = corporate_actions::read_actions(&lake, symbols.as_deref(), &as_of).await?;
    out.corporate_actions(&actions);
    Ok(Outcome::Ok)
}

/// `recompute-adv`: average daily volume into features_adv.
pub async fn recompute_adv(ctx: &Context, date: Option<NaiveDate>, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let report = quantlake::adv::recompute_adv(&lake, &ctx.config.adv, date).await?;
    out.adv(&report);
    Ok(Outcome::Ok)
}

/// Rows in `--format` (JSON with `--json`), to stdout or `--output`.
fn write_rows(batches: &[arrow::array::RecordBatch], read: &ReadArgs, out: &Output) -> Result<Outcome> {
    out.batches(batches, if out.json { Format::Json } else { read.format }, read.output.as_deref())?;
    Ok(Outcome::Ok)
}

/// `features`: feature and label sets for a range of sessions, one commit.
pub async fn features(ctx: &Context, args: FeaturesArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let sets = if args.sets.is_empty() { ctx.config.features.sets.clone() } else { args.sets };
    if args.stale {
        out.stale(&quantlake::ops::stale::refresh_stale(&lake, &sets, &ctx.config.models.quality).await?);
        return Ok(Outcome::Ok);
    }
    let start = args.start.unwrap_or_else(|| NyseCalendar.last_completed_session(chrono::Utc::now()));
    let request = FeaturesRequest { sets, start, end: args.end.unwrap_or(start), job_id: args.job_id };
    let progress = ctx.progress("features", "set-sessions");
    let report = features::compute_features_with_progress(&lake, &request, &progress).await?;
    progress.finish();
    out.features(&report);
    Ok(Outcome::Ok)
}

/// `training-set`: a point-in-time training set to a file, its lineage to the lake.
pub async fn training_set(ctx: &Context, args: TrainingSetArgs, out: &Output) -> Result<Outcome> {
    let format = RowsFormat::of(&args.output)?;
    let embargo = args
        .embargo
        .as_deref()
        .map(|e| humantime::parse_duration(e).map_err(|err| Error::invalid(format!("--embargo '{e}': {err}"))))
        .transpose()?
        .map(chrono::Duration::from_std)
        .transpose()
        .map_err(|_| Error::invalid("--embargo is too long"))?;
    let lake = ctx.open().await?;
    let request = TrainingRequest {
        feature_set: args.feature_set,
        label: args.label,
        symbols: args.symbols.map(SymbolScope::into_vec).unwrap_or_default(),
        start: args.start,
        end: args.end,
        as_of: args.as_of,
        embargo,
        fallback: FallbackSettings::from(&ctx.config.health),
        fundamentals: args.fundamentals.as_deref().map(crate::values::comma_list).unwrap_or_default(),
        universe: universe_filter(args.universe, &ctx.config),
    };
    // Rows go to the file session by session, as they are joined; the file appears when all passed
    // the leakage check.
    let mut file = RowsFile::create(&args.output, format)?;
    let progress = ctx.progress("training set", "sessions");
    let mut missing = MissingSymbols::of(&request.symbols);
    let set = sets::training_set(&lake, &request, &progress, &mut |b| {
        missing.see(&b);
        file.write(&b)
    })
    .await?;
    progress.finish();
    file.finish()?;
    out.training_set(&set.lineage, &args.output);
    Ok(missing_outcome(&missing, out, &format!("training rows between {} and {}", request.start, request.end)))
}

/// `inference-set`: the latest features per symbol at a time.
pub async fn inference_set(ctx: &Context, args: InferenceSetArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let symbols = args.symbols.map(SymbolScope::into_vec).unwrap_or_default();
    let batches = sets::get_features_for_inference(
        &lake,
        &args.feature_set,
        &symbols,
        &universe_filter(args.universe, &ctx.config),
        args.at.unwrap_or_else(chrono::Utc::now),
        &args.as_of,
    )
    .await?;
    out.batches(&batches, if out.json { Format::Json } else { args.format }, args.output.as_deref())?;
    Ok(Outcome::Ok)
}

/// `debug target-coverage`: the robustness guide's target coverage analysis; `Critical` when a
/// target is below MIN_TARGET_COVERAGE.
pub async fn target_coverage(
    ctx: &Context,
    dataset: &str,
    end: Option<NaiveDate>,
    days_back: Option<u32>,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let end = end.unwrap_or_else(|| NyseCalendar.last_completed_session(chrono::Utc::now()));
    let h = &ctx.config.health;
    let report = dq::target_coverage(
        &lake,
        dataset,
        end,
        days_back.unwrap_or(h.target_days_back),
        h.min_target_coverage,
        &AsOf::latest(),
    )
    .await?;
    out.target_coverage(&report);
    Ok(if report.targets.iter().any(|t| t.below_threshold) { Outcome::Critical } else { Outcome::Ok })
}

/// `bench peer-job`: the peer benchmark's job through the pipeline's own stages.
pub async fn peer_job(
    ctx: &Context,
    raw_dir: &std::path::Path,
    out_dir: &std::path::Path,
    out: &Output,
) -> Result<Outcome> {
    let report = crate::bench::peer_job(raw_dir, out_dir, &ctx.config).await?;
    out.peer_job(&report);
    Ok(Outcome::Ok)
}

/// `calendar`: NYSE sessions between two dates.
pub fn calendar(start: NaiveDate, end: NaiveDate, out: &Output) -> Result<Outcome> {
    if end < start {
        return Err(Error::invalid(format!("--end {end} is before --start {start}")));
    }
    out.calendar(&NyseCalendar.sessions(start, end));
    Ok(Outcome::Ok)
}

/// `--universe`, as [`sets::UniverseFilter::from_flag`] reads it with the configured default universe.
fn universe_filter(flag: Option<String>, config: &Config) -> sets::UniverseFilter {
    sets::UniverseFilter::from_flag(flag.as_deref(), &config.securities.default_universe)
}

/// `train`: fits, stores and registers the baseline model.
pub async fn train(ctx: &Context, args: TrainArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let options = TrainOptions {
        feature_set: args.feature_set,
        label: args.label,
        symbols: args.symbols.map(SymbolScope::into_vec).unwrap_or_default(),
        features: args.features.as_deref().map(crate::values::comma_list).unwrap_or_default(),
        end: args.end,
        window_years: args.window_years,
        alpha: args.alpha,
        holdout_fraction: args.holdout_fraction,
        embargo_sessions: args.embargo_sessions,
        as_of: args.as_of,
        universe: universe_filter(args.universe, &ctx.config),
    };
    let request = options.resolve(&ctx.config.models, chrono::Utc::now())?;
    let progress = ctx.progress("train", "sessions");
    let fallback = quantlake::sets::FallbackSettings::from(&ctx.config.health);
    let report = models::train::train(&lake, &request, fallback, &progress).await?;
    progress.finish();
    out.train(&report);
    Ok(Outcome::Ok)
}

/// `models`: the registry, newest first.
pub async fn models(ctx: &Context, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    out.models(&models::list_models(&lake).await?);
    Ok(Outcome::Ok)
}

/// `score`: predictions for a session or a range; the outcome is their data-quality verdict.
pub async fn score(ctx: &Context, args: ScoreArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let (start, end) = match (args.date, args.start, args.end) {
        (Some(d), None, None) => (d, d),
        (None, Some(s), Some(e)) => (s, e),
        _ => return Err(Error::invalid("give --date D, or --start D --end D")),
    };
    let request = ScoreRequest {
        start,
        end,
        model: if args.walk_forward { ModelChoice::WalkForward } else { args.model.into() },
        symbols: args.symbols.map(SymbolScope::into_vec).unwrap_or_default(),
        allow_in_sample: args.allow_in_sample,
    };
    let progress = ctx.progress("score", "sessions");
    let report = models::score::score(&lake, &request, &ctx.config.models.quality, &progress).await?;
    progress.finish();
    out.score(&report);
    Ok(report.outcome())
}

/// `demo`: the README's walk-through; `Critical` when its verify step finds a problem.
pub async fn demo(ctx: &Context, out: &Output) -> Result<Outcome> {
    let progress = ctx.progress("demo", "symbol-sessions");
    let report = crate::demo::run(&ctx.lake_url, ctx.config.lake.options(), &ctx.config, &progress).await?;
    progress.finish();
    out.demo(&report);
    Ok(report.outcome())
}

/// The bar source a `--source` other than `file` names.
fn source_kind(name: SourceName) -> SourceKind {
    match name {
        SourceName::Synthetic | SourceName::File => SourceKind::Synthetic,
        SourceName::Polygon => SourceKind::Polygon,
        SourceName::Alpaca => SourceKind::Alpaca,
        SourceName::Tws => SourceKind::Tws,
    }
}

/// The file flags only go with `--source file`, the synthetic ones only with `--source synthetic`.
fn check_source_flags(args: &IngestArgs) -> Result<()> {
    if args.path.is_some() || args.columns.is_some() || args.symbol.is_some() || args.format.is_some() {
        return Err(Error::invalid("--path, --format, --columns and --symbol are for --source file"));
    }
    let synthetic = args.source == SourceName::Synthetic;
    if !synthetic
        && (args.seed.is_some()
            || args.gap_rate.is_some()
            || args.duplicate_rate.is_some()
            || args.outlier_rate.is_some())
    {
        return Err(Error::invalid(
            "--seed, --gap-rate, --duplicate-rate and --outlier-rate are for --source synthetic",
        ));
    }
    Ok(())
}

/// The config with the synthetic source's flags applied (flags rank above env and file).
fn config_with_synthetic_flags(config: &Config, args: &IngestArgs) -> Config {
    let mut config = config.clone();
    let s = &mut config.synthetic;
    s.seed = args.seed.unwrap_or(s.seed);
    s.gap_rate = args.gap_rate.unwrap_or(s.gap_rate);
    s.duplicate_rate = args.duplicate_rate.unwrap_or(s.duplicate_rate);
    s.outlier_rate = args.outlier_rate.unwrap_or(s.outlier_rate);
    config
}

/// The file import the `--source file` flags describe.
fn file_import(args: &IngestArgs) -> Result<FileImport> {
    let path = args.path.clone().ok_or_else(|| Error::invalid("--source file needs --path FILE|DIR|PATTERN"))?;
    if args.range.symbols.is_some() || args.start.is_some() || args.end.is_some() || args.resume {
        return Err(Error::invalid(
            "--source file imports whole files: use --symbol for their symbol, not --symbols/--start/--end/--resume",
        ));
    }
    let timezone = args
        .timezone
        .parse()
        .map_err(|_| Error::invalid(format!("--timezone: unknown time zone '{}'", args.timezone)))?;
    Ok(FileImport {
        path,
        format: args.format,
        columns: args.columns.as_deref().map(parse_column_map).transpose()?.unwrap_or_default(),
        timezone,
        bar_size: args.range.frequency,
        symbol: args.symbol.clone(),
    })
}
