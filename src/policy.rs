//! The budget policy (issue 11): the network and training options that follow from the
//! number of simulations and the dimensions of θ and x — never from a task's name.
//!
//! [`Policy::resolve`] maps a [`Budget`] to a [`NetConfig`] and a [`TrainConfig`];
//! [`AutoOptions`] holds the caller's explicit choices (`None` = `auto`, the policy's
//! value) and [`AutoOptions::resolve`] fills the rest in at training time. The result
//! is an ordinary [`NetConfig`] + [`TrainConfig`], which [`crate::model::Model`] stores
//! in `model.json`; [`Resolved::summary`] is the line the command-line tool prints
//! before training.
//!
//! The policy has three budget tiers, split at the geometric midpoints between the
//! sbibm budgets 10³, 10⁴ and 10⁵ (3,163 and 31,623 simulations):
//!
//! | tier | blocks × width | batch | learning rate | validation | weight decay | schedule (optimiser steps) | time prior exponent α |
//! |---|---|---|---|---|---|---|---|
//! | small (< 3,163) | 10 × 64 | 32 | 1e-3 | 20 % | 0 | 8,000 | 4 for dim θ ≤ 2, else 1 |
//! | medium (< 31,623) | 4 × 64 | 256 | 1e-3 | 5 % | 0 | 7,400 | 4 for dim θ ≤ 5, else 1 |
//! | large | 5 × 128 | 512 | 1e-3 | 5 % | 0 | 40,000 | 4 |
//!
//! Every tier uses concat conditioning and the cosine schedule. The dimensions enter
//! through α ([`Policy::time_prior_exponent`]) and the x-embedding (below). The schedule is counted
//! in optimiser steps: `max_epochs = ⌈steps / steps_per_epoch⌉` (at most
//! [`MAX_AUTO_EPOCHS`]), with `steps_per_epoch = ⌊n_train / batch⌋` as the trainer
//! computes it, so a smaller batch or a larger validation share does not silently
//! change how far the cosine schedule anneals. Early-stopping patience is 15 % of the
//! epochs, at least [`MIN_AUTO_PATIENCE`]. The x-embedding follows dim x
//! ([`crate::net::auto_embedding`]: none for dim x ≤ 32, else `[128, 128, 32]`).
//!
//! The medium tier is the pre-policy default (4 × 64, batch 256, 200 epochs at 10⁴
//! simulations, 5 % validation), measured on every sbibm task at 10⁴. The small tier's
//! training was tuned on two_moons, slcp and sir at 10³, and its network (10 blocks, as
//! in the FMPE paper's 10³ sweep: two_moons 0.775 → 0.631 against 4 blocks) and α on
//! all ten tasks (BENCHMARKS.md, "Budget policy (issue 11)" and "Depth and time prior
//! at 10³"). The large tier follows the paper's direction (larger network and batch)
//! and is not yet measured.
//!
//! Where the better choice is data-dependent the policy trains candidates and keeps
//! the lowest held-out NLL ([`AutoOptions::candidates`], trained by
//! [`crate::select::fit_candidates`]): in the small tier a box prior's logit transform
//! against none, and in the medium tier the same for dim θ > [`LOW_DIM_THETA`]. At 10³ it
//! chose no transform on gaussian_mixture, whose C2ST went from 0.774 to 0.658, and on
//! two_moons (0.654 → 0.647), and kept the logit on slcp, slcp_distractors and
//! gaussian_linear_uniform (BENCHMARKS.md, "Selection by held-out NLL at 10³"). At 10⁴
//! it picks no transform on slcp (C2ST 0.929 → 0.854 on observations 1–3) and keeps
//! the logit on gaussian_linear_uniform. For dim θ ≤ 2 the medium tier trains one
//! configuration: comparing doubles the training, and the main job (two_moons at 10⁴)
//! would take about 85–90 s against its 90 s target; `--select-transform on` turns it
//! on (gaussian_mixture at 10⁴: 0.646 → 0.624). The large tier (unmeasured for this)
//! trains one configuration.
//!
//! A change of policy is a visible, deliberate change: the unit test below pins the
//! resolved values for every (budget, task dimensions) row of the sbibm table.

use crate::error::{Error, Result};
use crate::net::{auto_embedding, Conditioning, NetConfig};
use crate::train_config::{LrSchedule, TrainConfig, TrainingReflection};
use crate::transform::{Bijection, ThetaTransform};

/// Lower tier boundary: budgets below this many simulations use the small tier
/// (⌈√10 · 10³⌉, the geometric midpoint of 10³ and 10⁴).
pub const SMALL_BUDGET_BELOW: usize = 3_163;
/// Upper tier boundary: budgets from this many simulations on use the large tier
/// (⌈√10 · 10⁴⌉, the geometric midpoint of 10⁴ and 10⁵).
pub const LARGE_BUDGET_FROM: usize = 31_623;
/// Upper bound on the epochs the step-counted schedule resolves to (tiny datasets
/// would otherwise get tens of thousands of one-step epochs).
pub const MAX_AUTO_EPOCHS: usize = 2_000;
/// Lower bound on the automatic early-stopping patience, in epochs.
pub const MIN_AUTO_PATIENCE: usize = 20;
/// Largest dim θ that keeps the tier's time prior exponent in the small tier, and
/// up to which the medium tier trains one configuration.
pub const LOW_DIM_THETA: usize = 2;
/// Largest dim θ that keeps α = 4 in the medium tier (slcp, dim θ 5, is better at 4;
/// gaussian_linear and bernoulli_glm, dim θ 10, at 1; no sbibm task lies between).
pub const MEDIUM_DIM_THETA: usize = 5;
/// Time prior exponent α of the small and medium tiers above their dim θ threshold
/// ([`Tier::high_dim_theta_above`]).
pub const HIGH_DIM_ALPHA: f64 = 1.0;
/// Decay per optimiser step of the weights' moving average in the small tier (about
/// the last 1,000 of its 8,000 steps). At 10³ it lowered the C2ST by 0.02–0.06 on five
/// of six tasks and left slcp at its ceiling (BENCHMARKS.md, "Weight averaging"); at
/// 10⁴ it moved six tasks by −0.015 to +0.004, so the medium and large tiers train
/// without one.
pub const SMALL_EMA_DECAY: f64 = 0.999;

/// Width of the band of training on the reflected density
/// ([`crate::train_config::TrainingReflection::margin`]), as a fraction of the box's
/// width: 0.1 (0.2 on gaussian_linear_uniform's `[−1, 1]`, where the flow without it
/// misses mass up to about 0.1 from a bound; BENCHMARKS.md, "Training on the reflected
/// density").
pub const REFLECT_TRAINING_MARGIN: f64 = 0.1;
/// Smallest dim θ whose candidate without the box's logit trains on the reflected
/// density under the policy. Measured on gaussian_linear_uniform (dim θ 10); the box
/// tasks of lower dimension (two_moons, gaussian_mixture, slcp) were not measured with
/// it and keep the plain candidate.
pub const REFLECT_TRAINING_MIN_DIM_THETA: usize = MEDIUM_DIM_THETA + 1;

/// What the policy reads: the simulation budget and the dimensions of θ and x.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    /// Simulations available for training and validation together.
    pub num_simulations: usize,
    /// Dimension of θ.
    pub dim_theta: usize,
    /// Dimension of x as fed to the network.
    pub dim_x: usize,
}

/// The policy's values for one budget tier (see the module docs' table).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Tier {
    /// Tier name (`small`, `medium`, `large`), printed and stored in `model.json`.
    pub name: &'static str,
    /// Width of each residual block.
    pub width: usize,
    /// Number of residual blocks.
    pub blocks: usize,
    /// Minibatch size.
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f64,
    /// Fraction of the simulations held out for validation.
    pub validation_fraction: f64,
    /// Adam L2 weight decay.
    pub weight_decay: f64,
    /// Decay of the weights' moving average per optimiser step (0: none; see
    /// [`TrainConfig::ema_decay`]).
    pub ema_decay: f64,
    /// Length of the cosine schedule in optimiser steps.
    pub steps: usize,
    /// Time prior exponent α (t has density ∝ t^α) for dim θ ≤
    /// [`Tier::high_dim_theta_above`]; see [`Policy::time_prior_exponent`].
    pub time_prior_exponent: f64,
    /// Time prior exponent α for dim θ > [`Tier::high_dim_theta_above`].
    pub time_prior_exponent_high_dim: f64,
    /// The dim θ above which [`Tier::time_prior_exponent_high_dim`] applies.
    pub high_dim_theta_above: usize,
    /// Whether a logit (box-prior) parameter transform is compared with none when the
    /// comparison is `auto` ([`AutoOptions::candidates`]), for dim θ ≤
    /// [`LOW_DIM_THETA`].
    pub compare_without_transform: bool,
    /// The same for dim θ > [`LOW_DIM_THETA`].
    pub compare_without_transform_high_dim: bool,
}

/// The budget policy. Stateless: every value follows from a [`Budget`].
#[derive(Clone, Copy, Debug, Default)]
pub struct Policy;

impl Policy {
    /// The tier of a budget of `num_simulations` (see [`SMALL_BUDGET_BELOW`],
    /// [`LARGE_BUDGET_FROM`]).
    pub fn tier(num_simulations: usize) -> Tier {
        if num_simulations < SMALL_BUDGET_BELOW {
            Tier {
                name: "small",
                width: 64,
                blocks: 10,
                batch_size: 32,
                learning_rate: 1e-3,
                validation_fraction: 0.2,
                weight_decay: 0.0,
                ema_decay: SMALL_EMA_DECAY,
                steps: 8_000,
                time_prior_exponent: 4.0,
                time_prior_exponent_high_dim: HIGH_DIM_ALPHA,
                high_dim_theta_above: LOW_DIM_THETA,
                compare_without_transform: true,
                compare_without_transform_high_dim: true,
            }
        } else if num_simulations < LARGE_BUDGET_FROM {
            Tier {
                name: "medium",
                width: 64,
                blocks: 4,
                batch_size: 256,
                learning_rate: 1e-3,
                validation_fraction: 0.05,
                weight_decay: 0.0,
                ema_decay: 0.0,
                steps: 7_400,
                time_prior_exponent: 4.0,
                time_prior_exponent_high_dim: HIGH_DIM_ALPHA,
                high_dim_theta_above: MEDIUM_DIM_THETA,
                compare_without_transform: false,
                compare_without_transform_high_dim: true,
            }
        } else {
            Tier {
                name: "large",
                width: 128,
                blocks: 5,
                batch_size: 512,
                learning_rate: 1e-3,
                validation_fraction: 0.05,
                weight_decay: 0.0,
                ema_decay: 0.0,
                steps: 40_000,
                time_prior_exponent: 4.0,
                time_prior_exponent_high_dim: 4.0,
                high_dim_theta_above: LOW_DIM_THETA,
                compare_without_transform: false,
                compare_without_transform_high_dim: false,
            }
        }
    }

    /// The time prior exponent α for `budget`: the tier's value (4, which concentrates
    /// training near t = 1, where the posterior's fine structure is learned), except
    /// for dim θ above the tier's threshold (small tier: [`LOW_DIM_THETA`], medium
    /// tier: [`MEDIUM_DIM_THETA`]), where it is [`HIGH_DIM_ALPHA`]: with few
    /// simulations for many parameters, α = 4 leaves the early-time field (which moves
    /// the mass to where x puts it) undertrained. Measured at 10³ (BENCHMARKS.md,
    /// "Depth and time prior at 10³"): gaussian_linear (dim θ 10) held-out NLL 4.41 →
    /// 0.75 with α = 1 (C2ST 0.968 with α = 4, 0.755 with α = 0), while two_moons
    /// (dim θ 2) is best at 4 (α = 1: 0.839, 4: 0.775, 8: 0.857 on observations 1–3).
    /// At 10⁴ (BENCHMARKS.md, "α = 1 at 10⁴ for dim θ 10"): bernoulli_glm 0.657 → 0.606
    /// and gaussian_linear 0.545 → 0.534 on observations 1–3, while slcp (dim θ 5) got
    /// worse (0.854 → 0.897).
    pub fn time_prior_exponent(budget: Budget) -> f64 {
        let tier = Policy::tier(budget.num_simulations);
        if budget.dim_theta > tier.high_dim_theta_above {
            tier.time_prior_exponent_high_dim
        } else {
            tier.time_prior_exponent
        }
    }

    /// The network and training options of the policy for `budget`, with every other
    /// training option at [`TrainConfig::default`]. Same as
    /// `AutoOptions::default().resolve(budget, &TrainConfig::default())`.
    ///
    /// # Errors
    /// As [`AutoOptions::resolve`].
    pub fn resolve(budget: Budget) -> Result<(NetConfig, TrainConfig)> {
        let r = AutoOptions::default().resolve(budget, &TrainConfig::default())?;
        Ok((r.net, r.train))
    }
}

/// The options the policy covers; each `None` means `auto` (the policy's value), each
/// `Some` is the caller's explicit choice and wins.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AutoOptions {
    /// Widths of the residual blocks, one block each (overrides `width` and `blocks`).
    pub hidden: Option<Vec<usize>>,
    /// Width of every residual block (with `blocks` blocks).
    pub width: Option<usize>,
    /// Number of residual blocks (of `width`).
    pub blocks: Option<usize>,
    /// How (t, θ_t) enters the network.
    pub conditioning: Option<Conditioning>,
    /// x-embedding widths (`Some(vec![])`: none).
    pub embedding: Option<Vec<usize>>,
    /// Minibatch size.
    pub batch_size: Option<usize>,
    /// Initial Adam learning rate.
    pub learning_rate: Option<f64>,
    /// Learning-rate schedule.
    pub lr_schedule: Option<LrSchedule>,
    /// Upper bound on epochs (the cosine schedule anneals over them).
    pub max_epochs: Option<usize>,
    /// Early-stopping patience in epochs.
    pub patience: Option<usize>,
    /// Fraction of the simulations held out for validation.
    pub validation_fraction: Option<f64>,
    /// Adam L2 weight decay.
    pub weight_decay: Option<f64>,
    /// Decay of the weights' moving average per optimiser step (0: none).
    pub ema_decay: Option<f64>,
    /// Time prior exponent α (t has density ∝ t^α).
    pub time_prior_exponent: Option<f64>,
    /// Whether [`AutoOptions::candidates`] also trains without a logit (box-prior)
    /// parameter transform and keeps the lower held-out NLL.
    pub compare_without_transform: Option<bool>,
    /// Whether that candidate trains on the reflected density at the box bounds
    /// ([`crate::train_config::TrainingReflection`], margin
    /// [`REFLECT_TRAINING_MARGIN`]); `auto`: from dim θ
    /// [`REFLECT_TRAINING_MIN_DIM_THETA`] on.
    pub reflect_training: Option<bool>,
}

/// One configuration to train: the network and training options and the parameter
/// transform (a candidate of [`AutoOptions::candidates`], trained by
/// [`crate::select::fit_candidates`]).
#[derive(Clone, Debug, PartialEq)]
pub struct Configuration {
    /// The network and training options.
    pub resolved: Resolved,
    /// The parameter transform θ' = T(θ) it trains in.
    pub transform: ThetaTransform,
}

/// The outcome of [`AutoOptions::resolve`]: the options to train with, and where they
/// came from.
#[derive(Clone, Debug, PartialEq)]
pub struct Resolved {
    /// The network.
    pub net: NetConfig,
    /// The training options (with [`TrainConfig::policy`] set).
    pub train: TrainConfig,
}

/// `⌊n_train / batch⌋` for `n` simulations, as the trainer splits them (at least 1).
pub fn steps_per_epoch(n: usize, batch_size: usize, validation_fraction: f64) -> usize {
    let n_val = ((n as f64) * validation_fraction).round() as usize;
    let n_train = n.saturating_sub(n_val).max(1);
    (n_train / batch_size.clamp(1, n_train)).max(1)
}

impl AutoOptions {
    /// Fills every `None` with the policy's value for `budget`; fields the policy does
    /// not cover (seed, σ_min, Adam's constants, wall-clock limit, rollbacks) come from
    /// `base`. When `max_epochs` is `auto` it is the tier's step
    /// count over the steps per epoch of the resolved batch size and validation
    /// fraction; when `patience` is `auto` it is 15 % of the resolved `max_epochs` (at
    /// least [`MIN_AUTO_PATIENCE`]).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] naming the field (`num_simulations`, `hidden`,
    /// `blocks`, `embedding`, `batch_size`, …) when a dimension or the budget is zero
    /// or an explicit value is out of range ([`NetConfig::validate`],
    /// [`TrainConfig::validate`]).
    pub fn resolve(&self, budget: Budget, base: &TrainConfig) -> Result<Resolved> {
        if budget.num_simulations == 0 {
            return Err(Error::option("num_simulations", "must be positive"));
        }
        let tier = Policy::tier(budget.num_simulations);
        let hidden = match &self.hidden {
            Some(h) => h.clone(),
            None => vec![self.width.unwrap_or(tier.width); self.blocks.unwrap_or(tier.blocks)],
        };
        if self.blocks == Some(0) {
            return Err(Error::option("blocks", "must be positive"));
        }
        let net = NetConfig {
            dim_theta: budget.dim_theta,
            dim_x: budget.dim_x,
            hidden,
            conditioning: self.conditioning.unwrap_or(Conditioning::Concat),
            embedding: self.embedding.clone().unwrap_or_else(|| auto_embedding(budget.dim_x)),
        };
        net.validate()?;
        let batch_size = self.batch_size.unwrap_or(tier.batch_size);
        let validation_fraction = self.validation_fraction.unwrap_or(tier.validation_fraction);
        let spe = steps_per_epoch(budget.num_simulations, batch_size, validation_fraction);
        let max_epochs = self.max_epochs.unwrap_or_else(|| tier.steps.div_ceil(spe).clamp(1, MAX_AUTO_EPOCHS));
        let patience = self.patience.unwrap_or_else(|| (max_epochs * 3).div_ceil(20).max(MIN_AUTO_PATIENCE));
        let train = TrainConfig {
            batch_size,
            learning_rate: self.learning_rate.unwrap_or(tier.learning_rate),
            lr_schedule: self.lr_schedule.unwrap_or(LrSchedule::Cosine),
            max_epochs,
            patience,
            validation_fraction,
            weight_decay: self.weight_decay.unwrap_or(tier.weight_decay),
            ema_decay: self.ema_decay.unwrap_or(tier.ema_decay),
            time_prior_exponent: self.time_prior_exponent.unwrap_or_else(|| Policy::time_prior_exponent(budget)),
            policy: Some(crate::train_config::PolicyRecord {
                tier: tier.name.to_string(),
                num_simulations: budget.num_simulations,
                steps_per_epoch: spe,
                explicit: self.explicit_fields(),
            }),
            ..base.clone()
        };
        train.validate()?;
        Ok(Resolved { net, train })
    }

    /// The configurations to train for `budget`, the model with the lowest held-out
    /// NLL to be kept ([`crate::select::fit_candidates`]): [`AutoOptions::resolve`]'s
    /// with `transform` and, when `transform` has a logit component (a box prior) and
    /// the comparison is on (`compare_without_transform`, `auto`: the tier's
    /// [`Tier::compare_without_transform`], or [`Tier::compare_without_transform_high_dim`]
    /// for dim θ > [`LOW_DIM_THETA`]), the same without the transform (sampling
    /// then rejects to the prior box). A transform with no logit (the identity, or a
    /// log-normal prior's log, which belongs to the prior) is not compared. Both
    /// candidates train on the same simulations with the same seed and validation
    /// share, so both are scored on the same held-out pairs.
    ///
    /// The depth is not a candidate: at 10³ the held-out NLL preferred 4 blocks to 10
    /// on gaussian_linear (0.75 against 0.83 nats) while the C2ST got worse (0.711,
    /// 0.689, 0.664 → 0.770, 0.767, 0.799 on observations 1–3), and no task's C2ST
    /// improved with the depth it chose (BENCHMARKS.md, "Selection by held-out NLL at
    /// 10³").
    ///
    /// # Errors
    /// As [`AutoOptions::resolve`].
    pub fn candidates(&self, budget: Budget, base: &TrainConfig, transform: &ThetaTransform) -> Result<Vec<Configuration>> {
        let resolved = self.resolve(budget, base)?;
        Ok(self.candidates_of(budget, resolved, transform))
    }

    /// As [`AutoOptions::candidates`] for a configuration already resolved (by
    /// [`AutoOptions::resolve`], or fixed by the caller): `resolved` with `transform`,
    /// then, when `transform` has a logit component and the comparison is on for
    /// `budget` ([`AutoOptions::compare_without_transform`], `auto`: the tier's), the
    /// same without the transform. When every component is a logit (a box prior) and
    /// [`AutoOptions::reflect_training`] is on (`auto`: dim θ ≥
    /// [`REFLECT_TRAINING_MIN_DIM_THETA`]), that second candidate trains on the
    /// reflected density at the box's bounds ([`TrainConfig::reflect`]). The Python
    /// package resolves the policy in one call and trains in another; this is how the
    /// second one gets the same candidates as the CLI.
    pub fn candidates_of(&self, budget: Budget, resolved: Resolved, transform: &ThetaTransform) -> Vec<Configuration> {
        let tier = Policy::tier(budget.num_simulations.max(1));
        let logit = transform.components.iter().any(|b| matches!(b, Bijection::Logit { .. }));
        let by_tier = if budget.dim_theta > LOW_DIM_THETA { tier.compare_without_transform_high_dim } else { tier.compare_without_transform };
        let compare = logit && self.compare_without_transform.unwrap_or(by_tier);
        let mut out = vec![Configuration { resolved: resolved.clone(), transform: transform.clone() }];
        if compare {
            let mut resolved = resolved;
            let reflect = self.reflect_training.unwrap_or(budget.dim_theta >= REFLECT_TRAINING_MIN_DIM_THETA);
            let bounds: Option<(Vec<f64>, Vec<f64>)> = transform
                .components
                .iter()
                .map(|b| match b {
                    Bijection::Logit { low, high } => Some((*low, *high)),
                    _ => None,
                })
                .collect::<Option<Vec<_>>>()
                .map(|lh| lh.into_iter().unzip());
            if let (true, Some((low, high))) = (reflect, bounds) {
                resolved.train.reflect = Some(TrainingReflection { low, high, margin: REFLECT_TRAINING_MARGIN });
            }
            out.push(Configuration { resolved, transform: ThetaTransform::identity() });
        }
        out
    }

    /// Names of the fields given explicitly (not `auto`), in declaration order.
    pub fn explicit_fields(&self) -> Vec<String> {
        let given = [
            ("hidden", self.hidden.is_some()),
            ("width", self.width.is_some()),
            ("blocks", self.blocks.is_some()),
            ("conditioning", self.conditioning.is_some()),
            ("embedding", self.embedding.is_some()),
            ("batch_size", self.batch_size.is_some()),
            ("learning_rate", self.learning_rate.is_some()),
            ("lr_schedule", self.lr_schedule.is_some()),
            ("max_epochs", self.max_epochs.is_some()),
            ("patience", self.patience.is_some()),
            ("validation_fraction", self.validation_fraction.is_some()),
            ("weight_decay", self.weight_decay.is_some()),
            ("ema_decay", self.ema_decay.is_some()),
            ("time_prior_exponent", self.time_prior_exponent.is_some()),
            ("compare_without_transform", self.compare_without_transform.is_some()),
            ("reflect_training", self.reflect_training.is_some()),
        ];
        given.iter().filter(|(_, g)| *g).map(|(n, _)| n.to_string()).collect()
    }
}

impl Resolved {
    /// One readable line with the resolved network and training options, e.g.
    /// `policy medium (10000 simulations, dim θ 2, dim x 2): network 4 × [64] concat, no
    /// x-embedding; batch 256, learning rate 1e-3 cosine over 200 epochs (37 steps
    /// each), patience 30, validation 5 %, weight decay 0, time prior exponent 4`; explicit choices are listed
    /// at the end.
    pub fn summary(&self) -> String {
        let (n, t) = (&self.net, &self.train);
        let emb = if n.embedding.is_empty() { "no x-embedding".to_string() } else { format!("x-embedding {:?}", n.embedding) };
        let widths = if n.hidden.iter().all(|&w| w == n.hidden[0]) {
            format!("{} × {}", n.hidden.len(), n.hidden[0])
        } else {
            format!("{:?}", n.hidden)
        };
        let sched = match t.lr_schedule {
            LrSchedule::Cosine => "cosine",
            LrSchedule::Plateau => "plateau",
        };
        let (head, spe, explicit) = match &t.policy {
            Some(p) => (
                format!("policy {} ({} simulations, dim θ {}, dim x {})", p.tier, p.num_simulations, n.dim_theta, n.dim_x),
                format!(" ({} steps each)", p.steps_per_epoch),
                if p.explicit.is_empty() { String::new() } else { format!("; explicit: {}", p.explicit.join(", ")) },
            ),
            None => (format!("options (dim θ {}, dim x {})", n.dim_theta, n.dim_x), String::new(), String::new()),
        };
        format!(
            "{head}: network {widths} {} conditioning, {emb}; batch {}, learning rate {:e} {sched} over {} epochs{spe}, \
             patience {}, validation {} %, weight decay {}{}, time prior exponent {}{}{explicit}",
            n.conditioning,
            t.batch_size,
            t.learning_rate,
            t.max_epochs,
            t.patience,
            t.validation_fraction * 100.0,
            if t.weight_decay == 0.0 { "0".to_string() } else { format!("{:e}", t.weight_decay) },
            if t.ema_decay == 0.0 { String::new() } else { format!(", weight average decay {}", t.ema_decay) },
            t.time_prior_exponent,
            t.reflect.as_ref().map_or(String::new(), |r| format!(", trained on the reflected density (margin {} of the box)", r.margin)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One pinned row: budget, dims → blocks × width, embedding, batch, lr, epochs,
    /// patience, validation fraction, weight decay.
    struct Row {
        task: &'static str,
        n: usize,
        dims: (usize, usize),
        hidden: (usize, usize),
        embedding: &'static [usize],
        batch: usize,
        lr: f64,
        epochs: usize,
        patience: usize,
        val: f64,
        wd: f64,
        alpha: f64,
        ema: f64,
    }

    const EMB: &[usize] = &[128, 128, 32];

    /// The policy's output for every sbibm task (dim θ / dim x) at 10³, 10⁴ and 10⁵
    /// simulations. Changing the policy means changing this table, deliberately.
    fn table() -> Vec<Row> {
        let tasks: [(&str, (usize, usize)); 10] = [
            ("two_moons", (2, 2)),
            ("gaussian_linear", (10, 10)),
            ("gaussian_linear_uniform", (10, 10)),
            ("gaussian_mixture", (2, 2)),
            ("slcp", (5, 8)),
            ("slcp_distractors", (5, 100)),
            ("bernoulli_glm", (10, 10)),
            ("bernoulli_glm_raw", (10, 100)),
            ("sir", (2, 10)),
            ("lotka_volterra", (4, 20)),
        ];
        let mut rows = Vec::new();
        for (task, dims) in tasks {
            let embedding: &'static [usize] = if dims.1 > 32 { EMB } else { &[] };
            // α = 1 at 10³ beyond dim θ 2 (gaussian_linear, slcp, …), else 4.
            let alpha_1k = if dims.0 > 2 { 1.0 } else { 4.0 };
            // 10³: 800 training rows / 32 = 25 steps per epoch, ⌈8000 / 25⌉ = 320 epochs.
            rows.push(Row { task, n: 1_000, dims, hidden: (10, 64), embedding, batch: 32, lr: 1e-3, epochs: 320, patience: 48, val: 0.2, wd: 0.0, alpha: alpha_1k, ema: 0.999 });
            // 10⁴: 9500 / 256 = 37 steps per epoch, ⌈7400 / 37⌉ = 200 epochs; α = 1
            // beyond dim θ 5 (gaussian_linear, bernoulli_glm, …), else 4.
            let alpha_10k = if dims.0 > 5 { 1.0 } else { 4.0 };
            rows.push(Row { task, n: 10_000, dims, hidden: (4, 64), embedding, batch: 256, lr: 1e-3, epochs: 200, patience: 30, val: 0.05, wd: 0.0, alpha: alpha_10k, ema: 0.0 });
            // 10⁵: 95000 / 512 = 185 steps per epoch, ⌈40000 / 185⌉ = 217 epochs.
            rows.push(Row { task, n: 100_000, dims, hidden: (5, 128), embedding, batch: 512, lr: 1e-3, epochs: 217, patience: 33, val: 0.05, wd: 0.0, alpha: 4.0, ema: 0.0 });
        }
        rows
    }

    #[test]
    fn the_policy_is_pinned_for_every_sbibm_budget_and_task() {
        let rows = table();
        assert_eq!(rows.len(), 30);
        for r in rows {
            let b = Budget { num_simulations: r.n, dim_theta: r.dims.0, dim_x: r.dims.1 };
            let (net, tc) = Policy::resolve(b).unwrap();
            let what = format!("{} at {}", r.task, r.n);
            assert_eq!(net.hidden, vec![r.hidden.1; r.hidden.0], "{what}: hidden");
            assert_eq!(net.conditioning, Conditioning::Concat, "{what}");
            assert_eq!(net.embedding, r.embedding, "{what}: embedding");
            assert_eq!((net.dim_theta, net.dim_x), r.dims, "{what}");
            assert_eq!(tc.batch_size, r.batch, "{what}: batch");
            assert_eq!(tc.learning_rate, r.lr, "{what}: learning rate");
            assert_eq!(tc.lr_schedule, LrSchedule::Cosine, "{what}");
            assert_eq!(tc.max_epochs, r.epochs, "{what}: epochs");
            assert_eq!(tc.patience, r.patience, "{what}: patience");
            assert_eq!(tc.validation_fraction, r.val, "{what}: validation");
            assert_eq!(tc.weight_decay, r.wd, "{what}: weight decay");
            assert_eq!(tc.time_prior_exponent, r.alpha, "{what}: time prior exponent");
            assert_eq!(tc.ema_decay, r.ema, "{what}: weight average");
            // Fields outside the policy keep the defaults.
            let d = TrainConfig::default();
            assert_eq!((tc.sigma_min, tc.seed), (d.sigma_min, d.seed), "{what}");
            assert!(tc.policy.as_ref().is_some_and(|p| p.explicit.is_empty() && p.num_simulations == r.n), "{what}");
            // The candidates selection compares by held-out NLL: a box prior's logit
            // against none where the tier says so; otherwise the policy's configuration
            // alone.
            let prior = sbibm_transform(r.task);
            let cands = AutoOptions::default().candidates(b, &TrainConfig::default(), &prior).unwrap();
            let got: Vec<bool> = cands.iter().map(|c| c.transform == prior).collect();
            let logit = prior.components.iter().any(|c| matches!(c, Bijection::Logit { .. }));
            // At 10³ with a box prior, and at 10⁴ beyond dim θ 2: both transforms.
            let compared = r.n == 1_000 || (r.n == 10_000 && r.dims.0 > 2);
            let want = if compared && logit { vec![true, false] } else { vec![true] };
            assert_eq!(got, want, "{what}: candidates (with the prior's transform)");
            // The candidate without the logit trains on the reflected density from dim θ
            // 6 (gaussian_linear_uniform); otherwise as the policy's own configuration.
            for c in &cands {
                let reflects = c.transform != prior && r.dims.0 >= REFLECT_TRAINING_MIN_DIM_THETA;
                assert_eq!(c.resolved.train.reflect.is_some(), reflects, "{what}: training on the reflected density");
                let plain = TrainConfig { reflect: None, ..c.resolved.train.clone() };
                assert_eq!((&c.resolved.net, &plain), (&net, &tc), "{what}: a candidate trains as the policy's own configuration");
            }
        }
    }

    /// The parameter transform of an sbibm task's prior: logit for the uniform priors,
    /// log for the log-normal ones (sir, lotka_volterra), none for the Gaussian ones.
    fn sbibm_transform(task: &str) -> ThetaTransform {
        let d = |n: usize, b: Bijection| ThetaTransform::new(vec![b; n]);
        let logit = |l: f64, h: f64| Bijection::Logit { low: l, high: h };
        match task {
            "two_moons" => d(2, logit(-1.0, 1.0)),
            "gaussian_linear_uniform" => d(10, logit(-1.0, 1.0)),
            "gaussian_mixture" => d(2, logit(-10.0, 10.0)),
            "slcp" | "slcp_distractors" => d(5, logit(-3.0, 3.0)),
            "sir" => d(2, Bijection::Log { low: 0.0 }),
            "lotka_volterra" => d(4, Bijection::Log { low: 0.0 }),
            _ => ThetaTransform::identity(),
        }
    }

    #[test]
    fn explicit_values_win_and_the_schedule_follows_the_batch() {
        let b = Budget { num_simulations: 10_000, dim_theta: 2, dim_x: 2 };
        let base = TrainConfig { seed: 7, sigma_min: 1e-3, ..Default::default() };
        let o = AutoOptions { width: Some(32), batch_size: Some(128), weight_decay: Some(1e-4), ..Default::default() };
        let r = o.resolve(b, &base).unwrap();
        assert_eq!(r.net.hidden, vec![32; 4]);
        assert_eq!((r.train.batch_size, r.train.weight_decay), (128, 1e-4));
        // 9500 / 128 = 74 steps per epoch: ⌈7400 / 74⌉ = 100 epochs, patience 15.
        assert_eq!(r.train.max_epochs, 100);
        assert_eq!(r.train.patience, MIN_AUTO_PATIENCE);
        assert_eq!((r.train.seed, r.train.sigma_min, r.train.time_prior_exponent), (7, 1e-3, 4.0));
        let p = r.train.policy.as_ref().unwrap();
        assert_eq!(p.explicit, ["width", "batch_size", "weight_decay"]);
        assert_eq!((p.tier.as_str(), p.steps_per_epoch), ("medium", 74));
        // An explicit list of widths beats width and blocks; explicit epochs are kept.
        let o = AutoOptions { hidden: Some(vec![16, 8]), blocks: Some(9), max_epochs: Some(5), patience: Some(2), ..Default::default() };
        let r = o.resolve(b, &base).unwrap();
        assert_eq!((r.net.hidden.clone(), r.train.max_epochs, r.train.patience), (vec![16, 8], 5, 2));
        let s = r.summary();
        assert!(s.starts_with("policy medium (10000 simulations, dim θ 2, dim x 2): network [16, 8] concat"), "{s}");
        assert!(s.contains("over 5 epochs (37 steps each)") && s.ends_with("explicit: hidden, blocks, max_epochs, patience"), "{s}");
        // An explicit α wins over the small tier's dim-θ rule, and is listed.
        let b10 = Budget { num_simulations: 1_000, dim_theta: 10, dim_x: 10 };
        assert_eq!(AutoOptions::default().resolve(b10, &base).unwrap().train.time_prior_exponent, HIGH_DIM_ALPHA);
        let o = AutoOptions { time_prior_exponent: Some(4.0), ..Default::default() };
        let r = o.resolve(b10, &base).unwrap();
        assert_eq!(r.train.time_prior_exponent, 4.0);
        assert!(r.summary().ends_with("time prior exponent 4; explicit: time_prior_exponent"), "{}", r.summary());
        // The small tier averages the weights; an explicit 0 turns that off, and is listed.
        let s = AutoOptions::default().resolve(b10, &base).unwrap().summary();
        assert!(s.contains("weight decay 0, weight average decay 0.999, time prior exponent 1"), "{s}");
        let r = AutoOptions { ema_decay: Some(0.0), ..Default::default() }.resolve(b10, &base).unwrap();
        assert_eq!(r.train.ema_decay, 0.0);
        assert!(r.summary().contains("weight decay 0, time prior") && r.summary().ends_with("explicit: ema_decay"), "{}", r.summary());
    }

    #[test]
    fn the_transform_comparison_follows_the_tier_and_the_option() {
        let b = Budget { num_simulations: 1_000, dim_theta: 2, dim_x: 2 };
        let base = TrainConfig::default();
        let logit = sbibm_transform("two_moons");
        let one = |o: &AutoOptions, b: Budget| vec![Configuration { resolved: o.resolve(b, &base).unwrap(), transform: logit.clone() }];
        // Off: the policy's configuration alone, explicit flags kept.
        let o = AutoOptions { blocks: Some(4), compare_without_transform: Some(false), ..Default::default() };
        assert_eq!(o.candidates(b, &base, &logit).unwrap(), one(&o, b));
        // Auto in the small tier, and explicit depths: both transforms, same options.
        let o = AutoOptions { hidden: Some(vec![32, 32]), ..Default::default() };
        let c = o.candidates(b, &base, &logit).unwrap();
        assert_eq!(c.iter().map(|c| (c.resolved.net.hidden.clone(), c.transform.is_identity())).collect::<Vec<_>>(), [(vec![32, 32], false), (vec![32, 32], true)]);
        assert_eq!(c[0].resolved, c[1].resolved);
        // No logit, nothing to compare (a log-normal prior's log belongs to the prior).
        for t in [ThetaTransform::identity(), sbibm_transform("sir")] {
            assert_eq!(AutoOptions::default().candidates(b, &base, &t).unwrap().len(), 1);
        }
        // The medium tier compares beyond dim θ 2 only.
        let b4 = Budget { num_simulations: 10_000, ..b };
        assert_eq!(AutoOptions::default().candidates(b4, &base, &logit).unwrap(), one(&AutoOptions::default(), b4));
        let slcp = sbibm_transform("slcp");
        let b4h = Budget { num_simulations: 10_000, dim_theta: 5, dim_x: 8 };
        let c = AutoOptions::default().candidates(b4h, &base, &slcp).unwrap();
        assert_eq!(c.iter().map(|c| c.transform.is_identity()).collect::<Vec<_>>(), [false, true]);
        let b5h = Budget { num_simulations: 100_000, ..b4h };
        assert_eq!(AutoOptions::default().candidates(b5h, &base, &slcp).unwrap().len(), 1);
        // The comparison can be forced where the tier does not make it.
        let o = AutoOptions { compare_without_transform: Some(true), ..Default::default() };
        let c = o.candidates(b4, &base, &logit).unwrap();
        assert_eq!(c.iter().map(|c| c.transform.is_identity()).collect::<Vec<_>>(), [false, true]);
        assert_eq!(c[0].resolved.train.policy.as_ref().unwrap().explicit, ["compare_without_transform"]);
    }

    #[test]
    fn the_candidate_without_the_logit_trains_on_the_reflected_density_from_dim_theta_6() {
        let base = TrainConfig::default();
        let glu = sbibm_transform("gaussian_linear_uniform");
        for n in [1_000, 10_000] {
            let b = Budget { num_simulations: n, dim_theta: 10, dim_x: 10 };
            let c = AutoOptions::default().candidates(b, &base, &glu).unwrap();
            assert_eq!(c.len(), 2);
            assert_eq!(c[0].resolved.train.reflect, None, "the logit candidate does not reflect");
            let r = c[1].resolved.train.reflect.as_ref().expect("the candidate without the logit reflects");
            assert_eq!((r.low.as_slice(), r.high.as_slice(), r.margin), ([-1.0; 10].as_slice(), [1.0; 10].as_slice(), REFLECT_TRAINING_MARGIN));
            let s = c[1].resolved.summary();
            assert!(s.contains("time prior exponent 1, trained on the reflected density (margin 0.1 of the box)"), "{s}");
            // Everything else is the same configuration.
            let plain = Resolved { train: TrainConfig { reflect: None, ..c[1].resolved.train.clone() }, ..c[1].resolved.clone() };
            assert_eq!(plain, c[0].resolved);
            // Turned off by the option, which is then listed as explicit.
            let o = AutoOptions { reflect_training: Some(false), ..Default::default() };
            let c = o.candidates(b, &base, &glu).unwrap();
            assert_eq!(c[1].resolved.train.reflect, None);
            assert!(!c[1].resolved.summary().contains("reflected"));
            assert_eq!(c[1].resolved.train.policy.as_ref().unwrap().explicit, ["reflect_training"]);
        }
        // slcp (dim θ 5) keeps the plain candidate; the option forces it.
        let slcp = sbibm_transform("slcp");
        let b = Budget { num_simulations: 1_000, dim_theta: 5, dim_x: 8 };
        assert_eq!(AutoOptions::default().candidates(b, &base, &slcp).unwrap()[1].resolved.train.reflect, None);
        let o = AutoOptions { reflect_training: Some(true), ..Default::default() };
        assert_eq!(o.candidates(b, &base, &slcp).unwrap()[1].resolved.train.reflect.as_ref().unwrap().high, [3.0; 5]);
    }

    #[test]
    fn tier_boundaries_and_tiny_budgets() {
        assert_eq!(Policy::tier(SMALL_BUDGET_BELOW - 1).name, "small");
        assert_eq!(Policy::tier(SMALL_BUDGET_BELOW).name, "medium");
        assert_eq!(Policy::tier(LARGE_BUDGET_FROM - 1).name, "medium");
        assert_eq!(Policy::tier(LARGE_BUDGET_FROM).name, "large");
        // 10 simulations: 2 validation rows, 8 training rows, one step per epoch; the
        // epochs are capped.
        let (_, tc) = Policy::resolve(Budget { num_simulations: 10, dim_theta: 1, dim_x: 1 }).unwrap();
        assert_eq!((tc.max_epochs, tc.patience), (MAX_AUTO_EPOCHS, 300));
    }

    #[test]
    fn bad_values_are_named_by_their_field() {
        let b = Budget { num_simulations: 1000, dim_theta: 2, dim_x: 2 };
        let name = |o: AutoOptions, b: Budget| match o.resolve(b, &TrainConfig::default()) {
            Err(Error::InvalidOption { name, .. }) => name,
            other => panic!("expected InvalidOption, got {other:?}"),
        };
        assert_eq!(name(AutoOptions::default(), Budget { num_simulations: 0, ..b }), "num_simulations");
        assert_eq!(name(AutoOptions { blocks: Some(0), ..Default::default() }, b), "blocks");
        assert_eq!(name(AutoOptions { width: Some(0), ..Default::default() }, b), "hidden");
        assert_eq!(name(AutoOptions { embedding: Some(vec![0]), ..Default::default() }, b), "embedding");
        assert_eq!(name(AutoOptions { batch_size: Some(0), ..Default::default() }, b), "batch_size");
        assert_eq!(name(AutoOptions { learning_rate: Some(-1.0), ..Default::default() }, b), "learning_rate");
        assert_eq!(name(AutoOptions { validation_fraction: Some(1.0), ..Default::default() }, b), "validation_fraction");
        assert_eq!(name(AutoOptions { weight_decay: Some(-1.0), ..Default::default() }, b), "weight_decay");
        assert_eq!(name(AutoOptions { max_epochs: Some(0), ..Default::default() }, b), "max_epochs");
    }
}
