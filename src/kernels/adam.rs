//! Adam over the flat parameter buffer (`shaders/adam.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The adam family.
pub(crate) static FAMILY: Family = Family {
    name: "adam",
    modules: &[ShaderModule { name: "adam", source: include_str!("../../shaders/adam.wgsl") }],
    kernels: &[&ADAM, &GRAD_CHECK, &ADAM_GUARDED],
    constants: &[],
    structs: &[StructLayout::of::<super::StepState>],
};

/// `adam`: one Adam step over `params[off .. off + n]` (PyTorch semantics).
pub static ADAM: KernelSpec = KernelSpec {
    name: "adam",
    module: "adam",
    entry_point: "adam",
    layout: Layout::Adam,
    params: StructLayout::of::<AdamParams>,
    variant: "",
    constants: &[],
};

/// `grad_check`: one workgroup flags a step whose gradient `g + weight_decay * p` over
/// `params[off .. off + n]` has a NaN or ±inf: writes the flag (0 or 1) to
/// `m[off + n]` and adds it to the epoch's count of flagged steps in `m[off + n + 1]`
/// (reset when `step_in_epoch` is 0). The moments buffer needs those two extra floats.
pub static GRAD_CHECK: KernelSpec = KernelSpec {
    name: "grad_check",
    module: "adam",
    entry_point: "grad_check",
    layout: Layout::Adam,
    params: StructLayout::of::<AdamParams>,
    variant: "",
    constants: &[],
};

/// `adam_guarded`: [`ADAM`] that skips the whole update (p, m and v unchanged) when
/// [`GRAD_CHECK`] flagged the step (`m[off + n] != 0`).
pub static ADAM_GUARDED: KernelSpec = KernelSpec {
    name: "adam_guarded",
    module: "adam",
    entry_point: "adam_guarded",
    layout: Layout::Adam,
    params: StructLayout::of::<AdamParams>,
    variant: "",
    constants: &[],
};

/// Parameters of `adam` (`shaders/adam.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct AdamParams {
    /// Parameters updated: indices `off .. off + n` of the flat buffers.
    pub n: u32,
    /// Index of the first parameter updated (0 for the whole buffer; lets one buffer
    /// hold weights with and without L2 decay).
    pub off: u32,
    /// [`adam_batched`]: offset between consecutive parameter sets, in f32 elements
    /// (0 otherwise; must be 0 for [`adam_guarded`]).
    pub batch_stride: u32,
    /// [`adam`] / [`adam_batched`]: the weight decay applies to the first `decay_len`
    /// of the `n` parameters only (weights before biases); 0: to all of them. Must be
    /// 0 for [`adam_guarded`].
    pub decay_len: u32,
    /// First-moment decay β1.
    pub beta1: f32,
    /// Second-moment decay β2.
    pub beta2: f32,
    /// Ε added to the denominator.
    pub eps: f32,
    /// L2 weight decay added to the gradient (PyTorch `weight_decay`).
    pub weight_decay: f32,
}
param_block!(AdamParams as "AdamParams" { n, off, batch_stride, decay_len, beta1, beta2, eps, weight_decay });

/// Records `adam` over the `p.n` parameters from `p.off` (one thread each).
pub fn adam(b: &mut ProgramBuilder, p: &AdamParams) {
    b.push_1d(&ADAM, p, p.n as usize);
}

/// Records `adam` over `count` independent parameter sets in one dispatch: set z is
/// `params[off + z·p.batch_stride ..][..n]` with its gradients and moments at the same
/// indices (workgroup z), each updated exactly as [`adam`] would update it alone.
///
/// # Panics
/// If `count` exceeds the device's workgroups per dimension.
pub fn adam_batched(b: &mut ProgramBuilder, p: &AdamParams, count: usize) {
    b.push_1d_batched(&ADAM, p, p.n as usize, count);
}

/// Records the guarded step: `grad_check` (one workgroup) then `adam_guarded` (one
/// thread per parameter). The update is skipped when a gradient is not finite; the
/// moments buffer must hold `off + n + 2` floats (see [`GRAD_CHECK`]).
///
/// # Panics
/// If `p.batch_stride` or `p.decay_len` is not 0 (the guarded kernels ignore them).
pub fn adam_guarded(b: &mut ProgramBuilder, p: &AdamParams) {
    assert!(p.batch_stride == 0 && p.decay_len == 0, "adam_guarded updates one set with one weight decay");
    b.push_groups(&GRAD_CHECK, p, (1, 1, 1));
    b.push_1d(&ADAM_GUARDED, p, p.n as usize);
}
