//! Held-out negative log-likelihood: `−mean_i log q(θ_i | x_i)` over simulations the
//! model did not train on. It needs no reference posterior, so it scores a model on any
//! simulator, and it is comparable across networks, training settings and parameter
//! transforms (log-densities are in original units of θ). It is the model-selection
//! criterion of the accuracy issue (issue 11); the flow-matching validation loss is
//! not comparable across parameter transforms.

use crate::error::{Error, Result};
pub use crate::model::{HeldOutNll, Reflection};
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
    let rows = &rows[..rows.len().min(HELD_OUT_MAX_PAIRS)];
    let floor = 0.5 / draws.max(1) as f64;
    let mass = prior_masses(model, prior, x, rows, draws, seed)?;
    let n = mass.len().max(1) as f64;
    Ok(PriorMass {
        mean_log: mass.iter().map(|m| m.max(floor).ln()).sum::<f64>() / n,
        low_share: mass.iter().filter(|&&m| m < LOW_MASS).count() as f64 / n,
        observations: mass.len(),
    })
}

/// `M(x_r)` per row of `rows` (all of them): the share of `draws` flow samples (dopri5,
/// no rejection, one amortized solve) inside `prior`.
fn prior_masses(model: &GpuModel, prior: &BoxPrior, x: &[f64], rows: &[usize], draws: usize, seed: u64) -> Result<Vec<f64>> {
    let dx = model.dim_x();
    let n = x.len() / dx.max(1);
    if rows.is_empty() || draws == 0 {
        return Err(Error::invalid("held-out prior mass: no validation rows or no draws"));
    }
    if let Some(&r) = rows.iter().find(|&&r| r >= n) {
        return Err(Error::invalid(format!("held-out prior mass: row {} is out of range ({n} rows)", r + 1)));
    }
    let xs: Vec<f64> = rows.iter().flat_map(|&r| x[r * dx..(r + 1) * dx].iter().copied()).collect();
    let opts = PosteriorOptions { reject_outside_prior: false, seed, ..Default::default() };
    let samples = model.sample_batched_in(&xs, XUnits::Transformed, draws, &opts)?;
    Ok(samples.iter().map(|s| (0..s.n()).filter(|&i| prior.contains(s.row(i))).count() as f64 / draws as f64).collect())
}

/// Most pairs [`held_out_reflection`] compares (the first of the rows given): each
/// costs `dim_theta + 1` exact log-densities and up to `2^`[`MAX_MIRRORED_COMPONENTS`]
/// more; 100 pairs separated the two sampling modes by 2.8 to 3.4 standard errors on
/// the four models where reflection won (BENCHMARKS.md, "Reflection at the box bounds").
pub const REFLECTION_MAX_PAIRS: usize = 100;

/// Standard errors of the paired difference by which reflection's held-out NLL must
/// beat rejection's before sampling reflects by default ([`held_out_reflection`]).
pub const REFLECT_MARGIN_SE: f64 = 2.0;

/// A component whose one-component mirror image has at least this density ratio to
/// the point, `q(R_j θ) / q(θ)`, is mirrored in combination with the others
/// ([`held_out_reflection`]).
pub const MIRROR_RATIO_FLOOR: f64 = 1e-3;

/// Most components mirrored in combination per pair (the ones with the largest
/// one-component ratios): at most `2^6 − 7 = 57` further images.
pub const MAX_MIRRORED_COMPONENTS: usize = 6;

/// Compares, on held-out pairs, the two densities a flow that leaks past its box prior
/// can be sampled from: with rejection, `q(θ | x) / M(x)` (`M` as in
/// [`held_out_prior_mass`], from `draws` samples per observation), and with reflection
/// at the bounds ([`BoxPrior::reflect`]), `Σ q(image | x)` over the mirror images of θ.
///
/// The reflected density is bounded below by a sum over some of the images, each
/// mirrored at the nearer bound in a set of components: the point, its `dim_theta`
/// one-component images, and every combination of the components whose one-component
/// image carries at least [`MIRROR_RATIO_FLOOR`] of the point's density (the
/// [`MAX_MIRRORED_COMPONENTS`] largest). In ten dimensions the combinations matter:
/// near a corner several components leak at once (gaussian_linear_uniform at 10⁴:
/// the one-component images alone left reflection 0.03 nats behind rejection, the
/// pairs put it 0.13 ahead). Images left out (across the farther bound, or of
/// components below the floor) only make the reported `reflected_nll` an upper bound,
/// so the choice errs towards rejection. Sampling reflects by default (`reflect`) when
/// the mean paired difference `reflected − rejected` is below zero by more than
/// [`REFLECT_MARGIN_SE`] standard errors.
///
/// Where the posterior is cut off by the box (its density jumps at a bound), a flow
/// rounds the jump: the mass it leaks past the bound is the mass it misses inside, the
/// images carry it back, and reflection wins. Where the posterior has no mass at the
/// bounds, the leak is spread that the mirror would put where there is none, and
/// rejection is kept (slcp at 10⁴).
///
/// `theta` `[n, dim_theta]` in original units, `x` `[n, dim_x]` after the model's x
/// transform; the first [`REFLECTION_MAX_PAIRS`] of `rows` are used, minus pairs whose
/// θ is outside the transform's support.
///
/// # Errors
/// [`Error::Invalid`] for empty `rows`, a row out of range, `draws` = 0, shapes that do
/// not match the model, or no pair with a finite log-density; the errors of
/// [`GpuModel::log_prob_pairs`] and [`GpuModel::sample_batched`].
pub fn held_out_reflection(
    model: &GpuModel,
    prior: &BoxPrior,
    theta: &[f64],
    x: &[f64],
    rows: &[usize],
    draws: usize,
    seed: u64,
) -> Result<Reflection> {
    let (d, dx) = (model.dim_theta(), model.dim_x());
    let n = theta.len() / d.max(1);
    if theta.len() != n * d || x.len() != n * dx {
        return Err(Error::invalid(format!("held-out pairs: theta has {} values and x {}, expected n × {d} and n × {dx}", theta.len(), x.len())));
    }
    prior.validate(d)?;
    let rows = &rows[..rows.len().min(REFLECTION_MAX_PAIRS)];
    let mass = prior_masses(model, prior, x, rows, draws, seed)?;
    let opts = PosteriorOptions { reject_outside_prior: false, ..Default::default() };
    // θ with the components in `set` mirrored at their nearer bound.
    let image = |t: &[f64], set: &[usize], out: &mut Vec<f64>| {
        let start = out.len();
        out.extend_from_slice(t);
        for &j in set {
            let v = t[j];
            out[start + j] = if prior.high[j] - v < v - prior.low[j] { 2.0 * prior.high[j] - v } else { 2.0 * prior.low[j] - v };
        }
    };
    let xs_of = |rows: &mut dyn Iterator<Item = (usize, usize)>| -> Vec<f64> { rows.flat_map(|(r, k)| std::iter::repeat_n(&x[r * dx..(r + 1) * dx], k).flatten().copied()).collect() };
    // First pass: each pair as d + 1 rows, θ and its d one-component images.
    let mut th = Vec::with_capacity(rows.len() * (d + 1) * d);
    for &r in rows {
        for j in 0..=d {
            let one = [j.saturating_sub(1)];
            image(&theta[r * d..(r + 1) * d], if j == 0 { &[] } else { &one }, &mut th);
        }
    }
    let first = model.log_prob_pairs_in(&th, &xs_of(&mut rows.iter().map(|&r| (r, d + 1))), XUnits::Transformed, &opts)?;
    // Second pass: the combinations of the components whose one-component image counts.
    let sets: Vec<Vec<Vec<usize>>> = first
        .chunks(d + 1)
        .map(|g| {
            let mut comp: Vec<(f64, usize)> = (0..d).map(|j| (g[j + 1] - g[0], j)).filter(|(r, _)| *r >= MIRROR_RATIO_FLOOR.ln()).collect();
            comp.sort_by(|a, b| b.0.total_cmp(&a.0));
            comp.truncate(MAX_MIRRORED_COMPONENTS);
            let k = comp.len();
            (0u64..1 << k)
                .filter(|m| m.count_ones() >= 2)
                .map(|m| (0..k).filter(|&i| m >> i & 1 == 1).map(|i| comp[i].1).collect())
                .collect()
        })
        .collect();
    let mut th2 = Vec::new();
    for (&r, s) in rows.iter().zip(&sets) {
        for m in s {
            image(&theta[r * d..(r + 1) * d], m, &mut th2);
        }
    }
    let second = if th2.is_empty() {
        Vec::new()
    } else {
        model.log_prob_pairs_in(&th2, &xs_of(&mut rows.iter().zip(&sets).map(|(&r, s)| (r, s.len()))), XUnits::Transformed, &opts)?
    };
    let floor = 0.5 / draws as f64;
    let (mut rej, mut diff) = (Vec::with_capacity(rows.len()), Vec::with_capacity(rows.len()));
    let mut at = 0;
    for (i, g) in first.chunks(d + 1).enumerate() {
        let more = &second[at..at + sets[i].len()];
        at += sets[i].len();
        if !g[0].is_finite() {
            continue;
        }
        let top = g.iter().chain(more).copied().fold(f64::NEG_INFINITY, f64::max);
        let folded = top + g.iter().chain(more).map(|v| (v - top).exp()).sum::<f64>().ln();
        let rejected = -g[0] + mass[i].max(floor).ln();
        rej.push(rejected);
        diff.push(-folded - rejected);
    }
    if rej.is_empty() {
        return Err(Error::invalid("held-out pairs: no pair has a finite log-density"));
    }
    let m = rej.len() as f64;
    let mean_diff = diff.iter().sum::<f64>() / m;
    let var = diff.iter().map(|v| (v - mean_diff).powi(2)).sum::<f64>() / (m - 1.0).max(1.0);
    let se = (var / m).sqrt();
    let rejected_nll = rej.iter().sum::<f64>() / m;
    Ok(Reflection {
        reflect: mean_diff + REFLECT_MARGIN_SE * se < 0.0,
        rejected_nll,
        reflected_nll: rejected_nll + mean_diff,
        difference_se: se,
        pairs: rej.len(),
    })
}
