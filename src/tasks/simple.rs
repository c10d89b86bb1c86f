//! two_moons, gaussian_linear, gaussian_linear_uniform, gaussian_mixture (sbibm 1.1.0).

use std::f64::consts::{FRAC_1_SQRT_2, FRAC_PI_2};

use rand::Rng;
use rand_distr::StandardNormal;

use super::{Prior, Task, TaskRng};

/// The noise-free part of sbibm's two_moons simulator: for θ (length 2), angle `a` and
/// radius `r`, returns x = (r·cos a + 0.25 − |z0|, r·sin a + z1) with
/// z0 = (θ1 + θ2)/√2, z1 = (−θ1 + θ2)/√2.
pub fn two_moons_map(theta: &[f64], a: f64, r: f64) -> [f64; 2] {
    let z0 = (theta[0] + theta[1]) * FRAC_1_SQRT_2;
    let z1 = (-theta[0] + theta[1]) * FRAC_1_SQRT_2;
    [r * a.cos() + 0.25 - z0.abs(), r * a.sin() + z1]
}

/// sbibm `two_moons`: θ ∈ R², prior U(−1, 1)²; x ∈ R²:
/// a ~ U(−π/2, π/2), r ~ N(0.1, 0.01²), x = [`two_moons_map`]`(θ, a, r)`.
pub struct TwoMoons {
    prior: Prior,
}

impl TwoMoons {
    /// The task.
    pub fn new() -> Self {
        TwoMoons { prior: Prior::Uniform { low: vec![-1.0; 2], high: vec![1.0; 2] } }
    }
}

impl Default for TwoMoons {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for TwoMoons {
    fn name(&self) -> &'static str {
        "two_moons"
    }
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        let a = rng.random_range(-FRAC_PI_2..FRAC_PI_2);
        let z: f64 = rng.sample(StandardNormal);
        let r = 0.1 + 0.01 * z;
        x.copy_from_slice(&two_moons_map(theta, a, r));
    }
}

/// Adds N(0, sd²) noise to every coordinate: x = θ + sd·ε.
fn add_noise(theta: &[f64], sd: f64, rng: &mut TaskRng, x: &mut [f64]) {
    for (xi, ti) in x.iter_mut().zip(theta) {
        let z: f64 = rng.sample(StandardNormal);
        *xi = ti + sd * z;
    }
}

/// sbibm `gaussian_linear`: θ ∈ R¹⁰, prior N(0, 0.1·I) (0.1 is the variance);
/// x ~ N(θ, 0.1·I). Posterior: N(x_o/2, 0.05·I).
pub struct GaussianLinear {
    prior: Prior,
}

impl GaussianLinear {
    /// The task.
    pub fn new() -> Self {
        let d = 10;
        let mut cov = vec![0.0; d * d];
        for i in 0..d {
            cov[i * d + i] = 0.1;
        }
        GaussianLinear { prior: Prior::Gaussian { mean: vec![0.0; d], cov } }
    }
}

impl Default for GaussianLinear {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for GaussianLinear {
    fn name(&self) -> &'static str {
        "gaussian_linear"
    }
    fn dim_theta(&self) -> usize {
        10
    }
    fn dim_x(&self) -> usize {
        10
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        add_noise(theta, 0.1f64.sqrt(), rng, x);
    }
}

/// sbibm `gaussian_linear_uniform`: θ ∈ R¹⁰, prior U(−1, 1)¹⁰; x ~ N(θ, 0.1·I)
/// (variance 0.1).
pub struct GaussianLinearUniform {
    prior: Prior,
}

impl GaussianLinearUniform {
    /// The task.
    pub fn new() -> Self {
        GaussianLinearUniform { prior: Prior::Uniform { low: vec![-1.0; 10], high: vec![1.0; 10] } }
    }
}

impl Default for GaussianLinearUniform {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for GaussianLinearUniform {
    fn name(&self) -> &'static str {
        "gaussian_linear_uniform"
    }
    fn dim_theta(&self) -> usize {
        10
    }
    fn dim_x(&self) -> usize {
        10
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        add_noise(theta, 0.1f64.sqrt(), rng, x);
    }
}

/// sbibm 1.1.0 `gaussian_mixture`: θ ∈ R², prior U(−10, 10)²; one component
/// c ~ Categorical(½, ½) for the whole vector, x ~ N(θ, I) if c = 0 and
/// x ~ N(θ, 0.01·I) if c = 1 (standard deviations 1 and 0.1).
pub struct GaussianMixture {
    prior: Prior,
}

impl GaussianMixture {
    /// The task.
    pub fn new() -> Self {
        GaussianMixture { prior: Prior::Uniform { low: vec![-10.0; 2], high: vec![10.0; 2] } }
    }
}

impl Default for GaussianMixture {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for GaussianMixture {
    fn name(&self) -> &'static str {
        "gaussian_mixture"
    }
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        2
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        let narrow: bool = rng.random_bool(0.5);
        add_noise(theta, if narrow { 0.1 } else { 1.0 }, rng, x);
    }
}
