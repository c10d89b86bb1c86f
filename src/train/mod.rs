//! Training the FMPE vector field on the GPU.
//!
//! The whole dataset lives on the GPU, mapped there to the unbounded training space
//! θ' = T(θ) when a parameter transform is used ([`crate::transform`]), and z-scored
//! with training-set statistics.
//! One optimiser step is one command buffer and one submission:
//! gather + OT path → forward → loss → backward → Adam. The step's losses accumulate in
//! GPU slots that the host reads once per epoch, together with the validation loss.

use std::time::Instant;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{adam, stats, train_step, transform::theta_transform};
use crate::kernels::{
    AdamParams, Arena, Bindings, GatherParams, LossParams, Program, ProgramBuilder, StatsParams, StepState,
    TransformMode, TransformParams,
};
use crate::net::{Conditioning, NetConfig, ParamLayout, TrainGraph};
use crate::transform::ThetaTransform;

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// ReduceLROnPlateau: multiply by `lr_factor` after `lr_patience` epochs without a
    /// better validation loss.
    Plateau,
    /// Cosine annealing from `learning_rate` to `min_lr` over `max_epochs` (or over
    /// `max_seconds`, whichever is further along). The default: on two_moons it beat
    /// the plateau schedule clearly at a fixed budget (see BENCHMARKS.md).
    #[default]
    Cosine,
}

/// Training hyper-parameters. Defaults follow the FMPE paper's sbibm setup where it
/// states them (σ_min = 1e-4, α = 4) and sbi's conventions elsewhere.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TrainConfig {
    /// Minibatch size (capped at the number of training rows).
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f64,
    /// Upper bound on epochs.
    pub max_epochs: usize,
    /// Early stopping: stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// ReduceLROnPlateau: epochs without improvement before the rate is multiplied by
    /// `lr_factor`.
    pub lr_patience: usize,
    /// ReduceLROnPlateau factor.
    pub lr_factor: f64,
    /// Lower bound of the learning rate.
    pub min_lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Fraction of the simulations held out for validation (0 ≤ f < 1).
    pub validation_fraction: f64,
    /// Time prior exponent α: t has density ∝ t^α on [0, 1] (t = u^(1/(1+α))).
    pub time_prior_exponent: f64,
    /// σ_min of the OT path.
    pub sigma_min: f64,
    /// Adam L2 weight decay (PyTorch semantics).
    pub weight_decay: f64,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Seed of the split, the permutations and the path noise.
    pub seed: u64,
    /// Optional wall-clock budget for training, in seconds (best weights are kept).
    pub max_seconds: Option<f64>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 256,
            learning_rate: 1e-3,
            max_epochs: 200,
            patience: 30,
            lr_patience: 10,
            lr_factor: 0.5,
            min_lr: 1e-6,
            lr_schedule: LrSchedule::Cosine,
            validation_fraction: 0.05,
            time_prior_exponent: 4.0,
            sigma_min: 1e-4,
            weight_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            seed: 0,
            max_seconds: None,
        }
    }
}

impl TrainConfig {
    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`Error::Invalid`] naming the offending flag.
    pub fn validate(&self) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::usage("--batch-size must be positive"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::usage("--learning-rate must be a positive number"));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::usage("--validation-fraction must be in [0, 1)"));
        }
        if self.time_prior_exponent.is_nan() || self.time_prior_exponent <= -1.0 {
            return Err(Error::usage("--time-prior-exponent must be > -1"));
        }
        if !(0.0..1.0).contains(&self.sigma_min) {
            return Err(Error::usage("--sigma-min must be in [0, 1)"));
        }
        if self.max_epochs == 0 {
            return Err(Error::usage("--max-epochs must be positive"));
        }
        Ok(())
    }
}

/// Reads a JSON number, or `null` (how serde_json writes NaN and ±inf) as NaN.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One line of the training history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss of the epoch (z-scored units, per θ component).
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_loss: f64,
    /// Validation loss (fixed noise; NaN without validation rows, stored as `null` in
    /// JSON).
    #[serde(deserialize_with = "f64_or_nan")]
    pub val_loss: f64,
    /// Learning rate used in the epoch.
    pub learning_rate: f64,
    /// Wall-clock seconds since training started.
    pub seconds: f64,
}

/// What training produced.
#[derive(Clone, Debug)]
pub struct TrainOutcome {
    /// Best parameters `[layout.len]`.
    pub params: Vec<f32>,
    /// Column means of θ (θ' = T(θ) with a transform) over the training rows `[dim_theta]`.
    pub theta_mean: Vec<f64>,
    /// Column standard deviations of θ (θ' with a transform; ddof = 1; 0 → 1) `[dim_theta]`.
    pub theta_std: Vec<f64>,
    /// Column means of x `[dim_x]`.
    pub x_mean: Vec<f64>,
    /// Column standard deviations of x `[dim_x]`.
    pub x_std: Vec<f64>,
    /// Per-epoch history.
    pub history: Vec<EpochRecord>,
    /// Epoch (1-based) whose weights were kept.
    pub best_epoch: usize,
    /// Optimiser steps taken.
    pub steps: u64,
    /// Training rows / validation rows.
    pub n_train: usize,
    /// Validation rows.
    pub n_val: usize,
    /// The parameter transform θ' = T(θ) the statistics and the network live in (one
    /// bijection per component); a [`crate::model::Model`] built from this outcome must
    /// carry it in `info.transform`, or its samples stay in θ' space.
    pub transform: ThetaTransform,
}

/// A training run on the GPU. Use [`Trainer::fit`] for the whole loop, or
/// [`Trainer::step`] / [`Trainer::end_epoch`] to drive it yourself.
pub struct Trainer<'g> {
    gpu: &'g Gpu,
    cfg: NetConfig,
    tc: TrainConfig,
    layout: ParamLayout,
    n_train: usize,
    n_val: usize,
    batch: usize,
    steps_per_epoch: usize,
    params: wgpu::Buffer,
    best: wgpu::Buffer,
    acts: wgpu::Buffer,
    step_buf: wgpu::Buffer,
    step_prog: Program,
    val_prog: Option<Program>,
    loss_off: usize,
    n_val_chunks: usize,
    _keep: Vec<wgpu::Buffer>,
    stats: (Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>),
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
    /// [`crate::io::drop_nonfinite_rows`] first). Rows are shuffled once with the seed;
    /// the last `validation_fraction` of them are held out. The initial parameters are
    /// `init` (e.g. [`crate::net::init_params`]) or drawn from the seed.
    ///
    /// # Errors
    /// [`Error::Invalid`] for inconsistent shapes or configuration, [`Error::Gpu`] if the
    /// data does not fit the device's buffer limits.
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
    /// a log's bound), or when the transform does not fit dim_theta.
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
        let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
        if !theta.len().is_multiple_of(dt) || !x.len().is_multiple_of(dx) || theta.len() / dt != x.len() / dx {
            return Err(Error::invalid(format!(
                "theta has {} values for dim_theta = {dt} and x has {} for dim_x = {dx}: row counts differ",
                theta.len(),
                x.len()
            )));
        }
        let n = theta.len() / dt;
        if theta.iter().chain(x.iter()).any(|v| !v.is_finite()) {
            return Err(Error::invalid("theta and x must be finite (drop failed simulations first)"));
        }
        transform.validate(cfg.dim_theta)?;
        if let Some((r, c)) = transform.first_outside(theta, dt) {
            return Err(Error::invalid(format!("theta row {}: {}", r + 1, transform.outside_message(c, theta[r * dt + c]))));
        }
        let n_val = ((n as f64) * tc.validation_fraction).round() as usize;
        let n_train = n - n_val;
        if n_train < 2 {
            return Err(Error::invalid(format!("need at least 2 training rows, have {n_train}")));
        }
        let batch = tc.batch_size.min(n_train);
        let max_rows = gpu.limits().max_compute_workgroups_per_dimension as usize * 64;
        if batch > max_rows {
            return Err(Error::usage(format!("--batch-size {batch} exceeds this device's dispatch limit ({max_rows} rows)")));
        }
        let steps_per_epoch = n_train / batch;
        if (n * (dt + dx)) as u64 > gpu.max_binding_floats() {
            return Err(Error::invalid(format!(
                "the dataset ({n} rows of {} floats) exceeds the device's largest storage binding",
                dt + dx
            )));
        }

        // Shuffle once (host permutation of row indices, O(n)), then upload.
        let mut rng = rand::rngs::StdRng::seed_from_u64(tc.seed);
        let mut order: Vec<usize> = (0..n).collect();
        order.shuffle(&mut rng);
        let mut data = vec![0f32; n * (dt + dx)];
        for (r, &src) in order.iter().enumerate() {
            for j in 0..dt {
                data[r * dt + j] = theta[src * dt + j] as f32;
            }
            for j in 0..dx {
                data[n * dt + r * dx + j] = x[src * dx + j] as f32;
            }
        }
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

        let data_buf = gpu.storage_from("fmpe dataset", &data);
        let params = gpu.storage_from("fmpe params", &params0);
        let best = gpu.storage_from("fmpe best params", &params0);
        let grads = gpu.storage("fmpe grads", layout.len as u64 * 4);
        let m = gpu.storage("fmpe adam m", layout.len as u64 * 4);
        let v = gpu.storage("fmpe adam v", layout.len as u64 * 4);
        let step_buf = gpu.uniform_from("fmpe step", bytemuck::bytes_of(&StepState::default()));

        let mut arena = Arena::default();
        let stats_off = arena.alloc(2 * (dt + dx));
        let tab_off = arena.alloc(4 * dt);
        let graph = TrainGraph::new(&cfg, &layout, batch, &mut arena);
        let n_val_chunks = n_val.div_ceil(batch);
        let loss_off = arena.alloc(steps_per_epoch + n_val_chunks);
        let acts_len = arena.len();
        if acts_len as u64 > gpu.max_binding_floats() {
            return Err(Error::invalid("the training workspace exceeds the device's largest storage binding; lower --batch-size or --hidden"));
        }
        let acts = gpu.storage("fmpe train workspace", acts_len as u64 * 4);

        // θ → θ' = T(θ) in place, then z-score θ' and x with training-row statistics, on
        // the GPU.
        let mut b = ProgramBuilder::new(gpu);
        if !transform.is_identity() {
            gpu.queue.write_buffer(&acts, tab_off as u64 * 4, bytemuck::cast_slice(&transform.gpu_table(dt)));
            let tp = TransformParams {
                n: n as u32,
                d: dt as u32,
                mode: TransformMode::Forward as u32,
                flags: TransformParams::DATA,
                in_rs: dt as u32,
                out_rs: dt as u32,
                tab_off: tab_off as u32,
                ..Default::default()
            };
            theta_transform(&mut b, &tp);
        }
        let st_t = StatsParams { rows: n_train as u32, cols: dt as u32, off: 0, stats_off: stats_off as u32 };
        let st_x = StatsParams {
            rows: n_train as u32,
            cols: dx as u32,
            off: (n * dt) as u32,
            stats_off: (stats_off + 2 * dt) as u32,
        };
        stats::column_stats(&mut b, &st_t);
        stats::column_stats(&mut b, &st_x);
        stats::zscore(&mut b, &StatsParams { rows: n as u32, ..st_t });
        stats::zscore(&mut b, &StatsParams { rows: n as u32, ..st_x });
        let binds = Bindings {
            acts: Some(&acts),
            params: Some(&params),
            grads: Some(&grads),
            data: Some(&data_buf),
            step: Some(&step_buf),
            moments: Some((&m, &v)),
        };
        b.build(gpu, binds)?.run(gpu)?;
        let s = gpu.read_f32(&acts, stats_off as u64, 2 * (dt + dx))?;
        let f = |a: &[f32]| a.iter().map(|&v| v as f64).collect::<Vec<f64>>();
        let stats = (f(&s[..dt]), f(&s[dt..2 * dt]), f(&s[2 * dt..2 * dt + dx]), f(&s[2 * dt + dx..]));
        let mut warnings = Vec::new();
        for (name, vals, d) in [("theta", theta, dt), ("x", x, dx)] {
            for c in 0..d {
                let first = vals[c];
                if (0..n).all(|r| vals[r * d + c] == first) {
                    warnings.push(format!(
                        "{name} column {} is constant ({first}); its standard deviation is taken as 1",
                        c + 1
                    ));
                }
            }
        }

        let seed_lo = tc.seed as u32;
        let seed_hi = (tc.seed >> 32) as u32;
        let glu = cfg.conditioning == Conditioning::Glu;
        let x_dst = graph.x_dest(&cfg);
        let gather = |rows: usize, validation: bool, row_offset: usize| GatherParams {
            rows: rows as u32,
            dim_theta: dt as u32,
            dim_x: dx as u32,
            glu: glu as u32,
            n_train: n_train as u32,
            row_offset: row_offset as u32,
            validation: validation as u32,
            seed_lo,
            seed_hi,
            theta_off: 0,
            x_off: (n * dt) as u32,
            in_off: graph.input as u32,
            in_rs: cfg.input_dim() as u32,
            ctx_off: graph.ctx as u32,
            target_off: graph.target as u32,
            x_dst_off: x_dst.0 as u32,
            x_dst_rs: x_dst.1 as u32,
            alpha: tc.time_prior_exponent as f32,
            sigma_min: tc.sigma_min as f32,
        };

        // The training step.
        let mut b = ProgramBuilder::new(gpu);
        train_step::gather_path(&mut b, &gather(batch, false, 0));
        graph.forward(&mut b, &cfg, &layout, batch);
        let count = batch * dt;
        train_step::fm_loss(
            &mut b,
            &LossParams {
                count: count as u32,
                v_off: graph.v as u32,
                target_off: graph.target as u32,
                dv_off: graph.dv as u32,
                write_dv: 1,
                loss_off: loss_off as u32,
                slot: 0,
                slot_from_step: 1,
                scale: 2.0 / count as f32,
            },
        );
        graph.backward(&mut b, &cfg, &layout, batch);
        adam::adam(
            &mut b,
            &AdamParams {
                n: layout.len as u32,
                off: 0,
                pad: [0; 2],
                beta1: tc.beta1 as f32,
                beta2: tc.beta2 as f32,
                eps: tc.eps as f32,
                weight_decay: tc.weight_decay as f32,
            },
        );
        let step_prog = b.build(gpu, binds)?;

        // Validation: fixed noise, forward + loss only.
        let val_prog = if n_val > 0 {
            let mut b = ProgramBuilder::new(gpu);
            for c in 0..n_val_chunks {
                let rows = batch.min(n_val - c * batch);
                train_step::gather_path(&mut b, &gather(rows, true, n_train + c * batch));
                graph.forward(&mut b, &cfg, &layout, rows);
                train_step::fm_loss(
                    &mut b,
                    &LossParams {
                        count: (rows * dt) as u32,
                        v_off: graph.v as u32,
                        target_off: graph.target as u32,
                        dv_off: 0,
                        write_dv: 0,
                        loss_off: loss_off as u32,
                        slot: (steps_per_epoch + c) as u32,
                        slot_from_step: 0,
                        scale: 0.0,
                    },
                );
            }
            Some(b.build(gpu, binds)?)
        } else {
            None
        };

        Ok(Trainer {
            transform: ThetaTransform::new(transform.resolved(dt)),
            gpu,
            lr: tc.learning_rate,
            cfg,
            tc,
            layout,
            n_train,
            n_val,
            batch,
            steps_per_epoch,
            params,
            best,
            acts,
            step_buf,
            step_prog,
            val_prog,
            loss_off,
            n_val_chunks,
            _keep: vec![data_buf, grads, m, v],
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
        self.batch
    }

    /// Optimiser steps per epoch (`n_train / batch`, the last partial batch dropped).
    pub fn steps_per_epoch(&self) -> usize {
        self.steps_per_epoch
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
        (self.n_train, self.n_val)
    }

    /// Runs one optimiser step: one command buffer, one submission, no readback.
    ///
    /// # Errors
    /// GPU errors as [`Error::Gpu`] / [`Error::DeviceLost`].
    pub fn step(&mut self) -> Result<()> {
        if self.step_in_epoch == self.steps_per_epoch {
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
        self.gpu.queue.write_buffer(&self.step_buf, 0, bytemuck::bytes_of(&st));
        let mut enc = self.gpu.encoder();
        if self.pending_best_copy {
            enc.copy_buffer_to_buffer(&self.params, 0, &self.best, 0, self.layout.len as u64 * 4);
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
        let mut enc = self.gpu.encoder();
        if let Some(vp) = &self.val_prog {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            vp.record(self.gpu, &mut pass)?;
        }
        let slots = self.steps_per_epoch + self.n_val_chunks;
        let staging = self.gpu.copy_to_staging(&mut enc, &self.acts, self.loss_off as u64, slots);
        self.gpu.submit(enc)?;
        let l = self.gpu.map_staging(&staging, slots)?;
        let dt = self.cfg.dim_theta as f64;
        let done = self.step_in_epoch;
        let train_loss = l[..done].iter().map(|&v| v as f64).sum::<f64>() / (done as f64 * self.batch as f64 * dt);
        let val_loss = if self.n_val > 0 {
            l[self.steps_per_epoch..].iter().map(|&v| v as f64).sum::<f64>() / (self.n_val as f64 * dt)
        } else {
            f64::NAN
        };
        if !train_loss.is_finite() {
            return Err(Error::invalid(format!(
                "training diverged: the loss is {train_loss} in epoch {}; try a smaller --learning-rate",
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
        let watched = if self.n_val > 0 { val_loss } else { train_loss };
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
                progress = progress.max(rec.seconds / s);
            }
            let c = 0.5 * (1.0 + (std::f64::consts::PI * progress.min(1.0)).cos());
            self.lr = self.tc.min_lr + (self.tc.learning_rate - self.tc.min_lr) * c;
        }
        let out_of_time = self.tc.max_seconds.is_some_and(|s| rec.seconds >= s);
        let stop = self.since_best >= self.tc.patience || self.epoch >= self.tc.max_epochs || out_of_time;
        Ok((rec, stop))
    }

    /// Trains until early stopping, `max_epochs` or `max_seconds`, then restores the
    /// best weights and reads them back (one readback). `progress` shows a progress bar
    /// on stderr (hidden when stderr is not a terminal).
    ///
    /// # Errors
    /// As [`Trainer::step`] and [`Trainer::end_epoch`].
    pub fn fit(mut self, progress: bool) -> Result<TrainOutcome> {
        let bar = if progress {
            let pb = indicatif::ProgressBar::new(self.tc.max_epochs as u64);
            pb.set_style(
                indicatif::ProgressStyle::with_template("{elapsed_precise} epoch {pos}/{len} {msg}")
                    .expect("valid template"),
            );
            pb
        } else {
            indicatif::ProgressBar::hidden()
        };
        loop {
            for _ in 0..self.steps_per_epoch {
                self.step()?;
            }
            let (rec, stop) = self.end_epoch()?;
            bar.set_position(rec.epoch as u64);
            if progress && bar.is_hidden() && (rec.epoch % 10 == 0 || stop) {
                // No terminal (a log file, CI): a plain line every 10 epochs instead.
                eprintln!(
                    "epoch {:>4}/{}  train {:.4}  val {:.4}  lr {:.1e}  best epoch {}  {:.0} s",
                    rec.epoch, self.tc.max_epochs, rec.train_loss, rec.val_loss, rec.learning_rate, self.best_epoch, rec.seconds
                );
            }
            bar.set_message(format!(
                "train {:.4}  val {:.4}  lr {:.1e}  best epoch {}",
                rec.train_loss, rec.val_loss, rec.learning_rate, self.best_epoch
            ));
            if stop {
                break;
            }
        }
        bar.finish_and_clear();
        self.finish()
    }

    /// Restores the best weights and returns the outcome (one submission + readback).
    ///
    /// # Errors
    /// GPU errors.
    pub fn finish(self) -> Result<TrainOutcome> {
        let len = self.layout.len;
        let mut enc = self.gpu.encoder();
        let src = if self.pending_best_copy { &self.params } else { &self.best };
        let staging = self.gpu.copy_to_staging(&mut enc, src, 0, len);
        self.gpu.submit(enc)?;
        let params = self.gpu.map_staging(&staging, len)?;
        let (theta_mean, theta_std, x_mean, x_std) = self.stats;
        Ok(TrainOutcome {
            params,
            theta_mean,
            theta_std,
            x_mean,
            x_std,
            history: self.history,
            best_epoch: self.best_epoch,
            steps: self.step,
            n_train: self.n_train,
            n_val: self.n_val,
            transform: self.transform,
        })
    }

    /// Current parameters read back from the GPU `[layout.len]` (one readback; for tests
    /// and checkpoints).
    ///
    /// # Errors
    /// GPU errors.
    pub fn read_params(&self) -> Result<Vec<f32>> {
        self.gpu.read_f32(&self.params, 0, self.layout.len)
    }

    /// Data warnings found while loading (e.g. constant columns).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }

    /// z-score statistics of the training rows: (θ' mean, θ' std, x mean, x std), where
    /// θ' = T(θ) under the trainer's parameter transform (θ itself without one).
    pub fn zscore_stats(&self) -> &(Vec<f64>, Vec<f64>, Vec<f64>, Vec<f64>) {
        &self.stats
    }
}

/// Names, prior and provenance stored with a trained model.
#[derive(Clone, Debug, Default)]
pub struct ModelMeta {
    /// Parameter names `[dim_theta]` (empty: `theta_1..`).
    pub theta_names: Vec<String>,
    /// Data names `[dim_x]` (empty: `x_1..`).
    pub x_names: Vec<String>,
    /// Benchmark task, if any.
    pub task: Option<String>,
    /// Box prior (samples outside are rejected by default).
    pub prior: Option<crate::model::BoxPrior>,
    /// Parameter transform to train in (default: the identity); e.g.
    /// [`ThetaTransform::from_box`] of `prior`, or [`ThetaTransform::for_prior`] of a
    /// task's prior.
    pub transform: ThetaTransform,
    /// Elementwise transform of x applied on the host before training (default: none).
    pub x_transform: crate::transform::XTransform,
    /// Simulations dropped before training (non-finite x).
    pub dropped_rows: usize,
}

/// Trains a model end to end: `theta` `[n, dim_theta]` and `x` `[n, dim_x]` (row-major,
/// finite) → [`crate::model::Model`]. Convenience wrapper of [`Trainer`].
///
/// # Errors
/// As [`Trainer::new`] and [`Trainer::fit`].
pub fn fit_model(
    gpu: &Gpu,
    net: NetConfig,
    tc: TrainConfig,
    theta: &[f64],
    x: &[f64],
    meta: ModelMeta,
    progress: bool,
) -> Result<(crate::model::Model, Vec<String>)> {
    if let Some(p) = &meta.prior {
        p.validate(net.dim_theta)?;
        // A logit on other bounds than the prior box would sample one box and reject to
        // the other: refuse the mix-up.
        for (j, b) in meta.transform.components.iter().enumerate() {
            if let crate::transform::Bijection::Logit { low, high } = *b {
                if j < p.low.len() && (low != p.low[j] || high != p.high[j]) {
                    return Err(Error::invalid(format!(
                        "parameter transform component {}: logit on [{low}, {high}] but the prior box is [{}, {}]",
                        j + 1,
                        p.low[j],
                        p.high[j]
                    )));
                }
            }
        }
    }
    let x_mapped;
    let x = if meta.x_transform.is_identity() {
        x
    } else {
        let mut v = x.to_vec();
        meta.x_transform.apply(&mut v, net.dim_x)?;
        x_mapped = v;
        &x_mapped[..]
    };
    let trainer = Trainer::with_transform(gpu, net.clone(), tc.clone(), theta, x, None, &meta.transform)?;
    let warnings = trainer.warnings().to_vec();
    let out = trainer.fit(progress)?;
    let names = |given: Vec<String>, prefix: &str, d: usize| {
        if given.len() == d {
            given
        } else {
            (1..=d).map(|i| format!("{prefix}_{i}")).collect()
        }
    };
    let transform = out.transform;
    let info = crate::model::ModelInfo {
        format_version: crate::model::FORMAT_VERSION,
        theta_names: names(meta.theta_names, "theta", net.dim_theta),
        x_names: names(meta.x_names, "x", net.dim_x),
        net,
        sigma_min: tc.sigma_min,
        time_prior_exponent: tc.time_prior_exponent,
        task: meta.task,
        prior: meta.prior,
        transform,
        x_transform: meta.x_transform,
        train: tc,
        n_train: out.n_train,
        n_val: out.n_val,
        dropped_rows: meta.dropped_rows,
        best_epoch: out.best_epoch,
        history: out.history,
    };
    Ok((
        crate::model::Model {
            info,
            params: out.params,
            theta_mean: out.theta_mean,
            theta_std: out.theta_std,
            x_mean: out.x_mean,
            x_std: out.x_std,
        },
        warnings,
    ))
}
