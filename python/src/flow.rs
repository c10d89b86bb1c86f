//! `Flow`: a trained model resident on a device — sampling, log-densities, saving.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use fmpe::model::Model;
use fmpe::posterior::{Divergence, GpuModel, Posterior, PosteriorOptions, Solver};
use fmpe::Error;
use numpy::{PyArray1, PyArrayMethods, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::device::Device;
use crate::errors::{array_error, IntoPy};

/// What `Flow.sample` returns: samples `[n, d]`, log_prob `[n]` or None, the report.
type Drawn<'py> = (Bound<'py, PyAny>, Option<Bound<'py, PyAny>>, Bound<'py, PyDict>);

/// Posteriors (one per observation) kept for reuse with their ODE plans.
const CACHED_POSTERIORS: usize = 4;

/// Sampling and density options, as the Python layer passes them (a dict with every key).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct Opts {
    solver: String,
    atol: f64,
    rtol: f64,
    steps: usize,
    seed: u64,
    reject_outside_prior: bool,
    reflect_outside_prior: Option<bool>,
    max_seconds: Option<f64>,
    chunk_size: Option<usize>,
    divergence: String,
    probes: usize,
    gaussian_probes: bool,
    normalize_to_prior: bool,
}

impl Opts {
    /// The library's options; `OptionError` naming `solver` or `divergence` for an
    /// unknown name (the values are checked by the library).
    fn options(&self) -> fmpe::Result<PosteriorOptions> {
        let solver = match self.solver.as_str() {
            "dopri5" => Solver::Dopri5 { atol: self.atol, rtol: self.rtol },
            "rk4" => Solver::Rk4 { steps: self.steps },
            s => return Err(Error::option("solver", format!("expected 'dopri5' or 'rk4', got '{s}'"))),
        };
        let divergence = match self.divergence.as_str() {
            "exact" => Divergence::Exact,
            "hutchinson" => Divergence::Hutchinson { probes: self.probes, gaussian: self.gaussian_probes },
            s => return Err(Error::option("divergence", format!("expected 'exact' or 'hutchinson', got '{s}'"))),
        };
        let o = PosteriorOptions {
            solver,
            divergence,
            seed: self.seed,
            chunk_size: self.chunk_size,
            reject_outside_prior: self.reject_outside_prior,
            reflect_outside_prior: self.reflect_outside_prior,
            normalize_to_prior: self.normalize_to_prior,
            max_seconds: self.max_seconds,
        };
        o.validate()?;
        Ok(o)
    }
}

/// A trained model on a device.
#[pyclass(frozen, module = "fmpe._fmpe")]
pub struct Flow {
    model: Model,
    on_gpu: GpuModel,
    posts: Mutex<Vec<(Vec<u64>, Arc<Posterior>)>>,
}

impl Flow {
    /// Uploads `model` to `device`.
    pub fn new(device: &Device, model: Model) -> fmpe::Result<Flow> {
        let on_gpu = GpuModel::new(device.gpu.clone(), &model)?;
        Ok(Flow { model, on_gpu, posts: Mutex::new(Vec::new()) })
    }

    /// The posterior for `x` (checked by the library), from the cache or new.
    fn posterior(&self, x: &[f64]) -> fmpe::Result<Arc<Posterior>> {
        let key: Vec<u64> = x.iter().map(|v| v.to_bits()).collect();
        let mut posts = self.posts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, p)) = posts.iter().find(|(k, _)| *k == key) {
            return Ok(p.clone());
        }
        let p = Arc::new(self.on_gpu.posterior(x)?);
        posts.push((key, p.clone()));
        if posts.len() > CACHED_POSTERIORS {
            posts.remove(0);
        }
        Ok(p)
    }
}

/// `values` `[n, d]` as a numpy array.
fn matrix<'py>(py: Python<'py>, values: Vec<f64>, d: usize) -> PyResult<Bound<'py, PyAny>> {
    let n = values.len() / d.max(1);
    Ok(PyArray1::from_vec(py, values).reshape([n, d])?.into_any())
}

/// A C-contiguous float64 array as a slice, or a `DataError` naming it.
pub fn slice_of<'a>(a: &'a PyReadonlyArray2<'_, f64>, name: &str) -> PyResult<&'a [f64]> {
    a.as_slice().map_err(|_| array_error(name, None, None, &format!("{name} must be C-contiguous float64")))
}

#[pymethods]
impl Flow {
    /// Reads the model directory `path` (as the CLI writes it) onto `device`.
    #[staticmethod]
    fn load(py: Python<'_>, device: &Device, path: PathBuf) -> PyResult<Flow> {
        py.detach(|| Model::load(&path).and_then(|m| Flow::new(device, m))).py_err()
    }

    /// Writes the model directory `path` atomically (refusing a path that exists and is
    /// not a model directory or an empty one).
    fn save(&self, py: Python<'_>, path: PathBuf) -> PyResult<()> {
        py.detach(|| self.model.save(&path)).py_err()
    }

    /// `model.json`'s content.
    fn info_json(&self) -> PyResult<String> {
        serde_json::to_string(&self.model.info).map_err(|e| Error::invalid(e.to_string())).py_err()
    }

    #[getter]
    fn dim_theta(&self) -> usize {
        self.model.dim_theta()
    }

    #[getter]
    fn dim_x(&self) -> usize {
        self.model.dim_x()
    }

    /// The box prior `(low, high)` samples are rejected against, if any.
    #[getter]
    fn prior_box(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        self.model.info.prior.as_ref().map(|b| (b.low.clone(), b.high.clone()))
    }

    /// Draws `n` samples for the observation `x`: `(samples [n, d], log_prob [n] or
    /// None, report dict)`.
    fn sample<'py>(
        &self,
        py: Python<'py>,
        x: Vec<f64>,
        n: usize,
        opts: Opts,
        with_log_prob: bool,
    ) -> PyResult<Drawn<'py>> {
        let o = opts.options().py_err()?;
        let s = py
            .detach(|| {
                let p = self.posterior(&x)?;
                if with_log_prob { p.sample_and_log_prob(n, &o) } else { p.sample(n, &o) }
            })
            .py_err()?;
        let d = s.dim();
        let (values, lp, rep) = s.into_parts();
        let report = PyDict::new(py);
        report.set_item("returned", rep.returned)?;
        report.set_item("proposed", rep.proposed)?;
        report.set_item("acceptance_rate", rep.acceptance_rate)?;
        report.set_item("mean_steps", rep.mean_steps)?;
        report.set_item("mean_rejected_steps", rep.mean_rejected_steps)?;
        report.set_item("seconds", rep.seconds)?;
        let lp = lp.map(|l| PyArray1::from_vec(py, l).into_any());
        Ok((matrix(py, values, d)?, lp, report))
    }

    /// `n` samples for each row of `xs [m, dim_x]`, with the same options (and seed) for
    /// each: `[m, n, d]`, from one amortized solve over all observations' rows, equal
    /// bit for bit to `m` separate `sample` calls.
    fn sample_batched<'py>(&self, py: Python<'py>, xs: PyReadonlyArray2<'py, f64>, n: usize, opts: Opts) -> PyResult<Bound<'py, PyAny>> {
        let o = opts.options().py_err()?;
        let xs = slice_of(&xs, "x")?.to_vec();
        let (dx, d) = (self.model.dim_x(), self.model.dim_theta());
        let m = xs.len() / dx.max(1);
        let values = py
            .detach(|| {
                let mut all: Vec<f64> = Vec::with_capacity(m * n * d);
                for s in self.on_gpu.sample_batched(&xs, n, &o)? {
                    all.extend_from_slice(s.as_slice());
                }
                Ok::<_, Error>(all)
            })
            .py_err()?;
        Ok(PyArray1::from_vec(py, values).reshape([m, n, d])?.into_any())
    }

    /// log q(θ | x) of each row of `theta [n, d]`: `[n]`.
    fn log_prob<'py>(&self, py: Python<'py>, x: Vec<f64>, theta: PyReadonlyArray2<'py, f64>, opts: Opts) -> PyResult<Bound<'py, PyAny>> {
        let o = opts.options().py_err()?;
        let theta = slice_of(&theta, "theta")?.to_vec();
        let lp = py.detach(|| self.posterior(&x)?.log_prob(&theta, &o)).py_err()?;
        Ok(PyArray1::from_vec(py, lp).into_any())
    }
}
