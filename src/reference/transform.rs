//! The per-component parameter transforms θ' = T(θ) of [`crate::transform`] in f64,
//! with the same clamping as the `theta_transform` kernel (`shaders/transform.wgsl`).
//!
//! Every function returns the transformed value and `log |dθ'/dθ|`, the term added to
//! a log-density in θ' to get the log-density in θ:
//! `log q_θ(θ) = log q_θ'(T(θ)) + log |dθ'/dθ|`.
//!
//! The library has its own f64 host maps ([`Bijection::forward`] and
//! [`Bijection::inverse`], used by `log_prob`); this mirror is kept as a separate
//! implementation on purpose, so the tests compare the kernel *and* the host maps with
//! code that a change to the library does not touch.

use crate::transform::Bijection;

/// Relative clamp of the logit transform: `θ − low` and `high − θ` are taken as at least
/// `LOGIT_EPS · (high − low)`, so points on (or rounded onto) a bound map to
/// `±log(1/ε) ≈ ±13.8` instead of ±∞.
pub const LOGIT_EPS: f64 = 1e-6;

/// Smallest positive normal f32: the floor of `θ − low` in the log transform.
pub const LOG_FLOOR: f64 = f32::MIN_POSITIVE as f64;

/// Forward map of one component: returns `(θ', log |dθ'/dθ|)`.
///
/// * Identity: `(θ, 0)`.
/// * Logit on `(low, high)`, `w = high − low`, `a = max(θ − low, ε w)`,
///   `c = max(high − θ, ε w)`: `θ' = log(a / c)`, `log |dθ'/dθ| = log(w / (a c))`.
/// * Log above `low`, `a = max(θ − low, LOG_FLOOR)`: `θ' = log a`, `log |dθ'/dθ| = log(1 / a)`.
///
/// (Written in another algebraic form than the library's host map on purpose.)
pub fn forward(b: &Bijection, theta: f64) -> (f64, f64) {
    match *b {
        Bijection::Identity => (theta, 0.0),
        Bijection::Logit { low, high } => {
            let w = high - low;
            let a = (theta - low).max(LOGIT_EPS * w);
            let c = (high - theta).max(LOGIT_EPS * w);
            ((a / c).ln(), (w / (a * c)).ln())
        }
        Bijection::Log { low } => {
            let a = (theta - low).max(LOG_FLOOR);
            (a.ln(), (1.0 / a).ln())
        }
    }
}

/// Inverse map of one component: returns `(θ, log |dθ'/dθ|)` for a value `y = θ'`.
///
/// * Identity: `(y, 0)`.
/// * Logit: `θ = low + w eʸ / (1 + eʸ)` for `y < 0`, `θ = high − w / (1 + eʸ)` for
///   `y ≥ 0` (each bound approached with full relative precision),
///   `log |dθ'/dθ| = −log w + |y| + 2 log(1 + e^−|y|)` (= `−log(w σ(y) σ(−y))`).
/// * Log: `θ = low + eʸ`, `log |dθ'/dθ| = −y`.
pub fn inverse(b: &Bijection, y: f64) -> (f64, f64) {
    match *b {
        Bijection::Identity => (y, 0.0),
        Bijection::Logit { low, high } => {
            let w = high - low;
            let theta = if y < 0.0 {
                let e = y.exp();
                low + w * e / (1.0 + e)
            } else {
                high - w / (1.0 + y.exp())
            };
            (theta, -w.ln() + y.abs() + 2.0 * (-y.abs()).exp().ln_1p())
        }
        Bijection::Log { low } => (low + y.exp(), -y),
    }
}

/// Forward map of rows `theta [n, d]` with one bijection per component (`bij [d]`):
/// returns `(θ' [n, d], Σ_j log |dθ'_j/dθ_j| [n])` (the sum taken left to right).
///
/// # Panics
/// If `theta.len()` is not a multiple of `bij.len()`.
pub fn forward_rows(bij: &[Bijection], theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    rows_by_index(bij, theta, forward)
}

/// Inverse map of rows `y [n, d]`: returns `(θ [n, d], Σ_j log |dθ'_j/dθ_j| [n])`.
///
/// # Panics
/// If `y.len()` is not a multiple of `bij.len()`.
pub fn inverse_rows(bij: &[Bijection], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    rows_by_index(bij, y, inverse)
}

/// Element `(i, j)` of `v [n, d]` through `f(bij[j], ·)`, with the per-row sums.
fn rows_by_index(bij: &[Bijection], v: &[f64], f: fn(&Bijection, f64) -> (f64, f64)) -> (Vec<f64>, Vec<f64>) {
    let d = bij.len();
    assert!(d > 0 && v.len().is_multiple_of(d), "rows must be [n, {d}]");
    let n = v.len() / d;
    let mut out = vec![0.0; v.len()];
    let mut ld = vec![0.0; n];
    for i in 0..n {
        for j in 0..d {
            let (y, l) = f(&bij[j], v[i * d + j]);
            out[i * d + j] = y;
            ld[i] += l;
        }
    }
    (out, ld)
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
