//! The `quantlake` command line: parse flags, open the lake, call one library operation, print its
//! report (a table, or `--json`). No pipeline logic lives here.

pub mod args;
mod output;

use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use indicatif::{ProgressBar, ProgressStyle};

use crate::calendar::NyseCalendar;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::ingest::backfill::{backfill_history, BackfillRequest};
use crate::ingest::{ingest, ingest_file, progress, IngestRequest};
use crate::query::{AsOf, QueryEngine};
use crate::sources::file::{parse_column_map, FileImport};
use crate::sources::synthetic::symbol_names;
use crate::sources::{AnySource, SourceKind};
use crate::table::operations::{history, restore, tag, vacuum, verify};
use crate::table::{Dataset, Lake, SnapshotSpec};
use crate::universe;
use args::{Cli, Command, DqCommand, IngestArgs, ProgressCommand, RangeArgs, SnapshotCommand, SourceName, UniverseCommand};
use output::Output;

/// Runs the command line; returns the process exit code.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let out = Output::new(cli.global.json);
    match runtime.block_on(run(cli, &out)) {
        Ok(code) => code,
        Err(e) => {
            out.error(&e);
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

struct Context {
    config: Config,
    lake_url: String,
    quiet: bool,
}

impl Context {
    async fn open(&self) -> Result<Lake> {
        Lake::open(&self.lake_url, self.config.lake.options()).await
    }

    fn progress(&self, what: &str) -> ProgressBar {
        if self.quiet {
            return ProgressBar::hidden();
        }
        let bar = ProgressBar::new(0);
        let style = ProgressStyle::with_template("{msg:>10} [{bar:30}] {pos}/{len} symbol-sessions {per_sec} eta {eta}")
            .map(|s| s.progress_chars("=> "))
            .unwrap_or_else(|_| ProgressStyle::default_bar());
        bar.set_style(style);
        bar.set_message(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(200));
        bar
    }
}

/// Datasets named on the command line, or every dataset that has a contract.
fn pick(lake: &Lake, names: &[String]) -> Result<Vec<Dataset>> {
    if names.is_empty() {
        Ok(lake.all_datasets())
    } else {
        names.iter().map(|n| lake.dataset(n)).collect()
    }
}

async fn run(cli: Cli, out: &Output) -> Result<ExitCode> {
    let explicit_config = cli.global.config.as_os_str() != crate::config::DEFAULT_PATH;
    let config = Config::load(&cli.global.config, explicit_config)?;
    let lake_url = cli.global.lake.clone().unwrap_or_else(|| config.lake.root.clone());
    let ctx = Context { quiet: cli.global.quiet || cli.global.json, config, lake_url };
    match cli.command {
        Command::Init => {
            let lake = Lake::init(&ctx.lake_url, ctx.config.lake.options()).await?;
            out.message(&serde_json::json!({ "lake": lake.url(), "initialized": true }), &format!("lake ready at {}", lake.url()));
        }
        Command::Ingest(args) => {
            let lake = ctx.open().await?;
            if args.source == SourceName::File {
                let import = file_import(&args)?;
                let chunk = args.range.chunk_sessions.unwrap_or(ctx.config.ingest.chunk_sessions);
                let report = ingest_file(&lake, &import, chunk, args.range.job_id.clone()).await?;
                out.file_ingest(&report);
                return Ok(ExitCode::SUCCESS);
            }
            let request = ingest_request(&ctx, &args)?;
            let source = AnySource::open(source_kind(args.source), &config_with_synthetic_flags(&ctx.config, &args), &lake).await?;
            let progress = ctx.progress("ingest");
            let report = ingest(&lake, &source, &request, &progress).await?;
            progress.finish_and_clear();
            out.ingest(&report);
            if !report.failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::BackfillHistory(args) => {
            let lake = ctx.open().await?;
            let symbols = match args.range.symbols {
                Some(_) => symbols(&args.range, args.source == SourceKind::Synthetic)?,
                None => {
                    let active = universe::active_symbols(&lake).await?;
                    if active.is_empty() {
                        return Err(Error::invalid("no --symbols and no active universe; pass --symbols or run `quantlake universe rebuild`"));
                    }
                    active
                }
            };
            let request = BackfillRequest {
                symbols,
                bar_size: args.range.frequency,
                end: args.end.unwrap_or_else(|| NyseCalendar.last_completed_session(chrono::Utc::now())),
                chunk_sessions: args.range.chunk_sessions.unwrap_or(ctx.config.ingest.chunk_sessions),
                job_id: args.range.job_id.clone(),
            };
            let source = AnySource::open(args.source, &ctx.config, &lake).await?;
            let progress = ctx.progress("backfill");
            let report = backfill_history(&lake, &source, &ctx.config.backfill, &request, &progress).await?;
            progress.finish_and_clear();
            out.backfill(&report);
            if !report.failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Progress(ProgressCommand::Clean { older_than }) => {
            let lake = ctx.open().await?;
            let age = humantime::parse_duration(&older_than).map_err(|e| Error::invalid(format!("--older-than '{older_than}': {e}")))?;
            let cutoff = chrono::Duration::from_std(age)
                .ok()
                .and_then(|age| chrono::Utc::now().checked_sub_signed(age))
                .ok_or_else(|| Error::invalid(format!("--older-than '{older_than}': too far back")))?;
            let report = progress::clean(&lake, cutoff).await?;
            out.message(&report, &format!("removed {} progress record(s) older than {older_than}; {} kept", report.rows_removed, report.rows_kept));
        }
        Command::Curate { start, end, fill, frequency, job_id } => {
            let lake = ctx.open().await?;
            let start = start.unwrap_or_else(|| NyseCalendar.last_completed_session(chrono::Utc::now()));
            let mut settings = ctx.config.curate.clone();
            settings.fill = fill.unwrap_or(settings.fill);
            let report = crate::curate::curate(&lake, &settings, &crate::curate::CurateRequest { start, end: end.unwrap_or(start), job_id, bar_size: frequency }).await?;
            out.curate(&report);
        }
        Command::Health { dataset, as_of_date } => {
            let lake = ctx.open().await?;
            let health = crate::dq::get_dataset_health(&lake, &dataset, as_of_date, &ctx.config.health, &ctx.config.universe).await?;
            out.health(&health);
        }
        Command::HealthCheck { dataset, as_of_date } => {
            let lake = ctx.open().await?;
            let health = crate::dq::get_dataset_health(&lake, &dataset, as_of_date, &ctx.config.health, &ctx.config.universe).await?;
            out.health_line(&health);
            return Ok(ExitCode::from(health.status.exit_code()));
        }
        Command::Validate { full, as_of_date } => {
            let lake = ctx.open().await?;
            let report = crate::dq::validate(&lake, full, as_of_date, &ctx.config.health, &ctx.config.universe).await?;
            out.validate(&report);
            return Ok(ExitCode::from(report.status.exit_code()));
        }
        Command::Dq(DqCommand::Summary { dataset, start, end }) => {
            let lake = ctx.open().await?;
            let summary = crate::dq::get_data_quality_summary(&lake, &dataset, start, end.unwrap_or(start)).await?;
            out.dq_summary(&summary);
        }
        Command::Universe(UniverseCommand::Rebuild { symbols, csv }) => {
            let lake = ctx.open().await?;
            let mut settings = ctx.config.universe.clone();
            if let Some(list) = symbols {
                settings.symbols = list.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect();
                settings.csv = None;
            }
            if csv.is_some() {
                settings.csv = csv;
            }
            let report = universe::rebuild(&lake, &settings).await?;
            out.universe_rebuild(&report);
        }
        Command::Universe(UniverseCommand::Show) => {
            let lake = ctx.open().await?;
            let members = universe::members(&lake).await?;
            let active = members.iter().filter(|m| m.active).count();
            out.universe(&members, ctx.config.universe.breadth(active));
        }
        Command::Datasets => {
            let lake = ctx.open().await?;
            let mut rows = Vec::new();
            for ds in lake.all_datasets() {
                rows.push(ds.summary().await?);
            }
            out.datasets(&rows);
        }
        Command::Snapshots { dataset, all, limit } => {
            let lake = ctx.open().await?;
            match dataset {
                Some(dataset) if !all => out.snapshots(&history::list(&lake.dataset(&dataset)?, limit).await?),
                _ => out.lake_log(&history::list_lake(&lake, limit).await?),
            }
        }
        Command::Partitions { dataset, as_of } => {
            let lake = ctx.open().await?;
            let spec = crate::table::SnapshotSpec::parse(as_of.as_deref().unwrap_or("latest"))?;
            out.partitions(&lake.dataset(&dataset)?.snapshot(&spec).await?);
        }
        Command::Snapshot(cmd) => snapshot(&ctx, cmd, out).await?,
        Command::Verify { datasets, history } => {
            let lake = ctx.open().await?;
            let mut reports = Vec::new();
            for ds in pick(&lake, &datasets)? {
                // Finishing an interrupted commit is part of opening a dataset; verify then checks the
                // result. A stage left undecided is reported, not decided (that is `recover`'s job).
                let report = ds.finish_commits().await?;
                if datasets.is_empty() && report.snapshot_id == 0 {
                    continue; // never written: nothing to check
                }
                reports.push(verify::verify(&ds, history).await?);
            }
            out.verify(&reports);
            if reports.iter().any(|r| !r.is_clean()) {
                return Ok(ExitCode::FAILURE);
            }
        }
        Command::Recover { datasets, full } => {
            let lake = ctx.open().await?;
            let mut reports = Vec::new();
            for ds in pick(&lake, &datasets)? {
                reports.push(ds.recover(full).await?);
            }
            out.recover(&reports);
        }
        Command::Vacuum { datasets, retention, dry_run } => {
            let lake = ctx.open().await?;
            let retention = match retention {
                Some(r) => humantime::parse_duration(&r).map_err(|e| Error::invalid(format!("--retention '{r}': {e}")))?,
                None => ctx.config.lake.retention()?,
            };
            let mut reports = Vec::new();
            for ds in pick(&lake, &datasets)? {
                reports.push(vacuum::vacuum(&ds, retention, dry_run).await?);
            }
            out.vacuum(&reports);
        }
        Command::Query { sql, read } => {
            let lake = ctx.open().await?;
            let engine = QueryEngine::open_for_sql(&lake, &AsOf::parse(&read.as_of)?, &sql).await?;
            let batches = tokio::task::block_in_place(|| engine.query(&sql))?;
            out.batches(&batches, if out.json { args::Format::Json } else { read.format }, read.output.as_deref())?;
        }
        Command::Bars { symbols, start, end, frequency, extended_hours, read } => {
            let lake = ctx.open().await?;
            let request = crate::curate::BarsRequest {
                symbols: symbols.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect(),
                start,
                end: end.unwrap_or(start),
                frequency,
                extended_hours,
            };
            let batches = crate::curate::get_curated_bars(&lake, &request, &AsOf::parse(&read.as_of)?).await?;
            out.batches(&batches, if out.json { args::Format::Json } else { read.format }, read.output.as_deref())?;
        }
        Command::Calendar { start, end } => {
            if end < start {
                return Err(Error::invalid(format!("--end {end} is before --start {start}")));
            }
            out.calendar(&crate::calendar::NyseCalendar.sessions(start, end));
        }
        Command::Demo => {
            let progress = ctx.progress("demo");
            let report = crate::demo::run(&ctx.lake_url, ctx.config.lake.options(), &ctx.config, &progress).await?;
            progress.finish_and_clear();
            out.demo(&report);
            if !report.verify.is_clean() {
                return Ok(ExitCode::FAILURE);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn snapshot(ctx: &Context, cmd: SnapshotCommand, out: &Output) -> Result<()> {
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
                out.message(&t, &format!("tagged the lake as '{}': {written} dataset(s) at lake snapshot {}", t.name, t.lake_seq));
            }
        },
        SnapshotCommand::Tags { dataset, all } => match dataset {
            Some(dataset) if !all => out.tags(&tag::list(&lake.dataset(&dataset)?).await?),
            _ => out.lake_tags(&tag::list_lake(lake.store()).await?),
        },
        SnapshotCommand::Untag { target } => {
            let (dataset, name) = target.split()?;
            match dataset {
                Some(d) => tag::delete(&lake.dataset(d)?, name).await?,
                None => tag::delete_lake(lake.store(), name).await?,
            }
            let whose = dataset.map_or("the lake".to_string(), str::to_string);
            out.message(&serde_json::json!({ "dataset": dataset, "deleted_tag": name }), &format!("deleted tag '{name}' of {whose}"));
        }
        SnapshotCommand::Restore { target } => match target.split()? {
            (Some(dataset), to) => {
                let r = restore::restore(&lake.dataset(dataset)?, &SnapshotSpec::parse(to)?).await?;
                let text = if r.partitions == 0 {
                    format!("{dataset} already has the content of {to}; nothing committed")
                } else {
                    format!("restored {dataset} to {to}: snapshot {} changes {} partition(s)", r.snapshot_id, r.partitions)
                };
                out.message(&r, &text);
            }
            (None, to) => {
                let r = restore::restore_lake(&lake, &SnapshotSpec::parse(to)?).await?;
                out.stage(&r, &format!("restored the lake to {to}"));
            }
        },
        SnapshotCommand::Diff { dataset, from, to } => {
            let d = history::diff(&lake.dataset(&dataset)?, &SnapshotSpec::parse(&from)?, &SnapshotSpec::parse(&to)?).await?;
            out.diff(&d);
        }
    }
    Ok(())
}

/// The symbols of `--symbols`: a list, or for the synthetic source also a count.
fn symbols(range: &RangeArgs, synthetic: bool) -> Result<Vec<String>> {
    let raw = range.symbols.as_deref().ok_or_else(|| Error::invalid("--symbols is required (e.g. --symbols AAPL,MSFT)"))?;
    let list: Vec<String> = match raw.trim().parse::<usize>() {
        Ok(0) => return Err(Error::invalid("--symbols 0: ask for at least one symbol")),
        Ok(n) if synthetic => symbol_names(n),
        Ok(_) => return Err(Error::invalid(format!("--symbols {raw}: a count is only for the synthetic source; list the symbols"))),
        Err(_) => {
            let mut seen = std::collections::HashSet::new();
            // In the given order, each once: `AAPL,AAPL` would otherwise store AAPL's bars twice.
            raw.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty() && seen.insert(s.clone())).collect()
        }
    };
    if list.is_empty() {
        return Err(Error::invalid("--symbols lists no symbol"));
    }
    Ok(list)
}

fn source_kind(name: SourceName) -> SourceKind {
    match name {
        SourceName::Synthetic | SourceName::File => SourceKind::Synthetic,
        SourceName::Polygon => SourceKind::Polygon,
        SourceName::Alpaca => SourceKind::Alpaca,
        SourceName::Tws => SourceKind::Tws,
    }
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

fn ingest_request(ctx: &Context, args: &IngestArgs) -> Result<IngestRequest> {
    if args.path.is_some() || args.columns.is_some() || args.symbol.is_some() || args.format.is_some() {
        return Err(Error::invalid("--path, --format, --columns and --symbol are for --source file"));
    }
    let synthetic = args.source == SourceName::Synthetic;
    if !synthetic && (args.seed.is_some() || args.gap_rate.is_some() || args.duplicate_rate.is_some() || args.outlier_rate.is_some()) {
        return Err(Error::invalid("--seed, --gap-rate, --duplicate-rate and --outlier-rate are for --source synthetic"));
    }
    let end = args.end.unwrap_or_else(|| NyseCalendar.last_completed_session(chrono::Utc::now()));
    let back = ctx.config.ingest.days_back.max(1) as i64;
    // The last session on or before --end, and `back - 1` sessions before it.
    let last = NyseCalendar.previous_session(end.succ_opt().unwrap_or(end));
    let start = args.start.unwrap_or_else(|| NyseCalendar.add_sessions(last, 1 - back));
    Ok(IngestRequest {
        symbols: symbols(&args.range, synthetic)?,
        start,
        end,
        bar_size: args.range.frequency,
        chunk_sessions: args.range.chunk_sessions.unwrap_or(ctx.config.ingest.chunk_sessions),
        job_id: args.range.job_id.clone(),
        resume: args.resume,
    })
}

fn file_import(args: &IngestArgs) -> Result<FileImport> {
    let path = args.path.clone().ok_or_else(|| Error::invalid("--source file needs --path FILE"))?;
    if args.range.symbols.is_some() || args.start.is_some() || args.end.is_some() || args.resume {
        return Err(Error::invalid("--source file imports the whole file: use --symbol for its symbol, not --symbols/--start/--end/--resume"));
    }
    let timezone = args.timezone.parse().map_err(|_| Error::invalid(format!("--timezone: unknown time zone '{}'", args.timezone)))?;
    Ok(FileImport {
        path,
        format: args.format,
        columns: args.columns.as_deref().map(parse_column_map).transpose()?.unwrap_or_default(),
        timezone,
        bar_size: args.range.frequency,
        symbol: args.symbol.clone(),
    })
}
