// #include common
// The matmul for CPU adapters whose subgroups are their SIMD lanes (Mesa lavapipe:
// subgroup size 8): the same product and epilogue as `shaders/matmul.wgsl`,
//
//   C(i, j) = epilogue( sum_k opA(A(i, k)) [* opM(M(i', k))] * opB(B(k, j)) ),
//
// with the same parameter block, but shaped for an adapter where every storage load is
// a scalar loop over the 8 lanes and a barrier is a coroutine switch
// (../shared/notes/lavapipe-kernels.md):
//  - no workgroup memory and no barrier: a workgroup is one subgroup of 8 lanes;
//  - lanes own rows: lane l computes rows row0 + 8 r + l (r < 4) and 8·NB columns, so
//    every load of A is useful in all 8 lanes;
//  - B is loaded lane-distinct (lane l loads column col0 + 8 b + l) and handed out to
//    all lanes with subgroupBroadcast at constant lane indices (an extract and a splat);
//  - four rows share one vec4 accumulator per column: one vec4 multiply-add per column
//    and k;
//  - every flag, operator and buffer choice is an `override` constant fixed when the
//    pipeline is created (src/kernels/matmul.rs), so no branch on them is left in the
//    k loop; strides and offsets stay in the uniform block.
// The k loop runs in ascending order with one multiply-add per term, like the tiled
// kernel, so both give the same sums.

struct Mat {
    buf: u32,
    off: u32,
    rs: u32,
    cs: u32,
}

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
    ops: vec4<u32>,
    extra: vec4<u32>,
    amul: Mat,
}

// Specialisation (set per pipeline by src/kernels/matmul.rs).
override FLAGS: u32 = 0u;     // MATMUL_FLAG_* bits
override A_OP: u32 = 0u;
override B_OP: u32 = 0u;
override ACT: u32 = 0u;
override AUX_OP: u32 = 0u;
override M_OP: u32 = 0u;
override A_BUF: u32 = 0u;     // BUF_* of each operand
override B_BUF: u32 = 1u;
override BIAS_BUF: u32 = 1u;
override AUX_BUF: u32 = 0u;
override RES_BUF: u32 = 0u;
override M_BUF: u32 = 0u;
override C_BUF: u32 = 0u;
override PRIMAL_MOD: bool = false; // M and aux rows taken modulo extra.y
override NB: u32 = 8u;        // 8-column groups per invocation (1..8)

@group(0) @binding(0) var<uniform> u: MatmulParams;
override A_KVEC: bool = false;  // A (and M) k-contiguous, 16-byte aligned: vec4 loads along k

// The buffers as vec4 arrays (fmpe's storage buffers are multiples of 16 bytes): a
// scalar is one component of a vec4, and aligned operands load four at once.
@group(0) @binding(1) var<storage, read_write> acts: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grads: array<vec4<f32>>;

fn ld(buf: u32, idx: u32) -> f32 {
    let q = idx >> 2u;
    let c = idx & 3u;
    if (buf == BUF_PARAMS) {
        return params[q][c];
    } else if (buf == BUF_GRADS) {
        return grads[q][c];
    }
    return acts[q][c];
}

// Four consecutive floats from a multiple of 4.
fn ld4(buf: u32, idx: u32) -> vec4<f32> {
    let q = idx >> 2u;
    if (buf == BUF_PARAMS) {
        return params[q];
    } else if (buf == BUF_GRADS) {
        return grads[q];
    }
    return acts[q];
}

fn op4(op: u32, v: vec4<f32>) -> vec4<f32> {
    return vec4<f32>(apply_op(op, v.x), apply_op(op, v.y), apply_op(op, v.z), apply_op(op, v.w));
}

fn has(flag: u32) -> bool {
    return (FLAGS & flag) != 0u;
}

fn prow(i: u32) -> u32 {
    if (PRIMAL_MOD) {
        return i % u.extra.y;
    }
    return i;
}

// opA(A(i, k)) [* opM(M(i', k))] with the row clamped into the matrix (rows past the
// end compute garbage that is never stored: no branch in the k loop).
fn load_a(i: u32, k: u32) -> f32 {
    let r = min(i, u.m - 1u);
    var v = apply_op(A_OP, ld(A_BUF, u.a.off + r * u.a.rs + k * u.a.cs));
    if (has(MATMUL_FLAG_AMUL)) {
        v = v * apply_op(M_OP, ld(M_BUF, u.amul.off + prow(r) * u.amul.rs + k * u.amul.cs));
    }
    return v;
}

// opB(B(k, j)) for j < nb; the virtual ones column (MATMUL_FLAG_ONES_COL) at j = nb;
// 0 beyond. The load is clamped into the matrix and always made.
fn load_b(k: u32, j: u32, nb: u32) -> f32 {
    let v = apply_op(B_OP, ld(B_BUF, u.b.off + k * u.b.rs + min(j, nb - 1u) * u.b.cs));
    let pad = select(0.0, 1.0, has(MATMUL_FLAG_ONES_COL) && j == nb);
    return select(pad, v, j < nb);
}

fn store(i: u32, j: u32, nb: u32, acc: f32) {
    if (i >= u.m || j >= u.n) {
        return;
    }
    if (has(MATMUL_FLAG_ONES_COL) && j == nb) {
        let g = u.extra.x + i;
        grads[g >> 2u][g & 3u] = acc;
        return;
    }
    var v = acc;
    if (has(MATMUL_FLAG_BIAS)) {
        v = v + ld(BIAS_BUF, u.bias.off + j * u.bias.cs);
    }
    v = apply_op(ACT, v);
    if (has(MATMUL_FLAG_PRE)) {
        let p = u.pre.off + i * u.pre.rs + j * u.pre.cs;
        acts[p >> 2u][p & 3u] = v;
    }
    if (has(MATMUL_FLAG_AUX)) {
        v = v * apply_op(AUX_OP, ld(AUX_BUF, u.aux.off + prow(i) * u.aux.rs + j * u.aux.cs));
    }
    if (has(MATMUL_FLAG_RES)) {
        v = v + ld(RES_BUF, u.res.off + i * u.res.rs + j * u.res.cs);
    }
    let o = u.c.off + i * u.c.rs + j * u.c.cs;
    if (C_BUF == BUF_GRADS) {
        grads[o >> 2u][o & 3u] = v;
    } else {
        acts[o >> 2u][o & 3u] = v;
    }
}

// Rows i of A at k0 .. k0 + 3 (k0 a multiple of 4, K a multiple of 4), row clamped.
fn load_a4(i: u32, k0: u32) -> vec4<f32> {
    let r = min(i, u.m - 1u);
    var v: vec4<f32>;
    var mv: vec4<f32>;
    let ai = u.a.off + r * u.a.rs + k0 * u.a.cs;
    let mi = u.amul.off + prow(r) * u.amul.rs + k0 * u.amul.cs;
    if (A_KVEC) {
        v = ld4(A_BUF, ai);
        if (has(MATMUL_FLAG_AMUL)) {
            mv = ld4(M_BUF, mi);
        }
    } else {
        let c = u.a.cs;
        v = vec4<f32>(ld(A_BUF, ai), ld(A_BUF, ai + c), ld(A_BUF, ai + 2u * c), ld(A_BUF, ai + 3u * c));
        if (has(MATMUL_FLAG_AMUL)) {
            let cm = u.amul.cs;
            mv = vec4<f32>(ld(M_BUF, mi), ld(M_BUF, mi + cm), ld(M_BUF, mi + 2u * cm), ld(M_BUF, mi + 3u * cm));
        }
    }
    v = op4(A_OP, v);
    if (has(MATMUL_FLAG_AMUL)) {
        v = v * op4(M_OP, mv);
    }
    return v;
}

// Columns of C that come from B (the virtual ones column is not one of them).
fn real_columns() -> u32 {
    if (has(MATMUL_FLAG_ONES_COL)) {
        return u.n - 1u;
    }
    return u.n;
}

// A at k0 .. k0 + 3 for the lane's 4 rows, regrouped by k: element kk holds rows
// row0, row0 + 8, row0 + 16, row0 + 24 at k0 + kk.
fn a_by_k(row0: u32, k0: u32) -> array<vec4<f32>, 4> {
    let a0 = load_a4(row0, k0);
    let a1 = load_a4(row0 + 8u, k0);
    let a2 = load_a4(row0 + 16u, k0);
    let a3 = load_a4(row0 + 24u, k0);
    return array<vec4<f32>, 4>(
        vec4<f32>(a0.x, a1.x, a2.x, a3.x),
        vec4<f32>(a0.y, a1.y, a2.y, a3.y),
        vec4<f32>(a0.z, a1.z, a2.z, a3.z),
        vec4<f32>(a0.w, a1.w, a2.w, a3.w),
    );
}

// The epilogue of the lane's 4 rows × 8·NB columns, unrolled so every accumulator index
// is a literal (the accumulators stay where the k loop left them).
fn store_tile(row0: u32, col0: u32, nb: u32, acc: ptr<function, array<vec4<f32>, 64>>) {
    // #unroll q 64
    if (8u * NB > {q}u) {
        store(row0, col0 + {q}u, nb, (*acc)[{q}u].x);
        store(row0 + 8u, col0 + {q}u, nb, (*acc)[{q}u].y);
        store(row0 + 16u, col0 + {q}u, nb, (*acc)[{q}u].z);
        store(row0 + 24u, col0 + {q}u, nb, (*acc)[{q}u].w);
    }
    // #end
}

// Column j of B at k0 .. k0 + 3 (B = Wᵀ: B's row stride is 1), padded like load_b.
fn load_b_kvec(k0: u32, j: u32, nb: u32) -> vec4<f32> {
    let v = op4(B_OP, ld4(B_BUF, u.b.off + min(j, nb - 1u) * u.b.cs + k0));
    let pad = select(vec4<f32>(0.0), vec4<f32>(1.0), has(MATMUL_FLAG_ONES_COL) && j == nb);
    return select(pad, v, j < nb);
}

// Row k of B at columns j0 .. j0 + 3 (B = W or X: B's column stride is 1, j0 and nb
// multiples of 4), padded like load_b.
fn load_b_jvec(k: u32, j0: u32, nb: u32) -> vec4<f32> {
    let v = op4(B_OP, ld4(B_BUF, u.b.off + k * u.b.rs + min(j0, nb - 4u)));
    let j = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    let ones = vec4<bool>(has(MATMUL_FLAG_ONES_COL)) & (j == vec4<u32>(nb));
    let pad = select(vec4<f32>(0.0), vec4<f32>(1.0), ones);
    return select(pad, v, j < vec4<u32>(nb));
}

// Entry points for K a multiple of 4: four k per iteration, A loaded as vec4 along k
// where A_KVEC allows; one entry point per way of reading B (so each pipeline compiles
// only its own loop body). The same sums in the same order as `main`.

// B k-contiguous (B = Wᵀ): lane l loads column col0 + 8 b + l at k0..k0+3.
@compute @workgroup_size(8, 1, 1)
fn main_k4_bk(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wg.y * 32u + lane;
    let col0 = wg.x * (8u * NB);
    let nb = real_columns();
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 4u) {
        let av = a_by_k(row0, k0);
        // #unroll b 8
        if (NB > {b}u) {
            let w{b} = load_b_kvec(k0, col0 + {b}u * 8u + lane, nb);
            // #unroll kk 4
            // #unroll s 8
            acc[{b}u * 8u + {s}u] = fma(av[{kk}], vec4<f32>(subgroupBroadcast(w{b}[{kk}], {s}u)), acc[{b}u * 8u + {s}u]);
            // #end
            // #end
        }
        // #end
    }
    store_tile(row0, col0, nb, &acc);
}


// B j-contiguous (B = W, X): lane l loads columns col0 + 32 h + 4 l .. + 3 of row k.
@compute @workgroup_size(8, 1, 1)
fn main_k4_bj(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wg.y * 32u + lane;
    let col0 = wg.x * (8u * NB);
    let nb = real_columns();
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 4u) {
        let av = a_by_k(row0, k0);
        // #unroll kk 4
        // #unroll h 2
        if (NB > {h}u * 4u) {
            let wj{kk}{h} = load_b_jvec(k0 + {kk}u, col0 + {h}u * 32u + 4u * lane, nb);
            // #unroll s 8
            let ws{kk}{h}{s} = subgroupBroadcast(wj{kk}{h}, {s}u);
            acc[{h}u * 32u + {s}u * 4u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.x), acc[{h}u * 32u + {s}u * 4u]);
            acc[{h}u * 32u + {s}u * 4u + 1u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.y), acc[{h}u * 32u + {s}u * 4u + 1u]);
            acc[{h}u * 32u + {s}u * 4u + 2u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.z), acc[{h}u * 32u + {s}u * 4u + 2u]);
            acc[{h}u * 32u + {s}u * 4u + 3u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.w), acc[{h}u * 32u + {s}u * 4u + 3u]);
            // #end
        }
        // #end
        // #end
    }
    store_tile(row0, col0, nb, &acc);
}


// B read one element at a time (unaligned or strided B).
@compute @workgroup_size(8, 1, 1)
fn main_k4_bs(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wg.y * 32u + lane;
    let col0 = wg.x * (8u * NB);
    let nb = real_columns();
    var acc: array<vec4<f32>, 64>;
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 4u) {
        let av = a_by_k(row0, k0);
        // #unroll kk 4
        // #unroll b 8
        if (NB > {b}u) {
            let w{kk}{b} = load_b(k0 + {kk}u, col0 + {b}u * 8u + lane, nb);
            // #unroll s 8
            acc[{b}u * 8u + {s}u] = fma(av[{kk}], vec4<f32>(subgroupBroadcast(w{kk}{b}, {s}u)), acc[{b}u * 8u + {s}u]);
            // #end
        }
        // #end
        // #end
    }
    store_tile(row0, col0, nb, &acc);
}


// Column groups are unrolled (`// #unroll`, expanded by src/kernels/registry.rs) so every
// accumulator index and broadcast lane is a literal: the 64 accumulators stay in
// registers; groups at or past NB are removed when the pipeline is specialised.
@compute @workgroup_size(8, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let row0 = wg.y * 32u + lane;
    let col0 = wg.x * (8u * NB);
    let nb = real_columns();
    // acc[8 b + s] holds column col0 + 8 b + s of rows row0 + 8 r, r = 0..3 (x, y, z, w).
    var acc: array<vec4<f32>, 64>;
    for (var k = 0u; k < u.k; k = k + 1u) {
        let a = vec4<f32>(load_a(row0, k), load_a(row0 + 8u, k), load_a(row0 + 16u, k), load_a(row0 + 24u, k));
        // #unroll b 8
        if (NB > {b}u) {
            let w{b} = load_b(k, col0 + {b}u * 8u + lane, nb);
            // #unroll s 8
            acc[{b}u * 8u + {s}u] = fma(a, vec4<f32>(subgroupBroadcast(w{b}, {s}u)), acc[{b}u * 8u + {s}u]);
            // #end
        }
        // #end
    }
    store_tile(row0, col0, nb, &acc);
}
