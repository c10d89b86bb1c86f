//! `fmpe train`: an FMPE model from θ / x files.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{drop_nonfinite_rows, read_matrix, Matrix, OutputLock};
use fmpe::model::Model;
use fmpe::tasks::task_by_name;
use fmpe::train::{Checkpoint, Control, CHECKPOINT_FILE};
use fmpe::transform::{ThetaTransform, XTransform};
use serde::Serialize;

use super::args::{NetTrainArgs, TransformArgs};
use super::pipeline::{self, task_box, user_box, Job, Source};
use super::progress::EpochBar;
use super::util::{check_model_out, open_gpu};

/// `fmpe train`'s flags. Serialised (flag names in snake_case) into the effective
/// `config.toml` of the model directory, which `--config` (or `--resume`) reads back.
#[derive(Args, Debug, Serialize)]
pub(crate) struct TrainArgs {
    /// θ file `[n, dim_theta]` (.npy or .csv).
    #[arg(long)]
    theta: PathBuf,
    /// x file `[n, dim_x]` (.npy or .csv); rows with NaN/inf are dropped with their θ.
    #[arg(long)]
    x: PathBuf,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
    /// Benchmark task the data comes from (checks dimensions, stores names and prior).
    #[arg(long)]
    task: Option<String>,
    /// Seed of the split, shuffling, path noise and initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Lower bounds of a box prior, comma-separated, one per θ component.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    prior_low: Option<Vec<f64>>,
    /// Upper bounds of a box prior, comma-separated, one per θ component.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    prior_high: Option<Vec<f64>>,
    /// Write the model so far (best weights) and a checkpoint into --out every N epochs.
    #[arg(long)]
    checkpoint_every: Option<usize>,
    /// Write the model so far and a checkpoint into --out at the first epoch end after
    /// this many seconds since the last one.
    #[arg(long)]
    checkpoint_seconds: Option<f64>,
    /// Continue the run checkpointed in this model directory (its config.toml gives the
    /// flags; flags given here override them, e.g. a larger --max-epochs).
    #[arg(long)]
    #[serde(skip)]
    resume: Option<PathBuf>,
    #[command(flatten)]
    #[serde(flatten)]
    transform: TransformArgs,
    #[command(flatten)]
    #[serde(flatten)]
    net: NetTrainArgs,
}

/// `fmpe train --json`: what was trained and where it went.
#[derive(Serialize, Debug)]
pub(crate) struct TrainReport {
    /// The model directory written.
    model_dir: PathBuf,
    /// Training and validation rows.
    n_train: usize,
    n_val: usize,
    /// Epochs completed and the 1-based epoch whose weights were kept.
    epochs: usize,
    best_epoch: usize,
    /// The kept epoch's losses (`null` without validation rows / before any epoch).
    best_val_loss: Option<f64>,
    best_train_loss: Option<f64>,
    /// Wall-clock seconds of this invocation.
    seconds: f64,
    /// Divergence rollbacks over the run.
    rollbacks: usize,
    /// The signal (2 SIGINT, 15 SIGTERM) that stopped training early, if any; the
    /// process then exits with 128 + that number.
    interrupted_by: Option<i32>,
    /// The checkpoint written into the model directory, if any.
    checkpoint: Option<PathBuf>,
    /// Epochs already done in the checkpoint resumed from (`--resume`).
    resumed_at_epoch: Option<usize>,
}

/// Reads and checks the data of `a`: θ, x (rows with non-finite x dropped) and the job.
fn load_job(a: &TrainArgs) -> Result<(Job, Matrix, Matrix)> {
    let task = a.task.as_deref().map(task_by_name).transpose()?;
    let theta = read_matrix(&a.theta)?;
    let x = read_matrix(&a.x)?;
    if let Some(t) = &task {
        for (m, p, want, what) in [(&theta, &a.theta, t.dim_theta(), "dim_theta"), (&x, &a.x, t.dim_x(), "dim_x")] {
            if m.cols != want {
                return Err(Error::data(
                    p,
                    None,
                    None,
                    format!("has {} columns, but task {} has {what} = {want}", m.cols, t.name()),
                ));
            }
        }
    }
    let prior = match user_box(&a.prior_low, &a.prior_high, theta.cols)? {
        Some(b) => Some(b),
        None => task.as_deref().and_then(task_box),
    };
    let source = Source { task: task.as_deref(), prior, theta_names: theta.header.clone(), x_names: x.header.clone(), dropped: 0 };
    let mut job = Job::new(source, &a.transform, &a.net, a.seed, (theta.cols, x.cols), theta.rows)?;
    check_theta_support(&job.meta.transform, &theta, &a.theta)?;
    let (theta, x, dropped) = drop_nonfinite_rows(&theta, &x, &a.theta, &a.x)?;
    if dropped > 0 {
        log::warn!("dropped {dropped} simulations whose x contains NaN or ±inf ({} left)", x.rows);
    }
    job.meta.dropped_rows = dropped;
    check_x_domain(job.meta.x_transform, &x, &a.x)?;
    Ok((job, theta, x))
}

/// The effective configuration of `a` as TOML, with absolute data paths.
fn effective_config(a: &TrainArgs) -> Result<String> {
    let abs = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_path_buf());
    let mut v = toml::Value::try_from(a).map_err(|e| Error::invalid(format!("cannot write config.toml: {e}")))?;
    if let Some(t) = v.as_table_mut() {
        for (k, p) in [("theta", &a.theta), ("x", &a.x), ("out", &a.out)] {
            t.insert(k.into(), toml::Value::String(abs(p).display().to_string()));
        }
    }
    let body = toml::to_string_pretty(&v).map_err(|e| Error::invalid(format!("cannot write config.toml: {e}")))?;
    Ok(format!("# fmpe train: the effective configuration of this model (fmpe train --config FILE repeats it;\n# fmpe train --resume DIR continues it from checkpoint.safetensors)\n{body}"))
}

/// Writes `model` (the best weights so far, complete and loadable) into `out` with its
/// config.toml and, when given, the trainer's checkpoint (checkpoint.safetensors): one
/// atomic directory swap.
fn save(model: Model, out: &Path, config: &str, ck: Option<Checkpoint>) -> Result<Model> {
    model.save_with(out, &mut |d| {
        if !model.info.history.is_empty() {
            fmpe::plot::training_curve(&model.info.history, &d.join("training_curve.png"))?;
        }
        let cpath = d.join("config.toml");
        std::fs::write(&cpath, config).map_err(|e| Error::io(&cpath, e))?;
        match &ck {
            Some(ck) => ck.save(&d.join(CHECKPOINT_FILE)),
            None => Ok(()),
        }
    })?;
    Ok(model)
}

/// SIGINT and SIGTERM set the returned stop flag (training stops at the next step
/// boundary) and record which signal came; a second one ends the process at once
/// (exit code 1).
fn stop_on_signals() -> Result<(Arc<AtomicBool>, Arc<AtomicUsize>)> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let stop = Arc::new(AtomicBool::new(false));
    let which = Arc::new(AtomicUsize::new(0));
    for sig in [SIGINT, SIGTERM] {
        let err = |e: std::io::Error| Error::invalid(format!("cannot install the handler of signal {sig}: {e}"));
        signal_hook::flag::register_conditional_shutdown(sig, 1, stop.clone()).map_err(err)?;
        signal_hook::flag::register_usize(sig, which.clone(), sig as usize).map_err(err)?;
        signal_hook::flag::register(sig, stop.clone()).map_err(err)?;
    }
    Ok((stop, which))
}

/// Runs `fmpe train`; returns the process exit code: 0, or 128 + the signal number
/// (130 SIGINT, 143 SIGTERM) when a signal stopped training (the best weights so far
/// and a checkpoint are written first).
pub(crate) fn train(a: TrainArgs) -> Result<i32> {
    let t0 = Instant::now();
    // First, so that a signal at any later point stops the run cleanly.
    let (stop, which) = stop_on_signals()?;
    let (mut job, theta, x) = load_job(&a)?;
    if !job.alternatives.is_empty() && (a.resume.is_some() || a.checkpoint_every.is_some() || a.checkpoint_seconds.is_some()) {
        // A checkpoint follows one run: the policy's first configuration, said so.
        log::info!(
            "checkpoints follow one run: training the policy's first configuration only, without the comparison by \
             held-out NLL of {} more (--select-transform off chooses it explicitly)",
            job.alternatives.len()
        );
        job.alternatives.clear();
    }
    let resume = a.resume.as_ref().map(|d| Checkpoint::load(&d.join(CHECKPOINT_FILE))).transpose()?;
    if let Some(ck) = &resume {
        // `--ema-decay auto` continues with the checkpointed run's average (or none): a
        // run checkpointed before the policy averaged keeps training as it started.
        if a.net.ema_decay.get().is_none() && job.train.ema_decay != ck.state.train.ema_decay {
            log::info!("resuming with the checkpoint's weight average (ema_decay {})", ck.state.train.ema_decay);
            job.train.ema_decay = ck.state.train.ema_decay;
        }
    }
    // Refuse an unusable --out, or one another run is writing, before training.
    check_model_out(&a.out)?;
    let _lock = OutputLock::acquire(&a.out)?;
    let config = effective_config(&a)?;
    let gpu = open_gpu()?;
    if !job.alternatives.is_empty() {
        return train_selected(&a, &gpu, job, (&theta, &x), (&stop, &which), &config, t0);
    }
    let (mut tr, sims) = pipeline::trainer(&gpu, &job, &theta.data, &x.data)?;
    if let Some(ck) = &resume {
        tr.restore(ck)?;
        log::info!("resuming after epoch {} (step {})", ck.state.epoch, ck.state.step);
    }
    tr.set_stop_flag(stop);
    let periodic = a.checkpoint_every.is_some() || a.checkpoint_seconds.is_some();
    let mut last_save = Instant::now();
    let mut bar = EpochBar::new(job.train.max_epochs);
    let mut failed = None;
    let mut rollbacks_seen = tr.rollbacks();
    let interrupted = tr.run(&mut |tr, p| {
        let ctl = bar.update(p);
        if tr.rollbacks() > rollbacks_seen {
            rollbacks_seen = tr.rollbacks();
            log::info!(
                "warning: epoch {} diverged (non-finite loss or gradient) and was rolled back and retried; the learning rate is now {:.3e} ({} rollbacks so far)",
                p.record.epoch, p.record.learning_rate, rollbacks_seen
            );
        }
        let by_epochs = a.checkpoint_every.is_some_and(|n| n > 0 && p.record.epoch.is_multiple_of(n));
        let by_time = a.checkpoint_seconds.is_some_and(|s| last_save.elapsed().as_secs_f64() >= s);
        if (by_epochs || by_time) && !p.last {
            if let Err(e) = tr.outcome().and_then(|o| tr.checkpoint().and_then(|ck| save(o.into_model(job.meta.clone()), &a.out, &config, Some(ck)))) {
                failed = Some(e);
                return Control::Stop;
            }
            last_save = Instant::now();
        }
        ctl
    })?;
    drop(bar);
    if let Some(e) = failed {
        return Err(e);
    }
    // The held-out NLL of the kept weights (not for a run stopped by a signal: it
    // should end at once).
    let mut model = tr.outcome()?.into_model(job.meta.clone());
    if !interrupted {
        model.info.held_out = pipeline::held_out(&gpu, &model, &sims, tr.validation_rows())?;
    }
    let ck = (periodic || interrupted).then(|| tr.checkpoint()).transpose()?;
    let model = save(model, &a.out, &config, ck)?;
    let signal = interrupted.then(|| which.load(Ordering::SeqCst) as i32);
    report(&a, &model, t0, tr.rollbacks(), signal, resume.map(|c| c.state.epoch), periodic || interrupted)?;
    Ok(signal.map_or(0, |s| 128 + s))
}

/// `fmpe train` when the policy trains several configurations
/// ([`Job::alternatives`]): all of them, the lowest held-out NLL kept and saved (no
/// checkpoint). A signal stops the remaining candidates after their next epoch.
fn train_selected(
    a: &TrainArgs,
    gpu: &Arc<fmpe::Gpu>,
    job: Job,
    (theta, x): (&Matrix, &Matrix),
    (stop, which): (&Arc<AtomicBool>, &Arc<AtomicUsize>),
    config: &str,
    t0: Instant,
) -> Result<i32> {
    let model = pipeline::fit_selected(gpu, job, &theta.data, &x.data, Some(stop))?;
    let interrupted = stop.load(Ordering::SeqCst);
    let model = save(model, &a.out, config, None)?;
    let signal = interrupted.then(|| which.load(Ordering::SeqCst) as i32);
    report(a, &model, t0, 0, signal, None, false)?;
    Ok(signal.map_or(0, |s| 128 + s))
}

/// Prints the summary line (stderr with --json, else stdout) and, with --json, the
/// [`TrainReport`].
fn report(a: &TrainArgs, model: &Model, t0: Instant, rollbacks: usize, signal: Option<i32>, resumed: Option<usize>, ck: bool) -> Result<()> {
    let info = &model.info;
    let best = info.best_epoch.checked_sub(1).and_then(|i| info.history.get(i));
    let best_val = best.map(|b| b.val_loss).filter(|v| v.is_finite());
    let line = match (signal, best) {
        (Some(s), _) => format!(
            "stopped by signal {s} after {} epochs; best weights so far and a checkpoint → {} (fmpe train --resume {} continues)",
            info.history.len(),
            a.out.display(),
            a.out.display()
        ),
        (None, _) => format!(
            "trained on {} simulations ({} validation) for {} epochs in {:.1} s; best epoch {} ({} {:.4}); model → {}",
            info.n_train,
            info.n_val,
            info.history.len(),
            t0.elapsed().as_secs_f64(),
            info.best_epoch,
            if best_val.is_some() { "validation loss" } else { "training loss" },
            best_val.or(best.map(|b| b.train_loss)).unwrap_or(f64::NAN),
            a.out.display()
        ),
    };
    crate::say!("{line}");
    let rep = TrainReport {
        model_dir: a.out.clone(),
        n_train: info.n_train,
        n_val: info.n_val,
        epochs: info.history.len(),
        best_epoch: info.best_epoch,
        best_val_loss: best_val,
        best_train_loss: best.map(|b| b.train_loss),
        seconds: t0.elapsed().as_secs_f64(),
        rollbacks,
        interrupted_by: signal,
        checkpoint: ck.then(|| a.out.join(CHECKPOINT_FILE)),
        resumed_at_epoch: resumed,
    };
    super::json::emit("train", rep)
}

/// Every θ row inside the parameter transform's support, or an error naming the file,
/// line and column.
fn check_theta_support(transform: &ThetaTransform, theta: &Matrix, path: &Path) -> Result<()> {
    if let Some((r, c)) = transform.first_outside(&theta.data, theta.cols) {
        let v = theta.data[r * theta.cols + c];
        let msg = format!("{}; --no-transform turns the transform off", transform.outside_message(c, v));
        return Err(Error::data(path, Some(theta.line_of_row(r)), Some(c + 1), msg));
    }
    Ok(())
}

/// Every finite x inside the x transform's domain, or an error naming the file, line and
/// column.
fn check_x_domain(x_transform: XTransform, x: &Matrix, path: &Path) -> Result<()> {
    if let Some(i) = x_transform.first_outside_domain(&x.data) {
        return Err(Error::data(
            path,
            Some(x.line_of_row(i / x.cols)),
            Some(i % x.cols + 1),
            format!("{} is outside the domain x > -1 of --x-transform {x_transform} (use --x-transform none)", x.data[i]),
        ));
    }
    Ok(())
}
