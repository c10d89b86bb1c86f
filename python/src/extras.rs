//! Tasks, metrics and plots: thin wrappers over `fmpe::tasks`, `fmpe::metrics` and
//! `fmpe::plot`.

use std::path::PathBuf;

use fmpe::metrics::{c2st_report, expected_coverage, sbc_ranks, C2stOptions};
use fmpe::tasks::{row_rng, task_by_name, Prior};
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::device::Device;
use crate::errors::IntoPy;
use crate::flow::slice_of;

/// A task's dimensions, names and prior: a dict with `dim_theta`, `dim_x`, `theta_names`,
/// `x_names`, `prior` (`"uniform"`, `"gaussian"`, `"lognormal"`) and its parameters
/// (`low`/`high`, `mean`/`cov` (row-major), `mu`/`sigma`).
#[pyfunction]
pub fn task_info<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyDict>> {
    let t = task_by_name(name).py_err()?;
    let d = PyDict::new(py);
    d.set_item("name", t.name())?;
    d.set_item("dim_theta", t.dim_theta())?;
    d.set_item("dim_x", t.dim_x())?;
    d.set_item("theta_names", t.theta_names())?;
    d.set_item("x_names", t.x_names())?;
    match t.prior() {
        Prior::Uniform { low, high } => {
            d.set_item("prior", "uniform")?;
            d.set_item("low", low.clone())?;
            d.set_item("high", high.clone())?;
        }
        Prior::Gaussian { mean, cov } => {
            d.set_item("prior", "gaussian")?;
            d.set_item("mean", mean.clone())?;
            d.set_item("cov", cov.clone())?;
        }
        Prior::LogNormal { mu, sigma } => {
            d.set_item("prior", "lognormal")?;
            d.set_item("mu", mu.clone())?;
            d.set_item("sigma", sigma.clone())?;
        }
    }
    Ok(d)
}

/// `n` draws `[n, dim_theta]` from the task's prior, as `fmpe simulate --seed` draws them.
#[pyfunction]
pub fn task_prior_sample<'py>(py: Python<'py>, name: &str, n: usize, seed: u64) -> PyResult<Bound<'py, PyAny>> {
    let t = task_by_name(name).py_err()?;
    let d = t.dim_theta();
    let v = py.detach(|| t.prior().sample(n, &mut row_rng(seed, u64::MAX)));
    Ok(PyArray1::from_vec(py, v).reshape([n, d])?.into_any())
}

/// One x per row of `theta [n, dim_theta]` (float64, C order): `[n, dim_x]`; row `i` uses
/// the generator of `(seed, i)`, as `fmpe simulate`.
#[pyfunction]
pub fn task_simulate<'py>(py: Python<'py>, name: &str, theta: PyReadonlyArray2<'py, f64>, seed: u64) -> PyResult<Bound<'py, PyAny>> {
    let t = task_by_name(name).py_err()?;
    if theta.shape()[1] != t.dim_theta() {
        let msg = format!("theta has {} columns, task {name} has dim_theta = {}", theta.shape()[1], t.dim_theta());
        return Err(crate::errors::array_error("theta", None, None, &msg));
    }
    let theta = slice_of(&theta, "theta")?.to_vec();
    let n = theta.len() / t.dim_theta();
    let x = py.detach(|| t.simulate(&theta, seed));
    Ok(PyArray1::from_vec(py, x).reshape([n, t.dim_x()])?.into_any())
}

/// The sbibm C2ST (GPU) between `a [n, d]` and `b [m, d]`: `(score, fold_accuracies)`.
#[pyfunction]
pub fn c2st(
    py: Python<'_>,
    device: &Device,
    a: PyReadonlyArray2<'_, f64>,
    b: PyReadonlyArray2<'_, f64>,
    seed: u64,
    folds: usize,
    max_rows: usize,
) -> PyResult<(f64, Vec<f64>)> {
    let d = a.shape()[1];
    let (a, b) = (slice_of(&a, "a")?.to_vec(), slice_of(&b, "b")?.to_vec());
    let opts = C2stOptions { seed, folds, max_rows, ..Default::default() };
    let r = py.detach(|| c2st_report(&device.gpu, &a, &b, d, &opts)).py_err()?;
    Ok((r.score, r.fold_accuracies))
}

/// SBC ranks `[m, d]` of `theta [m, d]` among `samples [m·l, d]` (`l` per pair).
#[pyfunction]
pub fn ranks<'py>(py: Python<'py>, theta: PyReadonlyArray2<'py, f64>, samples: PyReadonlyArray2<'py, f64>, l: usize) -> PyResult<Bound<'py, PyAny>> {
    let d = theta.shape()[1];
    let r = sbc_ranks(slice_of(&theta, "theta")?, slice_of(&samples, "samples")?, d, l).py_err()?;
    let m = r.len() / d.max(1);
    let r: Vec<i64> = r.into_iter().map(|v| v as i64).collect();
    Ok(PyArray1::from_vec(py, r).reshape([m, d])?.into_any())
}

/// Expected coverage from ranks `[m, d]` with `l` samples per pair, at `levels`:
/// `(levels, coverage [levels, d] row-major, max_abs_error, mean_error)`.
#[pyfunction]
pub fn coverage(ranks: Vec<Vec<usize>>, l: usize, levels: Vec<f64>) -> PyResult<(Vec<f64>, Vec<f64>, f64, f64)> {
    let d = ranks.first().map_or(0, |r| r.len());
    let flat: Vec<usize> = ranks.into_iter().flatten().collect();
    let c = expected_coverage(&flat, d, l, &levels).py_err()?;
    Ok((c.levels, c.coverage, c.max_abs_error, c.mean_error))
}

/// Pair plot PNG of `samples [n, d]` (and `reference [m, d]`) at `path`, written atomically.
#[pyfunction]
#[pyo3(signature = (samples, reference, names, path))]
pub fn pair_plot(
    py: Python<'_>,
    samples: PyReadonlyArray2<'_, f64>,
    reference: Option<PyReadonlyArray2<'_, f64>>,
    names: Vec<String>,
    path: PathBuf,
) -> PyResult<()> {
    let d = samples.shape()[1];
    let s = slice_of(&samples, "samples")?.to_vec();
    let r = match &reference {
        Some(r) => Some(slice_of(r, "reference")?.to_vec()),
        None => None,
    };
    py.detach(|| fmpe::plot::pair_plot(&s, r.as_deref(), d, &names, &path)).py_err()
}

/// The library's default training options, as JSON (`TrainConfig::default()`).
#[pyfunction]
pub fn default_train_config() -> String {
    serde_json::to_string(&fmpe::train::TrainConfig::default()).unwrap_or_default()
}

/// The options the caller fixed (None: the budget policy's value).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct Explicit {
    hidden: Option<Vec<usize>>,
    width: Option<usize>,
    blocks: Option<usize>,
    batch_size: Option<usize>,
    learning_rate: Option<f64>,
    max_epochs: Option<usize>,
    patience: Option<usize>,
    validation_fraction: Option<f64>,
    time_prior_exponent: Option<f64>,
    ema_decay: Option<f64>,
}

/// The budget policy (`fmpe::policy`, as the CLI resolves it) for `num_simulations`
/// simulations of `dim_theta` × `dim_x`, with the caller's `explicit` values winning
/// and the rest of `base_json` (a `TrainConfig`) kept: `(hidden widths, training
/// options as JSON, the one-line summary)`. Raises `OptionError` naming the option.
#[pyfunction]
pub fn resolve_policy(num_simulations: usize, dim_theta: usize, dim_x: usize, explicit: Explicit, base_json: &str) -> PyResult<(Vec<usize>, String, String)> {
    let base: fmpe::train::TrainConfig =
        serde_json::from_str(base_json).map_err(|e| fmpe::Error::invalid(format!("training options: {e}"))).py_err()?;
    let auto = fmpe::policy::AutoOptions {
        hidden: explicit.hidden,
        width: explicit.width,
        blocks: explicit.blocks,
        batch_size: explicit.batch_size,
        learning_rate: explicit.learning_rate,
        max_epochs: explicit.max_epochs,
        patience: explicit.patience,
        validation_fraction: explicit.validation_fraction,
        time_prior_exponent: explicit.time_prior_exponent,
        ema_decay: explicit.ema_decay,
        ..Default::default()
    };
    let budget = fmpe::policy::Budget { num_simulations, dim_theta, dim_x };
    let r = auto.resolve(budget, &base).py_err()?;
    let json = serde_json::to_string(&r.train).map_err(|e| fmpe::Error::invalid(e.to_string())).py_err()?;
    Ok((r.net.hidden.clone(), json, r.summary()))
}
