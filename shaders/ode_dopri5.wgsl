// #include common
// #include misc
// Dormand-Prince 5(4) step control, per row (Dormand & Prince 1980; Hairer, Norsett &
// Wanner, Solving ODEs I, II.4/II.5). Each row owns its t, h and accept/reject decision,
// so a row's trajectory never depends on which other rows share the batch.
//
// dopri5_finalize: with k_1..k_7 evaluated (k_7 = f(t + h, y5), FSAL):
//   y5 = y + h sum b5_s k_s;  e = h sum (b5_s - b4_s) k_s
//   err = sqrt(mean_{j < d_err} (e_j / (atol + rtol max(|y_j|, |y5_j|)))^2)
//   accept if err <= 1 (or |h| <= h_min): y = y5, t += h (snapped to t1 at the end), k_1 = k_7
//   h *= clamp(0.9 err^(-1/5), 0.2, 10) (at most 1 after a rejection), then |h| <= |t1 - t|
// Rows that reach t1 get h = 0 and active = 0. A non-finite error stops the row with NaN.
// dopri5_count: active-row count into acts[count_off] (one workgroup).
struct FinParams {
    n: u32,
    d: u32,
    d_err: u32,
    pad0: u32,
    y_off: u32,
    t_off: u32,
    h_off: u32,
    k_off: u32,
    k_stride: u32,
    stats_off: u32,
    active_off: u32,
    count_off: u32,
    t1: f32,
    atol: f32,
    rtol: f32,
    h_min: f32,
}
@group(0) @binding(0) var<uniform> fp: FinParams;

const B5 = array<f32, 7>(35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0);
const E = array<f32, 7>(71.0 / 57600.0, 0.0, -71.0 / 16695.0, 71.0 / 1920.0, -17253.0 / 339200.0, 22.0 / 525.0, -1.0 / 40.0);

fn kv(s: u32, i: u32, j: u32) -> f32 {
    return acts[fp.k_off + s * fp.k_stride + i * fp.d + j];
}

@compute @workgroup_size(256, 1, 1)
fn dopri5_finalize(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                   @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= fp.n || acts[fp.active_off + i] == 0.0) {
        return;
    }
    let h = acts[fp.h_off + i];
    let t = acts[fp.t_off + i];
    var acc = 0.0;
    for (var j = 0u; j < fp.d_err; j = j + 1u) {
        var s5 = 0.0;
        var se = 0.0;
        for (var s = 0u; s < 7u; s = s + 1u) {
            let k = kv(s, i, j);
            s5 = s5 + B5[s] * k;
            se = se + E[s] * k;
        }
        let y = acts[fp.y_off + i * fp.d + j];
        let y5 = y + h * s5;
        let sc = fp.atol + fp.rtol * max(abs(y), abs(y5));
        let r = h * se / sc;
        acc = acc + r * r;
    }
    let err = sqrt(acc / f32(max(fp.d_err, 1u)));
    if (!(err <= 3.0e38)) {
        // NaN or inf: the field is not finite here; stop this row with NaN.
        for (var j = 0u; j < fp.d; j = j + 1u) {
            acts[fp.y_off + i * fp.d + j] = bitcast<f32>(0x7fc00000u);
        }
        acts[fp.h_off + i] = 0.0;
        acts[fp.active_off + i] = 0.0;
        return;
    }
    let dir = sign(fp.t1 - t);
    var t_new = t;
    var factor = 10.0;
    if (err > 0.0) {
        factor = clamp(0.9 * pow(err, -0.2), 0.2, 10.0);
    }
    if (err <= 1.0 || abs(h) <= fp.h_min) {
        for (var j = 0u; j < fp.d; j = j + 1u) {
            var s5 = 0.0;
            for (var s = 0u; s < 6u; s = s + 1u) {
                s5 = s5 + B5[s] * kv(s, i, j);
            }
            acts[fp.y_off + i * fp.d + j] = acts[fp.y_off + i * fp.d + j] + h * s5;
            acts[fp.k_off + i * fp.d + j] = kv(6u, i, j);
        }
        t_new = t + h;
        if (dir * (fp.t1 - t_new) <= 1e-6) {
            t_new = fp.t1;
        }
        acts[fp.t_off + i] = t_new;
        acts[fp.stats_off + 2u * i] = acts[fp.stats_off + 2u * i] + 1.0;
    } else {
        factor = min(factor, 1.0);
        acts[fp.stats_off + 2u * i + 1u] = acts[fp.stats_off + 2u * i + 1u] + 1.0;
    }
    let remaining = fp.t1 - t_new;
    if (t_new == fp.t1) {
        acts[fp.h_off + i] = 0.0;
        acts[fp.active_off + i] = 0.0;
    } else {
        acts[fp.h_off + i] = sign(remaining) * min(abs(h) * factor, abs(remaining));
    }
}

var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn dopri5_count(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var i = lid.x; i < fp.n; i = i + 256u) {
        s = s + acts[fp.active_off + i];
    }
    red[lid.x] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w >> 1u) {
        if (lid.x < w) {
            red[lid.x] = red[lid.x] + red[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        acts[fp.count_off] = red[0];
    }
}

