//! The per-component parameter transforms θ' = T(θ) of [`crate::transform`] in f64,
//! with the same clamping as the `theta_transform` kernel (`shaders/transform.wgsl`).
//!
//! The library needs these maps in f64 itself (`log_prob` maps θ and its Jacobian on
//! the host), so the mirror of the kernel family *is* the library's host map
//! ([`Bijection::forward`], [`Bijection::inverse`]): this module names it by the family
//! name, so the tests find every kernel's CPU mirror under `reference`, without a second
//! copy of the formulas. Dependencies point one way: reference → transform.
//!
//! Every function returns the transformed value and `log |dθ'/dθ|`, the term added to
//! a log-density in θ' to get the log-density in θ:
//! `log q_θ(θ) = log q_θ'(T(θ)) + log |dθ'/dθ|`.

pub use crate::transform::{Bijection, ThetaTransform, LOGIT_EPS, LOG_FLOOR};

/// Forward map of one component: returns `(θ', log |dθ'/dθ|)` ([`Bijection::forward`]).
pub fn forward(b: &Bijection, theta: f64) -> (f64, f64) {
    b.forward(theta)
}

/// Inverse map of one component: returns `(θ, log |dθ'/dθ|)` for a value `y = θ'`
/// ([`Bijection::inverse`]).
pub fn inverse(b: &Bijection, y: f64) -> (f64, f64) {
    b.inverse(y)
}

/// Forward map of rows `theta [n, d]` with one bijection per component (`bij [d]`):
/// returns `(θ' [n, d], Σ_j log |dθ'_j/dθ_j| [n])`.
///
/// # Panics
/// If `theta.len()` is not a multiple of `bij.len()`.
pub fn forward_rows(bij: &[Bijection], theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    ThetaTransform::new(bij.to_vec()).forward_rows(theta, bij.len())
}

/// Inverse map of rows `y [n, d]`: returns `(θ [n, d], Σ_j log |dθ'_j/dθ_j| [n])`.
///
/// # Panics
/// If `y.len()` is not a multiple of `bij.len()`.
pub fn inverse_rows(bij: &[Bijection], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    ThetaTransform::new(bij.to_vec()).inverse_rows(y, bij.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_undoes_forward_and_log_dets_agree() {
        let bs = [Bijection::Identity, Bijection::Logit { low: -2.0, high: 3.0 }, Bijection::Log { low: 0.5 }];
        for b in &bs {
            for &u in &[0.001, 0.2, 0.5, 0.77, 0.999] {
                let theta = match *b {
                    Bijection::Logit { low, high } => low + u * (high - low),
                    Bijection::Log { low } => low + u * 10.0,
                    Bijection::Identity => u - 0.3,
                };
                let (y, ld) = forward(b, theta);
                let (back, ld2) = inverse(b, y);
                assert!((back - theta).abs() < 1e-12, "{b:?}: {theta} -> {y} -> {back}");
                assert!((ld - ld2).abs() < 1e-9, "{b:?}: log-dets {ld} vs {ld2}");
                // log |dθ'/dθ| against a central difference.
                let h = 1e-6;
                let fd = (forward(b, theta + h).0 - forward(b, theta - h).0) / (2.0 * h);
                assert!((fd.abs().ln() - ld).abs() < 1e-6, "{b:?}: fd {fd} vs exp(ld) {}", ld.exp());
            }
        }
    }

    #[test]
    fn bounds_are_clamped() {
        let b = Bijection::Logit { low: 0.0, high: 2.0 };
        let (y, _) = forward(&b, 2.0);
        assert!((y + LOGIT_EPS.ln()).abs() < 1e-9, "{y}");
        assert!(forward(&b, 0.0).0.is_finite() && forward(&Bijection::Log { low: 0.0 }, 0.0).0.is_finite());
        assert_eq!(inverse(&b, 800.0).0, 2.0);
        assert_eq!(inverse(&b, -800.0).0, 0.0);
    }
}
