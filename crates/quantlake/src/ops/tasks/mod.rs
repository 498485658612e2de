//! The tasks jobs run: one enum, [`Task`], whose variant and parameters are a job record's `kind`
//! and `params`. The worker, `dispatch`, the schedule, the dashboard and error messages take their
//! lists from [`TaskKind::ALL`]; a record is read back into a [`Task`] by [`Task::from_record`], so a
//! record written by an earlier quantlake reads the same way (its parameters' fields all default).
//!
//! | task | what runs | where |
//! |---|---|---|
//! | `daily_run` | the daily pipeline for one session | [`daily_run`] |
//! | `backfill` | a planned backfill: it queues its chunks step by step and runs them with any worker | [`backfill::trigger`] |
//! | `backfill_chunk` | one chunk of a backfill's step | [`backfill::trigger`] |
//! | `historical_backfill` | `backfill-history` from `[run] source` | [`historical_backfill`] |
//! | `run_validation` | `validate` (`full`: every retained snapshot and session) | [`validation`] |
//! | `monthly_maintenance` | fundamentals refresh, ADV, full validation, old records removed, compaction | [`maintenance`] |
//! | `train` | the schedule's retraining: a model on the window ending at a session, refused on RED partitions | [`retrain`] |
//! | `bootstrap` | a new lake in the guide's order (run in the foreground by `quantlake bootstrap`) | [`bootstrap`] |
//!
//! ```
//! use quantlake::ops::tasks::{Task, TaskKind, Validation};
//!
//! let task = Task::RunValidation(Validation { full: true, scheduled: None });
//! assert_eq!(task.kind(), TaskKind::RunValidation);
//! let params = task.params().unwrap();
//! assert_eq!(params, serde_json::json!({ "type": "full" }));
//! let back = Task::from_record("run_validation", &params).unwrap();
//! assert_eq!(back, task);
//! assert!(Task::from_record("reindex", &params).unwrap_err().to_string().contains("daily_run, backfill"));
//! ```

pub mod backfill;
pub mod bootstrap;
pub mod daily_run;
pub mod historical_backfill;
pub mod maintenance;
pub mod retrain;
pub mod validation;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

pub use historical_backfill::HistoricalBackfill;
pub use maintenance::Maintenance;
pub use retrain::Retrain;
pub use validation::Validation;

use self::backfill::trigger::{BackfillParams, ChunkTask};
use self::bootstrap::BootstrapRequest;
use self::daily_run::RunRequest;
use super::jobs::JobSpec;
use crate::error::{Error, Result};
use crate::names::{Named, named_display_and_from_str};

/// A task with its parameters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum Task {
    DailyRun(RunRequest),
    Backfill(Box<BackfillParams>),
    BackfillChunk(Box<ChunkTask>),
    HistoricalBackfill(HistoricalBackfill),
    RunValidation(Validation),
    MonthlyMaintenance(Maintenance),
    Train(Retrain),
    Bootstrap(BootstrapRequest),
}

/// What a task is, without its parameters: a job record's `kind`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    DailyRun,
    Backfill,
    BackfillChunk,
    HistoricalBackfill,
    RunValidation,
    MonthlyMaintenance,
    Train,
    Bootstrap,
}

impl Named for TaskKind {
    const WHAT: &'static str = "task";
    const ALL: &'static [Self] = &[
        Self::DailyRun,
        Self::Backfill,
        Self::BackfillChunk,
        Self::HistoricalBackfill,
        Self::RunValidation,
        Self::MonthlyMaintenance,
        Self::Train,
        Self::Bootstrap,
    ];

    fn name(self) -> &'static str {
        match self {
            Self::DailyRun => "daily_run",
            Self::Backfill => "backfill",
            Self::BackfillChunk => "backfill_chunk",
            Self::HistoricalBackfill => "historical_backfill",
            Self::RunValidation => "run_validation",
            Self::MonthlyMaintenance => "monthly_maintenance",
            Self::Train => "train",
            Self::Bootstrap => "bootstrap",
        }
    }

    fn aliases(self) -> &'static [&'static str] {
        match self {
            Self::DailyRun => &["daily-run"],
            Self::HistoricalBackfill => &["historical-backfill"],
            Self::RunValidation => &["run-validation"],
            Self::MonthlyMaintenance => &["monthly-maintenance"],
            _ => &[],
        }
    }
}
named_display_and_from_str!(TaskKind);

impl TaskKind {
    /// Whether a worker runs jobs of this kind from the queue (a bootstrap runs in the foreground).
    pub fn queued(self) -> bool {
        self != Self::Bootstrap
    }

    /// Whether `dispatch` queues it directly: a backfill is planned first (`backfill trigger`), and
    /// its chunks are queued by the backfill itself.
    pub fn dispatchable(self) -> bool {
        matches!(
            self,
            Self::DailyRun | Self::HistoricalBackfill | Self::RunValidation | Self::MonthlyMaintenance | Self::Train
        )
    }

    /// The kinds a worker runs, as a list for messages.
    pub fn queued_names() -> String {
        Self::ALL.iter().filter(|k| k.queued()).map(|k| k.name()).collect::<Vec<_>>().join(", ")
    }
}

impl Task {
    pub fn kind(&self) -> TaskKind {
        match self {
            Task::DailyRun(_) => TaskKind::DailyRun,
            Task::Backfill(_) => TaskKind::Backfill,
            Task::BackfillChunk(_) => TaskKind::BackfillChunk,
            Task::HistoricalBackfill(_) => TaskKind::HistoricalBackfill,
            Task::RunValidation(_) => TaskKind::RunValidation,
            Task::MonthlyMaintenance(_) => TaskKind::MonthlyMaintenance,
            Task::Train(_) => TaskKind::Train,
            Task::Bootstrap(_) => TaskKind::Bootstrap,
        }
    }

    /// The parameters as a job record stores them.
    pub fn params(&self) -> Result<Value> {
        let mut tagged = serde_json::to_value(self)?;
        Ok(tagged.get_mut("params").map(Value::take).unwrap_or(Value::Null))
    }

    /// A job of this task.
    pub fn spec(&self) -> Result<JobSpec> {
        Ok(JobSpec::new(self.kind().name(), self.params()?))
    }

    /// The task a job record holds (`kind` and `params`), as this or an earlier quantlake wrote it.
    pub fn from_record(kind: &str, params: &Value) -> Result<Self> {
        let kind = TaskKind::parse_name(kind)?;
        let params = if params.is_null() { json!({}) } else { params.clone() };
        serde_json::from_value(json!({ "kind": kind.name(), "params": params }))
            .map_err(|e| Error::invalid(format!("{kind} job parameters {params}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Parameters as the quantlake before typed tasks wrote them (the `json!` literals and
    /// `to_params` of that version), each read back into its task.
    #[test]
    fn records_written_before_typed_tasks_read_back() {
        let daily = Task::from_record(
            "daily_run",
            &json!({ "date": "2024-03-05", "force": false, "source": "synthetic", "symbols": null }),
        )
        .unwrap();
        let Task::DailyRun(r) = &daily else { panic!("{daily:?}") };
        assert_eq!(r.date, chrono::NaiveDate::from_ymd_opt(2024, 3, 5));
        assert_eq!(r.source, Some(crate::sources::SourceKind::Synthetic));
        let history = Task::from_record(
            "historical_backfill",
            &json!({ "source": null, "symbols": ["AAPL", "MSFT"], "bar_size": "1d" }),
        )
        .unwrap();
        assert_eq!(
            history,
            Task::HistoricalBackfill(HistoricalBackfill {
                source: None,
                symbols: Some(vec![
                    crate::symbol::Symbol::from_static("AAPL"),
                    crate::symbol::Symbol::from_static("MSFT")
                ]),
                bar_size: crate::bars::BarSize::Day,
            })
        );
        for (params, full, scheduled) in [
            (json!({ "type": "full" }), true, None),
            (
                json!({ "type": "quick", "scheduled": "run_validation-2024-03-08" }),
                false,
                Some("run_validation-2024-03-08"),
            ),
        ] {
            let task = Task::from_record("run_validation", &params).unwrap();
            assert_eq!(task, Task::RunValidation(Validation { full, scheduled: scheduled.map(String::from) }));
            assert_eq!(task.params().unwrap(), params, "written back the same way");
        }
        for params in [json!({}), json!({ "scheduled": "monthly_maintenance-2024-04" })] {
            assert!(matches!(Task::from_record("monthly_maintenance", &params).unwrap(), Task::MonthlyMaintenance(_)));
        }
        let boot = Task::from_record(
            "bootstrap",
            &json!({ "source": "polygon", "fundamentals_file": null, "skip_training": true }),
        )
        .unwrap();
        assert!(matches!(boot, Task::Bootstrap(BootstrapRequest { skip_training: true, .. })));
    }

    #[test]
    fn kinds_are_the_tasks_serde_tags_and_bad_records_are_named() {
        let tasks = [
            Task::DailyRun(RunRequest::default()),
            Task::HistoricalBackfill(HistoricalBackfill::default()),
            Task::RunValidation(Validation::default()),
            Task::MonthlyMaintenance(Maintenance::default()),
            Task::Train(Retrain { end: chrono::NaiveDate::from_ymd_opt(2024, 4, 1), scheduled: None }),
            Task::Bootstrap(BootstrapRequest::default()),
        ];
        for task in tasks {
            assert_eq!(serde_json::to_value(&task).unwrap()["kind"], task.kind().name());
            assert_eq!(Task::from_record(task.kind().name(), &task.params().unwrap()).unwrap(), task);
        }
        let e = Task::from_record("run_validation", &json!({ "type": "deep" })).unwrap_err().to_string();
        assert!(e.contains("run_validation job parameters") && e.contains("deep"), "{e}");
        assert_eq!("daily-run".parse::<TaskKind>().unwrap(), TaskKind::DailyRun);
        assert!(!TaskKind::Bootstrap.queued() && !TaskKind::Backfill.dispatchable());
    }
}
