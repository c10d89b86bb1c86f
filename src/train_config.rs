//! Training configuration and its record: [`TrainConfig`] (the hyper-parameters, a
//! serde type stored in `model.json`), [`LrSchedule`] and [`EpochRecord`] (one line of
//! the training history).
//!
//! Its own module so that [`crate::model`] can store them without depending on
//! [`crate::train`] (which depends on the model). Depends only on [`crate::error`].

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// Learning-rate schedule.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(rename_all = "lowercase")]
pub enum LrSchedule {
    /// ReduceLROnPlateau: multiply by `lr_factor` after `lr_patience` epochs without a
    /// better validation loss.
    Plateau,
    /// Cosine annealing from `learning_rate` to `min_lr` over `max_epochs` (or over
    /// `max_seconds`, whichever is further along). The default: on two_moons it beat
    /// the plateau schedule clearly at a fixed budget (see BENCHMARKS.md).
    #[default]
    Cosine,
}

/// Training hyper-parameters. Defaults follow the FMPE paper's sbibm setup where it
/// states them (σ_min = 1e-4, α = 4) and sbi's conventions elsewhere; the options the
/// budget policy covers equal its medium tier at 10⁴ simulations
/// ([`crate::policy::Policy::resolve`] chooses them from the budget and dimensions).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
#[serde(default)]
pub struct TrainConfig {
    /// Minibatch size (capped at the number of training rows).
    pub batch_size: usize,
    /// Initial Adam learning rate.
    pub learning_rate: f64,
    /// Upper bound on epochs.
    pub max_epochs: usize,
    /// Early stopping: stop after this many epochs without a better validation loss.
    pub patience: usize,
    /// ReduceLROnPlateau: epochs without improvement before the rate is multiplied by
    /// `lr_factor`.
    pub lr_patience: usize,
    /// ReduceLROnPlateau factor.
    pub lr_factor: f64,
    /// Lower bound of the learning rate.
    pub min_lr: f64,
    /// Learning-rate schedule.
    pub lr_schedule: LrSchedule,
    /// Fraction of the simulations held out for validation (0 ≤ f < 1).
    pub validation_fraction: f64,
    /// Time prior exponent α: t has density ∝ t^α on [0, 1] (t = u^(1/(1+α))).
    pub time_prior_exponent: f64,
    /// σ_min of the OT path.
    pub sigma_min: f64,
    /// Adam L2 weight decay (PyTorch semantics).
    pub weight_decay: f64,
    /// Decay per optimiser step of an exponential moving average of the weights
    /// (Polyak averaging; `shaders/adam_ema.wgsl`, with the warm-up
    /// `min(decay, (1 + step) / (10 + step))`), in [0, 1); 0 turns it off. With an
    /// average, the validation loss (hence early stopping) and the kept (best) weights
    /// use the average, not the raw weights; the training loss in the history is still
    /// the raw weights' (and without validation rows early stopping watches it).
    /// Example: 0.999 averages over about 1,000 steps.
    pub ema_decay: f64,
    /// Adam β1.
    pub beta1: f64,
    /// Adam β2.
    pub beta2: f64,
    /// Adam ε.
    pub eps: f64,
    /// Seed of the split, the permutations and the path noise.
    pub seed: u64,
    /// Optional wall-clock budget for training, in seconds (best weights are kept).
    pub max_seconds: Option<f64>,
    /// Divergence: how many times in a row an epoch whose loss or gradient is not
    /// finite is rolled back to the last good epoch and retried before training fails.
    pub max_rollbacks: usize,
    /// Divergence: the learning rate is multiplied by this factor at each rollback
    /// (0 < f < 1).
    pub rollback_lr_factor: f64,
    /// Training on the reflected density at the bounds of a box prior (`None`: off).
    /// See [`TrainingReflection`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reflect: Option<TrainingReflection>,
    /// How the budget policy ([`crate::policy`]) resolved these options, when it did
    /// (`None` for options set by hand, and in model files written before the policy).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub policy: Option<PolicyRecord>,
}

/// Training on the reflected density ([`TrainConfig::reflect`]), for a model trained in
/// θ itself (no parameter transform) under a box prior whose posterior may be cut off
/// by the box (gaussian_linear_uniform).
///
/// A flow's smooth vector field cannot make the jump of such a posterior at a bound.
/// Instead, each minibatch mirrors a θ component that lies within
/// `margin · (high − low)` of its nearer bound across that bound, at random, with a
/// probability that falls from 1/2 at the bound to 0 at the margin
/// ([`crate::reference::path::reflection_weight`]; `shaders/train_step_gather.wgsl`).
/// The flow then learns a density that is continuous at the bounds and that folds back
/// to the posterior exactly: its samples are folded into the box
/// ([`crate::prior::BoxPrior::reflect`]), which is the model's sampling default
/// ([`crate::posterior::GpuModel::reflects_by_default`]); its `log_prob` is the
/// density before folding.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct TrainingReflection {
    /// Lower bounds `[dim_theta]` of the box (original units of θ).
    pub low: Vec<f64>,
    /// Upper bounds `[dim_theta]`.
    pub high: Vec<f64>,
    /// Width of the band inside each bound where components may be mirrored, as a
    /// fraction of the box's width in that component, in (0, 0.5].
    pub margin: f64,
}

/// What [`crate::policy::AutoOptions::resolve`] records in [`TrainConfig::policy`] (and
/// so in `model.json`): the budget tier, the budget it was resolved for, the steps per
/// epoch the schedule was counted with, and which options were given explicitly (all
/// others are the policy's).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq, Default)]
#[serde(default)]
pub struct PolicyRecord {
    /// Budget tier (`small`, `medium`, `large`).
    pub tier: String,
    /// Simulations the policy was resolved for.
    pub num_simulations: usize,
    /// Optimiser steps per epoch at the resolved batch size and validation fraction.
    pub steps_per_epoch: usize,
    /// Options given explicitly (snake_case field names); every other covered option
    /// is the policy's.
    pub explicit: Vec<String>,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            batch_size: 256,
            learning_rate: 1e-3,
            max_epochs: 200,
            patience: 30,
            lr_patience: 10,
            lr_factor: 0.5,
            min_lr: 1e-6,
            lr_schedule: LrSchedule::Cosine,
            validation_fraction: 0.05,
            time_prior_exponent: 4.0,
            sigma_min: 1e-4,
            weight_decay: 0.0,
            ema_decay: 0.0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            seed: 0,
            max_seconds: None,
            max_rollbacks: 3,
            rollback_lr_factor: 0.1,
            reflect: None,
            policy: None,
        }
    }
}

impl TrainConfig {
    /// Checks the hyper-parameters.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named after the offending field (`batch_size`,
    /// `learning_rate`, `validation_fraction`, `time_prior_exponent`, `sigma_min`,
    /// `max_epochs`, `rollback_lr_factor`, `lr_factor`, `min_lr`, `weight_decay`, `ema_decay`, `beta1`, `beta2`, `eps`,
    /// `reflect`); a negative or NaN `max_seconds` is named `max_train_seconds`, since
    /// [`crate::posterior::PosteriorOptions`] has a `max_seconds` of its own.
    pub fn validate(&self) -> Result<()> {
        self.validate_optimiser()?;
        if let Some(s) = self.max_seconds {
            if s.is_nan() || s < 0.0 {
                return Err(Error::option("max_train_seconds", format!("must be a non-negative number of seconds, got {s}")));
            }
        }
        if self.batch_size == 0 {
            return Err(Error::option("batch_size", "must be positive"));
        }
        if !(self.learning_rate > 0.0 && self.learning_rate.is_finite()) {
            return Err(Error::option("learning_rate", "must be a positive number"));
        }
        if !(0.0..1.0).contains(&self.validation_fraction) {
            return Err(Error::option("validation_fraction", "must be in [0, 1)"));
        }
        if self.time_prior_exponent.is_nan() || self.time_prior_exponent <= -1.0 {
            return Err(Error::option("time_prior_exponent", "must be > -1"));
        }
        if !(0.0..1.0).contains(&self.sigma_min) {
            return Err(Error::option("sigma_min", "must be in [0, 1)"));
        }
        if self.max_epochs == 0 {
            return Err(Error::option("max_epochs", "must be positive"));
        }
        if !(self.rollback_lr_factor > 0.0 && self.rollback_lr_factor < 1.0) {
            return Err(Error::option("rollback_lr_factor", format!("must be in (0, 1), got {}", self.rollback_lr_factor)));
        }
        if let Some(r) = &self.reflect {
            if !(r.margin > 0.0 && r.margin <= 0.5) {
                return Err(Error::option("reflect", format!("the margin must be in (0, 0.5], got {}", r.margin)));
            }
            if r.low.len() != r.high.len() || r.low.iter().zip(&r.high).any(|(l, h)| !(l.is_finite() && h.is_finite() && l < h)) {
                return Err(Error::option("reflect", "the box needs one finite low < high pair per component"));
            }
        }
        Ok(())
    }

    /// Checks Adam's and the schedule's constants (see [`TrainConfig::validate`]).
    fn validate_optimiser(&self) -> Result<()> {
        let bad = |v: f64, ok: bool| v.is_nan() || !ok;
        if bad(self.lr_factor, self.lr_factor > 0.0 && self.lr_factor <= 1.0) {
            return Err(Error::option("lr_factor", format!("must be in (0, 1], got {}", self.lr_factor)));
        }
        if bad(self.min_lr, self.min_lr >= 0.0) {
            return Err(Error::option("min_lr", format!("must be non-negative, got {}", self.min_lr)));
        }
        if bad(self.weight_decay, self.weight_decay >= 0.0) {
            return Err(Error::option("weight_decay", format!("must be non-negative, got {}", self.weight_decay)));
        }
        if bad(self.ema_decay, (0.0..1.0).contains(&self.ema_decay)) {
            return Err(Error::option("ema_decay", format!("must be in [0, 1) (0: no average), got {}", self.ema_decay)));
        }
        for (name, beta) in [("beta1", self.beta1), ("beta2", self.beta2)] {
            if bad(beta, (0.0..1.0).contains(&beta)) {
                return Err(Error::option(name, format!("must be in [0, 1), got {beta}")));
            }
        }
        if bad(self.eps, self.eps > 0.0 && self.eps.is_finite()) {
            return Err(Error::option("eps", format!("must be a positive number, got {}", self.eps)));
        }
        Ok(())
    }
}

/// Reads a JSON number, or `null` (how serde_json writes NaN and ±inf) as NaN.
fn f64_or_nan<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One line of the training history.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss of the epoch (z-scored units, per θ component).
    #[serde(deserialize_with = "f64_or_nan")]
    pub train_loss: f64,
    /// Validation loss (fixed noise; NaN without validation rows, stored as `null` in
    /// JSON).
    #[serde(deserialize_with = "f64_or_nan")]
    pub val_loss: f64,
    /// Learning rate used in the epoch.
    pub learning_rate: f64,
    /// Wall-clock seconds since training started.
    pub seconds: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every invalid value is refused with the field's name.
    #[test]
    fn invalid_values_are_named_by_their_field() {
        let cases: Vec<(&str, TrainConfig)> = vec![
            ("batch_size", TrainConfig { batch_size: 0, ..Default::default() }),
            ("learning_rate", TrainConfig { learning_rate: f64::NAN, ..Default::default() }),
            ("validation_fraction", TrainConfig { validation_fraction: 1.0, ..Default::default() }),
            ("time_prior_exponent", TrainConfig { time_prior_exponent: -1.0, ..Default::default() }),
            ("sigma_min", TrainConfig { sigma_min: -0.1, ..Default::default() }),
            ("max_epochs", TrainConfig { max_epochs: 0, ..Default::default() }),
            ("lr_factor", TrainConfig { lr_factor: 0.0, ..Default::default() }),
            ("min_lr", TrainConfig { min_lr: -1e-6, ..Default::default() }),
            ("weight_decay", TrainConfig { weight_decay: f64::NAN, ..Default::default() }),
            ("ema_decay", TrainConfig { ema_decay: 1.0, ..Default::default() }),
            ("ema_decay", TrainConfig { ema_decay: -0.5, ..Default::default() }),
            ("beta1", TrainConfig { beta1: 1.0, ..Default::default() }),
            ("beta2", TrainConfig { beta2: -0.1, ..Default::default() }),
            ("eps", TrainConfig { eps: 0.0, ..Default::default() }),
            ("rollback_lr_factor", TrainConfig { rollback_lr_factor: 1.0, ..Default::default() }),
            ("max_train_seconds", TrainConfig { max_seconds: Some(-1.0), ..Default::default() }),
            ("max_train_seconds", TrainConfig { max_seconds: Some(f64::NAN), ..Default::default() }),
            ("reflect", TrainConfig { reflect: Some(refl(0.0)), ..Default::default() }),
            ("reflect", TrainConfig { reflect: Some(refl(0.6)), ..Default::default() }),
            ("reflect", TrainConfig { reflect: Some(TrainingReflection { high: vec![-2.0], ..refl(0.1) }), ..Default::default() }),
            ("reflect", TrainConfig { reflect: Some(TrainingReflection { high: vec![1.0, 1.0], ..refl(0.1) }), ..Default::default() }),
        ];
        for (name, tc) in cases {
            match tc.validate() {
                Err(Error::InvalidOption { name: got, .. }) => assert_eq!(got, name),
                other => panic!("{name}: expected InvalidOption, got {other:?}"),
            }
        }
        assert!(TrainConfig::default().validate().is_ok());
        assert!(TrainConfig { max_seconds: Some(0.0), weight_decay: 0.01, ema_decay: 0.999, ..Default::default() }.validate().is_ok());
        assert!(TrainConfig { reflect: Some(refl(0.5)), ..Default::default() }.validate().is_ok());
    }

    fn refl(margin: f64) -> TrainingReflection {
        TrainingReflection { low: vec![-1.0], high: vec![1.0], margin }
    }
}
