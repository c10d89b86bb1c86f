// #include common
// #include misc
// fm_loss: sum over the chunk of (v - target)^2 into acts[loss_off + slot]
// (slot = step_in_epoch when slot_from_step != 0), and dL/dv = scale (v - target).
struct LossParams {
    count: u32,
    v_off: u32,
    target_off: u32,
    dv_off: u32,
    write_dv: u32,
    loss_off: u32,
    slot: u32,
    slot_from_step: u32,
    scale: f32,
}
@group(0) @binding(0) var<uniform> lp: LossParams;
var<workgroup> partial: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn fm_loss(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var e = lid.x; e < lp.count; e = e + 256u) {
        let d = acts[lp.v_off + e] - acts[lp.target_off + e];
        s = s + d * d;
        if (lp.write_dv != 0u) {
            acts[lp.dv_off + e] = lp.scale * d;
        }
    }
    partial[lid.x] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w >> 1u) {
        if (lid.x < w) {
            partial[lid.x] = partial[lid.x] + partial[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        var slot = lp.slot;
        if (lp.slot_from_step != 0u) {
            slot = st.step_in_epoch;
        }
        acts[lp.loss_off + slot] = partial[0];
    }
}

