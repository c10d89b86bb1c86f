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

/// Philox counter word (the third) of the uniforms that decide the mirroring in
/// `gather_path` (`shaders/train_step_gather.wgsl`, `REFLECT_CTR`): component `j` of a
/// row uses word `REFLECT_CTR + j / 4`, output `j % 4`.
pub const REFLECT_CTR: u32 = 0x8000;

/// Probability that a component at distance `d ≥ 0` inside its nearer box bound is
/// mirrored across it when training on the reflected density with margin `m` (same
/// units): `w(d) = (1 − sin(π d / 2m)) / 2` for `d < m`, else 0.
///
/// The density trained on is `p(θ)(1 − w(d))` inside the box and `p(R θ) w(d(R θ))`
/// outside, `R` the mirror at the bound. With `w(0) = 1/2` it is continuous at the
/// bound where `p` jumps to 0; where `p` is flat it is a C¹ ramp across the bound,
/// `p · r(d / m)` with `r(u) = (1 + sin(π u / 2)) / 2` for `|u| ≤ 1` (`d` negative
/// outside). Folding it back into the box gives `p` exactly: the mass moved out at
/// distance `d` is the mass missing at `d` inside.
pub fn reflection_weight(d: f64, m: f64) -> f64 {
    if d >= m {
        0.0
    } else {
        0.5 * (1.0 - (std::f64::consts::FRAC_PI_2 * d.max(0.0) / m).sin())
    }
}

/// One component of θ₁ as `gather_path` trains on it with reflection (the CPU mirror of
/// `reflect_at_random` in `shaders/train_step_gather.wgsl`): within
/// `margin · (high − low)` of its nearer bound it is mirrored across that bound when
/// the uniform `u` is below [`reflection_weight`]; else returned unchanged.
pub fn reflect_at_random(theta: f64, low: f64, high: f64, margin: f64, u: f64) -> f64 {
    let m = margin * (high - low);
    let (d_lo, d_hi) = (theta - low, high - theta);
    if u >= reflection_weight(d_lo.min(d_hi), m) {
        theta
    } else if d_lo <= d_hi {
        2.0 * low - theta
    } else {
        2.0 * high - theta
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Folding the reflected density back into the box gives the density trained from:
    /// for θ uniform on [0, 1], the mirrored share of each slice near a bound equals
    /// the share the fold moves back.
    #[test]
    fn the_reflected_density_is_continuous_and_folds_back_to_the_box() {
        let m = 0.2;
        assert!((reflection_weight(0.0, m) - 0.5).abs() < 1e-15);
        assert_eq!(reflection_weight(m, m), 0.0);
        assert!(reflection_weight(0.1, m) > 0.0 && reflection_weight(0.1, m) < 0.5);
        // Uniform θ on [0, 1], margin 0.2 of the width: the density just inside the
        // bound (1 − w(0)) equals the density just outside (w(0)), both 1/2.
        let n = 200_000;
        let (mut inside_edge, mut outside_edge, mut back) = (0usize, 0usize, vec![0usize; 10]);
        for i in 0..n {
            let th = (i as f64 + 0.5) / n as f64;
            let u = ((i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 11) as f64 / (1u64 << 53) as f64;
            let r = reflect_at_random(th, 0.0, 1.0, m, u);
            if (0.0..0.01).contains(&r) {
                inside_edge += 1;
            }
            if (-0.01..0.0).contains(&r) {
                outside_edge += 1;
            }
            let folded = if r < 0.0 { -r } else if r > 1.0 { 2.0 - r } else { r };
            back[(folded * 10.0).min(9.999) as usize] += 1;
        }
        let edge = 0.01 * n as f64;
        assert!((inside_edge as f64 / edge - 0.5).abs() < 0.03, "{inside_edge}");
        assert!((outside_edge as f64 / edge - 0.5).abs() < 0.03, "{outside_edge}");
        assert!(back.iter().all(|&c| c == n / 10), "{back:?}");
    }
}
