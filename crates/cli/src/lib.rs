//! The `quantlake` command line: parse flags, open the lake, call one library operation per command
//! ([`commands`]), print its report (a table, or `--json`), and exit by the library's exit-code
//! contract ([`Outcome`]: 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN). No pipeline logic lives here: it
//! is the `quantlake` crate's. Beside the commands: [`serve`] (the dashboard and its JSON API),
//! [`demo`] (the walk-through) and [`bench`] (the peer benchmark's job).
//!
//! Floors, from the bottom up: `values`, `rows_file`, `args`, `progress_bar`, `bench`, `demo`, `serve`, `output`,
//! `commands`. A module imports only the library and modules on a lower floor (`tests/lake/modules.rs`
//! checks it).
//!
//! ```
//! use clap::Parser;
//! use quantlake_cli::args::{Cli, Command};
//!
//! let cli = Cli::try_parse_from(["quantlake", "--json", "query", "--as-of", "v1,curated_1m_bars@3", "SELECT 1"]).unwrap();
//! assert!(cli.global.json);
//! let Command::Query { read, .. } = cli.command else { panic!("a query") };
//! assert_eq!(read.as_of.len(), 1);
//! assert_eq!(read.as_of[0].to_string(), "v1,curated_1m_bars@3");
//! assert!(Cli::try_parse_from(["quantlake", "query", "--as-of", "no good", "SELECT 1"]).is_err());
//! ```

pub mod args;
pub mod bench;
pub mod commands;
pub mod demo;
mod output;
mod progress_bar;
mod rows_file;
pub mod serve;
mod values;

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};

use args::{
    AlertsCommand, BenchCommand, CheckCommand, Cli, Command, CorporateActionsCommand, DebugCommand, DqCommand,
    ExportCommand, FundamentalsCommand, ProgressCommand, SecuritiesCommand, UniverseCommand,
};
use output::{COMMAND_TARGET, Output};
use progress_bar::Bar;
use quantlake::config::Config;
use quantlake::error::Result;
use quantlake::ops::jobs::log::JobLogLayer;
use quantlake::outcome::{EXIT_CODES_HELP, Outcome};
use quantlake::symbol::SymbolScope;
use quantlake::table::Lake;

/// Runs the command line; returns the process exit code ([`Outcome::exit_code`]). Flag errors exit
/// 3 (UNKNOWN: the command could not run), `--help` and `--version` 0.
pub fn main() -> ExitCode {
    let cli = match parse() {
        Ok(cli) => cli,
        Err(e) => {
            // Help and version go to stdout and are not errors; everything else is a usage error.
            let outcome = if e.use_stderr() { Outcome::Unknown } else { Outcome::Ok };
            let _ = e.print();
            return exit(outcome);
        }
    };
    // `health-check --docker` speaks Docker's contract: a check that cannot run or finds the lake
    // damaged is unhealthy (1), never 2 or 3.
    let docker = matches!(cli.command, Command::HealthCheck { docker: true, .. });
    let exit = |outcome: Outcome| exit(if docker && outcome > Outcome::Warning { Outcome::Warning } else { outcome });
    let out = Output::new(cli.global.json);
    let explicit_config = cli.global.config.as_os_str() != quantlake::config::DEFAULT_PATH;
    let config = match Config::load(&cli.global.config, explicit_config) {
        Ok(c) => c,
        Err(e) => {
            init_logging(None, false);
            out.error(&e);
            return exit(Outcome::from(&e));
        }
    };
    let lake_url = cli.global.lake.clone().unwrap_or_else(|| config.lake.root.clone());
    let log_file = cli
        .global
        .log_file
        .clone()
        .or_else(|| config.logging.file.clone().map(Into::into))
        .or_else(|| quantlake::config::LoggingSettings::default_file(&lake_url))
        .filter(|f| !f.as_os_str().is_empty());
    // A stage command prints its error itself: its job's "Failed to complete job" line is for the log.
    let prints_job_end = recorded_kind(&cli.command).is_some();
    init_logging(log_file.as_deref().map(|f| (f, config.logging.level.as_str())), prints_job_end);
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return exit(Outcome::Unknown);
        }
    };
    // A panic is an internal error: the command could not run (the panic hook has printed it).
    // The command line and how it ended, for the log file (stderr has them already).
    let args = redact_secrets(std::env::args().skip(1));
    tracing::info!(target: COMMAND_TARGET, "quantlake {}", args.join(" "));
    // `serve`, `worker` and `schedule run` stop cleanly on a signal themselves, and a stage command
    // records its job as cancelled first ([`recorded`]); every other command is dropped where it
    // awaits, which leaves the lake as a kill does (what was committed stays).
    let stops_itself = matches!(cli.command, Command::Serve { .. } | Command::Worker { .. } | Command::Schedule(_))
        || recorded_kind(&cli.command).is_some();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        runtime.block_on(async {
            let work = run(cli, config, lake_url, &out);
            if stops_itself { work.await } else { until_interrupted(work).await.unwrap_or(Ok(Outcome::Unknown)) }
        })
    }));
    let outcome = match (result, INTERRUPTED.get()) {
        (Ok(_), Some(signal)) => {
            let message = format!(
                "interrupted by {signal}: what was committed before stays (`quantlake jobs` and `quantlake snapshots` show it), \
                 nothing after it was written; run the same command again to finish (ingest and backfill-history skip finished sessions with --resume)"
            );
            tracing::warn!(target: COMMAND_TARGET, "{message}");
            tracing::info!(target: COMMAND_TARGET, "exit {EXIT_INTERRUPTED} (interrupted)");
            eprintln!("{message}");
            // Blocking work still running is abandoned with the process, as a kill would.
            runtime.shutdown_background();
            return ExitCode::from(EXIT_INTERRUPTED);
        }
        (Ok(Ok(outcome)), None) => outcome,
        (Ok(Err(e)), None) => {
            tracing::error!(target: COMMAND_TARGET, "Failed to run the command: {e}");
            out.error(&e);
            Outcome::from(&e)
        }
        (Err(_), _) => Outcome::Unknown,
    };
    tracing::info!(target: COMMAND_TARGET, "exit {} ({outcome:?})", outcome.exit_code());
    exit(outcome)
}

/// The flags, with the exit-code contract under every command's `--help`.
fn parse() -> std::result::Result<Cli, clap::Error> {
    fn with_exit_codes(command: clap::Command) -> clap::Command {
        command.after_help(EXIT_CODES_HELP).mut_subcommands(with_exit_codes)
    }
    let matches = with_exit_codes(Cli::command()).try_get_matches()?;
    Cli::from_arg_matches(&matches)
}

/// The command line as the log file shows it: the values of the flags that carry secrets hidden.
fn redact_secrets(args: impl Iterator<Item = String>) -> Vec<String> {
    const SECRET_FLAGS: &[&str] = &["--token"];
    let mut hide_next = false;
    args.map(|a| {
        let shown = if hide_next {
            "***".to_string()
        } else if let Some((flag, _)) = a.split_once('=').filter(|(f, _)| SECRET_FLAGS.contains(f)) {
            format!("{flag}=***")
        } else {
            a.clone()
        };
        hide_next = SECRET_FLAGS.contains(&a.as_str());
        shown
    })
    .collect()
}

/// The exit code of a command stopped by SIGINT or SIGTERM: 128 + SIGINT, as shells report it.
const EXIT_INTERRUPTED: u8 = 130;

/// The signal that stopped the command ([`until_interrupted`]), for `main`'s exit.
static INTERRUPTED: std::sync::OnceLock<&'static str> = std::sync::OnceLock::new();

/// Runs `work` to its end, or until SIGINT or SIGTERM: then `None`, the signal kept in [`INTERRUPTED`].
async fn until_interrupted<T>(work: impl std::future::Future<Output = T>) -> Option<T> {
    tokio::select! {
        result = work => Some(result),
        signal = interrupted() => {
            let _ = INTERRUPTED.set(signal);
            None
        }
    }
}

/// Waits for SIGINT (Ctrl-C) or SIGTERM; returns its name.
async fn interrupted() -> &'static str {
    let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(term) => term,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return "SIGINT";
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => "SIGINT",
        _ = term.recv() => "SIGTERM",
    }
}

fn exit(outcome: Outcome) -> ExitCode {
    ExitCode::from(outcome.exit_code())
}

/// Logging: stderr at `RUST_LOG` (default warn; without the job-end line when the command prints it,
/// `prints_job_end`); the log file, when there is one, at its own level (default info) and without
/// colours; and every job's own log ([`JobLogLayer`]). A log file that cannot be opened is reported and
/// skipped: logging never stops a command.
fn init_logging(file: Option<(&std::path::Path, &str)>, prints_job_end: bool) {
    use tracing_subscriber::{EnvFilter, fmt, prelude::*};
    let job_end = if prints_job_end { format!(",{}=off", quantlake::ops::jobs::JOB_END_TARGET) } else { String::new() };
    let stderr_filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("warn,{COMMAND_TARGET}=off{job_end}")));
    // Colours only for a person at a terminal: a pipe, a file or a CI log gets plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let stderr = fmt::layer().with_writer(std::io::stderr).with_ansi(colour).with_filter(stderr_filter);
    let level = file.map_or("info", |(_, level)| level);
    let file_layer = file.and_then(|(path, level)| match open_log_file(path) {
        Ok(f) => {
            Some(fmt::layer().with_ansi(false).with_writer(std::sync::Mutex::new(f)).with_filter(EnvFilter::new(level)))
        }
        Err(e) => {
            eprintln!("warning: cannot open the log file {}: {e}; logging to stderr only", path.display());
            None
        }
    });
    let job_logs = JobLogLayer.with_filter(EnvFilter::new(level));
    tracing_subscriber::registry().with(stderr).with(file_layer).with(job_logs).init();
}

fn open_log_file(path: &std::path::Path) -> std::io::Result<std::fs::File> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    std::fs::OpenOptions::new().create(true).append(true).open(path)
}

/// What every command gets: the config, the lake URL, whether to draw progress.
pub struct Context {
    pub config: Config,
    pub lake_url: String,
    pub quiet: bool,
    /// The lake once opened: a command and its job record share one handle (and its footer cache).
    lake: tokio::sync::OnceCell<Lake>,
}

impl Context {
    /// Opens the lake (it must exist), once per command.
    pub async fn open(&self) -> Result<Lake> {
        let lake = self.lake.get_or_try_init(|| Lake::open(&self.lake_url, self.config.lake.options())).await?;
        Ok(lake.clone())
    }

    /// A progress bar for `what`, counting `unit`s; hidden with `--quiet` or `--json`.
    fn progress(&self, what: &str, unit: &str) -> Bar {
        Bar::new(what, unit, self.quiet)
    }

    /// A progress bar showing the steps of the jobs this command runs in the foreground (each job's
    /// stage and its count, as `jobs show` has them).
    fn job_progress(&self, what: &str) -> std::sync::Arc<Bar> {
        let bar = std::sync::Arc::new(self.progress(what, "steps"));
        quantlake::ops::jobs::observe_progress(bar.clone());
        bar
    }
}

/// Runs the command; a stage command as a job record ([`recorded`]).
async fn run(cli: Cli, config: Config, lake_url: String, out: &Output) -> Result<Outcome> {
    let ctx = Context { quiet: cli.global.quiet || cli.global.json, config, lake_url, lake: Default::default() };
    match recorded_kind(&cli.command) {
        Some(kind) => recorded(&ctx, kind, cli.command, out).await,
        None => dispatch(&ctx, cli.command, out).await,
    }
}

/// The job kind a stage command is recorded as: each writes to the lake, and its record is the audit
/// trail `jobs` shows (and `jobs show ID` finds the id an ingest, curate or features report prints).
fn recorded_kind(command: &Command) -> Option<&'static str> {
    Some(match command {
        Command::Ingest(_) => "ingest",
        Command::Curate(_) => "curate",
        Command::Features(_) => "features",
        Command::Train(_) => "train",
        Command::Score(_) => "score",
        Command::CorporateActions(CorporateActionsCommand::Import { .. }) => "corporate_actions_import",
        Command::Fundamentals(FundamentalsCommand::Upsert { .. }) => "fundamentals_upsert",
        Command::Securities(SecuritiesCommand::Import { .. }) => "securities_import",
        Command::Securities(SecuritiesCommand::Migrate) => "securities_migrate",
        _ => return None,
    })
}

/// Runs a stage command as a job record of `kind`: created before the work with the command line,
/// its log lines kept with it, finished after with the status the outcome gives (0 SUCCEEDED, 1
/// PARTIAL, 2 SUCCEEDED: the command ran and its report carries the verdict; an error FAILED), the
/// report it printed (its `--json`) and the process's peak memory. The
/// record's id is the stage's job id unless `--job-id` names another. Without a lake the command
/// runs unrecorded and says so itself.
async fn recorded(ctx: &Context, kind: &str, mut command: Command, out: &Output) -> Result<Outcome> {
    use quantlake::ops::jobs::{Finish, JobSpec, JobStatus, JobStore};
    use tracing::Instrument;
    let Ok(lake) = ctx.open().await else {
        return until_interrupted(dispatch(ctx, command, out)).await.unwrap_or(Ok(Outcome::Unknown));
    };
    let line = redact_secrets(std::env::args().skip(1)).join(" ");
    let spec = JobSpec::new(kind, serde_json::json!({ "command": format!("quantlake {line}") }));
    let job = JobStore::new(&lake, ctx.config.jobs.clone()).start(spec).await?;
    let stage_job_id = match &mut command {
        Command::Ingest(a) => Some(&mut a.range.job_id),
        Command::Curate(a) => Some(&mut a.job_id),
        Command::Features(a) => Some(&mut a.job_id),
        _ => None,
    };
    if let Some(id) = stage_job_id {
        id.get_or_insert_with(|| job.id().to_string());
    }
    out.record();
    let Some(result) = until_interrupted(dispatch(ctx, command, out).instrument(job.span())).await else {
        // Stopped by a signal: the record says so now, rather than RUNNING until its lease runs out.
        let signal = INTERRUPTED.get().copied().unwrap_or("a signal");
        let reason = format!("interrupted by {signal}: what was committed before stays; run the command again");
        if let Err(e) = job.finish(Finish { error: Some(reason), ..Finish::with_status(JobStatus::Cancelled) }).await {
            tracing::warn!("Failed to record how job {kind} ended: {e}");
        }
        return Ok(Outcome::Unknown);
    };
    let (report, counts) = out.recorded();
    let finish = match &result {
        Ok(outcome) => {
            let status = if *outcome == Outcome::Warning { JobStatus::Partial } else { JobStatus::Succeeded };
            Finish { status, ..counts }.report(&serde_json::json!({ "outcome": outcome, "report": report }))
        }
        Err(e) => Finish::failed(e),
    };
    if let Err(e) = job.finish(finish).await {
        tracing::warn!("Failed to record how job {kind} ended: {e}");
    }
    result
}

/// Runs one command.
async fn dispatch(ctx: &Context, command: Command, out: &Output) -> Result<Outcome> {
    match command {
        Command::Init => commands::init(ctx, out).await,
        Command::Ingest(args) => commands::ingest_bars(ctx, args, out).await,
        Command::BackfillHistory(args) => commands::backfill(ctx, args, out).await,
        Command::Progress(ProgressCommand::Clean { older_than }) => {
            commands::progress_clean(ctx, &older_than, out).await
        }
        Command::Curate(args) => commands::curate(ctx, args, out).await,
        Command::Health { dataset, as_of_date } => commands::health(ctx, &dataset, as_of_date, out).await,
        Command::HealthCheck { dataset, as_of_date, docker: false } => {
            commands::health_check(ctx, &dataset, as_of_date, out).await
        }
        Command::HealthCheck { dataset, as_of_date, docker: true } => {
            commands::health_check_docker(ctx, &dataset, as_of_date, out).await
        }
        Command::Validate { full, as_of_date, datasets, start, end } => {
            let scope = quantlake::dq::ValidateScope { full, as_of_date, datasets, sessions: None }.between(start, end);
            commands::validate(ctx, scope, out).await
        }
        Command::Features(args) => commands::features(ctx, args, out).await,
        Command::Run(args) => commands::run(ctx, args, out).await,
        Command::Jobs(args) => commands::jobs(ctx, args, out).await,
        Command::Backfill(cmd) => commands::backfill_job(ctx, cmd, out).await,
        Command::Dispatch(cmd) => commands::dispatch(ctx, cmd, out).await,
        Command::Schedule(args) => commands::schedule(ctx, args, out).await,
        Command::Bootstrap { source, fundamentals, skip_training } => {
            commands::bootstrap(ctx, source, fundamentals, skip_training, out).await
        }
        Command::Worker { once, poll, tasks, max_jobs, shard } => {
            let options = commands::WorkerFlags { once, poll, tasks, max_jobs, shard };
            commands::worker(ctx, options, out).await
        }
        Command::TrainingSet(args) => commands::training_set(ctx, args, out).await,
        Command::InferenceSet(args) => commands::inference_set(ctx, args, out).await,
        Command::Debug(DebugCommand::TargetCoverage(args)) | Command::Check(CheckCommand::Coverage(args)) => {
            commands::target_coverage(ctx, &args.dataset, args.end, args.days_back, out).await
        }
        Command::Check(CheckCommand::Breadth { dataset, as_of_date }) => {
            commands::check_breadth(ctx, &dataset, as_of_date, out).await
        }
        Command::Check(CheckCommand::Tws { host, port, client_id }) => {
            commands::check_tws(ctx, host, port, client_id, out).await
        }
        Command::Alerts(AlertsCommand::Check { as_of_date }) => commands::alerts_check(ctx, as_of_date, out).await,
        Command::Alerts(AlertsCommand::List { limit }) => commands::alerts_list(ctx, limit, out).await,
        Command::Bench(BenchCommand::PeerJob { raw_dir, out_dir }) => {
            commands::peer_job(ctx, &raw_dir, &out_dir, out).await
        }
        Command::Dq(DqCommand::Summary { dataset, start, end }) => {
            commands::dq_summary(ctx, &dataset, start, end, out).await
        }
        Command::Annotate(args) => commands::annotate(ctx, args, out).await,
        Command::Annotations { dataset, start, end } => {
            commands::annotations(ctx, dataset.as_deref(), start.as_deref(), end.as_deref(), out).await
        }
        Command::Fundamentals(FundamentalsCommand::Upsert { source, symbols, path, format }) => {
            commands::fundamentals_upsert(ctx, source, symbols.and_then(SymbolScope::list), path, format, out).await
        }
        Command::Fundamentals(FundamentalsCommand::Show { symbols, as_of_date, read }) => {
            commands::fundamentals_show(ctx, symbols.and_then(SymbolScope::list), as_of_date, read, out).await
        }
        Command::Universe(UniverseCommand::Rebuild { symbols, csv }) => {
            commands::universe_rebuild(ctx, symbols, csv, out).await
        }
        Command::Universe(UniverseCommand::Show { at: None, .. }) => commands::universe_show(ctx, out).await,
        Command::Universe(UniverseCommand::Show { at: Some(at), universe, as_of }) => {
            commands::universe_members(ctx, at, universe, &as_of, out).await
        }
        Command::Securities(cmd) => commands::securities(ctx, cmd, out).await,
        Command::Datasets => commands::datasets(ctx, out).await,
        Command::Snapshots { dataset, limit, .. } => commands::snapshots(ctx, dataset.as_deref(), limit, out).await,
        Command::Partitions { dataset, as_of } => commands::partitions(ctx, &dataset, &as_of, out).await,
        Command::Snapshot(cmd) => commands::snapshot(ctx, cmd, out).await,
        Command::Verify { datasets, history } => commands::verify(ctx, &datasets, history, out).await,
        Command::Recover { datasets, full } => commands::recover(ctx, &datasets, full, out).await,
        Command::Vacuum { datasets, retention, dry_run } => {
            commands::vacuum(ctx, &datasets, retention.as_deref(), dry_run, out).await
        }
        Command::Compact { datasets, dry_run } => commands::compact(ctx, &datasets, dry_run, out).await,
        Command::Export(ExportCommand::Delta { datasets }) => commands::export_delta(ctx, &datasets, out).await,
        Command::DeltaPath { dataset } => commands::delta_path(ctx, dataset, out).await,
        Command::Query { sql, read } => commands::query(ctx, &sql, read, out).await,
        Command::Bars(args) => commands::bars(ctx, args, out).await,
        Command::CorporateActions(CorporateActionsCommand::Import { source, path, symbols, start, end }) => {
            commands::corporate_actions_import(ctx, source, path, symbols.and_then(SymbolScope::list), start, end, out)
                .await
        }
        Command::CorporateActions(CorporateActionsCommand::Show { symbols, as_of }) => {
            commands::corporate_actions_show(ctx, symbols.and_then(SymbolScope::list), as_of, out).await
        }
        Command::RecomputeAdv { date } => commands::recompute_adv(ctx, date, out).await,
        Command::Calendar { start, end } => commands::calendar(start, end, out),
        Command::Train(args) => commands::train(ctx, args, out).await,
        Command::Models => commands::models(ctx, out).await,
        Command::Score(args) => commands::score(ctx, args, out).await,
        Command::Demo => commands::demo(ctx, out).await,
        Command::Serve { port, bind, token, no_jobs } => {
            commands::serve(ctx, crate::serve::ServeOptions { bind, port, token, run_jobs: !no_jobs }).await
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_hidden_from_the_logged_command_line() {
        let args = ["serve", "--token", "s3cret", "--port", "1", "--token=other"].map(String::from);
        assert_eq!(super::redact_secrets(args.into_iter()), ["serve", "--token", "***", "--port", "1", "--token=***"]);
    }
}
