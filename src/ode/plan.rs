//! A plan: the workspace and recorded programs of one chunk size, built once and
//! reused for every chunk and rejection round of that size; the rk4 and dopri5 drivers.
//!
//! Layers, from the GPU up:
//! 1. [`record_step`] records one step of either solver (the only place the tableaus
//!    are turned into dispatches; [`step_dispatches`] counts the same recording).
//! 2. [`Plan::record_pass`] records one compute pass of a chunk into a caller's
//!    `wgpu::CommandEncoder`: the start (x-only precompute the first time, or with
//!    each chunk of a plan with an observation per row; the per-chunk init, the first
//!    stage), any number of steps, the dopri5 active-row count, the
//!    finish (map to original units, log-density). A whole fixed-step rk4 solve is one
//!    such pass; nothing in it reads back or submits.
//! 3. [`Plan::solve`] is the host-driven loop: submissions of at most
//!    `RK4_STEPS_PER_SUBMIT` rk4 steps, or `DOPRI_STEPS_PER_SUBMIT` dopri5 steps each
//!    followed by a 4-byte read of the active-row count, then the readback of the
//!    results.

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{Bindings, Program, ProgramBuilder};
use crate::net::{NetConfig, ParamLayout};
use crate::transform::ThetaTransform;

use super::field::FieldKind;
use super::record::{self, DivContext, Init};
use super::workspace::Workspace;
use super::{
    Direction, Solver, DOPRI_A, DOPRI_H0, DOPRI_MAX_STEPS, DOPRI_STEPS_PER_SUBMIT, RK4_STAGES, RK4_STEPS_PER_SUBMIT,
    RK4_WEIGHTS,
};

/// The network on the GPU: shape, parameter layout and uploaded weights.
pub(crate) struct Net<'a> {
    /// Network shape.
    pub cfg: &'a NetConfig,
    /// Parameter layout of `params`.
    pub layout: &'a ParamLayout,
    /// Flat parameters `[layout.len]`.
    pub params: &'a wgpu::Buffer,
    /// Its texture mirror, in sync with `params` ([`crate::gpu::ParamsTexture`]).
    pub params_tex: Option<&'a wgpu::TextureView>,
}

/// Constants uploaded into each new workspace.
pub(crate) struct Constants<'a> {
    /// z-scored (transformed) observation `[dim_x]`; empty for a plan with an
    /// observation per row (uploaded with each chunk by [`Plan::solve_rows`]).
    pub x_z: &'a [f32],
    /// Mean of θ' `[dim_theta]`.
    pub theta_mean: &'a [f64],
    /// Std of θ' `[dim_theta]`.
    pub theta_std: &'a [f64],
    /// Parameter transform θ' = T(θ).
    pub transform: &'a ThetaTransform,
}

/// Everything a plan's programs depend on besides the observation.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct PlanKey {
    /// Rows per chunk.
    pub n: usize,
    /// Field integrated.
    pub field: FieldKind,
    /// Solver and its parameters.
    pub solver: Solver,
    /// Direction of the solve.
    pub direction: Direction,
    /// One observation per row (uploaded with each chunk, see [`Plan::solve_rows`])
    /// instead of one for the whole plan.
    pub per_row_x: bool,
}

/// Where one chunk starts (the only per-chunk inputs).
pub(crate) struct ChunkStart<'a> {
    /// Philox key of θ₀ and of the Hutchinson probes.
    pub seed: u64,
    /// Index of the chunk's first row among all rows drawn (Philox counter).
    pub first_index: u64,
    /// Rejection round (Philox counter of θ₀).
    pub round: u32,
    /// Backward solves: the z-scored θ' `[n, dim_theta]` to start from.
    pub theta_z: Option<&'a [f32]>,
}

/// A run of consecutive rows of a chunk drawn for one observation: `rows` rows whose
/// Philox counters start at `first_index`, in rejection round `round` (the rows a
/// single-observation draw would give the same indices).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Segment {
    /// Rows in the run.
    pub rows: usize,
    /// Philox counter of the run's first row.
    pub first_index: u64,
    /// Rejection round.
    pub round: u32,
}

/// The inputs of a chunk with an observation per row ([`Plan::solve_rows`]).
pub(crate) struct RowsStart<'a> {
    /// Philox key of θ₀ and of the Hutchinson probes.
    pub seed: u64,
    /// The chunk's rows, run by run (their row counts sum to the plan's `n`).
    pub segments: &'a [Segment],
    /// z-scored observation of each row `[n, dim_x]`.
    pub x_z: &'a [f32],
    /// Backward solves: the z-scored θ' `[n, dim_theta]` to start from.
    pub theta_z: Option<&'a [f32]>,
}

/// Results of one chunk.
pub(crate) struct ChunkOutput {
    /// Samples `[n, dim_theta]` in original units (forward solves; else empty).
    pub samples: Vec<f32>,
    /// Log-densities `[n]` (divergence fields; else empty).
    pub log_q: Vec<f32>,
    /// Accepted steps summed over the rows.
    pub accepted: f64,
    /// Rejected steps summed over the rows (dopri5).
    pub rejected: f64,
    /// Per-row accepted and rejected steps `[n, 2]` (dopri5; empty for rk4).
    pub row_steps: Vec<f32>,
}

/// Where [`Plan::record_draw`] copies a chunk's results: byte offsets into `buffer` of
/// the samples `[n, dim_theta]`, the log-densities `[n]` (divergence fields) and the
/// per-row dopri5 active flags `[n]` (1.0: not at t = 1 yet).
pub(crate) struct CopyOut<'a> {
    /// Destination (needs `COPY_DST`).
    pub buffer: &'a wgpu::Buffer,
    /// Byte offset of the samples.
    pub samples_at: u64,
    /// Byte offset of the log-densities, if wanted.
    pub log_prob_at: Option<u64>,
    /// Byte offset of the active flags, if wanted.
    pub active_at: Option<u64>,
}

/// Workspace and programs of one [`PlanKey`].
pub(crate) struct Plan {
    /// What the plan was built for.
    pub key: PlanKey,
    ws: Workspace,
    acts: wgpu::Buffer,
    params: wgpu::Buffer,
    params_tex: Option<wgpu::TextureView>,
    precompute: Program,
    precomputed: bool,
    start: Option<Program>,
    step: Program,
    count: Option<Program>,
    finish: Program,
}

/// Time at which a solve starts and ends, and its signed first step.
fn span(key: &PlanKey) -> (f32, f32, f32) {
    let forward = key.direction == Direction::Forward;
    let h = match key.solver {
        Solver::Rk4 { steps } => 1.0 / steps as f32,
        Solver::Dopri5 { .. } => DOPRI_H0,
    };
    if forward {
        (0.0, 1.0, h)
    } else {
        (1.0, 0.0, -h)
    }
}

/// Records stage `s`: the stage input from y, h and k_0..k_{s-1}, then
/// `k_s = field(tin)`.
fn record_stage(b: &mut ProgramBuilder, ws: &Workspace, net: &Net<'_>, s: usize, c: f32, coef: &[f32]) {
    record::stage_input(b, ws, c, coef);
    ws.field.record_eval(b, net.cfg, net.layout, ws.n, ws.tin, ws.k_stage(s), &DivContext::of(ws));
}

/// Records one step of `solver` towards `t1`: rk4's 4 stages and update, or dopri5's
/// stages 2..7 (FSAL: k_1 is carried over) and its step control.
pub(crate) fn record_step(b: &mut ProgramBuilder, ws: &Workspace, net: &Net<'_>, solver: Solver, t1: f32) {
    match solver {
        Solver::Rk4 { .. } => {
            for (s, (c, a)) in RK4_STAGES.iter().enumerate() {
                record_stage(b, ws, net, s, *c, a);
            }
            record::rk4_update(b, ws, RK4_WEIGHTS);
        }
        Solver::Dopri5 { atol, rtol } => {
            for (s, (c, a)) in DOPRI_A.iter().enumerate() {
                record_stage(b, ws, net, s + 1, *c, &a[..s + 1]);
            }
            record::dopri5_finalize(b, &record::fin_params(ws, t1, atol as f32, rtol as f32));
        }
    }
}

/// Dispatches recorded per step of `solver` for `field` (whole chunk; all rows step
/// together), from the recording [`Plan`] replays.
pub(crate) fn step_dispatches(gpu: &Gpu, net: &Net<'_>, field: FieldKind, solver: Solver) -> usize {
    let ws = Workspace::new(field, net.cfg, 1, false);
    let mut b = ProgramBuilder::new(gpu);
    record_step(&mut b, &ws, net, solver, 1.0);
    b.len()
}

fn build(gpu: &Gpu, binds: Bindings<'_>, f: impl FnOnce(&mut ProgramBuilder)) -> Result<Program> {
    let mut b = ProgramBuilder::new(gpu);
    f(&mut b);
    b.build(gpu, binds)
}

/// Uploads the observation and the map back to original units into a workspace.
/// With an observation per row (`c.x_z` empty) the rows' observations are uploaded with
/// each chunk instead.
fn write_constants(gpu: &Gpu, acts: &wgpu::Buffer, ws: &Workspace, c: &Constants<'_>) {
    let q = &gpu.queue;
    if !c.x_z.is_empty() {
        q.write_buffer(acts, ws.field.x_off() as u64 * 4, bytemuck::cast_slice(c.x_z));
    }
    let sc: Vec<f32> = c.theta_std.iter().map(|&v| v as f32).collect();
    let sh: Vec<f32> = c.theta_mean.iter().map(|&v| v as f32).collect();
    q.write_buffer(acts, ws.scale as u64 * 4, bytemuck::cast_slice(&sc));
    q.write_buffer(acts, ws.shift as u64 * 4, bytemuck::cast_slice(&sh));
    if !c.transform.is_identity() {
        q.write_buffer(acts, ws.tab as u64 * 4, bytemuck::cast_slice(&c.transform.gpu_table(ws.d)));
    }
}

/// Staging buffers of a chunk's results.
struct Staged {
    log_q: Option<wgpu::Buffer>,
    samples: Option<wgpu::Buffer>,
    stats: Option<wgpu::Buffer>,
}

impl Plan {
    /// Allocates the workspace of `key`, uploads the constants and records the programs.
    ///
    /// # Errors
    /// GPU errors (e.g. a workspace over a binding limit).
    pub(crate) fn new(gpu: &Gpu, net: &Net<'_>, consts: &Constants<'_>, key: PlanKey) -> Result<Plan> {
        let ws = Workspace::new(key.field, net.cfg, key.n, key.per_row_x);
        let acts = gpu.storage("fmpe ode workspace", ws.len as u64 * 4);
        write_constants(gpu, &acts, &ws, consts);
        let binds = Bindings { acts: Some(&acts), params: Some(net.params), params_tex: net.params_tex, ..Default::default() };
        let (_, t1, _) = span(&key);
        let forward = key.direction == Direction::Forward;
        let identity = consts.transform.is_identity();
        let precompute = build(gpu, binds, |b| ws.field.record_precompute(b, net.cfg, net.layout))?;
        let jvp = ws.field.jvp();
        let dopri = matches!(key.solver, Solver::Dopri5 { .. });
        let start = (dopri || (forward && jvp.is_some()))
            .then(|| {
                build(gpu, binds, |b| {
                    if let (Some((j, _)), true) = (jvp, forward) {
                        // Stash log N(θ₀; 0, I).
                        record::density_finish(b, j, &DivContext::of(&ws), crate::kernels::DensityMode::ForwardStart, 0.0);
                    }
                    if dopri {
                        // k_1 = f(t0, y0).
                        record_stage(b, &ws, net, 0, 0.0, &[]);
                    }
                })
            })
            .transpose()?;
        let step = build(gpu, binds, |b| record_step(b, &ws, net, key.solver, t1))?;
        let count = match key.solver {
            Solver::Dopri5 { atol, rtol } => Some(build(gpu, binds, |b| {
                record::dopri5_count(b, &record::fin_params(&ws, t1, atol as f32, rtol as f32))
            })?),
            Solver::Rk4 { .. } => None,
        };
        let log_std: f64 = consts.theta_std.iter().map(|s| s.ln()).sum();
        let finish = build(gpu, binds, |b| match jvp {
            Some((j, _)) => {
                let mode = if forward { crate::kernels::DensityMode::ForwardEnd } else { crate::kernels::DensityMode::LogProb };
                record::density_finish(b, j, &DivContext::of(&ws), mode, -log_std as f32);
                if forward {
                    record::to_original(b, &ws, identity, true);
                }
            }
            None => record::to_original(b, &ws, identity, false),
        })?;
        let (params, params_tex) = (net.params.clone(), net.params_tex.cloned());
        Ok(Plan { key, ws, acts, params, params_tex, precompute, precomputed: false, start, step, count, finish })
    }

    /// Records the per-chunk init: the Hutchinson/exact probes (divergence fields) and
    /// the ODE start state (θ₀ for forward solves, the uploaded state otherwise).
    fn init_program(&self, gpu: &Gpu, c: &ChunkStart<'_>) -> Result<Program> {
        let whole = [Segment { rows: self.ws.n, first_index: c.first_index, round: c.round }];
        self.segments_init_program(gpu, c.seed, &whole)
    }

    /// The init of a chunk made of `segments` (one `ode_init` per run of rows; the
    /// probes of a divergence field need a single run).
    fn segments_init_program(&self, gpu: &Gpu, seed: u64, segments: &[Segment]) -> Result<Program> {
        if segments.iter().map(|s| s.rows).sum::<usize>() != self.ws.n {
            return Err(Error::invalid("the segments of a chunk must cover its rows"));
        }
        if self.ws.field.jvp().is_some() && segments.len() != 1 {
            return Err(Error::invalid("a chunk with log-densities takes one segment"));
        }
        let binds =
            Bindings { acts: Some(&self.acts), params: Some(&self.params), params_tex: self.params_tex.as_ref(), ..Default::default() };
        let (t0, _, h0) = span(&self.key);
        build(gpu, binds, |b| {
            if let Some((j, div)) = self.ws.field.jvp() {
                record::tangent_init(b, j, &DivContext::of(&self.ws), div.mode_scale().0, seed, segments[0].first_index);
            }
            let noise = self.key.direction == Direction::Forward;
            let mut r0 = 0usize;
            for s in segments {
                let init = Init { noise, seed, first_index: s.first_index, round: s.round, t0, h0 };
                record::ode_init_rows(b, &self.ws, r0, s.rows, &init);
                r0 += s.rows;
            }
        })
    }

    /// Records one compute pass of this plan's chunk into `enc`: with `init` (from the
    /// chunk's [`ChunkStart`]), the start of the solve (the x-only precompute the first
    /// time the workspace is used or after new per-row observations were uploaded, the
    /// init, the first dopri5 stage); then `steps` steps;
    /// the dopri5 active-row count into the workspace when `count`; the finish (samples
    /// in original units, log-densities) when `finish`. Records only: the caller submits
    /// `enc` (before recording the next pass of the same plan).
    ///
    /// # Errors
    /// GPU errors; `count` on an rk4 plan.
    pub(crate) fn record_pass(
        &mut self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        init: Option<&Program>,
        steps: usize,
        count: bool,
        finish: bool,
    ) -> Result<()> {
        let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
        if let Some(init) = init {
            if !self.precomputed {
                // Marked done when recorded: every caller today submits what it records
                // (a failed solve drops the plan). A public record-only API must set
                // this after the caller's submit instead.
                self.precompute.record(gpu, &mut pass)?;
                self.precomputed = true;
            }
            init.record(gpu, &mut pass)?;
            if let Some(s) = &self.start {
                s.record(gpu, &mut pass)?;
            }
        }
        for _ in 0..steps {
            self.step.record(gpu, &mut pass)?;
        }
        if count {
            self.count.as_ref().ok_or_else(|| Error::invalid("an rk4 plan has no active-row count"))?.record(gpu, &mut pass)?;
        }
        if finish {
            self.finish.record(gpu, &mut pass)?;
        }
        Ok(())
    }

    /// Records a whole forward draw of one chunk into `enc` with no host decision: the
    /// x-only precompute (always: the caller may never submit `enc`, so the plan's
    /// precompute flag is left as it was), the per-chunk init, the first dopri5 stage,
    /// `steps` steps (rk4: its step count; dopri5: a fixed budget, after which finished
    /// rows are left unchanged by further steps), the finish, and copies of the results
    /// into `dst`. Nothing is submitted or read back.
    ///
    /// # Errors
    /// GPU errors; [`Error::Invalid`] on a backward plan.
    pub(crate) fn record_draw(
        &mut self,
        gpu: &Gpu,
        enc: &mut wgpu::CommandEncoder,
        start: &ChunkStart<'_>,
        steps: usize,
        dst: &CopyOut<'_>,
    ) -> Result<()> {
        if self.key.direction != Direction::Forward || self.key.per_row_x {
            return Err(Error::invalid("record_draw needs a forward plan with one observation"));
        }
        let init = self.init_program(gpu, start)?;
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            self.precompute.record(gpu, &mut pass)?;
            init.record(gpu, &mut pass)?;
            if let Some(s) = &self.start {
                s.record(gpu, &mut pass)?;
            }
            for _ in 0..steps {
                self.step.record(gpu, &mut pass)?;
            }
            self.finish.record(gpu, &mut pass)?;
        }
        let (n, d) = (self.ws.n as u64, self.ws.d as u64);
        enc.copy_buffer_to_buffer(&self.acts, self.ws.out as u64 * 4, dst.buffer, dst.samples_at, n * d * 4);
        if let (Some(at), Some(_)) = (dst.log_prob_at, self.ws.field.jvp()) {
            enc.copy_buffer_to_buffer(&self.acts, self.ws.logq as u64 * 4, dst.buffer, at, n * 4);
        }
        if let Some(at) = dst.active_at {
            enc.copy_buffer_to_buffer(&self.acts, self.ws.active as u64 * 4, dst.buffer, at, n * 4);
        }
        Ok(())
    }

    fn upload_start(&self, gpu: &Gpu, start: &ChunkStart<'_>) {
        if let Some(z) = start.theta_z {
            // State [θ', Δ = 0] (row stride ds).
            let (n, d, ds) = (self.ws.n, self.ws.d, self.ws.ds);
            let mut y = vec![0f32; n * ds];
            for r in 0..n {
                y[r * ds..r * ds + d].copy_from_slice(&z[r * d..(r + 1) * d]);
            }
            gpu.queue.write_buffer(&self.acts, self.ws.y as u64 * 4, bytemuck::cast_slice(&y));
        }
    }

    /// Solves one chunk from `start` to the end and reads back its results.
    ///
    /// # Errors
    /// [`Error::Invalid`] when dopri5 rows are still active after `DOPRI_MAX_STEPS`
    /// steps; GPU errors.
    pub(crate) fn solve(&mut self, gpu: &Gpu, start: &ChunkStart<'_>) -> Result<ChunkOutput> {
        if self.key.per_row_x {
            return Err(Error::invalid("a plan with an observation per row solves through solve_rows"));
        }
        self.upload_start(gpu, start);
        let init = self.init_program(gpu, start)?;
        self.solve_from(gpu, &init)
    }

    /// Solves one chunk whose rows each carry their own observation (a plan made with
    /// `per_row_x`): uploads the rows' observations (the x-only part of the network is
    /// recomputed for them), starts each run of rows from its own Philox counters, and
    /// solves as [`Plan::solve`] does. Every row's arithmetic is the one of a
    /// single-observation plan, so a row's result does not depend on the other rows.
    ///
    /// # Errors
    /// [`Error::Invalid`] on a single-observation plan, observations or segments that
    /// do not match the chunk, several segments with log-densities; as [`Plan::solve`].
    pub(crate) fn solve_rows(&mut self, gpu: &Gpu, start: &RowsStart<'_>) -> Result<ChunkOutput> {
        let dx = start.x_z.len() / self.ws.n.max(1);
        if !self.key.per_row_x || start.x_z.len() != self.ws.n * dx || dx == 0 {
            return Err(Error::invalid("solve_rows needs a per-row plan and one observation per row"));
        }
        let init = self.segments_init_program(gpu, start.seed, start.segments)?;
        gpu.queue.write_buffer(&self.acts, self.ws.field.x_off() as u64 * 4, bytemuck::cast_slice(start.x_z));
        self.precomputed = false;
        let theta = ChunkStart { seed: start.seed, first_index: 0, round: 0, theta_z: start.theta_z };
        self.upload_start(gpu, &theta);
        self.solve_from(gpu, &init)
    }

    /// The solve after the start values are uploaded and the init recorded.
    fn solve_from(&mut self, gpu: &Gpu, init: &Program) -> Result<ChunkOutput> {
        match self.key.solver {
            Solver::Rk4 { steps } => self.solve_rk4(gpu, init, steps),
            Solver::Dopri5 { .. } => self.solve_dopri5(gpu, init),
        }
    }

    /// rk4: one submission when the whole solve fits `RK4_STEPS_PER_SUBMIT` steps (then
    /// one compute pass), else one per that many steps; one readback.
    fn solve_rk4(&mut self, gpu: &Gpu, init: &Program, steps: usize) -> Result<ChunkOutput> {
        let mut enc = gpu.encoder();
        let mut done = 0usize;
        loop {
            let now = RK4_STEPS_PER_SUBMIT.min(steps - done);
            let last = done + now == steps;
            self.record_pass(gpu, &mut enc, (done == 0).then_some(init), now, false, last)?;
            done += now;
            if last {
                break;
            }
            gpu.submit(std::mem::replace(&mut enc, gpu.encoder()))?;
        }
        let staged = self.stage_results(gpu, &mut enc, false);
        gpu.submit(enc)?;
        let mut out = self.read_results(gpu, staged)?;
        out.accepted = (steps * self.ws.n) as f64;
        Ok(out)
    }

    fn solve_dopri5(&mut self, gpu: &Gpu, init: &Program) -> Result<ChunkOutput> {
        let mut taken = 0usize;
        loop {
            let mut enc = gpu.encoder();
            self.record_pass(gpu, &mut enc, (taken == 0).then_some(init), DOPRI_STEPS_PER_SUBMIT, true, false)?;
            taken += DOPRI_STEPS_PER_SUBMIT;
            let staging = gpu.copy_to_staging(&mut enc, &self.acts, self.ws.count as u64, 1);
            gpu.submit(enc)?;
            let active = gpu.map_staging(staging, 1)?[0];
            if active == 0.0 {
                break;
            }
            if taken >= DOPRI_MAX_STEPS {
                let (_, t1, _) = span(&self.key);
                return Err(Error::invalid(format!(
                    "dopri5 did not reach t = {t1} within {DOPRI_MAX_STEPS} steps for {active} rows; \
                     loosen the tolerances (atol, rtol) or use rk4"
                )));
            }
        }
        let mut enc = gpu.encoder();
        self.record_pass(gpu, &mut enc, None, 0, false, true)?;
        let staged = self.stage_results(gpu, &mut enc, true);
        gpu.submit(enc)?;
        self.read_results(gpu, staged)
    }

    /// Records the copies of the results: log-densities (divergence fields), samples
    /// (forward solves), per-row step counts (`stats`).
    fn stage_results(&self, gpu: &Gpu, enc: &mut wgpu::CommandEncoder, stats: bool) -> Staged {
        let (n, d) = (self.ws.n, self.ws.d);
        let log_q = self.ws.field.jvp().map(|_| gpu.copy_to_staging(enc, &self.acts, self.ws.logq as u64, n));
        let samples = (self.key.direction == Direction::Forward)
            .then(|| gpu.copy_to_staging(enc, &self.acts, self.ws.out as u64, n * d));
        let stats = stats.then(|| gpu.copy_to_staging(enc, &self.acts, self.ws.stats as u64, 2 * n));
        Staged { log_q, samples, stats }
    }

    fn read_results(&self, gpu: &Gpu, s: Staged) -> Result<ChunkOutput> {
        let (n, d) = (self.ws.n, self.ws.d);
        let log_q = s.log_q.map(|b| gpu.map_staging(b, n)).transpose()?.unwrap_or_default();
        let samples = s.samples.map(|b| gpu.map_staging(b, n * d)).transpose()?.unwrap_or_default();
        let (mut accepted, mut rejected, mut row_steps) = (0.0, 0.0, Vec::new());
        if let Some(b) = s.stats {
            row_steps = gpu.map_staging(b, 2 * n)?;
            accepted = row_steps.iter().step_by(2).map(|&v| v as f64).sum();
            rejected = row_steps.iter().skip(1).step_by(2).map(|&v| v as f64).sum();
        }
        Ok(ChunkOutput { samples, log_q, accepted, rejected, row_steps })
    }
}

/// Evaluates `[v, ∇·v]` once at `n` given rows (no ODE): `tin` `[n, 1 + dim_theta]`
/// rows `(t, z-scored θ')`; the probes of row `i` are keyed by `(seed, first_index + i)`
/// as in a solve. Returns `[n, dim_theta + 1]` rows `(v, ∇·v)`. One submission.
///
/// # Errors
/// GPU errors.
pub(crate) fn eval_with_divergence(
    gpu: &Gpu,
    net: &Net<'_>,
    x_z: &[f32],
    divergence: super::Divergence,
    seed: u64,
    first_index: u64,
    tin: &[f32],
) -> Result<Vec<f32>> {
    let n = tin.len() / (net.cfg.dim_theta + 1);
    let ws = Workspace::new(FieldKind::WithDivergence(divergence), net.cfg, n, false);
    let acts = gpu.storage("fmpe divergence workspace", ws.len as u64 * 4);
    gpu.queue.write_buffer(&acts, ws.field.x_off() as u64 * 4, bytemuck::cast_slice(x_z));
    gpu.queue.write_buffer(&acts, ws.tin as u64 * 4, bytemuck::cast_slice(tin));
    let binds = Bindings { acts: Some(&acts), params: Some(net.params), params_tex: net.params_tex, ..Default::default() };
    let (j, div) = ws.field.jvp().expect("a divergence field");
    build(gpu, binds, |b| {
        ws.field.record_precompute(b, net.cfg, net.layout);
        record::tangent_init(b, j, &DivContext::of(&ws), div.mode_scale().0, seed, first_index);
        ws.field.record_eval(b, net.cfg, net.layout, n, ws.tin, ws.k, &DivContext::of(&ws));
    })?
    .run(gpu)?;
    gpu.read_f32(&acts, ws.k as u64, n * ws.ds)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Model;
    use crate::net::{init_params, Conditioning};
    use rand::SeedableRng;

    /// A fixed-step rk4 chunk recorded into a caller's encoder (the caller copies and
    /// reads the samples itself) gives bit for bit what the host-driven solve returns,
    /// also on a reused plan.
    #[test]
    fn rk4_recorded_into_a_callers_encoder_matches_the_host_loop() {
        let gpu = Gpu::new().expect("a GPU adapter");
        let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16], conditioning: Conditioning::Glu, embedding: vec![] };
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let model = Model::with_params(cfg.clone(), init_params(&cfg, &mut rng));
        let layout = cfg.layout();
        let params = gpu.storage_from("params", &model.params);
        let net = Net { cfg: &cfg, layout: &layout, params: &params, params_tex: None };
        let transform = ThetaTransform::default();
        let consts = Constants { x_z: &[0.3, -0.4], theta_mean: &[0.0, 0.0], theta_std: &[1.0, 1.0], transform: &transform };
        let (n, d) = (37, 2);
        let key = PlanKey { n, field: FieldKind::Velocity, solver: Solver::Rk4 { steps: 9 }, direction: Direction::Forward, per_row_x: false };
        let mut plan = Plan::new(&gpu, &net, &consts, key).unwrap();
        let start = ChunkStart { seed: 11, first_index: 5, round: 1, theta_z: None };
        let host = plan.solve(&gpu, &start).unwrap();
        assert_eq!(host.samples.len(), n * d);
        for _ in 0..2 {
            let mut enc = gpu.encoder();
            let init = plan.init_program(&gpu, &start).unwrap();
            plan.record_pass(&gpu, &mut enc, Some(&init), 9, false, true).unwrap();
            let staging = gpu.copy_to_staging(&mut enc, &plan.acts, plan.ws.out as u64, n * d);
            gpu.submit(enc).unwrap();
            assert_eq!(gpu.map_staging(staging, n * d).unwrap(), host.samples);
        }
        let other = plan.solve(&gpu, &ChunkStart { first_index: 6, ..start }).unwrap();
        assert_eq!(other.samples[..(n - 1) * d], host.samples[d..], "rows are keyed by their index");
    }
}
