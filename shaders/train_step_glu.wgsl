// #include common
// #include misc
// glu_backward: for h' = h + y ⊙ g:  dy = dh ⊙ g,  dgate_pre = dh ⊙ y ⊙ g (1 - g).
struct GluParams {
    count: u32,
    dh_off: u32,
    y_off: u32,
    g_off: u32,
    dy_off: u32,
    dgp_off: u32,
}
@group(0) @binding(0) var<uniform> gl: GluParams;

@compute @workgroup_size(256, 1, 1)
fn glu_backward(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wg, nwg, lid);
    if (e >= gl.count) {
        return;
    }
    let dh = acts[gl.dh_off + e];
    let g = acts[gl.g_off + e];
    acts[gl.dy_off + e] = dh * g;
    acts[gl.dgp_off + e] = dh * acts[gl.y_off + e] * g * (1.0 - g);
}

