// #include common
// #include c2st_mlp_params
// The C2ST classifier's forward and backward pass for CPU adapters whose subgroups are
// their SIMD lanes (Mesa lavapipe: 8), in two dispatches instead of eight matmuls and
// the loss kernel (src/metrics/c2st.rs: with the gather, the loss sum and Adam, a step
// is 5 dispatches; the network: d -> h -> h -> 1, ReLU, logistic output, weights
// [fan_out, fan_in] row-major in `params`, as `shaders/c2st_mlp.wgsl`):
//
//  - c2st_lanes_rows: one workgroup (one subgroup of 8 lanes) per 32 minibatch rows; lane
//    l owns rows 4 l .. 4 l + 3 of the block and every column, so the forward pass, the
//    logistic loss and both hidden layers' deltas run in one kernel with no barrier and
//    no workgroup memory: the three products (x W1ᵀ, h1 W2ᵀ, δ2 W2) accumulate the
//    lane's four rows of all H columns in one vec4 per column, and the weights are
//    loaded lane-distinct (lane l loads column 8 b + l) and handed out with
//    subgroupBroadcast at constant lanes (../shared/notes/lavapipe-kernels.md). The
//    activations go to the workspace (the lane re-reads only rows it wrote itself, but
//    for rows past the minibatch, clamped to its last row, whose results are never
//    stored).
//  - c2st_lanes_grads: one workgroup per 32 output rows j of W2 (and of W1, the biases
//    and w3): the lane owns j = 4 l .. 4 l + 3, sums over the minibatch rows r
//    gW2[j, k] = Σ δ2[r, j] h1[r, k], gW1[j, i] = Σ δ1[r, j] x[r, i],
//    gw3[j] = Σ dz[r] h2[r, j] and the bias gradients Σ δ; block 0 also writes gb3 =
//    Σ dz and the sum of squared weights (for the reported loss's L2 term). A last,
//    partial block (H not a multiple of 32) takes its groups of four rows one at a
//    time, the lanes splitting the minibatch rows, and adds the lanes' sums.
//
// D and H are override constants (the pipeline is made per network); H is a multiple
// of 4, at most 128, and H·D a multiple of 4, so that every row of W2, h1, h2, δ1 and
// δ2 starts on a 16-byte boundary (src/metrics/c2st.rs checks it before choosing this
// path). Folds trained together: workgroup z is fold slot z, every index into acts,
// params and grads shifted by z * fold_stride.
//
// Sums run in ascending order of k (and of r, except across the lanes of a partial
// block); the f64 mirror is `fmpe::reference::c2st`.

override D: u32 = 10u;
override H: u32 = 100u;

@group(0) @binding(0) var<uniform> mp: MlpParams;
@group(0) @binding(1) var<storage, read_write> acts: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grads: array<vec4<f32>>;

fn act1(i: u32) -> f32 {
    return acts[i >> 2u][i & 3u];
}

fn par1(i: u32) -> f32 {
    return params[i >> 2u][i & 3u];
}

// Sets acc[j] to the bias at params[off + j] for every column j < H: lane l loads
// column 8 b + l, handed out with subgroupBroadcast.
fn bias_columns(acc: ptr<function, array<vec4<f32>, 128>>, off: u32, lane: u32) {
    // #unroll b 16 H/^8
    if (H > {b}u * 8u) {
        let bias{b} = par1(off + min({b}u * 8u + lane, H - 1u));
        // #unroll s 8
        if (H > {b}u * 8u + {s}u) {
            (*acc)[{b}u * 8u + {s}u] = vec4<f32>(subgroupBroadcast(bias{b}, {s}u));
        }
        // #end
    }
    // #end
}

// The four rows' vec4s at columns c .. c + 3 regrouped by column: element kk holds
// column c + kk of the rows (x, y, z, w).
fn by_column(r0: vec4<f32>, r1: vec4<f32>, r2: vec4<f32>, r3: vec4<f32>) -> array<vec4<f32>, 4> {
    return array<vec4<f32>, 4>(
        vec4<f32>(r0.x, r1.x, r2.x, r3.x),
        vec4<f32>(r0.y, r1.y, r2.y, r3.y),
        vec4<f32>(r0.z, r1.z, r2.z, r3.z),
        vec4<f32>(r0.w, r1.w, r2.w, r3.w),
    );
}

// Columns c .. c + 3 (c a multiple of 4) of the lane's rows `rc` (clamped into the
// minibatch) of the row-major [rows, H] matrix at acts[base ..], by column.
fn rows4(base: u32, rc: vec4<u32>, c: u32) -> array<vec4<f32>, 4> {
    return by_column(
        acts[(base + rc.x * H + c) >> 2u],
        acts[(base + rc.y * H + c) >> 2u],
        acts[(base + rc.z * H + c) >> 2u],
        acts[(base + rc.w * H + c) >> 2u],
    );
}

// Stores the accumulators (column j in acc[j], the four rows in x, y, z, w) into the
// rows `rows` of the [rows, H] matrix at acts[base ..]; rows past the minibatch are not
// stored.
fn store_rows(base: u32, rows: vec4<u32>, acc: ptr<function, array<vec4<f32>, 128>>) {
    // #unroll c 32 H/4
    if (H > {c}u * 4u) {
        let t{c} = by_column((*acc)[{c}u * 4u], (*acc)[{c}u * 4u + 1u], (*acc)[{c}u * 4u + 2u], (*acc)[{c}u * 4u + 3u]);
        // #unroll q 4
        if (rows[{q}u] < mp.rows) {
            acts[(base + rows[{q}u] * H + {c}u * 4u) >> 2u] = t{c}[{q}u];
        }
        // #end
    }
    // #end
}

@compute @workgroup_size(8, 1, 1)
fn c2st_lanes_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let fz = wg.z * mp.fold_stride;
    let rows = vec4<u32>(wg.x * 32u + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
    let rc = min(rows, vec4<u32>(mp.rows - 1u));
    var acc: array<vec4<f32>, 128>;

    // h1 = relu(x W1ᵀ + b1): lane l loads column 8 b + l of W1.
    bias_columns(&acc, fz + mp.b1, lane);
    let xb = fz + mp.xb_off;
    for (var k = 0u; k < D; k = k + 1u) {
        let a = vec4<f32>(act1(xb + rc.x * D + k), act1(xb + rc.y * D + k), act1(xb + rc.z * D + k), act1(xb + rc.w * D + k));
        // #unroll b 16 H/^8
        if (H > {b}u * 8u) {
            let w{b} = par1(fz + mp.w1 + min({b}u * 8u + lane, H - 1u) * D + k);
            // #unroll s 8
            if (H > {b}u * 8u + {s}u) {
                acc[{b}u * 8u + {s}u] = fma(a, vec4<f32>(subgroupBroadcast(w{b}, {s}u)), acc[{b}u * 8u + {s}u]);
            }
            // #end
        }
        // #end
    }
    // #unroll j 128 H
    acc[{j}u] = max(acc[{j}u], vec4<f32>(0.0));
    // #end
    let h1 = fz + mp.h1_off;
    store_rows(h1, rows, &acc);

    // h2 = relu(h1 W2ᵀ + b2): four k per iteration, lane l loads W2[8 b + l, k0 .. k0 + 3].
    bias_columns(&acc, fz + mp.b2, lane);
    for (var k0 = 0u; k0 < H; k0 = k0 + 4u) {
        let av = rows4(h1, rc, k0);
        // #unroll b 16 H/^8
        if (H > {b}u * 8u) {
            let w{b} = params[(fz + mp.w2 + min({b}u * 8u + lane, H - 1u) * H + k0) >> 2u];
            // #unroll kk 4
            // #unroll s 8
            if (H > {b}u * 8u + {s}u) {
                acc[{b}u * 8u + {s}u] = fma(av[{kk}], vec4<f32>(subgroupBroadcast(w{b}[{kk}], {s}u)), acc[{b}u * 8u + {s}u]);
            }
            // #end
            // #end
        }
        // #end
    }
    // z = relu(.) w3 + b3; then the logistic loss of each row (clipped as sklearn
    // reports it), dL/dz and δ2 = dz w3 relu'(.).
    var z = vec4<f32>(par1(fz + mp.b3));
    // #unroll b 16 H/^8
    if (H > {b}u * 8u) {
        let w3{b} = par1(fz + mp.w3 + min({b}u * 8u + lane, H - 1u));
        // #unroll s 8
        if (H > {b}u * 8u + {s}u) {
            acc[{b}u * 8u + {s}u] = max(acc[{b}u * 8u + {s}u], vec4<f32>(0.0));
            z = fma(acc[{b}u * 8u + {s}u], vec4<f32>(subgroupBroadcast(w3{b}, {s}u)), z);
        }
        // #end
    }
    // #end
    store_rows(fz + mp.h2_off, rows, &acc);
    let y = vec4<f32>(act1(fz + mp.yb_off + rc.x), act1(fz + mp.yb_off + rc.y), act1(fz + mp.yb_off + rc.z), act1(fz + mp.yb_off + rc.w));
    let bce = clamp(max(z, vec4<f32>(0.0)) - z * y + log(1.0 + exp(-abs(z))), vec4<f32>(1.1920929e-7), vec4<f32>(15.942385));
    let dz = (vec4<f32>(1.0) / (vec4<f32>(1.0) + exp(-z)) - y) * mp.scale;
    // #unroll q 4
    if (rows[{q}u] < mp.rows) {
        let e{q} = fz + rows[{q}u];
        acts[(e{q} + mp.bce_off) >> 2u][(e{q} + mp.bce_off) & 3u] = bce[{q}u];
        acts[(e{q} + mp.dz_off) >> 2u][(e{q} + mp.dz_off) & 3u] = dz[{q}u];
    }
    // #end
    // #unroll b 16 H/^8
    if (H > {b}u * 8u) {
        let w3{b} = par1(fz + mp.w3 + min({b}u * 8u + lane, H - 1u));
        // #unroll s 8
        if (H > {b}u * 8u + {s}u) {
            acc[{b}u * 8u + {s}u] = select(vec4<f32>(0.0), dz * subgroupBroadcast(w3{b}, {s}u), acc[{b}u * 8u + {s}u] > vec4<f32>(0.0));
        }
        // #end
    }
    // #end
    let d2 = fz + mp.d2_off;
    store_rows(d2, rows, &acc);

    // δ1 = (δ2 W2) relu'(h1): four j per iteration, lane l loads W2[j, 32 g + 4 l .. + 3].
    // #unroll j 128 H
    acc[{j}u] = vec4<f32>(0.0);
    // #end
    for (var j0 = 0u; j0 < H; j0 = j0 + 4u) {
        let dv = rows4(d2, rc, j0);
        // #unroll kk 4
        // #unroll g 4 H/^32
        if (H > {g}u * 32u) {
            let w{kk}{g} = params[(fz + mp.w2 + (j0 + {kk}u) * H + min({g}u * 32u + 4u * lane, H - 4u)) >> 2u];
            // #unroll s 8
            if (H > {g}u * 32u + {s}u * 4u) {
                let ws{kk}{g}{s} = subgroupBroadcast(w{kk}{g}, {s}u);
                acc[{g}u * 32u + {s}u * 4u] = fma(dv[{kk}], vec4<f32>(ws{kk}{g}{s}.x), acc[{g}u * 32u + {s}u * 4u]);
                acc[{g}u * 32u + {s}u * 4u + 1u] = fma(dv[{kk}], vec4<f32>(ws{kk}{g}{s}.y), acc[{g}u * 32u + {s}u * 4u + 1u]);
                acc[{g}u * 32u + {s}u * 4u + 2u] = fma(dv[{kk}], vec4<f32>(ws{kk}{g}{s}.z), acc[{g}u * 32u + {s}u * 4u + 2u]);
                acc[{g}u * 32u + {s}u * 4u + 3u] = fma(dv[{kk}], vec4<f32>(ws{kk}{g}{s}.w), acc[{g}u * 32u + {s}u * 4u + 3u]);
            }
            // #end
        }
        // #end
        // #end
    }
    // #unroll c 32 H/4
    if (H > {c}u * 4u) {
        let hv{c} = rows4(h1, rc, {c}u * 4u);
        // #unroll kk 4
        acc[{c}u * 4u + {kk}u] = select(vec4<f32>(0.0), acc[{c}u * 4u + {kk}u], hv{c}[{kk}u] > vec4<f32>(0.0));
        // #end
    }
    // #end
    store_rows(fz + mp.d1_off, rows, &acc);
}

// What minibatch row r contributes to output rows j0 .. j0 + 3 (δ2, δ1 and h2 there,
// and dL/dz of the row), and, summed over rows by `add_terms`, the bias gradients
// gb2 = Σ δ2, gb1 = Σ δ1, gw3 = Σ h2 dz and gb3 = Σ dz.
struct RowTerms {
    d2: vec4<f32>,
    d1: vec4<f32>,
    h2: vec4<f32>,
    dz: f32,
}

fn row_terms(fz: u32, r: u32, j0: u32) -> RowTerms {
    return RowTerms(
        acts[(fz + mp.d2_off + r * H + j0) >> 2u],
        acts[(fz + mp.d1_off + r * H + j0) >> 2u],
        acts[(fz + mp.h2_off + r * H + j0) >> 2u],
        act1(fz + mp.dz_off + r),
    );
}

fn add_terms(sums: ptr<function, RowTerms>, t: RowTerms) {
    (*sums).d2 = (*sums).d2 + t.d2;
    (*sums).d1 = (*sums).d1 + t.d1;
    (*sums).h2 = fma(t.h2, vec4<f32>(t.dz), (*sums).h2);
    (*sums).dz = (*sums).dz + t.dz;
}

// The gradients of output rows j0 .. j0 + 3 (the lane's, or a leftover group's):
// W2's rows from `acc` (column k in acc[k], the four rows in x, y, z, w), W1's from
// `acc1`, b1, b2 and w3 at j0 .. j0 + 3 from `sums` (see RowTerms).
fn store_grads(fz: u32, j0: u32, acc: ptr<function, array<vec4<f32>, 128>>, acc1: ptr<function, array<vec4<f32>, 16>>, sums: RowTerms) {
    // #unroll q 4
    let g{q} = fz + mp.w2 + (j0 + {q}u) * H;
    // #unroll c 32 H/4
    if (H > {c}u * 4u) {
        grads[(g{q} + {c}u * 4u) >> 2u] = vec4<f32>((*acc)[{c}u * 4u][{q}u], (*acc)[{c}u * 4u + 1u][{q}u], (*acc)[{c}u * 4u + 2u][{q}u], (*acc)[{c}u * 4u + 3u][{q}u]);
    }
    // #end
    // #unroll i 16 D
    if (D > {i}u) {
        let gi{q}{i} = fz + mp.w1 + (j0 + {q}u) * D + {i}u;
        grads[gi{q}{i} >> 2u][gi{q}{i} & 3u] = (*acc1)[{i}u][{q}u];
    }
    // #end
    // #end
    grads[(fz + mp.b1 + j0) >> 2u] = sums.d1;
    grads[(fz + mp.b2 + j0) >> 2u] = sums.d2;
    grads[(fz + mp.w3 + j0) >> 2u] = sums.h2;
}

@compute @workgroup_size(8, 1, 1)
fn c2st_lanes_grads(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let fz = wg.z * mp.fold_stride;
    var acc: array<vec4<f32>, 128>;
    var acc1: array<vec4<f32>, 16>;
    var sums = RowTerms();
    if (wg.x * 32u + 32u <= H) {
        // A full block: the lane's four output rows j0 .. j0 + 3, every minibatch row.
        let j0 = wg.x * 32u + 4u * lane;
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            let t = row_terms(fz, r, j0);
            add_terms(&sums, t);
            let a2 = t.d2;
            let a1 = t.d1;
            // gW2[j, k] += δ2[r, j] h1[r, k]: lane l loads h1[r, 32 g + 4 l .. + 3].
            // #unroll g 4 H/^32
            if (H > {g}u * 32u) {
                let hk{g} = acts[(fz + mp.h1_off + r * H + min({g}u * 32u + 4u * lane, H - 4u)) >> 2u];
                // #unroll s 8
                if (H > {g}u * 32u + {s}u * 4u) {
                    let hs{g}{s} = subgroupBroadcast(hk{g}, {s}u);
                    acc[{g}u * 32u + {s}u * 4u] = fma(a2, vec4<f32>(hs{g}{s}.x), acc[{g}u * 32u + {s}u * 4u]);
                    acc[{g}u * 32u + {s}u * 4u + 1u] = fma(a2, vec4<f32>(hs{g}{s}.y), acc[{g}u * 32u + {s}u * 4u + 1u]);
                    acc[{g}u * 32u + {s}u * 4u + 2u] = fma(a2, vec4<f32>(hs{g}{s}.z), acc[{g}u * 32u + {s}u * 4u + 2u]);
                    acc[{g}u * 32u + {s}u * 4u + 3u] = fma(a2, vec4<f32>(hs{g}{s}.w), acc[{g}u * 32u + {s}u * 4u + 3u]);
                }
                // #end
            }
            // #end
            // gW1[j, i] += δ1[r, j] x[r, i]: lane l loads x[r, 8 g + l].
            // #unroll g 2 D/^8
            if (D > {g}u * 8u) {
                let xv{g} = act1(fz + mp.xb_off + r * D + min({g}u * 8u + lane, D - 1u));
                // #unroll s 8
                if (D > {g}u * 8u + {s}u) {
                    acc1[{g}u * 8u + {s}u] = fma(a1, vec4<f32>(subgroupBroadcast(xv{g}, {s}u)), acc1[{g}u * 8u + {s}u]);
                }
                // #end
            }
            // #end
        }
        store_grads(fz, j0, &acc, &acc1, sums);
    } else {
        // The last, partial block (H not a multiple of 32): its groups of four output
        // rows one after another, all lanes on the same group, each lane summing the
        // minibatch rows r ≡ lane (mod 8) with its own row of h1 and x; then the sums
        // across the lanes. A full block would cost as much as 32 rows whatever it holds.
        for (var j0 = wg.x * 32u; j0 < H; j0 = j0 + 4u) {
            // #unroll j 128 H
            acc[{j}u] = vec4<f32>(0.0);
            // #end
            // #unroll i 16 D
            acc1[{i}u] = vec4<f32>(0.0);
            // #end
            sums = RowTerms();
            for (var r = lane; r < mp.rows; r = r + 8u) {
                let t = row_terms(fz, r, j0);
                add_terms(&sums, t);
                let a2 = t.d2;
                let a1 = t.d1;
                // #unroll c 32 H/4
                if (H > {c}u * 4u) {
                    let hk{c} = acts[(fz + mp.h1_off + r * H + {c}u * 4u) >> 2u];
                    acc[{c}u * 4u] = fma(a2, vec4<f32>(hk{c}.x), acc[{c}u * 4u]);
                    acc[{c}u * 4u + 1u] = fma(a2, vec4<f32>(hk{c}.y), acc[{c}u * 4u + 1u]);
                    acc[{c}u * 4u + 2u] = fma(a2, vec4<f32>(hk{c}.z), acc[{c}u * 4u + 2u]);
                    acc[{c}u * 4u + 3u] = fma(a2, vec4<f32>(hk{c}.w), acc[{c}u * 4u + 3u]);
                }
                // #end
                // #unroll i 16 D
                if (D > {i}u) {
                    acc1[{i}u] = fma(a1, vec4<f32>(act1(fz + mp.xb_off + r * D + {i}u)), acc1[{i}u]);
                }
                // #end
            }
            // #unroll j 128 H
            acc[{j}u] = subgroupAdd(acc[{j}u]);
            // #end
            // #unroll i 16 D
            acc1[{i}u] = subgroupAdd(acc1[{i}u]);
            // #end
            // Every group sums the same dz, so gb3 is the last group's Σ dz.
            sums = RowTerms(subgroupAdd(sums.d2), subgroupAdd(sums.d1), subgroupAdd(sums.h2), subgroupAdd(sums.dz));
            if (lane == 0u) {
                store_grads(fz, j0, &acc, &acc1, sums);
            }
        }
    }
    if (wg.x == 0u) {
        // Σ W² over the weights (n_weights, a multiple of 4), lanes interleaved.
        var q = vec4<f32>(0.0);
        for (var e = lane; e < mp.n_weights / 4u; e = e + 8u) {
            let w = params[(fz >> 2u) + e];
            q = fma(w, w, q);
        }
        let wsq = subgroupAdd(q.x + q.y + q.z + q.w);
        if (lane == 0u) {
            let b3 = fz + mp.b3;
            grads[b3 >> 2u][b3 & 3u] = sums.dz;
            let o = fz + mp.wsq_off;
            acts[o >> 2u][o & 3u] = wsq;
        }
    }
}
