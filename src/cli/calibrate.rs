//! `fmpe calibrate`: simulation-based calibration of a trained model — rank statistics
//! of held-out true parameters among posterior samples, and the expected-coverage curve
//! of central credible intervals (Talts et al. 2018; sbi's `run_sbc`).

use std::path::PathBuf;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{drop_nonfinite_rows, read_matrix, Matrix};
use fmpe::model::Model;
use fmpe::posterior::GpuModel;
use fmpe::tasks::{simulate_dataset, task_by_name};

use super::args::SolverArgs;
use super::util::open_gpu;

#[derive(Args, Debug)]
pub(crate) struct CalibrateArgs {
    /// Model directory.
    #[arg(long)]
    model: PathBuf,
    /// Simulate the held-out pairs with this task (default: the model's task).
    #[arg(long)]
    task: Option<String>,
    /// Held-out θ file `[m, dim_theta]` (with --x) instead of simulating.
    #[arg(long, requires = "x")]
    theta: Option<PathBuf>,
    /// Held-out x file `[m, dim_x]`.
    #[arg(long, requires = "theta")]
    x: Option<PathBuf>,
    /// Held-out pairs to simulate.
    #[arg(long, default_value_t = 100)]
    num_pairs: usize,
    /// Posterior samples per pair.
    #[arg(long, default_value_t = 200)]
    num_samples: usize,
    /// Seed of the held-out simulations and the samples.
    #[arg(long, default_value_t = 12345)]
    seed: u64,
    /// Coverage plot (PNG).
    #[arg(long)]
    out: PathBuf,
    #[command(flatten)]
    solver: SolverArgs,
}

pub(crate) fn calibrate(a: CalibrateArgs) -> Result<()> {
    let model = Model::load(&a.model)?;
    let (dt, dx) = (model.dim_theta(), model.dim_x());
    let (theta, x) = match (&a.theta, &a.x) {
        (Some(tp), Some(xp)) => {
            let (t, x, dropped) = drop_nonfinite_rows(&read_matrix(tp)?, &read_matrix(xp)?, tp, xp)?;
            if t.cols != dt || x.cols != dx {
                return Err(Error::invalid(format!(
                    "held-out files have {} and {} columns, the model has dim_theta = {dt}, dim_x = {dx}",
                    t.cols, x.cols
                )));
            }
            if dropped > 0 {
                log::warn!("dropped {dropped} held-out pairs with non-finite x");
            }
            (t.data, x.data)
        }
        _ => {
            let name = a.task.clone().or_else(|| model.info.task.clone()).ok_or_else(|| {
                Error::invalid("the model names no task: pass --task or held-out --theta/--x files")
            })?;
            let task = task_by_name(&name)?;
            if task.dim_theta() != dt || task.dim_x() != dx {
                return Err(Error::invalid(format!("task {name} does not match the model's dimensions")));
            }
            let (t, x) = simulate_dataset(task.as_ref(), a.num_pairs, a.seed);
            let (t, x, _) = drop_nonfinite_rows(
                &Matrix::new(a.num_pairs, dt, t),
                &Matrix::new(a.num_pairs, dx, x),
                std::path::Path::new("(simulated theta)"),
                std::path::Path::new("(simulated x)"),
            )?;
            (t.data, x.data)
        }
    };
    let m = theta.len() / dt;
    if a.num_samples == 0 || m == 0 {
        return Err(Error::usage("--num-samples and the number of held-out pairs must be positive"));
    }
    let gpu = open_gpu()?;
    let on_gpu = GpuModel::new(gpu.clone(), &model)?;
    let mut samples = Vec::with_capacity(m * a.num_samples * dt);
    for i in 0..m {
        let post = on_gpu.posterior(&x[i * dx..(i + 1) * dx])?;
        let (s, _, _) = post.sample(a.num_samples, &a.solver.options(a.seed.wrapping_add(1 + i as u64)))?.into_parts();
        samples.extend(s);
    }
    let ranks = fmpe::metrics::sbc_ranks(&theta, &samples, dt, a.num_samples)?;
    let cov = fmpe::metrics::expected_coverage(&ranks, dt, a.num_samples, &[])?;
    crate::say!("expected coverage over {m} held-out pairs, {} samples each", a.num_samples);
    let mut table = String::from("level ");
    for n in &model.info.theta_names {
        table += &format!(" {n:>10}");
    }
    for (k, lv) in cov.levels.iter().enumerate() {
        table += &format!("\n{lv:>5.2} ");
        for j in 0..dt {
            table += &format!(" {:>10.3}", cov.coverage[k * dt + j]);
        }
    }
    crate::say!("{table}");
    fmpe::plot::coverage_plot(&cov.levels, &cov.coverage, &model.info.theta_names, &a.out)?;
    crate::say!(
        "max |coverage − level| = {:.4}; mean (coverage − level) = {:+.4} (negative: over-confident) → {}",
        cov.max_abs_error,
        cov.mean_error,
        a.out.display()
    );
    let body = CalibrateJson {
        pairs: m,
        num_samples: a.num_samples,
        theta_names: model.info.theta_names.clone(),
        levels: cov.levels.clone(),
        coverage: cov.coverage.chunks(dt).map(|r| r.to_vec()).collect(),
        max_abs_error: cov.max_abs_error,
        mean_error: cov.mean_error,
        plot: a.out.clone(),
    };
    super::json::emit("calibrate", body)
}

/// `fmpe calibrate --json`.
#[derive(serde::Serialize, Debug)]
struct CalibrateJson {
    /// Held-out pairs and posterior samples per pair.
    pairs: usize,
    num_samples: usize,
    theta_names: Vec<String>,
    /// Credible levels and, per level, the coverage of each θ component.
    levels: Vec<f64>,
    coverage: Vec<Vec<f64>>,
    max_abs_error: f64,
    /// Mean (coverage − level): negative is over-confident.
    mean_error: f64,
    /// The coverage plot written.
    plot: std::path::PathBuf,
}
