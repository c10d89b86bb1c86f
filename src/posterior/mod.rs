//! Posterior sampling: integrate the learned vector field from t = 0 (θ₀ ~ N(0, I))
//! to t = 1 on the GPU, with fixed-step `rk4` or adaptive `dopri5` (per-sample step
//! size and error control), for one observation x_o. Log-densities
//! ([`Posterior::log_prob`], [`Posterior::sample_and_log_prob`]) are in `density.rs`.
//!
//! The x-dependent part of the network is computed once per chunk, not per step. Samples are
//! produced in chunks that respect the device's binding and dispatch limits; only the
//! final samples (original units) are read back, plus one 4-byte active-row count per
//! few dopri5 steps.
//!
//! With a parameter transform ([`crate::transform`]) the ODE runs in the z-scored
//! θ' = T(θ) space the model was trained in; the last dispatch of a chunk un-z-scores
//! and applies T⁻¹ (one `theta_transform` dispatch instead of the `affine` one).

use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{affine, ode, transform::theta_transform};
use crate::kernels::{
    AffineParams, Arena, AxpyMode, AxpyParams, Bindings, FinParams, InitParams, ProgramBuilder, TransformMode,
    TransformParams,
};
use crate::model::{BoxPrior, Model};
use crate::net::{EvalGraph, NetConfig, ParamLayout};
use crate::transform::ThetaTransform;

mod bench;
mod density;
pub use bench::{bench_log_prob, LogProbBench};
pub use density::{Divergence, LogProbOptions};

/// ODE solver for the probability-flow ODE dθ/dt = v(t, θ, x_o).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Solver {
    /// Classic 4th-order Runge–Kutta with `steps` equal steps on [0, 1].
    Rk4 {
        /// Number of steps (4 field evaluations each).
        steps: usize,
    },
    /// Dormand–Prince 5(4) with per-sample adaptive steps.
    Dopri5 {
        /// Absolute tolerance (z-scored θ units).
        atol: f64,
        /// Relative tolerance.
        rtol: f64,
    },
}

impl Default for Solver {
    fn default() -> Self {
        Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }
    }
}

/// Options of [`Posterior::sample`].
#[derive(Clone, Debug)]
pub struct SampleOptions {
    /// ODE solver.
    pub solver: Solver,
    /// Seed of θ₀ (Philox key).
    pub seed: u64,
    /// Samples per GPU chunk (None: [`Gpu::default_chunk`], capped by the device limits).
    pub chunk_size: Option<usize>,
    /// Reject samples outside the model's box prior and draw again (default true).
    pub reject_outside_prior: bool,
    /// Give up with [`Error::LowAcceptance`] when rejection sampling has not finished
    /// after this many seconds.
    pub max_seconds: Option<f64>,
}

impl Default for SampleOptions {
    fn default() -> Self {
        SampleOptions { solver: Solver::default(), seed: 0, chunk_size: None, reject_outside_prior: true, max_seconds: None }
    }
}

/// What sampling did.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct SampleReport {
    /// Samples returned.
    pub returned: usize,
    /// Samples drawn from the flow (≥ returned when rejecting).
    pub proposed: usize,
    /// returned / proposed among the samples checked against the prior.
    pub acceptance_rate: f64,
    /// Mean accepted ODE steps per sample (dopri5) or the fixed step count (rk4).
    pub mean_steps: f64,
    /// Mean rejected ODE steps per sample (dopri5).
    pub mean_rejected_steps: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// The flow posterior q(θ | x_o) of a model for one observation, resident on the GPU.
pub struct Posterior<'g> {
    gpu: &'g Gpu,
    cfg: NetConfig,
    layout: ParamLayout,
    params: wgpu::Buffer,
    theta_mean: Vec<f64>,
    theta_std: Vec<f64>,
    x_z: Vec<f32>,
    prior: Option<BoxPrior>,
    transform: ThetaTransform,
}

/// dopri5 tableau rows a_s (stages 2..7) and nodes c_s.
const DOPRI_A: [(f32, [f32; 6]); 6] = [
    (0.2, [0.2, 0.0, 0.0, 0.0, 0.0, 0.0]),
    (0.3, [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0]),
    (0.8, [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0]),
    (8.0 / 9.0, [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0]),
    (1.0, [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0]),
    (1.0, [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0]),
];

/// Initial dopri5 step and smallest step (always accepted), in units of t.
const DOPRI_H0: f32 = 0.05;
const DOPRI_HMIN: f32 = 1e-5;
/// rk4 steps recorded per submission.
const RK4_STEPS_PER_SUBMIT: usize = 64;
/// dopri5 steps recorded per submission between active-count checks.
const DOPRI_STEPS_PER_SUBMIT: usize = 8;
/// Safety cap on dopri5 steps per chunk.
const DOPRI_MAX_STEPS: usize = 20_000;

/// Offsets (f32 elements) of an ODE chunk's state, for [`push_stage_input`].
pub(crate) struct StageOffsets {
    pub n: usize,
    pub y: usize,
    pub t: usize,
    pub h: usize,
    pub k: usize,
    pub tin: usize,
}

/// Records the Runge–Kutta stage input `tin[i] = [t_i + c h_i, y_i + h_i Σ_s coef_s k_s,i]`
/// (first `d_net` of the `d_state` components; k_s stored `[n, d_state]` each).
pub(crate) fn push_stage_input(b: &mut ProgramBuilder, o: &StageOffsets, d_state: usize, d_net: usize, c: f32, coef: &[f32]) {
    let mut cf = [0f32; 8];
    cf[..coef.len()].copy_from_slice(coef);
    ode::ode_axpy(
        b,
        &AxpyParams {
            n: o.n as u32,
            d: d_state as u32,
            d_net: d_net as u32,
            nk: coef.len() as u32,
            y_off: o.y as u32,
            t_off: o.t as u32,
            h_off: o.h as u32,
            k_off: o.k as u32,
            k_stride: (o.n * d_state) as u32,
            out_off: o.tin as u32,
            out_rs: (d_net + 1) as u32,
            mode: AxpyMode::Stage as u32,
            c,
            pad: [0.0; 3],
            coef: cf,
        },
    );
}

/// Workspace layout of one ODE chunk.
struct OdeGraph {
    n: usize,
    eval: EvalGraph,
    y: usize,
    t: usize,
    h: usize,
    stats: usize,
    active: usize,
    count: usize,
    k: usize,
    tin: usize,
    out: usize,
    scale: usize,
    shift: usize,
    tab: usize,
}

impl OdeGraph {
    fn floats_per_row(cfg: &NetConfig) -> usize {
        let d = cfg.dim_theta;
        EvalGraph::floats_per_row(cfg) + 10 * d + 8
    }

    fn new(cfg: &NetConfig, n: usize) -> (OdeGraph, usize) {
        let d = cfg.dim_theta;
        let mut a = Arena::default();
        let eval = EvalGraph::new(cfg, n, &mut a);
        let g = OdeGraph {
            n,
            eval,
            y: a.alloc(n * d),
            t: a.alloc(n),
            h: a.alloc(n),
            stats: a.alloc(2 * n),
            active: a.alloc(n),
            count: a.alloc(1),
            k: a.alloc(7 * n * d),
            tin: a.alloc(n * (d + 1)),
            out: a.alloc(n * d),
            scale: a.alloc(d),
            shift: a.alloc(d),
            tab: a.alloc(4 * d),
        };
        (g, a.len())
    }

    /// Records `k_s = v(tin)`, after building tin from y, h and k_0..k_{s-1}.
    fn stage(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout, s: usize, c: f32, coef: &[f32]) {
        let d = cfg.dim_theta;
        let offs = StageOffsets { n: self.n, y: self.y, t: self.t, h: self.h, k: self.k, tin: self.tin };
        push_stage_input(b, &offs, d, d, c, coef);
        self.eval.forward(b, cfg, layout, self.n, self.tin, self.k + s * self.n * d);
    }

    fn fin_params(&self, d: usize, atol: f32, rtol: f32) -> FinParams {
        FinParams {
            n: self.n as u32,
            d: d as u32,
            d_err: d as u32,
            pad0: 0,
            y_off: self.y as u32,
            t_off: self.t as u32,
            h_off: self.h as u32,
            k_off: self.k as u32,
            k_stride: (self.n * d) as u32,
            stats_off: self.stats as u32,
            active_off: self.active as u32,
            count_off: self.count as u32,
            t1: 1.0,
            atol,
            rtol,
            h_min: DOPRI_HMIN,
        }
    }
}

/// Runs a recorded dopri5 solve to the end: `start` once, then `step` programs,
/// `DOPRI_STEPS_PER_SUBMIT` per submission, each submission ending with `count` and a
/// 4-byte readback of the active-row count at `count_off` in `acts`.
///
/// # Errors
/// [`Error::Invalid`] when rows are still active after `DOPRI_MAX_STEPS` steps (`what`
/// and `hint` complete the message), GPU errors.
#[allow(clippy::too_many_arguments)]
pub(crate) fn run_dopri5(
    gpu: &Gpu,
    start: &crate::kernels::Program,
    step: &crate::kernels::Program,
    count: &crate::kernels::Program,
    acts: &wgpu::Buffer,
    count_off: usize,
    what: &str,
    hint: &str,
) -> Result<()> {
    let mut taken = 0usize;
    loop {
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            if taken == 0 {
                start.record(gpu, &mut pass)?;
            }
            for _ in 0..DOPRI_STEPS_PER_SUBMIT {
                step.record(gpu, &mut pass)?;
            }
            count.record(gpu, &mut pass)?;
        }
        taken += DOPRI_STEPS_PER_SUBMIT;
        let staging = gpu.copy_to_staging(&mut enc, acts, count_off as u64, 1);
        gpu.submit(enc)?;
        let active = gpu.map_staging(&staging, 1)?[0];
        if active == 0.0 {
            return Ok(());
        }
        if taken >= DOPRI_MAX_STEPS {
            return Err(Error::invalid(format!(
                "dopri5 did not {what} within {DOPRI_MAX_STEPS} steps for {active} rows; loosen --atol/--rtol {hint}"
            )));
        }
    }
}

/// How many samples to draw in the next rejection round, when `need` are missing after
/// `proposed` draws of which `accepted` fell inside the prior box: no margin while
/// nothing was rejected, else `need / rate` with a 10 % margin; a first pilot round of
/// at most 256 when a time limit must be honoured; never more than 1000 × need.
pub(crate) fn next_draw(need: usize, proposed: usize, accepted: usize, reject: bool, pilot: bool) -> usize {
    let draw = if !reject {
        need
    } else if proposed > 0 {
        if accepted == proposed {
            need
        } else {
            let rate = (accepted as f64 / proposed as f64).max(1e-3);
            ((need as f64 / rate) * 1.1).ceil() as usize + 16
        }
    } else if pilot {
        need.min(256)
    } else {
        need
    };
    draw.min(need.max(1) * 1000)
}

/// After a rejection round: with `missing` samples still to draw, stops with
/// [`Error::LowAcceptance`] when the remaining draws would overrun `max_seconds`
/// (extrapolated from the time so far) or more than 1000 × n have been proposed.
pub(crate) fn check_rejection(
    report: &SampleReport,
    accepted: usize,
    missing: usize,
    n: usize,
    start: Instant,
    max_seconds: Option<f64>,
) -> Result<()> {
    if missing == 0 {
        return Ok(());
    }
    if let Some(limit) = max_seconds {
        let el = start.elapsed().as_secs_f64();
        let per_sample = el / report.proposed.max(1) as f64;
        let remaining = missing as f64 / report.acceptance_rate.max(1e-9);
        if el + per_sample * remaining > limit {
            return Err(Error::LowAcceptance(format!(
                "only {:.3}% of posterior samples fall inside the prior support ({accepted} of {} proposed); \
                 {missing} more samples would take about {:.0} s, over the limit of {limit} s \
                 (raise --max-sampling-time, or use --no-reject to keep samples outside the prior)",
                100.0 * report.acceptance_rate,
                report.proposed,
                per_sample * remaining
            )));
        }
    }
    if report.proposed > 1000 * n.max(1) {
        return Err(Error::LowAcceptance(format!(
            "acceptance rate {:.2e} is too low to draw {n} samples inside the prior support",
            report.acceptance_rate
        )));
    }
    Ok(())
}

/// Checks the solver options of [`Posterior::sample`].
fn check_solver(opts: &SampleOptions) -> Result<()> {
    if opts.chunk_size == Some(0) {
        return Err(Error::usage("--chunk-size must be positive"));
    }
    match opts.solver {
        Solver::Rk4 { steps: 0 } => Err(Error::usage("--steps must be positive")),
        Solver::Dopri5 { atol, rtol } if !(atol > 0.0 && rtol >= 0.0) => {
            Err(Error::usage("--atol must be positive and --rtol non-negative"))
        }
        _ => Ok(()),
    }
}

impl<'g> Posterior<'g> {
    /// Uploads the model and runs the x-only part of the network for `observation`
    /// (`[dim_x]`, original units).
    ///
    /// # Errors
    /// [`Error::Invalid`] if the observation has the wrong length or is not finite;
    /// GPU errors.
    pub fn new(gpu: &'g Gpu, model: &Model, observation: &[f64]) -> Result<Posterior<'g>> {
        let cfg = model.info.net.clone();
        if observation.len() != cfg.dim_x {
            return Err(Error::invalid(format!(
                "the observation has {} values, the model expects dim_x = {}",
                observation.len(),
                cfg.dim_x
            )));
        }
        if let Some(j) = observation.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("observation value {} is not finite", j + 1)));
        }
        let layout = cfg.layout();
        if model.params.len() != layout.len {
            return Err(Error::invalid("model parameters do not match the network shape"));
        }
        let mut observation = observation.to_vec();
        model.info.x_transform.apply(&mut observation, cfg.dim_x).map_err(|e| match e {
            Error::Invalid(m) => Error::Invalid(format!("observation: {m}")),
            e => e,
        })?;
        let x_z = observation
            .iter()
            .zip(model.x_mean.iter().zip(&model.x_std))
            .map(|(&x, (&m, &s))| ((x - m) / s) as f32)
            .collect();
        model.info.transform.validate(cfg.dim_theta)?;
        let transform = ThetaTransform::new(model.info.transform.resolved(cfg.dim_theta));
        let params = gpu.storage_from("fmpe posterior params", &model.params);
        Ok(Posterior {
            gpu,
            cfg,
            layout,
            params,
            theta_mean: model.theta_mean.clone(),
            theta_std: model.theta_std.clone(),
            x_z,
            prior: model.info.prior.clone(),
            transform,
        })
    }

    /// The box prior used for rejection, if any.
    pub fn prior(&self) -> Option<&BoxPrior> {
        self.prior.as_ref()
    }

    /// The model's parameter transform (one bijection per component).
    pub fn transform(&self) -> &ThetaTransform {
        &self.transform
    }

    /// Records the map from the z-scored ODE state `[n, d]` (row stride `in_rs` at
    /// `in_off` in acts) to samples in original units `[n, d]` at `out_off`: `affine`
    /// without a transform, else one `theta_transform` (un-z-score, then T⁻¹), adding
    /// `log |dθ'/dθ|` to `acts[ld_off + i]` when `ld_off` is given. The transform table
    /// must be at `tab_off` (see [`Posterior::write_constants`]).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn push_to_original(
        &self,
        b: &mut ProgramBuilder,
        n: usize,
        in_off: usize,
        in_rs: usize,
        out_off: usize,
        scale_off: usize,
        shift_off: usize,
        tab_off: usize,
        ld_off: Option<usize>,
    ) {
        let d = self.cfg.dim_theta;
        if self.transform.is_identity() {
            let p = AffineParams {
                n: n as u32,
                d: d as u32,
                in_off: in_off as u32,
                in_rs: in_rs as u32,
                out_off: out_off as u32,
                scale_off: scale_off as u32,
                shift_off: shift_off as u32,
                pad: 0,
            };
            affine::affine(b, &p);
        } else {
            let p = TransformParams {
                n: n as u32,
                d: d as u32,
                mode: TransformMode::Inverse as u32,
                flags: TransformParams::ZSCORE | ld_off.map_or(0, |_| TransformParams::LOG_DET),
                in_off: in_off as u32,
                in_rs: in_rs as u32,
                out_off: out_off as u32,
                out_rs: d as u32,
                tab_off: tab_off as u32,
                ld_off: ld_off.unwrap_or(0) as u32,
                scale_off: scale_off as u32,
                shift_off: shift_off as u32,
            };
            theta_transform(b, &p);
        }
    }

    /// Uploads the per-chunk constants of an ODE workspace: z-scored x_o at `x_off`,
    /// θ' std and mean at `scale_off` / `shift_off`, and the transform table at
    /// `tab_off` (when there is a transform).
    pub(crate) fn write_constants(&self, acts: &wgpu::Buffer, x_off: usize, scale_off: usize, shift_off: usize, tab_off: usize) {
        let q = &self.gpu.queue;
        q.write_buffer(acts, x_off as u64 * 4, bytemuck::cast_slice(&self.x_z));
        let sc: Vec<f32> = self.theta_std.iter().map(|&v| v as f32).collect();
        let sh: Vec<f32> = self.theta_mean.iter().map(|&v| v as f32).collect();
        q.write_buffer(acts, scale_off as u64 * 4, bytemuck::cast_slice(&sc));
        q.write_buffer(acts, shift_off as u64 * 4, bytemuck::cast_slice(&sh));
        if !self.transform.is_identity() {
            q.write_buffer(acts, tab_off as u64 * 4, bytemuck::cast_slice(&self.transform.gpu_table(self.cfg.dim_theta)));
        }
    }

    /// Draws `n` posterior samples `[n, dim_theta]` (row-major, original units; with a
    /// parameter transform, the flow's samples in θ' space mapped back by T⁻¹ on the
    /// GPU). With a box prior and `reject_outside_prior`, samples outside the box are
    /// discarded and redrawn (with a logit transform of the box none are); the report
    /// gives the acceptance rate.
    ///
    /// # Errors
    /// [`Error::LowAcceptance`] when rejection does not finish within `max_seconds`,
    /// [`Error::Invalid`] for bad options, GPU errors.
    pub fn sample(&self, n: usize, opts: &SampleOptions) -> Result<(Vec<f64>, SampleReport)> {
        let start = Instant::now();
        let d = self.cfg.dim_theta;
        check_solver(opts)?;
        let mut report = SampleReport::default();
        let mut out: Vec<f64> = Vec::new();
        n.checked_mul(d)
            .and_then(|len| out.try_reserve_exact(len).ok())
            .ok_or_else(|| Error::usage(format!("--num-samples {n} does not fit in memory")))?;
        // A logit transform on exactly the prior box keeps every sample inside it: no
        // rejection, so no pilot round either.
        let reject = opts.reject_outside_prior && self.prior.as_ref().is_some_and(|p| !self.transform.covers(p));
        let mut next_index: u64 = 0;
        let mut round: u32 = 0;
        let mut steps_sum = 0.0;
        let mut rej_sum = 0.0;
        let mut accepted_total = 0usize;
        while out.len() < n * d {
            let need = n - out.len() / d;
            let draw = next_draw(need, report.proposed, accepted_total, reject, opts.max_seconds.is_some());
            let (samples, st, sr) = self.sample_raw(draw, opts, next_index, round)?;
            next_index += draw as u64;
            round += 1;
            steps_sum += st;
            rej_sum += sr;
            report.proposed += draw;
            for row in samples.chunks(d) {
                if !reject || self.prior.as_ref().is_some_and(|p| p.contains(row)) {
                    accepted_total += 1;
                    if out.len() < n * d {
                        out.extend_from_slice(row);
                    }
                }
            }
            report.returned = out.len() / d;
            report.acceptance_rate = accepted_total as f64 / report.proposed as f64;
            check_rejection(&report, accepted_total, n - out.len() / d, n, start, opts.max_seconds)?;
        }
        report.mean_steps = steps_sum / report.proposed.max(1) as f64;
        report.mean_rejected_steps = rej_sum / report.proposed.max(1) as f64;
        report.seconds = start.elapsed().as_secs_f64();
        Ok((out, report))
    }

    /// Dispatches recorded per ODE step for a chunk (all rows step together): rk4 is
    /// 4 × (stage input + network) + update; dopri5 is 6 × (stage input + network) +
    /// error control (FSAL: k₁ is reused). Submissions: one per `RK4_STEPS_PER_SUBMIT` rk4
    /// steps, one per `DOPRI_STEPS_PER_SUBMIT` dopri5 steps (with a 4-byte readback).
    pub fn ode_step_dispatches(&self, solver: Solver) -> (usize, usize) {
        let (g, _) = OdeGraph::new(&self.cfg, 1);
        let mut b = ProgramBuilder::new(self.gpu);
        match solver {
            Solver::Rk4 { .. } => {
                for (s, (c, a)) in [(0.0, &[][..]), (0.5, &[0.5][..]), (0.5, &[0.0, 0.5][..]), (1.0, &[0.0, 0.0, 1.0][..])]
                    .into_iter()
                    .enumerate()
                {
                    g.stage(&mut b, &self.cfg, &self.layout, s, c, a);
                }
                (b.len() + 1, RK4_STEPS_PER_SUBMIT)
            }
            Solver::Dopri5 { .. } => {
                for (s, (c, a)) in DOPRI_A.iter().enumerate() {
                    g.stage(&mut b, &self.cfg, &self.layout, s + 1, *c, &a[..s + 1]);
                }
                (b.len() + 1, DOPRI_STEPS_PER_SUBMIT)
            }
        }
    }

    /// Largest chunk of samples the device limits allow.
    pub fn max_chunk(&self, requested: Option<usize>) -> usize {
        let per_row = OdeGraph::floats_per_row(&self.cfg) as u64;
        let by_binding = (self.gpu.max_binding_floats().saturating_sub(1 << 16) / per_row.max(1)) as usize;
        let by_dispatch = self.gpu.limits().max_compute_workgroups_per_dimension as usize * 64;
        requested.unwrap_or(self.gpu.default_chunk()).min(by_binding).min(by_dispatch).max(1)
    }

    /// Draws `n` samples without rejection: indices `first_index..first_index+n` of
    /// round `round` (each index has its own θ₀). Returns the samples `[n, dim_theta]`
    /// (original units) and the summed accepted / rejected step counts.
    fn sample_raw(&self, n: usize, opts: &SampleOptions, first_index: u64, round: u32) -> Result<(Vec<f64>, f64, f64)> {
        let chunk = self.max_chunk(opts.chunk_size);
        let mut out = Vec::with_capacity(n * self.cfg.dim_theta);
        let mut steps = 0.0;
        let mut rejected = 0.0;
        let mut done = 0usize;
        while done < n {
            let c = chunk.min(n - done);
            let (s, a, r) = self.solve_chunk(c, opts, first_index + done as u64, round)?;
            out.extend(s.into_iter().map(|v| v as f64));
            steps += a;
            rejected += r;
            done += c;
        }
        Ok((out, steps, rejected))
    }

    fn solve_chunk(&self, n: usize, opts: &SampleOptions, first_index: u64, round: u32) -> Result<(Vec<f32>, f64, f64)> {
        let gpu = self.gpu;
        let cfg = &self.cfg;
        let layout = &self.layout;
        let d = cfg.dim_theta;
        let (g, len) = OdeGraph::new(cfg, n);
        let acts = gpu.storage("fmpe ode workspace", len as u64 * 4);
        // Constants: z-scored x_o, and the map back to original units.
        self.write_constants(&acts, g.eval.x, g.scale, g.shift, g.tab);
        let binds = Bindings { acts: Some(&acts), params: Some(&self.params), ..Default::default() };

        // Start: precompute, θ₀ ~ N(0, I), k_1 = v(0, θ₀) (dopri5) or nothing (rk4).
        let h0 = match opts.solver {
            Solver::Rk4 { steps } => {
                if steps == 0 {
                    return Err(Error::usage("--steps must be positive"));
                }
                1.0 / steps as f32
            }
            Solver::Dopri5 { atol, rtol } => {
                if !(atol > 0.0 && rtol >= 0.0) {
                    return Err(Error::usage("--atol must be positive and --rtol non-negative"));
                }
                DOPRI_H0
            }
        };
        let mut b = ProgramBuilder::new(gpu);
        g.eval.precompute(&mut b, cfg, layout);
        ode::ode_init(
            &mut b,
            &InitParams {
                n: n as u32,
                d: d as u32,
                d_noise: d as u32,
                noise: 1,
                y_off: g.y as u32,
                t_off: g.t as u32,
                h_off: g.h as u32,
                stats_off: g.stats as u32,
                active_off: g.active as u32,
                first_index: first_index as u32,
                round,
                seed_lo: opts.seed as u32,
                seed_hi: (opts.seed >> 32) as u32,
                pad0: 0,
                t0: 0.0,
                h0,
            },
        );
        let affine = |b: &mut ProgramBuilder| self.push_to_original(b, n, g.y, d, g.out, g.scale, g.shift, g.tab, None);
        match opts.solver {
            Solver::Rk4 { steps } => {
                // Everything in one submission: start, `steps` replays of one step, finish.
                let start = b.build(gpu, binds)?;
                let mut b = ProgramBuilder::new(gpu);
                g.stage(&mut b, cfg, layout, 0, 0.0, &[]);
                g.stage(&mut b, cfg, layout, 1, 0.5, &[0.5]);
                g.stage(&mut b, cfg, layout, 2, 0.5, &[0.0, 0.5]);
                g.stage(&mut b, cfg, layout, 3, 1.0, &[0.0, 0.0, 1.0]);
                ode::ode_axpy(
                    &mut b,
                    &AxpyParams {
                        n: n as u32,
                        d: d as u32,
                        d_net: d as u32,
                        nk: 4,
                        y_off: g.y as u32,
                        t_off: g.t as u32,
                        h_off: g.h as u32,
                        k_off: g.k as u32,
                        k_stride: (n * d) as u32,
                        mode: AxpyMode::Update as u32,
                        coef: [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0, 0.0, 0.0, 0.0, 0.0],
                        ..Default::default()
                    },
                );
                let step = b.build(gpu, binds)?;
                let mut b = ProgramBuilder::new(gpu);
                affine(&mut b);
                let finish = b.build(gpu, binds)?;
                // At most RK4_STEPS_PER_SUBMIT steps per command buffer (bounded GPU time
                // per submission); the samples are read back once, at the end.
                let mut done = 0usize;
                let mut first = true;
                let staging = loop {
                    let now = RK4_STEPS_PER_SUBMIT.min(steps - done);
                    let mut enc = gpu.encoder();
                    {
                        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                        if first {
                            start.record(gpu, &mut pass)?;
                        }
                        for _ in 0..now {
                            step.record(gpu, &mut pass)?;
                        }
                        if done + now == steps {
                            finish.record(gpu, &mut pass)?;
                        }
                    }
                    first = false;
                    done += now;
                    if done == steps {
                        let staging = gpu.copy_to_staging(&mut enc, &acts, g.out as u64, n * d);
                        gpu.submit(enc)?;
                        break staging;
                    }
                    gpu.submit(enc)?;
                };
                let s = gpu.map_staging(&staging, n * d)?;
                Ok((s, (steps * n) as f64, 0.0))
            }
            Solver::Dopri5 { atol, rtol } => {
                // k_1 = f(0, θ₀); the first step is DOPRI_H0 (Hairer's starting-step
                // heuristic measured no fewer steps on trained fields, at one extra evaluation).
                let fp = g.fin_params(d, atol as f32, rtol as f32);
                g.stage(&mut b, cfg, layout, 0, 0.0, &[]);
                let start = b.build(gpu, binds)?;
                let mut b = ProgramBuilder::new(gpu);
                for (s, (c, a)) in DOPRI_A.iter().enumerate() {
                    g.stage(&mut b, cfg, layout, s + 1, *c, &a[..s + 1]);
                }
                ode::dopri5_finalize(&mut b, &fp);
                let step = b.build(gpu, binds)?;
                let mut b = ProgramBuilder::new(gpu);
                ode::dopri5_count(&mut b, &fp);
                let count = b.build(gpu, binds)?;
                let mut b = ProgramBuilder::new(gpu);
                affine(&mut b);
                let finish = b.build(gpu, binds)?;

                run_dopri5(gpu, &start, &step, &count, &acts, g.count, "reach t = 1", "or use --solver rk4")?;
                let mut enc = gpu.encoder();
                {
                    let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
                    finish.record(gpu, &mut pass)?;
                }
                let staging = gpu.copy_to_staging(&mut enc, &acts, g.out as u64, n * d);
                let st_staging = gpu.copy_to_staging(&mut enc, &acts, g.stats as u64, 2 * n);
                gpu.submit(enc)?;
                let s = gpu.map_staging(&staging, n * d)?;
                let st = gpu.map_staging(&st_staging, 2 * n)?;
                let acc: f64 = st.iter().step_by(2).map(|&v| v as f64).sum();
                let rej: f64 = st.iter().skip(1).step_by(2).map(|&v| v as f64).sum();
                Ok((s, acc, rej))
            }
        }
    }
}
