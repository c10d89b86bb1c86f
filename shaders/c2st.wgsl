// #include common
// #include misc
// Kernels of the classifier two-sample test (C2ST, sbibm's recipe; see src/metrics/c2st.rs).
// The MLP itself runs on the shared matmul and Adam kernels; these kernels move rows
// and compute the logistic loss and the accuracy. All offsets are in f32 elements of
// the workspace `acts`; `data` holds the (z-scored) input rows in their original order
// (c2st_shuffle), or the classifier's parameters (c2st_bce, in the training step).
//
// Folds trained together (c2st_batch, c2st_bce, c2st_loss_sum): workgroup z is slot z,
// which trains fold k = stream + acts[slot_fold_off + z] (test block at
// test_start + k * test_len), whose minibatch workspace (xb, yb, z, dz, wsq, and the
// weights at w_off in data) lies fold_stride elements after slot z - 1's, and whose
// loss slots lie loss_stride after slot z - 1's. The shuffled rows x, y are shared.
// One fold alone: z = 0, the offsets as given.
struct C2stParams {
    rows: u32,       // rows handled by this dispatch (batch rows / test rows / all rows)
    d: u32,          // features per row
    n_total: u32,    // rows of A and B together
    n_a: u32,        // rows of A (label 0); rows >= n_a are B (label 1)
    n_train: u32,    // training rows of the fold
    test_start: u32, // first test row of the fold (in the shuffled order)
    test_len: u32,   // test rows of the fold
    batch: u32,      // full minibatch size
    seed_lo: u32,
    seed_hi: u32,
    stream: u32,     // fold index (separates the shuffles of the folds)
    x_off: u32,      // shuffled rows [n_total, d]
    y_off: u32,      // shuffled labels [n_total]
    xb_off: u32,     // minibatch rows [batch, d]
    yb_off: u32,     // minibatch labels [batch]
    z_off: u32,      // logits [rows]
    dz_off: u32,     // dL/dz [rows]
    loss_off: u32,   // per-step loss slots
    wsq_off: u32,    // sum of squared weights (1 value)
    out_off: u32,    // accuracy: count of correct test rows (1 value)
    scale: f32,      // 1 / rows of the minibatch
    alpha: f32,      // L2 penalty
    n_w: u32,        // c2st_bce: weights at data[w_off ..] (sum of squares); 0 = use wsq_off
    w_off: u32,
    fold_stride: u32, // folds trained together: slot z's per-fold offsets + z * fold_stride
    loss_stride: u32, // slot z's loss slots at loss_off + z * loss_stride
    slot_fold_off: u32, // c2st_batch: slot z trains fold stream + acts[slot_fold_off + z]
}
@group(0) @binding(0) var<uniform> cp: C2stParams;


// Shuffles all rows once (KFold(shuffle=True)): acts[x_off + p] = data[perm(p)], label 1
// for rows of B. One thread per shuffled row.
@compute @workgroup_size(256, 1, 1)
fn c2st_shuffle(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
                @builtin(local_invocation_id) lid: vec3<u32>) {
    let p = flat_id(wg, nwg, lid);
    if (p >= cp.n_total) {
        return;
    }
    let src = permute(p, cp.n_total, vec2<u32>(cp.seed_lo, cp.seed_hi), 0xffffffffu, 0xf01du ^ 0xc2c2a5a5u);
    for (var j = 0u; j < cp.d; j = j + 1u) {
        acts[cp.x_off + p * cp.d + j] = data[src * cp.d + j];
    }
    acts[cp.y_off + p] = select(0.0, 1.0, src >= cp.n_a);
}

// Gathers minibatch `st.step_in_epoch` of epoch `st.epoch`: the fold's training rows
// (all rows outside [test_start, test_start + test_len)) in a fresh order each epoch.
// Slot z (workgroup z) trains fold k = acts[slot_fold_off + z] of the group (a fold
// that stops early hands its slot to one still training).
@compute @workgroup_size(256, 1, 1)
fn c2st_batch(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
              @builtin(local_invocation_id) lid: vec3<u32>) {
    let r = flat_id(wg, nwg, lid);
    if (r >= cp.rows) {
        return;
    }
    let fz = wg.z * cp.fold_stride;
    let k = u32(acts[cp.slot_fold_off + wg.z]);
    let row = fold_training_row(st.step_in_epoch * cp.batch + r, cp.n_train, vec2<u32>(cp.seed_lo, cp.seed_hi), st.epoch,
                                cp.stream + k, cp.test_start + k * cp.test_len, cp.test_len);
    for (var j = 0u; j < cp.d; j = j + 1u) {
        acts[cp.xb_off + fz + r * cp.d + j] = acts[cp.x_off + row * cp.d + j];
    }
    acts[cp.yb_off + fz + r] = acts[cp.y_off + row];
}

var<workgroup> red: array<f32, 256>;

fn reduce_sum(lid: u32, v: f32) -> f32 {
    red[lid] = v;
    workgroupBarrier();
    for (var w = 128u; w > 0u; w = w >> 1u) {
        if (lid < w) {
            red[lid] = red[lid] + red[lid + w];
        }
        workgroupBarrier();
    }
    return red[0];
}

// Logistic (binary cross-entropy) loss of one minibatch, from logits, as sklearn's
// MLPClassifier reports it (probabilities clipped to [eps, 1 - eps], eps = f32 epsilon):
//   acts[loss_off + step_in_epoch] = sum_i bce_i + 0.5 alpha sum(W^2)
// (= sklearn's batch loss times the batch size), and dL/dz = (sigmoid(z) - y) / rows.
// sum(W^2) over the n_w weights at data[w_off ..] (the parameters), or acts[wsq_off].
// One workgroup per fold.
@compute @workgroup_size(256, 1, 1)
fn c2st_bce(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let fz = wg.z * cp.fold_stride;
    var s = 0.0;
    for (var e = lid.x; e < cp.rows; e = e + 256u) {
        let z = acts[cp.z_off + fz + e];
        let y = acts[cp.yb_off + fz + e];
        let bce = max(z, 0.0) - z * y + log(1.0 + exp(-abs(z)));
        s = s + clamp(bce, 1.1920929e-7, 15.942385);
        acts[cp.dz_off + fz + e] = (sigmoid(z) - y) * cp.scale;
    }
    let total = reduce_sum(lid.x, s);
    workgroupBarrier();
    var wsq = 0.0;
    if (cp.n_w > 0u) {
        var q = 0.0;
        for (var k = lid.x; k < cp.n_w; k = k + 256u) {
            let w = data[cp.w_off + fz + k];
            q = fma(w, w, q);
        }
        wsq = reduce_sum(lid.x, q);
    } else {
        wsq = acts[cp.wsq_off + fz];
    }
    if (lid.x == 0u) {
        acts[cp.loss_off + wg.z * cp.loss_stride + st.step_in_epoch] = total + 0.5 * cp.alpha * wsq;
    }
}

// Held-out accuracy: counts test rows whose prediction (z > 0, i.e. p > 0.5, sklearn's
// threshold) equals the label; writes the count to acts[out_off]. One workgroup.
@compute @workgroup_size(256, 1, 1)
fn c2st_accuracy(@builtin(local_invocation_id) lid: vec3<u32>) {
    var s = 0.0;
    for (var e = lid.x; e < cp.rows; e = e + 256u) {
        let pred = select(0.0, 1.0, acts[cp.z_off + e] > 0.0);
        let y = acts[cp.y_off + cp.test_start + e];
        s = s + select(0.0, 1.0, pred == y);
    }
    let total = reduce_sum(lid.x, s);
    if (lid.x == 0u) {
        acts[cp.out_off] = total;
    }
}

// Sum of the per-row losses of one minibatch (z_off = per-row losses) plus the L2 term,
// into acts[loss_off + step_in_epoch] (the fused path's counterpart of c2st_bce).
// One workgroup per fold.
@compute @workgroup_size(256, 1, 1)
fn c2st_loss_sum(@builtin(local_invocation_id) lid: vec3<u32>, @builtin(workgroup_id) wg: vec3<u32>) {
    let fz = wg.z * cp.fold_stride;
    var s = 0.0;
    for (var e = lid.x; e < cp.rows; e = e + 256u) {
        s = s + acts[cp.z_off + fz + e];
    }
    let total = reduce_sum(lid.x, s);
    if (lid.x == 0u) {
        acts[cp.loss_off + wg.z * cp.loss_stride + st.step_in_epoch] = total + 0.5 * cp.alpha * acts[cp.wsq_off + fz];
    }
}
