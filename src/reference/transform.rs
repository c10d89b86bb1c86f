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
///   `b = max(high − θ, ε w)`: `θ' = log a − log b`, `log |dθ'/dθ| = log w − log a − log b`.
/// * Log above `low`, `a = max(θ − low, LOG_FLOOR)`: `θ' = log a`, `log |dθ'/dθ| = −log a`.
pub fn forward(b: &Bijection, theta: f64) -> (f64, f64) {
    match *b {
        Bijection::Identity => (theta, 0.0),
        Bijection::Logit { low, high } => {
            let w = high - low;
            let a = (theta - low).max(LOGIT_EPS * w);
            let c = (high - theta).max(LOGIT_EPS * w);
            (a.ln() - c.ln(), w.ln() - a.ln() - c.ln())
        }
        Bijection::Log { low } => {
            let a = (theta - low).max(LOG_FLOOR);
            (a.ln(), -a.ln())
        }
    }
}

/// Inverse map of one component: returns `(θ, log |dθ'/dθ|)` for a value `y = θ'`.
///
/// * Identity: `(y, 0)`.
/// * Logit: `θ = low + w σ(y)` (evaluated as `high − w σ(−y)` for `y ≥ 0`, so either
///   bound is approached with full relative precision), `log |dθ'/dθ| =
///   −log w + softplus(y) + softplus(−y)`.
/// * Log: `θ = low + exp(y)`, `log |dθ'/dθ| = −y`.
pub fn inverse(b: &Bijection, y: f64) -> (f64, f64) {
    match *b {
        Bijection::Identity => (y, 0.0),
        Bijection::Logit { low, high } => {
            let w = high - low;
            let s = |v: f64| 1.0 / (1.0 + (-v).exp());
            let theta = if y >= 0.0 { high - w * s(-y) } else { low + w * s(y) };
            let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
            (theta, -w.ln() + softplus(y) + softplus(-y))
        }
        Bijection::Log { low } => (low + y.exp(), -y),
    }
}

/// Forward map of rows `theta [n, d]` with one bijection per component (`bij [d]`):
/// returns `(θ' [n, d], Σ_j log |dθ'_j/dθ_j| [n])`.
///
/// # Panics
/// If `theta.len()` is not a multiple of `bij.len()`.
pub fn forward_rows(bij: &[Bijection], theta: &[f64]) -> (Vec<f64>, Vec<f64>) {
    map_rows(bij, theta, forward)
}

/// Inverse map of rows `y [n, d]`: returns `(θ [n, d], Σ_j log |dθ'_j/dθ_j| [n])`.
///
/// # Panics
/// If `y.len()` is not a multiple of `bij.len()`.
pub fn inverse_rows(bij: &[Bijection], y: &[f64]) -> (Vec<f64>, Vec<f64>) {
    map_rows(bij, y, inverse)
}

fn map_rows(bij: &[Bijection], v: &[f64], f: fn(&Bijection, f64) -> (f64, f64)) -> (Vec<f64>, Vec<f64>) {
    let d = bij.len();
    assert!(d > 0 && v.len().is_multiple_of(d), "rows must be [n, {d}]");
    let mut out = Vec::with_capacity(v.len());
    let mut ld = Vec::with_capacity(v.len() / d);
    for row in v.chunks(d) {
        let mut s = 0.0;
        for (b, &x) in bij.iter().zip(row) {
            let (y, l) = f(b, x);
            out.push(y);
            s += l;
        }
        ld.push(s);
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
