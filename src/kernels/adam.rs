//! Adam over the flat parameter buffer (`shaders/adam.wgsl`, and its vec4 variant
//! `shaders/adam_vec4.wgsl`, four parameters per thread, chosen whenever the ranges are
//! 16-byte aligned: [`AdamWidth`]), and the exponential moving average of the
//! parameters that follows it (`shaders/adam_ema.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The adam family.
pub(crate) static FAMILY: Family = Family {
    name: "adam",
    modules: &[
        ShaderModule { name: "adam", source: include_str!("../../shaders/adam.wgsl") },
        ShaderModule { name: "adam_vec4", source: include_str!("../../shaders/adam_vec4.wgsl") },
        ShaderModule { name: "adam_ema", source: include_str!("../../shaders/adam_ema.wgsl") },
    ],
    kernels: &[&ADAM, &GRAD_CHECK, &ADAM_GUARDED, &ADAM_VEC4, &ADAM_GUARDED_VEC4, &EMA],
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

/// `adam_vec4`: [`ADAM`] with four parameters per thread (16-byte loads and stores).
pub static ADAM_VEC4: KernelSpec = KernelSpec {
    name: "adam_vec4",
    module: "adam_vec4",
    entry_point: "adam_vec4",
    layout: Layout::Adam,
    params: StructLayout::of::<AdamParams>,
    variant: "vec4",
    constants: &[],
};

/// `adam_guarded_vec4`: [`ADAM_GUARDED`] with four parameters per thread.
pub static ADAM_GUARDED_VEC4: KernelSpec = KernelSpec {
    name: "adam_guarded_vec4",
    module: "adam_vec4",
    entry_point: "adam_guarded_vec4",
    layout: Layout::Adam,
    params: StructLayout::of::<AdamParams>,
    variant: "vec4",
    constants: &[],
};

/// `ema`: one step of the exponential moving average `avg ← avg + (1 − d)(p − avg)`
/// over `[off, off + n)`, `d = min(decay, (1 + step) / (10 + step))` (`step` the 1-based
/// optimiser step of the step uniform). Bound through [`Layout::Adam`]: the
/// parameters' slot holds the average, the gradients' slot the parameters it follows.
pub static EMA: KernelSpec = KernelSpec {
    name: "ema",
    module: "adam_ema",
    entry_point: "ema",
    layout: Layout::Adam,
    params: StructLayout::of::<EmaParams>,
    variant: "",
    constants: &[],
};

/// How many parameters one thread of the Adam step updates.
///
/// On lavapipe every storage access is a loop over the 8 SIMD lanes, so a 16-byte
/// access per lane does four parameters' loads for the cost of about one
/// (../shared/notes/lavapipe-kernels.md): the C2ST classifier's Adam step at dimension
/// 10 (five folds of 11,301 parameters, one dispatch) takes 263 µs in vec4 against 503 µs
/// in scalar (BENCHMARKS.md, stop 23). On a GPU a 16-byte access is as cheap as a 4-byte
/// one. Both give the same numbers, bit for bit (`tests/kernels_adam.rs`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdamWidth {
    /// One parameter per thread (`shaders/adam.wgsl`); any offsets.
    Scalar,
    /// Four per thread (`shaders/adam_vec4.wgsl`); `off` and `batch_stride` multiples of 4.
    Vec4,
}

impl AdamWidth {
    /// [`AdamWidth::Vec4`] when `p.off` and `p.batch_stride` are multiples of 4 (the
    /// vectors 16-byte aligned), else [`AdamWidth::Scalar`].
    pub fn of(p: &AdamParams) -> AdamWidth {
        if p.off.is_multiple_of(4) && p.batch_stride.is_multiple_of(4) {
            AdamWidth::Vec4
        } else {
            AdamWidth::Scalar
        }
    }

    /// Threads for `n` parameters.
    fn threads(self, n: u32) -> usize {
        match self {
            AdamWidth::Scalar => n as usize,
            AdamWidth::Vec4 => n.div_ceil(4) as usize,
        }
    }

    /// `scalar` or `vec4`, the kernel of this width.
    ///
    /// # Panics
    /// For [`AdamWidth::Vec4`] when `p`'s ranges are not 16-byte aligned ([`AdamWidth::of`]).
    fn kernel(self, p: &AdamParams, scalar: &'static KernelSpec, vec4: &'static KernelSpec) -> &'static KernelSpec {
        match self {
            AdamWidth::Scalar => scalar,
            AdamWidth::Vec4 => {
                assert_eq!(AdamWidth::of(p), AdamWidth::Vec4, "{} needs off and batch_stride multiples of 4", vec4.name);
                vec4
            }
        }
    }
}

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

/// Records `adam` over the `p.n` parameters from `p.off` (in the width of
/// [`AdamWidth::of`]).
pub fn adam(b: &mut ProgramBuilder, p: &AdamParams) {
    adam_batched_as(b, p, 1, AdamWidth::of(p));
}

/// Records `adam` over `count` independent parameter sets in one dispatch: set z is
/// `params[off + z·p.batch_stride ..][..n]` with its gradients and moments at the same
/// indices (workgroup z), each updated exactly as [`adam`] would update it alone.
///
/// # Panics
/// If `count` exceeds the device's workgroups per dimension.
pub fn adam_batched(b: &mut ProgramBuilder, p: &AdamParams, count: usize) {
    adam_batched_as(b, p, count, AdamWidth::of(p));
}

/// [`adam_batched`] in the given width.
///
/// # Panics
/// If `count` exceeds the device's workgroups per dimension, or `width` is
/// [`AdamWidth::Vec4`] and `p.off` or `p.batch_stride` is not a multiple of 4.
pub fn adam_batched_as(b: &mut ProgramBuilder, p: &AdamParams, count: usize, width: AdamWidth) {
    b.push_1d_batched(width.kernel(p, &ADAM, &ADAM_VEC4), p, width.threads(p.n), count);
}

/// Records the guarded step: `grad_check` (one workgroup) then `adam_guarded` (in the
/// width of [`AdamWidth::of`]: one or four parameters per thread). The update is
/// skipped when a gradient is not finite; the moments buffer must hold `off + n + 2`
/// floats (see [`GRAD_CHECK`]).
///
/// # Panics
/// If `p.batch_stride` or `p.decay_len` is not 0 (the guarded kernels ignore them).
pub fn adam_guarded(b: &mut ProgramBuilder, p: &AdamParams) {
    adam_guarded_as(b, p, AdamWidth::of(p));
}

/// [`adam_guarded`] in the given width.
///
/// # Panics
/// As [`adam_guarded`], and if `width` is [`AdamWidth::Vec4`] and `p.off` is not a
/// multiple of 4.
pub fn adam_guarded_as(b: &mut ProgramBuilder, p: &AdamParams, width: AdamWidth) {
    assert!(p.batch_stride == 0 && p.decay_len == 0, "adam_guarded updates one set with one weight decay");
    b.push_groups(&GRAD_CHECK, p, (1, 1, 1));
    b.push_1d(width.kernel(p, &ADAM_GUARDED, &ADAM_GUARDED_VEC4), p, width.threads(p.n));
}

/// Parameters of `ema` (`shaders/adam_ema.wgsl`): offsets and counts in f32 elements.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct EmaParams {
    /// Parameters averaged: indices `off .. off + n`.
    pub n: u32,
    /// Index of the first parameter averaged.
    pub off: u32,
    /// Padding.
    pub pad0: u32,
    /// Padding.
    pub pad1: u32,
    /// Decay of the average per optimiser step (for example 0.999: a horizon of about
    /// 1,000 steps), before the warm-up `min(decay, (1 + step) / (10 + step))`.
    pub decay: f32,
    /// Padding.
    pub pad2: f32,
    /// Padding.
    pub pad3: f32,
    /// Padding.
    pub pad4: f32,
}
param_block!(EmaParams as "EmaParams" { n, off, pad0, pad1, decay, pad2, pad3, pad4 });

/// Records `ema` over the `p.n` parameters from `p.off`: the program's bindings must
/// put the average in the parameters' slot and the parameters it follows in the
/// gradients' slot (see [`EMA`]).
pub fn ema(b: &mut ProgramBuilder, p: &EmaParams) {
    b.push_1d(&EMA, p, p.n as usize);
}
