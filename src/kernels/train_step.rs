//! Parts of the flow-matching training step besides matmul and Adam: the minibatch
//! gather onto the OT path (`shaders/train_step_gather.wgsl`), the loss and its gradient
//! (`shaders/train_step_loss.wgsl`), and the backward of the GLU gate
//! (`shaders/train_step_glu.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The train_step family.
pub(crate) static FAMILY: Family = Family {
    name: "train_step",
    modules: &[ShaderModule { name: "train_step_gather", source: include_str!("../../shaders/train_step_gather.wgsl") }, ShaderModule { name: "train_step_loss", source: include_str!("../../shaders/train_step_loss.wgsl") }, ShaderModule { name: "train_step_glu", source: include_str!("../../shaders/train_step_glu.wgsl") }],
    kernels: &[&GATHER_PATH, &FM_LOSS, &GLU_BACKWARD],
    constants: &[],
    structs: &[],
};

/// `gather_path`: minibatch rows on the OT path with their regression targets.
pub static GATHER_PATH: KernelSpec = KernelSpec {
    name: "gather_path",
    module: "train_step_gather",
    entry_point: "gather_path",
    layout: Layout::Misc,
    params: StructLayout::of::<GatherParams>,
    variant: "",
    constants: &[],
};
/// `fm_loss`: squared-error sum into a loss slot and `dL/dv` (one workgroup).
pub static FM_LOSS: KernelSpec = KernelSpec {
    name: "fm_loss",
    module: "train_step_loss",
    entry_point: "fm_loss",
    layout: Layout::Misc,
    params: StructLayout::of::<LossParams>,
    variant: "",
    constants: &[],
};
/// `glu_backward`: `dy = dh ⊙ g`, `dgate_pre = dh ⊙ y ⊙ g (1 − g)`.
pub static GLU_BACKWARD: KernelSpec = KernelSpec {
    name: "glu_backward",
    module: "train_step_glu",
    entry_point: "glu_backward",
    layout: Layout::Misc,
    params: StructLayout::of::<GluParams>,
    variant: "",
    constants: &[],
};

/// Parameters of `gather_path` (`shaders/train_step_gather.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct GatherParams {
    /// Minibatch rows.
    pub rows: u32,
    /// Dimension of θ.
    pub dim_theta: u32,
    /// Dimension of x.
    pub dim_x: u32,
    /// 1 in glu mode (t, θ_t go to the gate context), 0 in concat mode.
    pub glu: u32,
    /// Training rows (the permutation's range).
    pub n_train: u32,
    /// Validation pass: first dataset row of this chunk (training rows come from the
    /// permutation at `step_in_epoch · rows + r`).
    pub row_offset: u32,
    /// 1 for the validation pass (fixed rows after the training rows, fixed noise).
    pub validation: u32,
    /// Philox key, low word.
    pub seed_lo: u32,
    /// Philox key, high word.
    pub seed_hi: u32,
    /// Dataset θ `[n, dim_theta]` in the data buffer.
    pub theta_off: u32,
    /// Dataset x `[n, dim_x]` in the data buffer.
    pub x_off: u32,
    /// Network input `[rows, in_rs]` in the workspace.
    pub in_off: u32,
    /// Row stride of the network input.
    pub in_rs: u32,
    /// Gate context `[rows, 1 + dim_theta]` (glu).
    pub ctx_off: u32,
    /// Regression target `[rows, dim_theta]`.
    pub target_off: u32,
    /// Destination of the x row (the input's x columns, or the embedding's input).
    pub x_dst_off: u32,
    /// Row stride of the x destination.
    pub x_dst_rs: u32,
    /// Time-prior exponent: `t = u^(1/(1+α))`.
    pub alpha: f32,
    /// Σ_min of the OT path.
    pub sigma_min: f32,
    /// Box bounds `[dim_theta, 2]` (low, high per component, in the z-scored units of
    /// θ) in the workspace; read only when `reflect_margin` is positive.
    pub bounds_off: u32,
    /// Training on the reflected density: a θ₁ component within
    /// `reflect_margin · (high − low)` of its nearer bound is mirrored across it at
    /// random ([`crate::reference::path::reflect_at_random`]); 0 turns it off.
    pub reflect_margin: f32,
}
param_block!(GatherParams as "GatherParams" { rows, dim_theta, dim_x, glu, n_train, row_offset, validation, seed_lo, seed_hi, theta_off, x_off, in_off, in_rs, ctx_off, target_off, x_dst_off, x_dst_rs, alpha, sigma_min, bounds_off, reflect_margin });

/// Parameters of `fm_loss` (`shaders/train_step_loss.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct LossParams {
    /// Elements `rows × dim_theta`.
    pub count: u32,
    /// Network output `[count]`.
    pub v_off: u32,
    /// Regression target `[count]`.
    pub target_off: u32,
    /// `dL/dv` `[count]` (when `write_dv`).
    pub dv_off: u32,
    /// 1: write the gradient; 0: loss only (validation).
    pub write_dv: u32,
    /// Loss slots; the sum goes to `loss_off + slot`.
    pub loss_off: u32,
    /// Slot when `slot_from_step` is 0.
    pub slot: u32,
    /// 1: the slot is the step state's `step_in_epoch`.
    pub slot_from_step: u32,
    /// Gradient scale (2 / count for the mean squared error).
    pub scale: f32,
}
param_block!(LossParams as "LossParams" { count, v_off, target_off, dv_off, write_dv, loss_off, slot, slot_from_step, scale });

/// Parameters of `glu_backward` (`shaders/train_step_glu.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct GluParams {
    /// Elements `rows × width`.
    pub count: u32,
    /// Upstream gradient `dh` `[count]`.
    pub dh_off: u32,
    /// Gated value `y` `[count]`.
    pub y_off: u32,
    /// Gate `g = σ(gate_pre)` `[count]`.
    pub g_off: u32,
    /// Output `dy = dh ⊙ g`.
    pub dy_off: u32,
    /// Output `dgate_pre = dh ⊙ y ⊙ g (1 − g)`.
    pub dgp_off: u32,
}
param_block!(GluParams as "GluParams" { count, dh_off, y_off, g_off, dy_off, dgp_off });

/// Records `gather_path` over the `p.rows` minibatch rows.
pub fn gather_path(b: &mut ProgramBuilder, p: &GatherParams) {
    b.push_1d(&GATHER_PATH, p, p.rows as usize);
}

/// Records `fm_loss` over `p.count` elements (one workgroup).
pub fn fm_loss(b: &mut ProgramBuilder, p: &LossParams) {
    b.push_groups(&FM_LOSS, p, (1, 1, 1));
}

/// Records `glu_backward` over `p.count` elements.
pub fn glu_backward(b: &mut ProgramBuilder, p: &GluParams) {
    b.push_1d(&GLU_BACKWARD, p, p.count as usize);
}
