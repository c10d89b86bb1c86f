//! Flag groups shared by several commands: network and training ([`NetTrainArgs`]),
//! transforms ([`TransformArgs`]) and sampling ([`SolverArgs`]), and their mapping onto
//! the library's configuration types.

use clap::{Args, ValueEnum};
use fmpe::policy::{AutoOptions, Budget, Configuration, Resolved};
use fmpe::error::{Error, Result};
use fmpe::net::Conditioning;
use fmpe::posterior::{PosteriorOptions, Solver};
use fmpe::prior::BoxPrior;
use fmpe::tasks::Task;
use fmpe::train::{LrSchedule, TrainConfig};
use fmpe::transform::{ThetaTransform, XTransform};

/// Network and training flags shared by `train`, `run`, `evaluate` and `bench`.
/// Serialised (by flag name, snake_case) into the effective `config.toml` a command
/// writes. The options the budget policy covers ([`fmpe::policy`]) default to `auto`:
/// resolved at training time from the number of simulations and the dimensions of θ
/// and x; an explicit value overrides the policy.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub(crate) struct NetTrainArgs {
    /// Width of the residual blocks, a comma-separated list of widths (one block each),
    /// or auto (the budget policy: 64 below 31,623 simulations, else 128).
    #[arg(long, default_value = "auto")]
    pub(crate) hidden: String,
    /// Number of residual blocks when --hidden is a single width or auto (auto: 10 below
    /// 3,163 simulations, 4 below 31,623, else 5).
    #[arg(long, default_value = "auto")]
    pub(crate) blocks: Auto<usize>,
    /// How (t, θ_t) enters the network: concat (input [t, θ_t, x]), glu (input x,
    /// blocks gated by [t, θ_t]) or auto (concat).
    #[arg(long, default_value = "auto")]
    pub(crate) conditioning: Auto<Conditioning>,
    /// x-embedding MLP trained jointly with the vector field, whose output replaces x as
    /// the network's input: auto (none for dim x ≤ 32, else 128,128,32), none, or
    /// comma-separated layer widths such as 128,128,32 (GELU between layers).
    #[arg(long, default_value = "auto")]
    pub(crate) embedding: String,
    /// Minibatch size, or auto (the budget policy: 32 below 3,163 simulations, 256
    /// below 31,623, else 512).
    #[arg(long, default_value = "auto")]
    pub(crate) batch_size: Auto<usize>,
    /// Initial Adam learning rate, or auto (1e-3).
    #[arg(long, default_value = "auto")]
    pub(crate) learning_rate: Auto<f64>,
    /// Maximum number of epochs (the cosine schedule anneals over them), or auto: the
    /// budget policy's schedule length in optimiser steps (8,000 below 3,163
    /// simulations, 7,400 below 31,623, else 40,000) over the steps per epoch.
    #[arg(long, default_value = "auto")]
    pub(crate) max_epochs: Auto<usize>,
    /// Early-stopping patience in epochs (best weights are restored), or auto (15 % of
    /// the epochs, at least 20).
    #[arg(long, default_value = "auto")]
    pub(crate) patience: Auto<usize>,
    /// Fraction of simulations held out for validation, or auto (0.2 below 3,163
    /// simulations, else 0.05).
    #[arg(long, default_value = "auto")]
    pub(crate) validation_fraction: Auto<f64>,
    /// Adam L2 weight decay, or auto (0).
    #[arg(long, default_value = "auto")]
    pub(crate) weight_decay: Auto<f64>,
    /// Decay per optimiser step of an exponential moving average of the weights, which
    /// validation, early stopping and the saved model then use (e.g. 0.999: about
    /// 1,000 steps; 0: none), or auto (the budget policy: 0.999 below 3,163
    /// simulations, else 0).
    #[arg(long, default_value = "auto")]
    pub(crate) ema_decay: Auto<f64>,
    /// Time prior exponent α: t has density ∝ t^α (t = u^(1/(1+α))), or auto (the
    /// budget policy: 4, except 1 when dim θ > 2 below 3,163 simulations and when
    /// dim θ > 5 below 31,623).
    #[arg(long, default_value = "auto")]
    pub(crate) time_prior_exponent: Auto<f64>,
    /// Model selection: also train without a box prior's logit transform and keep the
    /// lower held-out NLL: on, off, or auto (on below 3,163 simulations, and below 31,623
    /// when dim θ > 2). A log-normal prior's log transform is never compared.
    #[arg(long, default_value = "auto", value_name = "auto|on|off")]
    pub(crate) select_transform: Auto<OnOff>,
    /// The candidate trained without a box prior's logit (--select-transform) trains on
    /// the reflected density: components near a bound are mirrored across it at random
    /// (within 10 % of the box's width), so the flow learns a density that is smooth at
    /// the bounds and whose samples are folded back into the box. on, off, or auto (on
    /// from dim θ 6).
    #[arg(long, default_value = "auto", value_name = "auto|on|off")]
    pub(crate) reflect_training: Auto<OnOff>,
    /// σ_min of the optimal-transport path.
    #[arg(long, default_value_t = 1e-4)]
    pub(crate) sigma_min: f64,
    /// Stop training after this many seconds (best weights are kept).
    #[arg(long)]
    pub(crate) max_train_seconds: Option<f64>,
    /// Learning-rate schedule: plateau (ReduceLROnPlateau, factor 0.5, patience 10),
    /// cosine (annealed to 1e-6 over --max-epochs or --max-train-seconds) or auto
    /// (cosine).
    #[arg(long, default_value = "auto")]
    pub(crate) lr_schedule: Auto<ScheduleArg>,
    /// Divergence: times in a row a diverged epoch (non-finite loss or gradient) is
    /// rolled back to the last good epoch and retried with a lower learning rate.
    #[arg(long, default_value_t = 3)]
    pub(crate) max_rollbacks: usize,
    /// Divergence: factor applied to the learning rate at each rollback.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) rollback_lr_factor: f64,
}

/// `on` or `off`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum OnOff {
    On,
    Off,
}

impl std::str::FromStr for OnOff {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "on" => Ok(OnOff::On),
            "off" => Ok(OnOff::Off),
            _ => Err(format!("expected on or off, got '{s}'")),
        }
    }
}

/// A flag value that is `auto` (the budget policy's choice, resolved at training time)
/// or an explicit value. Written into `config.toml` as the string `"auto"` or the value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Auto<T> {
    /// The policy's value.
    Auto,
    /// An explicit value.
    Value(T),
}

impl<T: Clone> Auto<T> {
    /// The explicit value, or `None` for `auto`.
    pub(crate) fn get(&self) -> Option<T> {
        match self {
            Auto::Auto => None,
            Auto::Value(v) => Some(v.clone()),
        }
    }
}

impl<T: std::str::FromStr> std::str::FromStr for Auto<T>
where
    T::Err: std::fmt::Display,
{
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.trim() {
            "auto" => Ok(Auto::Auto),
            v => v.parse().map(Auto::Value).map_err(|e| format!("expected auto or a value ({e})")),
        }
    }
}

impl<T: std::fmt::Display> std::fmt::Display for Auto<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Auto::Auto => f.write_str("auto"),
            Auto::Value(v) => v.fmt(f),
        }
    }
}

impl<T: serde::Serialize> serde::Serialize for Auto<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        match self {
            Auto::Auto => s.serialize_str("auto"),
            Auto::Value(v) => v.serialize(s),
        }
    }
}

/// The parameter-transform flag of the commands that train a model (`train`, `run`,
/// `evaluate`).
#[derive(Args, Debug, Clone, serde::Serialize)]
pub(crate) struct TransformArgs {
    /// Train and sample in θ itself. By default a bounded prior is trained in an
    /// unbounded space (sbi's bijections for bounded priors): logit for box (uniform) components, log for
    /// log-normal ones; samples are mapped back and log-densities include the Jacobian.
    #[arg(long)]
    pub(crate) no_transform: bool,
    /// Elementwise transform of x before its z-scoring: `auto` (the task's choice:
    /// log1p for lotka_volterra, else none), `none`, or `log1p` (log(1 + x), for
    /// non-negative heavy-tailed data). Stored in the model and applied to observations.
    #[arg(long, default_value = "auto")]
    pub(crate) x_transform: String,
}

impl TransformArgs {
    /// The transform for a box prior (logit per component) or, without one, for a
    /// task's prior; the identity with `--no-transform` or when neither is bounded.
    pub(crate) fn transform(&self, prior: Option<&BoxPrior>, task: Option<&dyn Task>) -> ThetaTransform {
        match (self.no_transform, prior, task) {
            (true, _, _) => ThetaTransform::identity(),
            (false, Some(b), _) => ThetaTransform::from_box(b),
            (false, None, Some(t)) => ThetaTransform::for_prior(t.prior()),
            (false, None, None) => ThetaTransform::identity(),
        }
    }

    /// The x transform from `--x-transform` (`auto`: the task's default, else none).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] `"x_transform"` for an unknown name.
    pub(crate) fn x_transform(&self, task: Option<&dyn Task>) -> Result<XTransform> {
        match self.x_transform.as_str() {
            "auto" => Ok(task.map(|t| t.default_x_transform()).unwrap_or_default()),
            s => s
                .parse()
                .map_err(|_| Error::option("x_transform", format!("expected auto, none or log1p, got '{s}'"))),
        }
    }
}


#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScheduleArg {
    Plateau,
    Cosine,
}

impl std::str::FromStr for ScheduleArg {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s {
            "plateau" => Ok(ScheduleArg::Plateau),
            "cosine" => Ok(ScheduleArg::Cosine),
            other => Err(format!("unknown schedule '{other}' (expected plateau or cosine)")),
        }
    }
}


#[derive(ValueEnum, Clone, Copy, Debug)]
pub(crate) enum SolverArg {
    Dopri5,
    Rk4,
}

/// Sampling flags shared by `sample`, `run` and `evaluate`.
#[derive(Args, Debug, Clone)]
pub(crate) struct SolverArgs {
    /// ODE solver.
    #[arg(long, value_enum, default_value_t = SolverArg::Dopri5)]
    pub(crate) solver: SolverArg,
    /// dopri5 absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub(crate) atol: f64,
    /// dopri5 relative tolerance.
    #[arg(long, default_value_t = 1e-5)]
    pub(crate) rtol: f64,
    /// rk4 steps.
    #[arg(long, default_value_t = 50)]
    pub(crate) steps: usize,
    /// Keep samples outside the prior support (default: reject and redraw).
    #[arg(long)]
    pub(crate) no_reject: bool,
    /// Fold samples that leave the box prior back into it at its bounds (mirrored)
    /// instead of rejecting them: for posteriors cut off by the box (BENCHMARKS.md,
    /// "Reflection at the box bounds"). Not with --with-log-prob. Default: the model's
    /// choice, made at training by held-out NLL (model.json `selection.reflection`).
    #[arg(long, conflicts_with_all = ["no_reject", "no_reflect"])]
    pub(crate) reflect: bool,
    /// Reject samples that leave the box prior even where the model's choice is to
    /// reflect them.
    #[arg(long)]
    pub(crate) no_reflect: bool,
    /// Give up (exit code 4) when rejection sampling would take longer than this.
    #[arg(long, default_value_t = 600.0)]
    pub(crate) max_sampling_time: f64,
    /// Samples integrated together on the GPU (default: chosen from the device limits).
    #[arg(long)]
    pub(crate) chunk_size: Option<usize>,
}


/// Parses `--embedding`: `auto` (`None`, the policy's choice), `none`, or
/// comma-separated positive widths.
fn parse_embedding(s: &str) -> Result<Option<Vec<usize>>> {
    match s.trim() {
        "auto" => return Ok(None),
        "none" => return Ok(Some(Vec::new())),
        _ => {}
    }
    s.split(',')
        .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w > 0))
        .collect::<Option<Vec<usize>>>()
        .map(Some)
        .ok_or_else(|| {
            Error::usage(format!(
                "--embedding: expected auto, none or a comma list of positive widths (e.g. 128,128,32), got '{s}'"
            ))
        })
}

impl NetTrainArgs {
    /// The explicit choices among the options the budget policy covers (`None` = auto).
    ///
    /// # Errors
    /// [`Error::Usage`] naming `--hidden` or `--embedding` when they do not parse.
    pub(crate) fn auto_options(&self) -> Result<AutoOptions> {
        let (hidden, width) = match self.hidden.trim() {
            "auto" => (None, None),
            h => {
                let widths: Vec<usize> = h
                    .split(',')
                    .map(|s| s.trim().parse::<usize>())
                    .collect::<std::result::Result<_, _>>()
                    .map_err(|_| Error::usage(format!("--hidden: expected auto, a width or a comma list of widths, got '{h}'")))?;
                if widths.len() == 1 {
                    (None, Some(widths[0]))
                } else {
                    (Some(widths), None)
                }
            }
        };
        Ok(AutoOptions {
            hidden,
            width,
            blocks: self.blocks.get(),
            conditioning: self.conditioning.get(),
            embedding: parse_embedding(&self.embedding)?,
            batch_size: self.batch_size.get(),
            learning_rate: self.learning_rate.get(),
            lr_schedule: self.lr_schedule.get().map(|s| match s {
                ScheduleArg::Plateau => LrSchedule::Plateau,
                ScheduleArg::Cosine => LrSchedule::Cosine,
            }),
            max_epochs: self.max_epochs.get(),
            patience: self.patience.get(),
            validation_fraction: self.validation_fraction.get(),
            weight_decay: self.weight_decay.get(),
            ema_decay: self.ema_decay.get(),
            time_prior_exponent: self.time_prior_exponent.get(),
            compare_without_transform: self.select_transform.get().map(|v| v == OnOff::On),
            reflect_training: self.reflect_training.get().map(|v| v == OnOff::On),
        })
    }

    /// The training options the policy does not cover (seeded with `seed`).
    fn base_train(&self, seed: u64) -> TrainConfig {
        TrainConfig {
            sigma_min: self.sigma_min,
            seed,
            max_seconds: self.max_train_seconds,
            max_rollbacks: self.max_rollbacks,
            rollback_lr_factor: self.rollback_lr_factor,
            ..Default::default()
        }
    }

    /// The network and training options for `num_simulations` simulations of
    /// `dim_theta` × `dim_x`: the explicit flags, the budget policy for the rest.
    ///
    /// # Errors
    /// As [`NetTrainArgs::auto_options`] and [`AutoOptions::resolve`].
    pub(crate) fn resolve(&self, num_simulations: usize, dim_theta: usize, dim_x: usize, seed: u64) -> Result<Resolved> {
        let budget = Budget { num_simulations, dim_theta, dim_x };
        self.auto_options()?.resolve(budget, &self.base_train(seed))
    }

    /// The configurations to train and choose from by held-out NLL: [`Self::resolve`]'s
    /// with `transform` first, then the policy's alternatives
    /// ([`AutoOptions::candidates`]).
    ///
    /// # Errors
    /// As [`NetTrainArgs::auto_options`] and [`AutoOptions::resolve`].
    pub(crate) fn candidates(
        &self,
        num_simulations: usize,
        (dim_theta, dim_x): (usize, usize),
        seed: u64,
        transform: &ThetaTransform,
    ) -> Result<Vec<Configuration>> {
        let budget = Budget { num_simulations, dim_theta, dim_x };
        self.auto_options()?.candidates(budget, &self.base_train(seed), transform)
    }
}

impl SolverArgs {
    pub(crate) fn options(&self, seed: u64) -> PosteriorOptions {
        PosteriorOptions {
            solver: match self.solver {
                SolverArg::Dopri5 => Solver::Dopri5 { atol: self.atol, rtol: self.rtol },
                SolverArg::Rk4 => Solver::Rk4 { steps: self.steps },
            },
            seed,
            chunk_size: self.chunk_size,
            reject_outside_prior: !self.no_reject,
            reflect_outside_prior: if self.reflect {
                Some(true)
            } else if self.no_reflect || self.no_reject {
                Some(false)
            } else {
                None
            },
            max_seconds: Some(self.max_sampling_time),
            ..Default::default()
        }
    }
}


#[cfg(test)]
mod tests {
    use super::*;

    /// `auto` and explicit values parse, print and serialise (into config.toml) back to
    /// what was given; a bad value says what was expected.
    #[test]
    fn auto_flag_values_round_trip() {
        assert_eq!("auto".parse::<Auto<usize>>(), Ok(Auto::Auto));
        assert_eq!(" 32".parse::<Auto<usize>>(), Ok(Auto::Value(32)));
        assert_eq!("2e-3".parse::<Auto<f64>>(), Ok(Auto::Value(2e-3)));
        assert_eq!("glu".parse::<Auto<Conditioning>>(), Ok(Auto::Value(Conditioning::Glu)));
        assert_eq!("plateau".parse::<Auto<ScheduleArg>>(), Ok(Auto::Value(ScheduleArg::Plateau)));
        let e = "many".parse::<Auto<usize>>().unwrap_err();
        assert!(e.starts_with("expected auto or a value"), "{e}");
        assert!("cosine2".parse::<Auto<ScheduleArg>>().unwrap_err().contains("expected plateau or cosine"));
        assert_eq!((Auto::<usize>::Auto.get(), Auto::Value(7usize).get()), (None, Some(7)));
        assert_eq!((Auto::<f64>::Auto.to_string(), Auto::Value(0.5).to_string()), ("auto".to_string(), "0.5".to_string()));
        #[derive(serde::Serialize)]
        struct T {
            a: Auto<usize>,
            b: Auto<f64>,
            c: Auto<Conditioning>,
        }
        let t = toml::to_string(&T { a: Auto::Auto, b: Auto::Value(0.25), c: Auto::Value(Conditioning::Concat) }).unwrap();
        assert_eq!(t, "a = \"auto\"\nb = 0.25\nc = \"concat\"\n");
    }

    /// `--hidden` maps onto the policy's width, list of widths or auto; a bad list names
    /// the flag.
    #[test]
    fn hidden_maps_onto_width_or_widths() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct P {
            #[command(flatten)]
            net: NetTrainArgs,
        }
        let opts = |args: &[&str]| P::try_parse_from(std::iter::once("p").chain(args.iter().copied())).unwrap().net.auto_options();
        let o = opts(&[]).unwrap();
        assert_eq!(o, AutoOptions::default());
        let o = opts(&["--hidden", "48", "--blocks", "6"]).unwrap();
        assert_eq!((o.hidden, o.width, o.blocks), (None, Some(48), Some(6)));
        let o = opts(&["--hidden", "32,16", "--embedding", "none", "--lr-schedule", "plateau"]).unwrap();
        assert_eq!((o.hidden, o.embedding, o.lr_schedule), (Some(vec![32, 16]), Some(vec![]), Some(LrSchedule::Plateau)));
        assert!(opts(&["--hidden", "wide"]).unwrap_err().to_string().contains("--hidden"));
    }
}
