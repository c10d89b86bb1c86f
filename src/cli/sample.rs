//! `fmpe sample`: posterior samples for one observation.

use std::path::PathBuf;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{write_matrix, Matrix};
use fmpe::model::Model;
use fmpe::posterior::GpuModel;

use super::args::SolverArgs;
use super::util::{check_output_ext, open_gpu, read_observation, report_line};

#[derive(Args, Debug)]
pub(crate) struct SampleArgs {
    /// Model directory written by `fmpe train` or `fmpe run`.
    #[arg(long)]
    model: PathBuf,
    /// Observation file: exactly one row of dim_x values (.csv or .npy).
    #[arg(long)]
    observation: PathBuf,
    /// Number of posterior samples.
    #[arg(long, default_value_t = 10_000)]
    num_samples: usize,
    /// Output file: .csv (header theta names) or .npy.
    #[arg(long)]
    out: PathBuf,
    /// Seed of θ₀.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Append a last column `log_prob` (the flow's log-density of each sample, from one
    /// joint solve with the exact divergence, with the chosen --solver).
    #[arg(long)]
    with_log_prob: bool,
    #[command(flatten)]
    solver: SolverArgs,
}


pub(crate) fn sample(a: SampleArgs) -> Result<()> {
    let model = Model::load(&a.model)?;
    let xo = read_observation(&a.observation, model.dim_x())?;
    if a.num_samples == 0 {
        return Err(Error::usage("--num-samples must be positive"));
    }
    check_output_ext(&a.out)?;
    let gpu = open_gpu()?;
    let post = GpuModel::new(gpu.clone(), &model)?.posterior(&xo)?;
    let d = model.dim_theta();
    let mut names = model.info.theta_names.clone();
    let opts = a.solver.options(a.seed);
    let (data, cols, rep) = if a.with_log_prob {
        let (s, lp, rep) = post.sample_and_log_prob(a.num_samples, &opts)?.into_parts();
        let mut data = Vec::with_capacity(a.num_samples * (d + 1));
        for (row, l) in s.chunks(d).zip(lp.unwrap_or_default()) {
            data.extend_from_slice(row);
            data.push(l);
        }
        names.push("log_prob".into());
        (data, d + 1, rep)
    } else {
        let (s, _, rep) = post.sample(a.num_samples, &opts)?.into_parts();
        (s, d, rep)
    };
    write_matrix(&a.out, &Matrix::new(a.num_samples, cols, data).with_header(names))?;
    crate::say!("{} → {}", report_line(&rep), a.out.display());
    super::json::emit("sample", SampleJson { out: a.out.clone(), columns: cols, with_log_prob: a.with_log_prob, report: rep })
}

/// `fmpe sample --json`.
#[derive(serde::Serialize, Debug)]
struct SampleJson {
    /// The samples file written.
    out: PathBuf,
    /// Its columns (dim θ, + 1 with --with-log-prob).
    columns: usize,
    with_log_prob: bool,
    /// What sampling did (returned, proposed, acceptance rate, ODE steps, seconds).
    report: fmpe::posterior::SampleReport,
}

