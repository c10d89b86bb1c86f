//! The ten benchmark tasks of sbibm 1.1.0 (Lueckmann et al., "Benchmarking
//! Simulation-Based Inference", AISTATS 2021): priors and simulators.
//!
//! Each task maps parameters θ (`[n, dim_theta]`, row-major) to data x (`[n, dim_x]`,
//! row-major). Simulation is deterministic given a seed: row `i` uses its own random
//! number generator [`row_rng`]`(seed, i)`, so results do not depend on how the rows are
//! split over threads. Failed simulations (ODE solver failure) give a row of NaN.
//!
//! The simulator constants (bernoulli_glm design matrix and prior precision,
//! slcp_distractors mixture and permutation) are embedded in the crate
//! (`data/sbibm/`, MIT-licensed, see `NOTICE-sbibm.md`).

pub mod anchors;
mod bernoulli_glm;
mod constants;
mod ode;
mod simple;
mod slcp;

pub use anchors::{sbibm_anchor, Anchor, ANCHOR_BUDGETS};
pub use bernoulli_glm::{bernoulli_glm_design_matrix, BernoulliGlm};
pub use ode::{lotka_volterra_solve, sir_solve, LotkaVolterra, Sir};
pub use crate::prior::Prior;
pub use simple::{two_moons_map, GaussianLinear, GaussianLinearUniform, GaussianMixture, TwoMoons};
pub use slcp::{Slcp, SlcpDistractors, SLCP_DISTRACTOR_POSITIONS};

use rand::SeedableRng;

use crate::error::{Error, Result};
use crate::transform::XTransform;

/// The random number generator used by the simulators: ChaCha8 (portable and
/// reproducible across platforms and crate versions of `rand_chacha` 0.9).
pub type TaskRng = rand_chacha::ChaCha8Rng;

/// The generator for row `i` of a simulation with `seed`: ChaCha8 keyed by `seed`
/// (expanded with `seed_from_u64`), stream `i`.
pub fn row_rng(seed: u64, i: u64) -> TaskRng {
    let mut rng = TaskRng::seed_from_u64(seed);
    rng.set_stream(i);
    rng
}

/// Stream of the generator that [`simulate_dataset`] uses for prior draws (the rows use
/// streams `0..n`).
const PRIOR_STREAM: u64 = u64::MAX;

/// An sbibm benchmark task: a prior and a simulator.
pub trait Task: Send + Sync {
    /// The sbibm name, e.g. `"two_moons"` (one of [`TASK_NAMES`]).
    fn name(&self) -> &'static str;
    /// Dimension of θ.
    fn dim_theta(&self) -> usize;
    /// Dimension of x.
    fn dim_x(&self) -> usize;
    /// Names of the θ columns (`theta_1..`, or e.g. `beta, gamma` for sir).
    fn theta_names(&self) -> Vec<String> {
        (1..=self.dim_theta()).map(|i| format!("theta_{i}")).collect()
    }
    /// Names of the x columns (`data_1..`, as in sbibm's observation files).
    fn x_names(&self) -> Vec<String> {
        (1..=self.dim_x()).map(|i| format!("data_{i}")).collect()
    }
    /// The prior over θ.
    fn prior(&self) -> &Prior;

    /// The x transform this task asks for (what the CLI's `--x-transform auto` picks;
    /// default: none).
    fn default_x_transform(&self) -> XTransform {
        XTransform::Identity
    }

    /// Simulates one row: `theta` has length `dim_theta`, `x` length `dim_x`; draws all
    /// randomness from `rng`. A failed simulation writes NaN into every element of `x`.
    fn simulate_one(&self, theta: &[f64], rng: &mut TaskRng, x: &mut [f64]);

    /// Simulates one x row per θ row: `theta` `[n, dim_theta]` row-major → x
    /// `[n, dim_x]` row-major. Deterministic given `seed`: row `i` uses
    /// [`row_rng`]`(seed, i)`. Large batches run on all cores (`std::thread::scope`).
    ///
    /// Panics if `theta.len()` is not a multiple of `dim_theta`.
    fn simulate(&self, theta: &[f64], seed: u64) -> Vec<f64> {
        simulate_rows(self, theta, seed)
    }
}

/// Parallel, deterministic implementation of [`Task::simulate`].
fn simulate_rows<T: Task + ?Sized>(task: &T, theta: &[f64], seed: u64) -> Vec<f64> {
    let (dt, dx) = (task.dim_theta(), task.dim_x());
    assert!(
        dt > 0 && theta.len().is_multiple_of(dt),
        "{}: theta has {} values, not a multiple of dim_theta = {dt}",
        task.name(),
        theta.len()
    );
    let n = theta.len() / dt;
    let mut x = vec![0.0; n * dx];
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1);
    let run = |first: usize, th: &[f64], out: &mut [f64]| {
        for (k, (t, o)) in th.chunks_exact(dt).zip(out.chunks_exact_mut(dx)).enumerate() {
            let mut rng = row_rng(seed, (first + k) as u64);
            task.simulate_one(t, &mut rng, o);
        }
    };
    if threads <= 1 || n < 64 {
        run(0, theta, &mut x);
        return x;
    }
    let rows_per = n.div_ceil(threads);
    std::thread::scope(|s| {
        for (c, (th, out)) in theta.chunks(rows_per * dt).zip(x.chunks_mut(rows_per * dx)).enumerate() {
            let run = &run;
            s.spawn(move || run(c * rows_per, th, out));
        }
    });
    x
}

/// The sbibm task names, in the order of the sbibm paper.
pub const TASK_NAMES: [&str; 10] = [
    "two_moons",
    "gaussian_linear",
    "gaussian_linear_uniform",
    "gaussian_mixture",
    "slcp",
    "slcp_distractors",
    "bernoulli_glm",
    "bernoulli_glm_raw",
    "sir",
    "lotka_volterra",
];

/// The task called `name` (one of [`TASK_NAMES`]).
///
/// # Errors
/// [`Error::Invalid`] listing the valid names if `name` is unknown.
pub fn task_by_name(name: &str) -> Result<Box<dyn Task>> {
    Ok(match name {
        "two_moons" => Box::new(TwoMoons::new()),
        "gaussian_linear" => Box::new(GaussianLinear::new()),
        "gaussian_linear_uniform" => Box::new(GaussianLinearUniform::new()),
        "gaussian_mixture" => Box::new(GaussianMixture::new()),
        "slcp" => Box::new(Slcp::new()),
        "slcp_distractors" => Box::new(SlcpDistractors::new()),
        "bernoulli_glm" => Box::new(BernoulliGlm::new(false)),
        "bernoulli_glm_raw" => Box::new(BernoulliGlm::new(true)),
        "sir" => Box::new(Sir::new()),
        "lotka_volterra" => Box::new(LotkaVolterra::new()),
        _ => {
            return Err(Error::invalid(format!(
                "unknown task '{name}'; valid tasks are: {}",
                TASK_NAMES.join(", ")
            )))
        }
    })
}

/// Draws `n` parameters from the task's prior and simulates one x for each.
///
/// Returns `(theta, x)`: θ `[n, dim_theta]` and x `[n, dim_x]`, row-major. Deterministic
/// given `seed` (prior draws use [`row_rng`]`(seed, u64::MAX)`, simulation row `i` uses
/// `row_rng(seed, i)`); the simulations run in parallel on all cores. Rows of failed
/// simulations are NaN (see [`crate::io::drop_nonfinite_rows`]).
pub fn simulate_dataset(task: &dyn Task, n: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = row_rng(seed, PRIOR_STREAM);
    let theta = task.prior().sample(n, &mut rng);
    let x = task.simulate(&theta, seed);
    (theta, x)
}
