// #include common
// #include misc
// affine: out[i * d + j] = in[i * in_rs + j] * scale[j] + shift[j]
// (maps z-scored samples back to original units: scale = std, shift = mean).
struct AffineParams {
    n: u32,
    d: u32,
    in_off: u32,
    in_rs: u32,
    out_off: u32,
    scale_off: u32,
    shift_off: u32,
    pad: u32,
}
@group(0) @binding(0) var<uniform> fp: AffineParams;

@compute @workgroup_size(256, 1, 1)
fn affine(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wg, nwg, lid);
    if (e >= fp.n * fp.d) {
        return;
    }
    let i = e / fp.d;
    let j = e % fp.d;
    acts[fp.out_off + e] = acts[fp.in_off + i * fp.in_rs + j] * acts[fp.scale_off + j] + acts[fp.shift_off + j];
}
