// #include common
// #include step
// #include c2st_mlp_params
// The C2ST classifier's forward and backward pass for CPU adapters whose subgroups are
// their SIMD lanes (Mesa lavapipe: 8), in two dispatches instead of the minibatch
// gather, eight matmuls, the loss kernel and the loss sum (src/metrics/c2st.rs: with
// Adam, a step is 3 dispatches; the network: d -> h -> h -> 1, ReLU, logistic output,
// weights [fan_out, fan_in] row-major in `params`, as `shaders/c2st_mlp.wgsl`):
//
//  - c2st_lanes_rows: one workgroup (one subgroup of 8 lanes) per block of 8 R minibatch
//    rows (R = 4 or 5 rows per lane); lane l owns rows 4 l .. 4 l + 3 of the block (and
//    row 32 + l where R = 5) and every column, so the forward pass, the logistic loss
//    and both hidden layers' deltas run in one kernel with no barrier and no workgroup
//    memory: the three products (x W1ᵀ, h1 W2ᵀ, δ2 W2) accumulate the lane's rows of
//    all H columns in one LaneRows (a vec4 and an f32) per column, and the weights are
//    loaded lane-distinct (lane l loads column 8 b + l) and handed out with
//    subgroupBroadcast at constant lanes (../shared/notes/lavapipe-kernels.md). Each
//    accumulator takes four products per load and store (on lavapipe the H
//    accumulators live in stack memory). A block costs the same whatever rows it
//    holds, so the host picks R for the fewest padded rows (sklearn's 200-row
//    minibatch: 5 blocks of 40, not 7 of 32). The lane's rows come from the shuffled
//    data through the epoch's permutation (source_row: the rows `c2st_batch` gathers),
//    and go to the workspace with the activations (the lane re-reads only rows it
//    wrote itself, but for rows past the minibatch, clamped to its last row, whose
//    results are never stored).
//  - c2st_lanes_grads: one workgroup per 32 output rows j of W2 (and of W1, the biases
//    and w3): the lane owns j = 4 l .. 4 l + 3, sums over the minibatch rows r
//    gW2[j, k] = Σ δ2[r, j] h1[r, k], gW1[j, i] = Σ δ1[r, j] x[r, i],
//    gw3[j] = Σ dz[r] h2[r, j] and the bias gradients Σ δ; block 0 also writes gb3 =
//    Σ dz, the sum of squared weights and the step's reported loss (into the slot's
//    loss slot for st.step_in_epoch, as `c2st_loss_sum`). A last, partial block (H
//    not a multiple of 32) takes its groups of four rows one at a time, the lanes
//    splitting the minibatch rows, and adds the lanes' sums.
//
// D, H and R are override constants (the pipeline is made per network and, for R, per
// minibatch size); H is a multiple of 4, at most 128, and H·D a multiple of 4, so that
// every row of W2, h1, h2, δ1 and δ2 starts on a 16-byte boundary (src/metrics/c2st.rs
// checks it before choosing this path). Folds trained together: workgroup z is fold
// slot z, every index into acts, params and grads shifted by z * fold_stride (but the
// shuffled data's, which the slots share).
//
// Sums run in ascending order of k (and of r, except across the lanes of a partial
// block and in the step's loss); the f64 mirror is `fmpe::reference::c2st`.

override D: u32 = 10u;
override H: u32 = 100u;
// Minibatch rows per lane in c2st_lanes_rows: 4 (blocks of 32 rows) or 5 (blocks of 40).
override R: u32 = 4u;

@group(0) @binding(0) var<uniform> mp: MlpParams;
@group(0) @binding(1) var<storage, read_write> acts: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> params: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> grads: array<vec4<f32>>;
@group(0) @binding(4) var<uniform> st: Step;

fn act1(i: u32) -> f32 {
    return acts[i >> 2u][i & 3u];
}

fn set1(i: u32, v: f32) {
    acts[i >> 2u][i & 3u] = v;
}

fn par1(i: u32) -> f32 {
    return params[i >> 2u][i & 3u];
}

// The row of the shuffled data (x at x_off, y at y_off) that minibatch row r of fold
// slot z trains on this step, as `c2st_batch` (shaders/c2st.wgsl) gathers it.
fn source_row(z: u32, r: u32) -> u32 {
    let k = u32(act1(mp.slot_fold_off + z));
    return fold_training_row(st.step_in_epoch * mp.batch + r, mp.n_train, vec2<u32>(mp.seed_lo, mp.seed_hi), st.epoch,
                             mp.stream + k, mp.test_start + k * mp.test_len, mp.test_len);
}

// The values of one column for the rows a lane owns: rows 4 l .. 4 l + 3 of its block
// in v (x, y, z, w) and, where R = 5, row 32 + l in e. Where R = 4, e is never loaded
// from the data nor stored, and the compiler drops it: the R = 4 pipeline is as fast as
// the vec4 accumulators it replaced (BENCHMARKS.md, "Eighth round": 192 rows).
struct LaneRows {
    v: vec4<f32>,
    e: f32,
}

fn splat(x: f32) -> LaneRows {
    return LaneRows(vec4<f32>(x), x);
}

// a w + acc, row by row.
fn mad(a: LaneRows, w: f32, acc: LaneRows) -> LaneRows {
    return LaneRows(fma(a.v, vec4<f32>(w), acc.v), fma(a.e, w, acc.e));
}

fn times(a: LaneRows, w: f32) -> LaneRows {
    return LaneRows(a.v * w, a.e * w);
}

fn relu(a: LaneRows) -> LaneRows {
    return LaneRows(max(a.v, vec4<f32>(0.0)), max(a.e, 0.0));
}

// g where pre > 0, else 0, row by row (the ReLU's derivative applied to g).
fn relu_masked(pre: LaneRows, g: LaneRows) -> LaneRows {
    return LaneRows(select(vec4<f32>(0.0), g.v, pre.v > vec4<f32>(0.0)), select(0.0, g.e, pre.e > 0.0));
}

// Element i of acts where the lane owns a fifth row (R = 5), else 0.
fn act5(i: u32) -> f32 {
    if (R == 5u) {
        return act1(i);
    }
    return 0.0;
}

// Sets acc[j] to the bias at params[off + j] for every column j < H: lane l loads
// column 8 b + l, handed out with subgroupBroadcast.
fn bias_columns(acc: ptr<function, array<LaneRows, 128>>, off: u32, lane: u32) {
    // #unroll b 16 H/^8
    if (H > {b}u * 8u) {
        let bias{b} = par1(off + min({b}u * 8u + lane, H - 1u));
        // #unroll s 8
        if (H > {b}u * 8u + {s}u) {
            (*acc)[{b}u * 8u + {s}u] = splat(subgroupBroadcast(bias{b}, {s}u));
        }
        // #end
    }
    // #end
}

// Columns c .. c + 3 (c a multiple of 4) of the lane's rows (`rc`, and `rc5` where
// R = 5, clamped into the minibatch) of the row-major [rows, H] matrix at acts[base ..],
// by column: element kk holds column c + kk.
fn lane_rows(base: u32, rc: vec4<u32>, rc5: u32, c: u32) -> array<LaneRows, 4> {
    let r0 = acts[(base + rc.x * H + c) >> 2u];
    let r1 = acts[(base + rc.y * H + c) >> 2u];
    let r2 = acts[(base + rc.z * H + c) >> 2u];
    let r3 = acts[(base + rc.w * H + c) >> 2u];
    var r4 = vec4<f32>(0.0);
    if (R == 5u) {
        r4 = acts[(base + rc5 * H + c) >> 2u];
    }
    return array<LaneRows, 4>(
        LaneRows(vec4<f32>(r0.x, r1.x, r2.x, r3.x), r4.x),
        LaneRows(vec4<f32>(r0.y, r1.y, r2.y, r3.y), r4.y),
        LaneRows(vec4<f32>(r0.z, r1.z, r2.z, r3.z), r4.z),
        LaneRows(vec4<f32>(r0.w, r1.w, r2.w, r3.w), r4.w),
    );
}

// Stores the accumulators (column j in acc[j]) into the lane's rows (`rows`, and `row5`
// where R = 5) of the [rows, H] matrix at acts[base ..]; rows past the minibatch are not
// stored.
fn store_rows(base: u32, rows: vec4<u32>, row5: u32, acc: ptr<function, array<LaneRows, 128>>) {
    // #unroll c 32 H/4
    if (H > {c}u * 4u) {
        let a{c} = (*acc)[{c}u * 4u];
        let b{c} = (*acc)[{c}u * 4u + 1u];
        let c{c} = (*acc)[{c}u * 4u + 2u];
        let d{c} = (*acc)[{c}u * 4u + 3u];
        // #unroll q 4
        if (rows[{q}u] < mp.rows) {
            acts[(base + rows[{q}u] * H + {c}u * 4u) >> 2u] = vec4<f32>(a{c}.v[{q}u], b{c}.v[{q}u], c{c}.v[{q}u], d{c}.v[{q}u]);
        }
        // #end
        if (R == 5u && row5 < mp.rows) {
            acts[(base + row5 * H + {c}u * 4u) >> 2u] = vec4<f32>(a{c}.e, b{c}.e, c{c}.e, d{c}.e);
        }
    }
    // #end
}

// The clipped logistic loss (as sklearn reports it) and dL/dz of four rows.
fn logistic(z: vec4<f32>, y: vec4<f32>) -> array<vec4<f32>, 2> {
    let bce = clamp(max(z, vec4<f32>(0.0)) - z * y + log(1.0 + exp(-abs(z))), vec4<f32>(1.1920929e-7), vec4<f32>(15.942385));
    let dz = (vec4<f32>(1.0) / (vec4<f32>(1.0) + exp(-z)) - y) * mp.scale;
    return array<vec4<f32>, 2>(bce, dz);
}

// Writes row r's loss and dL/dz into the workspace.
fn store_loss(fz: u32, r: u32, bce: f32, dz: f32) {
    set1(fz + mp.bce_off + r, bce);
    set1(fz + mp.dz_off + r, dz);
}

@compute @workgroup_size(8, 1, 1)
fn c2st_lanes_rows(
    @builtin(workgroup_id) wg: vec3<u32>,
    @builtin(subgroup_invocation_id) lane: u32,
) {
    let fz = wg.z * mp.fold_stride;
    let first = wg.x * 8u * R;
    let rows = vec4<u32>(first + 4u * lane) + vec4<u32>(0u, 1u, 2u, 3u);
    let row5 = first + 32u + lane;
    let rc = min(rows, vec4<u32>(mp.rows - 1u));
    let rc5 = min(row5, mp.rows - 1u);
    var acc: array<LaneRows, 128>;

    // h1 = relu(x W1ᵀ + b1): lane l loads column 8 b + l of W1.
    // The lane's rows come from the shuffled data (source_row) and go to the workspace
    // for c2st_lanes_grads.
    bias_columns(&acc, fz + mp.b1, lane);
    let src = vec4<u32>(source_row(wg.z, rc.x), source_row(wg.z, rc.y), source_row(wg.z, rc.z), source_row(wg.z, rc.w));
    var src5 = 0u;
    if (R == 5u) {
        src5 = source_row(wg.z, rc5);
    }
    let xs = vec4<u32>(mp.x_off) + src * D;
    let xb = fz + mp.xb_off;
    for (var k = 0u; k < D; k = k + 1u) {
        let a = LaneRows(vec4<f32>(act1(xs.x + k), act1(xs.y + k), act1(xs.z + k), act1(xs.w + k)), act5(mp.x_off + src5 * D + k));
        // #unroll q 4
        if (rows[{q}u] < mp.rows) {
            set1(xb + rows[{q}u] * D + k, a.v[{q}u]);
        }
        // #end
        if (R == 5u && row5 < mp.rows) {
            set1(xb + row5 * D + k, a.e);
        }
        // #unroll b 16 H/^8
        if (H > {b}u * 8u) {
            let w{b} = par1(fz + mp.w1 + min({b}u * 8u + lane, H - 1u) * D + k);
            // #unroll s 8
            if (H > {b}u * 8u + {s}u) {
                acc[{b}u * 8u + {s}u] = mad(a, subgroupBroadcast(w{b}, {s}u), acc[{b}u * 8u + {s}u]);
            }
            // #end
        }
        // #end
    }
    // #unroll j 128 H
    acc[{j}u] = relu(acc[{j}u]);
    // #end
    let h1 = fz + mp.h1_off;
    store_rows(h1, rows, row5, &acc);

    // h2 = relu(h1 W2ᵀ + b2): four k per iteration, lane l loads W2[8 b + l, k0 .. k0 + 3];
    // each accumulator takes the four products in one chain (loaded and stored once).
    bias_columns(&acc, fz + mp.b2, lane);
    for (var k0 = 0u; k0 < H; k0 = k0 + 4u) {
        let av = lane_rows(h1, rc, rc5, k0);
        // #unroll b 16 H/^8
        if (H > {b}u * 8u) {
            let w{b} = params[(fz + mp.w2 + min({b}u * 8u + lane, H - 1u) * H + k0) >> 2u];
            // #unroll s 8
            if (H > {b}u * 8u + {s}u) {
                let ws{b}{s} = subgroupBroadcast(w{b}, {s}u);
                acc[{b}u * 8u + {s}u] = mad(av[3], ws{b}{s}.w, mad(av[2], ws{b}{s}.z, mad(av[1], ws{b}{s}.y, mad(av[0], ws{b}{s}.x, acc[{b}u * 8u + {s}u]))));
            }
            // #end
        }
        // #end
    }
    // z = relu(.) w3 + b3; then the logistic loss of each row, dL/dz and
    // δ2 = dz w3 relu'(.).
    var z = splat(par1(fz + mp.b3));
    // #unroll b 16 H/^8
    if (H > {b}u * 8u) {
        let w3{b} = par1(fz + mp.w3 + min({b}u * 8u + lane, H - 1u));
        // #unroll s 8
        if (H > {b}u * 8u + {s}u) {
            acc[{b}u * 8u + {s}u] = relu(acc[{b}u * 8u + {s}u]);
            z = mad(acc[{b}u * 8u + {s}u], subgroupBroadcast(w3{b}, {s}u), z);
        }
        // #end
    }
    // #end
    store_rows(fz + mp.h2_off, rows, row5, &acc);
    let ys = vec4<u32>(mp.y_off) + src;
    let lv = logistic(z.v, vec4<f32>(act1(ys.x), act1(ys.y), act1(ys.z), act1(ys.w)));
    let le = logistic(vec4<f32>(z.e), vec4<f32>(act5(mp.y_off + src5)));
    let dz = LaneRows(lv[1], le[1].x);
    // #unroll q 4
    if (rows[{q}u] < mp.rows) {
        store_loss(fz, rows[{q}u], lv[0][{q}u], lv[1][{q}u]);
    }
    // #end
    if (R == 5u && row5 < mp.rows) {
        store_loss(fz, row5, le[0].x, le[1].x);
    }
    // #unroll b 16 H/^8
    if (H > {b}u * 8u) {
        let w3{b} = par1(fz + mp.w3 + min({b}u * 8u + lane, H - 1u));
        // #unroll s 8
        if (H > {b}u * 8u + {s}u) {
            acc[{b}u * 8u + {s}u] = relu_masked(acc[{b}u * 8u + {s}u], times(dz, subgroupBroadcast(w3{b}, {s}u)));
        }
        // #end
    }
    // #end
    let d2 = fz + mp.d2_off;
    store_rows(d2, rows, row5, &acc);

    // δ1 = (δ2 W2) relu'(h1): four j per iteration, lane l loads W2[j, 32 g + 4 l .. + 3];
    // each accumulator takes the four products in one chain.
    // #unroll j 128 H
    acc[{j}u] = splat(0.0);
    // #end
    for (var j0 = 0u; j0 < H; j0 = j0 + 4u) {
        let dv = lane_rows(d2, rc, rc5, j0);
        // #unroll g 4 H/^32
        if (H > {g}u * 32u) {
            // #unroll kk 4
            let w{kk}{g} = params[(fz + mp.w2 + (j0 + {kk}u) * H + min({g}u * 32u + 4u * lane, H - 4u)) >> 2u];
            // #end
            // #unroll s 8
            if (H > {g}u * 32u + {s}u * 4u) {
                // #unroll kk 4
                let ws{kk}{g}{s} = subgroupBroadcast(w{kk}{g}, {s}u);
                // #end
                // #unroll c 4
                acc[{g}u * 32u + {s}u * 4u + {c}u] = mad(dv[3], ws3{g}{s}[{c}u], mad(dv[2], ws2{g}{s}[{c}u],
                    mad(dv[1], ws1{g}{s}[{c}u], mad(dv[0], ws0{g}{s}[{c}u], acc[{g}u * 32u + {s}u * 4u + {c}u]))));
                // #end
            }
            // #end
        }
        // #end
    }
    // #unroll c 32 H/4
    if (H > {c}u * 4u) {
        let hv{c} = lane_rows(h1, rc, rc5, {c}u * 4u);
        // #unroll kk 4
        acc[{c}u * 4u + {kk}u] = relu_masked(hv{c}[{kk}u], acc[{c}u * 4u + {kk}u]);
        // #end
    }
    // #end
    store_rows(fz + mp.d1_off, rows, row5, &acc);
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
        // The step's reported loss: Σ of the rows' losses + α/2 Σ W² (sklearn's batch
        // loss times the batch size), in the slot's per-step loss slots.
        var bce = 0.0;
        for (var r = lane; r < mp.rows; r = r + 8u) {
            bce = bce + act1(fz + mp.bce_off + r);
        }
        let loss = subgroupAdd(bce) + 0.5 * mp.alpha * wsq;
        if (lane == 0u) {
            let b3 = fz + mp.b3;
            grads[b3 >> 2u][b3 & 3u] = sums.dz;
            set1(fz + mp.wsq_off, wsq);
            set1(mp.loss_off + wg.z * mp.loss_stride + st.step_in_epoch, loss);
        }
    }
}
