//! Operations: work that runs the stages below it over a lake, rather than a stage itself.
//! - [`jobs`]: job records in the lake (`_jobs/`), claimed with leases; every operation below is one.
//! - [`run`]: the daily pipeline, one job per stage.
//! - [`backfill`]: `backfill-history` (the raw layer over time) and `backfill trigger` (one scope
//!   across layers).
//! - [`stale`]: recomputing what a backfill or a restore made stale.
//! - [`tasks`]: the tasks jobs run ([`tasks::Task`]: a job record's kind and parameters, typed).
//! - [`worker`]: the task queue: `dispatch` queues, `worker` runs.
//! - [`schedule`]: the daily run, weekly checks and monthly maintenance at their times.
//! - [`bootstrap`]: a new lake in the guide's order, resumable.
//! - [`alerts`]: the lake's and the jobs' conditions, one alert per state change (log, webhook).
//! - [`breadth`]: the guide's symbol breadth check of a feature set.

pub mod alerts;
pub mod backfill;
pub mod bootstrap;
pub mod breadth;
pub mod jobs;
pub mod run;
pub mod schedule;
pub mod stale;
pub mod tasks;
pub mod worker;
