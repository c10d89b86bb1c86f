//! The tiled strided matmul with fused epilogue (`shaders/matmul.wgsl`): operand views
//! ([`Mat`], [`Buf`]), element-wise operators ([`Op`], also used by `apply_op` in
//! `shaders/common.wgsl`), the fused product ([`Matmul`]) and its recorder
//! [`ProgramBuilder::matmul`].

use bytemuck::{Pod, Zeroable};

use super::program::{ProgramBuilder, Specialization};
use crate::gpu::MatmulVariant;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout, WgslConst};

/// The matmul family.
pub(crate) static FAMILY: Family = Family {
    name: "matmul",
    modules: &[
        ShaderModule { name: "matmul", source: include_str!("../../shaders/matmul.wgsl") },
        ShaderModule { name: "matmul_cpu", source: include_str!("../../shaders/matmul_cpu.wgsl") },
    ],
    kernels: &[&MATMUL, &MATMUL_GPU, &MATMUL_CPU, &MATMUL_CPU_K4_BK, &MATMUL_CPU_K4_BJ, &MATMUL_CPU_K4_BS],
    constants: &[
        WgslConst { name: "OP_ID", value: Op::Id as u32 },
        WgslConst { name: "OP_GELU", value: Op::Gelu as u32 },
        WgslConst { name: "OP_RELU", value: Op::Relu as u32 },
        WgslConst { name: "OP_SIGMOID", value: Op::Sigmoid as u32 },
        WgslConst { name: "OP_GELU_GRAD", value: Op::GeluGrad as u32 },
        WgslConst { name: "OP_RELU_GRAD", value: Op::ReluGrad as u32 },
        WgslConst { name: "OP_SIGMOID_GRAD", value: Op::SigmoidGrad as u32 },
        WgslConst { name: "OP_SIGMOID_DERIV", value: Op::SigmoidDeriv as u32 },
        WgslConst { name: "BUF_ACTS", value: Buf::Acts as u32 },
        WgslConst { name: "BUF_PARAMS", value: Buf::Params as u32 },
        WgslConst { name: "BUF_GRADS", value: Buf::Grads as u32 },
        WgslConst { name: "MATMUL_FLAG_BIAS", value: FLAG_BIAS },
        WgslConst { name: "MATMUL_FLAG_AUX", value: FLAG_AUX },
        WgslConst { name: "MATMUL_FLAG_RES", value: FLAG_RES },
        WgslConst { name: "MATMUL_FLAG_PRE", value: FLAG_PRE },
        WgslConst { name: "MATMUL_FLAG_ONES_COL", value: FLAG_ONES_COL },
        WgslConst { name: "MATMUL_FLAG_AMUL", value: FLAG_AMUL },
        WgslConst { name: "PARAMS_TEX_WIDTH", value: crate::gpu::PARAMS_TEX_WIDTH },
    ],
    structs: &[StructLayout::of::<Mat>],
};

/// `main` of `shaders/matmul.wgsl`, generic ([`MatmulVariant::Portable`]).
pub static MATMUL: KernelSpec = KernelSpec {
    name: "matmul",
    module: "matmul",
    entry_point: "main",
    layout: Layout::Matmul,
    params: StructLayout::of::<MatmulParams>,
    variant: "",
    constants: &[],
};

/// `main` of `shaders/matmul.wgsl` specialised per product ([`MatmulVariant::Gpu`]):
/// one pipeline per set of override constants, made at first use.
pub static MATMUL_GPU: KernelSpec = KernelSpec {
    name: "matmul@gpu",
    module: "matmul",
    entry_point: "main",
    layout: Layout::Matmul,
    params: StructLayout::of::<MatmulParams>,
    variant: "gpu",
    constants: &[("SPECIALIZED", 1.0)],
};

/// `main` of `shaders/matmul_cpu.wgsl` ([`MatmulVariant::Cpu`]): barrier-free, lanes own
/// rows, weights shared with `subgroupBroadcast`; one pipeline per set of override
/// constants, made at first use. Needs `wgpu::Features::SUBGROUP` with 8 lanes.
pub static MATMUL_CPU: KernelSpec = KernelSpec {
    name: "matmul@cpu",
    module: "matmul_cpu",
    entry_point: "main",
    layout: Layout::Matmul,
    params: StructLayout::of::<MatmulParams>,
    variant: "cpu",
    constants: &[],
};

/// A `main_k4_*` entry point of `shaders/matmul_cpu.wgsl` ([`MatmulVariant::Cpu`] when K
/// is a multiple of 4): four k per iteration, vec4 loads of A where its layout allows.
macro_rules! cpu_k4_kernel {
    ($name:ident, $spec:literal, $entry:literal, $what:literal) => {
        #[doc = concat!("`", $entry, "` of `shaders/matmul_cpu.wgsl`: ", $what)]
        pub static $name: KernelSpec = KernelSpec {
            name: $spec,
            module: "matmul_cpu",
            entry_point: $entry,
            layout: Layout::Matmul,
            params: StructLayout::of::<MatmulParams>,
            variant: "cpu",
            constants: &[],
        };
    };
}
cpu_k4_kernel!(MATMUL_CPU_K4_BK, "matmul@cpu_k4_bk", "main_k4_bk", "B k-contiguous (`Wᵀ`), vec4 along k per column.");
cpu_k4_kernel!(MATMUL_CPU_K4_BJ, "matmul@cpu_k4_bj", "main_k4_bj", "B j-contiguous (`W`, `X`), vec4 of 4 columns.");
cpu_k4_kernel!(MATMUL_CPU_K4_BS, "matmul@cpu_k4_bs", "main_k4_bs", "B read one element at a time.");

/// Epilogue flag: add `bias`.
pub const FLAG_BIAS: u32 = 1;
/// Epilogue flag: multiply by `op(aux)`.
pub const FLAG_AUX: u32 = 2;
/// Epilogue flag: add `res`.
pub const FLAG_RES: u32 = 4;
/// Epilogue flag: store the activation to `pre`.
pub const FLAG_PRE: u32 = 8;
/// Virtual ones column of B (bias gradient to `grads[extra.x ..]`).
pub const FLAG_ONES_COL: u32 = 16;
/// Multiply A element-wise by `op_m(M)` on load.
pub const FLAG_AMUL: u32 = 32;

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

param_block!(Mat as "Mat" { buf, off, rs, cs });

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

/// The uniform block of `matmul` (`struct MatmulParams` in `shaders/matmul.wgsl`);
/// built from a [`Matmul`] by [`ProgramBuilder::matmul`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable)]
pub struct MatmulParams {
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
    zpar: [u32; 4],
}
param_block!(MatmulParams as "MatmulParams" { m, n, k, flags, a, b, bias, aux, res, pre, c, ops, extra, amul, zpar });

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
    /// `Some((count, stride))`: a batch of `count` independent products of the same
    /// shape in one dispatch (workgroup z = product index). Product z reads and writes
    /// every operand (A, M, B, bias, aux, res, pre, C and the bias gradient) at its
    /// offset plus `z · stride` f32 elements (operands in [`Buf::Params`] and
    /// [`Buf::Grads`], and the bias gradient: `z · batch_param_stride` when that is set),
    /// so each of the `count` products sees `[m, k] · [k, n] → [m, n]` in its own slice
    /// of every buffer. `count` ≤ the device's workgroups per dimension; on the CPU
    /// variant, vec4 loads need the strides to be multiples of 4 (else it falls back to
    /// scalar loads). `None` (or both strides 0): one product, and the specialised
    /// variants compile no batch offset. A count of 1 with a stride runs the batched
    /// pipeline on product 0 (the same pipeline as any count: no new compilation when a
    /// batch shrinks).
    pub batch: Option<(usize, usize)>,
    /// The batch stride (f32 elements) of the operands in [`Buf::Params`] and
    /// [`Buf::Grads`] and of the bias gradient, when it differs from the workspace's
    /// (the same linear layer of every residual block: parameters one block apart,
    /// activations one block of the workspace apart). `None`: the batch stride.
    pub batch_param_stride: Option<usize>,
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
            batch: None,
            batch_param_stride: None,
        }
    }
}


/// Override constants of the specialised variants for one product: everything the
/// portable kernel reads from the uniform block to branch on (flags, operators, operand
/// buffers, the primal row modulus, the operands' contiguous dimension), plus the
/// columns per workgroup and the operand layouts of the CPU variant.
fn specialization(p: &MatmulParams, variant: MatmulVariant) -> Specialization {
    let mut c: Specialization = vec![
        ("FLAGS", p.flags as f64),
        ("A_OP", p.ops[0] as f64),
        ("B_OP", p.ops[1] as f64),
        ("ACT", p.ops[2] as f64),
        ("AUX_OP", p.ops[3] as f64),
        ("M_OP", p.extra[2] as f64),
        ("A_BUF", p.a.buf as f64),
        ("B_BUF", p.b.buf as f64),
        ("BIAS_BUF", p.bias.buf as f64),
        ("AUX_BUF", p.aux.buf as f64),
        ("RES_BUF", p.res.buf as f64),
        ("M_BUF", p.amul.buf as f64),
        ("C_BUF", p.c.buf as f64),
        ("PRIMAL_MOD", if p.extra[1] != 0 { 1.0 } else { 0.0 }),
        ("BATCHED", if p.extra[3] != 0 || p.zpar[0] != 0 { 1.0 } else { 0.0 }),
    ];
    match variant {
        MatmulVariant::Cpu => {
            let l = layout_of(p);
            c.push(("CW", l.columns as f64));
            c.push(("A_KVEC", if l.a_kvec { 1.0 } else { 0.0 }));
            c.push(("A_IVEC", if l.a_ivec { 1.0 } else { 0.0 }));
            c.push(("C_VEC", if l.c_vec { 1.0 } else { 0.0 }));
        }
        _ => {
            c.push(("A_KCONTIG", if p.a.cs == 1 { 1.0 } else { 0.0 }));
            c.push(("B_KCONTIG", if p.b.cs != 1 { 1.0 } else { 0.0 }));
        }
    }
    c
}

/// How the CPU variant reads one product's operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CpuLayout {
    /// A `main_k4_*` entry point (K a multiple of 4) rather than `main`.
    pub k4: bool,
    /// A (and M) k-contiguous and 16-byte aligned: vec4 loads along k.
    pub a_kvec: bool,
    /// Otherwise A's rows contiguous and 16-byte aligned, M a multiple of 4, no
    /// multiplier: each lane owns 4 consecutive rows, one vec4 load per k (the weight
    /// gradient `dYᵀ·X`).
    pub a_ivec: bool,
    /// 0: scalar loads of B (`main_k4_bs`); 1: k-contiguous, vec4 along k per column
    /// (`main_k4_bk`); 2: j-contiguous, vec4 of 4 columns (`main_k4_bj`).
    pub b_mode: u32,
    /// Columns of C per workgroup (`CW`, see [`cpu_columns`]): a multiple of 4, at most
    /// 64.
    pub columns: u32,
    /// The epilogue reads and writes four columns at once: C, the bias and every
    /// epilogue operand are column-contiguous and 16-byte aligned and the real columns
    /// (the ones column not counted) are a multiple of 4.
    pub c_vec: bool,
}

/// The CPU variant's reading of `mm` (see [`CpuLayout`]): vec4 loads wherever the
/// operand's contiguous dimension, offset and stride allow them.
pub fn cpu_layout(mm: &Matmul) -> CpuLayout {
    layout_of(&params(mm))
}

fn layout_of(p: &MatmulParams) -> CpuLayout {
    let k4 = p.k.is_multiple_of(4);
    // A batch shifts every offset by z · extra[3] (acts) or z · zpar[0] (params and
    // grads): vec4 loads need both aligned too.
    let batch_aligned = p.extra[3].is_multiple_of(4) && p.zpar[0].is_multiple_of(4);
    let aligned = |off: u32, stride: u32| off.is_multiple_of(4) && stride.is_multiple_of(4) && batch_aligned;
    let amul_ok = p.flags & FLAG_AMUL == 0 || (p.amul.cs == 1 && aligned(p.amul.off, p.amul.rs));
    let a_kvec = k4 && p.a.cs == 1 && aligned(p.a.off, p.a.rs) && amul_ok;
    let a_ivec = k4
        && !a_kvec
        && p.a.rs == 1
        && aligned(p.a.off, p.a.cs)
        && p.m.is_multiple_of(4)
        && p.m >= 4
        && p.flags & FLAG_AMUL == 0;
    let nb = p.n - (p.flags & FLAG_ONES_COL != 0) as u32;
    let b_mode = if !k4 {
        0
    } else if p.b.rs == 1 && aligned(p.b.off, p.b.cs) {
        1
    } else if p.b.cs == 1 && aligned(p.b.off, p.b.rs) && nb.is_multiple_of(4) && nb >= 4 {
        2
    } else {
        0
    };
    // The ones column is not a column of the tiles: a separate sum of A's rows.
    let columns = cpu_columns(nb as usize);
    let flag = |f: u32| p.flags & f != 0;
    let vec_ok = |m: &Mat| m.cs == 1 && aligned(m.off, m.rs);
    let c_vec = nb.is_multiple_of(4)
        && vec_ok(&p.c)
        && (!flag(FLAG_BIAS) || (p.bias.cs == 1 && aligned(p.bias.off, 0)))
        && (!flag(FLAG_PRE) || vec_ok(&p.pre))
        && (!flag(FLAG_AUX) || vec_ok(&p.aux))
        && (!flag(FLAG_RES) || vec_ok(&p.res));
    CpuLayout { k4, a_kvec, a_ivec, b_mode, columns, c_vec }
}

/// Columns per workgroup of the CPU variant (`CW`) for `n` output columns (the ones
/// column not counted): the fewest workgroups of at most 64 columns, ⌈n / 64⌉, with the
/// columns spread evenly over them and rounded up to a multiple of 4 (the vec4
/// epilogue's and `main_k4_bj`'s unit), so fewer than 4 columns per workgroup are
/// padding: 100 → 2 × 52, 64 → 64, 65 → 2 × 36, 130 → 3 × 44, 2 → 4.
pub fn cpu_columns(n: usize) -> u32 {
    let n = n.max(1);
    let blocks = n.div_ceil(64);
    n.div_ceil(blocks).next_multiple_of(4) as u32
}

impl ProgramBuilder {
    /// Records one fused matmul in the variant of the device the builder was made for
    /// ([`crate::Gpu::matmul_variant`]): [`MATMUL`] (portable, 64 × 64 tiles),
    /// [`MATMUL_GPU`] (the same tiles, specialised) or [`MATMUL_CPU`] (32 rows ×
    /// [`cpu_columns`] columns per 8-lane workgroup). All three sum over k in
    /// ascending order with one multiply-add per term.
    ///
    /// # Panics
    /// If `m` needs more workgroup rows than the device allows (chunk the rows), or the
    /// batch count ([`Matmul::batch`]) more workgroups than a dimension allows.
    pub fn matmul(&mut self, mm: &Matmul) {
        let p = params(mm);
        let n = p.n;
        let variant = self.matmul_variant();
        let (rows_per_group, cols_per_group, n) = match variant {
            // The CPU variant sums the ones column apart from the tiles.
            MatmulVariant::Cpu => (32, layout_of(&p).columns, mm.n as u32),
            _ => (64, 64, n),
        };
        let gy = (mm.m as u32).div_ceil(rows_per_group).max(1);
        assert!(gy <= self.max_groups(), "matmul with {} rows exceeds the dispatch limit; chunk the rows", mm.m);
        let gz = mm.batch.map_or(1, |(count, _)| count.max(1) as u32);
        assert!(gz <= self.max_groups(), "a batch of {gz} matmuls exceeds the dispatch limit");
        let groups = (n.div_ceil(cols_per_group).max(1), gy, gz);
        match variant {
            MatmulVariant::Portable => self.push_groups(&MATMUL, &p, groups),
            MatmulVariant::Gpu => self.push_specialized(&MATMUL_GPU, &p, groups, specialization(&p, variant)),
            MatmulVariant::Cpu => {
                let l = layout_of(&p);
                let kernel = match (l.k4, l.b_mode) {
                    (false, _) => &MATMUL_CPU,
                    (true, 1) => &MATMUL_CPU_K4_BK,
                    (true, 2) => &MATMUL_CPU_K4_BJ,
                    (true, _) => &MATMUL_CPU_K4_BS,
                };
                self.push_specialized(kernel, &p, groups, specialization(&p, variant))
            }
        }
    }
}

/// The uniform block of one product.
fn params(mm: &Matmul) -> MatmulParams {
    let mut flags = 0u32;
    let zero = Mat::zeroed();
    for (on, f) in [
        (mm.bias.is_some(), FLAG_BIAS),
        (mm.aux.is_some(), FLAG_AUX),
        (mm.res.is_some(), FLAG_RES),
        (mm.pre.is_some(), FLAG_PRE),
        (mm.a_mul.is_some(), FLAG_AMUL),
        (mm.bias_grad.is_some(), FLAG_ONES_COL),
    ] {
        if on {
            flags |= f;
        }
    }
    // The virtual ones column counts as a column of C.
    let n = mm.n as u32 + mm.bias_grad.is_some() as u32;
    MatmulParams {
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
            // The batch stride (0 unbatched: no offset).
            mm.batch.map_or(0, |(_, stride)| stride as u32),
        ],
        amul: mm.a_mul.map(|a| a.0).unwrap_or(zero),
        zpar: [mm.batch.map_or(0, |(_, stride)| mm.batch_param_stride.unwrap_or(stride) as u32), 0, 0, 0],
    }
}
