// The parameter block of the C2ST network kernels (`MlpParams` in
// src/kernels/c2st.rs), shared by `shaders/c2st_mlp.wgsl` and `shaders/c2st_lanes.wgsl`
// (`// #include c2st_mlp_params`). Offsets in f32 elements.
struct MlpParams {
    rows: u32,        // minibatch rows
    d: u32,           // input features
    h: u32,           // hidden width
    n_params: u32,    // all parameters
    n_weights: u32,   // the weights (W1, W2, w3; L2-penalised), before the biases
    w1: u32,          // first-layer weights [h, d] in the parameters
    w2: u32,          // second-layer weights [h, h]
    w3: u32,          // output weights [h]
    b1: u32,          // biases [h], [h], 1
    b2: u32,
    b3: u32,
    xb_off: u32,      // minibatch rows [rows, d]
    yb_off: u32,      // labels [rows]
    h1_off: u32,      // ReLU outputs [rows, h]
    h2_off: u32,
    d1_off: u32,      // dL/d(first-layer pre-activation) [rows, h]
    d2_off: u32,      // dL/d(second-layer pre-activation) [rows, h]
    dz_off: u32,      // dL/dz [rows]
    bce_off: u32,     // per-row loss [rows]
    wsq_off: u32,     // sum of squared weights
    scale: f32,       // 1 / rows
    fold_stride: u32, // folds trained together: fold z's data lies z * fold_stride further
    // c2st_lanes only (it gathers the minibatch and files the loss): as in C2stParams.
    x_off: u32,       // shuffled rows [n_total, d], shared by the slots
    y_off: u32,       // shuffled labels [n_total]
    n_train: u32,     // training rows of a fold
    test_start: u32,  // first test row of the group's first fold
    test_len: u32,    // test rows of a fold
    batch: u32,       // full minibatch size
    seed_lo: u32,     // Philox key
    seed_hi: u32,
    stream: u32,      // the group's first fold
    slot_fold_off: u32, // the fold each slot trains: acts[slot_fold_off + z]
    loss_off: u32,    // per-step loss slots, slot z's at loss_off + z * loss_stride
    loss_stride: u32,
    alpha: f32,       // L2 penalty
    pad1: f32,
    pad2: f32,
    pad3: f32,
}
