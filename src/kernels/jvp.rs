//! Helpers of the forward-mode tangent (JVP) pass and of the density ODE
//! (`shaders/jvp.wgsl`): probe initialisation, divergence reduction, log-density.

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout, WgslConst};

/// The jvp family.
pub(crate) static FAMILY: Family = Family {
    name: "jvp",
    modules: &[ShaderModule { name: "jvp", source: include_str!("../../shaders/jvp.wgsl") }],
    kernels: &[&TANGENT_INIT, &DIV_REDUCE, &DENSITY_FINISH],
    constants: &[
        WgslConst { name: "PROBE_EXACT", value: ProbeMode::Exact as u32 },
        WgslConst { name: "PROBE_RADEMACHER", value: ProbeMode::Rademacher as u32 },
        WgslConst { name: "PROBE_GAUSSIAN", value: ProbeMode::Gaussian as u32 },
        WgslConst { name: "DENSITY_LOG_PROB", value: DensityMode::LogProb as u32 },
        WgslConst { name: "DENSITY_FORWARD_START", value: DensityMode::ForwardStart as u32 },
        WgslConst { name: "DENSITY_FORWARD_END", value: DensityMode::ForwardEnd as u32 },
    ],
    structs: &[],
};

/// `tangent_init`: the probes `eps [probes · n, d]` (see [`ProbeMode`]).
pub static TANGENT_INIT: KernelSpec = KernelSpec {
    name: "tangent_init",
    module: "jvp",
    entry_point: "tangent_init",
    layout: Layout::Misc,
    params: StructLayout::of::<JvpParams>,
    variant: "",
    constants: &[],
};
/// `div_reduce`: `out[i] = scale · Σ_p eps_p,i · (J eps)_p,i`.
pub static DIV_REDUCE: KernelSpec = KernelSpec {
    name: "div_reduce",
    module: "jvp",
    entry_point: "div_reduce",
    layout: Layout::Misc,
    params: StructLayout::of::<JvpParams>,
    variant: "",
    constants: &[],
};
/// `density_finish`: log-density from the joint state (see [`DensityMode`]).
pub static DENSITY_FINISH: KernelSpec = KernelSpec {
    name: "density_finish",
    module: "jvp",
    entry_point: "density_finish",
    layout: Layout::Misc,
    params: StructLayout::of::<JvpParams>,
    variant: "",
    constants: &[],
};

/// How `tangent_init` fills the probes (`JvpParams::mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProbeMode {
    /// Unit vectors (probes = d): the exact trace.
    Exact = 0,
    /// ±1 entries (Hutchinson).
    Rademacher = 1,
    /// N(0, 1) entries (Hutchinson).
    Gaussian = 2,
}

/// What `density_finish` writes (`JvpParams::mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DensityMode {
    /// log_prob, state at t = 0: `out = log N(θ; 0, I) + δ + shift`.
    LogProb = 0,
    /// Forward start (t = 0): `out = log N(θ; 0, I)`.
    ForwardStart = 1,
    /// Forward end (t = 1): `out = out − δ + shift`.
    ForwardEnd = 2,
}

/// Parameters of `tangent_init` / `div_reduce` / `density_finish` (`shaders/jvp.wgsl`;
/// the field meanings are documented there).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct JvpParams {
    /// Primal rows (samples).
    pub n: u32,
    /// Components of θ.
    pub d: u32,
    /// Probes per row (tangent rows = probes · n, probe-major).
    pub probes: u32,
    /// [`ProbeMode`] (`tangent_init`) or [`DensityMode`] (`density_finish`) as u32.
    pub mode: u32,
    /// Probes `[probes · n, d]`.
    pub eps_off: u32,
    /// Jacobian-vector products `[probes · n, d]`.
    pub jeps_off: u32,
    /// Output: divergence column (`div_reduce`) or log-density `[n]` (`density_finish`).
    pub out_off: u32,
    /// Row stride of the `div_reduce` output.
    pub out_rs: u32,
    /// Global index of row 0 (Philox counter).
    pub first_index: u32,
    /// Philox key, low word.
    pub seed_lo: u32,
    /// Philox key, high word.
    pub seed_hi: u32,
    /// Row stride of the joint state `[θ, δ]`.
    pub ds: u32,
    /// Joint state `[n, ds]`.
    pub y_off: u32,
    /// Padding.
    pub pad0: u32,
    /// `div_reduce` scale (1, or 1 / probes for Hutchinson).
    pub scale: f32,
    /// Added to the log-density (−Σ log std: back to original units).
    pub shift: f32,
}
param_block!(JvpParams as "JvpParams" { n, d, probes, mode, eps_off, jeps_off, out_off, out_rs, first_index, seed_lo, seed_hi, ds, y_off, pad0, scale, shift });

/// Records `tangent_init` over the `p.n · p.probes` tangent rows.
pub fn tangent_init(b: &mut ProgramBuilder, p: &JvpParams) {
    b.push_1d(&TANGENT_INIT, p, (p.n * p.probes) as usize);
}

/// Records `div_reduce` over the `p.n` rows.
pub fn div_reduce(b: &mut ProgramBuilder, p: &JvpParams) {
    b.push_1d(&DIV_REDUCE, p, p.n as usize);
}

/// Records `density_finish` over the `p.n` rows.
pub fn density_finish(b: &mut ProgramBuilder, p: &JvpParams) {
    b.push_1d(&DENSITY_FINISH, p, p.n as usize);
}
