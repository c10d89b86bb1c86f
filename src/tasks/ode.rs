//! sir and lotka_volterra (sbibm 1.1.0): ODE models solved with `ode_solvers`' Dop853
//! (rtol = atol = 1e-8; sbibm uses Tsit5 with the same tolerances).

use ode_solvers::dop853::Dop853;
use ode_solvers::{OutputType, SVector, System};
use rand::Rng;
use rand_distr::{Binomial, Distribution, StandardNormal};

use super::{Prior, Task, TaskRng};

const RTOL: f64 = 1e-8;
const ATOL: f64 = 1e-8;
const MAX_STEPS: u32 = 100_000;

/// Integrates `sys` from `t0 = 0` to `t_end` with Dop853 and returns the states at
/// `0, dt, 2 dt, ...` (the first `count` of them); `None` if the solver fails or a value is
/// not finite. Stiffness detection is off (like Tsit5, which has none); the step limit is
/// 100,000 (DifferentialEquations.jl's default `maxiters`).
fn solve<const N: usize, F: System<f64, SVector<f64, N>>>(
    sys: F,
    y0: SVector<f64, N>,
    t_end: f64,
    dt: f64,
    count: usize,
) -> Option<Vec<SVector<f64, N>>> {
    let mut solver = Dop853::from_param(
        sys,
        0.0,
        t_end,
        dt,
        y0,
        RTOL,
        ATOL,
        0.9,
        0.0,
        0.333,
        6.0,
        t_end,
        0.0,
        MAX_STEPS,
        u32::MAX,
        OutputType::Dense,
    );
    solver.integrate().ok()?;
    let (ts, ys) = solver.results().get();
    if ys.len() < count {
        return None;
    }
    for (k, t) in ts.iter().take(count).enumerate() {
        if (t - k as f64 * dt).abs() > 1e-9 * (1.0 + t_end) {
            return None;
        }
    }
    let out: Vec<_> = ys[..count].to_vec();
    if out.iter().any(|y| y.iter().any(|v| !v.is_finite())) {
        return None;
    }
    Some(out)
}

// ---------------------------------------------------------------- SIR

/// Population size of sbibm's SIR model.
const SIR_N: f64 = 1_000_000.0;

struct SirOde {
    beta: f64,
    gamma: f64,
}

impl System<f64, SVector<f64, 3>> for SirOde {
    fn system(&self, _t: f64, y: &SVector<f64, 3>, dy: &mut SVector<f64, 3>) {
        let (s, i) = (y[0], y[1]);
        let inf = self.beta * s * i / SIR_N;
        dy[0] = -inf;
        dy[1] = inf - self.gamma * i;
        dy[2] = self.gamma * i;
    }
}

/// Noise-free SIR summary: the number of infected I(t) (people, out of N = 10⁶) at
/// t = 0, 17, 34, ..., 153 days, for contact rate `beta` and recovery rate `gamma`
/// (per day); S' = −βSI/N, I' = βSI/N − γI, R' = γI, (S, I, R)(0) = (N − 1, 1, 0).
/// `None` if the solver fails.
pub fn sir_solve(beta: f64, gamma: f64) -> Option<[f64; 10]> {
    let y0 = SVector::<f64, 3>::new(SIR_N - 1.0, 1.0, 0.0);
    let ys = solve(SirOde { beta, gamma }, y0, 160.0, 17.0, 10)?;
    let mut out = [0.0; 10];
    for (o, y) in out.iter_mut().zip(&ys) {
        *o = y[1];
    }
    Some(out)
}

/// sbibm `sir`: θ = (β, γ), prior β ~ LogNormal(log 0.4, 0.5), γ ~ LogNormal(log 0.125, 0.2);
/// x ∈ N¹⁰: x_j ~ Binomial(1000, clamp(I(t_j)/N, 0, 1)) at t_j = 0, 17, ..., 153 days
/// (see [`sir_solve`]). Solver failure gives a row of NaN.
pub struct Sir {
    prior: Prior,
}

impl Sir {
    /// The task.
    pub fn new() -> Self {
        Sir { prior: Prior::LogNormal { mu: vec![0.4f64.ln(), 0.125f64.ln()], sigma: vec![0.5, 0.2] } }
    }
}

impl Default for Sir {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for Sir {
    fn name(&self) -> &'static str {
        "sir"
    }
    fn dim_theta(&self) -> usize {
        2
    }
    fn dim_x(&self) -> usize {
        10
    }
    fn theta_names(&self) -> Vec<String> {
        vec!["beta".into(), "gamma".into()]
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        let Some(inf) = sir_solve(theta[0], theta[1]) else {
            x.fill(f64::NAN);
            return;
        };
        for (xj, i) in x.iter_mut().zip(inf) {
            let p = (i / SIR_N).clamp(0.0, 1.0);
            match Binomial::new(1000, p) {
                Ok(b) => *xj = b.sample(rng) as f64,
                Err(_) => {
                    x.fill(f64::NAN);
                    return;
                }
            }
        }
    }
}

// ---------------------------------------------------------------- Lotka-Volterra

struct LvOde {
    alpha: f64,
    beta: f64,
    gamma: f64,
    delta: f64,
}

impl System<f64, SVector<f64, 2>> for LvOde {
    fn system(&self, _t: f64, y: &SVector<f64, 2>, dy: &mut SVector<f64, 2>) {
        let (prey, pred) = (y[0], y[1]);
        dy[0] = self.alpha * prey - self.beta * prey * pred;
        dy[1] = -self.gamma * pred + self.delta * prey * pred;
    }
}

/// Noise-free Lotka-Volterra summary for θ = (α, β, γ, δ): prey X and predators Y at
/// t = 0, 2.1, 4.2, ..., 18.9, returned as (X(t_0..t_9), Y(t_0..t_9)); X' = αX − βXY,
/// Y' = −γY + δXY, (X, Y)(0) = (30, 1). `None` if the solver fails.
pub fn lotka_volterra_solve(theta: &[f64]) -> Option<[f64; 20]> {
    let sys = LvOde { alpha: theta[0], beta: theta[1], gamma: theta[2], delta: theta[3] };
    let ys = solve(sys, SVector::<f64, 2>::new(30.0, 1.0), 20.0, 2.1, 10)?;
    let mut out = [0.0; 20];
    for (k, y) in ys.iter().enumerate() {
        out[k] = y[0];
        out[10 + k] = y[1];
    }
    Some(out)
}

/// sbibm `lotka_volterra`: θ = (α, β, γ, δ), prior θ_i ~ LogNormal(μ_i, 0.5) with
/// μ = (−0.125, −3, −0.125, −3); x ∈ R²⁰: x_i ~ LogNormal(log clamp(u_i, 1e-10, 1e4), 0.1)
/// where u = [`lotka_volterra_solve`]`(θ)`. Solver failure gives a row of NaN.
pub struct LotkaVolterra {
    prior: Prior,
}

impl LotkaVolterra {
    /// The task.
    pub fn new() -> Self {
        LotkaVolterra { prior: Prior::LogNormal { mu: vec![-0.125, -3.0, -0.125, -3.0], sigma: vec![0.5; 4] } }
    }
}

impl Default for LotkaVolterra {
    fn default() -> Self {
        Self::new()
    }
}

impl Task for LotkaVolterra {
    fn name(&self) -> &'static str {
        "lotka_volterra"
    }
    fn dim_theta(&self) -> usize {
        4
    }
    fn dim_x(&self) -> usize {
        20
    }
    fn theta_names(&self) -> Vec<String> {
        vec!["alpha".into(), "beta".into(), "gamma".into(), "delta".into()]
    }
    /// log1p: the populations span 0.1 to 10³ with heavy tails (BENCHMARKS.md: C2ST
    /// 0.98 without it at 10⁴ simulations).
    fn default_x_transform(&self) -> crate::transform::XTransform {
        crate::transform::XTransform::Log1p
    }
    fn prior(&self) -> &Prior {
        &self.prior
    }
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]) {
        let Some(u) = lotka_volterra_solve(theta) else {
            x.fill(f64::NAN);
            return;
        };
        for (xi, ui) in x.iter_mut().zip(u) {
            let z: f64 = rng.sample(StandardNormal);
            *xi = ui.clamp(1e-10, 1e4) * (0.1f64 * z).exp();
        }
    }
}
