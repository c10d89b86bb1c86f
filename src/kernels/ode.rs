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
    pub n: u32,
    pub d: u32,
    pub d_noise: u32,
    pub noise: u32,
    pub y_off: u32,
    pub t_off: u32,
    pub h_off: u32,
    pub stats_off: u32,
    pub active_off: u32,
    pub first_index: u32,
    pub round: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub pad0: u32,
    pub t0: f32,
    pub h0: f32,
}
param_block!(InitParams as "InitParams" { n, d, d_noise, noise, y_off, t_off, h_off, stats_off, active_off, first_index, round, seed_lo, seed_hi, pad0, t0, h0 });

/// Parameters of `ode_axpy` (`shaders/ode_axpy.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct AxpyParams {
    pub n: u32,
    pub d: u32,
    pub d_net: u32,
    pub nk: u32,
    pub y_off: u32,
    pub t_off: u32,
    pub h_off: u32,
    pub k_off: u32,
    pub k_stride: u32,
    pub out_off: u32,
    pub out_rs: u32,
    pub mode: u32,
    pub c: f32,
    pub pad: [f32; 3],
    pub coef: [f32; 8],
}
param_block!(AxpyParams as "AxpyParams" { n, d, d_net, nk, y_off, t_off, h_off, k_off, k_stride, out_off, out_rs, mode, c, pad, coef });

/// Parameters of `dopri5_finalize` / `dopri5_count` (`shaders/ode_dopri5.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct FinParams {
    pub n: u32,
    pub d: u32,
    pub d_err: u32,
    pub pad0: u32,
    pub y_off: u32,
    pub t_off: u32,
    pub h_off: u32,
    pub k_off: u32,
    pub k_stride: u32,
    pub stats_off: u32,
    pub active_off: u32,
    pub count_off: u32,
    pub t1: f32,
    pub atol: f32,
    pub rtol: f32,
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
