//! The operations commands: the daily run and job records.

use chrono::{DateTime, NaiveDate, Utc};

use super::super::Context;
use super::super::args::{
    BackfillCommand, BackfillTriggerArgs, DispatchCommand, JobsArgs, JobsCommand, RunArgs, ScheduleArgs,
    ScheduleCommand,
};
use super::super::output::Output;
use quantlake::error::{Error, Result};
use quantlake::ops::jobs::{JobSettings, JobStore, Shard};
use quantlake::ops::tasks::backfill::{
    TriggerOptions, Triggered, get_backfill_job_status, resume_backfill, trigger_backfill,
};
use quantlake::ops::tasks::daily_run::{PipelineSettings, RunRequest, run_daily};
use quantlake::ops::tasks::{HistoricalBackfill, Maintenance, Retrain, Task, Validation};
use quantlake::ops::worker::{self, WorkerOptions};
use quantlake::outcome::Outcome;
use quantlake::progress::Progress;
use quantlake::symbol::{SymbolList, SymbolScope};

/// `run`: the daily pipeline; the outcome is the worst of its stages and the health it found.
pub async fn run(ctx: &Context, args: RunArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let request = RunRequest {
        date: args.date,
        force: args.force,
        source: args.source,
        symbols: args.symbols.and_then(SymbolScope::list).map(SymbolList::into_vec),
    };
    let bar = ctx.job_progress("run");
    let report = run_daily(&lake, ctx.config.pipeline(), &request).await;
    bar.finish();
    let report = report?;
    out.run(&report);
    Ok(report.outcome)
}

/// `--since`: an age (`24h`, `7d`) or a date.
fn parse_since(since: &str) -> Result<DateTime<Utc>> {
    if let Ok(d) = since.parse::<NaiveDate>() {
        return Ok(d.and_hms_opt(0, 0, 0).map(|t| t.and_utc()).unwrap_or(DateTime::<Utc>::MIN_UTC));
    }
    let age = humantime::parse_duration(since).map_err(|e| {
        Error::invalid(format!("--since '{since}': expected an age (24h, 7d) or a date (YYYY-MM-DD): {e}"))
    })?;
    let age = chrono::Duration::from_std(age).map_err(|_| Error::invalid(format!("--since '{since}' is too long")))?;
    Ok(Utc::now() - age)
}

/// `jobs`, `jobs show|cancel|clean`.
pub async fn jobs(ctx: &Context, args: JobsArgs, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let store = JobStore::new(&lake, ctx.config.jobs.clone());
    match args.command {
        None => {
            let since = args.since.as_deref().map(parse_since).transpose()?;
            let mut records = store.list(since).await?;
            records.retain(|r| args.kind.as_deref().is_none_or(|k| r.kind == k));
            if args.summary {
                out.jobs_summary(&records);
            } else {
                out.jobs(&records);
            }
        }
        Some(JobsCommand::Show { id }) => {
            let record = store.get(&id).await?;
            let children: Vec<_> = store
                .list(Some(record.created_at))
                .await?
                .into_iter()
                .filter(|r| r.parent.as_deref() == Some(id.as_str()))
                .collect();
            let logs = store.log(&id).await?;
            out.job(&record, &children, &logs);
        }
        Some(JobsCommand::Cancel { id, reason }) => {
            let record = store.cancel(&id, &reason).await?;
            let text = if record.status.is_finished() {
                format!("job {id} cancelled")
            } else {
                format!("job {id} asked to stop; it stops at its next step (`quantlake jobs show {id}`)")
            };
            out.message(&record, &text);
        }
        Some(JobsCommand::Clean { older_than }) => {
            let age = match older_than {
                Some(text) => quantlake::duration::parse("--older-than", &text)?,
                None => ctx.config.jobs.retention,
            };
            let age_text = quantlake::duration::format(age);
            let report = store.clean_older_than(age).await?;
            out.message(&report, &format!("removed {} job record(s) older than {age_text} ({} objects) and {} fired schedule marker(s); {} kept", report.jobs_removed, report.objects_removed, report.schedule_markers_removed, report.jobs_kept));
        }
    }
    Ok(Outcome::Ok)
}

/// `--not-before`: RFC 3339, or HH:MM for the next such time in New York.
fn parse_not_before(text: &str) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    let time = chrono::NaiveTime::parse_from_str(text, "%H:%M").map_err(|_| {
        Error::invalid(format!("--not-before '{text}': expected RFC 3339 (2024-03-25T22:00:00Z) or HH:MM (New York)"))
    })?;
    let ny = chrono_tz::America::New_York;
    let now = Utc::now().with_timezone(&ny);
    let mut day = now.date_naive();
    for _ in 0..3 {
        if let Some(t) = chrono::TimeZone::from_local_datetime(&ny, &day.and_time(time)).earliest()
            && t > now
        {
            return Ok(t.with_timezone(&Utc));
        }
        day = day.succ_opt().unwrap_or(day);
    }
    Err(Error::invalid(format!("--not-before '{text}': no such time in New York in the next days")))
}

/// The trigger options the flags give.
fn trigger_options(args: &BackfillTriggerArgs, queue: bool) -> Result<TriggerOptions> {
    let not_before = args.not_before.as_deref().map(parse_not_before).transpose()?;
    Ok(TriggerOptions {
        overwrite_curated: args.overwrite_curated,
        overwrite_features: args.overwrite_features,
        dry_run: args.dry_run,
        tag: args.tag.clone(),
        reingest: args.reingest,
        queue,
        not_before,
        force_large: args.force_large,
    })
}

/// `trigger_backfill` with the flags of `backfill trigger` (`queue`: for a worker, as `dispatch backfill`).
async fn trigger(
    lake: &quantlake::table::Lake,
    settings: PipelineSettings<'_>,
    args: &BackfillTriggerArgs,
    queue: bool,
) -> Result<Triggered> {
    let options = trigger_options(args, queue)?;
    let symbols = args.symbols.clone().list().map(SymbolList::into_vec);
    trigger_backfill(lake, settings, &args.dataset, symbols, args.start, args.end, &options).await
}

/// `backfill trigger|status|resume`.
pub async fn backfill_job(ctx: &Context, cmd: BackfillCommand, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let settings = ctx.config.pipeline();
    let bar = ctx.job_progress("backfill");
    let done = match cmd {
        BackfillCommand::Trigger(args) => trigger(&lake, settings, &args, false).await,
        BackfillCommand::Status { id } => get_backfill_job_status(&lake, settings, &id).await.map(Triggered::Finished),
        BackfillCommand::Resume { id } => resume_backfill(&lake, settings, &id).await.map(Triggered::Finished),
    };
    bar.finish();
    let status = match done? {
        Triggered::Plan(plan) => {
            out.backfill_plan(&plan);
            return Ok(if plan.refused.is_some() { Outcome::Warning } else { Outcome::Ok });
        }
        Triggered::Queued(status) | Triggered::Finished(status) => status,
    };
    out.backfill_status(&status);
    Ok(status.job.status.outcome())
}

/// `dispatch TASK`: queues it and prints the job.
pub async fn dispatch(ctx: &Context, cmd: DispatchCommand, out: &Output) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let settings = ctx.config.pipeline();
    let record = match cmd {
        DispatchCommand::DailyRun { date, force } => {
            quantlake::ops::tasks::daily_run::enqueue_daily(
                &lake,
                settings,
                &RunRequest { date, force, ..Default::default() },
            )
            .await?
        }
        DispatchCommand::HistoricalBackfill { source, symbols, frequency } => {
            let symbols = symbols.and_then(SymbolScope::list).map(SymbolList::into_vec);
            let task = Task::HistoricalBackfill(HistoricalBackfill { source, symbols, bar_size: frequency });
            worker::dispatch(&lake, settings, &task).await?
        }
        DispatchCommand::RunValidation { full } => {
            worker::dispatch(&lake, settings, &Task::RunValidation(Validation { full, scheduled: None })).await?
        }
        DispatchCommand::MonthlyMaintenance => {
            worker::dispatch(&lake, settings, &Task::MonthlyMaintenance(Maintenance::default())).await?
        }
        DispatchCommand::Train { end } => {
            worker::dispatch(&lake, settings, &Task::Train(Retrain { end, scheduled: None })).await?
        }
        DispatchCommand::Backfill(args) => match trigger(&lake, settings, &args, true).await? {
            Triggered::Plan(plan) => {
                out.backfill_plan(&plan);
                return Ok(Outcome::Ok);
            }
            Triggered::Queued(status) | Triggered::Finished(status) => status.job,
        },
    };
    out.message(
        &record,
        &format!("queued {} {} (quantlake worker runs it; quantlake jobs show {})", record.kind, record.id, record.id),
    );
    Ok(Outcome::Ok)
}

/// `worker`'s flags, as given.
pub struct WorkerFlags {
    pub once: bool,
    pub poll: String,
    pub tasks: Option<String>,
    pub max_jobs: Option<usize>,
    pub shard: Option<String>,
}

/// `worker`: claims and runs queued jobs (its share of them, with a shard); the outcome is the worst
/// of theirs.
pub async fn worker(ctx: &Context, flags: WorkerFlags, out: &Output) -> Result<Outcome> {
    let WorkerFlags { once, poll, tasks, max_jobs, shard } = flags;
    let poll = humantime::parse_duration(&poll).map_err(|e| Error::invalid(format!("--poll '{poll}': {e}")))?;
    // The flag wins over the scheduler's variables.
    let shard = match shard {
        Some(flag) => Some(flag.parse::<Shard>()?),
        None => Shard::from_env(|name| std::env::var(name).ok())?,
    };
    let lake = ctx.open().await?;
    let options = WorkerOptions {
        once,
        poll,
        tasks: tasks.as_deref().map(crate::values::comma_list).unwrap_or_default(),
        max_jobs,
    };
    let jobs = JobSettings { shard, ..ctx.config.jobs.clone() };
    let settings = PipelineSettings { jobs: &jobs, ..ctx.config.pipeline() };
    let report = worker::work(&lake, settings, &options).await?;
    out.jobs(&report.jobs);
    Ok(report.jobs.iter().map(|j| j.status.outcome()).max().unwrap_or(Outcome::Ok))
}

/// `schedule`, `schedule pause|resume|status`.
pub async fn schedule(ctx: &Context, args: ScheduleArgs, out: &Output) -> Result<Outcome> {
    use quantlake::ops::schedule;
    let lake = ctx.open().await?;
    let settings = ctx.config.pipeline();
    match args.command {
        Some(ScheduleCommand::Pause { reason }) => {
            let p = schedule::pause(&lake, &reason).await?;
            out.message(&p, &format!("schedule paused: {reason} (quantlake schedule resume)"));
        }
        Some(ScheduleCommand::Resume) => {
            schedule::resume(&lake).await?;
            out.message(&serde_json::json!({ "paused": false }), "schedule resumed");
        }
        Some(ScheduleCommand::Status) => {
            let now = Utc::now();
            let paused = schedule::paused(&lake).await?;
            let next = schedule::next_event(now, settings.run, &ctx.config.schedule)?;
            let heartbeat = schedule::heartbeat(&lake).await?;
            let alive = heartbeat.as_ref().is_some_and(|h| h.alive(now));
            let scheduler = match &heartbeat {
                Some(h) if alive => format!(
                    "a scheduler is alive ({} pid {}, last tick {}s ago)",
                    h.host,
                    h.pid,
                    (now - h.at).num_seconds()
                ),
                Some(h) => format!(
                    "NO scheduler is alive: the last tick was at {} ({} pid {}); start one with `quantlake schedule`",
                    h.at.to_rfc3339(),
                    h.host,
                    h.pid
                ),
                None => "NO scheduler has ever ticked on this lake; start one with `quantlake schedule`".into(),
            };
            let text = format!(
                "{scheduler}\nschedule {}; next: {}",
                paused.as_ref().map_or_else(
                    || "not paused".to_string(),
                    |p| format!("PAUSED since {} ({})", p.since.to_rfc3339(), p.reason)
                ),
                next.as_ref().map_or_else(
                    || "-".to_string(),
                    |e| format!("{} for {} at {}", e.task, e.session, e.due.to_rfc3339())
                )
            );
            let report = serde_json::json!({ "alive": alive, "heartbeat": heartbeat, "paused": paused, "next": next });
            out.message(&report, &text);
            // Nothing fires without a scheduler: a monitoring agent hears it as a warning.
            return Ok(Outcome::warning_if(!alive));
        }
        None if args.at.is_some() => {
            let at = args
                .at
                .as_deref()
                .map(|t| DateTime::parse_from_rfc3339(t).map(|t| t.with_timezone(&Utc)))
                .transpose()
                .map_err(|e| Error::invalid(format!("--at: expected RFC 3339: {e}")))?;
            let tick = schedule::tick(&lake, settings, &ctx.config.schedule, at.unwrap_or_else(Utc::now)).await?;
            if !args.no_worker {
                worker::work(
                    &lake,
                    settings,
                    &WorkerOptions { once: true, poll: ctx.config.schedule.tick, tasks: Vec::new(), max_jobs: None },
                )
                .await?;
            }
            out.schedule_ticks(&[tick]);
        }
        None => {
            let ticks = schedule::serve(&lake, settings, &ctx.config.schedule, args.once, !args.no_worker).await?;
            out.schedule_ticks(&ticks);
        }
    }
    Ok(Outcome::Ok)
}

/// `bootstrap`: the guide's order as one resumable job.
pub async fn bootstrap(
    ctx: &Context,
    source: Option<quantlake::sources::SourceKind>,
    fundamentals: Option<std::path::PathBuf>,
    skip_training: bool,
    out: &Output,
) -> Result<Outcome> {
    let lake = ctx.open().await?;
    let request =
        quantlake::ops::tasks::bootstrap::BootstrapRequest { source, fundamentals_file: fundamentals, skip_training };
    let bar = ctx.job_progress("bootstrap");
    let report = quantlake::ops::tasks::bootstrap::bootstrap(&lake, ctx.config.pipeline(), &request).await;
    bar.finish();
    let report = report?;
    let mut text = format!("bootstrap {}: {}", report.job.id, report.job.status);
    for step in &report.steps {
        text.push_str(&format!("\n  {} {}", step["step"].as_str().unwrap_or(""), step["result"]));
    }
    if let Some(e) = &report.job.error {
        text.push_str(&format!("\n  error: {e} (run `quantlake bootstrap` again to resume)"));
    }
    out.message(&report, &text);
    Ok(report.job.status.outcome())
}
