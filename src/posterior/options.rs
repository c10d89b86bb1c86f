//! The one options type of [`super::Posterior::sample`], [`super::Posterior::log_prob`]
//! and [`super::Posterior::sample_and_log_prob`], and the typed sample result.

use crate::error::{Error, Result};
use crate::ode::{Divergence, Solver};

/// Options shared by [`super::Posterior::sample`], [`super::Posterior::log_prob`] and
/// [`super::Posterior::sample_and_log_prob`]. Invalid values give
/// [`Error::InvalidOption`] with the field's name.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct PosteriorOptions {
    /// ODE solver (default dopri5 with atol = rtol = 1e-5). Every operation accepts both
    /// solvers; log-densities are integrated with the same steps as the samples.
    pub solver: Solver,
    /// How `∇·v` is computed for log-densities (default [`Divergence::Exact`]); unused
    /// by `sample`.
    pub divergence: Divergence,
    /// Seed (Philox key) of θ₀ and of the Hutchinson probes. With the same seed,
    /// `sample_and_log_prob` draws the same θ₀ (and takes the same θ steps) as `sample`.
    pub seed: u64,
    /// Rows per GPU chunk (None: [`crate::Gpu::default_chunk`]); always capped by the
    /// device limits. Results do not depend on it.
    pub chunk_size: Option<usize>,
    /// Restrict to the model's box prior (default true). `sample`,
    /// `sample_and_log_prob`: samples outside the box are rejected and drawn again (with
    /// a logit transform on exactly the box none fall outside). `log_prob`: points
    /// outside the box get −∞ without being integrated (with `false`, the flow's own
    /// density is evaluated there). Points outside the support of the model's parameter
    /// transform (outside a logit's box, at or below a log's bound) get −∞ regardless:
    /// the transformed flow puts no mass there. Log-densities are the flow's, not
    /// renormalised to the box, unless `normalize_to_prior`.
    pub reject_outside_prior: bool,
    /// `sample`: fold samples that leave the model's box prior back into it at the
    /// bounds ([`crate::prior::BoxPrior::reflect`]) instead of rejecting them.
    /// `None` (the default): with `reject_outside_prior`, the model's own choice, made
    /// at training by held-out NLL ([`crate::model::Selection::reflection`]; rejection
    /// when it made none), and without it no reflection (samples outside are kept);
    /// `Some(true)` / `Some(false)`: always / never. Reflection takes precedence over
    /// `reject_outside_prior`, and every proposal is kept (acceptance rate 1). For a
    /// posterior whose density jumps at a bound (it is cut off by the prior there), the
    /// mass the flow leaks past the bound is the mass it misses just inside it, and the
    /// mirror puts it back; rejection drops it. No effect without a box prior or with a
    /// logit transform on the box (nothing leaves it). The density of folded samples is
    /// a sum over mirror images that fmpe does not evaluate: `sample_and_log_prob`
    /// rejects under `None` and refuses `Some(true)` ([`Error::InvalidOption`]), and
    /// `log_prob` ignores the option.
    pub reflect_outside_prior: Option<bool>,
    /// `log_prob` and `sample_and_log_prob`: renormalise the density to the box prior
    /// (sbi's leakage correction, `norm_posterior`): `log q(θ | x_o) − log P_q(θ ∈ box)`
    /// inside the box and −∞ outside, whatever `reject_outside_prior` says. The mass
    /// `P_q(θ ∈ box)` is estimated once per posterior, solver and seed from
    /// [`super::LEAKAGE_SAMPLES`] flow samples and cached
    /// ([`super::Posterior::prior_mass`]). Exact (mass 1, nothing drawn) without a box
    /// prior or when a logit transform on exactly the box keeps the flow inside it.
    /// Default false.
    pub normalize_to_prior: bool,
    /// Rejection sampling gives up with [`Error::LowAcceptance`] when, extrapolated from
    /// the rounds so far, it would take longer than this many seconds (None: no limit).
    pub max_seconds: Option<f64>,
}

impl Default for PosteriorOptions {
    fn default() -> Self {
        PosteriorOptions {
            solver: Solver::default(),
            divergence: Divergence::Exact,
            seed: 0,
            chunk_size: None,
            reject_outside_prior: true,
            reflect_outside_prior: None,
            normalize_to_prior: false,
            max_seconds: None,
        }
    }
}

impl PosteriorOptions {
    /// Checks every option.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `chunk_size` (zero), `steps`, `atol`, `rtol`
    /// (see [`Solver::validate`]), `divergence` (zero probes) or `max_seconds` (negative
    /// or NaN).
    pub fn validate(&self) -> Result<()> {
        if self.chunk_size == Some(0) {
            return Err(Error::option("chunk_size", "must be positive"));
        }
        self.solver.validate()?;
        self.divergence.validate()?;
        if let Some(s) = self.max_seconds {
            if s.is_nan() || s < 0.0 {
                return Err(Error::option("max_seconds", format!("must be a non-negative number of seconds, got {s}")));
            }
        }
        Ok(())
    }
}

/// What sampling did.
#[derive(Clone, Debug, Default, PartialEq, serde::Serialize)]
pub struct SampleReport {
    /// Samples returned.
    pub returned: usize,
    /// Samples drawn from the flow (≥ returned when rejecting).
    pub proposed: usize,
    /// Accepted / proposed (1 without rejection).
    pub acceptance_rate: f64,
    /// Mean accepted ODE steps per proposed sample (dopri5) or the fixed step count (rk4).
    pub mean_steps: f64,
    /// Mean rejected ODE steps per proposed sample (dopri5; 0 for rk4).
    pub mean_rejected_steps: f64,
    /// Wall-clock seconds.
    pub seconds: f64,
}

/// Posterior samples `[n, dim]` (row-major, f64, original units of θ), optionally with
/// the flow's log-density of each sample `[n]` (nats, densities with respect to
/// Lebesgue measure in original units), and what sampling did.
#[derive(Clone, Debug, PartialEq)]
pub struct Samples {
    dim: usize,
    values: Vec<f64>,
    log_prob: Option<Vec<f64>>,
    report: SampleReport,
}

impl Samples {
    pub(crate) fn new(dim: usize, values: Vec<f64>, log_prob: Option<Vec<f64>>, report: SampleReport) -> Samples {
        debug_assert!(dim > 0 && values.len().is_multiple_of(dim));
        debug_assert!(log_prob.as_ref().is_none_or(|l| l.len() * dim == values.len()));
        Samples { dim, values, log_prob, report }
    }

    /// Number of samples n.
    pub fn n(&self) -> usize {
        self.values.len() / self.dim
    }

    /// Dimension of θ (columns).
    pub fn dim(&self) -> usize {
        self.dim
    }

    /// Sample `i` `[dim]`.
    ///
    /// # Panics
    /// If `i >= n()`.
    pub fn row(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// All samples `[n, dim]`, row-major.
    pub fn as_slice(&self) -> &[f64] {
        &self.values
    }

    /// log q(θ_i | x_o) of each sample `[n]` (from `sample_and_log_prob`; `None` from
    /// `sample`).
    pub fn log_prob(&self) -> Option<&[f64]> {
        self.log_prob.as_deref()
    }

    /// What sampling did.
    pub fn report(&self) -> &SampleReport {
        &self.report
    }

    /// The samples `[n, dim]`, the log-densities `[n]` if computed, and the report.
    pub fn into_parts(self) -> (Vec<f64>, Option<Vec<f64>>, SampleReport) {
        (self.values, self.log_prob, self.report)
    }
}
