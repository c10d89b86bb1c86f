//! `fmpe._fmpe`: the compiled part of the `fmpe` Python package (PyO3). The Python
//! layer (`python/fmpe/`) checks and converts arguments and gives the sbi-style API;
//! this module moves float64 arrays in and out and runs every GPU call with the GIL
//! released.

mod device;
mod errors;
mod extras;
mod flow;
mod train;

use pyo3::prelude::*;

#[pymodule]
fn _fmpe(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add_class::<device::Device>()?;
    m.add_class::<flow::Flow>()?;
    m.add_function(wrap_pyfunction!(device::list_devices, m)?)?;
    m.add_function(wrap_pyfunction!(train::train, m)?)?;
    m.add_function(wrap_pyfunction!(extras::task_info, m)?)?;
    m.add_function(wrap_pyfunction!(extras::task_prior_sample, m)?)?;
    m.add_function(wrap_pyfunction!(extras::task_simulate, m)?)?;
    m.add_function(wrap_pyfunction!(extras::c2st, m)?)?;
    m.add_function(wrap_pyfunction!(extras::ranks, m)?)?;
    m.add_function(wrap_pyfunction!(extras::coverage, m)?)?;
    m.add_function(wrap_pyfunction!(extras::pair_plot, m)?)?;
    m.add_function(wrap_pyfunction!(extras::default_train_config, m)?)?;
    m.add_function(wrap_pyfunction!(extras::resolve_policy, m)?)?;
    Ok(())
}
