//! Time prior and optimal-transport conditional path of FMPE.
//!
//! Source: Dax et al., "Flow Matching for Scalable Simulation-Based Inference",
//! NeurIPS 2023, Sec. 3 (eq. 9, and the power-law time prior `p(t) ∝ t^α` proposed
//! there); Lipman et al., "Flow Matching for Generative Modeling", ICLR 2023,
//! eqs. 20–23 (OT path with `σ_min`).
//!
//! Convention: `t = 0` is the base distribution `θ_0 ~ N(0, I)`, `t = 1` is the data
//! (posterior) `θ_1`.

/// Samples the time prior by inversion: `t = u^(1/(1+α))` for `u ~ U(0,1)`, which has
/// density `p(t) = (1+α) t^α` on `[0, 1]` (Dax et al. 2023; `α = 0` is uniform).
pub fn time_from_uniform(u: f64, alpha: f64) -> f64 {
    u.powf(1.0 / (1.0 + alpha))
}

/// The OT conditional path (Dax et al. 2023 eq. 9 / Lipman et al. 2023 eqs. 20–23):
///
/// ```text
/// ψ_t(θ_0) = (1 − (1 − σ_min) t) θ_0 + t θ_1,        target u_t = θ_1 − (1 − σ_min) θ_0
/// ```
///
/// * `theta0 [B, d]`: base samples, `theta1 [B, d]`: data samples, `t [B]`.
///
/// Returns `(psi [B, d], target [B, d])`.
///
/// # Panics
/// If the shapes disagree.
pub fn ot_path(
    theta0: &[f64],
    theta1: &[f64],
    t: &[f64],
    d: usize,
    sigma_min: f64,
) -> (Vec<f64>, Vec<f64>) {
    let b = t.len();
    assert_eq!(theta0.len(), b * d, "ot_path: theta0 must be [B, d]");
    assert_eq!(theta1.len(), b * d, "ot_path: theta1 must be [B, d]");
    let s = 1.0 - sigma_min;
    let mut psi = vec![0.0; b * d];
    let mut target = vec![0.0; b * d];
    for r in 0..b {
        for j in 0..d {
            let i = r * d + j;
            psi[i] = (1.0 - s * t[r]) * theta0[i] + t[r] * theta1[i];
            target[i] = theta1[i] - s * theta0[i];
        }
    }
    (psi, target)
}
