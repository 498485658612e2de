//! `import quantlake`: the library crate's calls for Python, with the command line's names and
//! defaults.
//!
//! ```python
//! import quantlake as ql, polars as pl
//! lake = ql.Lake("lake")                       # or "s3://bucket/prefix"; config file and env as the CLI
//! bars = lake.bars(["AAPL"], "2024-01-02", "2024-01-31", frequency="5m", adjust="splits")
//! df = pl.DataFrame(bars)                      # zero-copy through __arrow_c_stream__
//! lake.query("SELECT symbol, count(*) AS n FROM curated_1m_bars GROUP BY 1", as_of="latest")
//! ```
//!
//! Results are [`table::Table`]s: Arrow record batches the library produced, handed to polars, pandas
//! or pyarrow through the Arrow PyCapsule interface without a copy. The interpreter is released while
//! the library works and Ctrl-C stops it ([`signals`]). Errors are exceptions, one class per exit-code
//! class of the command line ([`errors`]).

mod errors;
mod lake;
mod progress;
mod signals;
mod table;
mod values;

use pyo3::prelude::*;

/// quantlake: an embedded, file-based market-data lake. `Lake(root)` opens one; its calls have the
/// command line's names and defaults, and their rows come back as Arrow streams that polars, pandas
/// and pyarrow take without a copy (the Arrow PyCapsule interface).
#[pymodule]
fn quantlake(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<lake::Lake>()?;
    m.add_class::<table::Table>()?;
    m.add_class::<table::TrainingSet>()?;
    errors::add_to(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    Ok(())
}
