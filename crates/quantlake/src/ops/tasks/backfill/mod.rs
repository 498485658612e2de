//! Backfills, the two kinds the runbooks know:
//! - [`history`]: `backfill-history` fills the raw layer over time (the robustness guide's adaptive
//!   historical backfill); progress records are the truth for what raw data was fetched.
//! - [`trigger`]: `trigger_backfill` / `backfill trigger` repairs or re-derives one scope (a dataset,
//!   symbols, sessions) across layers (runbook section 5): plan, a lake-wide tag before it writes,
//!   re-ingest, re-curate and recompute features chunk by chunk (a killed backfill resumes without
//!   redoing committed chunks), data quality and an impact report.

pub mod history;
mod impact;
pub mod trigger;

pub use history::{BackfillOptions, BackfillReport, BackfillRequest, BackfillSettings, StepReport, backfill_history};
pub use impact::{Impact, PartitionImpact, PriceChange};
pub use trigger::{
    BackfillPlan, BackfillStatus, TriggerOptions, Triggered, get_backfill_job_status, resume_backfill, trigger_backfill,
};
