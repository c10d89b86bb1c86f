// Bindings shared by the "misc" kernels (prepended by the host after common.wgsl):
// 0 = per-dispatch parameters (dynamic-offset uniform, declared by each kernel),
// 1 = workspace, 2 = dataset / auxiliary storage, 3 = per-step state.

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

@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read_write> data: array<f32>;
@group(0) @binding(3) var<uniform> st: Step;
