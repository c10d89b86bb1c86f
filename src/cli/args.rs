//! Flag groups shared by several commands: network and training ([`NetTrainArgs`]),
//! transforms ([`TransformArgs`]) and sampling ([`SolverArgs`]), and their mapping onto
//! the library's configuration types.

use clap::{Args, ValueEnum};
use fmpe::error::{Error, Result};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{PosteriorOptions, Solver};
use fmpe::prior::BoxPrior;
use fmpe::tasks::Task;
use fmpe::train::{LrSchedule, TrainConfig};
use fmpe::transform::{ThetaTransform, XTransform};

/// Network and training flags shared by `train`, `run` and `bench`. Serialised (by
/// flag name, snake_case) into the effective `config.toml` a command writes.
#[derive(Args, Debug, Clone, serde::Serialize)]
pub(crate) struct NetTrainArgs {
    /// Width of the residual blocks, or a comma-separated list of widths (one block each).
    #[arg(long, default_value = "64")]
    pub(crate) hidden: String,
    /// Number of residual blocks when --hidden is a single width.
    #[arg(long, default_value_t = 4)]
    pub(crate) blocks: usize,
    /// How (t, θ_t) enters the network: concat (input [t, θ_t, x]) or glu (input x,
    /// blocks gated by [t, θ_t]).
    #[arg(long, value_enum, default_value_t = CondArg::Concat)]
    pub(crate) conditioning: CondArg,
    /// x-embedding MLP trained jointly with the vector field, whose output replaces x as
    /// the network's input: auto (none for dim x ≤ 32, else 128,128,32), none, or
    /// comma-separated layer widths such as 128,128,32 (GELU between layers).
    #[arg(long, default_value = "auto")]
    pub(crate) embedding: String,
    /// Minibatch size.
    #[arg(long, default_value_t = 256)]
    pub(crate) batch_size: usize,
    /// Initial Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    pub(crate) learning_rate: f64,
    /// Maximum number of epochs (the cosine schedule anneals over them).
    #[arg(long, default_value_t = 200)]
    pub(crate) max_epochs: usize,
    /// Early-stopping patience in epochs (best weights are restored).
    #[arg(long, default_value_t = 30)]
    pub(crate) patience: usize,
    /// Fraction of simulations held out for validation.
    #[arg(long, default_value_t = 0.05)]
    pub(crate) validation_fraction: f64,
    /// Time prior exponent α: t has density ∝ t^α (t = u^(1/(1+α))).
    #[arg(long, default_value_t = 4.0)]
    pub(crate) time_prior_exponent: f64,
    /// σ_min of the optimal-transport path.
    #[arg(long, default_value_t = 1e-4)]
    pub(crate) sigma_min: f64,
    /// Stop training after this many seconds (best weights are kept).
    #[arg(long)]
    pub(crate) max_train_seconds: Option<f64>,
    /// Learning-rate schedule: plateau (ReduceLROnPlateau, factor 0.5, patience 10) or
    /// cosine (annealed to 1e-6 over --max-epochs or --max-train-seconds).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    pub(crate) lr_schedule: ScheduleArg,
    /// Divergence: times in a row a diverged epoch (non-finite loss or gradient) is
    /// rolled back to the last good epoch and retried with a lower learning rate.
    #[arg(long, default_value_t = 3)]
    pub(crate) max_rollbacks: usize,
    /// Divergence: factor applied to the learning rate at each rollback.
    #[arg(long, default_value_t = 0.1)]
    pub(crate) rollback_lr_factor: f64,
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


#[derive(ValueEnum, Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ScheduleArg {
    Plateau,
    Cosine,
}

#[derive(ValueEnum, Clone, Copy, Debug, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum CondArg {
    Concat,
    Glu,
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
    /// Give up (exit code 4) when rejection sampling would take longer than this.
    #[arg(long, default_value_t = 600.0)]
    pub(crate) max_sampling_time: f64,
    /// Samples integrated together on the GPU (default: chosen from the device limits).
    #[arg(long)]
    pub(crate) chunk_size: Option<usize>,
}


/// Parses `--embedding`: `auto`, `none`, or comma-separated positive widths.
fn parse_embedding(s: &str, dim_x: usize) -> Result<Vec<usize>> {
    match s.trim() {
        "auto" => return Ok(fmpe::net::auto_embedding(dim_x)),
        "none" => return Ok(Vec::new()),
        _ => {}
    }
    s.split(',')
        .map(|w| w.trim().parse::<usize>().ok().filter(|&w| w > 0))
        .collect::<Option<Vec<usize>>>()
        .ok_or_else(|| {
            Error::usage(format!(
                "--embedding: expected auto, none or a comma list of positive widths (e.g. 128,128,32), got '{s}'"
            ))
        })
}

impl NetTrainArgs {
    pub(crate) fn net(&self, dim_theta: usize, dim_x: usize) -> Result<NetConfig> {
        let widths: Vec<usize> = self
            .hidden
            .split(',')
            .map(|s| s.trim().parse::<usize>())
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| Error::usage(format!("--hidden: expected a width or a comma list of widths, got '{}'", self.hidden)))?;
        let hidden = if widths.len() == 1 { vec![widths[0]; self.blocks] } else { widths };
        let embedding = parse_embedding(&self.embedding, dim_x)?;
        let cfg = NetConfig {
            dim_theta,
            dim_x,
            hidden,
            conditioning: match self.conditioning {
                CondArg::Concat => Conditioning::Concat,
                CondArg::Glu => Conditioning::Glu,
            },
            embedding,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    pub(crate) fn train(&self, seed: u64) -> Result<TrainConfig> {
        let tc = TrainConfig {
            batch_size: self.batch_size,
            learning_rate: self.learning_rate,
            max_epochs: self.max_epochs,
            patience: self.patience,
            validation_fraction: self.validation_fraction,
            time_prior_exponent: self.time_prior_exponent,
            sigma_min: self.sigma_min,
            seed,
            max_seconds: self.max_train_seconds,
            max_rollbacks: self.max_rollbacks,
            rollback_lr_factor: self.rollback_lr_factor,
            lr_schedule: match self.lr_schedule {
                ScheduleArg::Plateau => LrSchedule::Plateau,
                ScheduleArg::Cosine => LrSchedule::Cosine,
            },
            ..Default::default()
        };
        tc.validate()?;
        Ok(tc)
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
            max_seconds: Some(self.max_sampling_time),
            ..Default::default()
        }
    }
}

