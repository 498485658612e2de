//! The scheduler (`quantlake schedule`): queues the daily run at `run.at` (New York time) on every
//! NYSE session, the weekly checks after the week's last session, the monthly maintenance on the
//! month's first session, and the retraining (`train`: monthly by default, `schedule.train`); a worker
//! (the scheduler's own, or others sharing the lake) runs them.
//!
//! Each event fires once per lake, however many schedulers run: firing is a put-if-absent of the
//! event's marker under `_jobs/_schedule/fired/`. A scheduler that was down fires what came due in
//! the last `schedule.catch_up` when it comes back. `schedule pause` stops events from firing until
//! `schedule resume`; an event that comes due while paused is recorded as skipped, not run later.
//!
//! The same schedule from cron or a systemd timer (see the README): `quantlake schedule --once`
//! every few minutes fires what is due, and runs it with `--worker`.

use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Datelike, NaiveDate, Utc};
use object_store::path::Path;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::jobs::JobRecord;
use super::tasks::daily_run::{self, PipelineSettings, RunRequest, RunSettings};
use super::tasks::{Maintenance, Retrain, Task, TaskKind, Validation};
use super::worker::{self, WorkerOptions};
use crate::calendar::NyseCalendar;
use crate::error::{Error, Result};
use crate::names::Named;
use crate::table::Lake;

/// `[schedule]` settings (the daily run's time is `run.at`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default)]
pub struct ScheduleSettings {
    /// The weekly checks (`run_validation`: health, breadth, coverage, files) run this long after the
    /// daily run of the week's last session.
    #[serde(with = "crate::duration")]
    pub weekly_after: Duration,
    /// The monthly maintenance runs this long after the daily run of the month's first session.
    #[serde(with = "crate::duration")]
    pub monthly_after: Duration,
    /// How often the model is retrained (`train`, on the window ending at the session): `monthly` (the
    /// month's first session), `weekly` (the week's last session) or `off`.
    pub train: TrainEvery,
    /// The retraining runs this long after the daily run of its session (after the maintenance).
    #[serde(with = "crate::duration")]
    pub train_after: Duration,
    /// Events that came due this long ago still fire (a scheduler that was down catches up). Keep it
    /// shorter than `jobs.retention`: `jobs clean` removes fired events' markers older than that.
    #[serde(with = "crate::duration")]
    pub catch_up: Duration,
    /// How often the scheduler looks for due events.
    #[serde(with = "crate::duration")]
    pub tick: Duration,
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            weekly_after: Duration::from_secs(3600),
            monthly_after: Duration::from_secs(2 * 3600),
            train: TrainEvery::Monthly,
            train_after: Duration::from_secs(3 * 3600),
            catch_up: Duration::from_secs(6 * 3600),
            tick: Duration::from_secs(60),
        }
    }
}

/// How often the schedule retrains the model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TrainEvery {
    Monthly,
    Weekly,
    Off,
}

/// One scheduled event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Unique per occurrence: `daily_run-2024-03-05`, `run_validation-2024-03-08`, `monthly_maintenance-2024-04`.
    pub id: String,
    pub task: String,
    pub session: NaiveDate,
    pub due: DateTime<Utc>,
}

/// What one look at the schedule did.
#[derive(Debug, Clone, Serialize)]
pub struct Tick {
    pub at: DateTime<Utc>,
    pub paused: bool,
    /// Events queued now.
    pub queued: Vec<JobRecord>,
    /// Events that came due while paused.
    pub skipped: Vec<Event>,
    /// The next event.
    pub next: Option<Event>,
}

/// Whether the schedule is paused, and since when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Pause {
    pub since: DateTime<Utc>,
    pub reason: String,
}

/// A scheduler's sign of life, written at every tick of `quantlake schedule` (the last writer's), so
/// `schedule status` can say whether one is running, not only whether the schedule is paused.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Heartbeat {
    pub at: DateTime<Utc>,
    pub host: String,
    pub pid: u32,
    /// The scheduler's tick interval, seconds.
    pub tick_seconds: f64,
}

impl Heartbeat {
    /// Alive while the last tick is no older than two ticks and a minute (a tick runs the queue too).
    pub fn alive(&self, now: DateTime<Utc>) -> bool {
        let grace = chrono::Duration::milliseconds((2.0 * self.tick_seconds * 1000.0) as i64 + 60_000);
        now - self.at <= grace
    }
}

const ROOT: &str = "_jobs/_schedule";

fn heartbeat_path() -> Path {
    Path::from(format!("{ROOT}/heartbeat.json"))
}

/// The last scheduler's heartbeat, if one ever ticked.
pub async fn heartbeat(lake: &Lake) -> Result<Option<Heartbeat>> {
    let Some(bytes) = lake.store().get(&heartbeat_path()).await? else { return Ok(None) };
    Ok(serde_json::from_slice(&bytes).ok())
}

async fn beat(lake: &Lake, schedule: &ScheduleSettings) -> Result<()> {
    let holder = crate::table::lake_log::Holder::this_process();
    let beat =
        Heartbeat { at: Utc::now(), host: holder.host, pid: holder.pid, tick_seconds: schedule.tick.as_secs_f64() };
    lake.store().put(&heartbeat_path(), Bytes::from(serde_json::to_vec(&beat)?)).await?;
    Ok(())
}

fn pause_path() -> Path {
    Path::from(format!("{ROOT}/paused.json"))
}

fn fired_path(event: &Event) -> Path {
    Path::from(format!("{ROOT}/fired/{}.json", event.id))
}

/// The events of session `d`.
fn events_of(d: NaiveDate, run_settings: &RunSettings, schedule: &ScheduleSettings) -> Result<Vec<Event>> {
    let due = run_settings.due_at(d)?;
    let event = |kind: TaskKind, id: String, due| Event {
        id: format!("{kind}-{id}"),
        task: kind.name().into(),
        session: d,
        due,
    };
    let mut events = vec![event(TaskKind::DailyRun, d.to_string(), due)];
    let last_of_week = NyseCalendar.next_session(d).iso_week() != d.iso_week();
    let first_of_month = NyseCalendar.previous_session(d).month() != d.month();
    if last_of_week {
        events.push(event(TaskKind::RunValidation, d.to_string(), due + schedule.weekly_after));
    }
    if first_of_month {
        events.push(event(TaskKind::MonthlyMaintenance, d.format("%Y-%m").to_string(), due + schedule.monthly_after));
    }
    let train = match schedule.train {
        TrainEvery::Monthly if first_of_month => Some(d.format("%Y-%m").to_string()),
        TrainEvery::Weekly if last_of_week => Some(d.to_string()),
        _ => None,
    };
    if let Some(id) = train {
        events.push(event(TaskKind::Train, id, due + schedule.train_after));
    }
    Ok(events)
}

/// The events due in `(from, to]`, oldest first.
pub fn events_between(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    run_settings: &RunSettings,
    schedule: &ScheduleSettings,
) -> Result<Vec<Event>> {
    let ny = chrono_tz::America::New_York;
    let (a, b) = (from.with_timezone(&ny).date_naive(), to.with_timezone(&ny).date_naive());
    let mut out = Vec::new();
    for s in NyseCalendar.sessions(a.pred_opt().unwrap_or(a), b) {
        out.extend(events_of(s.date, run_settings, schedule)?.into_iter().filter(|e| e.due > from && e.due <= to));
    }
    out.sort_by_key(|e| e.due);
    Ok(out)
}

/// The first event after `at`.
pub fn next_event(at: DateTime<Utc>, run_settings: &RunSettings, schedule: &ScheduleSettings) -> Result<Option<Event>> {
    // Events are at most a few hours after their session's run, and sessions are never more than
    // a few days apart.
    Ok(events_between(at, at + chrono::Duration::days(10), run_settings, schedule)?.into_iter().next())
}

pub async fn paused(lake: &Lake) -> Result<Option<Pause>> {
    match lake.store().get(&pause_path()).await? {
        Some(bytes) => Ok(Some(serde_json::from_slice(&bytes)?)),
        None => Ok(None),
    }
}

/// `schedule pause`.
pub async fn pause(lake: &Lake, reason: &str) -> Result<Pause> {
    let p = Pause { since: Utc::now(), reason: reason.to_string() };
    lake.store().put(&pause_path(), Bytes::from(serde_json::to_vec(&p)?)).await?;
    tracing::warn!("schedule paused: {reason}");
    Ok(p)
}

/// `schedule resume`.
pub async fn resume(lake: &Lake) -> Result<()> {
    lake.store().delete(&pause_path()).await?;
    tracing::info!("schedule resumed");
    Ok(())
}

/// Fires what came due in the catch-up window before `now`: queues each event once per lake (or
/// records it skipped while paused).
pub async fn tick(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    schedule: &ScheduleSettings,
    now: DateTime<Utc>,
) -> Result<Tick> {
    let catch_up = chrono::Duration::from_std(schedule.catch_up)
        .map_err(|_| Error::Config("schedule.catch_up is too long".into()))?;
    let pause = paused(lake).await?;
    let mut result = Tick {
        at: now,
        paused: pause.is_some(),
        queued: Vec::new(),
        skipped: Vec::new(),
        next: next_event(now, settings.run, schedule)?,
    };
    for event in events_between(now - catch_up, now, settings.run, schedule)? {
        let marker = json!({ "event": event, "fired_at": Utc::now(), "paused": pause.is_some() });
        // The first scheduler to write the marker fires the event.
        if lake.store().put_if_absent(&fired_path(&event), Bytes::from(serde_json::to_vec(&marker)?)).await?.is_none() {
            continue;
        }
        if pause.is_some() {
            tracing::warn!("schedule paused: {} due {} skipped", event.task, event.due.to_rfc3339());
            result.skipped.push(event);
            continue;
        }
        let scheduled = Some(event.id.clone());
        let job = match TaskKind::parse_name(&event.task)? {
            TaskKind::DailyRun => {
                daily_run::enqueue_daily(
                    lake,
                    settings,
                    &RunRequest { date: Some(event.session), ..Default::default() },
                )
                .await?
            }
            TaskKind::RunValidation => {
                worker::dispatch(lake, settings, &Task::RunValidation(Validation { full: false, scheduled })).await?
            }
            TaskKind::Train => {
                let task = Task::Train(Retrain { end: Some(event.session), scheduled });
                worker::dispatch(lake, settings, &task).await?
            }
            _ => worker::dispatch(lake, settings, &Task::MonthlyMaintenance(Maintenance { scheduled })).await?,
        };
        tracing::info!("schedule: queued {} for {} as job {}", event.task, event.session, job.id);
        result.queued.push(job);
    }
    Ok(result)
}

/// `quantlake schedule`: ticks until Ctrl-C (or once), running the queue after each tick when
/// `run_worker`.
pub async fn serve(
    lake: &Lake,
    settings: PipelineSettings<'_>,
    schedule: &ScheduleSettings,
    once: bool,
    run_worker: bool,
) -> Result<Vec<Tick>> {
    let mut ticks = Vec::new();
    loop {
        beat(lake, schedule).await?;
        let t = tick(lake, settings, schedule, Utc::now()).await?;
        ticks.push(t);
        if run_worker {
            worker::work(
                lake,
                settings,
                &WorkerOptions { once: true, poll: schedule.tick, tasks: Vec::new(), max_jobs: None },
            )
            .await?;
        }
        if once {
            return Ok(ticks);
        }
        tokio::select! {
            _ = tokio::time::sleep(schedule.tick) => {}
            _ = tokio::signal::ctrl_c() => return Ok(ticks),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sessions_give_daily_weekly_and_monthly_events() {
        let run = RunSettings::default();
        let s = ScheduleSettings::default();
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        // Friday 2024-03-29 is Good Friday: Thursday the 28th ends the week; Monday April 1st starts April.
        let events = events_between(t("2024-03-27T00:00:00Z"), t("2024-04-02T12:00:00Z"), &run, &s).unwrap();
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "daily_run-2024-03-27",
                "daily_run-2024-03-28",
                "run_validation-2024-03-28",
                "daily_run-2024-04-01",
                "monthly_maintenance-2024-04",
                "train-2024-04"
            ]
        );
        assert_eq!(events[5].due - events[4].due, chrono::Duration::hours(1), "after the maintenance");
        let weekly = ScheduleSettings { train: TrainEvery::Weekly, ..ScheduleSettings::default() };
        let events = events_between(t("2024-03-27T00:00:00Z"), t("2024-04-02T12:00:00Z"), &run, &weekly).unwrap();
        assert!(events.iter().any(|e| e.id == "train-2024-03-28") && !events.iter().any(|e| e.id == "train-2024-04"));
        let off = ScheduleSettings { train: TrainEvery::Off, ..ScheduleSettings::default() };
        let events = events_between(t("2024-03-27T00:00:00Z"), t("2024-04-02T12:00:00Z"), &run, &off).unwrap();
        assert!(!events.iter().any(|e| e.task == "train"));
        assert_eq!(events[0].due, t("2024-03-27T21:30:00Z"), "17:30 New York, daylight time");
        let next = next_event(t("2024-03-28T21:30:00Z"), &run, &s).unwrap().unwrap();
        assert_eq!(next.id, "run_validation-2024-03-28");
    }
}
