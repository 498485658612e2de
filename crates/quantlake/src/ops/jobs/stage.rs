//! What a stage's report counts for its job record: rows read and written, and the snapshot each
//! dataset it wrote is at after it. The command line records every stage command as a job this way.

use std::collections::BTreeMap;

use super::Finish;
use crate::curate::CurateReport;
use crate::features::FeaturesReport;
use crate::ingest::{FileIngestReport, IngestReport};
use crate::models::{PREDICTIONS, ScoreReport, TrainReport};
use crate::reference::corporate_actions::ImportReport;
use crate::reference::fundamentals::UpsertReport;

/// A stage's report, as a job record counts it.
pub trait StageCounts {
    /// Rows read, where the stage counts them (a file import, a training set); 0 otherwise.
    fn rows_in(&self) -> u64 {
        0
    }
    /// Rows written.
    fn rows_out(&self) -> u64;
    /// The snapshot each dataset it wrote is at after it.
    fn snapshots(&self) -> BTreeMap<String, u64>;
}

impl Finish {
    /// Adds `stage`'s rows and snapshots (a command that runs several stages adds each).
    pub fn count(&mut self, stage: &dyn StageCounts) {
        self.rows_in += stage.rows_in();
        self.rows_out += stage.rows_out();
        self.snapshots.extend(stage.snapshots());
    }
}

/// `dataset` at `snapshot`, when the stage committed one (0 or none: nothing committed).
fn made(dataset: &str, snapshot: Option<u64>) -> BTreeMap<String, u64> {
    snapshot.filter(|id| *id > 0).map(|id| (dataset.to_string(), id)).into_iter().collect()
}

impl StageCounts for IngestReport {
    fn rows_out(&self) -> u64 {
        self.rows
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(&self.dataset, self.snapshots.iter().copied().max())
    }
}

impl StageCounts for FileIngestReport {
    fn rows_in(&self) -> u64 {
        self.rows_read
    }
    fn rows_out(&self) -> u64 {
        self.rows
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(&self.dataset, self.snapshots.iter().copied().max())
    }
}

impl StageCounts for CurateReport {
    fn rows_out(&self) -> u64 {
        self.rows
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(&self.dataset, Some(self.snapshot_id))
    }
}

impl StageCounts for FeaturesReport {
    fn rows_out(&self) -> u64 {
        self.sets.iter().map(|s| s.rows).sum()
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        self.sets.iter().flat_map(|s| made(&s.set, Some(s.snapshot_id))).collect()
    }
}

impl StageCounts for TrainReport {
    fn rows_in(&self) -> u64 {
        self.rows.read
    }
    fn rows_out(&self) -> u64 {
        self.rows.used
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(crate::models::registry::REGISTRY, Some(self.registry_snapshot))
    }
}

impl StageCounts for ScoreReport {
    fn rows_out(&self) -> u64 {
        self.rows
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(PREDICTIONS, Some(self.snapshot_id))
    }
}

impl StageCounts for ImportReport {
    fn rows_in(&self) -> u64 {
        self.fetched as u64
    }
    fn rows_out(&self) -> u64 {
        self.rows as u64
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(crate::reference::corporate_actions::DATASET, self.snapshot_id)
    }
}

impl StageCounts for crate::reference::securities::ImportReport {
    fn rows_in(&self) -> u64 {
        self.delivered as u64
    }
    fn rows_out(&self) -> u64 {
        (self.changed + self.intervals + self.members) as u64
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        self.snapshots.clone()
    }
}

impl StageCounts for UpsertReport {
    fn rows_out(&self) -> u64 {
        self.rows as u64
    }
    fn snapshots(&self) -> BTreeMap<String, u64> {
        made(&self.dataset, self.snapshot_id)
    }
}
