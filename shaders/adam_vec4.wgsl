// #include common
// #include step
// #include adam_params
// The vec4 variant of `shaders/adam.wgsl`: the same update, four parameters per thread
// with 16-byte loads and stores. On a CPU adapter (lavapipe) every storage access is a
// loop over the SIMD lanes, so four components per access cut that loop's count
// fourfold (../shared/notes/lavapipe-kernels.md); on a GPU a 16-byte access per thread
// is as cheap as a 4-byte one. Each component follows the scalar kernel's operations
// in the same order, so both give the same numbers.
// Needs `off` and `batch_stride` multiples of 4 (16-byte aligned vectors; the buffers'
// sizes are multiples of 16 bytes). Thread q updates parameters off + 4q .. off + 4q + 3;
// in the last, partial vector only the components before `off + n` are stored (the
// floats after the range, such as the guard's flag that every thread reads, are not
// written).
@group(0) @binding(1) var<storage, read_write> p: array<vec4<f32>>;
@group(0) @binding(2) var<storage, read> g: array<vec4<f32>>;
@group(0) @binding(3) var<storage, read_write> m: array<vec4<f32>>;
@group(0) @binding(4) var<storage, read_write> v: array<vec4<f32>>;
@group(0) @binding(5) var<uniform> st: Step;

// Updates vector `qi` (parameters k0 .. k0 + 3 of the range, k0 = 4q) with weight decay
// `wd` per component; components at or past n are not stored.
fn update(qi: u32, k0: u32, wd: vec4<f32>) {
    let k = vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u);
    let live = k < vec4<u32>(ap.n);
    let p0 = p[qi];
    let m0 = m[qi];
    let v0 = v[qi];
    let gi = g[qi] + wd * p0;
    let mi = ap.beta1 * m0 + (1.0 - ap.beta1) * gi;
    let vi = ap.beta2 * v0 + (1.0 - ap.beta2) * gi * gi;
    let pi = p0 - st.lr * (mi / st.bias_corr1) / (sqrt(vi / st.bias_corr2) + ap.eps);
    if (all(live)) {
        m[qi] = mi;
        v[qi] = vi;
        p[qi] = pi;
        return;
    }
    for (var j = 0u; j < 4u; j = j + 1u) {
        if (live[j]) {
            m[qi][j] = mi[j];
            v[qi][j] = vi[j];
            p[qi][j] = pi[j];
        }
    }
}

// `adam` four parameters per thread: workgroup z updates the range shifted by
// z * batch_stride; the weight decay applies to the first decay_len parameters (0: all).
@compute @workgroup_size(256, 1, 1)
fn adam_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
             @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_id(wg, nwg, lid);
    let k0 = 4u * q;
    if (k0 >= ap.n) {
        return;
    }
    let k = vec4<u32>(k0) + vec4<u32>(0u, 1u, 2u, 3u);
    let decayed = vec4<bool>(ap.decay_len == 0u) | (k < vec4<u32>(ap.decay_len));
    let wd = select(vec4<f32>(0.0), vec4<f32>(ap.weight_decay), decayed);
    update((ap.off + wg.z * ap.batch_stride) / 4u + q, k0, wd);
}

// `adam_guarded` four parameters per thread: skips the update when `grad_check` flagged
// the step (m[off + n] != 0).
@compute @workgroup_size(256, 1, 1)
fn adam_guarded_vec4(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                     @builtin(local_invocation_id) lid: vec3<u32>) {
    let q = flat_id(wg, nwg, lid);
    let k0 = 4u * q;
    let flag = ap.off + ap.n;
    if (k0 >= ap.n || m[flag >> 2u][flag & 3u] != 0.0) {
        return;
    }
    update(ap.off / 4u + q, k0, vec4<f32>(ap.weight_decay));
}
