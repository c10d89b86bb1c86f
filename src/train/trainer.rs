//! [`Trainer`]: one training run on the GPU (step, epoch end, early stopping, the
//! learning-rate schedule), its per-epoch progress callback ([`Progress`] →
//! [`Control`]) and its [`TrainOutcome`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{Program, StepState};
use crate::model::{Model, ModelInfo, ModelMeta, FORMAT_VERSION};
use crate::prior::BoxPrior;
use crate::net::{NetConfig, ParamLayout};
use crate::train_config::{EpochRecord, LrSchedule, TrainConfig};
use crate::transform::ThetaTransform;

use super::checkpoint::{fingerprint, Checkpoint, TrainerState, CHECKPOINT_VERSION, CHECKPOINT_VERSION_PLAIN};
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

/// How an epoch ended ([`Trainer::finish_epoch`]).
#[derive(Clone, Debug, PartialEq)]
pub enum EpochEnd {
    /// The epoch completed with finite losses and no skipped step.
    Completed {
        /// The epoch's record.
        record: EpochRecord,
        /// Whether training stops here by itself (early stopping, `max_epochs`,
        /// `max_seconds`).
        stop: bool,
    },
    /// The epoch diverged and was rolled back; step through it again.
    RolledBack(Rollback),
}

/// A divergence rollback: the epoch's loss or a gradient was not finite, so the
/// parameters, the Adam moments and the step counter went back to the end of the last
/// good epoch and the learning rate was multiplied by `rollback_lr_factor`.
#[derive(Clone, Debug, PartialEq)]
pub struct Rollback {
    /// The 1-based epoch that diverged (and is retried).
    pub epoch: usize,
    /// Its mean training loss (not finite, or finite with skipped steps).
    pub train_loss: f64,
    /// Steps of the epoch whose gradient was not finite (their updates were skipped
    /// on the GPU).
    pub skipped_steps: usize,
    /// The retry this is (1-based, at most `max_rollbacks`).
    pub retry: usize,
    /// The learning rate of the retry.
    pub learning_rate: f64,
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
    /// Divergence rollbacks over the run.
    pub rollbacks: usize,
    /// True when the run was stopped by its stop flag ([`Trainer::set_stop_flag`])
    /// before it ended by itself.
    pub interrupted: bool,
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
            held_out: None,
            selection: None,
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
    validation_rows: Vec<usize>,
    bufs: Buffers,
    ws: Workspace,
    step_prog: Program,
    ema_prog: Option<Program>,
    val_prog: Option<Program>,
    stats: ZscoreStats,
    transform: ThetaTransform,
    warnings: Vec<String>,
    step: u64,
    epoch: usize,
    step_in_epoch: usize,
    lr: f64,
    pending_best_copy: bool,
    pending_good_copy: bool,
    lr_scale: f64,
    retries: usize,
    rollbacks: usize,
    stop_flag: Option<Arc<AtomicBool>>,
    seconds_before: f64,
    data_fingerprint: u64,
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
    /// a log's bound) or, when training on the reflected density
    /// ([`TrainConfig::reflect`]), outside its box; [`Error::InvalidOption`]
    /// `"transform"` when the transform does not fit dim_theta, `"reflect"` when the
    /// reflection's box does not or the transform is not the identity.
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
        check_reflection(&tc, transform, theta, cfg.dim_theta)?;
        let split = Split::new(gpu, &cfg, &tc, n)?;
        let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
        // Shuffle once, then draw the initial parameters from the same generator.
        let mut rng = rand::rngs::StdRng::seed_from_u64(tc.seed);
        let (data, order) = shuffled_upload(theta, x, dt, dx, &mut rng);
        let validation_rows = order[split.n_train..].to_vec();
        let data_fingerprint = fingerprint(&data);
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
        let bufs = Buffers::new(gpu, &data, &params0, &ws, tc.ema_decay > 0.0);
        let stats = programs::prepare(gpu, &cfg, &bufs, &ws, &split, transform)?;
        if let Some(r) = &tc.reflect {
            programs::upload_bounds(gpu, &bufs, &ws, r, &stats);
        }
        let warnings = constant_column_warnings(theta, x, dt, dx);
        let step_prog = programs::record_step(gpu, &cfg, &tc, &layout, &ws, &split, bufs.bindings())?;
        let val_prog = programs::record_validation(gpu, &cfg, &tc, &layout, &ws, &split, bufs.bindings())?;
        let ema_prog = programs::record_ema(gpu, &tc, &layout, &bufs)?;
        Ok(Trainer {
            transform: ThetaTransform::new(transform.resolved(dt)),
            gpu,
            lr: tc.learning_rate,
            cfg,
            tc,
            layout,
            split,
            validation_rows,
            bufs,
            ws,
            step_prog,
            ema_prog,
            val_prog,
            stats,
            warnings,
            step: 0,
            epoch: 0,
            step_in_epoch: 0,
            pending_best_copy: false,
            pending_good_copy: false,
            lr_scale: 1.0,
            retries: 0,
            rollbacks: 0,
            stop_flag: None,
            seconds_before: 0.0,
            data_fingerprint,
            best_loss: f64::INFINITY,
            best_epoch: 0,
            since_best: 0,
            since_lr: 0,
            history: Vec::new(),
            started: Instant::now(),
        })
    }

    /// The input rows (0-based, into the `theta` and `x` given to the constructor) held
    /// out for validation, in the order the validation pass reads them.
    pub fn validation_rows(&self) -> &[usize] {
        &self.validation_rows
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

    /// Dispatches recorded per training step (the moving average's included).
    pub fn dispatches_per_step(&self) -> usize {
        self.step_prog.dispatches() + self.ema_prog.as_ref().map_or(0, Program::dispatches)
    }

    /// Training and validation rows.
    pub fn split(&self) -> (usize, usize) {
        (self.split.n_train, self.split.n_val)
    }

    /// Runs one optimiser step (and the moving average's, with
    /// [`TrainConfig::ema_decay`]): one command buffer, one submission, no readback.
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
        let bytes = self.layout.len as u64 * 4;
        if self.pending_best_copy {
            enc.copy_buffer_to_buffer(self.bufs.kept(), 0, &self.bufs.best, 0, bytes);
            self.pending_best_copy = false;
        }
        if self.pending_good_copy {
            enc.copy_buffer_to_buffer(&self.bufs.params, 0, &self.bufs.good_params, 0, bytes);
            enc.copy_buffer_to_buffer(&self.bufs.m, 0, &self.bufs.good_m, 0, bytes + 8);
            enc.copy_buffer_to_buffer(&self.bufs.v, 0, &self.bufs.good_v, 0, bytes);
            if let Some(e) = &self.bufs.ema {
                enc.copy_buffer_to_buffer(&e.avg, 0, &e.good, 0, bytes);
            }
            self.pending_good_copy = false;
        }
        self.bufs.sync_params_tex(&mut enc);
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            self.step_prog.record(self.gpu, &mut pass)?;
            if let Some(ep) = &self.ema_prog {
                ep.record(self.gpu, &mut pass)?;
            }
        }
        self.gpu.submit(enc)?;
        self.step_in_epoch += 1;
        Ok(())
    }

    /// As [`Trainer::finish_epoch`], for callers that do not handle rollbacks: a
    /// rolled-back epoch is reported as an error (the trainer has rolled back by then;
    /// stepping on retries the epoch).
    ///
    /// # Errors
    /// As [`Trainer::finish_epoch`]; [`Error::Invalid`] for a rolled-back epoch.
    pub fn end_epoch(&mut self) -> Result<(EpochRecord, bool)> {
        match self.finish_epoch()? {
            EpochEnd::Completed { record, stop } => Ok((record, stop)),
            EpochEnd::RolledBack(r) => Err(Error::invalid(format!(
                "epoch {} diverged (training loss {}) and was rolled back; the learning rate is now {:.3e}",
                r.epoch, r.train_loss, r.learning_rate
            ))),
        }
    }

    /// Runs the validation pass, reads the epoch's losses and its count of skipped
    /// steps (one submission, one readback), and updates early stopping and the
    /// learning-rate schedule.
    ///
    /// An epoch whose training or validation loss is not finite, or with a step whose
    /// gradient was not finite (the GPU skipped that update), diverged: the trainer
    /// rolls back to the end of the last good epoch (parameters, Adam moments, the
    /// weights' moving average, step counter), multiplies the learning rate by `rollback_lr_factor` and returns
    /// [`EpochEnd::RolledBack`]; step through the epoch again.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the epoch when it diverged more than `max_rollbacks`
    /// times in a row; GPU errors.
    pub fn finish_epoch(&mut self) -> Result<EpochEnd> {
        let (train_loss, val_loss, skipped) = self.read_epoch_losses()?;
        let val_bad = self.split.n_val > 0 && !val_loss.is_finite();
        if !train_loss.is_finite() || val_bad || skipped > 0 {
            return self.roll_back(train_loss, skipped).map(EpochEnd::RolledBack);
        }
        self.retries = 0;
        self.epoch += 1;
        self.step_in_epoch = 0;
        let rec = EpochRecord {
            epoch: self.epoch,
            train_loss,
            val_loss,
            learning_rate: self.lr,
            seconds: self.seconds(),
        };
        self.history.push(rec.clone());
        let watched = if self.split.n_val > 0 { val_loss } else { train_loss };
        self.update_schedule(watched, rec.seconds);
        self.pending_good_copy = true;
        let out_of_time = self.tc.max_seconds.is_some_and(|s| rec.seconds >= s);
        let stop = self.since_best >= self.tc.patience || self.epoch >= self.tc.max_epochs || out_of_time;
        Ok(EpochEnd::Completed { record: rec, stop })
    }

    /// Seconds of training, checkpointed runs included.
    fn seconds(&self) -> f64 {
        self.seconds_before + self.started.elapsed().as_secs_f64()
    }

    /// Rolls the diverged current epoch back (one submission), or fails after
    /// `max_rollbacks` retries of it.
    fn roll_back(&mut self, train_loss: f64, skipped: usize) -> Result<Rollback> {
        let epoch = self.epoch + 1;
        if self.retries >= self.tc.max_rollbacks {
            return Err(Error::invalid(format!(
                "training diverged in epoch {epoch}: the training loss is {train_loss} and {skipped} of {} steps had a non-finite \
                 gradient, after {} rollbacks to {} with the learning rate lowered to {:.3e}; \
                 try a smaller learning rate",
                self.step_in_epoch,
                self.retries,
                if self.epoch == 0 { "the initial weights".to_string() } else { format!("the end of epoch {}", self.epoch) },
                self.lr
            )));
        }
        self.retries += 1;
        self.rollbacks += 1;
        let bytes = self.layout.len as u64 * 4;
        let mut enc = self.gpu.encoder();
        enc.copy_buffer_to_buffer(&self.bufs.good_params, 0, &self.bufs.params, 0, bytes);
        enc.copy_buffer_to_buffer(&self.bufs.good_m, 0, &self.bufs.m, 0, bytes + 8);
        enc.copy_buffer_to_buffer(&self.bufs.good_v, 0, &self.bufs.v, 0, bytes);
        if let Some(e) = &self.bufs.ema {
            enc.copy_buffer_to_buffer(&e.good, 0, &e.avg, 0, bytes);
        }
        self.gpu.submit(enc)?;
        self.step -= self.step_in_epoch as u64;
        self.step_in_epoch = 0;
        self.lr *= self.tc.rollback_lr_factor;
        self.lr_scale *= self.tc.rollback_lr_factor;
        Ok(Rollback { epoch, train_loss, skipped_steps: skipped, retry: self.retries, learning_rate: self.lr })
    }

    /// Runs validation and reads the loss slots and the skipped-step count (one
    /// submission, one readback): returns the epoch's mean training and validation
    /// losses (NaN without validation rows) and its count of skipped steps. With a
    /// moving average, validation scores the average: the parameters are swapped out
    /// for it (buffer copies) during the pass and back after it.
    fn read_epoch_losses(&mut self) -> Result<(f64, f64, usize)> {
        let mut enc = self.gpu.encoder();
        if let Some(vp) = &self.val_prog {
            let bytes = self.layout.len as u64 * 4;
            if let Some(e) = &self.bufs.ema {
                enc.copy_buffer_to_buffer(&self.bufs.params, 0, &e.scratch, 0, bytes);
                enc.copy_buffer_to_buffer(&e.avg, 0, &self.bufs.params, 0, bytes);
            }
            self.bufs.sync_params_tex(&mut enc);
            {
                let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                vp.record(self.gpu, &mut pass)?;
            }
            if let Some(e) = &self.bufs.ema {
                enc.copy_buffer_to_buffer(&e.scratch, 0, &self.bufs.params, 0, bytes);
            }
        }
        let spe = self.split.steps_per_epoch;
        let slots = spe + self.split.val_chunks();
        let count_at = (self.layout.len as u64 + 1) * 4;
        enc.copy_buffer_to_buffer(&self.bufs.m, count_at, &self.bufs.acts, (self.ws.loss_off + slots) as u64 * 4, 4);
        let staging = self.gpu.copy_to_staging(&mut enc, &self.bufs.acts, self.ws.loss_off as u64, slots + 1);
        self.gpu.submit(enc)?;
        let l = self.gpu.map_staging(staging, slots + 1)?;
        let dt = self.cfg.dim_theta as f64;
        let done = self.step_in_epoch;
        let train_loss = l[..done].iter().map(|&v| v as f64).sum::<f64>() / (done as f64 * self.split.batch as f64 * dt);
        let val_loss = if self.split.n_val > 0 {
            l[spe..slots].iter().map(|&v| v as f64).sum::<f64>() / (self.split.n_val as f64 * dt)
        } else {
            f64::NAN
        };
        let skipped = if done == 0 { 0 } else { l[slots] as usize };
        Ok((train_loss, val_loss, skipped))
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
            self.lr = (self.tc.min_lr + (self.tc.learning_rate - self.tc.min_lr) * c) * self.lr_scale;
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

    /// As [`Trainer::fit`], calling `progress` after every completed epoch; when it
    /// returns [`Control::Stop`] training ends there, keeping the best weights so far.
    /// Diverged epochs are rolled back and retried ([`Trainer::finish_epoch`]). A set
    /// stop flag ([`Trainer::set_stop_flag`]) ends training at the next step boundary
    /// ([`TrainOutcome::interrupted`]).
    ///
    /// # Errors
    /// As [`Trainer::fit`].
    pub fn fit_with_progress(mut self, progress: &mut dyn FnMut(&Progress<'_>) -> Control) -> Result<TrainOutcome> {
        self.run(&mut |_tr, p| progress(p))?;
        self.finish()
    }

    /// The training loop without consuming the trainer: steps and epochs until
    /// training stops by itself, `after_epoch` returns [`Control::Stop`] (it is called
    /// after every completed epoch with the trainer, e.g. to write a checkpoint), or
    /// the stop flag is set (checked before every step). Returns true when stopped by
    /// the flag.
    ///
    /// # Errors
    /// As [`Trainer::step`] and [`Trainer::finish_epoch`], and whatever `after_epoch`
    /// returns.
    pub fn run(&mut self, after_epoch: &mut dyn FnMut(&Trainer<'g>, &Progress<'_>) -> Control) -> Result<bool> {
        loop {
            while self.step_in_epoch < self.split.steps_per_epoch {
                if self.stop_requested() {
                    return Ok(true);
                }
                self.step()?;
            }
            match self.finish_epoch()? {
                EpochEnd::RolledBack(_) => continue,
                EpochEnd::Completed { record, stop } => {
                    let p = Progress { record: &record, best_epoch: self.best_epoch, max_epochs: self.tc.max_epochs, last: stop };
                    if after_epoch(self, &p) == Control::Stop || stop {
                        return Ok(false);
                    }
                }
            }
        }
    }

    /// Stops [`Trainer::run`] / [`Trainer::fit`] at the next step boundary once `flag`
    /// is set (e.g. by a SIGTERM handler in the binary).
    pub fn set_stop_flag(&mut self, flag: Arc<AtomicBool>) {
        self.stop_flag = Some(flag);
    }

    fn stop_requested(&self) -> bool {
        self.stop_flag.as_ref().is_some_and(|f| f.load(Ordering::SeqCst))
    }

    /// Restores the best weights and returns the outcome (one submission + readback).
    ///
    /// # Errors
    /// GPU errors; [`Error::Invalid`] if the best weights are not finite (never
    /// returned as a model).
    pub fn finish(self) -> Result<TrainOutcome> {
        self.outcome()
    }

    /// The outcome so far without ending the run: the best weights (one submission +
    /// readback), the statistics and the history up to now.
    ///
    /// # Errors
    /// As [`Trainer::finish`].
    pub fn outcome(&self) -> Result<TrainOutcome> {
        let len = self.layout.len;
        let src = if self.pending_best_copy { self.bufs.kept() } else { &self.bufs.best };
        let params = self.gpu.read_f32(src, 0, len)?;
        if let Some(i) = params.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!(
                "the best weights hold a non-finite value (parameter {i}); no model is written"
            )));
        }
        Ok(TrainOutcome {
            params,
            stats: self.stats.clone(),
            history: self.history.clone(),
            best_epoch: self.best_epoch,
            steps: self.step,
            n_train: self.split.n_train,
            n_val: self.split.n_val,
            transform: self.transform.clone(),
            net: self.cfg.clone(),
            train: self.tc.clone(),
            rollbacks: self.rollbacks,
            interrupted: self.stop_requested(),
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

    /// Everything needed to continue this run bitwise ([`Trainer::restore`]): read back
    /// from the GPU in one submission. Call it at a step or epoch boundary.
    ///
    /// # Errors
    /// GPU errors.
    pub fn checkpoint(&self) -> Result<Checkpoint> {
        let len = self.layout.len;
        let mut enc = self.gpu.encoder();
        let b = &self.bufs;
        let reads = [
            (&b.params, 0, len),
            (&b.best, 0, len),
            (&b.m, 0, len + 2),
            (&b.v, 0, len),
            (&b.good_params, 0, len),
            (&b.good_m, 0, len + 2),
            (&b.good_v, 0, len),
            (&b.acts, self.ws.loss_off, self.step_in_epoch),
        ];
        let ema_reads = b.ema.as_ref().map(|e| [(&e.avg, 0, len), (&e.good, 0, len)]);
        let reads = reads.iter().chain(ema_reads.iter().flatten());
        let staged: Vec<_> = reads.map(|&(buf, off, n)| (self.gpu.copy_to_staging(&mut enc, buf, off as u64, n), n)).collect();
        self.gpu.submit(enc)?;
        let mut arrays = Vec::with_capacity(staged.len());
        for (st, n) in staged {
            arrays.push(self.gpu.map_staging(st, n)?);
        }
        let mut it = arrays.into_iter();
        let mut next = || it.next().unwrap_or_default();
        Ok(Checkpoint {
            state: self.state(),
            params: next(),
            best: next(),
            m: next(),
            v: next(),
            good_params: next(),
            good_m: next(),
            good_v: next(),
            epoch_losses: next(),
            ema: next(),
            good_ema: next(),
        })
    }

    /// The scalar state of the run.
    fn state(&self) -> TrainerState {
        TrainerState {
            checkpoint_version: if self.bufs.ema.is_some() { CHECKPOINT_VERSION } else { CHECKPOINT_VERSION_PLAIN },
            net: self.cfg.clone(),
            train: self.tc.clone(),
            data_fingerprint: self.data_fingerprint,
            step: self.step,
            epoch: self.epoch,
            step_in_epoch: self.step_in_epoch,
            lr: self.lr,
            lr_scale: self.lr_scale,
            pending_best_copy: self.pending_best_copy,
            pending_good_copy: self.pending_good_copy,
            best_loss: self.best_loss.is_finite().then_some(self.best_loss),
            best_epoch: self.best_epoch,
            since_best: self.since_best,
            since_lr: self.since_lr,
            retries: self.retries,
            rollbacks: self.rollbacks,
            history: self.history.clone(),
            seconds: self.seconds(),
        }
    }

    /// Continues the run saved in `ck` on this trainer, built with the same network,
    /// data and seed: uploads its arrays and takes over its counters, schedule and
    /// history. The rest of `ck`'s training configuration may differ where it does not
    /// change what was already done (e.g. a larger `max_epochs`); this trainer's is
    /// used from here on.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the network, the seed or the data differ from the
    /// checkpointed run's, when the split differs (another batch size or validation
    /// fraction), when one run averages the weights and the other does not
    /// ([`TrainConfig::ema_decay`]), or when they train on different reflected densities
    /// ([`TrainConfig::reflect`]).
    pub fn restore(&mut self, ck: &Checkpoint) -> Result<()> {
        let s = &ck.state;
        if s.net != self.cfg {
            return Err(Error::invalid("the checkpoint was written for another network configuration"));
        }
        if s.data_fingerprint != self.data_fingerprint || s.train.seed != self.tc.seed {
            return Err(Error::invalid("the checkpoint was written for other simulations or another seed"));
        }
        let same_split = s.train.batch_size == self.tc.batch_size && s.train.validation_fraction == self.tc.validation_fraction;
        if !same_split || s.step_in_epoch > self.split.steps_per_epoch {
            return Err(Error::invalid("the checkpoint was written with another batch size or validation fraction"));
        }
        if s.train.reflect != self.tc.reflect {
            return Err(Error::invalid("the checkpoint was written with another choice of training on the reflected density"));
        }
        let with_ema = self.bufs.ema.is_some();
        let ema_lens = [ck.ema.len(), ck.good_ema.len()];
        if with_ema && ema_lens != [self.layout.len; 2] {
            return Err(Error::invalid("the checkpoint was written without a moving average of the weights; resume with ema_decay 0"));
        }
        if !with_ema && ema_lens != [0; 2] {
            return Err(Error::invalid("the checkpoint was written with a moving average of the weights; resume with its ema_decay"));
        }
        let q = &self.gpu.queue;
        let b = &self.bufs;
        for (buf, data) in [
            (&b.params, &ck.params),
            (&b.best, &ck.best),
            (&b.m, &ck.m),
            (&b.v, &ck.v),
            (&b.good_params, &ck.good_params),
            (&b.good_m, &ck.good_m),
            (&b.good_v, &ck.good_v),
        ] {
            q.write_buffer(buf, 0, bytemuck::cast_slice(data));
        }
        if !ck.epoch_losses.is_empty() {
            q.write_buffer(&b.acts, self.ws.loss_off as u64 * 4, bytemuck::cast_slice(&ck.epoch_losses));
        }
        if let Some(e) = &b.ema {
            q.write_buffer(&e.avg, 0, bytemuck::cast_slice(&ck.ema));
            q.write_buffer(&e.good, 0, bytemuck::cast_slice(&ck.good_ema));
        }
        self.step = s.step;
        self.epoch = s.epoch;
        self.step_in_epoch = s.step_in_epoch;
        self.lr = s.lr;
        self.lr_scale = s.lr_scale;
        self.pending_best_copy = s.pending_best_copy;
        self.pending_good_copy = s.pending_good_copy;
        self.best_loss = s.best_loss.unwrap_or(f64::INFINITY);
        self.best_epoch = s.best_epoch;
        self.since_best = s.since_best;
        self.since_lr = s.since_lr;
        self.retries = s.retries;
        self.rollbacks = s.rollbacks;
        self.history = s.history.clone();
        self.seconds_before = s.seconds;
        self.started = Instant::now();
        Ok(())
    }

    /// Epochs completed.
    pub fn epochs_done(&self) -> usize {
        self.epoch
    }

    /// Divergence rollbacks so far.
    pub fn rollbacks(&self) -> usize {
        self.rollbacks
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

/// Training on the reflected density ([`TrainConfig::reflect`]) needs θ itself (no
/// parameter transform), one bound pair per component, and every θ inside the box.
fn check_reflection(tc: &TrainConfig, transform: &ThetaTransform, theta: &[f64], dt: usize) -> Result<()> {
    let Some(r) = &tc.reflect else { return Ok(()) };
    if !transform.is_identity() {
        return Err(Error::option("reflect", "training on the reflected density needs θ itself: train without the parameter transform"));
    }
    if r.low.len() != dt {
        return Err(Error::option("reflect", format!("the box has {} components, θ has {dt}", r.low.len())));
    }
    // The box's own support test (θ is already checked finite by `check_rows`).
    let in_box = ThetaTransform::from_box(&BoxPrior { low: r.low.clone(), high: r.high.clone() });
    if let Some((row, c)) = in_box.first_outside(theta, dt) {
        return Err(Error::invalid(format!(
            "theta row {}, column {}: {} is outside the box [{}, {}] reflected at in training",
            row + 1,
            c + 1,
            theta[row * dt + c],
            r.low[c],
            r.high[c]
        )));
    }
    Ok(())
}

/// Checks `transform` against `dim_theta` and that every θ row lies in its support.
fn check_support(transform: &ThetaTransform, theta: &[f64], dt: usize) -> Result<()> {
    transform.validate(dt)?;
    if let Some((r, c)) = transform.first_outside(theta, dt) {
        return Err(Error::invalid(format!("theta row {}: {}", r + 1, transform.outside_message(c, theta[r * dt + c]))));
    }
    Ok(())
}
