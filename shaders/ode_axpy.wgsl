// #include common
// #include misc
// ode_axpy: one Runge-Kutta combination per row i (each row has its own t_i and h_i).
//   AXPY_STAGE (stage input):  tin[i] = [t_i + c h_i,  y_i + h_i sum_s coef_s k_s,i]   (first d_net comps)
//   AXPY_UPDATE (update):   y_i   += h_i sum_s coef_s k_s,i;   t_i += h_i            (all d comps)
// k_s lives at k_off + s * k_stride + i * d.
struct AxpyParams {
    n: u32,
    d: u32,
    d_net: u32,
    nk: u32,
    y_off: u32,
    t_off: u32,
    h_off: u32,
    k_off: u32,
    k_stride: u32,
    out_off: u32,
    out_rs: u32,
    mode: u32,
    c: f32,
    pad0: f32,
    pad1: f32,
    pad2: f32,
    coef: array<vec4<f32>, 2>,
}
@group(0) @binding(0) var<uniform> xp: AxpyParams;

fn coef(s: u32) -> f32 {
    return xp.coef[s / 4u][s % 4u];
}

@compute @workgroup_size(256, 1, 1)
fn ode_axpy(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
            @builtin(local_invocation_id) lid: vec3<u32>) {
    let i = flat_id(wg, nwg, lid);
    if (i >= xp.n) {
        return;
    }
    let h = acts[xp.h_off + i];
    let t = acts[xp.t_off + i];
    if (xp.mode == AXPY_STAGE) {
        acts[xp.out_off + i * xp.out_rs] = t + xp.c * h;
        for (var j = 0u; j < xp.d_net; j = j + 1u) {
            var s = 0.0;
            for (var q = 0u; q < xp.nk; q = q + 1u) {
                s = s + coef(q) * acts[xp.k_off + q * xp.k_stride + i * xp.d + j];
            }
            acts[xp.out_off + i * xp.out_rs + 1u + j] = acts[xp.y_off + i * xp.d + j] + h * s;
        }
    } else {
        for (var j = 0u; j < xp.d; j = j + 1u) {
            var s = 0.0;
            for (var q = 0u; q < xp.nk; q = q + 1u) {
                s = s + coef(q) * acts[xp.k_off + q * xp.k_stride + i * xp.d + j];
            }
            acts[xp.y_off + i * xp.d + j] = acts[xp.y_off + i * xp.d + j] + h * s;
        }
        acts[xp.t_off + i] = t + h;
    }
}
