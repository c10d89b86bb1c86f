//! slcp and slcp_distractors (sbibm 1.1.0).

use rand::distr::weighted::WeightedIndex;
use rand::distr::Distribution;
use rand::Rng;
use rand_distr::{ChiSquared, StandardNormal};
use std::sync::OnceLock;

use super::constants;
use super::{Prior, Task, TaskRng};

/// 0-based positions in a slcp_distractors x (length 100) of the 8 slcp values
/// (v1₁, v1₂, v2₁, v2₂, v3₁, v3₂, v4₁, v4₂), as given by sbibm's permutation.
pub const SLCP_DISTRACTOR_POSITIONS: [usize; 8] = [22, 33, 23, 67, 42, 21, 16, 90];

fn slcp_prior() -> Prior {
    Prior::Uniform { low: vec![-3.0; 5], high: vec![3.0; 5] }
}

/// The slcp simulator for one θ (length 5), writing the 8 values into `x`.
fn slcp_one(theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
    let (m1, m2) = (theta[0], theta[1]);
    let s1 = theta[2] * theta[2];
    let s2 = theta[3] * theta[3];
    let rho = theta[4].tanh();
    let c11 = s1 * s1 + 1e-6;
    let c22 = s2 * s2 + 1e-6;
    let c12 = rho * s1 * s2;
    // 2x2 Cholesky
    let l11 = c11.sqrt();
    let l21 = c12 / l11;
    let l22 = (c22 - l21 * l21).max(0.0).sqrt();
    for j in 0..4 {
        let z1: f64 = rng.sample(StandardNormal);
        let z2: f64 = rng.sample(StandardNormal);
        x[2 * j] = m1 + l11 * z1;
        x[2 * j + 1] = m2 + l21 * z1 + l22 * z2;
    }
}

/// sbibm `slcp` (simple likelihood, complex posterior): θ ∈ R⁵, prior U(−3, 3)⁵.
/// m = (θ1, θ2), s1 = θ3², s2 = θ4², ρ = tanh θ5,
/// S = [[s1² + 1e-6, ρ s1 s2], [ρ s1 s2, s2² + 1e-6]]; 4 iid points v_j ~ N(m, S);
/// x = (v1₁, v1₂, v2₁, v2₂, v3₁, v3₂, v4₁, v4₂) ∈ R⁸.
pub struct Slcp {
    prior: Prior,
}

impl Slcp {
    /// The task.
    pub fn new() -> Self {
        Slcp { prior: slcp_prior() }
    }
}

impl Default for Slcp {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for Slcp {
    fn name(&self) -> &'static str {
        "slcp"
    }
    fn dim_theta(&self) -> usize {
        5
    }
    fn dim_x(&self) -> usize {
        8
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        slcp_one(theta, rng, x);
    }
}

/// The distractor mixture, parsed from the embedded constants.
struct Distractors {
    weights: WeightedIndex<f64>,
    df: Vec<f64>,
    loc: &'static [f64],
    tril: &'static [f64],
    perm: Vec<usize>,
}

fn distractors() -> &'static Distractors {
    static CELL: OnceLock<Distractors> = OnceLock::new();
    CELL.get_or_init(|| {
        let w = &constants::gmm_weights().data;
        let perm: Vec<usize> = constants::permutation_idx().data.iter().map(|&v| v as usize).collect();
        let mut sorted = perm.clone();
        sorted.sort_unstable();
        assert!(sorted.iter().enumerate().all(|(i, &p)| i == p), "permutation_idx is not a permutation");
        Distractors {
            weights: WeightedIndex::new(w).expect("gmm_weights"),
            df: constants::gmm_df().data.clone(),
            loc: &constants::gmm_loc().data,
            tril: &constants::gmm_scale_tril().data,
            perm,
        }
    })
}

/// sbibm `slcp_distractors`: slcp's θ and prior; x ∈ R¹⁰⁰ holds the 8 slcp values plus
/// 92 distractors n drawn from a mixture of 20 multivariate Student-t distributions
/// (df 2; location loc_k, scale_tril L_k from sbibm's `gmm.torch`):
/// k ~ Categorical(weights), z ~ N(0, I₉₂), w ~ χ²(df), n = loc_k + L_k z / √(w/df).
/// With c = (slcp values, n), x_i = c\[perm\[i\]\] (sbibm's `permutation_idx`); the slcp values
/// end up at [`SLCP_DISTRACTOR_POSITIONS`]. The slcp part is drawn first, so with the same
/// row generator it equals [`Slcp`]'s output.
pub struct SlcpDistractors {
    prior: Prior,
}

impl SlcpDistractors {
    /// The task (parses the embedded mixture constants on first use).
    pub fn new() -> Self {
        let _ = distractors();
        SlcpDistractors { prior: slcp_prior() }
    }
}

impl Default for SlcpDistractors {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for SlcpDistractors {
    fn name(&self) -> &'static str {
        "slcp_distractors"
    }
    fn dim_theta(&self) -> usize {
        5
    }
    fn dim_x(&self) -> usize {
        100
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        const D: usize = 92;
        let g = distractors();
        let mut c = [0.0f64; 100];
        slcp_one(theta, rng, &mut c[..8]);
        let k = g.weights.sample(rng);
        let df = g.df[k];
        let mut z = [0.0f64; D];
        for zi in z.iter_mut() {
            *zi = rng.sample(StandardNormal);
        }
        let w: f64 = ChiSquared::new(df).expect("gmm_df").sample(rng);
        let scale = 1.0 / (w / df).sqrt();
        let loc = &g.loc[k * D..(k + 1) * D];
        let l = &g.tril[k * D * D..(k + 1) * D * D];
        for i in 0..D {
            let row = &l[i * D..i * D + i + 1];
            let lz: f64 = row.iter().zip(&z).map(|(a, b)| a * b).sum();
            c[8 + i] = loc[i] + lz * scale;
        }
        for (xi, &p) in x.iter_mut().zip(&g.perm) {
            *xi = c[p];
        }
    }
}
