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
//  - lanes own rows: lane l computes rows base + 8 r + l (r < 4; or base + 4 l + r when
//    A's rows are contiguous, A_IVEC) and the workgroup's CW columns (CW ≤ 64, a
//    multiple of 4), so every load of A is useful in all 8 lanes;
//  - B is loaded lane-distinct (lane l loads column col0 + 8 b + l) and handed out to
//    all lanes with subgroupBroadcast at constant lane indices (an extract and a splat);
//    a column at or past CW is loaded (clamped, never used) but not broadcast or
//    multiplied: every such guard compares override constants and folds away;
//  - four rows share one vec4 accumulator per column: one vec4 multiply-add per column
//    and k;
//  - with PARAMS_TEX, vec4 loads of the parameter buffer and the bias come from its
//    read-only storage-texture mirror (src/gpu/texture.rs): a vector gather here,
//    where a storage-buffer load is a scalar loop;
//  - the epilogue loads each bias once per column and, where C and its operands are
//    aligned and column-contiguous (C_VEC), stores four columns at once;
//  - the virtual ones column (the bias gradient) is a running sum of A beside the
//    tile, not a column of it, so a 64-wide weight gradient is one 64-column block;
//  - a batch of products (BATCHED): workgroup z computes product z with every offset
//    shifted by z * extra.w in acts and z * zpar.x in params and grads;
//  - every flag, operator and buffer choice is an `override` constant fixed when the
//    pipeline is created (src/kernels/matmul.rs), so no branch on them is left in the
//    k loop; strides and offsets stay in the uniform block.
// The k loop runs in ascending order with one multiply-add per term, like the tiled
// kernel, so both give the same sums (the ones column: a + s equals fma(a, 1, s)).

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
    zpar: vec4<u32>,
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
// Columns per workgroup (a multiple of 4, at most 64; the columns of C from B, not the
// virtual ones column): 8-column groups b with 8 b < CW are loaded, and column q of the
// tile is computed and stored where q < CW.
override CW: u32 = 64u;
// A batch of independent products: workgroup z computes product z, every operand
// offset shifted by z * extra.w in acts and by z * zpar.x in params and grads (the
// bias-gradient offset too; multiples of 4 where vec4 loads are used). False: no offset
// is added.
override BATCHED: bool = false;

@group(0) @binding(0) var<uniform> u: MatmulParams;
override A_KVEC: bool = false;  // A (and M) k-contiguous, 16-byte aligned: vec4 loads along k
override A_IVEC: bool = false;  // A row-contiguous, 16-byte aligned, M % 4 == 0, no M: vec4 loads along i

// The buffers as vec4 arrays (fmpe's storage buffers are multiples of 16 bytes): a
// scalar is one component of a vec4, and aligned operands load four at once.
@group(0) @binding(1) var<storage, read_write> acts: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grads: array<vec4<f32>>;
// The texture mirror of `params` (src/gpu/texture.rs): vec4 q at texel
// (q % PARAMS_TEX_WIDTH, q / PARAMS_TEX_WIDTH). Read instead of `params` for vec4 loads when PARAMS_TEX is set:
// a storage-texture load is a vector gather on lavapipe, a buffer load a scalar loop.
@group(0) @binding(4) var params_tex: texture_storage_2d<rgba32float, read>;
override PARAMS_TEX: bool = false;
override C_VEC: bool = false;   // vec4 epilogue (see store4)

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
    if (buf == BUF_PARAMS && PARAMS_TEX) {
        return textureLoad(params_tex, vec2<u32>(q % PARAMS_TEX_WIDTH, q / PARAMS_TEX_WIDTH));
    }
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

// Offsets of product wg.z of a batch in acts and in params / grads (set once at entry
// by `enter`; see BATCHED).
var<private> zoff_acts: u32;
var<private> zoff_par: u32;
fn enter(z: u32) {
    if (BATCHED) {
        zoff_acts = z * u.extra.w;
        zoff_par = z * u.zpar.x;
    }
}
// The batch offset of an operand in buffer `buf` (an override constant: no branch is
// left).
fn zoff(buf: u32) -> u32 {
    if (!BATCHED) {
        return 0u;
    }
    if (buf == BUF_ACTS) {
        return zoff_acts;
    }
    return zoff_par;
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
    var v = apply_op(A_OP, ld(A_BUF, u.a.off + zoff(A_BUF) + r * u.a.rs + k * u.a.cs));
    if (has(MATMUL_FLAG_AMUL)) {
        v = v * apply_op(M_OP, ld(M_BUF, u.amul.off + zoff(M_BUF) + prow(r) * u.amul.rs + k * u.amul.cs));
    }
    return v;
}

// opB(B(k, j)) for j < nb; the virtual ones column (MATMUL_FLAG_ONES_COL) at j = nb;
// 0 beyond. The load is clamped into the matrix and always made.
fn load_b(k: u32, j: u32, nb: u32) -> f32 {
    let v = apply_op(B_OP, ld(B_BUF, u.b.off + zoff(B_BUF) + k * u.b.rs + min(j, nb - 1u) * u.b.cs));
    return select(0.0, v, j < nb);
}

// The bias of column j (0 without one), read once per column of a tile.
fn bias_at(j: u32) -> f32 {
    if (!has(MATMUL_FLAG_BIAS)) {
        return 0.0;
    }
    let idx = u.bias.off + zoff(BIAS_BUF) + min(j, real_columns() - 1u) * u.bias.cs;
    if (BIAS_BUF == BUF_PARAMS && PARAMS_TEX) {
        let q = idx >> 2u;
        return textureLoad(params_tex, vec2<u32>(q % PARAMS_TEX_WIDTH, q / PARAMS_TEX_WIDTH))[idx & 3u];
    }
    return ld(BIAS_BUF, idx);
}

fn store(i: u32, j: u32, nb: u32, acc: f32, bias: f32) {
    if (i >= u.m || j >= nb) {
        return;
    }
    var v = acc;
    if (has(MATMUL_FLAG_BIAS)) {
        v = v + bias;
    }
    v = apply_op(ACT, v);
    if (has(MATMUL_FLAG_PRE)) {
        let p = u.pre.off + zoff(BUF_ACTS) + i * u.pre.rs + j * u.pre.cs;
        acts[p >> 2u][p & 3u] = v;
    }
    if (has(MATMUL_FLAG_AUX)) {
        v = v * apply_op(AUX_OP, ld(AUX_BUF, u.aux.off + zoff(AUX_BUF) + prow(i) * u.aux.rs + j * u.aux.cs));
    }
    if (has(MATMUL_FLAG_RES)) {
        v = v + ld(RES_BUF, u.res.off + zoff(RES_BUF) + i * u.res.rs + j * u.res.cs);
    }
    let o = u.c.off + zoff(C_BUF) + i * u.c.rs + j * u.c.cs;
    if (C_BUF == BUF_GRADS) {
        grads[o >> 2u][o & 3u] = v;
    } else {
        acts[o >> 2u][o & 3u] = v;
    }
}

// The bias of columns j0 .. j0 + 3 (C_VEC: the bias is contiguous and 16-byte aligned).
fn bias4_at(j0: u32) -> vec4<f32> {
    if (!has(MATMUL_FLAG_BIAS)) {
        return vec4<f32>(0.0);
    }
    return ld4(BIAS_BUF, u.bias.off + zoff(BIAS_BUF) + min(j0, real_columns() - 4u));
}

// The epilogue of `store` for columns j0 .. j0 + 3 of row i, with vec4 loads and stores
// (C_VEC: C, pre, aux and res are column-contiguous and 16-byte aligned, N is a
// multiple of 4, no ones column).
fn store4(i: u32, j0: u32, acc: vec4<f32>, bias: vec4<f32>) {
    if (i >= u.m || j0 >= real_columns()) {
        return;
    }
    var v = op4(ACT, acc + bias);
    if (has(MATMUL_FLAG_PRE)) {
        let p = u.pre.off + zoff(BUF_ACTS) + i * u.pre.rs + j0;
        acts[p >> 2u] = v;
    }
    if (has(MATMUL_FLAG_AUX)) {
        v = v * op4(AUX_OP, ld4(AUX_BUF, u.aux.off + zoff(AUX_BUF) + prow(i) * u.aux.rs + j0));
    }
    if (has(MATMUL_FLAG_RES)) {
        v = v + ld4(RES_BUF, u.res.off + zoff(RES_BUF) + i * u.res.rs + j0);
    }
    let o = u.c.off + zoff(C_BUF) + i * u.c.rs + j0;
    if (C_BUF == BUF_GRADS) {
        grads[o >> 2u] = v;
    } else {
        acts[o >> 2u] = v;
    }
}

// The lane's four rows of C (x, y, z, w): lane l of the workgroup's 32 rows from
// `base` owns rows base + l + 8 r, or, with A_IVEC, the consecutive rows
// base + 4 l + r (A's rows contiguous: one vec4 load gives the lane's rows at one k).
fn lane_rows(base: u32, lane: u32) -> vec4<u32> {
    if (A_IVEC) {
        return vec4<u32>(base + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
    }
    return vec4<u32>(base + lane) + vec4<u32>(0u, 8u, 16u, 24u);
}

// Rows i of A at k0 .. k0 + 3 (k0 a multiple of 4, K a multiple of 4), row clamped.
fn load_a4(i: u32, k0: u32) -> vec4<f32> {
    let r = min(i, u.m - 1u);
    var v: vec4<f32>;
    var mv: vec4<f32>;
    let ai = u.a.off + zoff(A_BUF) + r * u.a.rs + k0 * u.a.cs;
    let mi = u.amul.off + zoff(M_BUF) + prow(r) * u.amul.rs + k0 * u.amul.cs;
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

// A at k0 .. k0 + 3 for the lane's 4 rows, regrouped by k: element kk holds the rows
// `rows` at k0 + kk.
fn a_by_k(rows: vec4<u32>, k0: u32) -> array<vec4<f32>, 4> {
    if (A_IVEC) {
        // Rows past the end read the last four rows (M is a multiple of 4); they are
        // never stored.
        let base = u.a.off + zoff(A_BUF) + min(rows.x, u.m - 4u);
        return array<vec4<f32>, 4>(
            op4(A_OP, ld4(A_BUF, base + k0 * u.a.cs)),
            op4(A_OP, ld4(A_BUF, base + (k0 + 1u) * u.a.cs)),
            op4(A_OP, ld4(A_BUF, base + (k0 + 2u) * u.a.cs)),
            op4(A_OP, ld4(A_BUF, base + (k0 + 3u) * u.a.cs)),
        );
    }
    let a0 = load_a4(rows.x, k0);
    let a1 = load_a4(rows.y, k0);
    let a2 = load_a4(rows.z, k0);
    let a3 = load_a4(rows.w, k0);
    return array<vec4<f32>, 4>(
        vec4<f32>(a0.x, a1.x, a2.x, a3.x),
        vec4<f32>(a0.y, a1.y, a2.y, a3.y),
        vec4<f32>(a0.z, a1.z, a2.z, a3.z),
        vec4<f32>(a0.w, a1.w, a2.w, a3.w),
    );
}

// The running row sums of A for the virtual ones column, one k at a time in ascending
// order (the sums `fma(a, 1, s)` of a ones column in B would give).
fn add_ones(ones: vec4<f32>, av: array<vec4<f32>, 4>) -> vec4<f32> {
    if (!has(MATMUL_FLAG_ONES_COL)) {
        return ones;
    }
    return (((ones + av[0]) + av[1]) + av[2]) + av[3];
}

// The virtual ones column: the row sums of A (a bias gradient) to grads[extra.x + i],
// written by the first column block.
fn store_ones(rows: vec4<u32>, col: u32, ones: vec4<f32>) {
    if (!has(MATMUL_FLAG_ONES_COL) || col != 0u) {
        return;
    }
    // #unroll r 4
    if (rows[{r}u] < u.m) {
        let g = u.extra.x + zoff(BUF_GRADS) + rows[{r}u];
        grads[g >> 2u][g & 3u] = ones[{r}u];
    }
    // #end
}

// The epilogue of the lane's 4 rows × CW columns, unrolled so every accumulator index
// is a literal (the accumulators stay where the k loop left them).
fn store_tile(rows: vec4<u32>, col0: u32, nb: u32, acc: ptr<function, array<vec4<f32>, 64>>) {
    if (C_VEC) {
        // #unroll g 16 CW/^4*C_VEC
        if (CW > {g}u * 4u) {
            let bv{g} = bias4_at(col0 + {g}u * 4u);
            store4(rows.x, col0 + {g}u * 4u, vec4<f32>((*acc)[{g}u * 4u].x, (*acc)[{g}u * 4u + 1u].x, (*acc)[{g}u * 4u + 2u].x, (*acc)[{g}u * 4u + 3u].x), bv{g});
            store4(rows.y, col0 + {g}u * 4u, vec4<f32>((*acc)[{g}u * 4u].y, (*acc)[{g}u * 4u + 1u].y, (*acc)[{g}u * 4u + 2u].y, (*acc)[{g}u * 4u + 3u].y), bv{g});
            store4(rows.z, col0 + {g}u * 4u, vec4<f32>((*acc)[{g}u * 4u].z, (*acc)[{g}u * 4u + 1u].z, (*acc)[{g}u * 4u + 2u].z, (*acc)[{g}u * 4u + 3u].z), bv{g});
            store4(rows.w, col0 + {g}u * 4u, vec4<f32>((*acc)[{g}u * 4u].w, (*acc)[{g}u * 4u + 1u].w, (*acc)[{g}u * 4u + 2u].w, (*acc)[{g}u * 4u + 3u].w), bv{g});
        }
        // #end
        return;
    }
    // #unroll q 64 CW*!C_VEC
    if (CW > {q}u) {
        let b{q} = bias_at(col0 + {q}u);
        store(rows.x, col0 + {q}u, nb, (*acc)[{q}u].x, b{q});
        store(rows.y, col0 + {q}u, nb, (*acc)[{q}u].y, b{q});
        store(rows.z, col0 + {q}u, nb, (*acc)[{q}u].z, b{q});
        store(rows.w, col0 + {q}u, nb, (*acc)[{q}u].w, b{q});
    }
    // #end
}

// Column j of B at k0 .. k0 + 3 (B = Wᵀ: B's row stride is 1), padded like load_b.
fn load_b_kvec(k0: u32, j: u32, nb: u32) -> vec4<f32> {
    let v = op4(B_OP, ld4(B_BUF, u.b.off + zoff(B_BUF) + min(j, nb - 1u) * u.b.cs + k0));
    return select(vec4<f32>(0.0), v, j < nb);
}

// Row k of B at columns j0 .. j0 + 3 (B = W or X: B's column stride is 1, j0 and nb
// multiples of 4), padded like load_b.
fn load_b_jvec(k: u32, j0: u32, nb: u32) -> vec4<f32> {
    let v = op4(B_OP, ld4(B_BUF, u.b.off + zoff(B_BUF) + k * u.b.rs + min(j0, nb - 4u)));
    let j = vec4<u32>(j0) + vec4<u32>(0u, 1u, 2u, 3u);
    return select(vec4<f32>(0.0), v, j < vec4<u32>(nb));
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
    enter(wg.z);
    let rows = lane_rows(wg.y * 32u, lane);
    let col0 = wg.x * CW;
    let nb = real_columns();
    var acc: array<vec4<f32>, 64>;
    var ones = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 4u) {
        let av = a_by_k(rows, k0);
        ones = add_ones(ones, av);
        // #unroll b 8 CW/^8
        if (CW > {b}u * 8u) {
            let w{b} = load_b_kvec(k0, col0 + {b}u * 8u + lane, nb);
            // #unroll kk 4
            // #unroll s 8
            if (CW > {b}u * 8u + {s}u) {
                acc[{b}u * 8u + {s}u] = fma(av[{kk}], vec4<f32>(subgroupBroadcast(w{b}[{kk}], {s}u)), acc[{b}u * 8u + {s}u]);
            }
            // #end
            // #end
        }
        // #end
    }
    store_tile(rows, col0, nb, &acc);
    store_ones(rows, col0, ones);
}


// B j-contiguous (B = W, X): lane l loads columns col0 + 32 h + 4 l .. + 3 of row k.
@compute @workgroup_size(8, 1, 1)
fn main_k4_bj(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    enter(wg.z);
    let rows = lane_rows(wg.y * 32u, lane);
    let col0 = wg.x * CW;
    let nb = real_columns();
    var acc: array<vec4<f32>, 64>;
    var ones = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 4u) {
        let av = a_by_k(rows, k0);
        ones = add_ones(ones, av);
        // #unroll kk 4
        // #unroll h 2 CW/^32
        if (CW > {h}u * 32u) {
            let wj{kk}{h} = load_b_jvec(k0 + {kk}u, col0 + {h}u * 32u + 4u * lane, nb);
            // #unroll s 8
            if (CW > {h}u * 32u + {s}u * 4u) {
                let ws{kk}{h}{s} = subgroupBroadcast(wj{kk}{h}, {s}u);
                acc[{h}u * 32u + {s}u * 4u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.x), acc[{h}u * 32u + {s}u * 4u]);
                acc[{h}u * 32u + {s}u * 4u + 1u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.y), acc[{h}u * 32u + {s}u * 4u + 1u]);
                acc[{h}u * 32u + {s}u * 4u + 2u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.z), acc[{h}u * 32u + {s}u * 4u + 2u]);
                acc[{h}u * 32u + {s}u * 4u + 3u] = fma(av[{kk}], vec4<f32>(ws{kk}{h}{s}.w), acc[{h}u * 32u + {s}u * 4u + 3u]);
            }
            // #end
        }
        // #end
        // #end
    }
    store_tile(rows, col0, nb, &acc);
    store_ones(rows, col0, ones);
}


// B read one element at a time (unaligned or strided B).
@compute @workgroup_size(8, 1, 1)
fn main_k4_bs(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    enter(wg.z);
    let rows = lane_rows(wg.y * 32u, lane);
    let col0 = wg.x * CW;
    let nb = real_columns();
    var acc: array<vec4<f32>, 64>;
    var ones = vec4<f32>(0.0);
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 4u) {
        let av = a_by_k(rows, k0);
        ones = add_ones(ones, av);
        // #unroll kk 4
        // #unroll b 8 CW/^8
        if (CW > {b}u * 8u) {
            let w{kk}{b} = load_b(k0 + {kk}u, col0 + {b}u * 8u + lane, nb);
            // #unroll s 8
            if (CW > {b}u * 8u + {s}u) {
                acc[{b}u * 8u + {s}u] = fma(av[{kk}], vec4<f32>(subgroupBroadcast(w{kk}{b}, {s}u)), acc[{b}u * 8u + {s}u]);
            }
            // #end
        }
        // #end
        // #end
    }
    store_tile(rows, col0, nb, &acc);
    store_ones(rows, col0, ones);
}


// Column groups are unrolled (`// #unroll`, expanded by src/kernels/registry.rs) so every
// accumulator index and broadcast lane is a literal: the 64 accumulators stay in
// registers; groups and columns at or past CW are removed when the pipeline is
// specialised.
@compute @workgroup_size(8, 1, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    enter(wg.z);
    let rows = lane_rows(wg.y * 32u, lane);
    let col0 = wg.x * CW;
    let nb = real_columns();
    // acc[8 b + s] holds column col0 + 8 b + s of the lane's rows (x, y, z, w).
    var acc: array<vec4<f32>, 64>;
    var ones = vec4<f32>(0.0);
    for (var k = 0u; k < u.k; k = k + 1u) {
        let a = vec4<f32>(load_a(rows.x, k), load_a(rows.y, k), load_a(rows.z, k), load_a(rows.w, k));
        if (has(MATMUL_FLAG_ONES_COL)) {
            ones = ones + a;
        }
        // #unroll b 8 CW/^8
        if (CW > {b}u * 8u) {
            let w{b} = load_b(k, col0 + {b}u * 8u + lane, nb);
            // #unroll s 8
            if (CW > {b}u * 8u + {s}u) {
                acc[{b}u * 8u + {s}u] = fma(a, vec4<f32>(subgroupBroadcast(w{b}, {s}u)), acc[{b}u * 8u + {s}u]);
            }
            // #end
        }
        // #end
    }
    store_tile(rows, col0, nb, &acc);
    store_ones(rows, col0, ones);
}
