//! [`AsOf`]: which state of the lake a read sees. It is the one meaning of `--as-of` in every
//! command, request and HTTP parameter: the latest snapshots, a snapshot number, a tag (a dataset's
//! own or a lake-wide one), or a time, for every dataset, with optional pins of single datasets
//! (`curated_1m_bars@12`). A decision time ("the features known at 15:00") is not an as-of: it is a
//! separate parameter (`--at`) of the operations that take one.
//!
//! ```
//! use quantlake_engine::table::{AsOf, SnapshotSpec};
//!
//! let as_of: AsOf = "v1,curated_1m_bars@12".parse().unwrap();
//! assert_eq!(as_of.spec_for("features_price_1m_v1"), &SnapshotSpec::Tag("v1".into()));
//! assert_eq!(as_of.spec_for("curated_1m_bars"), &SnapshotSpec::Id(12));
//! assert_eq!(as_of.to_string(), "v1,curated_1m_bars@12");
//! assert!(AsOf::latest().is_latest());
//! // A bare date is the end of that day (UTC): the lake as it stood when the day was over.
//! assert_eq!("2024-01-02".parse::<AsOf>().unwrap().to_string(), "2024-01-02T23:59:59.999999+00:00");
//! ```

use std::collections::BTreeMap;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::table::lake_log::LakeView;
use crate::table::layout::validate_dataset_name;
use crate::table::manifest::TableState;
use crate::table::{Dataset, Lake, SnapshotSpec};

/// Which snapshot each dataset is read at: one point for the whole lake ([`SnapshotSpec`]: latest, a
/// snapshot number, a tag or a time), and pins of single datasets that override it.
///
/// Text form (flags, HTTP parameters, lineage records): comma-separated `SPEC` (the lake's point)
/// and `dataset@SPEC` (a pin) items; `latest` or an empty text is the latest snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AsOf {
    lake: Option<SnapshotSpec>,
    pins: BTreeMap<String, SnapshotSpec>,
}

impl AsOf {
    /// The latest snapshot of every dataset.
    pub fn latest() -> Self {
        Self::default()
    }

    /// Every dataset at `spec`.
    pub fn lake(spec: SnapshotSpec) -> Self {
        Self { lake: Some(spec), pins: BTreeMap::new() }
    }

    /// Each dataset of `snapshots` at its snapshot number (what a training set read), the others at
    /// their latest.
    pub fn pinned(snapshots: &BTreeMap<String, u64>) -> Self {
        Self { lake: None, pins: snapshots.iter().map(|(k, v)| (k.clone(), SnapshotSpec::Id(*v))).collect() }
    }

    /// Parses flag values: each is a comma-separated list of `SPEC` and `dataset@SPEC`; a later lake
    /// point or pin of the same dataset replaces an earlier one.
    pub fn parse<S: AsRef<str>>(values: &[S]) -> Result<Self> {
        let mut out = Self::default();
        for item in values.iter().flat_map(|v| v.as_ref().split(',')).map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once('@') {
                Some((dataset, spec)) => {
                    validate_dataset_name(dataset)?;
                    out.pins.insert(dataset.to_string(), SnapshotSpec::parse(spec)?);
                }
                None => out.lake = Some(SnapshotSpec::parse(item)?).filter(|s| *s != SnapshotSpec::Latest),
            }
        }
        Ok(out)
    }

    /// The text form, or `None` for the latest snapshots: how lineage and model records store it.
    pub fn label(&self) -> Option<String> {
        (!self.is_latest()).then(|| self.to_string())
    }

    /// Whether this reads the latest snapshot of every dataset.
    pub fn is_latest(&self) -> bool {
        self.lake.is_none() && self.pins.values().all(|s| *s == SnapshotSpec::Latest)
    }

    /// The lake-wide point, if one was given.
    pub fn lake_spec(&self) -> Option<&SnapshotSpec> {
        self.lake.as_ref()
    }

    /// The pinned datasets and their points.
    pub fn pins(&self) -> &BTreeMap<String, SnapshotSpec> {
        &self.pins
    }

    /// The point `dataset` is read at: its pin, else the lake's point, else the latest.
    pub fn spec_for(&self, dataset: &str) -> &SnapshotSpec {
        const LATEST: &SnapshotSpec = &SnapshotSpec::Latest;
        self.pins.get(dataset).or(self.lake.as_ref()).unwrap_or(LATEST)
    }

    /// Fails if a pin names no dataset of `lake` (checked before anything is read).
    pub fn check_datasets(&self, lake: &Lake) -> Result<()> {
        self.pins.keys().try_for_each(|name| lake.dataset(name).map(drop))
    }
}

impl Dataset {
    /// The state of this dataset `as_of` reads, as `view` sees it: what every reader of the lake (SQL
    /// views, native reads, point-in-time sets) resolves, so they all see the same snapshot. A
    /// lake-wide point (a tag, a time) need not exist in a dataset that was never written: that
    /// dataset reads empty. A pin must resolve.
    pub async fn state_as_of(&self, as_of: &AsOf, view: &LakeView) -> Result<TableState> {
        let pinned = as_of.pins.contains_key(self.name());
        match self.snapshot_in(as_of.spec_for(self.name()), view).await {
            Err(Error::SnapshotNotFound { .. }) if !pinned && self.latest_in(view).await?.snapshot_id == 0 => {
                Ok(TableState::empty(self.name()))
            }
            other => other,
        }
    }
}

/// Repeated `--as-of` values: a later lake point or pin of the same dataset replaces an earlier one.
impl FromIterator<AsOf> for AsOf {
    fn from_iter<I: IntoIterator<Item = AsOf>>(iter: I) -> Self {
        iter.into_iter().fold(Self::default(), |mut out, next| {
            out.lake = next.lake.or(out.lake);
            out.pins.extend(next.pins);
            out
        })
    }
}

impl std::fmt::Display for AsOf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut items: Vec<String> = self.lake.iter().map(ToString::to_string).collect();
        items.extend(self.pins.iter().map(|(dataset, spec)| format!("{dataset}@{spec}")));
        if items.is_empty() { f.pad("latest") } else { f.pad(&items.join(",")) }
    }
}

impl FromStr for AsOf {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::parse(&[s])
    }
}

impl Serialize for AsOf {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for AsOf {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let text = Option::<String>::deserialize(d)?;
        text.as_deref().unwrap_or("latest").parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_reads_back_and_later_values_win() {
        let a = AsOf::parse(&["3", "curated_1m_bars@v1", "2024-01-02T15:00:00Z,curated_1m_bars@7"]).unwrap();
        assert_eq!(a.to_string(), "2024-01-02T15:00:00+00:00,curated_1m_bars@7");
        assert_eq!(a.to_string().parse::<AsOf>().unwrap(), a);
        assert_eq!(AsOf::parse(&["latest"]).unwrap(), AsOf::latest());
        assert_eq!(AsOf::latest().to_string(), "latest");
        assert_eq!(serde_json::to_string(&a).unwrap(), format!("\"{a}\""));
        assert_eq!(serde_json::from_str::<AsOf>("null").unwrap(), AsOf::latest());
        assert!("bad name@3".parse::<AsOf>().is_err());
        assert!("../x".parse::<AsOf>().is_err());
        let merged: AsOf = ["3", "curated_1m_bars@2", "4"].iter().map(|s| s.parse::<AsOf>().unwrap()).collect();
        assert_eq!(merged.to_string(), "4,curated_1m_bars@2");
        assert_eq!(AsOf::latest().label(), None);
        assert_eq!(merged.label().as_deref(), Some("4,curated_1m_bars@2"));
    }

    #[test]
    fn pins_override_the_lake_point() {
        let a = AsOf::pinned(&[("labels_fwd_ret_v1".to_string(), 4)].into());
        assert_eq!(a.spec_for("labels_fwd_ret_v1"), &SnapshotSpec::Id(4));
        assert_eq!(a.spec_for("curated_1m_bars"), &SnapshotSpec::Latest);
        assert!(!a.is_latest());
    }
}
