//! Operations: work that runs the stages below it over a lake, rather than a stage itself.
//! - [`jobs`]: job records in the lake (`_jobs/`), claimed with leases; every operation below is one.
//! - [`tasks`]: what jobs run, one module per task ([`tasks::Task`]: a job record's kind and
//!   parameters, typed): [`tasks::daily_run`] (the daily pipeline, one job per stage),
//!   [`tasks::backfill`] (`backfill-history` and `backfill trigger`), [`tasks::bootstrap`],
//!   validation and the monthly maintenance.
//! - [`stale`]: recomputing what a backfill or a restore made stale.
//! - [`worker`]: the task queue: `dispatch` queues, `worker` runs.
//! - [`schedule`]: the daily run, weekly checks and monthly maintenance at their times.
//! - [`alerts`]: the lake's and the jobs' conditions, one alert per state change (log, webhook).
//! - [`breadth`]: the guide's symbol breadth check of a feature set.

pub mod alerts;
pub mod breadth;
pub mod jobs;
pub mod schedule;
pub mod stale;
pub mod tasks;
pub mod worker;
