//! `fmpe simulate`: θ from a task's prior and x from its simulator, as .npy files.

use std::path::PathBuf;
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{write_matrix, Matrix};
use fmpe::tasks::task_by_name;

use super::util::stage_out_dir;

#[derive(Args, Debug)]
pub(crate) struct SimulateArgs {
    /// Benchmark task (two_moons, gaussian_linear, gaussian_linear_uniform, ...).
    #[arg(long)]
    task: String,
    /// Number of simulations.
    #[arg(long)]
    num_simulations: usize,
    /// Seed of the prior draws and the simulator noise.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (created; must not exist or be empty).
    #[arg(long)]
    out: PathBuf,
}


pub(crate) fn simulate(a: SimulateArgs) -> Result<()> {
    let task = task_by_name(&a.task)?;
    if a.num_simulations == 0 {
        return Err(Error::usage("--num-simulations must be positive"));
    }
    let staged = stage_out_dir(&a.out)?;
    let t0 = Instant::now();
    let (theta, x) = fmpe::tasks::simulate_dataset(task.as_ref(), a.num_simulations, a.seed);
    let n = a.num_simulations;
    write_matrix(&staged.path().join("theta.npy"), &Matrix::new(n, task.dim_theta(), theta))?;
    write_matrix(&staged.path().join("x.npy"), &Matrix::new(n, task.dim_x(), x.clone()))?;
    staged.commit()?;
    let failed = x.chunks(task.dim_x()).filter(|r| r.iter().any(|v| !v.is_finite())).count();
    let seconds = t0.elapsed().as_secs_f64();
    crate::say!(
        "simulated {n} × {} ({} θ, {} x) in {:.2} s → {}/theta.npy, x.npy{}",
        task.name(),
        task.dim_theta(),
        task.dim_x(),
        t0.elapsed().as_secs_f64(),
        a.out.display(),
        if failed > 0 { format!(" ({failed} failed simulations have NaN x)") } else { String::new() }
    );
    let body = SimulateReport {
        task: task.name().to_string(),
        num_simulations: n,
        dim_theta: task.dim_theta(),
        dim_x: task.dim_x(),
        failed_simulations: failed,
        seconds,
        theta: a.out.join("theta.npy"),
        x: a.out.join("x.npy"),
    };
    super::json::emit("simulate", body)
}

/// `fmpe simulate --json`.
#[derive(serde::Serialize, Debug)]
struct SimulateReport {
    task: String,
    num_simulations: usize,
    dim_theta: usize,
    dim_x: usize,
    /// Simulations whose x has a NaN.
    failed_simulations: usize,
    seconds: f64,
    /// The files written.
    theta: std::path::PathBuf,
    x: std::path::PathBuf,
}

