//! The flow posterior q(θ | x_o) of a trained model: sampling and log-densities on the
//! GPU, through the one ODE driver of [`crate::ode`].
//!
//! * [`GpuModel`]: a [`Model`](crate::model::Model) uploaded once (weights in one GPU
//!   buffer), shared by the posteriors of many observations.
//! * [`Posterior`]: the posterior for one observation x_o; owns a handle to its
//!   `GpuModel` (and so an `Arc<Gpu>`), no lifetime parameter, `Send + Sync + 'static`.
//! * [`Posterior::sample`], [`Posterior::log_prob`], [`Posterior::sample_and_log_prob`]
//!   take one [`PosteriorOptions`]; the samples come back as [`Samples`] (`[n, dim]`,
//!   original units, with the report and the optional log-density column).
//!
//! Sampling integrates θ from t = 0 (θ₀ ~ N(0, I)) to t = 1 with rk4 or per-sample
//! adaptive dopri5; the x-dependent part of the network is computed once per workspace.
//! Log-densities integrate `[θ, Δ]` with `dΔ/dt = ∇·v` (see `log_prob`). With a parameter
//! transform ([`crate::transform`]) the ODE runs in the z-scored θ' = T(θ) space the
//! model was trained in, and results are mapped back (and log-densities corrected by
//! `log |det dθ'/dθ|`) on the GPU or, for `log_prob`'s inputs, on the host in f64.
//!
//! A posterior keeps the ODE workspaces and recorded programs of its last few chunk
//! sizes ([`MAX_PLANS`]) and reuses them across calls, chunks and rejection rounds.

use std::sync::{Arc, Mutex};

use crate::error::Result;
use crate::gpu::Gpu;
use crate::prior::BoxPrior;
use crate::ode::plan::{ChunkOutput, ChunkStart, Constants, Net, Plan, PlanKey};
use crate::transform::ThetaTransform;

mod batched;
mod bench;
mod density;
mod model;
mod options;
pub mod resident;
mod sample;

pub use crate::ode::{Divergence, Solver};
pub(crate) use batched::XUnits;
pub use bench::{bench_log_prob, LogProbBench};
pub use model::GpuModel;
pub use options::{PosteriorOptions, SampleReport, Samples};
pub use resident::{DrawTarget, Readback, ResidentLayout, ResidentValues, DEFAULT_DOPRI5_STEP_BUDGET};

/// Most ODE plans (workspace + recorded programs of one chunk size, field, solver and
/// direction) a posterior keeps for reuse; the least recently used is dropped first.
pub const MAX_PLANS: usize = 3;

/// Flow samples drawn to estimate the posterior mass inside the box prior (sbi's
/// leakage correction draws 10,000 as well): the estimate's relative standard error is
/// `sqrt((1 − p) / (p · 10,000))`, 1 % at p = 0.5.
pub const LEAKAGE_SAMPLES: usize = 10_000;

/// The flow posterior q(θ | x_o) of a [`GpuModel`] for one observation x_o.
///
/// Holds a shared handle to the model (no weights are uploaded per observation) and a
/// small cache of ODE plans. `Send + Sync + 'static`; concurrent calls on one posterior
/// are safe (each solve takes its plan out of the cache while it runs).
pub struct Posterior {
    model: GpuModel,
    x_z: Vec<f32>,
    plans: Mutex<Vec<Plan>>,
    /// Estimated posterior mass inside the box prior, per solver and seed.
    prior_mass: Mutex<Vec<(Solver, u64, f64)>>,
}

impl std::fmt::Debug for Posterior {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Posterior").field("model", &self.model).field("x_z", &self.x_z).finish_non_exhaustive()
    }
}

impl Posterior {
    /// The posterior of `model` for `observation` `[dim_x]` (original units; the model's
    /// x transform and z-scoring are applied here). Uploads nothing: the weights are the
    /// model's, the workspaces are made on first use.
    ///
    /// # Errors
    /// [`crate::Error::Invalid`] if the observation has the wrong length, is not finite
    /// or is outside the x transform's domain.
    pub fn new(model: &GpuModel, observation: &[f64]) -> Result<Posterior> {
        let x_z = model.observation_z(observation)?;
        Ok(Posterior { model: model.clone(), x_z, plans: Mutex::new(Vec::new()), prior_mass: Mutex::new(Vec::new()) })
    }

    /// The model this posterior belongs to.
    pub fn model(&self) -> &GpuModel {
        &self.model
    }

    /// The GPU it runs on.
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.model.inner.gpu
    }

    /// Dimension of θ.
    pub fn dim_theta(&self) -> usize {
        self.model.dim_theta()
    }

    /// The box prior used for rejection, if any.
    pub fn prior(&self) -> Option<&BoxPrior> {
        self.model.prior()
    }

    /// The model's parameter transform (one bijection per component).
    pub fn transform(&self) -> &ThetaTransform {
        self.model.transform()
    }

    /// The flow's mass inside the model's box prior, `P_q(θ ∈ box | x_o)`: 1 without a
    /// box prior or when a logit transform on exactly the box keeps every sample inside
    /// it; else the fraction of [`LEAKAGE_SAMPLES`] flow samples (drawn without
    /// rejection with `opts.solver` and `opts.seed`) inside the box, computed once per
    /// solver and seed and cached. The normaliser of `normalize_to_prior` (sbi's leakage
    /// correction).
    ///
    /// # Errors
    /// [`crate::Error::LowAcceptance`] when no sample falls inside the box; the errors of
    /// [`Posterior::sample`].
    pub fn prior_mass(&self, opts: &PosteriorOptions) -> Result<f64> {
        let Some(prior) = self.prior().filter(|p| !self.transform().covers(p)) else {
            return Ok(1.0);
        };
        let cached = {
            let c = self.prior_mass.lock().unwrap_or_else(|e| e.into_inner());
            c.iter().find(|(s, seed, _)| *s == opts.solver && *seed == opts.seed).map(|e| e.2)
        };
        if let Some(p) = cached {
            return Ok(p);
        }
        let free = PosteriorOptions { reject_outside_prior: false, max_seconds: None, ..opts.clone() };
        let s = self.sample(LEAKAGE_SAMPLES, &free)?;
        let inside = (0..s.n()).filter(|&i| prior.contains(s.row(i))).count();
        if inside == 0 {
            return Err(crate::Error::LowAcceptance(format!(
                "none of {LEAKAGE_SAMPLES} posterior samples falls inside the prior support: the posterior cannot be normalised to it"
            )));
        }
        let p = inside as f64 / s.n() as f64;
        self.prior_mass.lock().unwrap_or_else(|e| e.into_inner()).push((opts.solver, opts.seed, p));
        Ok(p)
    }

    fn net(&self) -> Net<'_> {
        self.model.inner.gpu_net()
    }

    /// Solves one chunk with the plan of `key` (taken from the cache, or built), and
    /// returns the plan to the cache afterwards.
    fn solve_chunk(&self, key: PlanKey, start: &ChunkStart<'_>) -> Result<ChunkOutput> {
        self.with_plan(key, |plan| plan.solve(self.gpu(), start))
    }

    /// Runs `f` on the plan of `key` (taken from the cache, or built) and returns the
    /// plan to the cache afterwards (a failed call drops it).
    fn with_plan<T>(&self, key: PlanKey, f: impl FnOnce(&mut Plan) -> Result<T>) -> Result<T> {
        let cached = {
            let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
            plans.iter().position(|p| p.key == key).map(|i| plans.remove(i))
        };
        let mut plan = match cached {
            Some(p) => p,
            None => {
                let m = &self.model.inner;
                let consts =
                    Constants { x_z: &self.x_z, theta_mean: &m.theta_mean, theta_std: &m.theta_std, transform: &m.transform };
                Plan::new(self.gpu(), &self.net(), &consts, key)?
            }
        };
        let out = f(&mut plan)?;
        let mut plans = self.plans.lock().unwrap_or_else(|e| e.into_inner());
        plans.push(plan);
        if plans.len() > MAX_PLANS {
            plans.remove(0);
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn posterior_and_model_are_send_sync_static() {
        fn check<T: Send + Sync + 'static>() {}
        check::<super::Posterior>();
        check::<super::GpuModel>();
        check::<super::Samples>();
    }
}
