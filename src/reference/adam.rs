//! Adam with PyTorch semantics (`torch.optim.Adam`, `amsgrad=False`, `maximize=False`).
//!
//! Source: Kingma & Ba, "Adam: A Method for Stochastic Optimization", ICLR 2015
//! (Algorithm 1), in the form implemented by PyTorch's `_single_tensor_adam`:
//!
//! ```text
//! g   ← g + wd · p                       (L2 weight decay, NOT decoupled AdamW)
//! m   ← β1 m + (1 − β1) g
//! v   ← β2 v + (1 − β2) g²
//! p   ← p − (lr / (1 − β1^step)) · m / (sqrt(v) / sqrt(1 − β2^step) + eps)
//! ```

/// One Adam step on every element, in place. `step` is the 1-based step count (the
/// value *after* incrementing, i.e. 1 on the first call).
///
/// `p`, `g`, `m`, `v` all have the same length (`[n]`); `m` and `v` start at zero.
///
/// # Panics
/// If the lengths differ or `step == 0`.
#[allow(clippy::too_many_arguments)]
pub fn adam_step(
    p: &mut [f64],
    g: &[f64],
    m: &mut [f64],
    v: &mut [f64],
    step: u32,
    lr: f64,
    beta1: f64,
    beta2: f64,
    eps: f64,
    weight_decay: f64,
) {
    let n = p.len();
    assert!(g.len() == n && m.len() == n && v.len() == n, "adam_step: length mismatch");
    assert!(step >= 1, "adam_step: step is 1-based");
    let bc1 = 1.0 - beta1.powi(step as i32);
    let bc2_sqrt = (1.0 - beta2.powi(step as i32)).sqrt();
    let step_size = lr / bc1;
    for i in 0..n {
        let gi = g[i] + weight_decay * p[i];
        m[i] = beta1 * m[i] + (1.0 - beta1) * gi;
        v[i] = beta2 * v[i] + (1.0 - beta2) * gi * gi;
        let denom = v[i].sqrt() / bc2_sqrt + eps;
        p[i] -= step_size * m[i] / denom;
    }
}

/// One step of the exponential moving average of the parameters, in place (the CPU
/// mirror of `shaders/adam_ema.wgsl`): with `d = min(decay, (1 + step) / (10 + step))`,
/// `avg ← avg + (1 − d)(p − avg)` elementwise. `step` is the 1-based optimiser step;
/// the warm-up is that of TensorFlow's `ExponentialMovingAverage(num_updates=step)`.
///
/// `avg` and `p` are `[n]`.
///
/// # Panics
/// If the lengths differ.
pub fn ema_step(avg: &mut [f64], p: &[f64], step: u32, decay: f64) {
    assert_eq!(avg.len(), p.len(), "ema_step: length mismatch");
    let t = step as f64;
    let d = decay.min((1.0 + t) / (10.0 + t));
    for (a, &x) in avg.iter_mut().zip(p) {
        *a += (1.0 - d) * (x - *a);
    }
}
