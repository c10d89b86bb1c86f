//! Every kernel call of the ODE driver, one small function per kernel use (parameter
//! structs filled here and nowhere else). Offsets are f32 elements of the workspace.

use crate::kernels::{
    self, AffineParams, AxpyMode, AxpyParams, DensityMode, FinParams, InitParams, JvpParams, ProbeMode, ProgramBuilder,
    TransformMode, TransformParams,
};
use crate::net::JvpGraph;

use super::workspace::Workspace;
use super::DOPRI_HMIN;

/// The `ode_axpy` parameters of one workspace: `mode` over the `n` rows with the
/// stage coefficients `coef` (at most 8; unused entries 0).
fn axpy(w: &Workspace, mode: AxpyMode, coef: &[f32]) -> AxpyParams {
    let mut cf = [0f32; 8];
    cf[..coef.len()].copy_from_slice(coef);
    AxpyParams {
        n: w.n as u32,
        d: w.ds as u32,
        d_net: w.d as u32,
        nk: coef.len() as u32,
        y_off: w.y as u32,
        t_off: w.t as u32,
        h_off: w.h as u32,
        k_off: w.k as u32,
        k_stride: (w.n * w.ds) as u32,
        mode: mode as u32,
        coef: cf,
        ..Default::default()
    }
}

/// Records the Runge–Kutta stage input `tin[i] = [t_i + c h_i, y_i + h_i Σ_s coef_s k_s,i]`
/// (the first `dim_theta` of the `ds` state columns).
pub(crate) fn stage_input(b: &mut ProgramBuilder, w: &Workspace, c: f32, coef: &[f32]) {
    let p = AxpyParams { out_off: w.tin as u32, out_rs: (w.d + 1) as u32, c, ..axpy(w, AxpyMode::Stage, coef) };
    kernels::ode::ode_axpy(b, &p);
}

/// Records the rk4 update `y_i += h_i Σ_s weights_s k_s,i` (all `ds` columns), `t_i += h_i`.
pub(crate) fn rk4_update(b: &mut ProgramBuilder, w: &Workspace, weights: [f32; 4]) {
    kernels::ode::ode_axpy(b, &axpy(w, AxpyMode::Update, &weights));
}

/// Per-chunk start values of `ode_init`.
pub(crate) struct Init {
    /// Draw θ₀ ~ N(0, I) into the θ columns (zero Δ); else keep the uploaded state.
    pub noise: bool,
    /// Philox key of θ₀.
    pub seed: u64,
    /// Index of the chunk's first sample (Philox counter).
    pub first_index: u64,
    /// Rejection round (Philox counter).
    pub round: u32,
    /// Start time.
    pub t0: f32,
    /// Start step (signed).
    pub h0: f32,
}

/// Records `ode_init` for rows `r0 .. r0 + rows` of the workspace (θ₀ of row `r0 + i`
/// keyed by `s.first_index + i`): state, t = t0, h = h0, zero step counts, rows active.
pub(crate) fn ode_init_rows(b: &mut ProgramBuilder, w: &Workspace, r0: usize, rows: usize, s: &Init) {
    let p = InitParams {
        n: rows as u32,
        d: w.ds as u32,
        d_noise: w.d as u32,
        noise: s.noise as u32,
        y_off: (w.y + r0 * w.ds) as u32,
        t_off: (w.t + r0) as u32,
        h_off: (w.h + r0) as u32,
        stats_off: (w.stats + 2 * r0) as u32,
        active_off: (w.active + r0) as u32,
        first_index: s.first_index as u32,
        round: s.round,
        seed_lo: s.seed as u32,
        seed_hi: (s.seed >> 32) as u32,
        pad0: 0,
        t0: s.t0,
        h0: s.h0,
    };
    kernels::ode::ode_init(b, &p);
}

/// Parameters of the dopri5 step control towards `t1` (error norm over the θ columns).
pub(crate) fn fin_params(w: &Workspace, t1: f32, atol: f32, rtol: f32) -> FinParams {
    FinParams {
        n: w.n as u32,
        d: w.ds as u32,
        d_err: w.d as u32,
        pad0: 0,
        y_off: w.y as u32,
        t_off: w.t as u32,
        h_off: w.h as u32,
        k_off: w.k as u32,
        k_stride: (w.n * w.ds) as u32,
        stats_off: w.stats as u32,
        active_off: w.active as u32,
        count_off: w.count as u32,
        t1,
        atol,
        rtol,
        h_min: DOPRI_HMIN,
    }
}

/// Records `dopri5_finalize` (per-row accept/reject and the next step).
pub(crate) fn dopri5_finalize(b: &mut ProgramBuilder, fp: &FinParams) {
    kernels::ode::dopri5_finalize(b, fp);
}

/// Records `dopri5_count` (active rows into `acts[count]`, one workgroup).
pub(crate) fn dopri5_count(b: &mut ProgramBuilder, fp: &FinParams) {
    kernels::ode::dopri5_count(b, fp);
}

/// Offsets shared by the tangent and density kernels of one workspace.
pub(crate) struct DivContext {
    /// Rows.
    pub n: usize,
    /// dim_theta.
    pub d: usize,
    /// State columns (`dim_theta + 1`).
    pub ds: usize,
    /// State `[n, ds]`.
    pub y: usize,
    /// Log-densities `[n]`.
    pub logq: usize,
}

impl DivContext {
    /// The context of a workspace.
    pub(crate) fn of(w: &Workspace) -> DivContext {
        DivContext { n: w.n, d: w.d, ds: w.ds, y: w.y, logq: w.logq }
    }
}

fn jvp_params(j: &JvpGraph, c: &DivContext) -> JvpParams {
    JvpParams {
        n: c.n as u32,
        d: c.d as u32,
        probes: j.probes as u32,
        eps_off: j.eps as u32,
        jeps_off: j.jeps as u32,
        ds: c.ds as u32,
        y_off: c.y as u32,
        out_off: c.logq as u32,
        ..Default::default()
    }
}

/// Records `tangent_init`: the probes ε of every row (unit vectors, Rademacher or
/// Gaussian entries; keyed by `seed` and `first_index + row`).
pub(crate) fn tangent_init(b: &mut ProgramBuilder, j: &JvpGraph, c: &DivContext, mode: ProbeMode, seed: u64, first_index: u64) {
    let p = JvpParams {
        mode: mode as u32,
        first_index: first_index as u32,
        seed_lo: seed as u32,
        seed_hi: (seed >> 32) as u32,
        ..jvp_params(j, c)
    };
    kernels::jvp::tangent_init(b, &p);
}

/// Records `div_reduce`: `scale · Σ_p ε_pᵀ (J ε_p)` of each row into `acts[out_off + i·ds]`.
pub(crate) fn div_reduce(b: &mut ProgramBuilder, j: &JvpGraph, c: &DivContext, out_off: usize, scale: f32) {
    let p = JvpParams { out_off: out_off as u32, out_rs: c.ds as u32, scale, ..jvp_params(j, c) };
    kernels::jvp::div_reduce(b, &p);
}

/// Records `density_finish` in `mode` with additive `shift`.
pub(crate) fn density_finish(b: &mut ProgramBuilder, j: &JvpGraph, c: &DivContext, mode: DensityMode, shift: f32) {
    kernels::jvp::density_finish(b, &JvpParams { mode: mode as u32, shift, ..jvp_params(j, c) });
}

/// Records the map from the z-scored state (θ columns of `y`) to samples in original
/// units at `out`: `affine` without a parameter transform, else one `theta_transform`
/// (un-z-score, then T⁻¹) that also adds `log |dθ'/dθ|` to `logq` when `log_det`.
pub(crate) fn to_original(b: &mut ProgramBuilder, w: &Workspace, identity: bool, log_det: bool) {
    let (n, d) = (w.n, w.d);
    if identity {
        let p = AffineParams {
            n: n as u32,
            d: d as u32,
            in_off: w.y as u32,
            in_rs: w.ds as u32,
            out_off: w.out as u32,
            scale_off: w.scale as u32,
            shift_off: w.shift as u32,
            pad: 0,
        };
        kernels::affine::affine(b, &p);
    } else {
        let p = TransformParams {
            n: n as u32,
            d: d as u32,
            mode: TransformMode::Inverse as u32,
            flags: TransformParams::ZSCORE | if log_det { TransformParams::LOG_DET } else { 0 },
            in_off: w.y as u32,
            in_rs: w.ds as u32,
            out_off: w.out as u32,
            out_rs: d as u32,
            tab_off: w.tab as u32,
            ld_off: if log_det { w.logq as u32 } else { 0 },
            scale_off: w.scale as u32,
            shift_off: w.shift as u32,
        };
        kernels::transform::theta_transform(b, &p);
    }
}
