//! Kernels of the classifier two-sample test (src/metrics/c2st.rs): row shuffling,
//! minibatches, logistic loss and accuracy (`shaders/c2st.wgsl`), the fused
//! narrow-network step (`shaders/c2st_mlp.wgsl`), and the forward and backward pass in
//! two kernels for CPU adapters whose subgroups are their SIMD lanes
//! (`shaders/c2st_lanes.wgsl`; CPU mirror `crate::reference::c2st`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The c2st family.
pub(crate) static FAMILY: Family = Family {
    name: "c2st",
    modules: &[
        ShaderModule { name: "c2st", source: include_str!("../../shaders/c2st.wgsl") },
        ShaderModule { name: "c2st_mlp", source: include_str!("../../shaders/c2st_mlp.wgsl") },
        ShaderModule { name: "c2st_lanes", source: include_str!("../../shaders/c2st_lanes.wgsl") },
    ],
    kernels: &[&C2ST_SHUFFLE, &C2ST_BATCH, &C2ST_BCE, &C2ST_ACCURACY, &C2ST_LOSS_SUM, &C2ST_MLP_ROWS, &C2ST_MLP_GRADS, &C2ST_LANES_ROWS, &C2ST_LANES_GRADS],
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
/// `c2st_bce`: logistic loss and its gradient from logits (one workgroup per fold).
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
/// `c2st_loss_sum`: minibatch loss sum of the fused path (one workgroup per fold).
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

/// `c2st_lanes_rows` (CPU adapters, subgroups of 8): forward pass, logistic loss and
/// both hidden layers' deltas of 32 or 40 minibatch rows per workgroup, specialised per
/// network and minibatch size (override constants `D`, `H` and `R`, the rows per lane).
pub static C2ST_LANES_ROWS: KernelSpec = KernelSpec {
    name: "c2st_lanes_rows@cpu",
    module: "c2st_lanes",
    entry_point: "c2st_lanes_rows",
    layout: Layout::Lanes,
    params: StructLayout::of::<MlpParams>,
    variant: "cpu",
    constants: &[],
};
/// `c2st_lanes_grads` (CPU adapters, subgroups of 8): every weight and bias gradient of
/// 32 output rows per workgroup, summed over the minibatch, the sum of squared weights
/// and the step's reported loss.
pub static C2ST_LANES_GRADS: KernelSpec = KernelSpec {
    name: "c2st_lanes_grads@cpu",
    module: "c2st_lanes",
    entry_point: "c2st_lanes_grads",
    layout: Layout::Lanes,
    params: StructLayout::of::<MlpParams>,
    variant: "cpu",
    constants: &[],
};

/// Widest hidden layer of the `c2st_lanes` kernels (the length of their accumulator
/// arrays).
pub const LANES_MAX_WIDTH: usize = 128;
/// Most input features of the `c2st_lanes` kernels.
pub const LANES_MAX_FEATURES: usize = 16;

/// Parameters of the C2ST kernels (`shaders/c2st.wgsl`); offsets in f32 elements of
/// the workspace.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct C2stParams {
    /// Rows handled by this dispatch (batch rows / test rows / all rows).
    pub rows: u32,
    /// Features per row.
    pub d: u32,
    /// Rows of A and B together.
    pub n_total: u32,
    /// Rows of A (label 0); rows >= n_a are B (label 1).
    pub n_a: u32,
    /// Training rows of the fold.
    pub n_train: u32,
    /// First test row of the fold (in the shuffled order).
    pub test_start: u32,
    /// Test rows of the fold.
    pub test_len: u32,
    /// Full minibatch size.
    pub batch: u32,
    /// Philox key, low word.
    pub seed_lo: u32,
    /// Philox key, high word.
    pub seed_hi: u32,
    /// Fold index (separates the shuffles of the folds).
    pub stream: u32,
    /// Shuffled rows `[n_total, d]`.
    pub x_off: u32,
    /// Shuffled labels `[n_total]`.
    pub y_off: u32,
    /// Minibatch rows `[batch, d]`.
    pub xb_off: u32,
    /// Minibatch labels `[batch]`.
    pub yb_off: u32,
    /// Logits `[rows]`.
    pub z_off: u32,
    /// dL/dz `[rows]`.
    pub dz_off: u32,
    /// Per-step loss slots.
    pub loss_off: u32,
    /// Sum of squared weights (1 value).
    pub wsq_off: u32,
    /// Accuracy: count of correct test rows (1 value).
    pub out_off: u32,
    /// 1 / rows of the minibatch.
    pub scale: f32,
    /// L2 penalty.
    pub alpha: f32,
    /// `c2st_bce`: the number of weights at `data[w_off ..]` whose squares it sums for
    /// the L2 term (the step program binds the parameters as `data`); 0: use `wsq_off`.
    pub n_w: u32,
    /// First weight in `data` (`n_w` values).
    pub w_off: u32,
    /// Folds trained together ([`c2st_batch`], [`c2st_bce`], [`c2st_loss_sum`] with
    /// `folds` > 1): slot z's minibatch workspace (`xb_off`, `yb_off`, `z_off`,
    /// `dz_off`, `wsq_off`) and weights (`w_off`) lie `z · fold_stride` elements after
    /// the given offsets (folds of equal size; which fold a slot trains: `slot_fold_off`).
    pub fold_stride: u32,
    /// Slot z's per-step loss slots start at `loss_off + z · loss_stride`.
    pub loss_stride: u32,
    /// [`c2st_batch`]: the fold each slot trains, `acts[slot_fold_off + z]` (a small
    /// integer as f32): slot z gathers fold `stream + acts[slot_fold_off + z]`'s
    /// minibatch (its test block at `test_start + fold · test_len`). Folds that stop
    /// early hand their slots to folds still training, so the table is not the identity.
    pub slot_fold_off: u32,
}
param_block!(C2stParams as "C2stParams" { rows, d, n_total, n_a, n_train, test_start, test_len, batch, seed_lo, seed_hi, stream, x_off, y_off, xb_off, yb_off, z_off, dz_off, loss_off, wsq_off, out_off, scale, alpha, n_w, w_off, fold_stride, loss_stride, slot_fold_off });

/// Parameters of the C2ST network kernels (`shaders/c2st_mlp.wgsl`,
/// `shaders/c2st_lanes.wgsl`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct MlpParams {
    /// Minibatch rows.
    pub rows: u32,
    /// Input features.
    pub d: u32,
    /// Hidden width (<= MAXH).
    pub h: u32,
    /// All parameters.
    pub n_params: u32,
    /// Weights (the first `n_weights` parameters; biases follow).
    pub n_weights: u32,
    /// First-layer weights `[h, d]` in `params`.
    pub w1: u32,
    /// Second-layer weights `[h, h]`.
    pub w2: u32,
    /// Output weights `[h]`.
    pub w3: u32,
    /// First-layer bias `[h]`.
    pub b1: u32,
    /// Second-layer bias `[h]`.
    pub b2: u32,
    /// Output bias (1 value).
    pub b3: u32,
    /// Minibatch rows `[rows, d]`.
    pub xb_off: u32,
    /// Labels `[rows]`.
    pub yb_off: u32,
    /// ReLU outputs `[rows, h]`.
    pub h1_off: u32,
    /// Second-layer ReLU outputs `[rows, h]`.
    pub h2_off: u32,
    /// dL/d(pre-activation) `[rows, h]`.
    pub d1_off: u32,
    /// dL/d(second-layer pre-activation) `[rows, h]`.
    pub d2_off: u32,
    /// dL/dz `[rows]`.
    pub dz_off: u32,
    /// Per-row loss `[rows]`.
    pub bce_off: u32,
    /// Sum of squared weights.
    pub wsq_off: u32,
    /// 1 / rows.
    pub scale: f32,
    /// Folds trained together (`folds` > 1 in [`c2st_mlp_rows`], [`c2st_mlp_grads`]):
    /// fold z's parameters, gradients and workspace lie `z · fold_stride` elements
    /// after fold 0's (every offset above is fold 0's).
    pub fold_stride: u32,
    /// The fields below are read by the `c2st_lanes` kernels only, which gather the
    /// minibatch and file the step's loss themselves (as [`c2st_batch`] and
    /// [`c2st_loss_sum`] do for the other paths). Each is the [`C2stParams`] field of
    /// the same name: [`C2stParams::x_off`] (the shuffled rows, which the slots share).
    pub x_off: u32,
    /// [`C2stParams::y_off`].
    pub y_off: u32,
    /// [`C2stParams::n_train`].
    pub n_train: u32,
    /// [`C2stParams::test_start`] (of the group's first fold).
    pub test_start: u32,
    /// [`C2stParams::test_len`].
    pub test_len: u32,
    /// [`C2stParams::batch`].
    pub batch: u32,
    /// [`C2stParams::seed_lo`].
    pub seed_lo: u32,
    /// [`C2stParams::seed_hi`].
    pub seed_hi: u32,
    /// [`C2stParams::stream`] (the group's first fold).
    pub stream: u32,
    /// [`C2stParams::slot_fold_off`].
    pub slot_fold_off: u32,
    /// [`C2stParams::loss_off`] (slot z's loss slots at `loss_off + z · loss_stride`).
    pub loss_off: u32,
    /// [`C2stParams::loss_stride`].
    pub loss_stride: u32,
    /// [`C2stParams::alpha`] (the reported loss adds `0.5 · alpha · Σ W²`).
    pub alpha: f32,
    /// Padding.
    pub pad: [f32; 3],
}
param_block!(MlpParams as "MlpParams" { rows, d, h, n_params, n_weights, w1, w2, w3, b1, b2, b3, xb_off, yb_off, h1_off, h2_off, d1_off, d2_off, dz_off, bce_off, wsq_off, scale, fold_stride, x_off, y_off, n_train, test_start, test_len, batch, seed_lo, seed_hi, stream, slot_fold_off, loss_off, loss_stride, alpha, pad });

/// Records `c2st_shuffle` over the `p.rows` rows.
pub fn c2st_shuffle(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_1d(&C2ST_SHUFFLE, p, p.rows as usize);
}

/// Records `c2st_batch` over the `p.rows` minibatch rows of each of `folds` folds
/// trained together (slot z trains fold `p.stream + acts[p.slot_fold_off + z]`, see
/// [`C2stParams::fold_stride`] and [`C2stParams::slot_fold_off`]).
pub fn c2st_batch(b: &mut ProgramBuilder, p: &C2stParams, folds: usize) {
    b.push_1d_batched(&C2ST_BATCH, p, p.rows as usize, folds);
}

/// Records `c2st_bce`: one workgroup per fold of `folds` trained together.
pub fn c2st_bce(b: &mut ProgramBuilder, p: &C2stParams, folds: usize) {
    b.push_groups(&C2ST_BCE, p, (1, 1, folds.max(1) as u32));
}

/// Records `c2st_accuracy` (one workgroup).
pub fn c2st_accuracy(b: &mut ProgramBuilder, p: &C2stParams) {
    b.push_groups(&C2ST_ACCURACY, p, (1, 1, 1));
}

/// Records `c2st_loss_sum`: one workgroup per fold of `folds` trained together.
pub fn c2st_loss_sum(b: &mut ProgramBuilder, p: &C2stParams, folds: usize) {
    b.push_groups(&C2ST_LOSS_SUM, p, (1, 1, folds.max(1) as u32));
}

/// Records `c2st_mlp_rows` (64 rows per workgroup) for each of `folds` folds trained
/// together (see [`MlpParams::fold_stride`]).
pub fn c2st_mlp_rows(b: &mut ProgramBuilder, p: &MlpParams, folds: usize) {
    b.push_groups(&C2ST_MLP_ROWS, p, (p.rows.div_ceil(64), 1, folds.max(1) as u32));
}

/// Records `c2st_mlp_grads` (64 parameters per workgroup) for each of `folds` folds
/// trained together.
pub fn c2st_mlp_grads(b: &mut ProgramBuilder, p: &MlpParams, folds: usize) {
    b.push_groups(&C2ST_MLP_GRADS, p, (p.n_params.div_ceil(64), 1, folds.max(1) as u32));
}

/// The override constants of the `c2st_lanes` pipelines for the network of `p`.
fn lanes_spec(p: &MlpParams) -> super::program::Specialization {
    vec![("D", p.d as f64), ("H", p.h as f64)]
}

/// The minibatch rows each lane of `c2st_lanes_rows` owns for full minibatches of
/// `batch` rows: 5 (blocks of 40 rows) where that computes fewer padded rows than 4
/// (blocks of 32), else 4. A block costs in proportion to its rows whatever it holds,
/// so sklearn's 200-row minibatch runs as 5 blocks of 40 rows (200 computed) instead of
/// 7 of 32 (224). An epoch's last, partial minibatch keeps its full minibatches' choice
/// (one pipeline per network, not two).
pub fn lanes_rows_per_lane(batch: u32) -> u32 {
    if batch.div_ceil(40) * 40 < batch.div_ceil(32) * 32 {
        5
    } else {
        4
    }
}

/// Records `c2st_lanes_rows` (32 or 40 minibatch rows per workgroup of 8 lanes:
/// [`lanes_rows_per_lane`] of `p.batch`) over the `p.rows` rows of a minibatch, for each
/// of `folds` fold slots trained together. Needs the subgroup feature with 8 lanes
/// ([`crate::gpu::MatmulVariant::Cpu`]), `p.rows` at most `p.batch`, `p.h` a multiple
/// of 4 and at most [`LANES_MAX_WIDTH`], `p.d` at most [`LANES_MAX_FEATURES`],
/// `p.h · p.d` a multiple of 4, and every offset of `p` (and `p.fold_stride`) a
/// multiple of 4, the weights first (`p.w1` = 0).
pub fn c2st_lanes_rows(b: &mut ProgramBuilder, p: &MlpParams, folds: usize) {
    let r = lanes_rows_per_lane(p.batch.max(p.rows));
    let mut spec = lanes_spec(p);
    spec.push(("R", r as f64));
    b.push_specialized(&C2ST_LANES_ROWS, p, (p.rows.div_ceil(8 * r), 1, folds.max(1) as u32), spec);
}

/// Records `c2st_lanes_grads` (32 output rows per workgroup) for each of `folds` fold
/// slots trained together; the same requirements as [`c2st_lanes_rows`], whose outputs
/// it reads.
pub fn c2st_lanes_grads(b: &mut ProgramBuilder, p: &MlpParams, folds: usize) {
    b.push_specialized(&C2ST_LANES_GRADS, p, (p.h.div_ceil(32), 1, folds.max(1) as u32), lanes_spec(p));
}
