//! The one path from data to a trained model that `train`, `run` and `evaluate` share:
//! task → prior box → parameter and x transforms → [`ModelMeta`] → [`Fmpe`] training
//! with the progress bar.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fmpe::error::{Error, Result};
use fmpe::io::{drop_nonfinite_rows, Matrix};
use fmpe::model::{Model, ModelMeta};
use fmpe::net::NetConfig;
use fmpe::prior::BoxPrior;
use fmpe::tasks::Task;
use fmpe::metrics::{held_out_nll, HeldOutNll};
use fmpe::posterior::GpuModel;
use fmpe::policy::{Configuration, Resolved};
use fmpe::train::{Control, Fmpe, Simulations, TrainConfig, Trainer};
use fmpe::transform::{ThetaTransform, XTransform};
use fmpe::Gpu;

use super::args::{NetTrainArgs, OnOff, TransformArgs};
use super::progress::EpochBar;

/// What a command knows about its data before training.
pub(crate) struct Source<'a> {
    /// The benchmark task the data comes from, if any.
    pub task: Option<&'a dyn Task>,
    /// The box prior (given by flags, else the task's uniform prior), if any.
    pub prior: Option<BoxPrior>,
    /// θ column names (a file header), else the task's.
    pub theta_names: Option<Vec<String>>,
    /// x column names (a file header), else the task's.
    pub x_names: Option<Vec<String>>,
    /// Simulations dropped before training (non-finite x).
    pub dropped: usize,
}

impl<'a> Source<'a> {
    /// The data of a benchmark task's own simulations: its prior box and names.
    pub(crate) fn task(task: &'a dyn Task, dropped: usize) -> Source<'a> {
        Source { task: Some(task), prior: task_box(task), theta_names: None, x_names: None, dropped }
    }
}

/// A training job: network, hyper-parameters and metadata (with the transforms).
#[derive(Clone)]
pub(crate) struct Job {
    pub net: NetConfig,
    pub train: TrainConfig,
    pub meta: ModelMeta,
    /// The resolved network and training options in one line, said before training.
    pub summary: String,
    /// Further configurations the budget policy trains beside `net` / `train`; the
    /// model with the lowest held-out NLL is kept ([`fmpe::select`]). Empty: one run.
    pub alternatives: Vec<Configuration>,
}

impl Job {
    /// Resolves the flags for `num_simulations` simulations (the budget given, before
    /// failed simulations are dropped) of `dim_theta` × `dim_x`: the network and the
    /// hyper-parameters (explicit flags, else the budget policy; seeded with `seed`),
    /// the parameter transform (logit on the prior box, or the task prior's, unless
    /// `--no-transform`) and the x transform.
    pub(crate) fn new(
        src: Source<'_>,
        targs: &TransformArgs,
        nargs: &NetTrainArgs,
        seed: u64,
        dims: (usize, usize),
        num_simulations: usize,
    ) -> Result<Job> {
        let (dt, dx) = dims;
        let transform = targs.transform(src.prior.as_ref(), src.task);
        transform.validate(dt)?;
        let x_transform = targs.x_transform(src.task)?;
        let names = |given: Option<Vec<String>>, of_task: fn(&dyn Task) -> Vec<String>| {
            given.or_else(|| src.task.map(of_task)).unwrap_or_default()
        };
        let meta = ModelMeta {
            theta_names: names(src.theta_names, |t| t.theta_names()),
            x_names: names(src.x_names, |t| t.x_names()),
            task: src.task.map(|t| t.name().to_string()),
            prior: src.prior,
            transform,
            x_transform,
            dropped_rows: src.dropped,
        };
        let mut candidates = nargs.candidates(num_simulations, (dt, dx), seed, &meta.transform)?;
        if nargs.reflect_training.get() == Some(OnOff::On) && candidates.iter().all(|c| c.resolved.train.reflect.is_none()) {
            log::warn!(
                "--reflect-training on: nothing trains on the reflected density here; it applies to the candidate \
                 trained without a box prior's logit, which needs a box prior, the transform and --select-transform"
            );
        }
        let first = candidates.remove(0);
        let resolved = first.resolved;
        let mut summary = resolved.summary();
        if !candidates.is_empty() {
            summary += "; selection: also trains without the parameter transform and keeps the lower held-out NLL \
                        (--select-transform off trains one)";
        }
        Ok(Job { net: resolved.net, train: resolved.train, meta, summary, alternatives: candidates })
    }
}

/// Trains `job` on `theta [n, dim_theta]` and `x [n, dim_x]` (finite, x not yet
/// transformed), saying which transforms are used, printing data warnings, and drawing
/// the progress bar.
/// The model keeps the best weights and, with `with_held_out`, their held-out negative
/// log-likelihood ([`held_out`]).
/// With [`Job::alternatives`] every configuration is trained and the one with the
/// lowest held-out NLL kept (it then always has its held-out NLL).
pub(crate) fn fit(gpu: &Arc<Gpu>, job: Job, theta: &[f64], x: &[f64], with_held_out: bool) -> Result<Model> {
    if !job.alternatives.is_empty() {
        return fit_selected(gpu, job, theta, x, None);
    }
    let (mut tr, sims) = trainer(gpu, &job, theta, x)?;
    let mut bar = EpochBar::new(job.train.max_epochs);
    tr.run(&mut |_, p| bar.update(p))?;
    drop(bar);
    let rows = tr.validation_rows().to_vec();
    let mut model = tr.finish()?.into_model(job.meta);
    if with_held_out {
        model.info.held_out = held_out(gpu, &model, &sims, &rows)?;
    }
    Ok(model)
}

/// Trains `job`'s configuration and its alternatives one after another (a progress
/// bar each) and keeps the lowest held-out NLL, saying every score and the choice.
/// When `stop` is set (a signal), each remaining candidate stops after its next epoch.
pub(crate) fn fit_selected(gpu: &Arc<Gpu>, job: Job, theta: &[f64], x: &[f64], stop: Option<&AtomicBool>) -> Result<Model> {
    let sims = simulations(gpu, &job, theta, x)?;
    let first = Resolved { net: job.net.clone(), train: job.train.clone() };
    let mut candidates = vec![Configuration { resolved: first, transform: job.meta.transform.clone() }];
    candidates.extend(job.alternatives.iter().cloned());
    let n = candidates.len();
    let mut bar: Option<(usize, EpochBar)> = None;
    let model = fmpe::select::fit_candidates(gpu, &sims, &job.meta, &candidates, &mut |i, p| {
        if bar.as_ref().is_none_or(|(j, _)| *j != i) {
            bar = None;
            let c = &candidates[i];
            let t = if c.transform.is_identity() { "without" } else { "with" };
            log::info!("candidate {}/{n} ({t} the parameter transform): {}", i + 1, c.resolved.summary());
            bar = Some((i, EpochBar::new(c.resolved.train.max_epochs)));
        }
        let ctl = bar.as_mut().map_or(Control::Continue, |(_, b)| b.update(p));
        if stop.is_some_and(|s| s.load(Ordering::SeqCst)) {
            return Control::Stop;
        }
        ctl
    })?;
    drop(bar);
    if let Some(sel) = &model.info.selection {
        for (i, c) in sel.candidates.iter().enumerate() {
            let score = match (c.held_out_nll, &c.error) {
                (Some(v), _) => match c.log_prior_mass {
                    Some(lm) => {
                        let low = c.low_mass_share.map_or(String::new(), |s| {
                            format!("; under {:.0} % of the mass inside the box on {:.1} % of the held-out observations", 100.0 * fmpe::metrics::LOW_MASS, 100.0 * s)
                        });
                        format!("held-out NLL {v:.4} nats as sampled (rejected to the prior box: {:.4} + log prior mass {lm:.4}{low})", v - lm)
                    }
                    None if c.reflect_training => {
                        format!("held-out NLL {v:.4} nats as sampled (trained on the reflected density, folded into the prior box; at most)")
                    }
                    None => format!("held-out NLL {v:.4} nats"),
                },
                (None, Some(e)) => format!("held-out NLL not computed ({e})"),
                (None, None) => "held-out NLL not computed".to_string(),
            };
            log::info!(
                "candidate {}/{n} ({} × {}, {}): {score}, best epoch {} of {}, {:.1} s{}",
                i + 1,
                c.hidden.len(),
                c.hidden.first().copied().unwrap_or(0),
                if c.transform.is_identity() { "no parameter transform" } else { "parameter transform" },
                c.best_epoch,
                c.epochs,
                c.seconds,
                if i == sel.chosen { " — kept" } else { "" }
            );
        }
        if let Some(r) = &sel.reflection {
            log::info!(
                "samples outside the prior box: {} by default (held-out NLL on {} pairs: reflected at most {:.4} nats, rejected {:.4}, difference {:+.4} ± {:.4}; --reflect / --no-reflect override)",
                if model.info.train.reflect.is_some() {
                    "reflected into it (trained on the reflected density)"
                } else if r.reflect {
                    "reflected into it"
                } else {
                    "rejected"
                },
                r.pairs,
                r.reflected_nll,
                r.rejected_nll,
                r.reflected_nll - r.rejected_nll,
                r.difference_se
            );
        }
    }
    Ok(model)
}

/// The held-out negative log-likelihood of `model` on the validation `rows` of `sims`
/// (None without validation rows), said on stderr with its time. A metric that fails
/// (a dopri5 step cap on a badly trained flow, say) is a warning, never the loss of the
/// trained model: None.
pub(crate) fn held_out(gpu: &Arc<Gpu>, model: &Model, sims: &Simulations, rows: &[usize]) -> Result<Option<HeldOutNll>> {
    if rows.is_empty() {
        return Ok(None);
    }
    let t0 = std::time::Instant::now();
    let h = match GpuModel::new(gpu.clone(), model).and_then(|m| held_out_nll(&m, sims.theta(), sims.x(), rows)) {
        Ok(h) => h,
        Err(e) => {
            log::warn!("warning: the held-out NLL could not be computed ({e}); the model is kept without it");
            return Ok(None);
        }
    };
    log::info!(
        "held-out NLL {:.4} nats on {} validation pairs{} ({:.1} s)",
        h.nll,
        h.pairs,
        if h.outside_support > 0 { format!(" ({} outside the transform's support, left out)", h.outside_support) } else { String::new() },
        t0.elapsed().as_secs_f64()
    );
    Ok(Some(h))
}

/// The trainer of `job` on `theta [n, dim_theta]` and `x [n, dim_x]` (finite, x not
/// yet transformed), for a command that drives the loop itself (checkpoints, signals),
/// and the simulations it trains on (x transformed): says the resolved options and
/// which transforms are used, and prints data warnings.
pub(crate) fn trainer<'g>(gpu: &'g Gpu, job: &Job, theta: &[f64], x: &[f64]) -> Result<(Trainer<'g>, Simulations)> {
    let sims = simulations(gpu, job, theta, x)?;
    let tr = Trainer::with_transform(gpu, job.net.clone(), job.train.clone(), sims.theta(), sims.x(), None, &job.meta.transform)?;
    Ok((tr, sims))
}

/// The simulations `job` trains on (x transformed): says the resolved options and
/// which transforms are used, checks the metadata, and prints data warnings.
fn simulations(gpu: &Gpu, job: &Job, theta: &[f64], x: &[f64]) -> Result<Simulations> {
    log::info!("{}", job.summary);
    announce_transform(&job.meta.transform);
    announce_x_transform(job.meta.x_transform);
    job.meta.validate(job.net.dim_theta)?;
    let fmpe = Fmpe::new(gpu, job.net.clone(), job.meta.clone()).append_simulations(theta, x)?;
    for w in fmpe.warnings() {
        log::warn!("{w}");
    }
    Ok(fmpe.simulations().clone())
}

/// Simulates `n` pairs of `task` with `seed` and drops the failed ones (non-finite x),
/// saying so on stderr: returns θ `[m, dim_theta]`, x `[m, dim_x]` and the count dropped.
pub(crate) fn simulate_finite(task: &dyn Task, n: usize, seed: u64) -> Result<(Matrix, Matrix, usize)> {
    let (theta, x) = fmpe::tasks::simulate_dataset(task, n, seed);
    let (theta, x, dropped) = drop_nonfinite_rows(
        &Matrix::new(n, task.dim_theta(), theta),
        &Matrix::new(n, task.dim_x(), x),
        Path::new("(simulated theta)"),
        Path::new("(simulated x)"),
    )?;
    if dropped > 0 {
        log::warn!("dropped {dropped} failed simulations (non-finite x)");
    }
    Ok((theta, x, dropped))
}

/// Says on stderr which x transform training uses (nothing for none).
fn announce_x_transform(t: XTransform) {
    if !t.is_identity() {
        log::info!("x transform (applied before z-scoring, and to observations; --x-transform none to turn off): {t}");
    }
}

/// Says on stderr which parameter transform training uses.
fn announce_transform(t: &ThetaTransform) {
    if !t.is_identity() {
        log::info!("parameter transform (training space θ' = T(θ); --no-transform to turn off): {t}");
    }
}

/// The box prior of a task (uniform priors only).
pub(crate) fn task_box(task: &dyn Task) -> Option<BoxPrior> {
    task.prior().support_box()
}

/// The box prior of `--prior-low` / `--prior-high` for θ of `dim` components.
pub(crate) fn user_box(low: &Option<Vec<f64>>, high: &Option<Vec<f64>>, dim: usize) -> Result<Option<BoxPrior>> {
    match (low, high) {
        (None, None) => Ok(None),
        (Some(l), Some(h)) => {
            let b = BoxPrior { low: l.clone(), high: h.clone() };
            b.validate(dim)?;
            Ok(Some(b))
        }
        _ => Err(Error::usage("--prior-low and --prior-high must be given together")),
    }
}
