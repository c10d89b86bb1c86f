//! Kernels of the classifier two-sample test (src/metrics/c2st.rs): row shuffling,
//! minibatches, logistic loss and accuracy (`shaders/c2st.wgsl`), and the fused
//! narrow-network step (`shaders/c2st_mlp.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The c2st family.
pub(crate) static FAMILY: Family = Family {
    name: "c2st",
    modules: &[ShaderModule { name: "c2st", source: include_str!("../../shaders/c2st.wgsl") }, ShaderModule { name: "c2st_mlp", source: include_str!("../../shaders/c2st_mlp.wgsl") }],
    kernels: &[&C2ST_SHUFFLE, &C2ST_BATCH, &C2ST_BCE, &C2ST_ACCURACY, &C2ST_LOSS_SUM, &C2ST_MLP_ROWS, &C2ST_MLP_GRADS],
    constants: &[],
    structs: &[],
};

/// `c2st_shuffle`: shuffle rows into folds, with labels.
pub static C2ST_SHUFFLE: KernelSpec = KernelSpec {
    name: "c2st_shuffle",
    module: "c2st",
    entry_point: "c2st_shuffle",
    layout: Layout::Misc,
    params: StructLayout::of::<C2stParams>,
    variant: "",
    constants: &[],
};
/// `c2st_batch`: gather one minibatch of a fold's training rows.
pub static C2ST_BATCH: KernelSpec = KernelSpec {
    name: "c2st_batch",
    module: "c2st",
    entry_point: "c2st_batch",
    layout: Layout::Misc,
    params: StructLayout::of::<C2stParams>,
    variant: "",
    constants: &[],
};
/// `c2st_bce`: logistic loss and its gradient from logits (one workgroup).
pub static C2ST_BCE: KernelSpec = KernelSpec {
    name: "c2st_bce",
    module: "c2st",
    entry_point: "c2st_bce",
    layout: Layout::Misc,
    params: StructLayout::of::<C2stParams>,
    variant: "",
    constants: &[],
};
/// `c2st_accuracy`: held-out accuracy count (one workgroup).
pub static C2ST_ACCURACY: KernelSpec = KernelSpec {
    name: "c2st_accuracy",
    module: "c2st",
    entry_point: "c2st_accuracy",
    layout: Layout::Misc,
    params: StructLayout::of::<C2stParams>,
    variant: "",
    constants: &[],
};
/// `c2st_loss_sum`: minibatch loss sum of the fused path (one workgroup).
pub static C2ST_LOSS_SUM: KernelSpec = KernelSpec {
    name: "c2st_loss_sum",
    module: "c2st",
    entry_point: "c2st_loss_sum",
    layout: Layout::Misc,
    params: StructLayout::of::<C2stParams>,
    variant: "",
    constants: &[],
};
/// `c2st_mlp_rows`: fused per-row forward/backward of a narrow network.
pub static C2ST_MLP_ROWS: KernelSpec = KernelSpec {
    name: "c2st_mlp_rows",
    module: "c2st_mlp",
    entry_point: "c2st_mlp_rows",
    layout: Layout::Matmul,
    params: StructLayout::of::<MlpParams>,
    variant: "",
    constants: &[],
};
/// `c2st_mlp_grads`: per-parameter gradient sums of a narrow network.
pub static C2ST_MLP_GRADS: KernelSpec = KernelSpec {
    name: "c2st_mlp_grads",
    module: "c2st_mlp",
    entry_point: "c2st_mlp_grads",
    layout: Layout::Matmul,
    params: StructLayout::of::<MlpParams>,
    variant: "",
    constants: &[],
};

/// Parameters of the C2ST kernels (`shaders/c2st.wgsl`); offsets in f32 elements of
/// the workspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct C2stParams {
    pub rows: u32,
    pub d: u32,
    pub n_total: u32,
    pub n_a: u32,
    pub n_train: u32,
    pub test_start: u32,
    pub test_len: u32,
    pub batch: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub stream: u32,
    pub x_off: u32,
    pub y_off: u32,
    pub xb_off: u32,
    pub yb_off: u32,
    pub z_off: u32,
    pub dz_off: u32,
    pub loss_off: u32,
    pub wsq_off: u32,
    pub out_off: u32,
    pub scale: f32,
    pub alpha: f32,
    pub n_w: u32,
    pub w_off: u32,
}
param_block!(C2stParams as "C2stParams" { rows, d, n_total, n_a, n_train, test_start, test_len, batch, seed_lo, seed_hi, stream, x_off, y_off, xb_off, yb_off, z_off, dz_off, loss_off, wsq_off, out_off, scale, alpha, n_w, w_off });

/// Parameters of the fused narrow-network C2ST kernels (`shaders/c2st_mlp.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct MlpParams {
    pub rows: u32,
    pub d: u32,
    pub h: u32,
    pub n_params: u32,
    pub n_weights: u32,
    pub w1: u32,
    pub w2: u32,
    pub w3: u32,
    pub b1: u32,
    pub b2: u32,
    pub b3: u32,
    pub xb_off: u32,
    pub yb_off: u32,
    pub h1_off: u32,
    pub h2_off: u32,
    pub d1_off: u32,
    pub d2_off: u32,
    pub dz_off: u32,
    pub bce_off: u32,
    pub wsq_off: u32,
    pub scale: f32,
    pub pad: [f32; 3],
}
param_block!(MlpParams as "MlpParams" { rows, d, h, n_params, n_weights, w1, w2, w3, b1, b2, b3, xb_off, yb_off, h1_off, h2_off, d1_off, d2_off, dz_off, bce_off, wsq_off, scale, pad });

/// Records `c2st_shuffle` over the `p.rows` rows.
pub fn c2st_shuffle(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_1d(&C2ST_SHUFFLE, p, p.rows as usize);
}

/// Records `c2st_batch` over the `p.rows` minibatch rows.
pub fn c2st_batch(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_1d(&C2ST_BATCH, p, p.rows as usize);
}

/// Records `c2st_bce` (one workgroup).
pub fn c2st_bce(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_groups(&C2ST_BCE, p, (1, 1, 1));
}

/// Records `c2st_accuracy` (one workgroup).
pub fn c2st_accuracy(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_groups(&C2ST_ACCURACY, p, (1, 1, 1));
}

/// Records `c2st_loss_sum` (one workgroup).
pub fn c2st_loss_sum(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_groups(&C2ST_LOSS_SUM, p, (1, 1, 1));
}

/// Records `c2st_mlp_rows` (64 rows per workgroup).
pub fn c2st_mlp_rows(b: &mut ProgramBuilder, p: &MlpParams) {
    b.push_groups(&C2ST_MLP_ROWS, p, (p.rows.div_ceil(64), 1, 1));
}

/// Records `c2st_mlp_grads` (64 parameters per workgroup).
pub fn c2st_mlp_grads(b: &mut ProgramBuilder, p: &MlpParams) {
    b.push_groups(&C2ST_MLP_GRADS, p, (p.n_params.div_ceil(64), 1, 1));
}
