//! [`Trainer`]: one training run on the GPU (step, epoch end, early stopping, the
//! learning-rate schedule), its per-epoch progress callback ([`Progress`] →
//! [`Control`]) and its [`TrainOutcome`].

use std::time::Instant;

use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{Program, StepState};
use crate::model::{Model, ModelInfo, ModelMeta, FORMAT_VERSION};
use crate::net::{NetConfig, ParamLayout};
use crate::train_config::{EpochRecord, LrSchedule, TrainConfig};
use crate::transform::ThetaTransform;

use super::dataset::{check_rows, constant_column_warnings, shuffled_upload, Split, ZscoreStats};
use super::programs::{self, Buffers, Workspace};

/// What a progress callback tells training to do after an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Control {
    /// Go on (until early stopping, `max_epochs` or `max_seconds`).
    #[default]
    Continue,
    /// Stop now; the best weights so far are kept (as with early stopping).
    Stop,
}

/// What a progress callback sees after each epoch.
#[derive(Clone, Copy, Debug)]
pub struct Progress<'a> {
    /// The epoch's record (losses, learning rate, seconds since training started).
    pub record: &'a EpochRecord,
    /// The 1-based epoch whose weights are the best so far.
    pub best_epoch: usize,
    /// The configured upper bound on epochs.
    pub max_epochs: usize,
    /// True when training stops after this epoch by itself (early stopping,
    /// `max_epochs` or `max_seconds`).
    pub last: bool,
}

/// What training produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// Best parameters `[layout.len]`.
    pub params: Vec<f32>,
    /// z-score statistics of the training rows (θ' = T(θ) with a transform).
    pub stats: ZscoreStats,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// Epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Training rows.
    pub n_train: usize,
    /// Validation rows.
    pub n_val: usize,
    /// The parameter transform θ' = T(θ) the statistics and the network live in (one
    /// bijection per component); [`TrainOutcome::into_model`] stores it in the model.
    pub transform: ThetaTransform,
    /// The network trained.
    pub net: NetConfig,
    /// The hyper-parameters used.
    pub train: TrainConfig,
}

impl TrainOutcome {
    /// The trained [`Model`]: weights, statistics and history from this outcome, names,
    /// task, prior, x transform and dropped-row count from `meta` (names of the wrong
    /// length fall back to `theta_1..` / `x_1..`). The parameter transform is the
    /// outcome's (expanded to one bijection per component), not `meta.transform`.
    pub fn into_model(self, meta: ModelMeta) -> Model {
        let (dt, dx) = (self.net.dim_theta, self.net.dim_x);
        let info = ModelInfo {
            format_version: FORMAT_VERSION,
            theta_names: meta.theta_names_or_default(dt),
            x_names: meta.x_names_or_default(dx),
            sigma_min: self.train.sigma_min,
            time_prior_exponent: self.train.time_prior_exponent,
            net: self.net,
            task: meta.task,
            prior: meta.prior,
            transform: self.transform,
            x_transform: meta.x_transform,
            train: self.train,
            n_train: self.n_train,
            n_val: self.n_val,
            dropped_rows: meta.dropped_rows,
            best_epoch: self.best_epoch,
            history: self.history,
        };
        let s = self.stats;
        Model {
            info,
            params: self.params,
            theta_mean: s.theta_mean,
            theta_std: s.theta_std,
            x_mean: s.x_mean,
            x_std: s.x_std,
        }
    }
}

/// A training run on the GPU. Use [`Trainer::fit`] for the whole loop, or
/// [`Trainer::step`] / [`Trainer::end_epoch`] to drive it yourself.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    cfg: NetConfig,
    tc: TrainConfig,
    layout: ParamLayout,
    split: Split,
    bufs: Buffers,
    ws: Workspace,
    step_prog: Program,
    val_prog: Option<Program>,
    stats: ZscoreStats,
    transform: ThetaTransform,
    warnings: Vec<String>,
    step: u64,
    epoch: usize,
    step_in_epoch: usize,
    lr: f64,
    pending_best_copy: bool,
    best_loss: f64,
    best_epoch: usize,
    since_best: usize,
    since_lr: usize,
    history: Vec<EpochRecord>,
    started: Instant,
}

impl<'g> Trainer<'g> {
    /// Uploads the data and builds the training programs.
    ///
    /// `theta` is `[n, dim_theta]`, `x` is `[n, dim_x]` (row-major, finite; use
    /// [`crate::io::drop_nonfinite_rows`] first; x already mapped by any x transform,
    /// see [`Simulations`](super::Simulations)). Rows are shuffled once with the seed; the last
    /// `validation_fraction` of them are held out. The initial parameters are `init`
    /// (e.g. [`crate::net::init_params`]) or drawn from the seed.
    ///
    /// # Errors
    /// [`Error::Invalid`] for inconsistent shapes or data, [`Error::InvalidOption`] for
    /// an invalid configuration, [`Error::Gpu`] if the data does not fit the device's
    /// buffer limits.
    pub fn new(
        gpu: &'g Gpu,
        cfg: NetConfig,
        tc: TrainConfig,
        theta: &[f64],
        x: &[f64],
        init: Option<Vec<f32>>,
    ) -> Result<Trainer<'g>> {
        Trainer::with_transform(gpu, cfg, tc, theta, x, init, &ThetaTransform::identity())
    }

    /// As [`Trainer::new`], training in θ' = T(θ) space: after the upload, `transform`
    /// maps θ on the GPU (`theta_transform` kernel) before the z-score statistics, so
    /// [`Trainer::zscore_stats`] are those of θ'. Values on a logit bound are clamped
    /// just inside it (see [`crate::transform`]).
    ///
    /// # Errors
    /// As [`Trainer::new`]; [`Error::Invalid`] naming the (1-based input) row when a θ
    /// value lies outside the transform's support (outside a logit's box, at or below
    /// a log's bound); [`Error::InvalidOption`] `"transform"` when the transform does
    /// not fit dim_theta.
    #[allow(clippy::too_many_arguments)]
    pub fn with_transform(
        gpu: &'g Gpu,
        cfg: NetConfig,
        tc: TrainConfig,
        theta: &[f64],
        x: &[f64],
        init: Option<Vec<f32>>,
        transform: &ThetaTransform,
    ) -> Result<Trainer<'g>> {
        cfg.validate()?;
        tc.validate()?;
        let n = check_rows(&cfg, theta, x)?;
        check_support(transform, theta, cfg.dim_theta)?;
        let split = Split::new(gpu, &cfg, &tc, n)?;
        let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
        // Shuffle once, then draw the initial parameters from the same generator.
        let mut rng = rand::rngs::StdRng::seed_from_u64(tc.seed);
        let data = shuffled_upload(theta, x, dt, dx, &mut rng);
        let layout = cfg.layout();
        let params0 = match init {
            Some(p) if p.len() == layout.len => p,
            Some(p) => {
                return Err(Error::invalid(format!(
                    "initial parameters have {} values, the network needs {}",
                    p.len(),
                    layout.len
                )))
            }
            None => crate::net::init_params(&cfg, &mut rng),
        };
        let ws = Workspace::new(gpu, &cfg, &layout, &split)?;
        let bufs = Buffers::new(gpu, &data, &params0, &ws);
        let stats = programs::prepare(gpu, &cfg, &bufs, &ws, &split, transform)?;
        let warnings = constant_column_warnings(theta, x, dt, dx);
        let step_prog = programs::record_step(gpu, &cfg, &tc, &layout, &ws, &split, bufs.bindings())?;
        let val_prog = programs::record_validation(gpu, &cfg, &tc, &layout, &ws, &split, bufs.bindings())?;
        Ok(Trainer {
            transform: ThetaTransform::new(transform.resolved(dt)),
            gpu,
            lr: tc.learning_rate,
            cfg,
            tc,
            layout,
            split,
            bufs,
            ws,
            step_prog,
            val_prog,
            stats,
            warnings,
            step: 0,
            epoch: 0,
            step_in_epoch: 0,
            pending_best_copy: false,
            best_loss: f64::INFINITY,
            best_epoch: 0,
            since_best: 0,
            since_lr: 0,
            history: Vec::new(),
            started: Instant::now(),
        })
    }

    /// Minibatch size actually used.
    pub fn batch_size(&self) -> usize {
        self.split.batch
    }

    /// Optimiser steps per epoch (`n_train / batch`, the last partial batch dropped).
    pub fn steps_per_epoch(&self) -> usize {
        self.split.steps_per_epoch
    }

    /// Steps already taken in the current epoch.
    pub fn steps_done_in_epoch(&self) -> usize {
        self.step_in_epoch
    }

    /// Dispatches recorded per training step.
    pub fn dispatches_per_step(&self) -> usize {
        self.step_prog.dispatches()
    }

    /// Training and validation rows.
    pub fn split(&self) -> (usize, usize) {
        (self.split.n_train, self.split.n_val)
    }

    /// Runs one optimiser step: one command buffer, one submission, no readback.
    ///
    /// # Errors
    /// GPU errors as [`Error::Gpu`] / [`Error::DeviceLost`].
    pub fn step(&mut self) -> Result<()> {
        if self.step_in_epoch == self.split.steps_per_epoch {
            return Err(Error::invalid("the epoch is complete: call end_epoch first"));
        }
        self.step += 1;
        let t = self.step as i32;
        let st = StepState {
            step: self.step as u32,
            epoch: self.epoch as u32,
            step_in_epoch: self.step_in_epoch as u32,
            pad0: 0,
            lr: self.lr as f32,
            bias_corr1: (1.0 - self.tc.beta1.powi(t)) as f32,
            bias_corr2: (1.0 - self.tc.beta2.powi(t)) as f32,
            pad1: 0.0,
        };
        self.gpu.queue.write_buffer(&self.bufs.step, 0, bytemuck::bytes_of(&st));
        let mut enc = self.gpu.encoder();
        if self.pending_best_copy {
            enc.copy_buffer_to_buffer(&self.bufs.params, 0, &self.bufs.best, 0, self.layout.len as u64 * 4);
            self.pending_best_copy = false;
        }
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            self.step_prog.record(self.gpu, &mut pass)?;
        }
        self.gpu.submit(enc)?;
        self.step_in_epoch += 1;
        Ok(())
    }

    /// Runs the validation pass, reads the epoch's losses (one submission, one
    /// readback), and updates early stopping and the learning-rate schedule.
    /// Returns the epoch's record and whether training should stop.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the training loss is not finite (diverged), GPU errors.
    pub fn end_epoch(&mut self) -> Result<(EpochRecord, bool)> {
        let (train_loss, val_loss) = self.read_epoch_losses()?;
        if !train_loss.is_finite() {
            return Err(Error::invalid(format!(
                "training diverged: the loss is {train_loss} in epoch {}; try a smaller learning rate",
                self.epoch + 1
            )));
        }
        self.epoch += 1;
        self.step_in_epoch = 0;
        let rec = EpochRecord {
            epoch: self.epoch,
            train_loss,
            val_loss,
            learning_rate: self.lr,
            seconds: self.started.elapsed().as_secs_f64(),
        };
        self.history.push(rec.clone());
        let watched = if self.split.n_val > 0 { val_loss } else { train_loss };
        self.update_schedule(watched, rec.seconds);
        let out_of_time = self.tc.max_seconds.is_some_and(|s| rec.seconds >= s);
        let stop = self.since_best >= self.tc.patience || self.epoch >= self.tc.max_epochs || out_of_time;
        Ok((rec, stop))
    }

    /// Runs validation and reads the loss slots (one submission, one readback): returns
    /// the epoch's mean training and validation losses (NaN without validation rows).
    fn read_epoch_losses(&mut self) -> Result<(f64, f64)> {
        let mut enc = self.gpu.encoder();
        if let Some(vp) = &self.val_prog {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            vp.record(self.gpu, &mut pass)?;
        }
        let spe = self.split.steps_per_epoch;
        let slots = spe + self.split.val_chunks();
        let staging = self.gpu.copy_to_staging(&mut enc, &self.bufs.acts, self.ws.loss_off as u64, slots);
        self.gpu.submit(enc)?;
        let l = self.gpu.map_staging(staging, slots)?;
        let dt = self.cfg.dim_theta as f64;
        let done = self.step_in_epoch;
        let train_loss = l[..done].iter().map(|&v| v as f64).sum::<f64>() / (done as f64 * self.split.batch as f64 * dt);
        let val_loss = if self.split.n_val > 0 {
            l[spe..].iter().map(|&v| v as f64).sum::<f64>() / (self.split.n_val as f64 * dt)
        } else {
            f64::NAN
        };
        Ok((train_loss, val_loss))
    }

    /// Early-stopping bookkeeping and the learning-rate schedule after an epoch whose
    /// watched loss is `watched`, `seconds` into training.
    fn update_schedule(&mut self, watched: f64, seconds: f64) {
        if watched < self.best_loss * (1.0 - 1e-4) || self.best_epoch == 0 {
            self.best_loss = watched.min(self.best_loss);
            self.best_epoch = self.epoch;
            self.since_best = 0;
            self.since_lr = 0;
            self.pending_best_copy = true;
        } else {
            self.since_best += 1;
            self.since_lr += 1;
            if self.tc.lr_schedule == LrSchedule::Plateau && self.since_lr >= self.tc.lr_patience && self.lr > self.tc.min_lr {
                self.lr = (self.lr * self.tc.lr_factor).max(self.tc.min_lr);
                self.since_lr = 0;
            }
        }
        if self.tc.lr_schedule == LrSchedule::Cosine {
            let mut progress = self.epoch as f64 / self.tc.max_epochs as f64;
            if let Some(s) = self.tc.max_seconds {
                progress = progress.max(seconds / s);
            }
            let c = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
            self.lr = self.tc.min_lr + (self.tc.learning_rate - self.tc.min_lr) * c;
        }
    }

    /// Trains until early stopping, `max_epochs` or `max_seconds`, then restores the
    /// best weights and reads them back (one readback).
    ///
    /// # Errors
    /// As [`Trainer::step`] and [`Trainer::end_epoch`].
    pub fn fit(self) -> Result<TrainOutcome> {
        self.fit_with_progress(&mut |_| Control::Continue)
    }

    /// As [`Trainer::fit`], calling `progress` after every epoch; when it returns
    /// [`Control::Stop`] training ends there, keeping the best weights so far.
    ///
    /// # Errors
    /// As [`Trainer::fit`].
    pub fn fit_with_progress(mut self, progress: &mut dyn FnMut(&Progress<'_>) -> Control) -> Result<TrainOutcome> {
        loop {
            for _ in 0..self.split.steps_per_epoch {
                self.step()?;
            }
            let (rec, stop) = self.end_epoch()?;
            let p = Progress { record: &rec, best_epoch: self.best_epoch, max_epochs: self.tc.max_epochs, last: stop };
            if progress(&p) == Control::Stop || stop {
                break;
            }
        }
        self.finish()
    }

    /// Restores the best weights and returns the outcome (one submission + readback).
    ///
    /// # Errors
    /// GPU errors.
    pub fn finish(self) -> Result<TrainOutcome> {
        let len = self.layout.len;
        let mut enc = self.gpu.encoder();
        let src = if self.pending_best_copy { &self.bufs.params } else { &self.bufs.best };
        let staging = self.gpu.copy_to_staging(&mut enc, src, 0, len);
        self.gpu.submit(enc)?;
        let params = self.gpu.map_staging(staging, len)?;
        Ok(TrainOutcome {
            params,
            stats: self.stats,
            history: self.history,
            best_epoch: self.best_epoch,
            steps: self.step,
            n_train: self.split.n_train,
            n_val: self.split.n_val,
            transform: self.transform,
            net: self.cfg,
            train: self.tc,
        })
    }

    /// Current parameters read back from the GPU `[layout.len]` (one readback; for tests
    /// and checkpoints).
    ///
    /// # Errors
    /// GPU errors.
    pub fn read_params(&self) -> Result<Vec<f32>> {
        self.gpu.read_f32(&self.bufs.params, 0, self.layout.len)
    }

    /// Data warnings found while loading (e.g. constant columns).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// z-score statistics of the training rows, of θ' = T(θ) under the trainer's
    /// parameter transform (θ itself without one).
    pub fn zscore_stats(&self) -> &ZscoreStats {
        &self.stats
    }
}

/// Checks `transform` against `dim_theta` and that every θ row lies in its support.
fn check_support(transform: &ThetaTransform, theta: &[f64], dt: usize) -> Result<()> {
    transform.validate(dt)?;
    if let Some((r, c)) = transform.first_outside(theta, dt) {
        return Err(Error::invalid(format!("theta row {}: {}", r + 1, transform.outside_message(c, theta[r * dt + c]))));
    }
    Ok(())
}
