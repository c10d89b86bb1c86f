// The parameter block of the Adam kernels (`AdamParams` in src/kernels/adam.rs), shared by
// the scalar (`shaders/adam.wgsl`) and vec4 (`shaders/adam_vec4.wgsl`) modules, which
// pull it in with `// #include adam_params`.
struct AdamParams {
    n: u32,
    off: u32,
    batch_stride: u32,
    decay_len: u32,
    beta1: f32,
    beta2: f32,
    eps: f32,
    weight_decay: f32,
}
@group(0) @binding(0) var<uniform> ap: AdamParams;
