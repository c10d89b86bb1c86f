// #include common
// #include misc
// theta_transform: the per-component parameter transform theta' = T(theta) (src/transform.rs),
// one thread per row i < n, components j < d.
//
// Table acts[tab_off + 4 j ..]: (kind, low, high, width = high - low), kind (as f32)
// TRANSFORM_KIND_IDENTITY, TRANSFORM_KIND_LOGIT or TRANSFORM_KIND_LOG, i.e. 0 identity,
// 1 logit, 2 log (as f32).
//   logit: a = max(theta - low, 1e-6 w), b = max(high - theta, 1e-6 w),
//          theta' = log a - log b,  log|dtheta'/dtheta| = log w - log a - log b;
//          inverse theta = high - w sigmoid(-y) (y >= 0) or low + w sigmoid(y) (y < 0),
//          log|dtheta'/dtheta| = -log w + softplus(y) + softplus(-y)
//   log:   a = max(theta - low, smallest normal f32), theta' = log a, log|dtheta'/dtheta| = -log a;
//          inverse theta = low + exp(y), log|dtheta'/dtheta| = -y
//
// Modes and flags: TRANSFORM_* from the generated prelude (src/kernels/transform.rs).
// TRANSFORM_FORWARD: v = in[i * in_rs + j];  out[i * out_rs + j] = T(v), or with
//                   TRANSFORM_ZSCORE (T(v) - shift[j]) / scale[j] (z-scoring in theta' space).
// TRANSFORM_INVERSE: v = in[...], with TRANSFORM_ZSCORE first v = v * scale[j] + shift[j];
//                   out[...] = T^-1(v).
// TRANSFORM_LOG_DET: ld[ld_off + i] += sum_j log|dtheta'_j/dtheta_j| of the row's point
//         (forward from theta, inverse from theta').
// TRANSFORM_DATA: in and out index the dataset buffer `data` instead of `acts` (training);
//         the table, scale, shift and ld are always in acts. In place (in = out) is allowed.
struct TransformParams {
    n: u32,
    d: u32,
    mode: u32,
    flags: u32,
    in_off: u32,
    in_rs: u32,
    out_off: u32,
    out_rs: u32,
    tab_off: u32,
    ld_off: u32,
    scale_off: u32,
    shift_off: u32,
}
@group(0) @binding(0) var<uniform> tp: TransformParams;

fn tf_load(k: u32) -> f32 {
    if ((tp.flags & TRANSFORM_DATA) != 0u) {
        return data[k];
    }
    return acts[k];
}

fn tf_store(k: u32, v: f32) {
    if ((tp.flags & TRANSFORM_DATA) != 0u) {
        data[k] = v;
    } else {
        acts[k] = v;
    }
}

// log(1 + exp(x)) without overflow.
fn softplus(x: f32) -> f32 {
    return max(x, 0.0) + log(1.0 + exp(-abs(x)));
}

@compute @workgroup_size(256, 1, 1)
fn theta_transform(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= tp.n) {
        return;
    }
    let zs = (tp.flags & TRANSFORM_ZSCORE) != 0u;
    var ld = 0.0;
    for (var j = 0u; j < tp.d; j = j + 1u) {
        let kind = u32(acts[tp.tab_off + 4u * j] + 0.5);
        let lo = acts[tp.tab_off + 4u * j + 1u];
        let hi = acts[tp.tab_off + 4u * j + 2u];
        let w = acts[tp.tab_off + 4u * j + 3u];
        var v = tf_load(tp.in_off + i * tp.in_rs + j);
        var r = v;
        if (tp.mode == TRANSFORM_FORWARD) {
            if (kind == TRANSFORM_KIND_LOGIT) {
                let a = max(v - lo, 1e-6 * w);
                let b = max(hi - v, 1e-6 * w);
                r = log(a) - log(b);
                ld = ld + log(w) - log(a) - log(b);
            } else if (kind == TRANSFORM_KIND_LOG) {
                let a = max(v - lo, 1.17549435e-38);
                r = log(a);
                ld = ld - r;
            }
            if (zs) {
                r = (r - acts[tp.shift_off + j]) / acts[tp.scale_off + j];
            }
        } else {
            if (zs) {
                v = v * acts[tp.scale_off + j] + acts[tp.shift_off + j];
                r = v;
            }
            if (kind == TRANSFORM_KIND_LOGIT) {
                let e = exp(-abs(v));
                let s = e / (1.0 + e); // sigmoid(-|v|), never overflows
                r = select(lo + w * s, hi - w * s, v >= 0.0);
                ld = ld - log(w) + softplus(v) + softplus(-v);
            } else if (kind == TRANSFORM_KIND_LOG) {
                // exp overflows f32 above 88.7: saturate instead of returning inf.
                let vc = min(v, 88.0);
                r = lo + exp(vc);
                ld = ld - vc;
            }
        }
        tf_store(tp.out_off + i * tp.out_rs + j, r);
    }
    if ((tp.flags & TRANSFORM_LOG_DET) != 0u) {
        acts[tp.ld_off + i] = acts[tp.ld_off + i] + ld;
    }
}
