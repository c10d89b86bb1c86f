//! The training run's GPU side: its buffers, the workspace layout, and the three
//! recorded programs (data preparation, the optimiser step, validation). Every kernel
//! call of training is in this file, in the `record_*` functions.

use crate::error::{Error, Result};
use crate::gpu::{Gpu, ParamsTexture};
use crate::kernels::{adam, stats, train_step, transform::theta_transform};
use crate::kernels::{
    AdamParams, Arena, Bindings, EmaParams, GatherParams, LossParams, Program, ProgramBuilder, StatsParams, StepState,
    TransformMode, TransformParams,
};
use crate::net::{Conditioning, NetConfig, ParamLayout, TrainGraph};
use crate::train_config::{TrainConfig, TrainingReflection};
use crate::transform::ThetaTransform;

use super::dataset::{Split, ZscoreStats};

/// The GPU buffers of a training run.
pub(crate) struct Buffers {
    /// θ `[n, dt]` then x `[n, dx]`, shuffled, f32 (z-scored in place by `prepare`).
    pub data: wgpu::Buffer,
    /// Current parameters `[layout.len]`.
    pub params: wgpu::Buffer,
    /// Best parameters so far `[layout.len]`.
    pub best: wgpu::Buffer,
    /// Gradients `[layout.len]`.
    pub grads: wgpu::Buffer,
    /// Adam first moments `[layout.len + 2]`: the last two floats are the step's
    /// non-finite flag and the epoch's count of skipped steps (`grad_check` in
    /// `shaders/adam.wgsl`).
    pub m: wgpu::Buffer,
    /// Adam second moments.
    pub v: wgpu::Buffer,
    /// The step-state uniform ([`StepState`]).
    pub step: wgpu::Buffer,
    /// Parameters at the end of the last good epoch (the rollback target).
    pub good_params: wgpu::Buffer,
    /// Adam first moments (with the two flag floats) at the end of the last good epoch.
    pub good_m: wgpu::Buffer,
    /// Adam second moments at the end of the last good epoch.
    pub good_v: wgpu::Buffer,
    /// The workspace (see [`Workspace`]).
    pub acts: wgpu::Buffer,
    /// Texture mirror of `params` read by the CPU matmul; the trainer syncs it at the
    /// start of every submission that runs the network ([`Buffers::sync_params_tex`]).
    pub params_tex: Option<ParamsTexture>,
    /// The moving average of the weights, when [`TrainConfig::ema_decay`] is positive.
    pub ema: Option<EmaBuffers>,
}

/// The buffers of the weights' moving average (each `[layout.len]`).
pub(crate) struct EmaBuffers {
    /// The average (`shaders/adam_ema.wgsl`), starting at the initial parameters.
    pub avg: wgpu::Buffer,
    /// The average at the end of the last good epoch (the rollback target).
    pub good: wgpu::Buffer,
    /// The raw parameters, kept here while validation runs on the average.
    pub scratch: wgpu::Buffer,
}

impl Buffers {
    /// Uploads the dataset and the initial parameters, allocates the rest (the moving
    /// average's buffers only `with_ema`).
    pub(crate) fn new(gpu: &Gpu, data: &[f32], params0: &[f32], ws: &Workspace, with_ema: bool) -> Buffers {
        let len = params0.len() as u64 * 4;
        Buffers {
            data: gpu.storage_from("fmpe dataset", data),
            params: gpu.storage_from("fmpe params", params0),
            params_tex: ParamsTexture::for_gpu(gpu, params0.len()),
            best: gpu.storage_from("fmpe best params", params0),
            grads: gpu.storage("fmpe grads", len),
            m: gpu.storage("fmpe adam m", len + 8),
            v: gpu.storage("fmpe adam v", len),
            step: gpu.uniform_from("fmpe step", bytemuck::bytes_of(&StepState::default())),
            good_params: gpu.storage_from("fmpe good params", params0),
            good_m: gpu.storage("fmpe good adam m", len + 8),
            good_v: gpu.storage("fmpe good adam v", len),
            acts: gpu.storage("fmpe train workspace", ws.len as u64 * 4),
            ema: with_ema.then(|| EmaBuffers {
                avg: gpu.storage_from("fmpe weight average", params0),
                good: gpu.storage_from("fmpe good weight average", params0),
                scratch: gpu.storage("fmpe params during validation", len),
            }),
        }
    }

    /// Where the weights that validation scores and training keeps live: the moving
    /// average when there is one, else the parameters.
    pub(crate) fn kept(&self) -> &wgpu::Buffer {
        self.ema.as_ref().map_or(&self.params, |e| &e.avg)
    }

    /// The bindings every training program uses.
    pub(crate) fn bindings(&self) -> Bindings<'_> {
        Bindings {
            acts: Some(&self.acts),
            params: Some(&self.params),
            grads: Some(&self.grads),
            data: Some(&self.data),
            step: Some(&self.step),
            moments: Some((&self.m, &self.v)),
            params_tex: self.params_tex.as_ref().map(|t| t.view()),
        }
    }

    /// Records the copy of `params` into its texture mirror (before a pass that runs
    /// the network after Adam, a rollback or an upload changed the parameters).
    pub(crate) fn sync_params_tex(&self, enc: &mut wgpu::CommandEncoder) {
        if let Some(t) = &self.params_tex {
            t.sync(enc, &self.params);
        }
    }
}

/// Offsets (in floats) into the workspace buffer.
pub(crate) struct Workspace {
    /// z-score statistics `[2 (dt + dx)]`: θ' mean, θ' std, x mean, x std.
    pub stats_off: usize,
    /// The parameter transform's table `[dt, 4]`.
    pub tab_off: usize,
    /// The box bounds of training on the reflected density `[dt, 2]` (z-scored).
    pub bounds_off: usize,
    /// The network's activations for one minibatch.
    pub graph: TrainGraph,
    /// Loss slots: one per step of an epoch, then one per validation chunk, then one
    /// for the epoch's count of skipped (non-finite) steps, copied there from the
    /// moments buffer before the epoch's readback.
    pub loss_off: usize,
    /// Total length.
    pub len: usize,
}

impl Workspace {
    /// Lays out the workspace; checks it fits one storage binding.
    pub(crate) fn new(gpu: &Gpu, cfg: &NetConfig, layout: &ParamLayout, split: &Split) -> Result<Workspace> {
        let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
        let mut arena = Arena::default();
        let stats_off = arena.alloc(2 * (dt + dx));
        let tab_off = arena.alloc(4 * dt);
        let bounds_off = arena.alloc(2 * dt);
        let graph = TrainGraph::new(cfg, layout, split.batch, &mut arena);
        let loss_off = arena.alloc(split.steps_per_epoch + split.val_chunks() + 1);
        let len = arena.len();
        if len as u64 > gpu.max_binding_floats() {
            return Err(Error::option(
                "batch_size",
                "the training workspace exceeds the device's largest storage binding; lower the batch size or the hidden widths",
            ));
        }
        Ok(Workspace { stats_off, tab_off, bounds_off, graph, loss_off, len })
    }
}

/// Records data preparation: θ → θ' = T(θ) in place (unless the identity), then the
/// column statistics of the training rows and the z-scoring of all rows, θ' and x.
fn record_prepare(b: &mut ProgramBuilder, cfg: &NetConfig, ws: &Workspace, split: &Split, transform: bool) {
    let (dt, dx, n) = (cfg.dim_theta, cfg.dim_x, split.n);
    if transform {
        let tp = TransformParams {
            n: n as u32,
            d: dt as u32,
            mode: TransformMode::Forward as u32,
            flags: TransformParams::DATA,
            in_rs: dt as u32,
            out_rs: dt as u32,
            tab_off: ws.tab_off as u32,
            ..Default::default()
        };
        theta_transform(b, &tp);
    }
    let st_t = StatsParams { rows: split.n_train as u32, cols: dt as u32, off: 0, stats_off: ws.stats_off as u32 };
    let st_x = StatsParams {
        rows: split.n_train as u32,
        cols: dx as u32,
        off: (n * dt) as u32,
        stats_off: (ws.stats_off + 2 * dt) as u32,
    };
    stats::column_stats(b, &st_t);
    stats::column_stats(b, &st_x);
    stats::zscore(b, &StatsParams { rows: n as u32, ..st_t });
    stats::zscore(b, &StatsParams { rows: n as u32, ..st_x });
}

/// Runs data preparation once (one submission) and reads the z-score statistics back.
pub(crate) fn prepare(
    gpu: &Gpu,
    cfg: &NetConfig,
    bufs: &Buffers,
    ws: &Workspace,
    split: &Split,
    transform: &ThetaTransform,
) -> Result<ZscoreStats> {
    let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
    let mut b = ProgramBuilder::new(gpu);
    if !transform.is_identity() {
        gpu.queue.write_buffer(&bufs.acts, ws.tab_off as u64 * 4, bytemuck::cast_slice(&transform.gpu_table(dt)));
    }
    record_prepare(&mut b, cfg, ws, split, !transform.is_identity());
    b.build(gpu, bufs.bindings())?.run(gpu)?;
    let s = gpu.read_f32(&bufs.acts, ws.stats_off as u64, 2 * (dt + dx))?;
    let f = |a: &[f32]| a.iter().map(|&v| v as f64).collect::<Vec<f64>>();
    Ok(ZscoreStats {
        theta_mean: f(&s[..dt]),
        theta_std: f(&s[dt..2 * dt]),
        x_mean: f(&s[2 * dt..2 * dt + dx]),
        x_std: f(&s[2 * dt + dx..]),
    })
}

/// Parameters of the `gather_path` kernel for `rows` rows starting at shuffled row
/// `row_offset` (training rows draw fresh noise per step, validation rows fixed noise).
fn gather(cfg: &NetConfig, tc: &TrainConfig, ws: &Workspace, split: &Split, rows: usize, validation: bool, row_offset: usize) -> GatherParams {
    let g = &ws.graph;
    let x_dst = g.x_dest(cfg);
    GatherParams {
        rows: rows as u32,
        dim_theta: cfg.dim_theta as u32,
        dim_x: cfg.dim_x as u32,
        glu: (cfg.conditioning == Conditioning::Glu) as u32,
        n_train: split.n_train as u32,
        row_offset: row_offset as u32,
        validation: validation as u32,
        seed_lo: tc.seed as u32,
        seed_hi: (tc.seed >> 32) as u32,
        theta_off: 0,
        x_off: (split.n * cfg.dim_theta) as u32,
        in_off: g.input as u32,
        in_rs: cfg.input_dim() as u32,
        ctx_off: g.ctx as u32,
        target_off: g.target as u32,
        x_dst_off: x_dst.0 as u32,
        x_dst_rs: x_dst.1 as u32,
        alpha: tc.time_prior_exponent as f32,
        sigma_min: tc.sigma_min as f32,
        bounds_off: ws.bounds_off as u32,
        reflect_margin: tc.reflect.as_ref().map_or(0.0, |r| r.margin as f32),
    }
}

/// Writes the box of training on the reflected density into the workspace, in the
/// z-scored units the gather reads θ in (`(bound − mean) / std` per component).
pub(crate) fn upload_bounds(gpu: &Gpu, bufs: &Buffers, ws: &Workspace, r: &TrainingReflection, stats: &ZscoreStats) {
    gpu.queue.write_buffer(&bufs.acts, ws.bounds_off as u64 * 4, bytemuck::cast_slice(&bounds_z(r, stats)));
}

/// The box of `r` as `gather_path` reads it, `[dt, 2]` (low, high per component):
/// `(bound − mean) / std` with the statistics θ was z-scored with.
fn bounds_z(r: &TrainingReflection, stats: &ZscoreStats) -> Vec<f32> {
    (0..r.low.len())
        .flat_map(|j| {
            let f = |b: f64| ((b - stats.theta_mean[j]) / stats.theta_std[j]) as f32;
            [f(r.low[j]), f(r.high[j])]
        })
        .collect()
}


/// Records the optimiser step: gather + OT path → forward → loss (into the step's slot)
/// → backward → the non-finite check → Adam (skipped when the check flags the step).
pub(crate) fn record_step(
    gpu: &Gpu,
    cfg: &NetConfig,
    tc: &TrainConfig,
    layout: &ParamLayout,
    ws: &Workspace,
    split: &Split,
    binds: Bindings<'_>,
) -> Result<Program> {
    let (g, batch) = (&ws.graph, split.batch);
    let mut b = ProgramBuilder::new(gpu);
    train_step::gather_path(&mut b, &gather(cfg, tc, ws, split, batch, false, 0));
    g.forward(&mut b, cfg, layout, batch);
    let count = batch * cfg.dim_theta;
    let loss = LossParams {
        count: count as u32,
        v_off: g.v as u32,
        target_off: g.target as u32,
        dv_off: g.dv as u32,
        write_dv: 1,
        loss_off: ws.loss_off as u32,
        slot: 0,
        slot_from_step: 1,
        scale: 2.0 / count as f32,
    };
    train_step::fm_loss(&mut b, &loss);
    g.backward(&mut b, cfg, layout, batch);
    let adam = AdamParams {
        n: layout.len as u32,
        off: 0,
        batch_stride: 0, decay_len: 0,
        beta1: tc.beta1 as f32,
        beta2: tc.beta2 as f32,
        eps: tc.eps as f32,
        weight_decay: tc.weight_decay as f32,
    };
    adam::adam_guarded(&mut b, &adam);
    b.build(gpu, binds)
}

/// Records the moving average's step (`ema`, one dispatch, after the optimiser step in
/// the same pass); `None` when `tc.ema_decay` is 0.
pub(crate) fn record_ema(gpu: &Gpu, tc: &TrainConfig, layout: &ParamLayout, bufs: &Buffers) -> Result<Option<Program>> {
    let Some(e) = &bufs.ema else { return Ok(None) };
    let mut b = ProgramBuilder::new(gpu);
    adam::ema(&mut b, &EmaParams { n: layout.len as u32, off: 0, decay: tc.ema_decay as f32, ..Default::default() });
    // `ema` reads the parameters through the gradients' slot and writes the average
    // through the parameters' slot (shaders/adam_ema.wgsl).
    let binds = Bindings {
        params: Some(&e.avg),
        grads: Some(&bufs.params),
        moments: Some((&bufs.m, &bufs.v)),
        step: Some(&bufs.step),
        ..Default::default()
    };
    Ok(Some(b.build(gpu, binds)?))
}

/// Records validation (fixed noise, forward + loss only, one loss slot per chunk of at
/// most `batch` rows); `None` without validation rows.
pub(crate) fn record_validation(
    gpu: &Gpu,
    cfg: &NetConfig,
    tc: &TrainConfig,
    layout: &ParamLayout,
    ws: &Workspace,
    split: &Split,
    binds: Bindings<'_>,
) -> Result<Option<Program>> {
    if split.n_val == 0 {
        return Ok(None);
    }
    let (g, batch) = (&ws.graph, split.batch);
    let mut b = ProgramBuilder::new(gpu);
    for c in 0..split.val_chunks() {
        let rows = batch.min(split.n_val - c * batch);
        train_step::gather_path(&mut b, &gather(cfg, tc, ws, split, rows, true, split.n_train + c * batch));
        g.forward(&mut b, cfg, layout, rows);
        let loss = LossParams {
            count: (rows * cfg.dim_theta) as u32,
            v_off: g.v as u32,
            target_off: g.target as u32,
            dv_off: 0,
            write_dv: 0,
            loss_off: ws.loss_off as u32,
            slot: (split.steps_per_epoch + c) as u32,
            slot_from_step: 0,
            scale: 0.0,
        };
        train_step::fm_loss(&mut b, &loss);
    }
    Ok(Some(b.build(gpu, binds)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reflection_box_is_z_scored_like_theta() {
        let r = TrainingReflection { low: vec![-1.0, 2.0], high: vec![1.0, 6.0], margin: 0.1 };
        let stats = ZscoreStats { theta_mean: vec![0.5, 4.0], theta_std: vec![0.5, 2.0], x_mean: vec![], x_std: vec![] };
        assert_eq!(bounds_z(&r, &stats), [-3.0, 1.0, -1.0, 1.0]);
    }
}
