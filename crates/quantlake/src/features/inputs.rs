//! Backfill awareness: every derived partition records the input partitions it read and their
//! versions (`partition_inputs`), so that after a backfill replaces curated partitions,
//! [`stale_sessions`] finds exactly the derived partitions whose inputs changed: the same session for a
//! feature, the trailing beta window and the next session for a label, the features for a prediction.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray, TimestampMicrosecondArray};
use chrono::{NaiveDate, Utc};
use serde::Serialize;

use crate::calendar::{NyseCalendar, Session};
use crate::error::{Error, Result};
use crate::table::layout::PartitionKey;
use crate::table::manifest::TableState;
use crate::table::operations::write::WriteBuilder;
use crate::table::{Dataset, Lake, ReadFilter};

/// The dataset of input records.
pub const DATASET: &str = "partition_inputs";

/// What one derived session read: `(input dataset, its partition, its version file id if it existed)`.
pub type Inputs = Vec<(String, String, Option<String>)>;

/// The input partitions of `input` (at `state`) that the sessions `from..=to` fall in, with their versions.
pub fn read_inputs(input: &Dataset, state: &TableState, from: NaiveDate, to: NaiveDate) -> Inputs {
    let mut keys: Vec<String> = NyseCalendar
        .sessions(from, to)
        .iter()
        .map(|s| PartitionKey::for_date(input.contract().partitioning, s.date).to_string())
        .collect();
    keys.dedup();
    keys.into_iter()
        .map(|k| (input.name().to_string(), k.clone(), state.partitions.get(&k).map(|e| e.file_id.clone())))
        .collect()
}

/// The write that replaces the input records of `derived` datasets for `sessions` (one per session
/// and derived dataset): committed in the stage that writes the derived partitions.
pub fn inputs_write<'a>(
    records: &'a Dataset,
    derived: &[(String, BTreeMap<NaiveDate, Inputs>)],
    sessions: &[Session],
    job_id: &str,
) -> Result<WriteBuilder<'a>> {
    let contract = records.contract().clone();
    let opens: BTreeMap<NaiveDate, i64> = sessions.iter().map(|s| (s.date, s.open.timestamp_micros())).collect();
    let (mut dataset, mut partition, mut open, mut in_ds, mut in_part, mut in_file) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for (name, per_session) in derived {
        for (date, inputs) in per_session {
            let Some(o) = opens.get(date) else { continue };
            for (d, p, f) in inputs {
                dataset.push(name.clone());
                partition.push(PartitionKey::for_date(crate::contract::Partitioning::Date, *date).to_string());
                open.push(*o);
                in_ds.push(d.clone());
                in_part.push(p.clone());
                in_file.push(f.clone());
            }
        }
    }
    let n = dataset.len();
    let now = Utc::now().timestamp_micros();
    let batch = contract.batch_from(|column| -> Option<ArrayRef> {
        Some(match column {
            "dataset" => Arc::new(StringArray::from(dataset.clone())),
            "partition" => Arc::new(StringArray::from(partition.clone())),
            "session_open" => Arc::new(TimestampMicrosecondArray::from(open.clone()).with_timezone("UTC")),
            "input_dataset" => Arc::new(StringArray::from(in_ds.clone())),
            "input_partition" => Arc::new(StringArray::from(in_part.clone())),
            "input_file_id" => Arc::new(StringArray::from(in_file.clone())),
            "job_id" => Arc::new(StringArray::from(vec![job_id; n])),
            "computed_at" => Arc::new(TimestampMicrosecondArray::from(vec![now; n]).with_timezone("UTC")),
            _ => return None,
        })
    })?;
    let names: Vec<String> = derived.iter().map(|(n, _)| n.clone()).collect();
    let of_these = move |b: &RecordBatch| -> Result<BooleanArray> {
        let col = b
            .column_by_name("dataset")
            .and_then(|c| c.as_string_opt::<i32>())
            .ok_or_else(|| Error::invalid("partition_inputs has no dataset column"))?;
        Ok(col.iter().map(|v| Some(v.is_some_and(|v| names.iter().any(|n| n == v)))).collect())
    };
    Ok(records
        .write(vec![batch])
        .removing_where(Arc::new(of_these))
        .covering_dates(sessions.iter().map(|s| s.date))
        .operation("partition_inputs")
        .parameter("job_id", job_id))
}

/// A derived partition whose inputs changed since it was computed.
#[derive(Debug, Clone, Serialize)]
pub struct StalePartition {
    pub dataset: String,
    pub date: NaiveDate,
    /// The inputs that changed: `dataset/partition`.
    pub changed: Vec<String>,
}

/// The sessions of `derived` whose recorded inputs no longer match their datasets' latest versions
/// (changed, added or removed since), with the inputs that changed.
pub async fn stale_sessions(lake: &Lake, derived: &str) -> Result<Vec<StalePartition>> {
    let records = lake.dataset(DATASET)?;
    let view = lake.view().await?;
    let state = records.latest_in(&view).await?;
    let batches = records.read(&state, &ReadFilter::default()).await?;
    let mut current: BTreeMap<String, TableState> = BTreeMap::new();
    let mut stale: BTreeMap<NaiveDate, BTreeSet<String>> = BTreeMap::new();
    for b in &batches {
        let col = |name: &str| {
            b.column_by_name(name)
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| Error::invalid(format!("partition_inputs has no {name} column")))
        };
        let (dataset, partition, in_ds, in_part, in_file) =
            (col("dataset")?, col("partition")?, col("input_dataset")?, col("input_partition")?, col("input_file_id")?);
        for i in 0..b.num_rows() {
            if dataset.value(i) != derived {
                continue;
            }
            let input = in_ds.value(i);
            if !current.contains_key(input) {
                current.insert(input.to_string(), lake.dataset(input)?.latest_in(&view).await?);
            }
            let now = current[input].partitions.get(in_part.value(i)).map(|e| e.file_id.as_str());
            let then = (!in_file.is_null(i)).then(|| in_file.value(i));
            if now != then {
                let date = PartitionKey::parse(partition.value(i))?.date_range().0;
                stale.entry(date).or_default().insert(format!("{input}/{}", in_part.value(i)));
            }
        }
    }
    Ok(stale
        .into_iter()
        .map(|(date, changed)| StalePartition {
            dataset: derived.to_string(),
            date,
            changed: changed.into_iter().collect(),
        })
        .collect())
}

/// `dates` as runs of consecutive sessions, `(first, last)`.
pub fn session_runs(dates: &[NaiveDate]) -> Vec<(NaiveDate, NaiveDate)> {
    let mut runs: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    let mut sorted = dates.to_vec();
    sorted.sort();
    sorted.dedup();
    for d in sorted {
        match runs.last_mut() {
            Some(run) if NyseCalendar.next_session(run.1) == d => run.1 = d,
            _ => runs.push((d, d)),
        }
    }
    runs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn runs_follow_the_calendar() {
        let d = |s: &str| s.parse::<NaiveDate>().unwrap();
        // Friday and the Monday after are consecutive sessions; the Wednesday is not.
        let runs = session_runs(&[d("2024-01-12"), d("2024-01-16"), d("2024-01-18"), d("2024-01-12")]);
        assert_eq!(
            runs,
            [(d("2024-01-12"), d("2024-01-16")), (d("2024-01-18"), d("2024-01-18"))],
            "2024-01-15 is a holiday"
        );
    }
}
