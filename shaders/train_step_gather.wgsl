// #include common
// #include misc
// gather_path: rows of one minibatch (or validation chunk) on the OT path.
//   t = u^(1/(1+alpha));  theta0 ~ N(0, I)
//   psi_t  = (1 - (1 - sigma_min) t) theta0 + t theta1
//   target = theta1 - (1 - sigma_min) theta0          (Dax et al. 2023, eq. 9/10)
// Training rows are drawn through a per-epoch random permutation of [0, n_train)
// (cycle-walking Feistel network keyed by (seed, epoch)); validation rows are read in
// order from row_offset with noise fixed across epochs.
// Training on the reflected density (reflect_margin > 0; Trainer, TrainConfig::reflect):
// a theta1 component within m = reflect_margin (hi - lo) of its nearer bound, at
// distance d inside it, is mirrored across that bound with probability
// w(d) = (1 - sin(pi d / 2m)) / 2 (one uniform per component, Philox counter word
// REFLECT_CTR + j/4). The density trained on is then continuous at the bounds, and
// folding it back into the box (BoxPrior::reflect) gives the data's density exactly.
// Bounds [dim_theta, 2] (low, high; z-scored like theta1) are in the workspace at
// bounds_off.
// (t, psi_t) go to the main input row (concat) or the gate context (glu); the x row
// goes to x_dst_off with row stride x_dst_rs (the input's x columns, or the input of
// the x-embedding network).
struct GatherParams {
    rows: u32,
    dim_theta: u32,
    dim_x: u32,
    glu: u32,
    n_train: u32,
    row_offset: u32,
    validation: u32,
    seed_lo: u32,
    seed_hi: u32,
    theta_off: u32,
    x_off: u32,
    in_off: u32,
    in_rs: u32,
    ctx_off: u32,
    target_off: u32,
    x_dst_off: u32,
    x_dst_rs: u32,
    alpha: f32,
    sigma_min: f32,
    bounds_off: u32,
    reflect_margin: f32,
}
@group(0) @binding(0) var<uniform> gp: GatherParams;


const REFLECT_CTR: u32 = 0x8000u;

fn reflect_at_random(theta: f32, lo: f32, hi: f32, margin: f32, u: f32) -> f32 {
    let m = margin * (hi - lo);
    let d_lo = theta - lo;
    let d_hi = hi - theta;
    let d = max(min(d_lo, d_hi), 0.0);
    if (d >= m || u >= 0.5 * (1.0 - sin(1.5707963 * d / m))) {
        return theta;
    }
    return select(2.0 * hi - theta, 2.0 * lo - theta, d_lo <= d_hi);
}

@compute @workgroup_size(256, 1, 1)
fn gather_path(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
               @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wg, nwg, lid);
    if (r >= gp.rows) {
        return;
    }
    let key = vec2<u32>(gp.seed_lo, gp.seed_hi);
    var idx: u32;
    var ctr_row: u32;
    var ctr_step: u32;
    var stream: u32;
    if (gp.validation != 0u) {
        idx = gp.row_offset + r;
        ctr_row = idx;
        ctr_step = 0u;
        stream = 1u;
    } else {
        let pos = st.step_in_epoch * gp.rows + r;
        idx = permute(pos, gp.n_train, key, st.epoch, 0x7e3a91c5u);
        ctr_row = pos;
        ctr_step = st.step;
        stream = 0u;
    }
    let t = pow(u01(philox(vec4<u32>(ctr_row, ctr_step, 0u, stream), key).x), 1.0 / (1.0 + gp.alpha));
    let dt = gp.dim_theta;
    var in_col = 0u;
    if (gp.glu != 0u) {
        acts[gp.ctx_off + r * (dt + 1u)] = t;
    } else {
        acts[gp.in_off + r * gp.in_rs] = t;
        in_col = 1u;
    }
    var z = vec4<f32>(0.0);
    var ur = vec4<u32>(0u);
    for (var j = 0u; j < dt; j = j + 1u) {
        if (j % 4u == 0u) {
            z = normal4(philox(vec4<u32>(ctr_row, ctr_step, 1u + j / 4u, stream), key));
            if (gp.reflect_margin > 0.0) {
                ur = philox(vec4<u32>(ctr_row, ctr_step, REFLECT_CTR + j / 4u, stream), key);
            }
        }
        let theta0 = z[j % 4u];
        var theta1 = data[gp.theta_off + idx * dt + j];
        if (gp.reflect_margin > 0.0) {
            theta1 = reflect_at_random(theta1, acts[gp.bounds_off + 2u * j], acts[gp.bounds_off + 2u * j + 1u],
                                       gp.reflect_margin, u01(ur[j % 4u]));
        }
        let psi = (1.0 - (1.0 - gp.sigma_min) * t) * theta0 + t * theta1;
        acts[gp.target_off + r * dt + j] = theta1 - (1.0 - gp.sigma_min) * theta0;
        if (gp.glu != 0u) {
            acts[gp.ctx_off + r * (dt + 1u) + 1u + j] = psi;
        } else {
            acts[gp.in_off + r * gp.in_rs + in_col + j] = psi;
        }
    }
    for (var j = 0u; j < gp.dim_x; j = j + 1u) {
        acts[gp.x_dst_off + r * gp.x_dst_rs + j] = data[gp.x_off + idx * gp.dim_x + j];
    }
}

