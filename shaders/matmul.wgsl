// #include common
// Tiled matrix product with strided operands and a fused epilogue.
//
//   C(i, j) = epilogue( sum_k opA(A(i, k)) * opB(B(k, j)) ),   i < m, j < n
//
// Every operand is (buffer, offset, row stride, column stride) into one of three
// storage buffers: 0 = acts (workspace), 1 = params, 2 = grads. Strides make the same
// kernel serve X·Wᵀ (forward), dY·W (backward data) and dYᵀ·X (weight gradients), and
// a row stride of 0 broadcasts one row over the batch.
//
// With MATMUL_FLAG_AMUL the left operand is multiplied element-wise on load by a second
// strided operand M (same shape as A):  A_eff(i, k) = opA(A(i, k)) * opM(M(i', k)).
// This fuses the tangent (JVP) rule of an activation, dA ⊙ act'(A_primal), into the
// product that consumes it.
// Primal row modulus (extra.y != 0): the operands M and aux are read at row
// i' = i % extra.y, so one block of primal rows serves a stack of tangent rows
// (tangent row q = p * rows + i belongs to primal row i).
//
// Epilogue, in order (each step optional, see MATMUL_FLAG_*):
//   v = act(acc + bias(j));  pre(i, j) = v;  v = v * auxop(aux(i, j));  v = v + res(i, j)
// A batch of products (BATCHED, or always in the portable kernel): workgroup z computes
// product z, every operand offset shifted by z * extra.w in acts and by z * zpar.x in
// params and grads (the bias-gradient offset too); unbatched, z = 0.
// With MATMUL_FLAG_ONES_COL, B gets a virtual last column of ones, so the last column of C is
// sum_k A(i, k) (the bias gradient), stored at grads[extra.x + i].
//
// Tiles: 64 x 64 outputs per workgroup of 16 x 16 threads, 4 x 4 per thread (strided),
// k-tile 16.
//
// Two kernels share this file: the portable one reads flags, operators and buffer codes
// from the uniform block; the specialised one (SPECIALIZED = true, the GPU variant) has
// them fixed as override constants when its pipeline is created (src/kernels/matmul.rs),
// so none of those branches is left in the loops.

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
    ops: vec4<u32>,   // a_op, b_op, act, aux_op
    extra: vec4<u32>, // x: bias-gradient offset (MATMUL_FLAG_ONES_COL), y: primal row modulus, z: m_op
    amul: Mat,    // M (MATMUL_FLAG_AMUL)
    zpar: vec4<u32>, // x: batch stride of the operands in params and grads (see BATCHED)
}

// MATMUL_FLAG_* and BUF_* come from the generated prelude (src/kernels/matmul.rs).

override SPECIALIZED: bool = false;
override FLAGS: u32 = 0u;
override A_OP: u32 = 0u;
override B_OP: u32 = 0u;
override ACT: u32 = 0u;
override AUX_OP: u32 = 0u;
override M_OP: u32 = 0u;
override A_BUF: u32 = 0u;
override B_BUF: u32 = 1u;
override BIAS_BUF: u32 = 1u;
override AUX_BUF: u32 = 0u;
override RES_BUF: u32 = 0u;
override M_BUF: u32 = 0u;
override C_BUF: u32 = 0u;
override PRIMAL_MOD: bool = false;
override A_KCONTIG: bool = false; // A's column stride is 1
override B_KCONTIG: bool = false; // B's row stride is 1 (column stride != 1)
// A batch of independent products (workgroup z = product index): every operand offset
// shifts by z * extra.w in acts and by z * zpar.x in params and grads (the bias-gradient
// offset too). The portable kernel always adds it (z = 0 and both strides 0 when
// unbatched); specialised, it is gone when false.
override BATCHED: bool = false;

// Flags, operators and buffers: constants when specialised, else from the uniform block.
fn has(flag: u32) -> bool {
    if (SPECIALIZED) {
        return (FLAGS & flag) != 0u;
    }
    return (u.flags & flag) != 0u;
}
fn pick(runtime: u32, fixed: u32) -> u32 {
    if (SPECIALIZED) {
        return fixed;
    }
    return runtime;
}

// Offsets of product wg.z of a batch in acts and in params / grads (set once at entry;
// see BATCHED).
var<private> zoff_acts: u32;
var<private> zoff_par: u32;
fn enter(z: u32) {
    if (SPECIALIZED && !BATCHED) {
        zoff_acts = 0u;
        zoff_par = 0u;
        return;
    }
    zoff_acts = z * u.extra.w;
    zoff_par = z * u.zpar.x;
}
// The batch offset of an operand in buffer `buf`.
fn zoff(buf: u32) -> u32 {
    if (buf == BUF_ACTS) {
        return zoff_acts;
    }
    return zoff_par;
}

// Row of a primal operand (M, aux) for output/A row i.
fn prow(i: u32) -> u32 {
    if ((SPECIALIZED && PRIMAL_MOD) || (!SPECIALIZED && u.extra.y != 0u)) {
        return i % u.extra.y;
    }
    return i;
}

@group(0) @binding(0) var<uniform> u: MatmulParams;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

var<workgroup> As: array<f32, 1024>; // [16][64]: As[kk * 64 + i]
var<workgroup> Bs: array<f32, 1024>; // [16][64]: Bs[kk * 64 + j]

fn ld(buf: u32, idx: u32) -> f32 {
    if (buf == BUF_PARAMS) {
        return params[idx];
    } else if (buf == BUF_GRADS) {
        return grads[idx];
    }
    return acts[idx];
}

@compute @workgroup_size(16, 16, 1)
fn main(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(local_invocation_id) lid: vec3<u32>,
    @builtin(local_invocation_index) li: u32,
) {
    enter(wg.z);
    let row0 = wg.y * 64u;
    let col0 = wg.x * 64u;
    let ones_col = has(MATMUL_FLAG_ONES_COL);
    // Columns of B that come from memory (the ones column is virtual).
    var nb = u.n;
    if (ones_col) {
        nb = u.n - 1u;
    }
    var acc: array<f32, 16>;
    for (var q = 0u; q < 16u; q = q + 1u) {
        acc[q] = 0.0;
    }
    for (var k0 = 0u; k0 < u.k; k0 = k0 + 16u) {
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + e * 256u;
            // Walk memory-contiguously: k fastest when A's column stride is 1.
            var i = idx % 64u;
            var kk = idx / 64u;
            if ((SPECIALIZED && A_KCONTIG) || (!SPECIALIZED && u.a.cs == 1u)) {
                kk = idx % 16u;
                i = idx / 16u;
            }
            let gi = row0 + i;
            let gk = k0 + kk;
            var v = 0.0;
            if (gi < u.m && gk < u.k) {
                v = apply_op(pick(u.ops.x, A_OP), ld(pick(u.a.buf, A_BUF), u.a.off + zoff(pick(u.a.buf, A_BUF)) + gi * u.a.rs + gk * u.a.cs));
                if (has(MATMUL_FLAG_AMUL)) {
                    v = v * apply_op(pick(u.extra.z, M_OP), ld(pick(u.amul.buf, M_BUF), u.amul.off + zoff(pick(u.amul.buf, M_BUF)) + prow(gi) * u.amul.rs + gk * u.amul.cs));
                }
            }
            As[kk * 64u + i] = v;
        }
        for (var e = 0u; e < 4u; e = e + 1u) {
            let idx = li + e * 256u;
            var j = idx % 64u;
            var kk = idx / 64u;
            if ((SPECIALIZED && B_KCONTIG) || (!SPECIALIZED && u.b.cs != 1u)) {
                kk = idx % 16u;
                j = idx / 16u;
            }
            let gj = col0 + j;
            let gk = k0 + kk;
            var v = 0.0;
            if (gk < u.k) {
                if (gj < nb) {
                    v = apply_op(pick(u.ops.y, B_OP), ld(pick(u.b.buf, B_BUF), u.b.off + zoff(pick(u.b.buf, B_BUF)) + gk * u.b.rs + gj * u.b.cs));
                } else if (ones_col && gj == nb) {
                    v = 1.0;
                }
            }
            Bs[kk * 64u + j] = v;
        }
        workgroupBarrier();
        for (var kk = 0u; kk < 16u; kk = kk + 1u) {
            // Strided ownership (rows lid.y + 16 r, columns lid.x + 16 c): neighbouring
            // invocations read neighbouring words (no bank conflicts, vector loads on CPUs).
            let ab = kk * 64u + lid.y;
            let bb = kk * 64u + lid.x;
            let a = vec4<f32>(As[ab], As[ab + 16u], As[ab + 32u], As[ab + 48u]);
            let b = vec4<f32>(Bs[bb], Bs[bb + 16u], Bs[bb + 32u], Bs[bb + 48u]);
            for (var r = 0u; r < 4u; r = r + 1u) {
                acc[r * 4u + 0u] = fma(a[r], b.x, acc[r * 4u + 0u]);
                acc[r * 4u + 1u] = fma(a[r], b.y, acc[r * 4u + 1u]);
                acc[r * 4u + 2u] = fma(a[r], b.z, acc[r * 4u + 2u]);
                acc[r * 4u + 3u] = fma(a[r], b.w, acc[r * 4u + 3u]);
            }
        }
        workgroupBarrier();
    }
    for (var r = 0u; r < 4u; r = r + 1u) {
        let i = row0 + lid.y + 16u * r;
        if (i >= u.m) {
            continue;
        }
        for (var c = 0u; c < 4u; c = c + 1u) {
            let j = col0 + lid.x + 16u * c;
            if (j >= u.n) {
                continue;
            }
            var v = acc[r * 4u + c];
            if (ones_col && j == nb) {
                grads[u.extra.x + zoff(BUF_GRADS) + i] = v;
                continue;
            }
            if (has(MATMUL_FLAG_BIAS)) {
                v = v + ld(pick(u.bias.buf, BIAS_BUF), u.bias.off + zoff(pick(u.bias.buf, BIAS_BUF)) + j * u.bias.cs);
            }
            v = apply_op(pick(u.ops.z, ACT), v);
            if (has(MATMUL_FLAG_PRE)) {
                acts[u.pre.off + zoff(BUF_ACTS) + i * u.pre.rs + j * u.pre.cs] = v;
            }
            if (has(MATMUL_FLAG_AUX)) {
                v = v * apply_op(pick(u.ops.w, AUX_OP), ld(pick(u.aux.buf, AUX_BUF), u.aux.off + zoff(pick(u.aux.buf, AUX_BUF)) + prow(i) * u.aux.rs + j * u.aux.cs));
            }
            if (has(MATMUL_FLAG_RES)) {
                v = v + ld(pick(u.res.buf, RES_BUF), u.res.off + zoff(pick(u.res.buf, RES_BUF)) + i * u.res.rs + j * u.res.cs);
            }
            let o = u.c.off + zoff(pick(u.c.buf, C_BUF)) + i * u.c.rs + j * u.c.cs;
            if (pick(u.c.buf, C_BUF) == BUF_GRADS) {
                grads[o] = v;
            } else {
                acts[o] = v;
            }
        }
    }
}
