// #include common
// #include step
// Exponential moving average of the parameters (Polyak averaging), one step, recorded
// after Adam in the same submission:
//   d = min(decay, (1 + step) / (10 + step))       (the warm-up of TensorFlow's
//                                                    ExponentialMovingAverage(num_updates))
//   avg[i] = avg[i] + (1 - d) * (src[i] - avg[i])   for i in off .. off + n
// `step` is the 1-based optimiser step of `Step`. Bound through the Adam layout: binding
// 1 (Adam's parameters, read-write) is the average, binding 2 (Adam's gradients,
// read-only) the parameters it follows; the moment bindings are not used.
struct EmaParams {
    n: u32,
    off: u32,
    pad0: u32,
    pad1: u32,
    decay: f32,
    pad2: f32,
    pad3: f32,
    pad4: f32,
}
@group(0) @binding(0) var<uniform> ep: EmaParams;
@group(0) @binding(1) var<storage, read_write> avg: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(5) var<uniform> st: Step;

@compute @workgroup_size(256, 1, 1)
fn ema(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
       @builtin(local_invocation_id) lid: vec3<u32>) {
    let k = flat_id(wg, nwg, lid);
    if (k >= ep.n) {
        return;
    }
    let i = ep.off + k;
    let t = f32(st.step);
    let d = min(ep.decay, (1.0 + t) / (10.0 + t));
    let a = avg[i];
    avg[i] = a + (1.0 - d) * (src[i] - a);
}
