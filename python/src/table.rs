//! Results: rows as Arrow record batches, exported through the Arrow PyCapsule interface.

use arrow::array::{Array, RecordBatch, RecordBatchIterator};
use arrow::datatypes::SchemaRef;
use arrow::ffi_stream::FFI_ArrowArrayStream;
use pyo3::prelude::*;
use pyo3::types::PyCapsule;

use crate::errors::{invalid, warn};
use crate::values::json;

/// The name the Arrow PyCapsule interface gives a stream capsule.
const STREAM_CAPSULE: &std::ffi::CStr = c"arrow_array_stream";

/// Rows as Arrow record batches. polars (`pl.DataFrame(t)`), pyarrow (`pa.table(t)`) and pandas
/// (`t.to_pandas()`) take them through `__arrow_c_stream__` without a copy.
#[pyclass(module = "quantlake", frozen, subclass)]
pub struct Table {
    batches: Vec<RecordBatch>,
    schema: SchemaRef,
    /// What a partial result lacks (the command line exits 1 with these), each also told to Python's
    /// `warnings` as a `QuantlakeWarning`.
    #[pyo3(get)]
    warnings: Vec<String>,
}

impl Table {
    pub fn new(batches: Vec<RecordBatch>) -> PyResult<Self> {
        let schema =
            batches.first().map(RecordBatch::schema).ok_or_else(|| invalid("the read returned no schema".into()))?;
        Ok(Self::with_schema(schema, batches))
    }

    /// A table of `schema`, which `batches` may leave unknown by holding no rows.
    pub fn with_schema(schema: SchemaRef, batches: Vec<RecordBatch>) -> Self {
        let batches = batches.into_iter().filter(|b| b.num_rows() > 0).collect();
        Self { batches, schema, warnings: Vec::new() }
    }

    /// The table with `warning` (if any) listed and told to Python's `warnings`.
    pub fn warning(mut self, py: Python<'_>, warning: Option<String>) -> PyResult<Self> {
        if let Some(warning) = warning {
            warn(py, &warning)?;
            self.warnings.push(warning);
        }
        Ok(self)
    }
}

#[pymethods]
impl Table {
    /// The Arrow PyCapsule interface: a stream of the batches, each exported, not copied.
    #[pyo3(signature = (requested_schema = None))]
    fn __arrow_c_stream__<'py>(
        &self,
        py: Python<'py>,
        requested_schema: Option<Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyCapsule>> {
        // The batches go as they are; a consumer casts to a requested schema itself.
        let _ = requested_schema;
        let reader = RecordBatchIterator::new(self.batches.clone().into_iter().map(Ok), self.schema.clone());
        let stream = FFI_ArrowArrayStream::new(Box::new(reader));
        PyCapsule::new_with_value(py, stream, STREAM_CAPSULE)
    }

    /// Rows in all.
    #[getter]
    fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }

    /// The columns' names.
    #[getter]
    fn column_names(&self) -> Vec<String> {
        self.schema.fields().iter().map(|f| f.name().clone()).collect()
    }

    /// The addresses of each batch's data buffers of `column` (the validity bitmap aside): how a test
    /// shows that a consumer got these very buffers, not copies.
    fn buffer_addresses(&self, column: &str) -> PyResult<Vec<Vec<usize>>> {
        let index = self.schema.index_of(column).map_err(|_| invalid(format!("no column '{column}'")))?;
        Ok(self
            .batches
            .iter()
            .map(|b| b.column(index).to_data().buffers().iter().map(|buf| buf.as_ptr() as usize).collect())
            .collect())
    }

    /// A `pyarrow.Table` (needs pyarrow).
    fn to_pyarrow<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("pyarrow")?.getattr("table")?.call1((slf,))
    }

    /// A `pandas.DataFrame` (needs pyarrow, which pandas reads Arrow with).
    fn to_pandas<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        Self::to_pyarrow(slf)?.call_method0("to_pandas")
    }

    /// A `polars.DataFrame` (needs polars only).
    fn to_polars<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyAny>> {
        slf.py().import("polars")?.getattr("DataFrame")?.call1((slf,))
    }

    fn __len__(&self) -> usize {
        self.num_rows()
    }

    fn __repr__(&self) -> String {
        format!("Table({} rows: {})", self.num_rows(), self.column_names().join(", "))
    }
}

/// A training set's rows (a `Table`) with what they are: the target, the feature columns, the lineage
/// the command line prints, and the candidate rows each rule left out.
#[pyclass(module = "quantlake", frozen, extends = Table)]
pub struct TrainingSet {
    /// Which label the rows' `target` column holds: the one asked for, or its fallback.
    #[pyo3(get)]
    target: String,
    /// The feature columns, in the set's order (the model's inputs).
    #[pyo3(get)]
    feature_columns: Vec<String>,
    lineage: ql::sets::Lineage,
}

impl TrainingSet {
    pub fn new(set: ql::sets::TrainingSetInfo) -> Self {
        Self { target: set.target, feature_columns: set.feature_columns, lineage: set.lineage }
    }
}

#[pymethods]
impl TrainingSet {
    /// The lineage record, as `quantlake training-set --json` prints it: inputs and their snapshots,
    /// row counts, the leakage check.
    #[getter]
    fn lineage<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        json(py, &self.lineage)
    }

    /// Candidate rows left out, by rule: no_target, purged (the label ends after the cutoff),
    /// no_features, annotations (excluded by them), not_members (of the universe).
    #[getter]
    fn rows_left_out(&self) -> std::collections::BTreeMap<&'static str, u64> {
        let l = &self.lineage;
        std::collections::BTreeMap::from([
            ("no_target", l.rows_without_target),
            ("purged", l.rows_purged),
            ("no_features", l.rows_without_features),
            ("annotations", l.rows_excluded_by_annotations),
            ("not_members", l.rows_not_members),
        ])
    }
}
