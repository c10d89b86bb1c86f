//! f64 CPU reference of fmpe's numerics, used by the test suite to check every GPU kernel.
//!
//! Everything here is plain, unoptimised `f64` code that follows the definitions
//! literally, so that a GPU result (computed in f32 in WGSL) can be compared against it.
//! All arrays are row-major; shapes are written `[rows, cols]`.
//!
//! * [`net`]: forward pass, loss + reverse-mode gradient, forward-mode JVP and exact
//!   divergence of the vector-field network described in [`crate::net::config`].
//! * [`path`]: time prior and the optimal-transport conditional probability path of
//!   FMPE (Dax et al. 2023, eq. 9; Lipman et al. 2023, eqs. 20–23).
//! * [`adam`]: one PyTorch-semantics Adam step.
//! * [`c2st`]: one minibatch of the C2ST classifier: forward pass, logistic loss,
//!   deltas and gradients.
//! * [`philox`]: the Philox-4x32-10 counter-based generator, uniforms and Box–Muller.
//! * [`ode`]: fixed-step RK4 and per-row adaptive Dormand–Prince 5(4).
//! * [`transform`]: the per-component parameter transforms (logit, log) and their
//!   log-Jacobians.
//! * [`train_step`]: the flow-matching loss kernel and the GLU gate's backward.
//! * [`zscore_stats`]: per-column mean / standard deviation used for standardisation.

// Index loops mirror the formulas (and the WGSL kernels) more directly than iterators.
#![allow(clippy::needless_range_loop)]

pub mod adam;
pub mod c2st;
pub mod net;
pub mod ode;
pub mod path;
pub mod philox;
pub mod train_step;
pub mod transform;

/// Per-column mean and sample standard deviation of `data [rows, cols]`.
///
/// Returns `(mean [cols], std [cols])`. The standard deviation uses Bessel's correction
/// (`ddof = 1`, like `torch.std`). A column whose std is zero (or not finite, or
/// `rows < 2`) gets std `1.0`, so that z-scoring `(x - mean) / std` is always defined.
///
/// # Panics
/// If `data.len() != rows * cols`.
pub fn zscore_stats(data: &[f64], rows: usize, cols: usize) -> (Vec<f64>, Vec<f64>) {
    assert_eq!(data.len(), rows * cols, "zscore_stats: data must be [rows, cols]");
    let mut mean = vec![0.0; cols];
    let mut std = vec![1.0; cols];
    if rows == 0 {
        return (mean, std);
    }
    for r in 0..rows {
        for c in 0..cols {
            mean[c] += data[r * cols + c];
        }
    }
    for m in &mut mean {
        *m /= rows as f64;
    }
    if rows >= 2 {
        for c in 0..cols {
            let ss: f64 = (0..rows).map(|r| (data[r * cols + c] - mean[c]).powi(2)).sum();
            let s = (ss / (rows - 1) as f64).sqrt();
            std[c] = if s > 0.0 && s.is_finite() { s } else { 1.0 };
        }
    }
    (mean, std)
}

/// Widens a parameter (or any) buffer from `f32` (the GPU's storage type, e.g. the
/// output of [`crate::net::init_params`]) to `f64`.
pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zscore_edge_cases() {
        let (m, s) = zscore_stats(&[3.0, -1.0], 1, 2);
        assert_eq!((m, s), (vec![3.0, -1.0], vec![1.0, 1.0]));
        let (m, s) = zscore_stats(&[], 0, 2);
        assert_eq!((m, s), (vec![0.0, 0.0], vec![1.0, 1.0]));
        let (m, s) = zscore_stats(&[1.0, 3.0], 2, 1);
        assert_eq!(m, vec![2.0]);
        assert!((s[0] - 2f64.sqrt()).abs() < 1e-15);
    }
}
