// The per-step state (`StepState` in src/kernels/program.rs), written once per
// submission; a shader pulls it in with `// #include step`.
struct Step {
    step: u32,          // global optimiser step (RNG counter)
    epoch: u32,         // epoch (permutation key)
    step_in_epoch: u32, // batch index within the epoch
    pad0: u32,
    lr: f32,
    bias_corr1: f32,    // 1 - beta1^step
    bias_corr2: f32,    // 1 - beta2^step
    pad1: f32,
}
