//! `fmpe run`: simulate, train and sample a benchmark task end to end.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{write_matrix, Matrix};
use fmpe::model::Model;
use fmpe::posterior::{GpuModel, SampleReport};
use fmpe::tasks::{task_by_name, Task};
use fmpe::Gpu;

use super::args::{NetTrainArgs, SolverArgs, TransformArgs};
use super::pipeline::{self, Job, Source};
use super::util::{mean_std, open_gpu, read_observation, report_line, stage_out_dir};

#[derive(Args, Debug)]
pub(crate) struct RunArgs {
    /// Benchmark task.
    #[arg(long)]
    task: String,
    /// Simulation budget.
    #[arg(long, default_value_t = 10_000)]
    num_simulations: usize,
    /// Observation file (default: simulated from a seeded prior draw).
    #[arg(long)]
    observation: Option<PathBuf>,
    /// Seed of everything.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Output directory (default runs/TASK); replaced atomically at the end.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also compute the held-out NLL of the validation pairs (stored in model.json;
    /// `train` and `evaluate` always do). Off by default to keep the main job short:
    /// on lavapipe the density kernels take about 10 s to compile at first use.
    #[arg(long)]
    held_out_nll: bool,
    /// Posterior samples to draw.
    #[arg(long, default_value_t = 10_000)]
    num_samples: usize,
    #[command(flatten)]
    transform: TransformArgs,
    #[command(flatten)]
    net: NetTrainArgs,
    #[command(flatten)]
    solver: SolverArgs,
}


/// What `run` measured, for summary.json and the report.
struct Outcome<'a> {
    task: &'a dyn Task,
    gpu: &'a Gpu,
    model: &'a Model,
    samples: &'a [f64],
    report: &'a SampleReport,
    observation: &'a [f64],
    dropped: usize,
    /// Seconds: simulate, train, sample, total.
    seconds: [f64; 4],
}

pub(crate) fn run_task(a: RunArgs) -> Result<()> {
    let task = task_by_name(&a.task)?;
    let out = a.out.clone().unwrap_or_else(|| PathBuf::from("runs").join(task.name()));
    let (dt, dx) = (task.dim_theta(), task.dim_x());
    let observation = match &a.observation {
        Some(p) => read_observation(p, dx)?,
        None => {
            // One prior draw and simulation, seeded (separately from the training data).
            let (_, x) = fmpe::tasks::simulate_dataset(task.as_ref(), 1, a.seed ^ 0x0B5E_4FA7_1011);
            x
        }
    };
    if observation.iter().any(|v| !v.is_finite()) {
        return Err(Error::invalid("the simulated observation is not finite; try another --seed"));
    }
    if a.num_simulations < 2 {
        return Err(Error::usage("--num-simulations must be at least 2"));
    }
    if a.num_samples == 0 {
        return Err(Error::usage("--num-samples must be positive"));
    }
    let mut job = Job::new(Source::task(task.as_ref(), 0), &a.transform, &a.net, a.seed, (dt, dx), a.num_simulations)?;
    let _lock = fmpe::io::OutputLock::acquire(&out)?;
    let staged = stage_out_dir(&out)?;
    let gpu = open_gpu()?;

    let t0 = Instant::now();
    let (theta, x, dropped) = pipeline::simulate_finite(task.as_ref(), a.num_simulations, a.seed)?;
    let t_sim = t0.elapsed().as_secs_f64();
    log::info!("simulated {} × {} in {t_sim:.1} s", a.num_simulations, task.name());

    let t1 = Instant::now();
    job.meta.dropped_rows = dropped;
    let model = pipeline::fit(&gpu, job, &theta.data, &x.data, a.held_out_nll)?;
    let t_train = t1.elapsed().as_secs_f64();
    let (best, last) = (&model.info.history[model.info.best_epoch - 1], model.info.history.last().expect("one epoch"));
    log::info!(
        "trained {} epochs in {t_train:.1} s (best epoch {}, validation loss {:.4})",
        last.epoch, model.info.best_epoch, best.val_loss
    );
    model.save(&staged.path().join("model"))?;
    fmpe::plot::training_curve(&model.info.history, &staged.path().join("model").join("training_curve.png"))?;

    let t2 = Instant::now();
    let post = GpuModel::new(gpu.clone(), &model)?.posterior(&observation)?;
    let (s, _, rep) = post.sample(a.num_samples, &a.solver.options(a.seed))?.into_parts();
    let t_sample = t2.elapsed().as_secs_f64();
    write_matrix(&staged.path().join("samples.csv"), &Matrix::new(a.num_samples, dt, s.clone()).with_header(task.theta_names()))?;
    fmpe::plot::pair_plot(&s, None, dt, &task.theta_names(), &staged.path().join("pairplot.png"))?;
    write_matrix(&staged.path().join("observation.csv"), &Matrix::new(1, dx, observation.clone()).with_header(task.x_names()))?;
    let o = Outcome {
        task: task.as_ref(),
        gpu: &gpu,
        model: &model,
        samples: &s,
        report: &rep,
        observation: &observation,
        dropped,
        seconds: [t_sim, t_train, t_sample, t0.elapsed().as_secs_f64()],
    };
    write_summary(&o, &a, &staged.path().join("summary.json"))?;
    staged.commit()?;
    print_report(&o, &a, &out);
    super::json::emit("run", super::json::FileReport::read(&out, "summary.json")?)
}

/// Writes summary.json.
fn write_summary(o: &Outcome<'_>, a: &RunArgs, path: &Path) -> Result<()> {
    let (dt, dx) = (o.task.dim_theta(), o.task.dim_x());
    let (model, [t_sim, t_train, t_sample, total]) = (o.model, o.seconds);
    let (best, last) = (&model.info.history[model.info.best_epoch - 1], model.info.history.last().expect("one epoch"));
    let (mean, std) = mean_std(o.samples, dt);
    let summary = serde_json::json!({
        "task": o.task.name(),
        "adapter": o.gpu.adapter().map(|a| a.to_string()),
        "num_simulations": a.num_simulations,
        "dropped_simulations": o.dropped,
        "num_samples": a.num_samples,
        "dim_theta": dt,
        "dim_x": dx,
        "network": model.info.net,
        "parameters": model.params.len(),
        "transform": model.info.transform,
        "seconds": {"simulate": t_sim, "train": t_train, "sample": t_sample, "total": total},
        "epochs": last.epoch,
        "best_epoch": model.info.best_epoch,
        "final_train_loss": last.train_loss,
        "best_validation_loss": best.val_loss,
        "sampling": o.report,
        "posterior_mean": mean,
        "posterior_std": std,
        "observation": o.observation,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::invalid(e.to_string()))?;
    std::fs::write(path, text).map_err(|e| Error::io(path, e))
}

/// Prints the report on stdout.
fn print_report(o: &Outcome<'_>, a: &RunArgs, out: &Path) {
    let (dt, dx) = (o.task.dim_theta(), o.task.dim_x());
    let (model, [t_sim, t_train, t_sample, _]) = (o.model, o.seconds);
    let (best, last) = (&model.info.history[model.info.best_epoch - 1], model.info.history.last().expect("one epoch"));
    let (mean, std) = mean_std(o.samples, dt);
    crate::say!("fmpe run --task {}", o.task.name());
    crate::say!("  adapter         {}", o.gpu.adapter().map(|a| a.to_string()).unwrap_or_default());
    crate::say!("  simulations     {} ({} dropped), dim θ = {dt}, dim x = {dx}", a.num_simulations, o.dropped);
    let net = &model.info.net;
    let emb = if net.embedding.is_empty() { String::new() } else { format!("x-embedding {:?}, ", net.embedding) };
    crate::say!("  network         {} blocks {:?}, {} conditioning, {emb}{} parameters", net.hidden.len(), net.hidden, net.conditioning, model.params.len());
    crate::say!("  time            simulate {t_sim:.1} s, train {t_train:.1} s, sample {t_sample:.1} s");
    crate::say!("  training        {} epochs, final train loss {:.4}, best validation loss {:.4} (epoch {})", last.epoch, last.train_loss, best.val_loss, model.info.best_epoch);
    crate::say!("  sampling        {}", report_line(o.report));
    for j in 0..dt {
        crate::say!("  {:<15} mean {:>10.4}  std {:>9.4}", o.task.theta_names()[j], mean[j], std[j]);
    }
    crate::say!("  output          {}/samples.csv, pairplot.png, model/, summary.json", out.display());
}
