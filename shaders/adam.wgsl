// #include common
// #include step
// #include adam_params
// Adam (Kingma & Ba 2015) with PyTorch semantics over one flat parameter buffer:
//   g += weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// over parameters off .. off + n (off = 0 for the whole buffer).
// `adam` only: weight decay applies to the first decay_len of them (0: all), and
// workgroup z updates the range shifted by z * batch_stride (a batch of independent
// parameter sets in one dispatch; z = 0 unbatched). The guarded pair needs both 0.
@group(0) @binding(1) var<storage, read_write> p: array<f32>;
@group(0) @binding(2) var<storage, read> g: array<f32>;
@group(0) @binding(3) var<storage, read_write> m: array<f32>;
@group(0) @binding(4) var<storage, read_write> v: array<f32>;
@group(0) @binding(5) var<uniform> st: Step;

@compute @workgroup_size(256, 1, 1)
fn adam(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_id(wg, nwg, lid);
    if (k >= ap.n) {
        return;
    }
    let i = ap.off + wg.z * ap.batch_stride + k;
    let wd = select(ap.weight_decay, 0.0, ap.decay_len != 0u && k >= ap.decay_len);
    let gi = g[i] + wd * p[i];
    let mi = ap.beta1 * m[i] + (1.0 - ap.beta1) * gi;
    let vi = ap.beta2 * v[i] + (1.0 - ap.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - st.lr * (mi / st.bias_corr1) / (sqrt(vi / st.bias_corr2) + ap.eps);
}

// Non-finite guard of the training step (two entry points over the same bindings; the
// moments buffer `m` then holds two more floats after the `off + n` parameters):
//   m[off + n]     the step's flag: 1.0 when any g + weight_decay * p is NaN or ±inf;
//   m[off + n + 1] the count of flagged steps in the epoch (reset at step_in_epoch 0).
// `grad_check` (one workgroup) writes them; `adam_guarded` is `adam` that leaves p, m
// and v untouched when the step's flag is set. No atomics: the count is bitwise the
// same on every run.
var<workgroup> bad_partial: array<u32, 256>;

fn non_finite(x: f32) -> bool {
    // Exponent bits all ones: ±inf or NaN (a bit test, safe from fast-math folding).
    return (bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u;
}

@compute @workgroup_size(256, 1, 1)
fn grad_check(@builtin(local_invocation_id) lid: vec3<u32>) {
    var bad = 0u;
    for (var k = lid.x; k < ap.n; k = k + 256u) {
        let i = ap.off + k;
        if (non_finite(g[i] + ap.weight_decay * p[i]) || non_finite(g[i])) {
            bad = 1u;
        }
    }
    bad_partial[lid.x] = bad;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w >> 1u) {
        if (lid.x < w) {
            bad_partial[lid.x] = bad_partial[lid.x] | bad_partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        let flag = f32(bad_partial[0]);
        let at = ap.off + ap.n;
        m[at] = flag;
        if (st.step_in_epoch == 0u) {
            m[at + 1u] = flag;
        } else {
            m[at + 1u] = m[at + 1u] + flag;
        }
    }
}

@compute @workgroup_size(256, 1, 1)
fn adam_guarded(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_id(wg, nwg, lid);
    if (k >= ap.n || m[ap.off + ap.n] != 0.0) {
        return;
    }
    let i = ap.off + k;
    let gi = g[i] + ap.weight_decay * p[i];
    let mi = ap.beta1 * m[i] + (1.0 - ap.beta1) * gi;
    let vi = ap.beta2 * v[i] + (1.0 - ap.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - st.lr * (mi / st.bias_corr1) / (sqrt(vi / st.bias_corr2) + ap.eps);
}
