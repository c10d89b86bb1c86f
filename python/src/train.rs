//! `train`: simulations → a trained `Flow`, with the GIL released while the GPU works.

use fmpe::model::{BoxPrior, ModelMeta};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::tasks::task_by_name;
use fmpe::policy::{AutoOptions, Budget, Resolved};
use fmpe::select::fit_candidates;
use fmpe::train::{Control, Fmpe, Progress, TrainConfig};
use fmpe::transform::ThetaTransform;
use fmpe::Error;
use numpy::{PyReadonlyArray2, PyUntypedArrayMethods};
use pyo3::exceptions::PyKeyboardInterrupt;
use pyo3::prelude::*;

use crate::device::Device;
use crate::errors::{array_error, IntoPy};
use crate::flow::{slice_of, Flow};

/// What is known about the data: the prior (a box and/or a task), whether to train in
/// the prior's unbounded space, names and the count of dropped rows.
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct MetaSpec {
    task: Option<String>,
    prior_low: Option<Vec<f64>>,
    prior_high: Option<Vec<f64>>,
    transform: bool,
    theta_names: Vec<String>,
    x_names: Vec<String>,
    dropped_rows: usize,
}

/// The network: widths (one block each), conditioning, embedding widths (None: auto).
#[derive(FromPyObject)]
#[pyo3(from_item_all)]
pub struct NetSpec {
    hidden: Vec<usize>,
    conditioning: String,
    embedding: Option<Vec<usize>>,
}

/// The `ModelMeta` of `spec` for θ of `dt` components, as the CLI builds it: the box
/// given, else the task's uniform prior; logit on the box, else the task prior's
/// bijections, unless `transform` is false; the task's x transform.
fn meta(spec: MetaSpec, dt: usize) -> fmpe::Result<ModelMeta> {
    let task = spec.task.as_deref().map(task_by_name).transpose()?;
    let prior = match (spec.prior_low, spec.prior_high) {
        (Some(low), Some(high)) => Some(BoxPrior { low, high }),
        _ => task.as_ref().and_then(|t| t.prior().support_box()),
    };
    if let Some(p) = &prior {
        p.validate(dt)?;
    }
    let transform = match (spec.transform, &prior, &task) {
        (false, _, _) => ThetaTransform::identity(),
        (true, Some(b), _) => ThetaTransform::from_box(b),
        (true, None, Some(t)) => ThetaTransform::for_prior(t.prior()),
        (true, None, None) => ThetaTransform::identity(),
    };
    Ok(ModelMeta {
        theta_names: spec.theta_names,
        x_names: spec.x_names,
        task: task.as_ref().map(|t| t.name().to_string()),
        prior,
        transform,
        x_transform: task.as_ref().map(|t| t.default_x_transform()).unwrap_or_default(),
        dropped_rows: spec.dropped_rows,
    })
}

fn net(spec: NetSpec, dt: usize, dx: usize) -> fmpe::Result<NetConfig> {
    let cfg = NetConfig {
        dim_theta: dt,
        dim_x: dx,
        hidden: spec.hidden,
        conditioning: spec.conditioning.parse::<Conditioning>()?,
        embedding: spec.embedding.unwrap_or_else(|| fmpe::net::auto_embedding(dx)),
    };
    cfg.validate()?;
    Ok(cfg)
}

/// Checks θ against the transform's support and x against the x transform's domain,
/// naming the array, row and column (0-based).
fn check_support(meta: &ModelMeta, theta: &[f64], x: &[f64], dt: usize, dx: usize) -> PyResult<()> {
    if let Some((r, c)) = meta.transform.first_outside(theta, dt) {
        let msg = meta.transform.outside_message(c, theta[r * dt + c]);
        let msg = format!("theta[{r}, {c}]: {msg}; pass transform=False to train in theta itself");
        return Err(array_error("theta", Some(r), Some(c), &msg));
    }
    if let Some(i) = meta.x_transform.first_outside_domain(x) {
        let msg = format!("x[{}, {}] = {} is outside the domain of the x transform {}", i / dx, i % dx, x[i], meta.x_transform);
        return Err(array_error("x", Some(i / dx), Some(i % dx), &msg));
    }
    Ok(())
}

/// Trains on `theta [n, dt]`, `x [n, dx]` (finite, float64, C order) with the network
/// of `net_spec` and the training options of `config_json` (the budget policy's,
/// resolved by `resolve_policy`), then, as the CLI does, the policy's other candidates
/// (`fmpe::policy::AutoOptions::candidates_of`: at a small budget, without a box
/// prior's logit transform; `select_transform` None = the policy's choice, True /
/// False = compare or not; `reflect_training` None = the policy's choice, True / False
/// = that candidate trains on the reflected density at the box bounds or not), keeping
/// the lowest held-out NLL (`fmpe::select`; the model
/// records every candidate's score in `info["selection"]`). `progress(epoch,
/// train_loss, val_loss, learning_rate, seconds, best_epoch, max_epochs, last,
/// candidate)` is called after every epoch (with the GIL) and stops the candidate's
/// training when it returns True; Ctrl-C stops it too, and every later candidate after
/// its first epoch. Returns `(flow, interrupted_by_ctrl_c, data_warnings)`.
#[pyfunction]
#[allow(clippy::too_many_arguments)]
pub fn train(
    py: Python<'_>,
    device: &Device,
    theta: PyReadonlyArray2<'_, f64>,
    x: PyReadonlyArray2<'_, f64>,
    net_spec: NetSpec,
    meta_spec: MetaSpec,
    config_json: &str,
    select_transform: Option<bool>,
    reflect_training: Option<bool>,
    progress: Py<PyAny>,
) -> PyResult<(Flow, bool, Vec<String>)> {
    let (dt, dx) = (theta.shape()[1], x.shape()[1]);
    let (theta, x) = (slice_of(&theta, "theta")?.to_vec(), slice_of(&x, "x")?.to_vec());
    let tc: TrainConfig = serde_json::from_str(config_json).map_err(|e| Error::invalid(format!("training options: {e}"))).py_err()?;
    tc.validate().py_err()?;
    let meta = meta(meta_spec, dt).py_err()?;
    check_support(&meta, &theta, &x, dt, dx)?;
    let cfg = net(net_spec, dt, dx).py_err()?;
    let builder = Fmpe::new(device.gpu.clone(), cfg.clone(), meta.clone()).append_simulations(&theta, &x).py_err()?;
    let warnings = builder.warnings();
    let sims = builder.simulations();
    let budget = Budget { num_simulations: sims.rows(), dim_theta: dt, dim_x: dx };
    let auto = AutoOptions { compare_without_transform: select_transform, reflect_training, ..Default::default() };
    let candidates = auto.candidates_of(budget, Resolved { net: cfg, train: tc }, &meta.transform);
    let (mut interrupted, mut failure) = (false, None::<PyErr>);
    let model = py.detach(|| {
        fit_candidates(&device.gpu, sims, &meta, &candidates, &mut |i, p| {
            if interrupted || failure.is_some() {
                return Control::Stop;
            }
            on_epoch(p, i, &progress, &mut interrupted, &mut failure)
        })
    });
    if let Some(e) = failure {
        return Err(e);
    }
    let flow = model.and_then(|m| Flow::new(device, m)).py_err()?;
    Ok((flow, interrupted, warnings))
}

/// The per-epoch callback: takes the GIL, runs pending signal handlers (Ctrl-C →
/// stop, keeping the best weights) and calls `progress`; an exception in it stops
/// training and is raised afterwards.
fn on_epoch(p: &Progress<'_>, candidate: usize, progress: &Py<PyAny>, interrupted: &mut bool, failure: &mut Option<PyErr>) -> Control {
    Python::attach(|py| {
        let r = p.record;
        let result = py.check_signals().and_then(|_| {
            progress.call1(py, (r.epoch, r.train_loss, r.val_loss, r.learning_rate, r.seconds, p.best_epoch, p.max_epochs, p.last, candidate))
        });
        match result {
            Ok(v) if v.is_truthy(py).unwrap_or(false) => Control::Stop,
            Ok(_) => Control::Continue,
            Err(e) if e.is_instance_of::<PyKeyboardInterrupt>(py) => {
                *interrupted = true;
                Control::Stop
            }
            Err(e) => {
                *failure = Some(e);
                Control::Stop
            }
        }
    })
}
