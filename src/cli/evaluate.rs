//! `fmpe evaluate`: the SBI benchmark for one task — train once, sample 10,000 posterior
//! samples per observation (rejected to the prior support), score each against sbibm's
//! reference posterior with the GPU C2ST, and write a table and pair plots.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{read_matrix, write_matrix, Matrix};
use fmpe::posterior::GpuModel;
use fmpe::tasks::{task_by_name, Task};

use super::args::{NetTrainArgs, SolverArgs, TransformArgs};
use super::pipeline::{self, Job, Source};
use super::util::{open_gpu, read_observation, stage_out_dir};

#[derive(Args, Debug)]
pub(crate) struct EvaluateArgs {
    /// Benchmark task.
    #[arg(long)]
    task: String,
    /// Simulation budget.
    #[arg(long, default_value_t = 10_000)]
    num_simulations: usize,
    /// Observations to evaluate: a range `1-10` or a comma list `1,3,5`.
    #[arg(long, default_value = "1-10")]
    observations: String,
    /// sbibm data directory (observations and reference posteriors); default
    /// $FMPE_SBIBM_DIR or ../shared/sbibm.
    #[arg(long)]
    sbibm_dir: Option<PathBuf>,
    /// Output directory (replaced atomically at the end).
    #[arg(long)]
    out: PathBuf,
    /// Seed of everything.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Posterior samples per observation.
    #[arg(long, default_value_t = 10_000)]
    num_samples: usize,
    /// Skip the GPU C2ST: write the samples, plots and table without scores (score them
    /// later with `fmpe c2st REFERENCE SAMPLES`). On CPU adapters (lavapipe) the C2ST
    /// classifier at dim_theta = 10 (width 100) takes far longer than training.
    #[arg(long)]
    no_c2st: bool,
    #[command(flatten)]
    transform: TransformArgs,
    #[command(flatten)]
    net: NetTrainArgs,
    #[command(flatten)]
    solver: SolverArgs,
}

fn parse_observations(s: &str) -> Result<Vec<usize>> {
    let bad = || Error::usage(format!("--observations: expected e.g. 1-10 or 1,3,5 (values 1..10), got '{s}'"));
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        if let Some((a, b)) = part.split_once('-') {
            let (a, b): (usize, usize) = (a.trim().parse().map_err(|_| bad())?, b.trim().parse().map_err(|_| bad())?);
            if a > b {
                return Err(bad());
            }
            out.extend(a..=b);
        } else {
            out.push(part.parse().map_err(|_| bad())?);
        }
    }
    if out.is_empty() || out.iter().any(|&k| k == 0 || k > 10) {
        return Err(bad());
    }
    Ok(out)
}

pub(crate) fn evaluate(a: EvaluateArgs) -> Result<()> {
    let task = task_by_name(&a.task)?;
    if a.num_samples == 0 {
        return Err(Error::usage("--num-samples must be positive"));
    }
    let (dt, dx) = (task.dim_theta(), task.dim_x());
    // Read every observation and reference first, so bad data fails before training.
    let inputs = read_inputs(&a, task.as_ref())?;
    let mut job = Job::new(Source::task(task.as_ref(), 0), &a.transform, &a.net, a.seed, (dt, dx), a.num_simulations)?;
    let _lock = fmpe::io::OutputLock::acquire(&a.out)?;
    let staged = stage_out_dir(&a.out)?;
    let gpu = open_gpu()?;
    let t0 = Instant::now();
    let (theta, x, dropped) = pipeline::simulate_finite(task.as_ref(), a.num_simulations, a.seed)?;
    let t_sim = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    job.meta.dropped_rows = dropped;
    let model = pipeline::fit(&gpu, job, &theta.data, &x.data)?;
    let t_train = t1.elapsed().as_secs_f64();
    model.save(&staged.path().join("model"))?;
    fmpe::plot::training_curve(&model.info.history, &staged.path().join("model").join("training_curve.png"))?;

    let on_gpu = GpuModel::new(gpu.clone(), &model)?;
    // An observation whose rejection sampling gives up (too few samples inside the prior
    // support within --max-sampling-time) is recorded as failed; the others are still
    // scored and written, and the command exits with status 4 afterwards.
    let mut rows = Vec::new();
    let mut failed = Vec::new();
    for input in &inputs {
        let row = score_observation(&a, task.as_ref(), &on_gpu, input, staged.path())?;
        if row.get("error").is_some() {
            failed.push(input.k);
        }
        rows.push(row);
    }
    let md = write_results(&a, task.name(), &rows, staged.path(), |mean, sd| {
        serde_json::json!({
            "task": task.name(), "num_simulations": a.num_simulations, "dropped_simulations": dropped,
            "adapter": gpu.adapter().map(|a| a.to_string()), "network": model.info.net,
            "transform": model.info.transform, "x_transform": model.info.x_transform,
            "epochs": model.info.history.len(), "best_epoch": model.info.best_epoch,
            "seconds": {"simulate": t_sim, "train": t_train, "total": t0.elapsed().as_secs_f64()},
            "c2st_mean": mean, "c2st_std": sd, "observations": rows,
        })
    })?;
    staged.commit()?;
    crate::say!("{}", md.trim_end());
    crate::say!(
        "simulate {t_sim:.1} s, train {t_train:.1} s ({} epochs), total {:.1} s → {}",
        model.info.history.len(),
        t0.elapsed().as_secs_f64(),
        a.out.display()
    );
    super::json::emit("evaluate", super::json::FileReport::read(&a.out, "results.json")?)?;
    if !failed.is_empty() {
        return Err(Error::LowAcceptance(format!(
            "observation(s) {failed:?}: rejection sampling gave up (see above); the other observations are in {} \
             (raise --max-sampling-time, or use --no-reject)",
            a.out.display()
        )));
    }
    Ok(())
}

/// One sbibm observation: its number, x_o and the reference posterior samples.
struct Input {
    k: usize,
    xo: Vec<f64>,
    reference: Matrix,
}

/// Reads the observations `--observations` names and their reference posteriors.
fn read_inputs(a: &EvaluateArgs, task: &dyn Task) -> Result<Vec<Input>> {
    let obs = parse_observations(&a.observations)?;
    let sbibm = a
        .sbibm_dir
        .clone()
        .or_else(|| std::env::var_os("FMPE_SBIBM_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/sbibm"));
    let tdir = sbibm.join(task.name());
    if !tdir.is_dir() {
        return Err(Error::invalid(format!(
            "{} not found: pass --sbibm-dir (the folder with one sub-folder per task)",
            tdir.display()
        )));
    }
    let (dt, dx) = (task.dim_theta(), task.dim_x());
    let mut inputs = Vec::new();
    for k in obs {
        let od = tdir.join(format!("num_observation_{k}"));
        let xo = read_observation(&od.join("observation.csv"), dx)?;
        let rp = od.join("reference_posterior_samples.csv");
        let reference = read_matrix(&rp)?;
        if reference.cols != dt {
            return Err(Error::data(&rp, None, None, format!("has {} columns, the task has dim_theta = {dt}", reference.cols)));
        }
        inputs.push(Input { k, xo, reference });
    }
    Ok(inputs)
}

/// Samples one observation, writes its samples and pair plot into `dir`, scores them
/// with the C2ST (unless `--no-c2st`): returns its row of results.json (with an
/// `error` when rejection sampling gave up).
fn score_observation(a: &EvaluateArgs, task: &dyn Task, on_gpu: &GpuModel, input: &Input, dir: &Path) -> Result<serde_json::Value> {
    let gpu = on_gpu.gpu();
    let (k, dt) = (input.k, task.dim_theta());
    let ts = Instant::now();
    let post = on_gpu.posterior(&input.xo)?;
    let (s, rep) = match post.sample(a.num_samples, &a.solver.options(a.seed.wrapping_add(k as u64))) {
        Ok(v) => {
            let (s, _, rep) = v.into_parts();
            (s, rep)
        }
        Err(Error::LowAcceptance(msg)) => {
            let msg = super::flags::with_flags(&msg);
            log::warn!("observation {k}: failed: {msg}");
            return Ok(serde_json::json!({
                "observation": k, "c2st": serde_json::Value::Null, "error": msg,
                "sample_seconds": ts.elapsed().as_secs_f64(),
            }));
        }
        Err(e) => return Err(e),
    };
    let t_sample = ts.elapsed().as_secs_f64();
    let name = format!("samples_obs{k}.csv");
    write_matrix(&dir.join(&name), &Matrix::new(a.num_samples, dt, s.clone()).with_header(task.theta_names()))?;
    fmpe::plot::pair_plot(&s, Some(&input.reference.data), dt, &task.theta_names(), &dir.join(format!("pairplot_obs{k}.png")))?;
    let tc = Instant::now();
    let score = if a.no_c2st {
        f64::NAN
    } else {
        fmpe::metrics::c2st(gpu, &input.reference.data, &s, dt, &fmpe::metrics::C2stOptions::default())?
    };
    let t_c2st = tc.elapsed().as_secs_f64();
    log::info!(
        "observation {k}: C2ST {} (sample {t_sample:.1} s, acceptance {:.3}, C2ST {t_c2st:.1} s)",
        if a.no_c2st { "not scored".to_string() } else { format!("{score:.4}") },
        rep.acceptance_rate
    );
    Ok(serde_json::json!({
        "observation": k, "c2st": if a.no_c2st { serde_json::Value::Null } else { score.into() }, "acceptance_rate": rep.acceptance_rate,
        "sample_seconds": t_sample, "c2st_seconds": t_c2st, "mean_ode_steps": rep.mean_steps,
    }))
}

/// Writes results.json (built by `summary(c2st_mean, c2st_std)`), results.csv and
/// results.md into `dir`; returns the markdown table.
fn write_results(
    a: &EvaluateArgs,
    task: &str,
    rows: &[serde_json::Value],
    dir: &Path,
    summary: impl FnOnce(serde_json::Value, serde_json::Value) -> serde_json::Value,
) -> Result<String> {
    let scores: Vec<f64> = rows.iter().map(|r| r["c2st"].as_f64().unwrap_or(f64::NAN)).collect();
    // Mean and spread over the scored observations (NaN under --no-c2st or when every
    // observation failed).
    let scored: Vec<f64> = scores.iter().copied().filter(|s| s.is_finite()).collect();
    let mean = if scored.is_empty() { f64::NAN } else { scored.iter().sum::<f64>() / scored.len() as f64 };
    let sd = (scored.iter().map(|s| (s - mean).powi(2)).sum::<f64>() / (scored.len().max(2) - 1) as f64).sqrt();
    let num = |v: f64| if v.is_finite() { serde_json::Value::from(v) } else { serde_json::Value::Null };
    let cell = |v: f64| if v.is_finite() { format!("{v:.4}") } else { "not scored".into() };
    let text = serde_json::to_string_pretty(&summary(num(mean), num(sd))).map_err(|e| Error::invalid(e.to_string()))?;
    let write = |name: &str, text: &str| std::fs::write(dir.join(name), text).map_err(|e| Error::io(dir.join(name), e));
    write("results.json", &text)?;
    let mut csv = String::from("task,num_simulations,observation,c2st\n");
    let mut md = String::from("| task | simulations | observation | C2ST |\n|---|---|---|---|\n");
    for (r, s) in rows.iter().zip(&scores) {
        let c = if s.is_finite() { format!("{s:.4}") } else { String::new() };
        csv += &format!("{task},{},{},{c}\n", a.num_simulations, r["observation"]);
        let shown = if r.get("error").is_some() { "failed (too few samples inside the prior support)".into() } else { cell(*s) };
        md += &format!("| {task} | {} | {} | {shown} |\n", a.num_simulations, r["observation"]);
    }
    let summary_cell = match (mean.is_finite(), scored.len() < rows.len()) {
        (true, false) => format!("{} ± {}", cell(mean), cell(sd)),
        (true, true) => format!("{} ± {} ({} of {} observations)", cell(mean), cell(sd), scored.len(), rows.len()),
        (false, _) => cell(mean),
    };
    md += &format!("| {task} | {} | mean ± sd | {summary_cell} |\n", a.num_simulations);
    write("results.csv", &csv)?;
    write("results.md", &md)?;
    Ok(md)
}
