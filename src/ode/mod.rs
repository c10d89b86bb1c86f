//! The one ODE driver of fmpe: integrates the probability-flow ODE
//! dθ/dt = v(t, θ, x_o) of a trained network on the GPU, for every posterior operation.
//!
//! * **Field** (`field`): what is integrated per row. Either the vector field `v`
//!   alone (state `[θ]`, `dim_theta` columns; sampling), or `[v, ∇·v]` (state `[θ, Δ]`,
//!   `dim_theta + 1` columns, `dΔ/dt = ∇·v`; log-densities) with the forward-mode
//!   tangent kernels ([`crate::net::JvpGraph`]) and an exact or Hutchinson
//!   [`Divergence`].
//! * **Solvers** ([`Solver`]): fixed-step `rk4` and per-row adaptive `dopri5`, each
//!   written once as a recorded step program (`plan`). The rk4 and dopri5 tableaus
//!   are defined here, once.
//! * **Plans** (`plan::Plan`): the workspace and the recorded programs of one chunk
//!   size, built once and reused for every chunk and rejection round of that size
//!   (only a small per-chunk init program carrying the seed, first sample index and
//!   round is recorded per chunk). Recording is layered: `plan::Plan::record_pass`
//!   records a chunk's start, a number of steps and its finish into a caller's
//!   `wgpu::CommandEncoder` (all of a fixed-step rk4 solve fits in one pass); the host
//!   loop of `plan::Plan::solve` adds the submissions, the dopri5 active-row checks
//!   and the readbacks on top.
//! * **Chunk sizing** (`workspace::max_chunk`): one rule for every field.
//!
//! Rows are independent: each row has its own t, h and step control, so a row's
//! result does not depend on the chunk it is solved in.

pub(crate) mod field;
pub(crate) mod plan;
pub(crate) mod record;
pub(crate) mod workspace;

pub use field::Divergence;

use crate::error::{Error, Result};

/// ODE solver for the probability-flow ODE dθ/dt = v(t, θ, x_o).
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Solver {
    /// Classic 4th-order Runge–Kutta with `steps` equal steps on [0, 1] (4 field
    /// evaluations each).
    Rk4 {
        /// Number of steps (≥ 1).
        steps: usize,
    },
    /// Dormand–Prince 5(4) with per-sample adaptive steps (FSAL: 6 field evaluations per
    /// step). The error norm uses the θ columns only (z-scored θ' units).
    Dopri5 {
        /// Absolute tolerance (z-scored θ' units, > 0).
        atol: f64,
        /// Relative tolerance (≥ 0).
        rtol: f64,
    },
}

impl Default for Solver {
    /// dopri5 with `atol = rtol = 1e-5`.
    fn default() -> Self {
        Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }
    }
}

impl Solver {
    /// Checks the solver's parameters.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `steps` (zero rk4 steps), `atol` (not > 0) or
    /// `rtol` (negative or NaN).
    pub fn validate(&self) -> Result<()> {
        match *self {
            Solver::Rk4 { steps: 0 } => Err(Error::option("steps", "rk4 needs at least one step")),
            Solver::Dopri5 { atol, .. } if atol.is_nan() || atol <= 0.0 => Err(Error::option("atol", format!("must be positive, got {atol}"))),
            Solver::Dopri5 { rtol, .. } if rtol.is_nan() || rtol < 0.0 => {
                Err(Error::option("rtol", format!("must be non-negative, got {rtol}")))
            }
            _ => Ok(()),
        }
    }
}

/// rk4 stages `(c_s, a_s)`: stage s evaluates the field at `t + c_s h`,
/// `y + h Σ_r a_s,r k_r`.
pub(crate) const RK4_STAGES: [(f32, &[f32]); 4] = [(0.0, &[]), (0.5, &[0.5]), (0.5, &[0.0, 0.5]), (1.0, &[0.0, 0.0, 1.0])];
/// rk4 weights b_s of the update `y += h Σ_s b_s k_s`.
pub(crate) const RK4_WEIGHTS: [f32; 4] = [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0];

/// dopri5 tableau rows a_s (stages 2..7) and nodes c_s; the weights and the error
/// estimate live in `shaders/ode_dopri5.wgsl`.
pub(crate) const DOPRI_A: [(f32, [f32; 6]); 6] = [
    (0.2, [0.2, 0.0, 0.0, 0.0, 0.0, 0.0]),
    (0.3, [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0]),
    (0.8, [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0]),
    (8.0 / 9.0, [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0]),
    (1.0, [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0]),
    (1.0, [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0]),
];

/// Initial dopri5 step (Hairer's starting-step heuristic measured no fewer steps on
/// trained fields, at one extra evaluation) and smallest step (always accepted), in
/// units of t.
pub(crate) const DOPRI_H0: f32 = 0.05;
pub(crate) const DOPRI_HMIN: f32 = 1e-5;
/// rk4 steps recorded per submission (bounded GPU time per command buffer).
pub(crate) const RK4_STEPS_PER_SUBMIT: usize = 64;
/// dopri5 steps recorded per submission between active-row checks.
pub(crate) const DOPRI_STEPS_PER_SUBMIT: usize = 8;
/// Safety cap on dopri5 steps per chunk.
pub(crate) const DOPRI_MAX_STEPS: usize = 20_000;

/// Direction of a chunk's solve.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Direction {
    /// From θ₀ ~ N(0, I) at t = 0 to t = 1 (sampling).
    Forward,
    /// From given z-scored θ' at t = 1 back to t = 0 (log_prob).
    Backward,
}
