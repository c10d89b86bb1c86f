//! Typed wrappers of fmpe's WGSL kernels: shader assembly, pipelines and bind-group
//! layouts (created once per device), per-dispatch parameter blocks, and recorded
//! *programs* (static lists of dispatches replayed into a compute pass).
//!
//! Every kernel reads its per-dispatch parameters from a 256-byte slot of one uniform
//! buffer (dynamic offset), so a whole training step or ODE step is recorded once and
//! replayed each time with zero uploads besides a 32-byte step state.

use bytemuck::{Pod, Zeroable};

use crate::error::{Error, Result};
use crate::gpu::{grid, Gpu};

/// The shader files, embedded at build time.
mod src {
    pub const COMMON: &str = include_str!("../../shaders/common.wgsl");
    pub const MISC: &str = include_str!("../../shaders/misc.wgsl");
    pub const MATMUL: &str = include_str!("../../shaders/matmul.wgsl");
    pub const ADAM: &str = include_str!("../../shaders/adam.wgsl");
    pub const GATHER: &str = include_str!("../../shaders/gather.wgsl");
    pub const LOSS: &str = include_str!("../../shaders/loss.wgsl");
    pub const GLU: &str = include_str!("../../shaders/glu.wgsl");
    pub const STATS: &str = include_str!("../../shaders/stats.wgsl");
    pub const ODE_INIT: &str = include_str!("../../shaders/ode_init.wgsl");
    pub const ODE_AXPY: &str = include_str!("../../shaders/ode_axpy.wgsl");
    pub const DOPRI5: &str = include_str!("../../shaders/dopri5.wgsl");
    pub const AFFINE: &str = include_str!("../../shaders/affine.wgsl");
    pub const JVP: &str = include_str!("../../shaders/jvp.wgsl");
    pub const C2ST: &str = include_str!("../../shaders/c2st.wgsl");
    pub const C2ST_MLP: &str = include_str!("../../shaders/c2st_mlp.wgsl");
    pub const TRANSFORM: &str = include_str!("../../shaders/transform.wgsl");
}

/// Bind-group layout families.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// 0 uniform (dyn), 1 acts rw, 2 params read, 3 grads rw.
    Matmul = 0,
    /// 0 uniform (dyn), 1 acts rw, 2 data rw, 3 step uniform.
    Misc = 1,
    /// 0 uniform (dyn), 1 params rw, 2 grads read, 3 m rw, 4 v rw, 5 step uniform.
    Adam = 2,
}

/// Every compute kernel of fmpe.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kernel {
    /// Tiled strided matmul with fused epilogue (`shaders/matmul.wgsl`).
    Matmul,
    /// Adam over the flat parameter buffer (`shaders/adam.wgsl`).
    Adam,
    /// Minibatch gather + OT path (`shaders/gather.wgsl`).
    GatherPath,
    /// Flow-matching loss and its gradient (`shaders/loss.wgsl`).
    FmLoss,
    /// Backward of the GLU gate (`shaders/glu.wgsl`).
    GluBackward,
    /// Column mean / std (`shaders/stats.wgsl`).
    ColumnStats,
    /// In-place z-scoring (`shaders/stats.wgsl`).
    Zscore,
    /// ODE state initialisation (`shaders/ode_init.wgsl`).
    OdeInit,
    /// Runge–Kutta stage input / update (`shaders/ode_axpy.wgsl`).
    OdeAxpy,
    /// dopri5 error control and step update (`shaders/dopri5.wgsl`).
    Dopri5Finalize,
    /// Active-row count (`shaders/dopri5.wgsl`).
    Dopri5Count,
    /// Per-column affine map (`shaders/affine.wgsl`).
    Affine,
    /// Tangent (probe) initialisation (`shaders/jvp.wgsl`).
    TangentInit,
    /// Divergence from stacked tangents (`shaders/jvp.wgsl`).
    DivReduce,
    /// Log-density from the joint ODE state (`shaders/jvp.wgsl`).
    DensityFinish,
    /// C2ST: shuffle rows into folds, with labels (`shaders/c2st.wgsl`).
    C2stShuffle,
    /// C2ST: gather one minibatch of a fold's training rows (`shaders/c2st.wgsl`).
    C2stBatch,
    /// C2ST: logistic loss and its gradient from logits (`shaders/c2st.wgsl`).
    C2stBce,
    /// C2ST: held-out accuracy count (`shaders/c2st.wgsl`).
    C2stAccuracy,
    /// C2ST: minibatch loss sum of the fused path (`shaders/c2st.wgsl`).
    C2stLossSum,
    /// C2ST, narrow networks: fused per-row forward/backward (`shaders/c2st_mlp.wgsl`).
    C2stMlpRows,
    /// C2ST, narrow networks: per-parameter gradient sums (`shaders/c2st_mlp.wgsl`).
    C2stMlpGrads,
    /// Parameter transform θ ↔ θ' with its log-Jacobian (`shaders/transform.wgsl`).
    Transform,
}

impl Kernel {
    /// All kernels.
    pub const ALL: [Kernel; 23] = [
        Kernel::Matmul,
        Kernel::Adam,
        Kernel::GatherPath,
        Kernel::FmLoss,
        Kernel::GluBackward,
        Kernel::ColumnStats,
        Kernel::Zscore,
        Kernel::OdeInit,
        Kernel::OdeAxpy,
        Kernel::Dopri5Finalize,
        Kernel::Dopri5Count,
        Kernel::Affine,
        Kernel::TangentInit,
        Kernel::DivReduce,
        Kernel::DensityFinish,
        Kernel::C2stShuffle,
        Kernel::C2stBatch,
        Kernel::C2stBce,
        Kernel::C2stAccuracy,
        Kernel::C2stLossSum,
        Kernel::C2stMlpRows,
        Kernel::C2stMlpGrads,
        Kernel::Transform,
    ];

    /// (file, entry point, layout).
    fn spec(self) -> (&'static str, &'static str, Layout) {
        match self {
            Kernel::Matmul => ("matmul", "main", Layout::Matmul),
            Kernel::Adam => ("adam", "adam", Layout::Adam),
            Kernel::GatherPath => ("gather", "gather_path", Layout::Misc),
            Kernel::FmLoss => ("loss", "fm_loss", Layout::Misc),
            Kernel::GluBackward => ("glu", "glu_backward", Layout::Misc),
            Kernel::ColumnStats => ("stats", "column_stats", Layout::Misc),
            Kernel::Zscore => ("stats", "zscore", Layout::Misc),
            Kernel::OdeInit => ("ode_init", "ode_init", Layout::Misc),
            Kernel::OdeAxpy => ("ode_axpy", "ode_axpy", Layout::Misc),
            Kernel::Dopri5Finalize => ("dopri5", "dopri5_finalize", Layout::Misc),
            Kernel::Dopri5Count => ("dopri5", "dopri5_count", Layout::Misc),
            Kernel::Affine => ("affine", "affine", Layout::Misc),
            Kernel::TangentInit => ("jvp", "tangent_init", Layout::Misc),
            Kernel::DivReduce => ("jvp", "div_reduce", Layout::Misc),
            Kernel::DensityFinish => ("jvp", "density_finish", Layout::Misc),
            Kernel::C2stShuffle => ("c2st", "c2st_shuffle", Layout::Misc),
            Kernel::C2stBatch => ("c2st", "c2st_batch", Layout::Misc),
            Kernel::C2stBce => ("c2st", "c2st_bce", Layout::Misc),
            Kernel::C2stAccuracy => ("c2st", "c2st_accuracy", Layout::Misc),
            Kernel::C2stLossSum => ("c2st", "c2st_loss_sum", Layout::Misc),
            Kernel::C2stMlpRows => ("c2st_mlp", "c2st_mlp_rows", Layout::Matmul),
            Kernel::C2stMlpGrads => ("c2st_mlp", "c2st_mlp_grads", Layout::Matmul),
            Kernel::Transform => ("transform", "theta_transform", Layout::Misc),
        }
    }

    /// Bind-group layout family of this kernel.
    pub fn layout(self) -> Layout {
        self.spec().2
    }

    /// Entry point name.
    pub fn entry_point(self) -> &'static str {
        self.spec().1
    }
}

/// Names of the shader modules (one per `.wgsl` kernel file).
pub const SHADER_MODULES: [&str; 14] = [
    "matmul", "adam", "gather", "loss", "glu", "stats", "ode_init", "ode_axpy", "dopri5", "affine", "jvp", "c2st",
    "c2st_mlp", "transform",
];

/// The complete WGSL source of one shader module as compiled: `common.wgsl`, then
/// (for the misc family) `misc.wgsl`, then the kernel file.
///
/// # Errors
/// [`Error::Invalid`] for an unknown module name.
pub fn shader_source(module: &str) -> Result<String> {
    let body = match module {
        "matmul" => src::MATMUL,
        "adam" => src::ADAM,
        "gather" => src::GATHER,
        "loss" => src::LOSS,
        "glu" => src::GLU,
        "stats" => src::STATS,
        "ode_init" => src::ODE_INIT,
        "ode_axpy" => src::ODE_AXPY,
        "dopri5" => src::DOPRI5,
        "affine" => src::AFFINE,
        "jvp" => src::JVP,
        "c2st" => src::C2ST,
        "c2st_mlp" => src::C2ST_MLP,
        "transform" => src::TRANSFORM,
        other => return Err(Error::invalid(format!("unknown shader module '{other}'"))),
    };
    let misc = !matches!(module, "matmul" | "adam" | "c2st_mlp");
    Ok(format!("{}\n{}\n{}", src::COMMON, if misc { src::MISC } else { "" }, body))
}

/// Compiled pipelines and bind-group layouts of one device.
pub(crate) struct Pipelines {
    layouts: [wgpu::BindGroupLayout; 3],
    pipelines: Vec<(Kernel, wgpu::ComputePipeline)>,
}

fn entry(binding: u32, ty: wgpu::BindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry { binding, visibility: wgpu::ShaderStages::COMPUTE, ty, count: None }
}
fn storage(read_only: bool) -> wgpu::BindingType {
    wgpu::BindingType::Buffer {
        ty: wgpu::BufferBindingType::Storage { read_only },
        has_dynamic_offset: false,
        min_binding_size: None,
    }
}
fn uniform(dynamic: bool) -> wgpu::BindingType {
    wgpu::BindingType::Buffer {
        ty: wgpu::BufferBindingType::Uniform,
        has_dynamic_offset: dynamic,
        min_binding_size: None,
    }
}

/// Size of one per-dispatch parameter slot (bytes) seen by the shader.
pub const SLOT_BYTES: u64 = 256;

impl Pipelines {
    pub(crate) fn new(device: &wgpu::Device) -> Pipelines {
        let mk = |label: &str, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
        };
        let layouts = [
            mk(
                "fmpe matmul",
                &[entry(0, uniform(true)), entry(1, storage(false)), entry(2, storage(true)), entry(3, storage(false))],
            ),
            mk(
                "fmpe misc",
                &[entry(0, uniform(true)), entry(1, storage(false)), entry(2, storage(false)), entry(3, uniform(false))],
            ),
            mk(
                "fmpe adam",
                &[
                    entry(0, uniform(true)),
                    entry(1, storage(false)),
                    entry(2, storage(true)),
                    entry(3, storage(false)),
                    entry(4, storage(false)),
                    entry(5, uniform(false)),
                ],
            ),
        ];
        let mut modules = std::collections::HashMap::new();
        for m in SHADER_MODULES {
            let code = shader_source(m).expect("known module");
            let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
                label: Some(m),
                source: wgpu::ShaderSource::Wgsl(code.into()),
            });
            modules.insert(m, module);
        }
        let mut pipelines = Vec::new();
        for k in Kernel::ALL {
            let (file, ep, lay) = k.spec();
            let pl = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some(ep),
                bind_group_layouts: &[Some(&layouts[lay as usize])],
                immediate_size: 0,
            });
            let p = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(ep),
                layout: Some(&pl),
                module: &modules[file],
                entry_point: Some(ep),
                compilation_options: Default::default(),
                cache: None,
            });
            pipelines.push((k, p));
        }
        Pipelines { layouts, pipelines }
    }

    fn pipeline(&self, k: Kernel) -> &wgpu::ComputePipeline {
        &self.pipelines.iter().find(|(kk, _)| *kk == k).expect("pipeline exists").1
    }
}

// ---------------------------------------------------------------------------------
// Parameter blocks (must match the WGSL structs field by field).

/// Storage buffer an operand lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Buf {
    /// The workspace (activations, inputs, ODE state).
    Acts = 0,
    /// Network parameters (read-only in the matmul kernel).
    Params = 1,
    /// Gradients.
    Grads = 2,
}

/// A strided 2-D view: element (i, j) at `buf[off + i * rs + j * cs]`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, PartialEq, Eq)]
pub struct Mat {
    /// Buffer code ([`Buf`] as u32).
    pub buf: u32,
    /// Offset in f32 elements.
    pub off: u32,
    /// Row stride (0 broadcasts one row).
    pub rs: u32,
    /// Column stride.
    pub cs: u32,
}

impl Mat {
    /// Row-major matrix with `cols` columns (row stride = cols).
    pub fn rows(buf: Buf, off: usize, cols: usize) -> Mat {
        Mat { buf: buf as u32, off: off as u32, rs: cols as u32, cs: 1 }
    }
    /// A general strided view.
    pub fn strided(buf: Buf, off: usize, rs: usize, cs: usize) -> Mat {
        Mat { buf: buf as u32, off: off as u32, rs: rs as u32, cs: cs as u32 }
    }
    /// The transposed view.
    pub fn t(self) -> Mat {
        Mat { rs: self.cs, cs: self.rs, ..self }
    }
    /// The same view with row stride 0 (one row broadcast over all rows).
    pub fn broadcast(self) -> Mat {
        Mat { rs: 0, ..self }
    }
}

/// Element-wise operator codes (see `apply_op` in `shaders/common.wgsl`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    /// x
    Id = 0,
    /// GELU (tanh form)
    Gelu = 1,
    /// max(x, 0)
    Relu = 2,
    /// logistic sigmoid
    Sigmoid = 3,
    /// GELU'(x)
    GeluGrad = 4,
    /// 1 if x > 0 else 0
    ReluGrad = 5,
    /// s (1 − s) for a sigmoid output s
    SigmoidGrad = 6,
    /// σ'(a) = σ(a)(1 − σ(a)) for a pre-activation a
    SigmoidDeriv = 7,
}

#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
struct MatmulParams {
    m: u32,
    n: u32,
    k: u32,
    flags: u32,
    a: Mat,
    b: Mat,
    bias: Mat,
    aux: Mat,
    res: Mat,
    pre: Mat,
    c: Mat,
    ops: [u32; 4],
    extra: [u32; 4],
    amul: Mat,
}

/// One fused matmul: `C = res + aux_op(aux) ⊙ act(A_eff · op_b(B) + bias)` with
/// `A_eff = op_a(A)` or `op_a(A) ⊙ op_m(M)` (see `a_mul`),
/// `pre = act(A·B + bias)`; A is `[m, k]`, B `[k, n]`, C `[m, n]` (strided views).
/// With `bias_grad = Some(off)`, B gets a virtual extra column of ones and the extra
/// output column (the row sums of A, i.e. a bias gradient) goes to `grads[off..off+m]`;
/// `n` then counts B's real columns only.
#[derive(Clone, Copy, Debug)]
pub struct Matmul {
    /// Rows of A and C.
    pub m: usize,
    /// Columns of B and C.
    pub n: usize,
    /// Inner dimension.
    pub k: usize,
    /// Left operand `[m, k]`.
    pub a: Mat,
    /// Operator applied to A's elements on load.
    pub a_op: Op,
    /// Element-wise multiplier of A: `A_eff = op_a(A) ⊙ op_m(M)` (M `[m, k]`, rows
    /// subject to `primal_rows`). Fuses the tangent rule `dA ⊙ act'(A)` into the product.
    pub a_mul: Option<(Mat, Op)>,
    /// When non-zero, the primal operands M (`a_mul`) and `aux` are read at row
    /// `i % primal_rows` for output row `i` (a stack of tangent rows sharing one block
    /// of primal rows). 0: row `i`.
    pub primal_rows: usize,
    /// Right operand `[k, n]`.
    pub b: Mat,
    /// Operator applied to B's elements on load.
    pub b_op: Op,
    /// Bias `[n]` (uses `off` and `cs`).
    pub bias: Option<Mat>,
    /// Activation applied after the bias.
    pub act: Op,
    /// Stores `act(acc + bias)` here before aux/res (must be in acts).
    pub pre: Option<Mat>,
    /// Multiplies by `op(aux)`.
    pub aux: Option<(Mat, Op)>,
    /// Adds this (may alias C element-for-element).
    pub res: Option<Mat>,
    /// Output.
    pub c: Mat,
    /// Bias-gradient output offset in grads (see above).
    pub bias_grad: Option<usize>,
}

impl Matmul {
    /// A plain product `C = A · B` with no epilogue.
    pub fn new(m: usize, n: usize, k: usize, a: Mat, b: Mat, c: Mat) -> Matmul {
        Matmul {
            m,
            n,
            k,
            a,
            a_op: Op::Id,
            a_mul: None,
            primal_rows: 0,
            b,
            b_op: Op::Id,
            bias: None,
            act: Op::Id,
            pre: None,
            aux: None,
            res: None,
            c,
            bias_grad: None,
        }
    }
}

/// Parameters of `gather_path` (`shaders/gather.wgsl`).
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
    pub alpha: f32,
    pub sigma_min: f32,
}

/// Parameters of `fm_loss` (`shaders/loss.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct LossParams {
    pub count: u32,
    pub v_off: u32,
    pub target_off: u32,
    pub dv_off: u32,
    pub write_dv: u32,
    pub loss_off: u32,
    pub slot: u32,
    pub slot_from_step: u32,
    pub scale: f32,
}

/// Parameters of `glu_backward` (`shaders/glu.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct GluParams {
    pub count: u32,
    pub dh_off: u32,
    pub y_off: u32,
    pub g_off: u32,
    pub dy_off: u32,
    pub dgp_off: u32,
}

/// Parameters of `column_stats` / `zscore` (`shaders/stats.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct StatsParams {
    pub rows: u32,
    pub cols: u32,
    pub off: u32,
    pub stats_off: u32,
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

/// Parameters of `dopri5_finalize` / `dopri5_count` (`shaders/dopri5.wgsl`).
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

/// Parameters of `affine` (`shaders/affine.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct AffineParams {
    pub n: u32,
    pub d: u32,
    pub in_off: u32,
    pub in_rs: u32,
    pub out_off: u32,
    pub scale_off: u32,
    pub shift_off: u32,
    pub pad: u32,
}

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
    /// 0: forward θ → θ'; 1: inverse θ' → θ.
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

impl TransformParams {
    /// Forward: z-score θ' after the transform; inverse: un-z-score before it.
    pub const ZSCORE: u32 = 1;
    /// Add the row's `Σ log |dθ'/dθ|` to `acts[ld_off + i]`.
    pub const LOG_DET: u32 = 2;
    /// Input and output rows live in the dataset buffer (`data`), not in `acts`.
    pub const DATA: u32 = 4;
}

/// Parameters of `tangent_init` / `div_reduce` / `density_finish` (`shaders/jvp.wgsl`;
/// the field meanings are documented there).
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct JvpParams {
    pub n: u32,
    pub d: u32,
    pub probes: u32,
    pub mode: u32,
    pub eps_off: u32,
    pub jeps_off: u32,
    pub out_off: u32,
    pub out_rs: u32,
    pub first_index: u32,
    pub seed_lo: u32,
    pub seed_hi: u32,
    pub ds: u32,
    pub y_off: u32,
    pub pad0: u32,
    pub scale: f32,
    pub shift: f32,
}

/// Parameters of `adam` (`shaders/adam.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct AdamParams {
    /// Parameters updated: indices `pad[0] .. pad[0] + n` of the flat buffers.
    pub n: u32,
    /// `pad[0]`: index of the first parameter updated (0 for the whole buffer);
    /// `pad[1..]`: unused. (Lets one buffer hold weights with and without L2 decay.)
    pub pad: [u32; 3],
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
}

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

/// The per-step state (`struct Step` in the shaders), written once per submission.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct StepState {
    /// Global optimiser step (1-based for Adam's bias correction; RNG counter).
    pub step: u32,
    /// Epoch (permutation key).
    pub epoch: u32,
    /// Batch index within the epoch.
    pub step_in_epoch: u32,
    pub pad0: u32,
    /// Learning rate.
    pub lr: f32,
    /// 1 − β1^step.
    pub bias_corr1: f32,
    /// 1 − β2^step.
    pub bias_corr2: f32,
    pub pad1: f32,
}

// ---------------------------------------------------------------------------------
// Programs.

#[derive(Clone, Copy, Debug)]
struct Dispatch {
    kernel: Kernel,
    slot: u32,
    groups: (u32, u32, u32),
}

/// Collects dispatches and their parameter blocks; [`ProgramBuilder::build`] uploads
/// the parameters once and binds the buffers.
#[derive(Default)]
pub struct ProgramBuilder {
    slots: Vec<[u8; SLOT_BYTES as usize]>,
    ops: Vec<Dispatch>,
    max_groups: u32,
}

/// Buffers bound by a program. Unused entries may be `None`.
#[derive(Clone, Copy, Default)]
pub struct Bindings<'a> {
    /// The workspace.
    pub acts: Option<&'a wgpu::Buffer>,
    /// Network parameters.
    pub params: Option<&'a wgpu::Buffer>,
    /// Gradients.
    pub grads: Option<&'a wgpu::Buffer>,
    /// Dataset / auxiliary buffer of the misc kernels.
    pub data: Option<&'a wgpu::Buffer>,
    /// Step-state uniform.
    pub step: Option<&'a wgpu::Buffer>,
    /// Adam moments (m, v).
    pub moments: Option<(&'a wgpu::Buffer, &'a wgpu::Buffer)>,
}

/// A recorded, replayable list of dispatches with their uploaded parameters.
pub struct Program {
    _uniforms: wgpu::Buffer,
    groups: [Option<wgpu::BindGroup>; 3],
    ops: Vec<Dispatch>,
    stride: u32,
}

impl ProgramBuilder {
    /// An empty program for a device whose per-dimension workgroup limit is `max_groups`.
    pub fn new(gpu: &Gpu) -> ProgramBuilder {
        ProgramBuilder { slots: Vec::new(), ops: Vec::new(), max_groups: gpu.limits().max_compute_workgroups_per_dimension }
    }

    /// Number of dispatches recorded so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    fn push_raw<T: Pod>(&mut self, kernel: Kernel, params: &T, groups: (u32, u32, u32)) {
        let bytes = bytemuck::bytes_of(params);
        assert!(bytes.len() <= SLOT_BYTES as usize, "parameter block too large");
        let mut slot = [0u8; SLOT_BYTES as usize];
        slot[..bytes.len()].copy_from_slice(bytes);
        self.slots.push(slot);
        self.ops.push(Dispatch { kernel, slot: (self.slots.len() - 1) as u32, groups });
    }

    /// Records a kernel over `threads` independent work items (256 per workgroup).
    pub fn push_1d<T: Pod>(&mut self, kernel: Kernel, params: &T, threads: usize) {
        let (x, y) = grid((threads.max(1) as u32).div_ceil(256), self.max_groups);
        self.push_raw(kernel, params, (x, y, 1));
    }

    /// Records a kernel with an explicit workgroup count.
    pub fn push_groups<T: Pod>(&mut self, kernel: Kernel, params: &T, groups: (u32, u32, u32)) {
        self.push_raw(kernel, params, groups);
    }

    /// Records one fused matmul.
    pub fn matmul(&mut self, mm: &Matmul) {
        let mut flags = 0u32;
        let zero = Mat::zeroed();
        if mm.bias.is_some() {
            flags |= 1;
        }
        if mm.aux.is_some() {
            flags |= 2;
        }
        if mm.res.is_some() {
            flags |= 4;
        }
        if mm.pre.is_some() {
            flags |= 8;
        }
        if mm.a_mul.is_some() {
            flags |= 32;
        }
        let mut n = mm.n as u32;
        if mm.bias_grad.is_some() {
            flags |= 16;
            n += 1;
        }
        let p = MatmulParams {
            m: mm.m as u32,
            n,
            k: mm.k as u32,
            flags,
            a: mm.a,
            b: mm.b,
            bias: mm.bias.unwrap_or(zero),
            aux: mm.aux.map(|a| a.0).unwrap_or(zero),
            res: mm.res.unwrap_or(zero),
            pre: mm.pre.unwrap_or(zero),
            c: mm.c,
            ops: [mm.a_op as u32, mm.b_op as u32, mm.act as u32, mm.aux.map(|a| a.1 as u32).unwrap_or(0)],
            extra: [
                mm.bias_grad.unwrap_or(0) as u32,
                mm.primal_rows as u32,
                mm.a_mul.map(|a| a.1 as u32).unwrap_or(0),
                0,
            ],
            amul: mm.a_mul.map(|a| a.0).unwrap_or(zero),
        };
        let gy = (mm.m as u32).div_ceil(64).max(1);
        assert!(gy <= self.max_groups, "matmul with {} rows exceeds the dispatch limit; chunk the rows", mm.m);
        self.push_raw(Kernel::Matmul, &p, (n.div_ceil(64).max(1), gy, 1));
    }

    /// Uploads the parameter blocks and binds `b`.
    ///
    /// # Errors
    /// [`Error::Gpu`] if wgpu rejects a bind group (e.g. a buffer exceeds a binding limit).
    pub fn build(self, gpu: &Gpu, b: Bindings<'_>) -> Result<Program> {
        let pipes = gpu.pipelines()?;
        let align = gpu.limits().min_uniform_buffer_offset_alignment.max(SLOT_BYTES as u32);
        let mut bytes = vec![0u8; (self.slots.len().max(1) * align as usize).max(SLOT_BYTES as usize)];
        for (i, s) in self.slots.iter().enumerate() {
            bytes[i * align as usize..i * align as usize + SLOT_BYTES as usize].copy_from_slice(s);
        }
        gpu.scoped("binding a program", || {
            let uniforms = gpu.uniform_from("fmpe program parameters", &bytes);
            let dummy = gpu.dummy();
            let step_dummy;
            let step = match b.step {
                Some(s) => s,
                None => {
                    step_dummy = gpu.uniform_from("fmpe step (unused)", &[0u8; 32]);
                    &step_dummy
                }
            };
            let used = |l: Layout| self.ops.iter().any(|o| o.kernel.layout() == l);
            let slot = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                buffer: &uniforms,
                offset: 0,
                size: std::num::NonZeroU64::new(SLOT_BYTES),
            });
            let mk = |l: Layout, res: Vec<wgpu::BindingResource>| {
                let entries: Vec<wgpu::BindGroupEntry> = res
                    .into_iter()
                    .enumerate()
                    .map(|(i, r)| wgpu::BindGroupEntry { binding: i as u32, resource: r })
                    .collect();
                gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                    label: Some("fmpe program"),
                    layout: &pipes.layouts[l as usize],
                    entries: &entries,
                })
            };
            let acts = b.acts.unwrap_or(dummy);
            let g_matmul = used(Layout::Matmul).then(|| {
                mk(
                    Layout::Matmul,
                    vec![
                        slot.clone(),
                        wgpu::Buffer::as_entire_binding(acts),
                        wgpu::Buffer::as_entire_binding(b.params.unwrap_or(dummy)),
                        wgpu::Buffer::as_entire_binding(b.grads.unwrap_or(dummy)),
                    ],
                )
            });
            let g_misc = used(Layout::Misc).then(|| {
                mk(Layout::Misc, vec![slot.clone(), wgpu::Buffer::as_entire_binding(acts), wgpu::Buffer::as_entire_binding(b.data.unwrap_or(dummy)), wgpu::Buffer::as_entire_binding(step)])
            });
            let g_adam = used(Layout::Adam).then(|| {
                let (m, v) = b.moments.expect("Adam needs moment buffers");
                mk(
                    Layout::Adam,
                    vec![
                        slot.clone(),
                        wgpu::Buffer::as_entire_binding(b.params.expect("Adam needs params")),
                        wgpu::Buffer::as_entire_binding(b.grads.expect("Adam needs grads")),
                        wgpu::Buffer::as_entire_binding(m),
                        wgpu::Buffer::as_entire_binding(v),
                        wgpu::Buffer::as_entire_binding(step),
                    ],
                )
            });
            Program { _uniforms: uniforms, groups: [g_matmul, g_misc, g_adam], ops: self.ops, stride: align }
        })
    }
}

impl Program {
    /// Number of dispatches in the program.
    pub fn dispatches(&self) -> usize {
        self.ops.len()
    }

    /// Records the program into `pass`.
    pub fn record(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>) -> Result<()> {
        let pipes = gpu.pipelines()?;
        let mut current: Option<Kernel> = None;
        for op in &self.ops {
            if current != Some(op.kernel) {
                pass.set_pipeline(pipes.pipeline(op.kernel));
                current = Some(op.kernel);
            }
            let bg = self.groups[op.kernel.layout() as usize].as_ref().expect("bind group built");
            pass.set_bind_group(0, bg, &[op.slot * self.stride]);
            pass.dispatch_workgroups(op.groups.0, op.groups.1, op.groups.2);
        }
        gpu.count_dispatches(self.ops.len() as u64);
        Ok(())
    }

    /// Records the program in a fresh encoder and submits it (one submission).
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            self.record(gpu, &mut pass)?;
        }
        gpu.submit(enc)
    }
}

/// Bump allocator of f32 offsets inside a workspace buffer.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    next: usize,
}

impl Arena {
    /// Reserves `len` floats (aligned to 64 floats) and returns the offset.
    pub fn alloc(&mut self, len: usize) -> usize {
        let off = self.next;
        self.next += len.max(1).next_multiple_of(64);
        off
    }
    /// Floats reserved so far.
    pub fn len(&self) -> usize {
        self.next
    }
    /// True when nothing is reserved.
    pub fn is_empty(&self) -> bool {
        self.next == 0
    }
}
