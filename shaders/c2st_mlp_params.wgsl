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
    pad1: f32,
    pad2: f32,
}
