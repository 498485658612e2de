//! Operations: work that runs the stages below it over a lake, rather than a stage itself. Today the
//! adaptive historical [`backfill`]; jobs, the worker queue and the schedule are planned here (see the
//! README's architecture section).

pub mod backfill;
