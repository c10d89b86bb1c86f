// #include common
// #include misc
// Helpers of the forward-mode tangent (JVP) pass and of the density ODE.
//
// Tangent rows are stacked probe-major: tangent row q = p * n + i carries probe p of
// primal row (sample) i, for p < probes, i < n. eps is [probes * n, d], row-major.
//
// tangent_init: fills eps once per solve.
//   (modes: PROBE_* and DENSITY_* from the generated prelude, src/kernels/jvp.rs)
//   PROBE_EXACT:      eps[p * n + i] = e_p (unit vector; probes == d)
//   PROBE_RADEMACHER: eps[p * n + i, j] = ±1, Philox keyed by seed, counter
//                        (first_index + i, p, 2 + j / 4, 0x9B0BE): sign bit of word j % 4
//   PROBE_GAUSSIAN:   eps[p * n + i, j] ~ N(0, 1) from the same counter (Box-Muller)
//   The probe of a sample depends only on (seed, sample index, p, j): not on its batch.
// div_reduce: out[out_off + i * out_rs] = scale * sum_p sum_j eps[p n + i, j] * jeps[p n + i, j]
//   (exact: the trace of J; Hutchinson with scale = 1 / probes: the mean of eps^T J eps).
// density_finish: log-density from the joint state y = [theta (d), delta] (row stride ds):
//   DENSITY_LOG_PROB (state at t = 0):    out[i] = log N(theta; 0, I) + delta + shift
//   DENSITY_FORWARD_START (t = 0):        out[i] = log N(theta; 0, I)
//   DENSITY_FORWARD_END (t = 1):          out[i] = out[i] - delta + shift
struct JvpParams {
    n: u32,
    d: u32,
    probes: u32,
    mode: u32,
    eps_off: u32,
    jeps_off: u32,
    out_off: u32,
    out_rs: u32,
    first_index: u32,
    seed_lo: u32,
    seed_hi: u32,
    ds: u32,
    y_off: u32,
    pad0: u32,
    scale: f32,
    shift: f32,
}
@group(0) @binding(0) var<uniform> jp: JvpParams;

@compute @workgroup_size(256, 1, 1)
fn tangent_init(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_id(wg, nwg, lid);
    if (q >= jp.n * jp.probes) {
        return;
    }
    let p = q / jp.n;
    let i = q % jp.n;
    let key = vec2<u32>(jp.seed_lo, jp.seed_hi);
    var r = vec4<u32>(0u);
    var z = vec4<f32>(0.0);
    for (var j = 0u; j < jp.d; j = j + 1u) {
        var v = 0.0;
        if (jp.mode == PROBE_EXACT) {
            v = select(0.0, 1.0, j == p);
        } else {
            if (j % 4u == 0u) {
                r = philox(vec4<u32>(jp.first_index + i, p, 2u + j / 4u, 0x9B0BEu), key);
                if (jp.mode == PROBE_GAUSSIAN) {
                    z = normal4(r);
                }
            }
            if (jp.mode == PROBE_RADEMACHER) {
                v = select(-1.0, 1.0, (r[j % 4u] & 0x80000000u) != 0u);
            } else {
                v = z[j % 4u];
            }
        }
        acts[jp.eps_off + q * jp.d + j] = v;
    }
}

@compute @workgroup_size(256, 1, 1)
fn div_reduce(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= jp.n) {
        return;
    }
    var s = 0.0;
    for (var p = 0u; p < jp.probes; p = p + 1u) {
        let row = (p * jp.n + i) * jp.d;
        var sp = 0.0;
        for (var j = 0u; j < jp.d; j = j + 1u) {
            sp = sp + acts[jp.eps_off + row + j] * acts[jp.jeps_off + row + j];
        }
        s = s + sp;
    }
    acts[jp.out_off + i * jp.out_rs] = jp.scale * s;
}

@compute @workgroup_size(256, 1, 1)
fn density_finish(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                  @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= jp.n) {
        return;
    }
    let row = jp.y_off + i * jp.ds;
    let delta = acts[row + jp.d];
    if (jp.mode == DENSITY_FORWARD_END) {
        acts[jp.out_off + i] = acts[jp.out_off + i] - delta + jp.shift;
        return;
    }
    var sq = 0.0;
    for (var j = 0u; j < jp.d; j = j + 1u) {
        let v = acts[row + j];
        sq = sq + v * v;
    }
    // log N(theta; 0, I) = -|theta|^2 / 2 - d/2 log(2 pi)
    var lp = -0.5 * sq - 0.9189385332046727 * f32(jp.d);
    if (jp.mode == DENSITY_LOG_PROB) {
        lp = lp + delta + jp.shift;
    }
    acts[jp.out_off + i] = lp;
}
