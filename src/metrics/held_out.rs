//! Held-out negative log-likelihood: `−mean_i log q(θ_i | x_i)` over simulations the
//! model did not train on. It needs no reference posterior, so it scores a model on any
//! simulator, and it is comparable across networks, training settings and parameter
//! transforms (log-densities are in original units of θ). It is the model-selection
//! criterion of the accuracy issue (issue 11); the flow-matching validation loss is
//! not comparable across parameter transforms.

use crate::error::{Error, Result};
pub use crate::model::HeldOutNll;
use crate::posterior::{GpuModel, PosteriorOptions, XUnits};
use crate::prior::BoxPrior;

/// Draws per observation with which [`held_out_prior_mass`] estimates the flow's mass
/// inside the box prior.
pub const MASS_DRAWS: usize = 64;

/// The mass below which [`PriorMass::low_share`] counts an observation: rejection to the
/// box there needs more than 20 proposals per sample (sbi warns below 1 %).
pub const LOW_MASS: f64 = 0.05;

/// The flow's posterior mass inside a box prior over held-out observations
/// ([`held_out_prior_mass`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PriorMass {
    /// `mean log M(x)` (≤ 0; nats).
    pub mean_log: f64,
    /// Share of the observations with `M(x) <` [`LOW_MASS`]: how often rejection
    /// sampling to the box would be slow (in [0, 1]).
    pub low_share: f64,
    /// Observations evaluated.
    pub observations: usize,
}

/// Most pairs [`held_out_nll`] evaluates (the first of the rows given): the standard
/// error of the mean is then a few hundredths of a nat on the sbibm tasks, and exact
/// log-densities of 1,000 pairs take seconds on lavapipe.
pub const HELD_OUT_MAX_PAIRS: usize = 1000;

/// `−mean log q(θ_r | x_r)` over `rows` (at most [`HELD_OUT_MAX_PAIRS`], the first of
/// them) of `theta` `[n, dim_theta]` (original units) and `x` `[n, dim_x]` (after the
/// model's x transform, as [`crate::train::Simulations::x`] holds them), with the
/// exact divergence and dopri5 (atol = rtol = 1e-5), the flow's own density (no
/// rejection to the prior box). Typically `rows` = [`crate::train::Trainer::validation_rows`].
///
/// # Errors
/// [`Error::Invalid`] for empty `rows`, a row out of range or shapes that do not match
/// the model; [`Error::Invalid`] when no pair has a finite log-density; the errors of
/// [`GpuModel::log_prob_pairs`].
pub fn held_out_nll(model: &GpuModel, theta: &[f64], x: &[f64], rows: &[usize]) -> Result<HeldOutNll> {
    let (d, dx) = (model.dim_theta(), model.dim_x());
    let n = theta.len() / d.max(1);
    if theta.len() != n * d || x.len() != n * dx {
        return Err(Error::invalid(format!("held-out pairs: theta has {} values and x {}, expected n × {d} and n × {dx}", theta.len(), x.len())));
    }
    let rows = &rows[..rows.len().min(HELD_OUT_MAX_PAIRS)];
    if rows.is_empty() {
        return Err(Error::invalid("held-out pairs: no validation rows (set a validation fraction above 0)"));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::invalid(format!("held-out pairs: row {} is out of range ({n} rows)", r + 1)));
    }
    let th: Vec<f64> = rows.iter().flat_map(|&r| theta[r * d..(r + 1) * d].iter().copied()).collect();
    let xs: Vec<f64> = rows.iter().flat_map(|&r| x[r * dx..(r + 1) * dx].iter().copied()).collect();
    let opts = PosteriorOptions { reject_outside_prior: false, ..Default::default() };
    let lq = model.log_prob_pairs_in(&th, &xs, XUnits::Transformed, &opts)?;
    let finite: Vec<f64> = lq.iter().copied().filter(|v| v.is_finite()).collect();
    if finite.is_empty() {
        return Err(Error::invalid("held-out pairs: no pair has a finite log-density"));
    }
    Ok(HeldOutNll {
        nll: -finite.iter().sum::<f64>() / finite.len() as f64,
        pairs: rows.len(),
        outside_support: rows.len() - finite.len(),
    })
}

/// `mean_r log M(x_r)` over `rows` (the first [`HELD_OUT_MAX_PAIRS`], as
/// [`held_out_nll`] takes them) of `x` `[n, dim_x]` (after the model's x transform),
/// where `M(x) = ∫_box q(θ | x) dθ` is the flow's posterior mass inside the box `prior`,
/// estimated from `draws` samples per observation (dopri5, no rejection; one amortized
/// solve, [`GpuModel::sample_batched`]); an observation none of whose draws lands in
/// the box counts as `M = 1 / (2 draws)` in the mean. Also the share of the
/// observations with `M <` [`LOW_MASS`] ([`PriorMass::low_share`]).
///
/// A model sampled with rejection to the box (trained without the box's logit
/// transform) has the density `q(θ | x) / M(x)` there, so its held-out NLL as sampled is
/// `held_out_nll + mean log M` (≤ the flow's own, `log M ≤ 0`): the score that compares
/// it fairly with a model whose transform keeps all its mass in the box (whose
/// `M = 1`). Without it the flow's leakage outside the box counts against it although
/// no sample ever lands there.
///
/// # Errors
/// [`Error::Invalid`] for empty `rows`, a row out of range, `draws` = 0 or shapes that
/// do not match the model; the errors of [`GpuModel::sample_batched`].
pub fn held_out_prior_mass(model: &GpuModel, prior: &BoxPrior, x: &[f64], rows: &[usize], draws: usize, seed: u64) -> Result<PriorMass> {
    let dx = model.dim_x();
    let n = x.len() / dx.max(1);
    let rows = &rows[..rows.len().min(HELD_OUT_MAX_PAIRS)];
    if rows.is_empty() || draws == 0 {
        return Err(Error::invalid("held-out prior mass: no validation rows or no draws"));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::invalid(format!("held-out prior mass: row {} is out of range ({n} rows)", r + 1)));
    }
    let xs: Vec<f64> = rows.iter().flat_map(|&r| x[r * dx..(r + 1) * dx].iter().copied()).collect();
    let opts = PosteriorOptions { reject_outside_prior: false, seed, ..Default::default() };
    let samples = model.sample_batched_in(&xs, XUnits::Transformed, draws, &opts)?;
    let floor = 0.5 / draws as f64;
    let mass: Vec<f64> = samples.iter().map(|s| (0..s.n()).filter(|&i| prior.contains(s.row(i))).count() as f64 / draws as f64).collect();
    let n = mass.len().max(1) as f64;
    Ok(PriorMass {
        mean_log: mass.iter().map(|m| m.max(floor).ln()).sum::<f64>() / n,
        low_share: mass.iter().filter(|&&m| m < LOW_MASS).count() as f64 / n,
        observations: mass.len(),
    })
}
