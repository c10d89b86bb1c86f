// #include common
// #include misc
// ode_init: start n ODE states at time t0 with step h0.
//   noise != 0: y[i, j] ~ N(0, 1) for j < d_noise (Philox keyed by seed, counter =
//               (first_index + i, round, 2 + j/4, 0x0DE)), the rest of the row set to 0
//   noise == 0: y is left as uploaded (log_prob starts from given theta)
// Per-row bookkeeping: t = t0, h = h0, accepted = rejected = 0, active = 1.
struct InitParams {
    n: u32,
    d: u32,
    d_noise: u32,
    noise: u32,
    y_off: u32,
    t_off: u32,
    h_off: u32,
    stats_off: u32,
    active_off: u32,
    first_index: u32,
    round: u32,
    seed_lo: u32,
    seed_hi: u32,
    pad0: u32,
    t0: f32,
    h0: f32,
}
@group(0) @binding(0) var<uniform> ip: InitParams;

@compute @workgroup_size(256, 1, 1)
fn ode_init(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= ip.n) {
        return;
    }
    if (ip.noise != 0u) {
        let key = vec2<u32>(ip.seed_lo, ip.seed_hi);
        var z = vec4<f32>(0.0);
        for (var j = 0u; j < ip.d; j = j + 1u) {
            if (j % 4u == 0u) {
                z = normal4(philox(vec4<u32>(ip.first_index + i, ip.round, 2u + j / 4u, 0x0DEu), key));
            }
            var v = 0.0;
            if (j < ip.d_noise) {
                v = z[j % 4u];
            }
            acts[ip.y_off + i * ip.d + j] = v;
        }
    }
    acts[ip.t_off + i] = ip.t0;
    acts[ip.h_off + i] = ip.h0;
    acts[ip.stats_off + 2u * i] = 0.0;
    acts[ip.stats_off + 2u * i + 1u] = 0.0;
    acts[ip.active_off + i] = 1.0;
}
