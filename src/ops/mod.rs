//! Operations: work that runs the stages below it over a lake, rather than a stage itself. Today the
//! adaptive historical [`backfill`] and [`stale`] (recomputing what a backfill made stale); jobs, the worker queue and the schedule are planned here (see the
//! README's architecture section).

pub mod backfill;
pub mod stale;
