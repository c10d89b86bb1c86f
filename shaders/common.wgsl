// Shared helpers; a shader pulls them in with `// #include common`.
// Counter-based RNG: Philox-4x32-10 (Salmon et al., SC'11; Random123), activations.

fn mulhilo(a: u32, b: u32) -> vec2<u32> {
    // 32x32 -> 64-bit product from 16-bit halves (WGSL has no mul-hi).
    let a_lo = a & 0xffffu;
    let a_hi = a >> 16u;
    let b_lo = b & 0xffffu;
    let b_hi = b >> 16u;
    let ll = a_lo * b_lo;
    let hl = a_hi * b_lo;
    let lh = a_lo * b_hi;
    let hh = a_hi * b_hi;
    let cross = (ll >> 16u) + (hl & 0xffffu) + lh;
    let hi = hh + (hl >> 16u) + (cross >> 16u);
    let lo = (cross << 16u) | (ll & 0xffffu);
    return vec2<u32>(hi, lo);
}

fn philox(ctr: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
    var c = ctr;
    var k = key;
    for (var i = 0u; i < 10u; i = i + 1u) {
        let p0 = mulhilo(0xD2511F53u, c.x);
        let p1 = mulhilo(0xCD9E8D57u, c.z);
        c = vec4<u32>(p1.x ^ c.y ^ k.x, p1.y, p0.x ^ c.w ^ k.y, p0.y);
        k = k + vec2<u32>(0x9E3779B9u, 0xBB67AE85u);
    }
    return c;
}

// u32 -> uniform in (0, 1), never 0 or 1.
fn u01(x: u32) -> f32 {
    return (f32(x >> 8u) + 0.5) * (1.0 / 16777216.0);
}

// Bijective shuffle of [0, n) (n < 2^31): a 4-round Feistel network on 2·half_bits bits
// with Philox round keys, cycle-walked back into [0, n). `epoch` and `stream` select
// independent permutations; nothing is stored or uploaded.
fn permute(pos: u32, n: u32, key: vec2<u32>, epoch: u32, stream: u32) -> u32 {
    var half_bits = 1u;
    while ((1u << (2u * half_bits)) < n) {
        half_bits = half_bits + 1u;
    }
    let mask = (1u << half_bits) - 1u;
    var x = pos;
    loop {
        var l = x >> half_bits;
        var r = x & mask;
        for (var round = 0u; round < 4u; round = round + 1u) {
            let f = philox(vec4<u32>(r, round, epoch, stream), key).x & mask;
            let nl = r;
            r = l ^ f;
            l = nl;
        }
        x = (l << half_bits) | r;
        if (x < n) {
            break;
        }
    }
    return x;
}

// The shuffled row behind position `pos` of an epoch of a C2ST fold: `epoch`'s
// permutation of the fold's n_train training rows (`stream` = the fold's index), the
// rows of its test block [test_start, test_start + test_len) skipped. `c2st_batch` and
// `c2st_lanes_rows` gather their minibatches through it.
fn fold_training_row(pos: u32, n_train: u32, key: vec2<u32>, epoch: u32, stream: u32, test_start: u32, test_len: u32) -> u32 {
    let t = permute(pos, n_train, key, epoch, stream ^ 0xc2c2a5a5u);
    return select(t, t + test_len, t >= test_start);
}

// Four N(0, 1) draws from one Philox block (two Box-Muller pairs).
fn normal4(r: vec4<u32>) -> vec4<f32> {
    let r0 = sqrt(-2.0 * log(u01(r.x)));
    let a0 = 6.283185307179586 * u01(r.y);
    let r1 = sqrt(-2.0 * log(u01(r.z)));
    let a1 = 6.283185307179586 * u01(r.w);
    return vec4<f32>(r0 * cos(a0), r0 * sin(a0), r1 * cos(a1), r1 * sin(a1));
}

// GELU, tanh approximation (PyTorch approximate="tanh").
fn gelu_inner(a: f32) -> f32 {
    return clamp(0.7978845608028654 * (a + 0.044715 * a * a * a), -15.0, 15.0);
}
fn gelu(a: f32) -> f32 {
    return 0.5 * a * (1.0 + tanh(gelu_inner(a)));
}
fn gelu_grad(a: f32) -> f32 {
    let th = tanh(gelu_inner(a));
    return 0.5 * (1.0 + th) + 0.5 * a * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * a * a);
}
fn sigmoid(a: f32) -> f32 {
    return 1.0 / (1.0 + exp(-a));
}

// Activation codes OP_* come from the generated prelude (`Op` in src/kernels/matmul.rs).
// OP_SIGMOID_GRAD takes sigmoid's OUTPUT s: s (1 - s); OP_SIGMOID_DERIV takes the
// pre-activation a: sigmoid'(a).
fn apply_op(op: u32, a: f32) -> f32 {
    switch op {
        case OP_GELU: { return gelu(a); }
        case OP_RELU: { return max(a, 0.0); }
        case OP_SIGMOID: { return sigmoid(a); }
        case OP_GELU_GRAD: { return gelu_grad(a); }
        case OP_RELU_GRAD: { return select(0.0, 1.0, a > 0.0); }
        case OP_SIGMOID_GRAD: { return a * (1.0 - a); }
        case OP_SIGMOID_DERIV: { let s = sigmoid(a); return s * (1.0 - s); }
        default: { return a; }
    }
}

// Linear index for 1-D work spread over a 2-D grid of 256-wide workgroups.
fn flat_id(wg: vec3<u32>, nwg: vec3<u32>, lid: vec3<u32>) -> u32 {
    return (wg.y * nwg.x + wg.x) * 256u + lid.x;
}
