//! The parameter transform θ ↔ θ' with its log-Jacobian (`shaders/transform.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout, WgslConst};

/// The transform family.
pub(crate) static FAMILY: Family = Family {
    name: "transform",
    modules: &[ShaderModule { name: "transform", source: include_str!("../../shaders/transform.wgsl") }],
    kernels: &[&THETA_TRANSFORM],
    constants: &[
        WgslConst { name: "TRANSFORM_FORWARD", value: TransformMode::Forward as u32 },
        WgslConst { name: "TRANSFORM_INVERSE", value: TransformMode::Inverse as u32 },
        WgslConst { name: "TRANSFORM_ZSCORE", value: TransformParams::ZSCORE },
        WgslConst { name: "TRANSFORM_LOG_DET", value: TransformParams::LOG_DET },
        WgslConst { name: "TRANSFORM_DATA", value: TransformParams::DATA },
        WgslConst { name: "TRANSFORM_KIND_IDENTITY", value: KIND_IDENTITY },
        WgslConst { name: "TRANSFORM_KIND_LOGIT", value: KIND_LOGIT },
        WgslConst { name: "TRANSFORM_KIND_LOG", value: KIND_LOG },
    ],
    structs: &[],
};

/// `theta_transform`: θ → θ' or θ' → θ per row, optionally z-scored, with the log-Jacobian.
pub static THETA_TRANSFORM: KernelSpec = KernelSpec {
    name: "theta_transform",
    module: "transform",
    entry_point: "theta_transform",
    layout: Layout::Misc,
    params: StructLayout::of::<TransformParams>,
    variant: "",
    constants: &[],
};

/// Direction of `theta_transform` (`TransformParams::mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TransformMode {
    /// θ → θ' (then z-score with flag `ZSCORE`).
    Forward = 0,
    /// θ' → θ (un-z-score first with flag `ZSCORE`).
    Inverse = 1,
}

/// Table kind code of an identity component (column 0 of the `[d, 4]` table).
pub const KIND_IDENTITY: u32 = 0;
/// Table kind code of a logit component on `(low, high)`.
pub const KIND_LOGIT: u32 = 1;
/// Table kind code of a log component on `(low, ∞)`.
pub const KIND_LOG: u32 = 2;

/// Parameters of `theta_transform` (`shaders/transform.wgsl`, where the modes and flags
/// are documented). Offsets in f32 elements; `in_off`/`out_off` index `acts`, or the
/// dataset buffer with flag [`TransformParams::DATA`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct TransformParams {
    /// Rows.
    pub n: u32,
    /// Components per row (dim_theta).
    pub d: u32,
    /// [`TransformMode`] as u32.
    pub mode: u32,
    /// Bit set of [`TransformParams::ZSCORE`], [`TransformParams::LOG_DET`],
    /// [`TransformParams::DATA`].
    pub flags: u32,
    /// Input rows `[n, d]` at this offset with row stride `in_rs` (f32 elements).
    pub in_off: u32,
    /// Input row stride.
    pub in_rs: u32,
    /// Output rows `[n, d]` at this offset with row stride `out_rs` (may equal the input).
    pub out_off: u32,
    /// Output row stride.
    pub out_rs: u32,
    /// Table `[d, 4]` from [`crate::transform::ThetaTransform::gpu_table`].
    pub tab_off: u32,
    /// Per-row log-Jacobian accumulator `[n]` (flag `LOG_DET`).
    pub ld_off: u32,
    /// z-score std `[d]` (flag `ZSCORE`).
    pub scale_off: u32,
    /// z-score mean `[d]` (flag `ZSCORE`).
    pub shift_off: u32,
}
param_block!(TransformParams as "TransformParams" { n, d, mode, flags, in_off, in_rs, out_off, out_rs, tab_off, ld_off, scale_off, shift_off });

impl TransformParams {
    /// Forward: z-score θ' after the transform; inverse: un-z-score before it.
    pub const ZSCORE: u32 = 1;
    /// Add the row's `Σ log |dθ'/dθ|` to `acts[ld_off + i]`.
    pub const LOG_DET: u32 = 2;
    /// Input and output rows live in the dataset buffer (`data`), not in `acts`.
    pub const DATA: u32 = 4;
}

/// Records `theta_transform` over the `p.n` rows.
pub fn theta_transform(b: &mut ProgramBuilder, p: &TransformParams) {
    b.push_1d(&THETA_TRANSFORM, p, p.n as usize);
}
