//! `Device`: one opened GPU adapter (an `Arc<Gpu>`), shared by everything that runs on it.

use std::sync::Arc;

use fmpe::gpu::{list_adapters, AdapterSelector, GpuOptions};
use fmpe::Gpu;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

use crate::errors::IntoPy;

/// Adapter options from the `WGPU_*` and `FMPE_KERNELS` environment variables (as the
/// CLI reads them),
/// with the adapter replaced by `device` when given: an `int` (index in
/// `list_devices()`) or a `str` (case-insensitive name substring).
fn options(device: Option<&Bound<'_, PyAny>>) -> PyResult<GpuOptions> {
    let mut o = GpuOptions::from_vars(|k| std::env::var(k).ok()).map_err(crate::errors::to_py)?;
    if let Some(d) = device {
        o.adapter = if let Ok(i) = d.extract::<usize>() {
            AdapterSelector::Index(i)
        } else if let Ok(s) = d.extract::<String>() {
            AdapterSelector::Name(s)
        } else {
            return Err(PyTypeError::new_err("device must be None, an adapter index (int) or a name substring (str)"));
        };
    }
    Ok(o)
}

/// An opened GPU adapter and its device.
#[pyclass(frozen, module = "fmpe._fmpe")]
pub struct Device {
    pub gpu: Arc<Gpu>,
}

#[pymethods]
impl Device {
    /// Opens the adapter `device` (None: the default, or the `WGPU_*` variables).
    #[new]
    #[pyo3(signature = (device=None))]
    fn new(py: Python<'_>, device: Option<&Bound<'_, PyAny>>) -> PyResult<Device> {
        let o = options(device)?;
        let gpu = py.detach(move || Gpu::with_options(&o)).py_err()?;
        Ok(Device { gpu: Arc::new(gpu) })
    }

    /// The adapter's description (name, backend, type, driver).
    #[getter]
    fn name(&self) -> String {
        self.gpu.adapter().map(|a| a.to_string()).unwrap_or_else(|| "(borrowed device)".into())
    }

    fn __repr__(&self) -> String {
        format!("Device({:?})", self.name())
    }
}

/// Every adapter wgpu finds (respecting `WGPU_BACKEND`), as description strings; the
/// index in this list is what `device=<int>` selects.
#[pyfunction]
pub fn list_devices(py: Python<'_>) -> PyResult<Vec<String>> {
    let o = options(None)?;
    Ok(py.detach(move || list_adapters(&o)).iter().map(|a| a.to_string()).collect())
}
