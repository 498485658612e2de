//! The point-in-time join as a merge, one session at a time.
//!
//! Feature and label partitions are both sorted by (symbol, ts), so the latest feature row whose bar is
//! complete at a decision time is found per symbol run with a binary search, without a global sort and
//! without holding more than a few sessions. A decision whose symbol has no complete feature bar in its
//! own session falls back to the symbol's latest row of the earlier sessions read ([`FeatureRows`] as a
//! **carry**: one row per symbol), which is what `point_in_time.sql`'s `ASOF JOIN` over the whole
//! window returns too. The SQL stays as the reference this merge is tested against.

use std::cmp::Ordering;
use std::collections::BTreeSet;
use std::ops::Range;
use std::sync::Arc;

use arrow::array::{
    Array, ArrayData, ArrayRef, AsArray, MutableArrayData, RecordBatch, StringArray, TimestampMicrosecondArray,
    make_array,
};
use arrow::compute::{SortColumn, interleave, lexsort_to_indices, take_record_batch};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit, TimestampMicrosecondType};

use crate::error::{Error, Result};
use crate::symbol::Symbol;

/// One session's feature rows (`symbol, ts, available_at, <features>`), sorted by (symbol, ts), with
/// the row range of each symbol.
#[derive(Debug, Clone)]
pub(crate) struct FeatureRows {
    batch: RecordBatch,
    runs: Vec<Range<usize>>,
}

impl FeatureRows {
    /// `batch` (columns `symbol`, `ts`, `available_at` first), sorted if it is not already.
    pub fn new(batch: RecordBatch) -> Result<Self> {
        let batch = sorted(batch)?;
        let runs = runs(symbols(&batch)?);
        Ok(Self { batch, runs })
    }

    /// No rows, in `schema`.
    pub fn empty(schema: SchemaRef) -> Self {
        Self { batch: RecordBatch::new_empty(schema), runs: Vec::new() }
    }

    fn symbols(&self) -> &StringArray {
        self.batch.column(0).as_string::<i32>()
    }

    fn ts(&self) -> &TimestampMicrosecondArray {
        self.batch.column(1).as_primitive::<TimestampMicrosecondType>()
    }

    /// The run of `symbol`, by binary search over the sorted runs.
    fn run_of(&self, symbol: &str) -> Option<&Range<usize>> {
        let names = self.symbols();
        self.runs.binary_search_by(|r| names.value(r.start).cmp(symbol)).ok().map(|k| &self.runs[k])
    }

    /// The row of `symbol` with the latest bar complete at `decision_us` (a bar stamped `ts` is
    /// complete at `ts + bar_us`).
    fn latest_complete(&self, symbol: &str, decision_us: i64, bar_us: i64) -> Option<usize> {
        let run = self.run_of(symbol)?;
        let ts = &self.ts().values()[run.clone()];
        let n = ts.partition_point(|t| t + bar_us <= decision_us);
        (n > 0).then(|| run.start + n - 1)
    }

    /// The carry after this session: per symbol, its last row here, else its row in `carry`.
    pub fn carry_after(&self, carry: &FeatureRows) -> Result<FeatureRows> {
        let (mine, theirs) = (self.symbols(), carry.symbols());
        let (mut i, mut j) = (0, 0);
        let mut picks: Vec<(usize, usize)> = Vec::with_capacity(self.runs.len().max(carry.runs.len()));
        while i < self.runs.len() || j < carry.runs.len() {
            let order = match (self.runs.get(i), carry.runs.get(j)) {
                (Some(a), Some(b)) => mine.value(a.start).cmp(theirs.value(b.start)),
                (Some(_), None) => Ordering::Less,
                _ => Ordering::Greater,
            };
            match order {
                Ordering::Less => {
                    picks.push((0, self.runs[i].end - 1));
                    i += 1;
                }
                Ordering::Equal => {
                    picks.push((0, self.runs[i].end - 1));
                    i += 1;
                    j += 1;
                }
                Ordering::Greater => {
                    picks.push((1, carry.runs[j].start));
                    j += 1;
                }
            }
        }
        let batch = interleave_batches(&[&self.batch, &carry.batch], &picks)?;
        let runs = (0..batch.num_rows()).map(|r| r..r + 1).collect();
        Ok(FeatureRows { batch, runs })
    }
}

/// What the join needs of a label partition: `symbol, ts, decision_time, <target>, <target end>`.
#[derive(Debug, Clone)]
pub(crate) struct LabelRows {
    batch: RecordBatch,
}

impl LabelRows {
    pub fn new(batch: RecordBatch) -> Result<Self> {
        Ok(Self { batch: sorted(batch)? })
    }
}

/// How a training set treats the label rows: the rules that leave rows out, and the windows the
/// leakage check needs.
#[derive(Debug, Clone)]
pub(crate) struct Rules {
    /// Rows whose label ends after this (µs) are purged.
    pub cutoff_us: i64,
    /// Unusable annotations, in the order [`Tally::excluded_by`] counts them.
    pub unusable: Vec<Unusable>,
    /// Only these symbols (empty: all).
    pub symbols: BTreeSet<Symbol>,
    /// One feature bar and one label bar, µs.
    pub feature_bar_us: i64,
    pub label_bar_us: i64,
}

/// An unusable annotation: the cells of `symbols` (all with `None`) from `start_us` to `end_us`.
#[derive(Debug, Clone)]
pub(crate) struct Unusable {
    pub symbols: Option<Vec<Symbol>>,
    pub start_us: i64,
    pub end_us: i64,
}

/// Rows counted while joining, and the leakage check's extremes.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Tally {
    pub candidates: u64,
    pub no_target: u64,
    pub purged: u64,
    pub annotated: u64,
    pub no_features: u64,
    /// Rows excluded by each unusable annotation (by its index in [`Rules::unusable`]).
    pub excluded_by: Vec<u64>,
    /// Entity rows: the candidates kept.
    pub entities: u64,
    pub rows: u64,
    pub max_feature_lead_us: Option<i64>,
    /// `symbol decision_time` of the row with the largest feature lead.
    pub worst: Option<String>,
    pub min_label_start_gap_us: Option<i64>,
    pub min_label_end_gap_us: Option<i64>,
}

impl Tally {
    pub fn add(&mut self, other: &Tally) {
        self.candidates += other.candidates;
        self.no_target += other.no_target;
        self.purged += other.purged;
        self.annotated += other.annotated;
        self.no_features += other.no_features;
        if self.excluded_by.len() < other.excluded_by.len() {
            self.excluded_by.resize(other.excluded_by.len(), 0);
        }
        for (a, b) in self.excluded_by.iter_mut().zip(&other.excluded_by) {
            *a += b;
        }
        self.entities += other.entities;
        self.rows += other.rows;
        if other.max_feature_lead_us > self.max_feature_lead_us {
            self.max_feature_lead_us = other.max_feature_lead_us;
            self.worst.clone_from(&other.worst);
        }
        self.min_label_start_gap_us = min_some(self.min_label_start_gap_us, other.min_label_start_gap_us);
        self.min_label_end_gap_us = min_some(self.min_label_end_gap_us, other.min_label_end_gap_us);
    }
}

/// The smaller of two optional values, or the one there is.
fn min_some(a: Option<i64>, b: Option<i64>) -> Option<i64> {
    a.into_iter().chain(b).min()
}

/// The entity rows of one label partition and where each one's features are: this session's rows
/// (found by [`select`], in parallel), or the carry (found in order, by [`join`]).
#[derive(Debug)]
pub(crate) struct Selected {
    labels: LabelRows,
    /// Label row of each entity, in (symbol, ts) order.
    entities: Vec<u32>,
    /// This session's feature row of each entity, when it has one.
    found: Vec<Option<u32>>,
    tally: Tally,
}

/// Picks the entity rows of `labels` by `rules` (counting what each rule leaves out) and finds each
/// one's latest complete feature row in `features`, the same session's.
pub(crate) fn select(labels: LabelRows, features: &FeatureRows, rules: &Rules) -> Result<Selected> {
    let b = &labels.batch;
    let symbol = b.column(0).as_string::<i32>();
    let columns = LabelColumns {
        ts: b.column(1).as_primitive(),
        decision: b.column(2).as_primitive(),
        target: b.column(3).as_primitive(),
        end: b.column(4).as_primitive(),
    };
    let mut picked = Picked {
        tally: Tally { excluded_by: vec![0; rules.unusable.len()], ..Tally::default() },
        entities: Vec::with_capacity(b.num_rows()),
        found: Vec::with_capacity(b.num_rows()),
    };
    // Both sides are sorted by symbol: their runs are walked together, and within a symbol's run a
    // decision's feature row is a binary search over timestamps alone.
    let (feature_symbols, feature_ts) = (features.symbols(), features.ts().values());
    let mut next_run = 0;
    for run in runs(symbol) {
        let s = symbol.value(run.start);
        if !rules.symbols.is_empty() && !rules.symbols.contains(s) {
            continue;
        }
        while next_run < features.runs.len() && feature_symbols.value(features.runs[next_run].start) < s {
            next_run += 1;
        }
        let own = features
            .runs
            .get(next_run)
            .filter(|r| feature_symbols.value(r.start) == s)
            .map(|r| (r.start, &feature_ts[r.clone()]));
        for i in run {
            picked.row(&columns, i, s, own, rules);
        }
    }
    let Picked { tally, entities, found } = picked;
    Ok(Selected { labels, entities, found, tally })
}

/// The label columns [`select`] reads.
struct LabelColumns<'a> {
    ts: &'a TimestampMicrosecondArray,
    decision: &'a TimestampMicrosecondArray,
    target: &'a arrow::array::Float64Array,
    end: &'a TimestampMicrosecondArray,
}

/// What [`select`] keeps and counts.
struct Picked {
    tally: Tally,
    entities: Vec<u32>,
    found: Vec<Option<u32>>,
}

impl Picked {
    /// Label row `i` of symbol `s`: counted, then kept as an entity (with its row in `own`, the
    /// symbol's run of this session's features: its first row and timestamps) or left out by a rule.
    fn row(&mut self, c: &LabelColumns, i: usize, s: &str, own: Option<(usize, &[i64])>, rules: &Rules) {
        let tally = &mut self.tally;
        tally.candidates += 1;
        if c.target.is_null(i) {
            tally.no_target += 1;
            return;
        }
        // A label whose end is unknown cannot be shown to end before the cutoff: purged with the late ones.
        if c.end.is_null(i) || c.end.value(i) > rules.cutoff_us {
            tally.purged += 1;
            return;
        }
        let (t, d, e) = (c.ts.value(i), c.decision.value(i), c.end.value(i));
        let mut unusable = false;
        for (k, u) in rules.unusable.iter().enumerate() {
            let concerns = u.symbols.as_ref().is_none_or(|list| list.iter().any(|x| x.as_str() == s));
            if concerns && u.start_us < e && u.end_us >= t {
                tally.excluded_by[k] += 1;
                unusable = true;
            }
        }
        if unusable {
            tally.annotated += 1;
            return;
        }
        tally.entities += 1;
        tally.min_label_start_gap_us = min_some(tally.min_label_start_gap_us, Some(t + rules.label_bar_us - d));
        tally.min_label_end_gap_us = min_some(tally.min_label_end_gap_us, Some(e - d));
        self.entities.push(i as u32);
        self.found.push(own.and_then(|(first, ts)| {
            let n = ts.partition_point(|t| t + rules.feature_bar_us <= d);
            (n > 0).then(|| (first + n - 1) as u32)
        }));
    }
}

/// The output schema: `symbol, ts, decision_time, feature_ts, available_at, label_end, <features>,
/// target`, every column nullable (as the SQL path returns them).
pub(crate) fn output_schema(features: &Schema) -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into()));
    let mut fields = vec![
        Field::new("symbol", DataType::Utf8, true),
        Field::new("ts", ts.clone(), true),
        Field::new("decision_time", ts.clone(), true),
        Field::new("feature_ts", ts.clone(), true),
        Field::new("available_at", ts.clone(), true),
        Field::new("label_end", ts, true),
    ];
    fields.extend(features.fields().iter().skip(3).map(|f| f.as_ref().clone().with_nullable(true)));
    fields.push(Field::new("target", DataType::Float64, true));
    Arc::new(Schema::new(fields))
}

/// Finishes one session in order: entities without a feature row of their own session take the
/// carry's, those with none are counted and left out, and the rows come back in the output schema
/// with the session's tally (leakage extremes included).
pub(crate) fn join(
    selected: Selected,
    features: &FeatureRows,
    carry: &FeatureRows,
    rules: &Rules,
    schema: &SchemaRef,
) -> Result<(RecordBatch, Tally)> {
    let Selected { labels, entities, found, mut tally } = selected;
    let b = &labels.batch;
    let symbol = b.column(0).as_string::<i32>();
    let decision = b.column(2).as_primitive::<TimestampMicrosecondType>();
    let (mut rows, mut picks) = (Vec::with_capacity(entities.len()), Vec::with_capacity(entities.len()));
    for (&i, f) in entities.iter().zip(&found) {
        let pick = match f {
            Some(r) => Some((0, *r as usize)),
            None => carry
                .latest_complete(symbol.value(i as usize), decision.value(i as usize), rules.feature_bar_us)
                .map(|r| (1, r)),
        };
        match pick {
            Some(p) => {
                rows.push(i);
                picks.push(p);
            }
            None => tally.no_features += 1,
        }
    }
    let labels_out = gather(&[b], &rows.iter().map(|&r| (0, r as usize)).collect::<Vec<_>>())?;
    let features_out = gather(&[&features.batch, &carry.batch], &picks)?;
    let available = features_out.column(2).as_primitive::<TimestampMicrosecondType>();
    let decided = labels_out.column(2).as_primitive::<TimestampMicrosecondType>();
    for r in 0..labels_out.num_rows() {
        let lead = available.value(r) - decided.value(r);
        if tally.max_feature_lead_us.is_none_or(|m| lead > m) {
            tally.max_feature_lead_us = Some(lead);
            tally.worst = Some(format!(
                "{} {}",
                labels_out.column(0).as_string::<i32>().value(r),
                chrono::DateTime::from_timestamp_micros(decided.value(r))
                    .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
                    .unwrap_or_default()
            ));
        }
    }
    tally.rows = labels_out.num_rows() as u64;
    let mut columns: Vec<ArrayRef> = vec![
        labels_out.column(0).clone(),
        labels_out.column(1).clone(),
        labels_out.column(2).clone(),
        features_out.column(1).clone(),
        features_out.column(2).clone(),
        labels_out.column(4).clone(),
    ];
    columns.extend(features_out.columns().iter().skip(3).cloned());
    columns.push(labels_out.column(3).clone());
    let columns = columns
        .into_iter()
        .zip(schema.fields())
        .map(|(c, f)| if c.data_type() == f.data_type() { Ok(c) } else { Ok(arrow::compute::cast(&c, f.data_type())?) })
        .collect::<Result<Vec<_>>>()?;
    Ok((RecordBatch::try_new(schema.clone(), columns)?, tally))
}

/// Rows of `batches` picked by (batch, row) pairs, in the first batch's schema. A session's picks are
/// mostly runs of consecutive rows (every minute of a symbol, in order), so those are copied a run at
/// a time, as `filter` copies slices; scattered picks are interleaved row by row.
fn gather(batches: &[&RecordBatch], picks: &[(usize, usize)]) -> Result<RecordBatch> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for &(b, r) in picks {
        match runs.last_mut() {
            Some((lb, _, end)) if *lb == b && *end == r => *end += 1,
            _ => runs.push((b, r, r + 1)),
        }
    }
    // Below about four rows a run, interleave's per-row copy is the cheaper one.
    if runs.len() * 4 > picks.len() {
        return interleave_batches(batches, picks);
    }
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let data: Vec<ArrayData> = batches.iter().map(|b| b.column(c).to_data()).collect();
            let nulls = data.iter().any(|d| d.null_count() > 0);
            let mut out = MutableArrayData::new(data.iter().collect(), nulls, picks.len());
            for &(b, start, end) in &runs {
                out.try_extend(b, start, end)?;
            }
            Ok(make_array(out.freeze()))
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(picks.len()));
    Ok(RecordBatch::try_new_with_options(schema, columns, &options)?)
}

/// Rows of `batches` picked by (batch, row) pairs, one at a time, in the first batch's schema.
fn interleave_batches(batches: &[&RecordBatch], picks: &[(usize, usize)]) -> Result<RecordBatch> {
    let schema = batches[0].schema();
    let columns = (0..schema.fields().len())
        .map(|c| {
            let arrays: Vec<&dyn Array> = batches.iter().map(|b| b.column(c).as_ref()).collect();
            Ok(interleave(&arrays, picks)?)
        })
        .collect::<Result<Vec<ArrayRef>>>()?;
    let options = arrow::array::RecordBatchOptions::new().with_row_count(Some(picks.len()));
    Ok(RecordBatch::try_new_with_options(schema, columns, &options)?)
}

fn symbols(batch: &RecordBatch) -> Result<&StringArray> {
    batch
        .column(0)
        .as_string_opt::<i32>()
        .ok_or_else(|| Error::invalid("point-in-time join: the first column is not a utf8 symbol"))
}

/// The row ranges of equal adjacent symbols.
fn runs(symbols: &StringArray) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for i in 1..=symbols.len() {
        if i == symbols.len() || symbols.value(i) != symbols.value(start) {
            if i > start {
                out.push(start..i);
            }
            start = i;
        }
    }
    out
}

/// `batch` sorted by its first two columns (symbol, ts): as written by the lake it already is, which is
/// checked in one pass; otherwise it is sorted.
fn sorted(batch: RecordBatch) -> Result<RecordBatch> {
    let symbol = symbols(&batch)?;
    let ts = batch
        .column(1)
        .as_primitive_opt::<TimestampMicrosecondType>()
        .ok_or_else(|| Error::invalid("point-in-time join: the second column is not a ts timestamp"))?;
    if symbol.null_count() > 0 || ts.null_count() > 0 {
        return Err(Error::invalid("point-in-time join: a row without a symbol or ts"));
    }
    let in_order = (1..batch.num_rows()).all(|i| match symbol.value(i - 1).cmp(symbol.value(i)) {
        Ordering::Less => true,
        Ordering::Equal => ts.value(i - 1) <= ts.value(i),
        Ordering::Greater => false,
    });
    if in_order {
        return Ok(batch);
    }
    let indices = lexsort_to_indices(
        &[
            SortColumn { values: batch.column(0).clone(), options: None },
            SortColumn { values: batch.column(1).clone(), options: None },
        ],
        None,
    )?;
    Ok(take_record_batch(&batch, &indices)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::{Float64Array, TimestampMicrosecondArray};

    const MIN: i64 = 60_000_000;

    fn ts(values: Vec<i64>) -> ArrayRef {
        Arc::new(TimestampMicrosecondArray::from(values).with_timezone("UTC"))
    }

    /// Feature rows (symbol, minute) with `x` = a value naming the row (symbol's index * 100 + minute).
    fn features(rows: &[(&str, i64)]) -> FeatureRows {
        let symbols: Vec<&str> = rows.iter().map(|r| r.0).collect();
        let x: Vec<f64> = rows.iter().map(|(s, m)| f64::from(s.as_bytes()[0]) * 100.0 + *m as f64).collect();
        let batch = RecordBatch::try_from_iter([
            ("symbol", Arc::new(StringArray::from(symbols)) as ArrayRef),
            ("ts", ts(rows.iter().map(|r| r.1 * MIN).collect())),
            ("available_at", ts(rows.iter().map(|r| (r.1 + 1) * MIN).collect())),
            ("x", Arc::new(Float64Array::from(x)) as ArrayRef),
        ])
        .unwrap();
        FeatureRows::new(batch).unwrap()
    }

    /// Label rows (symbol, minute, target, end minute): decided one minute after their bar.
    fn labels(rows: &[(&str, i64, Option<f64>, Option<i64>)]) -> LabelRows {
        let batch = RecordBatch::try_from_iter([
            ("symbol", Arc::new(StringArray::from(rows.iter().map(|r| r.0).collect::<Vec<_>>())) as ArrayRef),
            ("ts", ts(rows.iter().map(|r| r.1 * MIN).collect())),
            ("decision_time", ts(rows.iter().map(|r| (r.1 + 1) * MIN).collect())),
            ("target", Arc::new(Float64Array::from(rows.iter().map(|r| r.2).collect::<Vec<_>>())) as ArrayRef),
            (
                "end",
                Arc::new(
                    TimestampMicrosecondArray::from(rows.iter().map(|r| r.3.map(|m| m * MIN)).collect::<Vec<_>>())
                        .with_timezone("UTC"),
                ) as ArrayRef,
            ),
        ])
        .unwrap();
        LabelRows::new(batch).unwrap()
    }

    /// Runs of rows are copied whole and scattered rows one by one, with the same result, nulls kept.
    #[test]
    fn gather_copies_runs_and_scattered_rows_alike() {
        let with_nulls = |rows: &[(&str, i64)], null_at: usize| {
            let b = features(rows).batch;
            let x: Float64Array = (0..b.num_rows()).map(|i| (i != null_at).then_some(i as f64)).collect();
            let names = ["symbol", "ts", "available_at"];
            RecordBatch::try_from_iter(
                names
                    .iter()
                    .map(|n| (*n, b.column_by_name(n).unwrap().clone()))
                    .chain([("x", Arc::new(x) as ArrayRef)]),
            )
            .unwrap()
        };
        let a = with_nulls(&[("A", 1), ("A", 2), ("A", 3), ("B", 1), ("B", 2), ("B", 3), ("C", 5), ("C", 6)], 4);
        let b = with_nulls(&[("A", 0), ("D", 0)], 1);
        let runs: Vec<(usize, usize)> =
            vec![(1, 0), (0, 0), (0, 1), (0, 2), (0, 3), (0, 4), (0, 5), (0, 6), (0, 7), (1, 1), (0, 2), (0, 3)];
        let scattered: Vec<(usize, usize)> = vec![(0, 7), (1, 1), (0, 0), (0, 4), (1, 0)];
        for picks in [runs, scattered] {
            let fast = gather(&[&a, &b], &picks).unwrap();
            assert_eq!(fast, interleave_batches(&[&a, &b], &picks).unwrap(), "{picks:?}");
            assert_eq!(fast.num_rows(), picks.len());
        }
        assert_eq!(gather(&[&a], &[]).unwrap().num_rows(), 0);
    }

    fn rules() -> Rules {
        Rules {
            cutoff_us: 1_000 * MIN,
            unusable: Vec::new(),
            symbols: BTreeSet::new(),
            feature_bar_us: MIN,
            label_bar_us: MIN,
        }
    }

    fn joined(batch: &RecordBatch) -> Vec<(String, i64, Option<i64>, f64)> {
        let s = batch.column(0).as_string::<i32>();
        let t = batch.column(1).as_primitive::<TimestampMicrosecondType>();
        let f = batch.column(3).as_primitive::<TimestampMicrosecondType>();
        let x = batch.column(6).as_primitive::<arrow::datatypes::Float64Type>();
        (0..batch.num_rows())
            .map(|i| (s.value(i).to_string(), t.value(i) / MIN, (!f.is_null(i)).then(|| f.value(i) / MIN), x.value(i)))
            .collect()
    }

    #[test]
    fn each_decision_gets_the_latest_complete_bar_of_its_session_else_the_carry() {
        // Session 1 (minutes 0..3): A and B. Session 2 (minutes 100..): A from 102 only, C never.
        let day1 = features(&[("B", 1), ("A", 0), ("A", 1), ("A", 2)]); // unsorted: sorted on the way in
        let carry = day1.carry_after(&FeatureRows::empty(day1.batch.schema())).unwrap();
        let day2 = features(&[("A", 102), ("A", 103)]);
        let rules = rules();
        let schema = output_schema(&day2.batch.schema());
        let session = labels(&[
            ("A", 100, Some(1.0), Some(110)),
            ("A", 102, Some(1.0), Some(110)),
            ("B", 100, Some(1.0), Some(110)),
            ("C", 100, Some(1.0), Some(110)),
        ]);
        let selected = select(session, &day2, &rules).unwrap();
        let (out, tally) = join(selected, &day2, &carry, &rules, &schema).unwrap();
        let a = f64::from(b'A') * 100.0;
        let b = f64::from(b'B') * 100.0;
        assert_eq!(
            joined(&out),
            vec![
                // Decided at 101: no bar of session 2 is complete yet: A's last of session 1.
                ("A".into(), 100, Some(2), a + 2.0),
                // Decided at 103: the bar stamped 102 ends at 103, exactly in time.
                ("A".into(), 102, Some(102), a + 102.0),
                ("B".into(), 100, Some(1), b + 1.0),
            ]
        );
        assert_eq!((tally.entities, tally.rows, tally.no_features), (4, 3, 1), "C has no feature row anywhere");
        assert_eq!(tally.max_feature_lead_us, Some(0), "available_at = decision time at the latest");
        assert_eq!(tally.min_label_start_gap_us, Some(0));
        assert_eq!(tally.min_label_end_gap_us, Some(7 * MIN));
        // The carry after session 2: A's last row of session 2, B's of session 1.
        let next = day2.carry_after(&carry).unwrap();
        let x = next.batch.column(3).as_primitive::<arrow::datatypes::Float64Type>();
        assert_eq!(x.values().to_vec(), vec![a + 103.0, b + 1.0]);
    }

    #[test]
    fn rules_count_what_they_leave_out() {
        let day = features(&[("A", 0), ("A", 1), ("A", 2), ("B", 0)]);
        let mut rules = rules();
        rules.cutoff_us = 20 * MIN;
        rules.unusable = vec![
            Unusable { symbols: Some(vec![Symbol::from_static("A")]), start_us: 2 * MIN, end_us: 2 * MIN },
            Unusable { symbols: None, start_us: 50 * MIN, end_us: 60 * MIN },
        ];
        rules.symbols = BTreeSet::from([Symbol::from_static("A")]);
        let session = labels(&[
            ("A", 0, None, None),          // no target
            ("A", 1, Some(1.0), Some(30)), // ends after the cutoff: purged
            ("A", 2, Some(1.0), None),     // no end: purged too
            ("A", 1, Some(1.0), Some(3)),  // its window [1, 3] touches the annotated minute 2
            ("A", 3, Some(1.0), Some(10)), // kept
            ("B", 0, Some(1.0), Some(5)),  // not asked for
        ]);
        let selected = select(session, &day, &rules).unwrap();
        let schema = output_schema(&day.batch.schema());
        let (out, t) = join(selected, &day, &FeatureRows::empty(day.batch.schema()), &rules, &schema).unwrap();
        assert_eq!((t.candidates, t.no_target, t.purged, t.annotated, t.entities), (5, 1, 2, 1, 1));
        assert_eq!(t.excluded_by, vec![1, 0]);
        assert_eq!(joined(&out).len(), 1);
        let mut total = Tally::default();
        total.add(&t);
        total.add(&t);
        assert_eq!((total.candidates, total.excluded_by.clone()), (10, vec![2, 0]));
    }
}
