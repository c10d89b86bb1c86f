//! Log-density of the flow posterior (FMPE, Dax et al. 2023, Sec. 3): by the
//! instantaneous change of variables (Chen et al. 2018, Thm. 1; FMPE eq. 4 / Lipman et
//! al. 2023 eq. 4), a sample θ₁ of the flow started at θ₀ ~ N(0, I) has
//!
//! ```text
//! log q(θ₁ | x_o) = log N(θ₀; 0, I) − ∫₀¹ ∇_θ · v(t, θ_t, x_o) dt .
//! ```
//!
//! Both directions integrate the joint state `[θ_t, Δ_t]` (`dim_theta + 1` columns) with
//! `dΔ/dt = ∇·v` using the per-sample dopri5 of [`super`]:
//! * [`Posterior::log_prob`]: from t = 1 (θ₁ given, Δ = 0) back to t = 0; then
//!   `log q = log N(θ₀) + Δ₀`.
//! * [`Posterior::sample_and_log_prob`]: from t = 0 (θ₀ drawn, Δ = 0) to t = 1; then
//!   `log q = log N(θ₀) − Δ₁`.
//!
//! The divergence comes from the forward-mode tangent pass [`crate::net::JvpGraph`]:
//! exact (`dim_theta` unit tangents per row, stacked as `dim_theta × rows` tangent rows,
//! one set of dispatches) or Hutchinson's estimator (Hutchinson 1990; Grathwohl et al.
//! 2019, FFJORD) `mean_p ε_pᵀ J ε_p` with Rademacher or Gaussian probes drawn once per
//! sample (Philox keyed by the seed and the sample index) and kept for the whole solve,
//! so the estimated Δ is the integral of one fixed smooth function along the path.
//!
//! With a parameter transform θ' = T(θ) ([`crate::transform`]) the ODE runs in the
//! z-scored θ' space and the change of variables adds `Σ_j log |dθ'_j/dθ_j|`:
//! `log q(θ) = log q'(T(θ)) + log |det dθ'/dθ|`. `log_prob` maps the given θ with T and
//! z-scores it on the host in f64 (exact near the box bounds even when |bound| ≫ the
//! distance to it, which an f32 kernel cannot resolve) and adds the Jacobian term to the
//! read-back log-density; `sample_and_log_prob` maps the samples back with T⁻¹ on the
//! GPU and adds the term in the same dispatch.
//!
//! All values are computed on the GPU; the host reads back one log-density per point
//! (and the samples for `sample_and_log_prob`) plus one active-row count per few steps.

use std::time::Instant;

use super::{Posterior, SampleReport, DOPRI_A, DOPRI_H0, DOPRI_HMIN};
use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::kernels::{jvp, ode};
use crate::kernels::{
    Arena, Bindings, Buf, DensityMode, FinParams, InitParams, JvpParams, Mat, ProbeMode, ProgramBuilder,
};
use crate::net::{JvpGraph, NetConfig, ParamLayout};

/// How the divergence `∇_θ · v` is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Divergence {
    /// Exact trace of the Jacobian: one tangent pass per θ dimension (all batched in one
    /// set of dispatches over `dim_theta × rows` tangent rows). Cost ∝ dim_theta.
    #[default]
    Exact,
    /// Hutchinson's unbiased estimator `mean_{p < probes} ε_pᵀ J ε_p`, with `probes`
    /// Rademacher (±1) probes, or standard Gaussian ones if `gaussian`. Each sample's
    /// probes are drawn once (Philox keyed by the seed and the sample index) and kept
    /// for the whole ODE solve. Cost ∝ probes. The resulting log-density is a random
    /// estimate (unbiased for Δ, not for exp(log q)).
    Hutchinson {
        /// Probes per sample (≥ 1).
        probes: usize,
        /// Gaussian instead of Rademacher probes.
        gaussian: bool,
    },
}

impl Divergence {
    /// Tangent rows per sample.
    fn probes(self, dim_theta: usize) -> usize {
        match self {
            Divergence::Exact => dim_theta,
            Divergence::Hutchinson { probes, .. } => probes,
        }
    }
    /// `tangent_init` mode and `div_reduce` scale.
    fn mode_scale(self) -> (u32, f32) {
        match self {
            Divergence::Exact => (ProbeMode::Exact as u32, 1.0),
            Divergence::Hutchinson { probes, gaussian } => {
                let mode = if gaussian { ProbeMode::Gaussian } else { ProbeMode::Rademacher };
                (mode as u32, 1.0 / probes.max(1) as f32)
            }
        }
    }
    fn validate(self) -> Result<()> {
        match self {
            Divergence::Hutchinson { probes: 0, .. } => Err(Error::invalid("Hutchinson divergence needs at least one probe")),
            _ => Ok(()),
        }
    }
}

/// Options of [`Posterior::log_prob`] and [`Posterior::sample_and_log_prob`].
#[derive(Clone, Debug)]
pub struct LogProbOptions {
    /// Divergence computation (default [`Divergence::Exact`]).
    pub divergence: Divergence,
    /// dopri5 absolute tolerance on θ (z-scored units; default 1e-5).
    pub atol: f64,
    /// dopri5 relative tolerance on θ (default 1e-5).
    pub rtol: f64,
    /// Seed of the Hutchinson probes and (in `sample_and_log_prob`) of θ₀. With the same
    /// seed, `sample_and_log_prob` draws the same θ₀ as [`Posterior::sample`].
    pub seed: u64,
    /// `log_prob`: evaluate the flow's density also outside the model's box prior
    /// (otherwise such points get −∞). Points outside the support of the model's
    /// parameter transform (outside a logit's box, at or below a log's bound) stay −∞:
    /// the transformed flow puts no mass there. `sample_and_log_prob`: keep samples
    /// outside the box (otherwise they are rejected and redrawn, as in `sample`).
    /// Default false.
    pub ignore_support: bool,
    /// Points per GPU chunk (None: [`crate::Gpu::default_chunk`], capped by the device limits).
    pub chunk_size: Option<usize>,
    /// `sample_and_log_prob` only: give up with [`Error::LowAcceptance`] when rejection
    /// to the box prior has not finished after this many seconds.
    pub max_seconds: Option<f64>,
}

impl Default for LogProbOptions {
    fn default() -> Self {
        LogProbOptions {
            divergence: Divergence::Exact,
            atol: 1e-5,
            rtol: 1e-5,
            seed: 0,
            ignore_support: false,
            chunk_size: None,
            max_seconds: None,
        }
    }
}

/// Workspace of one density-ODE chunk: state `[θ, Δ]` with `ds = dim_theta + 1` columns.
struct DensityGraph {
    n: usize,
    ds: usize,
    jvp: JvpGraph,
    y: usize,
    t: usize,
    h: usize,
    stats: usize,
    active: usize,
    count: usize,
    k: usize,
    tin: usize,
    out: usize,
    logq: usize,
    scale: usize,
    shift: usize,
    tab: usize,
}

impl DensityGraph {
    fn floats_per_row(cfg: &NetConfig, probes: usize) -> usize {
        let ds = cfg.dim_theta + 1;
        JvpGraph::floats_per_row(cfg, probes) + 9 * ds + cfg.dim_theta + 8
    }

    fn new(cfg: &NetConfig, n: usize, probes: usize) -> (DensityGraph, usize) {
        let d = cfg.dim_theta;
        let ds = d + 1;
        let mut a = Arena::default();
        let jvp = JvpGraph::new(cfg, n, probes, &mut a);
        let g = DensityGraph {
            n,
            ds,
            jvp,
            y: a.alloc(n * ds),
            t: a.alloc(n),
            h: a.alloc(n),
            stats: a.alloc(2 * n),
            active: a.alloc(n),
            count: a.alloc(1),
            k: a.alloc(7 * n * ds),
            tin: a.alloc(n * (d + 1)),
            out: a.alloc(n * d),
            logq: a.alloc(n),
            scale: a.alloc(d),
            shift: a.alloc(d),
            tab: a.alloc(4 * d),
        };
        (g, a.len())
    }

    fn jvp_params(&self, d: usize) -> JvpParams {
        JvpParams {
            n: self.n as u32,
            d: d as u32,
            probes: self.jvp.probes as u32,
            eps_off: self.jvp.eps as u32,
            jeps_off: self.jvp.jeps as u32,
            ds: self.ds as u32,
            y_off: self.y as u32,
            out_off: self.logq as u32,
            ..Default::default()
        }
    }

    /// Records `k_s = [v, ∇·v](tin)` after building tin from y, h and k_0..k_{s-1}.
    #[allow(clippy::too_many_arguments)]
    fn stage(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout, div_scale: f32, s: usize, c: f32, coef: &[f32]) {
        let d = cfg.dim_theta;
        let ds = self.ds;
        let offs = super::StageOffsets { n: self.n, y: self.y, t: self.t, h: self.h, k: self.k, tin: self.tin };
        super::push_stage_input(b, &offs, ds, d, c, coef);
        let ks = self.k + s * self.n * ds;
        self.jvp.forward(b, cfg, layout, self.n, self.tin, Mat::rows(Buf::Acts, ks, ds));
        let jp = JvpParams { out_off: (ks + d) as u32, out_rs: ds as u32, scale: div_scale, ..self.jvp_params(d) };
        jvp::div_reduce(b, &jp);
    }
}

/// What one chunk solve returns: samples (forward only, original units), log-density,
/// summed accepted and rejected steps.
type ChunkResult = (Vec<f32>, Vec<f32>, f64, f64);

/// Where the density ODE of a chunk starts.
enum Start<'a> {
    /// Forward from θ₀ ~ N(0, I) (`sample_and_log_prob`).
    Noise,
    /// Backward from given z-scored θ' = T(θ) `[n, d]` (`log_prob`).
    Zscored(&'a [f32]),
}

impl Posterior<'_> {
    /// Largest chunk of points the device limits allow for the density ODE.
    fn density_chunk(&self, requested: Option<usize>, probes: usize) -> usize {
        let per_row = DensityGraph::floats_per_row(&self.cfg, probes) as u64;
        let by_binding = (self.gpu.max_binding_floats().saturating_sub(1 << 16) / per_row.max(1)) as usize;
        let by_dispatch = self.gpu.limits().max_compute_workgroups_per_dimension as usize * 64 / probes.max(1);
        requested.unwrap_or(self.gpu.default_chunk()).min(by_binding).min(by_dispatch).max(1)
    }

    fn check_opts(&self, opts: &LogProbOptions) -> Result<()> {
        opts.divergence.validate()?;
        if !(opts.atol > 0.0 && opts.rtol >= 0.0) {
            return Err(Error::usage("--atol must be positive and --rtol non-negative"));
        }
        if opts.chunk_size == Some(0) {
            return Err(Error::invalid("the chunk size must be positive"));
        }
        Ok(())
    }

    /// Log-density `log q(θ | x_o)` of the flow posterior at `theta` (`[n, dim_theta]`,
    /// row-major, original units); returns `[n]` values in nats, for densities with
    /// respect to Lebesgue measure in original units (the z-scoring Jacobian
    /// `−Σ_j log std_θ_j` is included).
    ///
    /// Each point is integrated from t = 1 back to t = 0 with the joint state
    /// `[θ_t, Δ_t]`, `dΔ/dt = ∇·v`, by dopri5 with per-point step size and error control
    /// (a point's value does not depend on the other points of the batch), and
    /// `log q(θ) = log N(θ₀; 0, I) + Δ₀ − Σ log std_θ` (FMPE, Dax et al. 2023, Sec. 3:
    /// `log q(θ₁) = log N(θ₀) − ∫₀¹ ∇·v dt`).
    ///
    /// The error norm of dopri5 uses the θ columns only; the Δ column is integrated
    /// with the same steps but excluded. Δ never feeds back into the dynamics (∇·v
    /// depends on θ_t only), so controlling θ's local error already resolves the path
    /// on which ∇·v is a smooth function, and Δ's 5th-order update inherits an error of
    /// the same order; including Δ would make the step sequence (and hence θ₀) depend on
    /// the divergence estimator and, for Hutchinson, on the probe noise, and would make
    /// `sample_and_log_prob` take different steps from `sample`. The consistency test
    /// (`tests/log_prob.rs`) checks the resulting accuracy.
    ///
    /// With a parameter transform T (`model.info.transform`), the solve runs in the
    /// z-scored θ' = T(θ) space and `log |det dθ'/dθ|` is added (T, its Jacobian and the
    /// z-scoring are evaluated on the host in f64).
    ///
    /// Points outside the model's box prior (`model.info.prior`) get `f64::NEG_INFINITY`
    /// unless `opts.ignore_support`, and so do points outside the transform's support
    /// whatever `ignore_support` says; they are not integrated. Large inputs are processed
    /// in chunks of `opts.chunk_size` points. With Hutchinson probes, the probes of a
    /// point are keyed by its index among the points integrated (those inside the box).
    ///
    /// # Errors
    /// [`Error::Invalid`] if `theta.len()` is not a multiple of dim_theta, a value is not
    /// finite, or the options are invalid (atol ≤ 0, rtol < 0, zero probes, zero chunk);
    /// dopri5 not finishing within its step cap; GPU errors.
    pub fn log_prob(&self, theta: &[f64], opts: &LogProbOptions) -> Result<Vec<f64>> {
        self.check_opts(opts)?;
        let d = self.cfg.dim_theta;
        if !theta.len().is_multiple_of(d) {
            return Err(Error::invalid(format!("theta has {} values, not a multiple of dim_theta = {d}", theta.len())));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("theta row {}, column {} is not finite", i / d + 1, i % d + 1)));
        }
        let n = theta.len() / d;
        let mut out = vec![f64::NEG_INFINITY; n];
        let inside: Vec<usize> = (0..n)
            .filter(|&i| {
                let row = &theta[i * d..(i + 1) * d];
                (opts.ignore_support || self.prior.as_ref().is_none_or(|p| p.contains(row))) && self.transform.contains(row)
            })
            .collect();
        let chunk = self.density_chunk(opts.chunk_size, opts.divergence.probes(d));
        let mut done = 0usize;
        while done < inside.len() {
            let c = chunk.min(inside.len() - done);
            let rows: Vec<f64> = inside[done..done + c].iter().flat_map(|&i| theta[i * d..(i + 1) * d].iter().copied()).collect();
            // θ' = T(θ) and log |dθ'/dθ| in f64 (the identity gives θ and 0), then z-scoring.
            let (y, log_det) = self.transform.forward_rows(&rows, d);
            let z: Vec<f32> =
                y.iter().enumerate().map(|(k, &v)| ((v - self.theta_mean[k % d]) / self.theta_std[k % d]) as f32).collect();
            let (_, lq, _, _) = self.density_chunk_solve(c, opts, Start::Zscored(&z), done as u64, 0)?;
            for (r, &i) in inside[done..done + c].iter().enumerate() {
                out[i] = lq[r] as f64 + log_det[r];
            }
            done += c;
        }
        Ok(out)
    }

    /// Draws `n` posterior samples and their log-densities in one forward solve 0 → 1 of
    /// the joint state `[θ_t, Δ_t]` (see [`Posterior::log_prob`] for the method and the
    /// error control). Returns the samples `[n, dim_theta]` (row-major, original units),
    /// `log q(θ | x_o)` `[n]` (nats, original units) and a [`SampleReport`].
    ///
    /// θ₀ is drawn exactly as [`Posterior::sample`] draws it for the same seed, and the
    /// θ steps are the same, so the samples equal `sample`'s (up to rejection rounds).
    /// With a box prior and `!opts.ignore_support`, samples outside the box are rejected
    /// and redrawn; the log-density returned is the flow's (not renormalised to the
    /// box), i.e. the value [`Posterior::log_prob`] gives.
    ///
    /// # Errors
    /// [`Error::LowAcceptance`] when rejection does not finish within
    /// `opts.max_seconds` (or needs over 1000 proposals per sample), [`Error::Invalid`]
    /// for bad options, GPU errors.
    pub fn sample_and_log_prob(&self, n: usize, opts: &LogProbOptions) -> Result<(Vec<f64>, Vec<f64>, SampleReport)> {
        self.check_opts(opts)?;
        let start = Instant::now();
        let d = self.cfg.dim_theta;
        let mut report = SampleReport::default();
        let mut out: Vec<f64> = Vec::with_capacity(n * d);
        let mut logq: Vec<f64> = Vec::with_capacity(n);
        let reject = !opts.ignore_support && self.prior.as_ref().is_some_and(|p| !self.transform.covers(p));
        let chunk = self.density_chunk(opts.chunk_size, opts.divergence.probes(d));
        let mut next_index: u64 = 0;
        let mut round: u32 = 0;
        let (mut steps_sum, mut rej_sum) = (0.0, 0.0);
        let mut accepted_total = 0usize;
        while logq.len() < n {
            let need = n - logq.len();
            let draw = super::next_draw(need, report.proposed, accepted_total, reject, opts.max_seconds.is_some());
            let mut done = 0usize;
            while done < draw {
                let c = chunk.min(draw - done);
                let (s, lq, a, r) = self.density_chunk_solve(c, opts, Start::Noise, next_index + done as u64, round)?;
                steps_sum += a;
                rej_sum += r;
                for (row, l) in s.chunks(d).zip(lq) {
                    let row: Vec<f64> = row.iter().map(|&v| v as f64).collect();
                    if !reject || self.prior.as_ref().is_some_and(|p| p.contains(&row)) {
                        accepted_total += 1;
                        if logq.len() < n {
                            out.extend_from_slice(&row);
                            logq.push(l as f64);
                        }
                    }
                }
                done += c;
            }
            next_index += draw as u64;
            round += 1;
            report.proposed += draw;
            report.returned = logq.len();
            report.acceptance_rate = accepted_total as f64 / report.proposed as f64;
            super::check_rejection(&report, accepted_total, n - logq.len(), n, start, opts.max_seconds)?;
        }
        report.mean_steps = steps_sum / report.proposed.max(1) as f64;
        report.mean_rejected_steps = rej_sum / report.proposed.max(1) as f64;
        report.seconds = start.elapsed().as_secs_f64();
        Ok((out, logq, report))
    }

    /// The vector field and its divergence at given points, in the network's z-scored
    /// coordinates: `t` `[n]`, `theta_z` `[n, dim_theta]` (row-major, z-scored θ' = T(θ),
    /// θ itself without a parameter transform).
    /// Returns `(v [n, dim_theta], ∇·v [n])`. With Hutchinson probes, the probes of row
    /// `i` are keyed by `(seed, i)` exactly as in the density ODE. Mainly for tests and
    /// diagnostics.
    ///
    /// # Errors
    /// [`Error::Invalid`] for inconsistent shapes or zero probes; GPU errors.
    pub fn field_and_divergence(
        &self,
        t: &[f64],
        theta_z: &[f64],
        divergence: Divergence,
        seed: u64,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        divergence.validate()?;
        let d = self.cfg.dim_theta;
        let n = t.len();
        if theta_z.len() != n * d {
            return Err(Error::invalid(format!("theta has {} values, expected {n} × {d}", theta_z.len())));
        }
        let gpu = self.gpu;
        let probes = divergence.probes(d);
        let chunk = self.density_chunk(None, probes);
        let (mut v, mut div) = (Vec::with_capacity(n * d), Vec::with_capacity(n));
        let mut done = 0;
        while done < n {
            let c = chunk.min(n - done);
            let (g, len) = DensityGraph::new(&self.cfg, c, probes);
            let acts = gpu.storage("fmpe divergence workspace", len as u64 * 4);
            gpu.queue.write_buffer(&acts, g.jvp.eval.x as u64 * 4, bytemuck::cast_slice(&self.x_z));
            let mut tin = vec![0f32; c * (d + 1)];
            for r in 0..c {
                tin[r * (d + 1)] = t[done + r] as f32;
                for j in 0..d {
                    tin[r * (d + 1) + 1 + j] = theta_z[(done + r) * d + j] as f32;
                }
            }
            gpu.queue.write_buffer(&acts, g.tin as u64 * 4, bytemuck::cast_slice(&tin));
            let mut b = ProgramBuilder::new(gpu);
            self.record_start(&mut b, &g, divergence, seed, done as u64);
            let (_, scale) = divergence.mode_scale();
            g.jvp.forward(&mut b, &self.cfg, &self.layout, c, g.tin, Mat::rows(Buf::Acts, g.k, d + 1));
            jvp::div_reduce(&mut b, &JvpParams { out_off: (g.k + d) as u32, out_rs: (d + 1) as u32, scale, ..g.jvp_params(d) });
            b.build(gpu, Bindings { acts: Some(&acts), params: Some(&self.params), ..Default::default() })?.run(gpu)?;
            let k = gpu.read_f32(&acts, g.k as u64, c * (d + 1))?;
            for row in k.chunks(d + 1) {
                v.extend(row[..d].iter().map(|&x| x as f64));
                div.push(row[d] as f64);
            }
            done += c;
        }
        Ok((v, div))
    }

    /// Dispatches recorded per dopri5 step of the density ODE (6 stages of
    /// `ode_axpy` + joint `v`/`J·ε` pass + `div_reduce`, then `dopri5_finalize`), for
    /// this model and divergence.
    pub fn density_step_dispatches(&self, divergence: Divergence) -> usize {
        let d = self.cfg.dim_theta;
        let (g, _) = DensityGraph::new(&self.cfg, 1, divergence.probes(d));
        let mut b = ProgramBuilder::new(self.gpu);
        for (s, (c, a)) in DOPRI_A.iter().enumerate() {
            g.stage(&mut b, &self.cfg, &self.layout, 1.0, s + 1, *c, &a[..s + 1]);
        }
        b.len() + 1
    }

    /// Records the x-only precompute and the probe initialisation.
    fn record_start(&self, b: &mut ProgramBuilder, g: &DensityGraph, divergence: Divergence, seed: u64, first_index: u64) {
        let d = self.cfg.dim_theta;
        g.jvp.precompute(b, &self.cfg, &self.layout);
        let (mode, _) = divergence.mode_scale();
        jvp::tangent_init(
            b,
            &JvpParams {
                mode,
                first_index: first_index as u32,
                seed_lo: seed as u32,
                seed_hi: (seed >> 32) as u32,
                ..g.jvp_params(d)
            },
        );
    }

    /// Solves one chunk of the density ODE: backward from t = 1 from given θ (log_prob),
    /// or forward from θ₀ ~ N(0, I) (indices `first_index..first_index+n` of `round`,
    /// as in `sample`).
    fn density_chunk_solve(
        &self,
        n: usize,
        opts: &LogProbOptions,
        start: Start<'_>,
        first_index: u64,
        round: u32,
    ) -> Result<ChunkResult> {
        let gpu: &Gpu = self.gpu;
        let cfg = &self.cfg;
        let layout = &self.layout;
        let d = cfg.dim_theta;
        let forward = matches!(start, Start::Noise);
        let probes = opts.divergence.probes(d);
        let (g, len) = DensityGraph::new(cfg, n, probes);
        let ds = g.ds;
        let acts = gpu.storage("fmpe density workspace", len as u64 * 4);
        self.write_constants(&acts, g.jvp.eval.x, g.scale, g.shift, g.tab);
        match start {
            Start::Zscored(z) => {
                let mut y = vec![0f32; n * ds];
                for r in 0..n {
                    y[r * ds..r * ds + d].copy_from_slice(&z[r * d..(r + 1) * d]);
                }
                gpu.queue.write_buffer(&acts, g.y as u64 * 4, bytemuck::cast_slice(&y));
            }
            Start::Noise => {}
        }
        let binds = Bindings { acts: Some(&acts), params: Some(&self.params), ..Default::default() };
        let log_std: f64 = self.theta_std.iter().map(|s| s.ln()).sum();
        let (div_mode_scale, t1) = (opts.divergence.mode_scale().1, if forward { 1.0 } else { 0.0 });

        let mut b = ProgramBuilder::new(gpu);
        self.record_start(&mut b, &g, opts.divergence, opts.seed, first_index);
        ode::ode_init(
            &mut b,
            &InitParams {
                n: n as u32,
                d: ds as u32,
                d_noise: d as u32,
                noise: forward as u32,
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
                t0: 1.0 - t1,
                h0: if forward { DOPRI_H0 } else { -DOPRI_H0 },
            },
        );
        if forward {
            // Stash log N(θ₀; 0, I).
            jvp::density_finish(&mut b, &JvpParams { mode: DensityMode::ForwardStart as u32, ..g.jvp_params(d) });
        }
        g.stage(&mut b, cfg, layout, div_mode_scale, 0, 0.0, &[]);
        let start = b.build(gpu, binds)?;
        let mut b = ProgramBuilder::new(gpu);
        for (s, (c, a)) in DOPRI_A.iter().enumerate() {
            g.stage(&mut b, cfg, layout, div_mode_scale, s + 1, *c, &a[..s + 1]);
        }
        let fp = FinParams {
            n: n as u32,
            d: ds as u32,
            d_err: d as u32,
            pad0: 0,
            y_off: g.y as u32,
            t_off: g.t as u32,
            h_off: g.h as u32,
            k_off: g.k as u32,
            k_stride: (n * ds) as u32,
            stats_off: g.stats as u32,
            active_off: g.active as u32,
            count_off: g.count as u32,
            t1,
            atol: opts.atol as f32,
            rtol: opts.rtol as f32,
            h_min: DOPRI_HMIN,
        };
        ode::dopri5_finalize(&mut b, &fp);
        let step = b.build(gpu, binds)?;
        let mut b = ProgramBuilder::new(gpu);
        ode::dopri5_count(&mut b, &fp);
        let count = b.build(gpu, binds)?;
        let mut b = ProgramBuilder::new(gpu);
        let mode = if forward { DensityMode::ForwardEnd } else { DensityMode::LogProb };
        let fin = JvpParams { mode: mode as u32, shift: -log_std as f32, ..g.jvp_params(d) };
        jvp::density_finish(&mut b, &fin);
        if forward {
            self.push_to_original(&mut b, n, g.y, ds, g.out, g.scale, g.shift, g.tab, Some(g.logq));
        }
        let finish = b.build(gpu, binds)?;

        super::run_dopri5(gpu, &start, &step, &count, &acts, g.count, "finish the density ODE", "")?;
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            finish.record(gpu, &mut pass)?;
        }
        let lq_staging = gpu.copy_to_staging(&mut enc, &acts, g.logq as u64, n);
        let s_staging = forward.then(|| gpu.copy_to_staging(&mut enc, &acts, g.out as u64, n * d));
        let st_staging = gpu.copy_to_staging(&mut enc, &acts, g.stats as u64, 2 * n);
        gpu.submit(enc)?;
        let lq = gpu.map_staging(&lq_staging, n)?;
        let s = match s_staging {
            Some(st) => gpu.map_staging(&st, n * d)?,
            None => Vec::new(),
        };
        let st = gpu.map_staging(&st_staging, 2 * n)?;
        let acc: f64 = st.iter().step_by(2).map(|&v| v as f64).sum();
        let rej: f64 = st.iter().skip(1).step_by(2).map(|&v| v as f64).sum();
        Ok((s, lq, acc, rej))
    }
}
