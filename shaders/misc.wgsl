// Bindings shared by the "misc" kernels (a shader pulls them in with `// #include misc`):
// 0 = per-dispatch parameters (dynamic-offset uniform, declared by each kernel),
// 1 = workspace, 2 = dataset / auxiliary storage, 3 = per-step state.

// #include step

@group(0) @binding(1) var<storage, read_write> acts: array<f32>;
@group(0) @binding(2) var<storage, read_write> data: array<f32>;
@group(0) @binding(3) var<uniform> st: Step;
