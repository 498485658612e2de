//! Where everything lives under the lake root, and the names allowed to appear in those paths.
//!
//! ```text
//! <root>/_lake.json                                   lake marker (format version)
//! <root>/<layer>/<dataset>/date=YYYY-MM-DD/part.parquet   live tree: one file per partition (glob readers)
//! <root>/_versions/<dataset>/date=.../<file_id>.parquet   immutable partition versions (staging + history)
//! <root>/_versions/<dataset>/_delta_log/<version:020>.json   Delta Lake log: version N = snapshot N
//! <root>/_manifest/<dataset>/log/<snapshot:020>.json      commit log, one object per snapshot
//! <root>/_manifest/<dataset>/checkpoints/<snapshot:020>.parquet   partition table at a snapshot
//! <root>/_manifest/<dataset>/partitions.parquet           partition table at the latest snapshot
//! <root>/_manifest/<dataset>/tags/<name>.json             named snapshots
//! <root>/_manifest/_lake/log/<seq:020>.json               lake log: one decision per stage (multi-dataset commit)
//! <root>/_manifest/_lake/tags/<name>.json                 lake-wide tags: one snapshot of every dataset
//! ```
//! Everything that is not bar data starts with `_`, which Spark, pyarrow and polars skip, and sits outside
//! the layer folders, so a glob over one dataset's folder only ever sees that dataset's live files.

use std::fmt;

use chrono::{Datelike, NaiveDate};
use object_store::path::Path;

use crate::error::{Error, Result};

pub use crate::contract::{Layer, Partitioning, validate_dataset_name};
pub use crate::storage::{LIVE_FILE, is_live_temp, live_temp_name};

pub const LAKE_MARKER: &str = "_lake.json";

/// The Delta log's folder name in a table root (`_versions/<dataset>/`).
pub const DELTA_LOG: &str = "_delta_log";

/// One partition folder name, e.g. `date=2024-01-02`; ordered by time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartitionKey {
    Date(NaiveDate),
    Month {
        year: i32,
        month: u32,
    },
    Year(i32),
    /// The one partition of an unpartitioned dataset.
    All,
}

impl PartitionKey {
    pub fn for_date(partitioning: Partitioning, date: NaiveDate) -> Self {
        match partitioning {
            Partitioning::Date => PartitionKey::Date(date),
            Partitioning::Month => PartitionKey::Month { year: date.year(), month: date.month() },
            Partitioning::Year => PartitionKey::Year(date.year()),
            Partitioning::None => PartitionKey::All,
        }
    }

    /// The partitioning this key belongs to.
    pub fn partitioning(&self) -> Partitioning {
        match self {
            PartitionKey::Date(_) => Partitioning::Date,
            PartitionKey::Month { .. } => Partitioning::Month,
            PartitionKey::Year(_) => Partitioning::Year,
            PartitionKey::All => Partitioning::None,
        }
    }

    /// The partitions of `partitioning` this partition's days fall in (a year has twelve months).
    pub fn regrouped(&self, partitioning: Partitioning) -> Vec<PartitionKey> {
        let (mut day, last) = self.date_range();
        let mut out = Vec::new();
        loop {
            let key = PartitionKey::for_date(partitioning, day);
            out.push(key);
            match key.date_range().1.succ_opt() {
                Some(next) if next <= last => day = next,
                _ => return out,
            }
        }
    }

    /// First and last calendar day the partition covers.
    pub fn date_range(&self) -> (NaiveDate, NaiveDate) {
        let ymd = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).unwrap_or(NaiveDate::MIN);
        match *self {
            PartitionKey::Date(d) => (d, d),
            PartitionKey::Month { year, month } => {
                let first = ymd(year, month, 1);
                let next = if month == 12 { ymd(year + 1, 1, 1) } else { ymd(year, month + 1, 1) };
                (first, next.pred_opt().unwrap_or(first))
            }
            PartitionKey::Year(y) => (ymd(y, 1, 1), ymd(y, 12, 31)),
            PartitionKey::All => (NaiveDate::MIN, NaiveDate::MAX),
        }
    }

    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::InvalidName {
            kind: "partition",
            value: s.to_string(),
            reason: "expected date=YYYY-MM-DD, month=YYYY-MM, year=YYYY or all",
        };
        if s == "all" {
            return Ok(PartitionKey::All);
        }
        let (key, value) = s.split_once('=').ok_or_else(bad)?;
        match key {
            "date" => NaiveDate::parse_from_str(value, "%Y-%m-%d").map(PartitionKey::Date).map_err(|_| bad()),
            "month" => {
                let d = NaiveDate::parse_from_str(&format!("{value}-01"), "%Y-%m-%d").map_err(|_| bad())?;
                Ok(PartitionKey::Month { year: d.year(), month: d.month() })
            }
            "year" => {
                value.parse::<i32>().ok().filter(|y| (1..=9999).contains(y)).map(PartitionKey::Year).ok_or_else(bad)
            }
            _ => Err(bad()),
        }
    }
}

impl fmt::Display for PartitionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PartitionKey::Date(d) => write!(f, "date={}", d.format("%Y-%m-%d")),
            PartitionKey::Month { year, month } => write!(f, "month={year:04}-{month:02}"),
            PartitionKey::Year(y) => write!(f, "year={y:04}"),
            PartitionKey::All => f.write_str("all"),
        }
    }
}

/// The partitioning of a snapshot's partitions (`None` when it has none). A commit never mixes
/// partitionings: a dataset changes layout only in one commit that regroups all of it (compaction).
pub fn layout_of<'a>(partitions: impl IntoIterator<Item = &'a String>) -> Option<Partitioning> {
    partitions.into_iter().find_map(|p| PartitionKey::parse(p).ok()).map(|k| k.partitioning())
}

/// UTC bounds `[start, end)` in µs of calendar day `date` in `tz` (a partition's local day).
pub fn day_bounds_micros(tz: chrono_tz::Tz, date: NaiveDate) -> Option<(i64, i64)> {
    use chrono::TimeZone;
    // DST never moves midnight in New York; `earliest` covers zones where it does.
    let midnight = |d: NaiveDate| {
        tz.from_local_datetime(&d.and_time(chrono::NaiveTime::MIN)).earliest().map(|x| x.timestamp_micros())
    };
    Some((midnight(date)?, midnight(date.succ_opt()?)?))
}

/// Tag names appear in object keys too.
pub fn validate_tag_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name.starts_with(|c: char| c.is_ascii_alphanumeric())
        && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !name.contains("..");
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidName {
            kind: "tag",
            value: name.to_string(),
            reason: "use letters, digits, '_', '-' and '.', starting with a letter or digit",
        })
    }
}

/// Paths of one dataset's objects, relative to the lake root.
#[derive(Debug, Clone)]
pub struct DatasetPaths {
    layer: Layer,
    dataset: String,
}

impl DatasetPaths {
    pub fn new(layer: Layer, dataset: &str) -> Self {
        Self { layer, dataset: dataset.to_string() }
    }

    /// The dataset's folder in the live tree, e.g. `raw/raw_synthetic_bars`.
    pub fn live_root(&self) -> Path {
        Path::from_iter([self.layer.as_str(), &self.dataset])
    }

    pub fn live_file(&self, partition: &str) -> Path {
        Path::from_iter([self.layer.as_str(), &self.dataset, partition, LIVE_FILE])
    }

    pub fn versions_root(&self) -> Path {
        Path::from_iter(["_versions", &self.dataset])
    }

    pub fn version_file(&self, partition: &str, file_id: &str) -> Path {
        Path::from_iter(["_versions", &self.dataset, partition, &format!("{file_id}.parquet")])
    }

    /// The dataset's Delta Lake table: its root is the version files' folder, the log beside them.
    pub fn delta_root(&self) -> Path {
        self.versions_root()
    }

    pub fn delta_log_root(&self) -> Path {
        Path::from_iter(["_versions", &self.dataset, DELTA_LOG])
    }

    /// Delta version `version`'s commit file.
    pub fn delta_commit(&self, version: u64) -> Path {
        Path::from_iter(["_versions", &self.dataset, DELTA_LOG, &format!("{version:020}.json")])
    }

    pub fn delta_checkpoint(&self, version: u64) -> Path {
        Path::from_iter(["_versions", &self.dataset, DELTA_LOG, &format!("{version:020}.checkpoint.parquet")])
    }

    pub fn delta_last_checkpoint(&self) -> Path {
        Path::from_iter(["_versions", &self.dataset, DELTA_LOG, "_last_checkpoint"])
    }

    pub fn log_root(&self) -> Path {
        log_root_of(&self.dataset)
    }

    pub fn log_entry(&self, snapshot: u64) -> Path {
        log_entry_of(&self.dataset, snapshot)
    }

    pub fn checkpoints_root(&self) -> Path {
        Path::from_iter(["_manifest", &self.dataset, "checkpoints"])
    }

    pub fn checkpoint(&self, snapshot: u64) -> Path {
        Path::from_iter(["_manifest", &self.dataset, "checkpoints", &format!("{snapshot:020}.parquet")])
    }

    pub fn partition_table(&self) -> Path {
        Path::from_iter(["_manifest", &self.dataset, "partitions.parquet"])
    }

    pub fn tags_root(&self) -> Path {
        Path::from_iter(["_manifest", &self.dataset, "tags"])
    }

    pub fn tag(&self, name: &str) -> Path {
        Path::from_iter(["_manifest", &self.dataset, "tags", &format!("{name}.json")])
    }
}

/// A dataset's log folder, by name alone (the lake log finds a stage's entries with it).
pub fn log_root_of(dataset: &str) -> Path {
    Path::from_iter(["_manifest", dataset, "log"])
}

pub fn log_entry_of(dataset: &str, snapshot: u64) -> Path {
    Path::from_iter(["_manifest", dataset, "log", &format!("{snapshot:020}.json")])
}

/// Lake-wide tags: `_manifest/_lake/tags/<name>.json` (`_lake` is no dataset name: those start with a-z).
pub fn lake_tags_root() -> Path {
    Path::from_iter(["_manifest", "_lake", "tags"])
}

pub fn lake_tag(name: &str) -> Path {
    Path::from_iter(["_manifest", "_lake", "tags", &format!("{name}.json")])
}

/// The snapshot number in a log or checkpoint object name (`00000000000000000042.json` -> 42).
pub fn snapshot_of(path: &Path) -> Option<u64> {
    let name = path.filename()?;
    let stem = name.split('.').next()?;
    (stem.len() == 20).then(|| stem.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partition_keys_round_trip_and_order() {
        for s in ["date=2024-01-02", "month=2024-03", "year=2019"] {
            assert_eq!(PartitionKey::parse(s).unwrap().to_string(), s);
        }
        assert!(PartitionKey::parse("date=2024-13-01").is_err());
        assert!(PartitionKey::parse("../x").is_err());
        let a = PartitionKey::parse("date=2024-01-02").unwrap();
        let b = PartitionKey::parse("date=2024-01-10").unwrap();
        assert!(a < b);
        let m = PartitionKey::parse("month=2024-02").unwrap();
        assert_eq!(m.date_range().1, NaiveDate::from_ymd_opt(2024, 2, 29).unwrap());
    }

    #[test]
    fn names_that_escape_the_root_are_refused() {
        for bad in ["../x", "/", "a/b", "a\0b", "", "Upper", "1abc", "a.b", "a b"] {
            assert!(validate_dataset_name(bad).is_err(), "{bad:?}");
        }
        validate_dataset_name("raw_synthetic_bars").unwrap();
        assert!(validate_tag_name("../v1").is_err());
        validate_tag_name("release-2024.01").unwrap();
    }

    #[test]
    fn snapshot_numbers_parse_from_object_names() {
        let paths = DatasetPaths::new(Layer::Raw, "d");
        assert_eq!(snapshot_of(&paths.log_entry(42)), Some(42));
        assert_eq!(snapshot_of(&paths.checkpoint(7)), Some(7));
        assert_eq!(snapshot_of(&Path::from("x/abc.json")), None);
    }
}
