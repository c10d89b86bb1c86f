// #include common
// #include step
// Adam (Kingma & Ba 2015) with PyTorch semantics over one flat parameter buffer:
//   g += weight_decay * p;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (m / (1 - b1^t)) / (sqrt(v / (1 - b2^t)) + eps)
// over parameters off .. off + n (off = 0 for the whole buffer).
struct AdamParams {
    n: u32,
    off: u32,
    pad: vec2<u32>,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}
@group(0) @binding(0) var<uniform> ap: AdamParams;
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
    let i = ap.off + k;
    let gi = g[i] + ap.weight_decay * p[i];
    let mi = ap.beta1 * m[i] + (1.0 - ap.beta1) * gi;
    let vi = ap.beta2 * v[i] + (1.0 - ap.beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i] - st.lr * (mi / st.bias_corr1) / (sqrt(vi / st.bias_corr2) + ap.eps);
}
