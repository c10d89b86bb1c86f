//! Model selection by held-out NLL (issue 11): train several configurations on the same
//! simulations and keep the model with the lowest held-out negative log-likelihood
//! ([`crate::metrics::held_out_nll`]), a score that needs no reference posterior and is
//! comparable across networks.
//!
//! The budget policy says which configurations to try
//! ([`crate::policy::AutoOptions::candidates`]: at 10³ simulations a box prior's logit
//! against none, because the better choice is data-dependent there — BENCHMARKS.md,
//! "Selection by held-out NLL at 10³"); [`fit_candidates`] trains them one after another
//! and records every candidate's score in
//! [`ModelInfo::selection`](crate::model::ModelInfo::selection).
//! A candidate sampled with rejection to the box prior (no logit) is scored by the
//! density it is sampled from, `q / M(x)`, `M(x)` its mass inside the box
//! ([`crate::metrics::held_out_prior_mass`]). When such a candidate is kept, the same
//! validation pairs then decide whether it is sampled with reflection at the box bounds
//! instead ([`crate::metrics::held_out_reflection`], recorded in
//! [`Selection::reflection`](crate::model::Selection::reflection)), and sampling
//! reflects by default when that is better by more than the noise. A candidate trained
//! on the reflected density ([`crate::train_config::TrainConfig::reflect`]) is sampled
//! with reflection, and scored by that density's held-out NLL (the upper bound of
//! [`crate::metrics::held_out_reflection`]); every candidate is then scored on the
//! same [`crate::metrics::REFLECTION_MAX_PAIRS`] pairs.
//! The flow-matching validation loss cannot make this choice: on gaussian_linear at 10³
//! it ranks fits 5 nats of NLL apart within its noise (BENCHMARKS.md, stop 18).

use std::sync::Arc;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::metrics::{held_out_nll, held_out_prior_mass, held_out_reflection, PriorMass, MASS_DRAWS, REFLECTION_MAX_PAIRS};
use crate::model::{Candidate, Model, ModelMeta, Reflection, Selection};
use crate::policy::Configuration;
use crate::posterior::GpuModel;
use crate::train::{Control, Progress, Simulations, Trainer};

/// The name [`Selection::metric`] records.
pub const METRIC: &str = "held_out_nll";

/// A candidate's density as sampled from a box its transform does not cover.
enum AsSampled {
    /// Rejected to the box: `q / M`.
    Rejected(PriorMass),
    /// Folded into the box (trained on the reflected density).
    Reflected(Reflection),
}

/// Index of the lowest finite score (the first on a tie); `None` when no score is
/// finite.
pub fn lowest(scores: &[Option<f64>]) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, s) in scores.iter().enumerate() {
        if let Some(v) = s.filter(|v| v.is_finite()) {
            if best.is_none_or(|(_, b)| v < b) {
                best = Some((i, v));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Trains every configuration of `candidates` (at least one; all for the θ and x
/// dimensions of `sims`) on `sims` (x already mapped by `meta`'s x transform), each in
/// its own parameter transform (`meta.transform` is replaced by the kept one's),
/// scores each by its held-out NLL on its validation rows (the same rows for every
/// candidate that shares the seed and validation share, as the policy's candidates
/// do) — for a candidate sampled with rejection to `meta`'s box prior (its transform
/// does not cover the box), the NLL of the density as sampled, `q / M` with `M` the
/// flow's mass in the box ([`held_out_prior_mass`]); for one trained on the reflected
/// density ([`crate::train_config::TrainConfig::reflect`]), the upper bound of the
/// folded density's ([`held_out_reflection`]), and then every candidate on the first
/// [`REFLECTION_MAX_PAIRS`] of its rows — and returns the model with the
/// lowest score, its `info.held_out` and
/// `info.selection` set. A candidate whose score cannot be computed (a step cap on a
/// badly trained flow, say) is recorded with the error and not chosen; when no score
/// can be computed the first candidate (the policy's own configuration) is kept.
///
/// With a single candidate nothing is compared: its model is returned without
/// `selection` (and without `held_out`; see [`crate::metrics::held_out_nll`]).
///
/// `progress` is called after every epoch with the candidate's index; returning
/// [`Control::Stop`] ends that candidate's training (the others still train).
///
/// # Errors
/// [`Error::InvalidOption`] for an empty `candidates` or one whose dimensions differ
/// from `sims`, `"reflect"` for one trained on the reflected density whose box is not
/// `meta`'s prior; the errors of [`Trainer::with_transform`] and training (an invalid
/// option, a diverging loss, GPU errors).
pub fn fit_candidates(
    gpu: &Arc<Gpu>,
    sims: &Simulations,
    meta: &ModelMeta,
    candidates: &[Configuration],
    progress: &mut dyn FnMut(usize, &Progress<'_>) -> Control,
) -> Result<Model> {
    if candidates.is_empty() {
        return Err(Error::option("candidates", "at least one configuration is needed"));
    }
    let (dt, dx) = (sims.theta().len() / sims.rows().max(1), sims.x().len() / sims.rows().max(1));
    if let Some(c) = candidates.iter().map(|c| &c.resolved).find(|c| (c.net.dim_theta, c.net.dim_x) != (dt, dx)) {
        return Err(Error::option(
            "candidates",
            format!("a configuration for dim θ {} and dim x {} does not fit simulations of {dt} and {dx}", c.net.dim_theta, c.net.dim_x),
        ));
    }
    for c in candidates {
        ModelMeta { transform: c.transform.clone(), ..meta.clone() }.validate(dt)?;
        // Folded into `meta`'s box at sampling: it must be the box trained against.
        if let Some(r) = &c.resolved.train.reflect {
            if meta.prior.as_ref().is_none_or(|p| p.low != r.low || p.high != r.high) {
                return Err(Error::option("reflect", "training on the reflected density needs the model's box prior, with the same bounds"));
            }
        }
    }
    let mut best: Option<Model> = None;
    let mut kept_rows: Vec<usize> = Vec::new();
    let mut kept_reflection: Option<Reflection> = None;
    let mut records = Vec::with_capacity(candidates.len());
    // A candidate trained on the reflected density is scored on the reflection's
    // pairs (its density as sampled needs the mirror images); then every candidate is,
    // so the scores stay paired.
    let any_reflecting = meta.prior.is_some() && candidates.iter().any(|c| c.resolved.train.reflect.is_some());
    for (i, cand) in candidates.iter().enumerate() {
        let (c, t0) = (&cand.resolved, Instant::now());
        let trainer = Trainer::with_transform(gpu, c.net.clone(), c.train.clone(), sims.theta(), sims.x(), None, &cand.transform)?;
        let rows = trainer.validation_rows().to_vec();
        let cand_meta = ModelMeta { transform: cand.transform.clone(), ..meta.clone() };
        let model = trainer.fit_with_progress(&mut |p| progress(i, p))?.into_model(cand_meta);
        if candidates.len() == 1 {
            return Ok(model);
        }
        let scored_rows = if any_reflecting { &rows[..rows.len().min(REFLECTION_MAX_PAIRS)] } else { &rows[..] };
        // Sampled from a box its transform does not cover: score the density as
        // sampled, q / M with rejection (held_out_prior_mass), the folded density with
        // reflection (held_out_reflection's upper bound) for a flow trained on the
        // reflected density.
        let outside = meta.prior.as_ref().filter(|b| !cand.transform.covers(b));
        let scored = GpuModel::new(gpu.clone(), &model).and_then(|m| {
            let h = held_out_nll(&m, sims.theta(), sims.x(), scored_rows)?;
            let as_sampled = match outside {
                Some(b) if c.train.reflect.is_some() => {
                    Some(held_out_reflection(&m, b, sims.theta(), sims.x(), scored_rows, MASS_DRAWS, c.train.seed).map(AsSampled::Reflected))
                }
                Some(b) => Some(held_out_prior_mass(&m, b, sims.x(), scored_rows, MASS_DRAWS, c.train.seed).map(AsSampled::Rejected)),
                None => None,
            };
            Ok((h, as_sampled))
        });
        let best_val = model.info.best_epoch.checked_sub(1).and_then(|e| model.info.history.get(e)).map_or(f64::NAN, |r| r.val_loss);
        let (nll, mass, reflection, error) = match &scored {
            Ok((h, None)) => (Some(h.nll), None, None, None),
            Ok((h, Some(Ok(AsSampled::Rejected(pm))))) => (Some(h.nll + pm.mean_log), Some(*pm), None, None),
            Ok((_, Some(Ok(AsSampled::Reflected(r))))) => (Some(r.reflected_nll), None, Some(*r), None),
            Ok((_, Some(Err(e)))) => (None, None, None, Some(format!("the density as sampled could not be scored: {e}"))),
            Err(e) => (None, None, None, Some(e.to_string())),
        };
        records.push(Candidate {
            hidden: c.net.hidden.clone(),
            transform: cand.transform.clone(),
            summary: c.summary(),
            held_out_nll: nll,
            reflect_training: c.train.reflect.is_some(),
            log_prior_mass: mass.map(|m| m.mean_log),
            low_mass_share: mass.map(|m| m.low_share),
            error,
            best_validation_loss: best_val,
            epochs: model.info.history.len(),
            best_epoch: model.info.best_epoch,
            seconds: t0.elapsed().as_secs_f64(),
        });
        let scores: Vec<Option<f64>> = records.iter().map(|r| r.held_out_nll).collect();
        // Keep only the best model so far (and the first until one scores).
        if best.is_none() || lowest(&scores) == Some(i) {
            kept_rows = scored_rows.to_vec();
            kept_reflection = reflection;
            let mut model = model;
            model.info.held_out = scored.ok().map(|(h, _)| h);
            best = Some(model);
        }
    }
    let scores: Vec<Option<f64>> = records.iter().map(|r| r.held_out_nll).collect();
    let chosen = lowest(&scores).unwrap_or(0);
    let mut model = best.expect("at least one candidate trained");
    // The kept model leaks past the box: choose how it is sampled (a failure keeps
    // rejection, recorded as no choice). A flow trained on the reflected density
    // reflects whatever the comparison says (its record is kept for the numbers).
    let reflection = match meta.prior.as_ref().filter(|b| !candidates[chosen].transform.covers(b)) {
        Some(_) if kept_reflection.is_some() => kept_reflection,
        Some(b) => GpuModel::new(gpu.clone(), &model)
            .and_then(|m| held_out_reflection(&m, b, sims.theta(), sims.x(), &kept_rows, MASS_DRAWS, candidates[chosen].resolved.train.seed))
            .ok(),
        None => None,
    };
    model.info.selection = Some(Selection { metric: METRIC.to_string(), candidates: records, chosen, reflection });
    Ok(model)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_finite_score_wins_and_ties_go_to_the_first() {
        assert_eq!(lowest(&[Some(2.0), Some(1.0), Some(3.0)]), Some(1));
        assert_eq!(lowest(&[Some(1.0), Some(1.0)]), Some(0));
        assert_eq!(lowest(&[None, Some(f64::NAN), Some(5.0)]), Some(2));
        assert_eq!(lowest(&[Some(-1.0), Some(f64::NEG_INFINITY)]), Some(0));
        assert_eq!(lowest(&[None, Some(f64::INFINITY)]), None);
        assert_eq!(lowest(&[]), None);
    }
}
