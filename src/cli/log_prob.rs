//! `fmpe log_prob`: log q(θ | x_o) for the rows of a θ file.

use std::path::PathBuf;
use std::time::Instant;

use clap::{Args, ValueEnum};
use fmpe::error::{Error, Result};
use fmpe::io::{read_matrix, write_matrix, Matrix};
use fmpe::model::Model;
use fmpe::posterior::{Divergence, GpuModel, PosteriorOptions, Solver};

use super::util::{check_output_ext, open_gpu, read_observation};

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DivergenceArg {
    Exact,
    Hutchinson,
}

#[derive(Args, Debug)]
pub(crate) struct LogProbArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Observation file: exactly one row of dim_x values.
    #[arg(long)]
    observation: PathBuf,
    /// θ file `[n, dim_theta]` (.csv or .npy), original units.
    #[arg(long)]
    theta: PathBuf,
    /// Output: .csv with header `log_prob`, or .npy `[n, 1]`; one value per θ row, in order.
    #[arg(long)]
    out: PathBuf,
    /// Divergence of the vector field: exact trace or Hutchinson's estimator.
    #[arg(long, value_enum, default_value_t = DivergenceArg::Exact)]
    divergence: DivergenceArg,
    /// Hutchinson probes per point.
    #[arg(long, default_value_t = 1)]
    probes: usize,
    /// Gaussian instead of Rademacher Hutchinson probes.
    #[arg(long)]
    gaussian_probes: bool,
    /// dopri5 absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    atol: f64,
    /// dopri5 relative tolerance.
    #[arg(long, default_value_t = 1e-5)]
    rtol: f64,
    /// Evaluate the flow's own density outside the prior box too (default: −inf there).
    /// Points outside the support of the model's parameter transform stay −inf.
    #[arg(long)]
    ignore_support: bool,
    /// Renormalise the density to the box prior (sbi's leakage correction): subtract
    /// the log of the flow's mass inside the box, estimated from 10,000 samples.
    #[arg(long, conflicts_with = "ignore_support")]
    normalize_to_prior: bool,
    /// Seed of the Hutchinson probes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}


pub(crate) fn log_prob(a: LogProbArgs) -> Result<()> {
    let model = Model::load(&a.model)?;
    let xo = read_observation(&a.observation, model.dim_x())?;
    let theta = read_matrix(&a.theta)?;
    if theta.cols != model.dim_theta() {
        return Err(Error::data(
            &a.theta,
            None,
            None,
            format!("has {} columns, the model has dim_theta = {}", theta.cols, model.dim_theta()),
        ));
    }
    for r in 0..theta.rows {
        if let Some(c) = theta.row(r).iter().position(|v| !v.is_finite()) {
            return Err(Error::data(&a.theta, Some(theta.line_of_row(r)), Some(c + 1), "θ value is not finite"));
        }
    }
    check_output_ext(&a.out)?;
    let divergence = match a.divergence {
        DivergenceArg::Exact => Divergence::Exact,
        DivergenceArg::Hutchinson => Divergence::Hutchinson { probes: a.probes, gaussian: a.gaussian_probes },
    };
    let gpu = open_gpu()?;
    let post = GpuModel::new(gpu.clone(), &model)?.posterior(&xo)?;
    let t0 = Instant::now();
    let opts = PosteriorOptions {
        divergence,
        solver: Solver::Dopri5 { atol: a.atol, rtol: a.rtol },
        seed: a.seed,
        reject_outside_prior: !a.ignore_support,
        normalize_to_prior: a.normalize_to_prior,
        ..Default::default()
    };
    let lp = post.log_prob(&theta.data, &opts)?;
    write_matrix(&a.out, &Matrix::new(theta.rows, 1, lp.clone()).with_header(vec!["log_prob".into()]))?;
    let outside = lp.iter().filter(|v| **v == f64::NEG_INFINITY).count();
    let seconds = t0.elapsed().as_secs_f64();
    crate::say!(
        "log_prob of {} points in {:.2} s{} → {}",
        theta.rows,
        t0.elapsed().as_secs_f64(),
        if outside > 0 { format!(" ({outside} outside the prior support: -inf)") } else { String::new() },
        a.out.display()
    );
    super::json::emit("log-prob", LogProbJson { out: a.out.clone(), points: theta.rows, outside_support: outside, seconds })
}

/// `fmpe log-prob --json`.
#[derive(serde::Serialize, Debug)]
struct LogProbJson {
    /// The file of log-densities written.
    out: std::path::PathBuf,
    points: usize,
    /// Points outside the prior support (log_prob -inf).
    outside_support: usize,
    seconds: f64,
}

