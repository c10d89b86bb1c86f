//! fmpe's errors as Python exceptions of the hierarchy in `fmpe/errors.py`.

use pyo3::prelude::*;
use pyo3::types::PyDict;

/// The Python exception for `e`: `NoAdapterError`, `GpuError`, `DataError` (with `array`,
/// `row`, `column` where known), `OptionError` (with `name`), `LowAcceptanceError` (the
/// rate is parsed in Python from the message), `FmpeIOError` (an `OSError`).
pub fn to_py(e: fmpe::Error) -> PyErr {
    Python::attach(|py| build(py, &e).unwrap_or_else(|err| err))
}

fn build(py: Python<'_>, e: &fmpe::Error) -> PyResult<PyErr> {
    use fmpe::Error as E;
    let kw = PyDict::new(py);
    let class = match e {
        E::NoAdapter { .. } => "NoAdapterError",
        E::Gpu(_) | E::DeviceLost(_) => "GpuError",
        E::Io { path, .. } => {
            kw.set_item("path", path.display().to_string())?;
            "FmpeIOError"
        }
        E::Data { path, line, column, .. } => {
            kw.set_item("array", path.display().to_string())?;
            kw.set_item("row", *line)?;
            kw.set_item("column", *column)?;
            "DataError"
        }
        E::Invalid(_) => "DataError",
        E::Usage(_) => "OptionError",
        E::InvalidOption { name, .. } => {
            kw.set_item("name", *name)?;
            "OptionError"
        }
        E::LowAcceptance(_) => "LowAcceptanceError",
    };
    data_error(py, class, &e.to_string(), &kw)
}

/// An exception of class `class` of `fmpe.errors` with `message` and keyword arguments.
fn data_error(py: Python<'_>, class: &str, message: &str, kw: &Bound<'_, PyDict>) -> PyResult<PyErr> {
    let obj = py.import("fmpe.errors")?.getattr(class)?.call((message,), Some(kw))?;
    Ok(PyErr::from_value(obj))
}

/// A `DataError` about the numpy array `array` at 0-based `row` / `column`.
pub fn array_error(array: &str, row: Option<usize>, column: Option<usize>, message: &str) -> PyErr {
    Python::attach(|py| {
        let go = || -> PyResult<PyErr> {
            let kw = PyDict::new(py);
            kw.set_item("array", array)?;
            kw.set_item("row", row)?;
            kw.set_item("column", column)?;
            data_error(py, "DataError", message, &kw)
        };
        go().unwrap_or_else(|err| err)
    })
}

/// `Result<T, fmpe::Error>` → `PyResult<T>`.
pub trait IntoPy<T> {
    /// The error as a Python exception.
    fn py_err(self) -> PyResult<T>;
}

impl<T> IntoPy<T> for fmpe::Result<T> {
    fn py_err(self) -> PyResult<T> {
        self.map_err(to_py)
    }
}
