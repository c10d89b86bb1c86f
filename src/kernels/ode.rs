//! Per-row ODE kernels shared by sampling and the density ODE: state initialisation
//! (`shaders/ode_init.wgsl`), Runge–Kutta stage input and update
//! (`shaders/ode_axpy.wgsl`), and dopri5 step control (`shaders/ode_dopri5.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout, WgslConst};

/// The ode family.
pub(crate) static FAMILY: Family = Family {
    name: "ode",
    modules: &[ShaderModule { name: "ode_init", source: include_str!("../../shaders/ode_init.wgsl") }, ShaderModule { name: "ode_axpy", source: include_str!("../../shaders/ode_axpy.wgsl") }, ShaderModule { name: "ode_dopri5", source: include_str!("../../shaders/ode_dopri5.wgsl") }],
    kernels: &[&ODE_INIT, &ODE_AXPY, &DOPRI5_FINALIZE, &DOPRI5_COUNT],
    constants: &[
        WgslConst { name: "AXPY_STAGE", value: AxpyMode::Stage as u32 },
        WgslConst { name: "AXPY_UPDATE", value: AxpyMode::Update as u32 },
    ],
    structs: &[],
};

/// `ode_init`: start `n` rows at `t0` with step `h0` (optionally from N(0, I) noise).
pub static ODE_INIT: KernelSpec = KernelSpec {
    name: "ode_init",
    module: "ode_init",
    entry_point: "ode_init",
    layout: Layout::Misc,
    params: StructLayout::of::<InitParams>,
    variant: "",
    constants: &[],
};
/// `ode_axpy`: one Runge–Kutta combination per row (see [`AxpyMode`]).
pub static ODE_AXPY: KernelSpec = KernelSpec {
    name: "ode_axpy",
    module: "ode_axpy",
    entry_point: "ode_axpy",
    layout: Layout::Misc,
    params: StructLayout::of::<AxpyParams>,
    variant: "",
    constants: &[],
};
/// `dopri5_finalize`: error control, accept/reject and the next step per row.
pub static DOPRI5_FINALIZE: KernelSpec = KernelSpec {
    name: "dopri5_finalize",
    module: "ode_dopri5",
    entry_point: "dopri5_finalize",
    layout: Layout::Misc,
    params: StructLayout::of::<FinParams>,
    variant: "",
    constants: &[],
};
/// `dopri5_count`: number of active rows into `acts[count_off]` (one workgroup).
pub static DOPRI5_COUNT: KernelSpec = KernelSpec {
    name: "dopri5_count",
    module: "ode_dopri5",
    entry_point: "dopri5_count",
    layout: Layout::Misc,
    params: StructLayout::of::<FinParams>,
    variant: "",
    constants: &[],
};

/// What `ode_axpy` computes (`AxpyParams::mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AxpyMode {
    /// Stage input: `tin[i] = [t_i + c h_i, y_i + h_i Σ_s coef_s k_s,i]` (first `d_net` components).
    Stage = 0,
    /// Update: `y_i += h_i Σ_s coef_s k_s,i`, `t_i += h_i` (all `d` components).
    Update = 1,
}

/// Parameters of `ode_init` (`shaders/ode_init.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct InitParams {
    /// Rows.
    pub n: u32,
    /// Components per state row (row stride of y).
    pub d: u32,
    /// Leading components drawn from N(0, 1) (the rest set to 0).
    pub d_noise: u32,
    /// 1: draw y from noise; 0: keep y as uploaded.
    pub noise: u32,
    /// State `[n, d]`.
    pub y_off: u32,
    /// Time `[n]`.
    pub t_off: u32,
    /// Step size `[n]`.
    pub h_off: u32,
    /// Accepted / rejected counts `[n, 2]`.
    pub stats_off: u32,
    /// Active flags `[n]`.
    pub active_off: u32,
    /// Global index of row 0 (Philox counter).
    pub first_index: u32,
    /// Rejection-sampling round (Philox counter).
    pub round: u32,
    /// Philox key, low word.
    pub seed_lo: u32,
    /// Philox key, high word.
    pub seed_hi: u32,
    /// Padding.
    pub pad0: u32,
    /// Start time.
    pub t0: f32,
    /// First step (signed).
    pub h0: f32,
}
param_block!(InitParams as "InitParams" { n, d, d_noise, noise, y_off, t_off, h_off, stats_off, active_off, first_index, round, seed_lo, seed_hi, pad0, t0, h0 });

/// Parameters of `ode_axpy` (`shaders/ode_axpy.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct AxpyParams {
    /// Rows.
    pub n: u32,
    /// Components per state row (row stride of y and of each k).
    pub d: u32,
    /// Components passed to the network (stage input).
    pub d_net: u32,
    /// Stages combined (≤ 8).
    pub nk: u32,
    /// State `[n, d]`.
    pub y_off: u32,
    /// Time `[n]`.
    pub t_off: u32,
    /// Step size `[n]`.
    pub h_off: u32,
    /// Stage derivatives: `k_s` at `k_off + s · k_stride`, each `[n, d]`.
    pub k_off: u32,
    /// Stride between stages (f32 elements).
    pub k_stride: u32,
    /// Stage input rows `[n, 1 + d_net]` (`AxpyMode::Stage`).
    pub out_off: u32,
    /// Row stride of the stage input.
    pub out_rs: u32,
    /// [`AxpyMode`] as u32.
    pub mode: u32,
    /// Node `c` of the stage (time `t + c h`).
    pub c: f32,
    /// Padding.
    pub pad: [f32; 3],
    /// Coefficients of `k_1 … k_nk`.
    pub coef: [f32; 8],
}
param_block!(AxpyParams as "AxpyParams" { n, d, d_net, nk, y_off, t_off, h_off, k_off, k_stride, out_off, out_rs, mode, c, pad, coef });

/// Parameters of `dopri5_finalize` / `dopri5_count` (`shaders/ode_dopri5.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct FinParams {
    /// Rows.
    pub n: u32,
    /// Components per state row.
    pub d: u32,
    /// Leading components that enter the error norm.
    pub d_err: u32,
    /// Padding.
    pub pad0: u32,
    /// State `[n, d]`.
    pub y_off: u32,
    /// Time `[n]`.
    pub t_off: u32,
    /// Step size `[n]`.
    pub h_off: u32,
    /// `k_1 … k_7` at `k_off + s · k_stride`, each `[n, d]`.
    pub k_off: u32,
    /// Stride between stages.
    pub k_stride: u32,
    /// Accepted / rejected counts `[n, 2]`.
    pub stats_off: u32,
    /// Active flags `[n]`.
    pub active_off: u32,
    /// Active-row count (1 value, `dopri5_count`).
    pub count_off: u32,
    /// End time.
    pub t1: f32,
    /// Absolute tolerance.
    pub atol: f32,
    /// Relative tolerance.
    pub rtol: f32,
    /// Smallest |h|: a step this small is accepted whatever its error.
    pub h_min: f32,
}
param_block!(FinParams as "FinParams" { n, d, d_err, pad0, y_off, t_off, h_off, k_off, k_stride, stats_off, active_off, count_off, t1, atol, rtol, h_min });

/// Records `ode_init` over the `p.n` rows.
pub fn ode_init(b: &mut ProgramBuilder, p: &InitParams) {
    b.push_1d(&ODE_INIT, p, p.n as usize);
}

/// Records `ode_axpy` over the `p.n` rows.
pub fn ode_axpy(b: &mut ProgramBuilder, p: &AxpyParams) {
    b.push_1d(&ODE_AXPY, p, p.n as usize);
}

/// Records `dopri5_finalize` over the `p.n` rows.
pub fn dopri5_finalize(b: &mut ProgramBuilder, p: &FinParams) {
    b.push_1d(&DOPRI5_FINALIZE, p, p.n as usize);
}

/// Records `dopri5_count` (one workgroup).
pub fn dopri5_count(b: &mut ProgramBuilder, p: &FinParams) {
    b.push_groups(&DOPRI5_COUNT, p, (1, 1, 1));
}
