// #include common
// #include c2st_mlp_params
// Fused training step pieces of the C2ST classifier (src/metrics/c2st.rs) for narrow
// networks (hidden width h = 10 d <= 64): an MLP d -> h -> h -> 1 with ReLU and a
// logistic output, weights [fan_out, fan_in] row-major in `params`.
// Uses the matmul bindings: 1 = acts (workspace), 2 = params (read), 3 = grads.
// For wide networks the same step runs on the tiled matmul kernel instead.
// Folds trained together: workgroup z is fold z, every index into acts, params and
// grads shifted by fz = z * fold_stride (z = 0 for one fold).
const MAXH: u32 = 64u;

@group(0) @binding(0) var<uniform> mp: MlpParams;
@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read> params: array<f32>;
@group(0) @binding(3) var<storage, read_write> grads: array<f32>;

// The fold's offset, set at entry.
var<private> fz: u32;

// One thread per row: forward, logistic loss (clipped like sklearn), and the
// back-propagated deltas of both hidden layers.
@compute @workgroup_size(64, 1, 1)
fn c2st_mlp_rows(@builtin(global_invocation_id) gid: vec3<u32>) {
    fz = gid.z * mp.fold_stride;
    let r = gid.x;
    if (r >= mp.rows) {
        return;
    }
    let d = mp.d;
    let h = mp.h;
    var a1: array<f32, 64>;
    var a2: array<f32, 64>;
    for (var o = 0u; o < h; o = o + 1u) {
        var s = params[fz + mp.b1 + o];
        for (var i = 0u; i < d; i = i + 1u) {
            s = fma(params[fz + mp.w1 + o * d + i], acts[fz + mp.xb_off + r * d + i], s);
        }
        a1[o] = max(s, 0.0);
        acts[fz + mp.h1_off + r * h + o] = a1[o];
    }
    var z = params[fz + mp.b3];
    for (var o = 0u; o < h; o = o + 1u) {
        var s = params[fz + mp.b2 + o];
        for (var i = 0u; i < h; i = i + 1u) {
            s = fma(params[fz + mp.w2 + o * h + i], a1[i], s);
        }
        a2[o] = max(s, 0.0);
        acts[fz + mp.h2_off + r * h + o] = a2[o];
        z = fma(params[fz + mp.w3 + o], a2[o], z);
    }
    let y = acts[fz + mp.yb_off + r];
    let bce = max(z, 0.0) - z * y + log(1.0 + exp(-abs(z)));
    acts[fz + mp.bce_off + r] = clamp(bce, 1.1920929e-7, 15.942385);
    let dz = (sigmoid(z) - y) * mp.scale;
    acts[fz + mp.dz_off + r] = dz;
    // a2 becomes delta2 = dz W3 * relu'(.)
    for (var o = 0u; o < h; o = o + 1u) {
        a2[o] = select(0.0, dz * params[fz + mp.w3 + o], a2[o] > 0.0);
        acts[fz + mp.d2_off + r * h + o] = a2[o];
    }
    for (var i = 0u; i < h; i = i + 1u) {
        var s = 0.0;
        for (var o = 0u; o < h; o = o + 1u) {
            s = fma(a2[o], params[fz + mp.w2 + o * h + i], s);
        }
        acts[fz + mp.d1_off + r * h + i] = select(0.0, s, a1[i] > 0.0);
    }
}

// One thread per parameter: its gradient summed over the minibatch rows. Thread 0 also
// writes the sum of squared weights (for the L2 term of the reported loss).
@compute @workgroup_size(64, 1, 1)
fn c2st_mlp_grads(@builtin(global_invocation_id) gid: vec3<u32>) {
    fz = gid.z * mp.fold_stride;
    let p = gid.x;
    if (p >= mp.n_params) {
        return;
    }
    let d = mp.d;
    let h = mp.h;
    var s = 0.0;
    if (p < mp.w2) {
        let o = (p - mp.w1) / d;
        let i = (p - mp.w1) % d;
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            s = fma(acts[fz + mp.d1_off + r * h + o], acts[fz + mp.xb_off + r * d + i], s);
        }
    } else if (p < mp.w3) {
        let o = (p - mp.w2) / h;
        let i = (p - mp.w2) % h;
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            s = fma(acts[fz + mp.d2_off + r * h + o], acts[fz + mp.h1_off + r * h + i], s);
        }
    } else if (p < mp.b1) {
        let i = p - mp.w3;
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            s = fma(acts[fz + mp.dz_off + r], acts[fz + mp.h2_off + r * h + i], s);
        }
    } else if (p < mp.b2) {
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            s = s + acts[fz + mp.d1_off + r * h + p - mp.b1];
        }
    } else if (p < mp.b3) {
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            s = s + acts[fz + mp.d2_off + r * h + p - mp.b2];
        }
    } else {
        for (var r = 0u; r < mp.rows; r = r + 1u) {
            s = s + acts[fz + mp.dz_off + r];
        }
    }
    grads[fz + p] = s;
    if (p == 0u) {
        var q = 0.0;
        for (var k = 0u; k < mp.n_weights; k = k + 1u) {
            q = fma(params[fz + k], params[fz + k], q);
        }
        acts[fz + mp.wsq_off] = q;
    }
}
