// #include common
// #include misc
// column_stats: one workgroup per column of data[off + r * cols + c], r < rows:
// mean and sample std (ddof = 1; std < 1e-12 or rows < 2 -> 1) into
// acts[stats_off + c] and acts[stats_off + cols + c]. Two passes for accuracy.
struct StatsParams {
    rows: u32,
    cols: u32,
    off: u32,
    stats_off: u32,
}
@group(0) @binding(0) var<uniform> sp: StatsParams;
var<workgroup> red: array<f32, 256>;

@compute @workgroup_size(256, 1, 1)
fn column_stats(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
    let c = wg.x;
    var s = 0.0;
    for (var r = lid.x; r < sp.rows; r = r + 256u) {
        s = s + data[sp.off + r * sp.cols + c];
    }
    red[lid.x] = s;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w >> 1u) {
        if (lid.x < w) {
            red[lid.x] = red[lid.x] + red[lid.x + w];
        }
        workgroupBarrier();
    }
    let mean = red[0] / f32(sp.rows);
    workgroupBarrier();
    var q = 0.0;
    for (var r = lid.x; r < sp.rows; r = r + 256u) {
        let d = data[sp.off + r * sp.cols + c] - mean;
        q = q + d * d;
    }
    red[lid.x] = q;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w >> 1u) {
        if (lid.x < w) {
            red[lid.x] = red[lid.x] + red[lid.x + w];
        }
        workgroupBarrier();
    }
    if (lid.x == 0u) {
        var sd = 1.0;
        if (sp.rows > 1u) {
            sd = sqrt(red[0] / f32(sp.rows - 1u));
        }
        if (!(sd > 1e-12)) {
            sd = 1.0;
        }
        acts[sp.stats_off + c] = mean;
        acts[sp.stats_off + sp.cols + c] = sd;
    }
}

// zscore: data[off + r * cols + c] = (data - mean_c) / std_c, in place.
@compute @workgroup_size(256, 1, 1)
fn zscore(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
          @builtin(local_invocation_id) lid: vec3<u32>) {
    let e = flat_id(wg, nwg, lid);
    if (e >= sp.rows * sp.cols) {
        return;
    }
    let c = e % sp.cols;
    data[sp.off + e] = (data[sp.off + e] - acts[sp.stats_off + c]) / acts[sp.stats_off + sp.cols + c];
}
