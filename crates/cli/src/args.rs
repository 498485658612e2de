//! Every command-line flag, defined once, with its documentation.

use std::path::PathBuf;

use chrono::NaiveDate;
use clap::{Args, Parser, Subcommand, ValueEnum};

use quantlake::bars::BarSize;
use quantlake::symbol::{SymbolList, SymbolScope};
use quantlake::table::AsOf;

use crate::values::named;

#[derive(Debug, Parser)]
#[command(
    name = "quantlake",
    version,
    about = "An embedded, file-based market-data lake: partitioned Parquet, snapshots, DuckDB SQL."
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct Global {
    /// Lake URL: a path, file:///abs/path, or s3://bucket/prefix (S3 settings from the standard AWS_*
    /// variables, e.g. AWS_ENDPOINT_URL and AWS_ALLOW_HTTP for a local server). Default: the config's
    /// lake.root, which defaults to ./lake.
    #[arg(long, global = true, env = "QUANTLAKE_LAKE")]
    pub lake: Option<String>,

    /// Config file (TOML). Environment variables QUANTLAKE_<SECTION>__<KEY> override it.
    #[arg(long, global = true, env = "QUANTLAKE_CONFIG", default_value = quantlake::config::DEFAULT_PATH)]
    pub config: PathBuf,

    /// Print the result as JSON on stdout (progress and logs still go to stderr).
    #[arg(long, global = true)]
    pub json: bool,

    /// No progress bars.
    #[arg(long, short, global = true)]
    pub quiet: bool,

    /// Append log lines to this file too (default: logging.file, else logs/app.log beside a local lake's
    /// folder, or ~/.local/state/quantlake/logs/app.log for an S3 lake; "" for none). Its level
    /// is logging.level (info); stderr's is RUST_LOG (warn).
    #[arg(long, global = true, env = "QUANTLAKE_LOG_FILE")]
    pub log_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create the lake (idempotent).
    Init,
    /// Ingest bars from a source into its raw dataset (a targeted re-ingest replaces exactly the
    /// requested symbols' rows in the requested sessions).
    Ingest(IngestArgs),
    /// Fill BACKFILL_TARGET_DAYS of history back from the last completed session, newest first, in
    /// adaptive steps; skips what ingest_progress records as finished, so a rerun resumes.
    BackfillHistory(BackfillArgs),
    /// Curate raw minute bars into curated_1m_bars for a range of sessions (replaces exactly those
    /// partitions): best source per symbol-session, dedupe, OHLC checks (rejects in curation_rejects),
    /// the session's minute grid with fills, regular-hours and outlier flags.
    Curate(CurateArgs),
    /// The daily pipeline for one session: ingest ([run] source and symbols) -> curate -> features ->
    /// data quality -> scoring (when a model is registered). Each stage is a job record (`jobs`). A
    /// stage whose input partition is RED is blocked unless --force; a failed stage skips those after
    /// it that need its output. Exits 0, 1 or 2 by the worst stage or health status.
    Run(RunArgs),
    /// Job records: every run stage, backfill and queued task (default: list them).
    Jobs(JobsArgs),
    /// Repair or re-derive a scope across layers (the library's trigger_backfill): plan, a lake-wide
    /// tag before writing, re-ingest, re-curate, features, data quality and an impact report; status
    /// and resume of a backfill job.
    #[command(subcommand)]
    Backfill(BackfillCommand),
    /// The scheduler: queues the daily run at run.at (New York) on every session, the weekly checks
    /// and the monthly maintenance, once per lake however many schedulers run, and runs them with
    /// its own worker (unless --no-worker). Default: until Ctrl-C; --once: fire what is due and stop
    /// (for cron or a systemd timer).
    Schedule(ScheduleArgs),
    /// A new lake in the robustness guide's order: universe -> historical backfill -> fundamentals ->
    /// curation -> ADV -> features -> training -> validation, one job with a checkpoint per step; run it
    /// again to resume a killed bootstrap.
    Bootstrap {
        /// The bar source (default: run.source).
        #[arg(long, value_parser = named::<quantlake::sources::SourceKind>())]
        source: Option<quantlake::sources::SourceKind>,
        /// Fundamentals from this CSV or Parquet file (default: Polygon, when POLYGON_API_KEY is set).
        #[arg(long)]
        fundamentals: Option<PathBuf>,
        /// Leave out training.
        #[arg(long)]
        skip_training: bool,
    },
    /// Queue a task for `quantlake worker` (the robustness guide's dispatch_task).
    #[command(subcommand)]
    Dispatch(DispatchCommand),
    /// Run queued jobs, oldest first, until Ctrl-C (or, with --once, until the queue is empty).
    /// Several workers may share a lake (local or S3): each job runs once; a dead worker's job is
    /// taken over when its lease expires.
    Worker {
        /// Stop when the queue is empty.
        #[arg(long)]
        once: bool,
        /// Wait between looks at an empty queue.
        #[arg(long, default_value = "10s")]
        poll: String,
        /// Only these tasks (comma-separated; default all).
        #[arg(long)]
        tasks: Option<String>,
        /// Stop after this many jobs.
        #[arg(long)]
        max_jobs: Option<usize>,
        /// This worker's share of a backfill's chunks, I/N (0-based; e.g. 2/8): a fixed round-robin share,
        /// another share's chunk only after it waited a lease. Default: a Kubernetes Indexed Job's
        /// JOB_COMPLETION_INDEX with JOB_COMPLETION_COUNT, or an AWS Batch array job's
        /// AWS_BATCH_JOB_ARRAY_INDEX with AWS_BATCH_JOB_ARRAY_SIZE; else no share.
        #[arg(long)]
        shard: Option<String>,
    },
    /// The dashboard and its JSON API (see the README's "Dashboard"): health, data quality,
    /// coverage, jobs and backfills, snapshots, bars, lineage, validation and alerts. Serves until
    /// Ctrl-C; prints the address it listens on.
    Serve {
        /// Port to listen on (0: any free port).
        #[arg(long, default_value_t = 8080)]
        port: u16,
        /// Address to listen on. Any address other than loopback needs an access token.
        #[arg(long, default_value = "127.0.0.1")]
        bind: std::net::IpAddr,
        /// Access token every client must send (bearer header or login form). Prefer the
        /// environment variable: a flag shows in the process list.
        #[arg(long, env = "QUANTLAKE_TOKEN", hide_env_values = true)]
        token: Option<String>,
        /// Leave backfills triggered from the dashboard in the queue for `quantlake worker` instead of
        /// running them in this process.
        #[arg(long)]
        no_jobs: bool,
    },
    /// Compute feature and label sets from curated bars (default: features.sets) for a range of
    /// sessions, replacing exactly those partitions, as one commit with their data-quality metrics.
    Features(FeaturesArgs),
    /// A point-in-time training set (the library's get_features_for_training) to a Parquet or Arrow
    /// file; writes its lineage record to the lake and prints it.
    TrainingSet(TrainingSetArgs),
    /// Per symbol, the latest features available at a time (the library's get_features_for_inference).
    InferenceSet(InferenceSetArgs),
    /// Diagnostics.
    #[command(subcommand)]
    Debug(DebugCommand),
    /// Benchmark jobs.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Data quality (the library's get_data_quality_summary).
    #[command(subcommand)]
    Dq(DqCommand),
    /// A dataset's health (the library's get_dataset_health): its [quality] rules over the verdicts in
    /// the last sessions' partitions, freshness, symbol breadth, coverage rate and key symbols
    /// (health.key_symbols); GREEN / YELLOW / RED with a severity.
    Health {
        /// Any dataset with [quality] rules, or `predictions` (null rate and distribution shift).
        #[arg(long, default_value = "curated_1m_bars")]
        dataset: String,
        /// Judge as of this date (default: the last completed session).
        #[arg(long, value_parser = crate::values::date)]
        as_of_date: Option<NaiveDate>,
    },
    /// Exit 0, 1 or 2 for GREEN, YELLOW or RED (for cron and monitoring agents; 3 if it cannot run);
    /// prints one line. With --docker, Docker's HEALTHCHECK contract instead.
    HealthCheck {
        #[arg(long, default_value = "curated_1m_bars")]
        dataset: String,
        #[arg(long, value_parser = crate::values::date)]
        as_of_date: Option<NaiveDate>,
        /// Docker's exit contract: 0 healthy (GREEN or YELLOW), 1 unhealthy (RED, which covers SEV-1,
        /// or the check cannot run); never 2, which Docker reserves. A YELLOW lake keeps its container.
        #[arg(long)]
        docker: bool,
    },
    /// Every check across the lake: each dataset's files against its manifest, and the health of each
    /// dataset with [quality] rules. Exits 0, 1 or 2 for GREEN, YELLOW or RED.
    Validate {
        /// Also check the files of every retained older snapshot, and key symbols in every session
        /// since the data starts.
        #[arg(long)]
        full: bool,
        #[arg(long, value_parser = crate::values::date, conflicts_with_all = ["start", "end"])]
        as_of_date: Option<NaiveDate>,
        /// Only these datasets (comma-separated; default: every dataset with data).
        #[arg(long = "dataset", value_delimiter = ',')]
        datasets: Vec<String>,
        /// Only the partitions of the sessions from --start to --end (default: the last completed
        /// session), health judging each of them as of --end: the lake validated in smaller batches.
        #[arg(long, value_parser = crate::values::date)]
        start: Option<NaiveDate>,
        #[arg(long, value_parser = crate::values::date, requires = "start")]
        end: Option<NaiveDate>,
    },
    /// Alerts: the lake's conditions (RED health, symbol breadth, target and feature coverage, the lag
    /// of the raw, curated and feature layers) and the jobs' outcomes, one alert per state change to
    /// the log and the [alerts] webhook.
    #[command(subcommand)]
    Alerts(AlertsCommand),
    /// The robustness guide's checks as commands; exit 0 OK, 1 warning, 2 critical, 3 cannot run.
    #[command(subcommand)]
    Check(CheckCommand),
    /// Record an outage or an accepted upstream problem in a dataset, for some symbols (or all) over
    /// a time range (runbook 4.1, 4.3, 4.4); health and dq summary show it beside the sessions it
    /// touches, and --unusable keeps its cells out of training sets. `annotate --remove ID` deletes one.
    Annotate(AnnotateArgs),
    /// List annotations, oldest first: of one dataset, overlapping a range.
    Annotations {
        #[arg(long)]
        dataset: Option<String>,
        /// Only annotations ending at or after this date (New York) or RFC 3339 time.
        #[arg(long)]
        start: Option<String>,
        /// Only annotations starting at or before this date (its last instant) or RFC 3339 time.
        #[arg(long)]
        end: Option<String>,
    },
    /// Company fundamentals (the fundamentals dataset): upsert filings, show them point in time.
    #[command(subcommand)]
    Fundamentals(FundamentalsCommand),
    /// Ingestion progress records.
    #[command(subcommand)]
    Progress(ProgressCommand),
    /// The universe: the symbols the lake tracks (reference_universe).
    #[command(subcommand)]
    Universe(UniverseCommand),
    /// The security master: securities with stable ids, their tickers over time, delistings and
    /// universe membership (reference_securities, reference_symbology, reference_membership).
    #[command(subcommand)]
    Securities(SecuritiesCommand),
    /// List datasets: partitions, rows, bytes, last snapshot.
    Datasets,
    /// List a dataset's snapshots, newest first (with the stage each belongs to); with --all, the
    /// lake log: one entry per stage (a commit to several datasets), its outcome and each dataset's
    /// snapshot.
    Snapshots {
        #[arg(required_unless_present = "all")]
        dataset: Option<String>,
        /// The lake log instead of one dataset's log.
        #[arg(long, conflicts_with = "dataset")]
        all: bool,
        /// How many snapshots to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
    /// A dataset's partitions at a snapshot: rows, symbols, bytes, the snapshot that wrote each, the
    /// columns with nulls, and the data-quality verdict committed with the rows.
    Partitions {
        dataset: String,
        /// The lake state read: `latest`, a snapshot number, a tag (the dataset's or a lake-wide one) or a time
        /// (RFC 3339, or a date: its end, UTC).
        #[arg(long = "as-of", default_value = "latest")]
        as_of: AsOf,
    },
    /// Tag, restore or compare snapshots.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Check every file of the latest snapshot (size, SHA-256) and the live tree; exit 2 on any problem.
    Verify {
        /// Datasets to check (default: every dataset that has data).
        datasets: Vec<String>,
        /// Also check the files of every retained older snapshot.
        #[arg(long)]
        history: bool,
    },
    /// Finish interrupted commits (also done automatically before every write), and undo stages (a
    /// run's commit to several datasets) left undecided because their process died or their lease
    /// (lake.stage_timeout) expired; a stage still in progress is waited for.
    Recover {
        datasets: Vec<String>,
        /// Check every partition, not only those of unfinished commits, and remove stray live files.
        #[arg(long)]
        full: bool,
    },
    /// Delete partition versions, log entries and checkpoints no retained snapshot needs.
    Vacuum {
        datasets: Vec<String>,
        /// Keep snapshots visible within this window (e.g. 7d, 12h, 0s). Default: lake.history_retention.
        #[arg(long)]
        retention: Option<String>,
        /// Report what would be deleted without deleting.
        #[arg(long)]
        dry_run: bool,
    },
    /// Compact datasets (default: every written one) in one commit each: regroup a dataset stored in
    /// another partitioning than its contract's (per-session records from date= into month= files),
    /// re-encode files whose row groups or schema version are not what the contract writes now, and
    /// checkpoint the manifest. Rows never change; earlier snapshots stay readable.
    Compact {
        datasets: Vec<String>,
        /// Report what would be regrouped and rewritten without writing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Build or catch up the Delta Lake log of datasets (default: every written one). Every write
    /// keeps it current; this builds it for a lake written before it existed. Idempotent.
    #[command(subcommand)]
    Export(ExportCommand),
    /// Where a dataset's Delta Lake table is, for deltalake, polars' read_delta or DuckDB's
    /// delta_scan (version N is snapshot N); with no dataset, every written dataset's.
    DeltaPath { dataset: Option<String> },
    /// Run SQL (DuckDB) over the lake; every dataset is a view, `_partitions` the partition tables.
    Query {
        sql: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Curated bars (the library's get_curated_bars): 1m, or resampled within sessions; stored prices,
    /// or back-adjusted for splits (and dividends) at read time.
    Bars(BarsArgs),
    /// Corporate actions (reference_corporate_actions): splits and cash dividends per symbol and ex-date.
    #[command(subcommand)]
    CorporateActions(CorporateActionsCommand),
    /// Recompute average daily share and dollar volume (features_adv): the last adv.window sessions at
    /// or before the date, split-adjusted to its basis; short histories fall back to a shorter window
    /// (down to adv.min_sessions), then to the universe median.
    RecomputeAdv {
        /// The session (default: the latest session with curated bars).
        #[arg(long, value_parser = crate::values::date)]
        date: Option<NaiveDate>,
    },
    /// NYSE sessions between two dates, with open and close in UTC and New York time.
    Calendar {
        #[arg(long, value_parser = crate::values::date)]
        start: NaiveDate,
        #[arg(long, value_parser = crate::values::date)]
        end: NaiveDate,
    },
    /// Fit the baseline ridge model on a training set (the library's get_features_for_training):
    /// --window-years of sessions ending at --end, metrics on a time-ordered holdout (the last
    /// --holdout-fraction of the sessions, after an embargo), then a refit on every row. The model is
    /// stored under _models/<model_id>/model.json with its lineage and registered in `models`; its id
    /// is the hash of its content, so the same data and settings give the same id.
    Train(TrainArgs),
    /// The model registry (`models`), newest first: id, feature set and version, target, alpha,
    /// window, rows and holdout metrics.
    Models,
    /// Score sessions with a model (default: the latest; --walk-forward: per session, the newest fitted
    /// before it) into `predictions`, one row per feature row, replacing exactly those sessions'
    /// partitions. Sessions the model saw are refused (--allow-in-sample scores them, flagged, exit 1).
    /// Judges each session's null rate and shift against a trailing window and exits by that verdict
    /// (0 GREEN, 1 YELLOW, 2 RED).
    Score(ScoreArgs),
    /// The README's walk-through: ingest synthetic bars, overwrite some partitions, list snapshots,
    /// time-travel, verify, and print how to read the files with DuckDB and pandas.
    Demo,
}

#[derive(Debug, Subcommand)]
pub enum ExportCommand {
    /// Every snapshot of each dataset as a Delta Lake table (`delta-path DATASET` gives its path).
    Delta {
        /// Datasets to export (default: every dataset that has data).
        datasets: Vec<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Name a snapshot (default: the latest), so vacuum keeps it: `tag DATASET NAME`, or `tag --all
    /// NAME` for the whole lake (every dataset's latest snapshot, read as one consistent cut).
    Tag {
        #[command(flatten)]
        target: Target,
        /// With a dataset: the snapshot to tag.
        #[arg(long, conflicts_with = "all")]
        snapshot: Option<u64>,
        #[arg(long, default_value = "")]
        message: String,
        /// Move the tag if it exists.
        #[arg(long)]
        force: bool,
    },
    /// List a dataset's tags, or with --all the lake-wide tags.
    Tags {
        #[arg(required_unless_present = "all")]
        dataset: Option<String>,
        #[arg(long, conflicts_with = "dataset")]
        all: bool,
    },
    /// Delete a tag: `untag DATASET NAME`, or `untag --all NAME`.
    Untag {
        #[command(flatten)]
        target: Target,
    },
    /// Commit a new snapshot with the content of an earlier one (N, tag or time): `restore DATASET
    /// TO`, or `restore --all TAG|TIME` to return every dataset to a lake-wide tag in one commit.
    Restore {
        #[command(flatten)]
        target: Target,
    },
    /// Partitions that differ between two snapshots (default `to`: latest).
    Diff {
        dataset: String,
        from: String,
        #[arg(default_value = "latest")]
        to: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SourceName {
    /// Deterministic synthetic bars (no account needed).
    Synthetic,
    /// Polygon aggregates (POLYGON_API_KEY; base URL: POLYGON_BASE_URL or [polygon] base_url).
    Polygon,
    /// Alpaca Market Data v2 (APCA_API_KEY_ID, APCA_API_SECRET_KEY; APCA_API_DATA_URL or [alpaca] base_url).
    Alpaca,
    /// Interactive Brokers TWS / IB Gateway ([tws] host, port, client_id in the config).
    Tws,
    /// A CSV or Parquet file (--path).
    File,
}

/// Which symbols, over which sessions: shared by `ingest` and `backfill-history`.
#[derive(Debug, Args)]
pub struct RangeArgs {
    /// A comma-separated list (AAPL,MSFT); for the synthetic source also a number N (its first N symbols).
    /// backfill-history defaults to the active universe.
    #[arg(long)]
    pub symbols: Option<String>,
    /// Bar size: one-minute or daily bars.
    #[arg(long, visible_alias = "bar-size", value_parser = named::<BarSize>(), default_value = "1m")]
    pub frequency: BarSize,
    /// Sessions (partitions, for files) per commit (default: ingest.chunk_sessions).
    #[arg(long)]
    pub chunk_sessions: Option<usize>,
    /// Job id recorded in rows, commits and progress (default: a fresh one).
    #[arg(long)]
    pub job_id: Option<String>,
}

#[derive(Debug, Args)]
pub struct IngestArgs {
    /// Where bars come from.
    #[arg(long, value_enum)]
    pub source: SourceName,
    #[command(flatten)]
    pub range: RangeArgs,
    /// First session date (YYYY-MM-DD; default: ingest.days_back / DAYS_BACK sessions before --end).
    #[arg(long, value_parser = crate::values::date)]
    pub start: Option<NaiveDate>,
    /// Last session date (YYYY-MM-DD, inclusive; default: the last completed session).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
    /// Skip the symbol-sessions ingest_progress records as done or empty (continue an interrupted ingest).
    #[arg(long)]
    pub resume: bool,
    /// Synthetic: random seed (default: synthetic.seed).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Synthetic: probability of a missing minute.
    #[arg(long)]
    pub gap_rate: Option<f64>,
    /// Synthetic: probability of a duplicated minute.
    #[arg(long)]
    pub duplicate_rate: Option<f64>,
    /// Synthetic: probability of a bad tick.
    #[arg(long)]
    pub outlier_rate: Option<f64>,
    /// File: a CSV or Parquet file, a directory of them (read recursively), or a quoted glob pattern
    /// ('raw/date=*/*.parquet'); all of them are imported in one call.
    #[arg(long)]
    pub path: Option<std::path::PathBuf>,
    /// File: format (default: from the extension).
    #[arg(long, value_parser = named::<quantlake::sources::file::FileFormat>())]
    pub format: Option<quantlake::sources::file::FileFormat>,
    /// File: column mapping, field=column, e.g. ts=Date,open=Open (fields: ts, open, high, low, close,
    /// volume, symbol, vwap, trade_count; common names are found without a mapping).
    #[arg(long)]
    pub columns: Option<String>,
    /// File: time zone of timestamps without an offset.
    #[arg(long, default_value = "America/New_York")]
    pub timezone: String,
    /// File: the symbol, for files without a symbol column.
    #[arg(long)]
    pub symbol: Option<quantlake::symbol::Symbol>,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Where bars come from.
    #[arg(long, value_parser = named::<quantlake::sources::SourceKind>(), default_value = "synthetic")]
    pub source: quantlake::sources::SourceKind,
    #[command(flatten)]
    pub range: RangeArgs,
    /// Last session to fill (default: the last completed session).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
}

#[derive(Debug, Subcommand)]
pub enum DqCommand {
    /// Metrics per session between two dates (expected vs present bars, gaps, fills, invalid,
    /// duplicates, outliers, coverage), and their total.
    Summary {
        #[arg(long, default_value = "curated_1m_bars")]
        dataset: String,
        #[arg(long, value_parser = crate::values::date)]
        start: NaiveDate,
        /// Last session date, inclusive (default: --start).
        #[arg(long, value_parser = crate::values::date)]
        end: Option<NaiveDate>,
    },
}

// `annotate`'s flags (a doc comment here would replace the command's help).
#[derive(Debug, Args)]
pub struct AnnotateArgs {
    /// The dataset annotated, e.g. curated_1m_bars.
    #[arg(required_unless_present = "remove")]
    pub dataset: Option<String>,
    /// Comma-separated symbols, or all.
    #[arg(long, required_unless_present = "remove")]
    pub symbols: Option<String>,
    /// First instant covered: a date (YYYY-MM-DD in New York: from its midnight) or an RFC 3339 time.
    #[arg(long, required_unless_present = "remove")]
    pub start: Option<String>,
    /// Last instant covered, inclusive: a date (to its last instant) or an RFC 3339 time.
    #[arg(long, required_unless_present = "remove")]
    pub end: Option<String>,
    /// Why: the outage, the upstream problem, the decision taken.
    #[arg(long, required_unless_present = "remove")]
    pub reason: Option<String>,
    /// The covered cells must not be used: training sets leave them out and list them in their lineage.
    #[arg(long)]
    pub unusable: bool,
    /// Remove the annotation with this id instead (quantlake annotations lists the ids).
    #[arg(long, conflicts_with_all = ["dataset", "symbols", "start", "end", "reason", "unusable"])]
    pub remove: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FundamentalsSourceName {
    /// Polygon /vX/reference/financials (POLYGON_API_KEY; base URL: POLYGON_BASE_URL or [polygon] base_url).
    Polygon,
    /// A CSV or Parquet file (--path).
    File,
}

#[derive(Debug, Subcommand)]
pub enum FundamentalsCommand {
    /// Upsert filings into fundamentals in one snapshot: a (symbol, fiscal period, filing date) row is
    /// replaced, never duplicated; a restatement (a later filing date) is a new row; unchanged rows
    /// commit nothing.
    Upsert {
        #[arg(long, value_enum)]
        source: FundamentalsSourceName,
        /// Comma-separated symbols. Polygon: the symbols asked for (default: the active universe);
        /// file: only these symbols' rows are imported.
        #[arg(long)]
        symbols: Option<SymbolScope>,
        /// File: the CSV or Parquet file (columns: symbol, fiscal_year, fiscal_period, period_end,
        /// filing_date, optional period_start, cik, company_name, filing_id, filing_url, currency, and
        /// items as revenues, net_income_loss, ... or statement.item).
        #[arg(long)]
        path: Option<PathBuf>,
        /// File: format (default: from the extension).
        #[arg(long, value_parser = named::<quantlake::sources::file::FileFormat>())]
        format: Option<quantlake::sources::file::FileFormat>,
    },
    /// Stored filings (every filing, by symbol and filing date), or with --as-of-date the latest
    /// filing per symbol filed strictly before that date: what a decision on it may use.
    Show {
        /// Comma-separated symbols (default: all).
        #[arg(long)]
        symbols: Option<SymbolScope>,
        #[arg(long, value_parser = crate::values::date)]
        as_of_date: Option<NaiveDate>,
        #[command(flatten)]
        read: ReadArgs,
    },
}

#[derive(Debug, Subcommand)]
pub enum UniverseCommand {
    /// Rebuild reference_universe from [universe] symbols or csv (or the flags): listed symbols become
    /// active, unlisted ones stay with active = false.
    Rebuild {
        /// Comma-separated symbols (instead of the config's).
        #[arg(long, conflicts_with = "csv")]
        symbols: Option<SymbolList>,
        /// A CSV with a symbol column and any of con_id, exchange, primary_exchange, currency, sec_type, name.
        #[arg(long)]
        csv: Option<PathBuf>,
    },
    /// List the universe and its breadth against FEATURE_BREADTH_MIN_SYMBOLS / FEATURE_BREADTH_WARN_SYMBOLS;
    /// with --at, the members on that date from the security master (delisted securities included
    /// up to their delisting).
    Show {
        /// The members on this date (reference_membership), each with its ticker then.
        #[arg(long, value_parser = crate::values::date)]
        at: Option<NaiveDate>,
        /// With --at: the universe (default: securities.default_universe).
        #[arg(long, requires = "at")]
        universe: Option<String>,
        /// With --at: the lake state read (what the lake knew then): `latest`, a snapshot number, a tag
        /// or a time.
        #[arg(long = "as-of", default_value = "latest", requires = "at")]
        as_of: AsOf,
    },
}

#[derive(Debug, Subcommand)]
pub enum SecuritiesCommand {
    /// Import securities and their ticker histories and upsert them as that source's view: matched to
    /// stored securities by security_id, FIGI, IB contract id or their last ticker, else minted. A
    /// source's rows of a security replace its earlier ones; an import that would let one ticker name
    /// two securities on a date is refused, naming the rows.
    Import {
        #[arg(long, value_parser = named::<quantlake::reference::securities::SecuritySource>())]
        source: quantlake::reference::securities::SecuritySource,
        /// csv: the CSV or Parquet file (ticker intervals, or symbol changes; docs/securities.md).
        #[arg(long)]
        path: Option<PathBuf>,
        /// polygon, tws: the tickers to look up (default: the active universe).
        #[arg(long)]
        symbols: Option<SymbolList>,
        /// Also record the imported securities as members of this universe, from their listing (or
        /// first ticker) to their delisting.
        #[arg(long)]
        universe: Option<String>,
    },
    /// Migrate a ticker-keyed lake: one security per reference_universe symbol, members of the default
    /// universe while listed. Running it again changes nothing.
    Migrate,
    /// List the securities: id, ticker on --at (default today), name, kind, listing, delisting, FIGI.
    Show {
        /// Only the securities these tickers name on --at.
        #[arg(long)]
        symbols: Option<SymbolList>,
        /// The date tickers are shown and looked up on (default: today).
        #[arg(long, value_parser = crate::values::date)]
        at: Option<NaiveDate>,
        /// The lake state read: `latest`, a snapshot number, a tag or a time.
        #[arg(long = "as-of", default_value = "latest")]
        as_of: AsOf,
    },
    /// A security's ticker history, every source's rows (the ones readers use marked).
    History {
        /// A security id, or a ticker (resolved on --at).
        security: String,
        /// The date a ticker is resolved on (default: today).
        #[arg(long, value_parser = crate::values::date)]
        at: Option<NaiveDate>,
        #[arg(long = "as-of", default_value = "latest")]
        as_of: AsOf,
    },
    /// The security a ticker named on a date. Exit 1 when it named none.
    Resolve {
        ticker: quantlake::symbol::Symbol,
        /// The date (default: today).
        #[arg(long, value_parser = crate::values::date)]
        at: Option<NaiveDate>,
        /// Only the ticker on this exchange.
        #[arg(long)]
        exchange: Option<String>,
        #[arg(long = "as-of", default_value = "latest")]
        as_of: AsOf,
    },
}

#[derive(Debug, Subcommand)]
pub enum CorporateActionsCommand {
    /// Import splits and cash dividends and upsert them: a row with the same (symbol, ex_date, kind,
    /// source) replaces the stored one, never duplicates it.
    Import {
        #[arg(long, value_parser = named::<quantlake::reference::corporate_actions::ActionSource>())]
        source: quantlake::reference::corporate_actions::ActionSource,
        /// CSV: the file (symbol,ex_date,split_from,split_to and/or cash_amount; optional currency,
        /// dividend_type, declaration_date, record_date, pay_date).
        #[arg(long)]
        path: Option<PathBuf>,
        /// Comma-separated symbols (vendors: default the active universe; CSV: default every row).
        #[arg(long)]
        symbols: Option<SymbolScope>,
        /// Only ex-dates on or after this date (Alpaca default: corporate_actions.alpaca_default_days before --end).
        #[arg(long, value_parser = crate::values::date)]
        start: Option<NaiveDate>,
        /// Only ex-dates on or before this date (Alpaca default: today).
        #[arg(long, value_parser = crate::values::date)]
        end: Option<NaiveDate>,
    },
    /// List the stored actions (every source's row; the one adjustment uses is marked by precedence in
    /// the README).
    Show {
        /// Comma-separated symbols (default: all).
        #[arg(long)]
        symbols: Option<SymbolScope>,
        /// The lake state read: `latest`, a snapshot number, a tag (the dataset's or a lake-wide one) or a time
        /// (RFC 3339, or a date: its end, UTC).
        #[arg(long = "as-of", default_value = "latest")]
        as_of: AsOf,
    },
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// The session (default: the last completed one). A weekend or holiday is skipped with a message.
    #[arg(long, value_parser = crate::values::date)]
    pub date: Option<NaiveDate>,
    /// Run stages whose input partitions are RED.
    #[arg(long)]
    pub force: bool,
    /// The bar source (default: run.source).
    #[arg(long, value_parser = named::<quantlake::sources::SourceKind>())]
    pub source: Option<quantlake::sources::SourceKind>,
    /// Comma-separated symbols (default: run.symbols, else the universe's active symbols).
    #[arg(long)]
    pub symbols: Option<SymbolScope>,
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct JobsArgs {
    #[command(subcommand)]
    pub command: Option<JobsCommand>,
    /// Jobs created since this long ago (e.g. 24h, 7d) or this date (YYYY-MM-DD).
    #[arg(long)]
    pub since: Option<String>,
    /// Only jobs of this kind (daily_run, ingest, curate, features, data_quality, score, backfill, ...).
    #[arg(long)]
    pub kind: Option<String>,
    /// Counts per kind and status, durations and lag, instead of one line per job.
    #[arg(long)]
    pub summary: bool,
}

#[derive(Debug, Subcommand)]
pub enum JobsCommand {
    /// One job: its record, progress, children and log.
    Show { id: String },
    /// Stop a job: a queued or abandoned one at once, a running one at its next step.
    Cancel {
        id: String,
        /// Why, recorded with the job.
        #[arg(long, default_value = "cancelled by request")]
        reason: String,
    },
    /// Remove finished job records older than --older-than (default: jobs.retention, 90d).
    Clean {
        #[arg(long)]
        older_than: Option<String>,
    },
}

#[derive(Debug, Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: Option<ScheduleCommand>,
    /// Fire what is due (within schedule.catch_up) and stop.
    #[arg(long)]
    pub once: bool,
    /// With --once: as if it were this time (RFC 3339), e.g. to replay a missed day.
    #[arg(long, requires = "once")]
    pub at: Option<String>,
    /// Only queue; leave running to `quantlake worker` processes.
    #[arg(long)]
    pub no_worker: bool,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Stop events from firing (they are recorded as skipped) until `schedule resume`.
    Pause {
        #[arg(long, default_value = "paused by an operator")]
        reason: String,
    },
    /// Let events fire again (from now on).
    Resume,
    /// Paused or not, and the next events.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum DispatchCommand {
    /// The daily pipeline for one session (default: the last completed one).
    #[command(name = "daily_run", visible_alias = "daily-run")]
    DailyRun {
        #[arg(long, value_parser = crate::values::date)]
        date: Option<NaiveDate>,
        #[arg(long)]
        force: bool,
    },
    /// `backfill-history` from run.source (or --source) for the universe (or --symbols).
    #[command(name = "historical_backfill", visible_alias = "historical-backfill")]
    HistoricalBackfill {
        #[arg(long, value_parser = named::<quantlake::sources::SourceKind>())]
        source: Option<quantlake::sources::SourceKind>,
        #[arg(long)]
        symbols: Option<SymbolScope>,
        #[arg(long, value_parser = named::<BarSize>(), default_value = "1m")]
        frequency: BarSize,
    },
    /// `validate` (--full: every retained snapshot and every session).
    #[command(name = "run_validation", visible_alias = "run-validation")]
    RunValidation {
        #[arg(long)]
        full: bool,
    },
    /// Fundamentals refresh, ADV recompute, full validation, old progress and job records removed.
    #[command(name = "monthly_maintenance", visible_alias = "monthly-maintenance")]
    MonthlyMaintenance,
    /// The schedule's retraining: the [models] settings' model on the window ending at --end
    /// (default: the last completed session); refused when a curated or feature partition of the
    /// window is RED.
    Train {
        #[arg(long, value_parser = crate::values::date)]
        end: Option<NaiveDate>,
    },
    /// A backfill, planned now and queued (`backfill trigger` with --not-before, default now).
    Backfill(BackfillTriggerArgs),
}

#[derive(Debug, Subcommand)]
pub enum BackfillCommand {
    /// Plan and run a backfill of DATASET (raw, curated or a feature set) for some symbols and
    /// sessions. Raw cells are fetched again only where ingest_progress has none (all with
    /// --reingest); curated and feature backfills re-derive from the current raw snapshot. --json
    /// prints the plan (--dry-run) or the job's status.
    Trigger(BackfillTriggerArgs),
    /// A backfill's state, progress per step, ETA and, once done, its impact (the library's
    /// get_backfill_job_status).
    Status { id: String },
    /// Take over a killed (abandoned) or queued backfill and run what is left; committed chunks are
    /// not redone.
    Resume { id: String },
}

#[derive(Debug, Args)]
pub struct BackfillTriggerArgs {
    /// The dataset: raw_<source>_bars, curated_1m_bars, curated_1d_bars, or a feature or label set.
    pub dataset: String,
    /// `all`, or comma-separated symbols.
    #[arg(long)]
    pub symbols: SymbolScope,
    /// First session (YYYY-MM-DD).
    #[arg(long, value_parser = crate::values::date)]
    pub start: NaiveDate,
    /// Last session (YYYY-MM-DD, inclusive).
    #[arg(long, value_parser = crate::values::date)]
    pub end: NaiveDate,
    /// Re-curate the scope's sessions (implied for a curated dataset).
    #[arg(long)]
    pub overwrite_curated: bool,
    /// Recompute the configured feature and label sets over the scope (implied for a feature set).
    #[arg(long)]
    pub overwrite_features: bool,
    /// Print the plan (partitions, source requests and their time under pacing, bytes, annotations)
    /// and stop.
    #[arg(long)]
    pub dry_run: bool,
    /// Name of the lake-wide tag taken before writing (default: pre-<job id>).
    #[arg(long)]
    pub tag: Option<String>,
    /// Fetch every raw cell of the scope again, not only the missing ones.
    #[arg(long)]
    pub reingest: bool,
    /// Queue it for a worker (`quantlake worker`) to start at or after this time: RFC 3339, or HH:MM
    /// for the next such time in New York.
    #[arg(long)]
    pub not_before: Option<String>,
    /// Allow more than backfill.max_untested_sessions sessions without a smaller completed backfill
    /// of this scope first.
    #[arg(long)]
    pub force_large: bool,
}

#[derive(Debug, Subcommand)]
pub enum ProgressCommand {
    /// Remove progress records last updated longer ago than --older-than; the sessions they covered are
    /// fetched again by the next resume or backfill.
    Clean {
        /// Age, e.g. 90d.
        #[arg(long)]
        older_than: String,
    },
}

/// Which snapshot to read and where the rows go: shared by `query` and `bars`.
#[derive(Debug, Args)]
pub struct ReadArgs {
    /// The lake state read: `latest`, a snapshot number, a tag, a time (2024-01-02T15:00:00Z; a date is
    /// its end, UTC), or dataset@SPEC for one dataset. Repeatable; comma-separated lists too.
    #[arg(long = "as-of")]
    pub as_of: Vec<AsOf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file instead of stdout (required for parquet and arrow).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
    /// A Parquet file (needs --output).
    Parquet,
    /// An Arrow IPC file (needs --output).
    Arrow,
}

/// `DATASET NAME` for one dataset, or `--all NAME` for the whole lake.
#[derive(Debug, Args)]
pub struct Target {
    /// DATASET and NAME (or TO); with --all, NAME only.
    #[arg(value_name = "DATASET NAME", num_args = 1..=2, required = true)]
    pub args: Vec<String>,
    /// The whole lake instead of one dataset.
    #[arg(long)]
    pub all: bool,
}

impl Target {
    /// The dataset (none with --all) and the name.
    pub fn split(&self) -> quantlake::Result<(Option<&str>, &str)> {
        match (self.all, self.args.as_slice()) {
            (true, [name]) => Ok((None, name)),
            (false, [dataset, name]) => Ok((Some(dataset), name)),
            (true, _) => Err(quantlake::Error::InvalidArgument(
                "with --all, give only the name (the whole lake is the target)".into(),
            )),
            (false, _) => {
                Err(quantlake::Error::InvalidArgument("give DATASET and NAME, or --all NAME for the whole lake".into()))
            }
        }
    }
}

// `curate`'s flags (a doc comment here would replace the command's help).
#[derive(Debug, Args)]
pub struct CurateArgs {
    /// First session date (default: the last completed session).
    #[arg(long, value_parser = crate::values::date)]
    pub start: Option<NaiveDate>,
    /// Last session date, inclusive (default: --start).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
    /// Fill policy for missing regular-session minutes (default: curate.fill).
    #[arg(long, value_parser = named::<quantlake::curate::FillPolicy>())]
    pub fill: Option<quantlake::curate::FillPolicy>,
    /// Minute bars into curated_1m_bars, or daily bars into curated_1d_bars (whole years).
    #[arg(long, value_parser = named::<BarSize>(), default_value = "1m")]
    pub frequency: BarSize,
    /// Job id recorded in rows and the commit (default: a fresh one).
    #[arg(long)]
    pub job_id: Option<String>,
}

// `bars`' flags.
#[derive(Debug, Args)]
pub struct BarsArgs {
    /// Comma-separated symbols.
    #[arg(long)]
    pub symbols: SymbolList,
    #[arg(long, value_parser = crate::values::date)]
    pub start: NaiveDate,
    /// Last session date, inclusive (default: --start).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
    /// 1m, 5m, 15m, 30m, 1h or 1d (session OHLCV).
    #[arg(long, value_parser = named::<quantlake::curate::Frequency>(), default_value = "1m")]
    pub frequency: quantlake::curate::Frequency,
    /// 1m only: include extended-hours bars.
    #[arg(long)]
    pub extended_hours: bool,
    /// Back-adjust prices and volumes (factors from reference_corporate_actions at the same --as-of).
    #[arg(long, value_parser = named::<quantlake::reference::corporate_actions::Adjustment>(), default_value = "none")]
    pub adjust: quantlake::reference::corporate_actions::Adjustment,
    /// The date each symbol is resolved to a security on (default: --end; a symbol that names none
    /// then, the last date in the range it named one). A series runs across its security's renames;
    /// `ticker` is each row's ticker that day.
    #[arg(long, value_parser = crate::values::date)]
    pub resolve_at: Option<NaiveDate>,
    #[command(flatten)]
    pub read: ReadArgs,
}

// `features`' flags.
#[derive(Debug, Args)]
pub struct FeaturesArgs {
    /// A feature or label set (repeatable; default: features.sets).
    #[arg(long = "set")]
    pub sets: Vec<String>,
    /// First session date (default: the last completed session).
    #[arg(long, value_parser = crate::values::date)]
    pub start: Option<NaiveDate>,
    /// Last session date, inclusive (default: --start).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
    /// Job id recorded in the commit (default: a fresh one).
    #[arg(long)]
    pub job_id: Option<String>,
    /// Instead of a range: recompute exactly the partitions whose input partitions changed since they
    /// were computed (after a backfill or a restore of curated bars), as partition_inputs records them.
    #[arg(long, conflicts_with_all = ["start", "end"])]
    pub stale: bool,
}

// `training-set`'s flags.
#[derive(Debug, Args)]
pub struct TrainingSetArgs {
    #[arg(long, default_value = "features_price_1m_v1")]
    pub feature_set: String,
    /// The target: a label set's target, e.g. fwd_ret_resid_15m (falls back to fwd_ret_15m when its
    /// coverage over the last DAYS_BACK sessions is below MIN_TARGET_COVERAGE).
    #[arg(long, default_value = "fwd_ret_resid_15m")]
    pub label: String,
    /// Comma-separated symbols (default: all).
    #[arg(long)]
    pub symbols: Option<SymbolScope>,
    #[arg(long, value_parser = crate::values::date)]
    pub start: NaiveDate,
    /// Last session date, inclusive.
    #[arg(long, value_parser = crate::values::date)]
    pub end: NaiveDate,
    /// The lake state read: a lake tag, a tag, a snapshot number, a time (a date is its end, UTC), or
    /// dataset@SPEC pins (default: the latest).
    #[arg(long = "as-of", default_value = "latest")]
    pub as_of: AsOf,
    /// Also leave out rows whose label ends within this long of the range's end (e.g. 1d, 30m).
    #[arg(long)]
    pub embargo: Option<String>,
    /// Comma-separated fundamentals items to add (e.g. revenues,net_income_loss), from each symbol's
    /// latest filing dated before the decision date.
    #[arg(long)]
    pub fundamentals: Option<String>,
    /// Whose rows: the members of this universe on each decision date (default:
    /// securities.default_universe, when the security master records its membership; else every
    /// symbol with data), or `all` for every symbol with data.
    #[arg(long)]
    pub universe: Option<String>,
    /// The file to write: .parquet, or .arrow (Arrow IPC).
    #[arg(long)]
    pub output: PathBuf,
}

// `inference-set`'s flags.
#[derive(Debug, Args)]
pub struct InferenceSetArgs {
    #[arg(long, default_value = "features_price_1m_v1")]
    pub feature_set: String,
    /// Comma-separated symbols (default: every symbol with features in the last sessions).
    #[arg(long)]
    pub symbols: Option<SymbolScope>,
    /// The decision time, RFC 3339 (e.g. 2024-03-01T15:00:00Z; default: now): the features known then.
    #[arg(long)]
    pub at: Option<chrono::DateTime<chrono::Utc>>,
    /// Without --symbols, whose rows: the members of this universe on the decision date (default:
    /// securities.default_universe, when the security master records its membership; else every
    /// symbol with features), or `all` for every symbol with features.
    #[arg(long, conflicts_with = "symbols")]
    pub universe: Option<String>,
    /// The lake state read (e.g. the tag a model was trained on; default: the latest). Not a time of
    /// decision: that is --at.
    #[arg(long = "as-of", default_value = "latest")]
    pub as_of: AsOf,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write to this file instead of stdout (required for parquet and arrow).
    #[arg(long)]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum DebugCommand {
    /// Target coverage analysis: each target's coverage over the last DAYS_BACK sessions, per target
    /// and per session, against MIN_TARGET_COVERAGE (exit 2 when one is below).
    TargetCoverage(TargetCoverageArgs),
}

/// The target coverage analysis' flags: `debug target-coverage` and `check coverage`.
#[derive(Debug, Args)]
pub struct TargetCoverageArgs {
    /// The label set.
    #[arg(long, default_value = "labels_fwd_ret_v1")]
    pub dataset: String,
    /// Last session of the window (default: the last completed session).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
    /// Sessions in the window (default: DAYS_BACK / health.target_days_back).
    #[arg(long)]
    pub days_back: Option<u32>,
}

#[derive(Debug, Subcommand)]
pub enum AlertsCommand {
    /// Judge every lake condition as of a date, record the state changes under _alerts/ and send
    /// their alerts (log; webhook when [alerts] webhook_url is set; an unchanged bad state again after
    /// [alerts] repeat_after); print the conditions and the alerts sent. Exits by the worst
    /// condition: 0 OK, 1 warning, 2 critical.
    Check {
        /// Judge as of this date (default: the last completed session).
        #[arg(long, value_parser = crate::values::date)]
        as_of_date: Option<NaiveDate>,
    },
    /// The alert history, newest first.
    List {
        /// How many alerts to show.
        #[arg(long, default_value_t = 20)]
        limit: usize,
    },
}

#[derive(Debug, Subcommand)]
pub enum CheckCommand {
    /// The guide's feature_breadth_check: symbols with features in the latest session against
    /// FEATURE_BREADTH_MIN_SYMBOLS (critical) and FEATURE_BREADTH_WARN_SYMBOLS (warning), and the
    /// coverage rate within the features (below 90%: warning). Prints `Symbol breadth`.
    Breadth {
        /// The feature set.
        #[arg(long, default_value = "features_price_1m_v1")]
        dataset: String,
        /// Judge as of this date (default: the last completed session).
        #[arg(long, value_parser = crate::values::date)]
        as_of_date: Option<NaiveDate>,
    },
    /// The guide's debug_target_coverage (the same as `debug target-coverage`): each target's
    /// coverage over the last DAYS_BACK sessions against MIN_TARGET_COVERAGE (exit 2 when one is below).
    Coverage(TargetCoverageArgs),
    /// The runbook's connectivity check: connect to TWS / IB Gateway ([tws] settings), handshake,
    /// read the server version and current time, disconnect. Exit 0 when it answered, 3 when not.
    Tws {
        /// Host (default: tws.host).
        #[arg(long)]
        host: Option<String>,
        /// Port (default: tws.port; 7497 TWS paper, 7496 TWS live, 4002 Gateway paper, 4001 Gateway live).
        #[arg(long)]
        port: Option<u16>,
        /// API client id (default: tws.client_id); one a running ingest does not use.
        #[arg(long)]
        client_id: Option<i32>,
    },
}

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// The peer benchmark's job (../shared/bench/peers): import RAW_DIR's files into a new lake at
    /// OUT_DIR (absent or empty), curate, and compute features_price_1m_v1 and labels_fwd_ret_v1; the
    /// harness verifies the lake in place. Prints one line with the time of each stage.
    PeerJob { raw_dir: PathBuf, out_dir: PathBuf },
}

// `train`'s flags.
#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Feature set to train on (default: models.feature_set).
    #[arg(long)]
    pub feature_set: Option<String>,
    /// Label (default: models.label); the training set falls back to fwd_ret under low coverage.
    #[arg(long)]
    pub label: Option<String>,
    /// Comma-separated symbols (default: all).
    #[arg(long)]
    pub symbols: Option<SymbolScope>,
    /// Only these of the feature set's columns, comma-separated (default: all), e.g. to leave out
    /// vwap_30 for bars without volume.
    #[arg(long)]
    pub features: Option<String>,
    /// Years of sessions in the window, ending at --end (default: models.window_years).
    #[arg(long)]
    pub window_years: Option<u32>,
    /// Last session of the window (default: the last completed session).
    #[arg(long, value_parser = crate::values::date)]
    pub end: Option<NaiveDate>,
    /// Ridge penalty on the standardized weights, per row (default: models.alpha).
    #[arg(long)]
    pub alpha: Option<f64>,
    /// Share of the window's sessions, the last ones, held out for the metrics; 0 = none (default:
    /// models.holdout_fraction).
    #[arg(long)]
    pub holdout_fraction: Option<f64>,
    /// Sessions left out between the training part and the holdout (default: models.embargo_sessions).
    #[arg(long)]
    pub embargo_sessions: Option<usize>,
    /// Read the training set at a lake tag, a snapshot number or a time (default: the latest snapshots).
    #[arg(long = "as-of", default_value = "latest")]
    pub as_of: AsOf,
    /// Whose rows: the members of this universe on each decision date (default:
    /// securities.default_universe, when the security master records its membership; else every
    /// symbol with data), or `all` for every symbol with data.
    #[arg(long)]
    pub universe: Option<String>,
}

// `score`'s flags.
#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// The session to score.
    #[arg(value_parser = crate::values::date, long, conflicts_with_all = ["start", "end"], required_unless_present = "start")]
    pub date: Option<NaiveDate>,
    /// First session of a range to (re-)score, e.g. after a backfill.
    #[arg(value_parser = crate::values::date, long, requires = "end")]
    pub start: Option<NaiveDate>,
    /// Last session of the range, inclusive.
    #[arg(value_parser = crate::values::date, long, requires = "start")]
    pub end: Option<NaiveDate>,
    /// Model id (see `quantlake models`; default: the latest trained).
    #[arg(long, conflicts_with = "walk_forward")]
    pub model: Option<String>,
    /// For each session, the model (of the latest model's feature set and target) whose fit ended most
    /// recently before it: a backtest history never scored by a model that saw it.
    #[arg(long)]
    pub walk_forward: bool,
    /// Score sessions the model saw (on or before its fit end) instead of refusing: rows flagged
    /// `in_sample`, a warning, exit 1 at least.
    #[arg(long, conflicts_with = "walk_forward")]
    pub allow_in_sample: bool,
    /// Comma-separated symbols (default: all); the scored partitions then hold only these symbols.
    #[arg(long)]
    pub symbols: Option<SymbolScope>,
}
