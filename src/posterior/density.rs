//! Log-density of the flow posterior (FMPE, Dax et al. 2023, Sec. 3): by the
//! instantaneous change of variables (Chen et al. 2018, Thm. 1; FMPE eq. 4 / Lipman et
//! al. 2023 eq. 4), a sample θ₁ of the flow started at θ₀ ~ N(0, I) has
//!
//! ```text
//! log q(θ₁ | x_o) = log N(θ₀; 0, I) − ∫₀¹ ∇_θ · v(t, θ_t, x_o) dt .
//! ```
//!
//! Both directions integrate the joint state `[θ_t, Δ_t]` (`dim_theta + 1` columns) with
//! `dΔ/dt = ∇·v` using the ODE driver of [`crate::ode`]:
//! * [`Posterior::log_prob`]: from t = 1 (θ₁ given, Δ = 0) back to t = 0; then
//!   `log q = log N(θ₀) + Δ₀`.
//! * [`Posterior::sample_and_log_prob`]: from t = 0 (θ₀ drawn, Δ = 0) to t = 1; then
//!   `log q = log N(θ₀) − Δ₁`.
//!
//! The divergence comes from the forward-mode tangent pass [`crate::net::JvpGraph`]:
//! exact (`dim_theta` unit tangents per row, stacked as `dim_theta × rows` tangent rows,
//! one set of dispatches) or Hutchinson's estimator (Hutchinson 1990; Grathwohl et al.
//! 2019, FFJORD) `mean_p ε_pᵀ J ε_p` with Rademacher or Gaussian probes drawn once per
//! sample (Philox keyed by the seed and the sample index) and kept for the whole solve,
//! so the estimated Δ is the integral of one fixed smooth function along the path.
//!
//! With a parameter transform θ' = T(θ) ([`crate::transform`]) the ODE runs in the
//! z-scored θ' space and the change of variables adds `Σ_j log |dθ'_j/dθ_j|`:
//! `log q(θ) = log q'(T(θ)) + log |det dθ'/dθ|`. `log_prob` maps the given θ with T and
//! z-scores it on the host in f64 (exact near the box bounds even when |bound| ≫ the
//! distance to it, which an f32 kernel cannot resolve) and adds the Jacobian term to the
//! read-back log-density; `sample_and_log_prob` maps the samples back with T⁻¹ on the
//! GPU and adds the term in the same dispatch.
//!
//! All values are computed on the GPU; the host reads back one log-density per point
//! (and the samples for `sample_and_log_prob`) plus one active-row count per few steps.

use super::{Posterior, PosteriorOptions};
use crate::error::{Error, Result};
use crate::ode::field::FieldKind;
use crate::ode::plan::{eval_with_divergence, ChunkStart, PlanKey};
use crate::ode::workspace::max_chunk;
use crate::ode::{Direction, Divergence};

impl Posterior {
    /// Log-density `log q(θ | x_o)` of the flow posterior at `theta` (`[n, dim_theta]`,
    /// row-major, original units); returns `[n]` values in nats, in the order of the
    /// rows, for densities with respect to Lebesgue measure in original units (the
    /// z-scoring Jacobian `−Σ_j log std_θ_j` is included).
    ///
    /// Each point is integrated from t = 1 back to t = 0 with the joint state
    /// `[θ_t, Δ_t]`, `dΔ/dt = ∇·v`, with `opts.solver` (dopri5: per-point step size and
    /// error control, so a point's value does not depend on the other points of the
    /// batch), and `log q(θ) = log N(θ₀; 0, I) + Δ₀ − Σ log std_θ` (FMPE, Dax et al.
    /// 2023, Sec. 3: `log q(θ₁) = log N(θ₀) − ∫₀¹ ∇·v dt`).
    ///
    /// The error norm of dopri5 uses the θ columns only; the Δ column is integrated
    /// with the same steps but excluded. Δ never feeds back into the dynamics (∇·v
    /// depends on θ_t only), so controlling θ's local error already resolves the path
    /// on which ∇·v is a smooth function, and Δ's 5th-order update inherits an error of
    /// the same order; including Δ would make the step sequence (and hence θ₀) depend on
    /// the divergence estimator and, for Hutchinson, on the probe noise, and would make
    /// `sample_and_log_prob` take different steps from `sample`. The consistency test
    /// (`tests/log_prob.rs`) checks the resulting accuracy.
    ///
    /// With a parameter transform T, the solve runs in the z-scored θ' = T(θ) space and
    /// `log |det dθ'/dθ|` is added (T, its Jacobian and the z-scoring are evaluated on
    /// the host in f64).
    ///
    /// With `opts.normalize_to_prior`, the density is renormalised to the box prior:
    /// `log P_q(θ ∈ box | x_o)` ([`Posterior::prior_mass`], estimated once and cached)
    /// is subtracted, so the density integrates to 1 over the box (sbi's leakage
    /// correction).
    ///
    /// Points outside the model's box prior get `f64::NEG_INFINITY` when
    /// `opts.reject_outside_prior` (the default) or `opts.normalize_to_prior`, and so do points outside the
    /// transform's support whatever the option says; they are not integrated. Uses
    /// `opts.solver`, `divergence`, `seed` (Hutchinson probes, keyed by a point's index
    /// among the points integrated) and `chunk_size`.
    ///
    /// # Errors
    /// [`Error::Invalid`] if `theta.len()` is not a multiple of dim_theta or a value is
    /// not finite; [`Error::InvalidOption`] for invalid options; [`Error::Invalid`] when
    /// dopri5 does not finish within its step cap; GPU errors.
    pub fn log_prob(&self, theta: &[f64], opts: &PosteriorOptions) -> Result<Vec<f64>> {
        opts.validate()?;
        let d = self.dim_theta();
        if !theta.len().is_multiple_of(d) {
            return Err(Error::invalid(format!("theta has {} values, not a multiple of dim_theta = {d}", theta.len())));
        }
        if let Some(i) = theta.iter().position(|v| !v.is_finite()) {
            return Err(Error::invalid(format!("theta row {}, column {} is not finite", i / d + 1, i % d + 1)));
        }
        let n = theta.len() / d;
        let m = &self.model.inner;
        let mut out = vec![f64::NEG_INFINITY; n];
        let inside = m.integrable_rows(theta, opts.reject_outside_prior || opts.normalize_to_prior);
        // log P_q(θ ∈ box) (0 unless renormalising).
        let log_mass = if opts.normalize_to_prior && !inside.is_empty() { self.prior_mass(opts)?.ln() } else { 0.0 };
        let field = FieldKind::WithDivergence(opts.divergence);
        let chunk = max_chunk(self.gpu(), &m.cfg, field, false, opts.chunk_size);
        let mut done = 0usize;
        while done < inside.len() {
            let c = chunk.min(inside.len() - done);
            let (z, log_det) = m.backward_start(theta, &inside[done..done + c]);
            let key = PlanKey { n: c, field, solver: opts.solver, direction: Direction::Backward, per_row_x: false };
            let start = ChunkStart { seed: opts.seed, first_index: done as u64, round: 0, theta_z: Some(&z) };
            let lq = self.solve_chunk(key, &start)?.log_q;
            for (r, &i) in inside[done..done + c].iter().enumerate() {
                out[i] = lq[r] as f64 + log_det[r] - log_mass;
            }
            done += c;
        }
        Ok(out)
    }

    /// The vector field and its divergence at given points, in the network's z-scored
    /// coordinates: `t` `[n]`, `theta_z` `[n, dim_theta]` (row-major, z-scored θ' = T(θ),
    /// θ itself without a parameter transform).
    /// Returns `(v [n, dim_theta], ∇·v [n])`. With Hutchinson probes, the probes of row
    /// `i` are keyed by `(seed, i)` exactly as in the density ODE. Mainly for tests and
    /// diagnostics.
    ///
    /// # Errors
    /// [`Error::Invalid`] for inconsistent shapes; [`Error::InvalidOption`] for zero
    /// probes; GPU errors.
    pub fn field_and_divergence(
        &self,
        t: &[f64],
        theta_z: &[f64],
        divergence: Divergence,
        seed: u64,
    ) -> Result<(Vec<f64>, Vec<f64>)> {
        divergence.validate()?;
        let d = self.dim_theta();
        let n = t.len();
        if theta_z.len() != n * d {
            return Err(Error::invalid(format!("theta has {} values, expected {n} × {d}", theta_z.len())));
        }
        let chunk = max_chunk(self.gpu(), &self.model.inner.cfg, FieldKind::WithDivergence(divergence), false, None);
        let (mut v, mut div) = (Vec::with_capacity(n * d), Vec::with_capacity(n));
        let mut done = 0;
        while done < n {
            let c = chunk.min(n - done);
            let mut tin = vec![0f32; c * (d + 1)];
            for r in 0..c {
                tin[r * (d + 1)] = t[done + r] as f32;
                for j in 0..d {
                    tin[r * (d + 1) + 1 + j] = theta_z[(done + r) * d + j] as f32;
                }
            }
            let k = eval_with_divergence(self.gpu(), &self.net(), &self.x_z, divergence, seed, done as u64, &tin)?;
            for row in k.chunks(d + 1) {
                v.extend(row[..d].iter().map(|&x| x as f64));
                div.push(row[d] as f64);
            }
            done += c;
        }
        Ok((v, div))
    }
}
