//! bernoulli_glm and bernoulli_glm_raw (sbibm 1.1.0).

use rand::Rng;
use std::sync::OnceLock;

use super::constants;
use crate::prior::inverse_spd;
use super::{Prior, Task, TaskRng};

const T: usize = 100;
const D: usize = 10;

/// sbibm's design matrix X `[100, 10]` row-major: X[t, 0] = 1 (offset),
/// X[t, 1 + j] = I_{t−j} (t ≥ j, else 0), j = 0..8, with the frozen stimulus
/// I = `np.random.RandomState(42).randn(100)` (float32).
pub fn bernoulli_glm_design_matrix() -> &'static [f64] {
    &constants::bernoulli_design_matrix().data
}

fn prior_covariance() -> &'static Vec<f64> {
    static CELL: OnceLock<Vec<f64>> = OnceLock::new();
    CELL.get_or_init(|| {
        let b = &constants::bernoulli_prior_precision().data;
        inverse_spd(b, D).expect("bernoulli_glm prior precision is not positive definite")
    })
}

/// sbibm `bernoulli_glm` (x = sufficient statistics Xᵀy ∈ R¹⁰) or `bernoulli_glm_raw`
/// (x = y ∈ {0, 1}¹⁰⁰).
///
/// θ ∈ R¹⁰ (θ1 = offset, θ2..θ10 = filter taps), prior N(0, B⁻¹) with sbibm's precision
/// B (smoothness prior on second differences; embedded, float32 values, inverted in f64).
/// Simulator: ψ = Xθ, y_t ~ Bernoulli(σ(ψ_t)), t = 0..99 (X: [`bernoulli_glm_design_matrix`]).
/// Both variants draw y identically, so with the same generator
/// `bernoulli_glm`'s x equals Xᵀ times `bernoulli_glm_raw`'s x.
pub struct BernoulliGlm {
    raw: bool,
    prior: Prior,
}

impl BernoulliGlm {
    /// `bernoulli_glm` (`raw = false`) or `bernoulli_glm_raw` (`raw = true`).
    pub fn new(raw: bool) -> Self {
        let _ = bernoulli_glm_design_matrix();
        let _ = constants::bernoulli_stimulus();
        BernoulliGlm { raw, prior: Prior::Gaussian { mean: vec![0.0; D], cov: prior_covariance().clone() } }
    }
}

impl Task for BernoulliGlm {
    fn name(&self) -> &'static str {
        if self.raw {
            "bernoulli_glm_raw"
        } else {
            "bernoulli_glm"
        }
    }
    fn dim_theta(&self) -> usize {
        D
    }
    fn dim_x(&self) -> usize {
        if self.raw {
            T
        } else {
            D
        }
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        let xm = bernoulli_glm_design_matrix();
        let mut y = [0.0f64; T];
        for (t, yt) in y.iter_mut().enumerate() {
            let psi: f64 = xm[t * D..(t + 1) * D].iter().zip(theta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-psi).exp());
            let u: f64 = rng.random();
            *yt = if u < p { 1.0 } else { 0.0 };
        }
        if self.raw {
            x.copy_from_slice(&y);
        } else {
            for (j, xj) in x.iter_mut().enumerate() {
                *xj = (0..T).map(|t| xm[t * D + j] * y[t]).sum();
            }
        }
    }
}
