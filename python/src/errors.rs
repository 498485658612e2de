//! Library errors as Python exceptions, one class per exit-code class of the command line
//! (`errors.py` defines them, so they can also be `ValueError`s), and partial results as a
//! `QuantlakeWarning`.

use std::ffi::CString;

use pyo3::exceptions::PyRuntimeError;
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyModule, PyType};

use ql::error::Error;

/// The module `errors.py` makes, once per interpreter.
static ERRORS: PyOnceLock<Py<PyModule>> = PyOnceLock::new();

/// The names `errors.py` defines, each added to `quantlake`.
pub const NAMES: [&str; 5] =
    ["QuantlakeError", "InvalidInputError", "LakeUnavailableError", "LakeDamagedError", "QuantlakeWarning"];

/// `errors.py`, run once; its classes are added to `module`.
pub fn add_to(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let errors = ERRORS.get_or_try_init(py, || -> PyResult<_> {
        let code = CString::new(include_str!("errors.py")).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
        Ok(PyModule::from_code(py, &code, c"quantlake/errors.py", c"quantlake._errors")?.unbind())
    })?;
    for name in NAMES {
        module.add(name, errors.bind(py).getattr(name)?)?;
    }
    Ok(())
}

fn class<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyType>> {
    let errors = ERRORS.get(py).ok_or_else(|| PyRuntimeError::new_err("the quantlake module was not initialised"))?;
    Ok(errors.bind(py).getattr(name)?.cast_into::<PyType>()?)
}

/// The exception class of a library error: what a caller would catch it as.
fn class_name(e: &Error) -> &'static str {
    match e {
        Error::Integrity { .. } => "LakeDamagedError",
        Error::LakeNotInitialized { .. } | Error::LakeUnreachable { .. } => "LakeUnavailableError",
        Error::InvalidArgument(_)
        | Error::InvalidName { .. }
        | Error::UnknownDataset { .. }
        | Error::SnapshotNotFound { .. }
        | Error::Config(_) => "InvalidInputError",
        _ => "QuantlakeError",
    }
}

/// A library error as its exception, with the command line's message.
pub fn error(e: Error) -> PyErr {
    Python::attach(|py| match class(py, class_name(&e)) {
        Ok(class) => PyErr::from_type(class, e.to_string()),
        Err(lookup) => lookup,
    })
}

/// Bad input, named as the command line names it.
pub fn invalid(what: String) -> PyErr {
    error(Error::invalid(what))
}

/// Tells Python's `warnings` of a partial result; an error when the caller made the warning one.
pub fn warn(py: Python<'_>, message: &str) -> PyResult<()> {
    let message = CString::new(message.replace('\0', " ")).map_err(|e| PyRuntimeError::new_err(e.to_string()))?;
    // stacklevel 1 is the innermost Python frame, the caller's line: a native call has no frame.
    PyErr::warn(py, class(py, "QuantlakeWarning")?.as_any(), &message, 1)
}
