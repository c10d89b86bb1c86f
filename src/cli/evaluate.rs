//! `fmpe evaluate`: the SBI benchmark table — for each task and simulation budget, train
//! once, sample 10,000 posterior samples per observation (rejected to the prior
//! support), score each against sbibm's reference posterior with the GPU C2ST, and
//! write the table with sbibm's published anchors beside each cell.
//!
//! Resumable: a trained model is a directory under `OUT/models/`, keyed by the task,
//! budget, seed and a hash of what made it (the resolved network and training options,
//! the transforms, the binary's version and a hash of the binary itself); every cell
//! (task, budget, observation) is a file under `OUT/cells/`, keyed by its model's key,
//! the observation and a hash of the sampling options, the sample count, whether it is
//! scored and the bytes of its observation and reference files. A later run with the
//! same `--out` reuses a model or a cell only when its key matches (a cell whose
//! rejection sampling gave up is tried again); the tables are rebuilt from the cells of
//! the grid asked for.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::Args;
use fmpe::error::{Error, Result};
use fmpe::io::{read_matrix, write_file_atomic, write_matrix, Matrix};
use fmpe::model::Model;
use fmpe::posterior::GpuModel;
use fmpe::tasks::{sbibm_anchor, task_by_name, Task, TASK_NAMES};

use super::args::{NetTrainArgs, SolverArgs, TransformArgs};
use super::pipeline::{self, Job, Source};
use super::util::{open_gpu, read_observation};

#[derive(Args, Debug)]
pub(crate) struct EvaluateArgs {
    /// Benchmark tasks: a comma list, or `all` for the ten sbibm tasks.
    #[arg(long, alias = "task")]
    tasks: String,
    /// Simulation budgets, a comma list (e.g. 1000,10000,100000).
    #[arg(long, default_value = "10000")]
    num_simulations: String,
    /// Observations to evaluate: a range `1-10` or a comma list `1,3,5`.
    #[arg(long, default_value = "1-10")]
    observations: String,
    /// sbibm data directory (observations and reference posteriors); default
    /// $FMPE_SBIBM_DIR or ../shared/sbibm.
    #[arg(long)]
    sbibm_dir: Option<PathBuf>,
    /// Output directory: created if missing; a directory from an earlier `evaluate`
    /// is resumed (cells whose key matches are reused).
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
    /// classifier at dim_theta = 10 (width 100) takes a few minutes per observation,
    /// often longer than training.
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

fn parse_tasks(s: &str) -> Result<Vec<String>> {
    if s.trim() == "all" {
        return Ok(TASK_NAMES.iter().map(|t| t.to_string()).collect());
    }
    let names: Vec<String> = s.split(',').map(|t| t.trim().to_string()).filter(|t| !t.is_empty()).collect();
    if names.is_empty() {
        return Err(Error::usage("--tasks: expected a comma list of task names, or all"));
    }
    for n in &names {
        task_by_name(n).map_err(|e| Error::usage(format!("--tasks: {e}")))?;
    }
    Ok(names)
}

fn parse_budgets(s: &str) -> Result<Vec<usize>> {
    let bad = || Error::usage(format!("--num-simulations: expected a comma list of positive counts, got '{s}'"));
    let v: Vec<usize> = s.split(',').map(|p| p.trim().parse::<usize>().map_err(|_| bad())).collect::<Result<_>>()?;
    if v.is_empty() || v.contains(&0) {
        return Err(bad());
    }
    Ok(v)
}

/// FNV-1a, 64 bit: a stable hash for cell keys (the same bytes give the same key on
/// every machine and compiler version).
fn fnv1a(bytes: &[u8], mut h: u64) -> u64 {
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x100_0000_01b3);
    }
    h
}

/// The hash of this binary's bytes (so a rebuilt binary never reuses old cells), once.
fn binary_hash() -> Result<u64> {
    static HASH: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    if let Some(h) = HASH.get() {
        return Ok(*h);
    }
    let exe = std::env::current_exe().map_err(|e| Error::invalid(format!("cannot locate the fmpe binary: {e}")))?;
    let bytes = std::fs::read(&exe).map_err(|e| Error::io(&exe, e))?;
    Ok(*HASH.get_or_init(|| fnv1a(&bytes, 0xcbf2_9ce4_8422_2325)))
}

/// The key of everything that makes a (task, budget)'s model besides the task, budget
/// and seed: 16 hex digits.
fn model_hash(job: &Job) -> Result<String> {
    let desc = serde_json::json!({
        "net": job.net, "train": job.train, "transform": job.meta.transform, "x_transform": job.meta.x_transform,
        "prior": job.meta.prior, "version": env!("CARGO_PKG_VERSION"),
        "alternatives": job.alternatives.iter().map(|c| serde_json::json!({"net": c.resolved.net, "train": c.resolved.train, "transform": c.transform})).collect::<Vec<_>>(),
    });
    let text = serde_json::to_string(&desc).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(format!("{:016x}", fnv1a(text.as_bytes(), binary_hash()?)))
}

/// The key of a cell besides its model's key and the observation: the sampling and
/// scoring options and the observation's and reference's file contents.
fn cell_hash(a: &EvaluateArgs, model_hash: &str, input: &Input) -> Result<String> {
    let desc = serde_json::json!({
        "model": model_hash, "sampling": a.solver.options(a.seed), "num_samples": a.num_samples, "c2st": !a.no_c2st,
        "data": format!("{:016x}", input.data_hash),
    });
    let text = serde_json::to_string(&desc).map_err(|e| Error::invalid(e.to_string()))?;
    Ok(format!("{:016x}", fnv1a(text.as_bytes(), 0xcbf2_9ce4_8422_2325)))
}

/// One sbibm observation: its number, x_o, the reference posterior samples and a hash
/// of both files' bytes.
struct Input {
    k: usize,
    xo: Vec<f64>,
    reference: Matrix,
    data_hash: u64,
}

fn sbibm_root(a: &EvaluateArgs) -> PathBuf {
    a.sbibm_dir
        .clone()
        .or_else(|| std::env::var_os("FMPE_SBIBM_DIR").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("../shared/sbibm"))
}

/// Reads the observations `obs` of `task` and their reference posteriors.
fn read_inputs(root: &Path, task: &dyn Task, obs: &[usize]) -> Result<Vec<Input>> {
    let tdir = root.join(task.name());
    if !tdir.is_dir() {
        return Err(Error::invalid(format!(
            "{} not found: pass --sbibm-dir (the folder with one sub-folder per task)",
            tdir.display()
        )));
    }
    let (dt, dx) = (task.dim_theta(), task.dim_x());
    let mut inputs = Vec::new();
    for &k in obs {
        let od = tdir.join(format!("num_observation_{k}"));
        let op = od.join("observation.csv");
        let xo = read_observation(&op, dx)?;
        let rp = od.join("reference_posterior_samples.csv");
        let reference = read_matrix(&rp)?;
        if reference.cols != dt {
            return Err(Error::data(&rp, None, None, format!("has {} columns, the task has dim_theta = {dt}", reference.cols)));
        }
        let mut data_hash = 0xcbf2_9ce4_8422_2325;
        for p in [&op, &rp] {
            data_hash = fnv1a(&std::fs::read(p).map_err(|e| Error::io(p, e))?, data_hash);
        }
        inputs.push(Input { k, xo, reference, data_hash });
    }
    Ok(inputs)
}

/// Writes `value` as pretty JSON to `path`, atomically.
fn write_json(path: &Path, value: &serde_json::Value) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|e| Error::invalid(e.to_string()))?;
    write_file_atomic(path, |w| std::io::Write::write_all(w, text.as_bytes()))
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(path).ok()?).ok()
}

/// One (task, budget) of the grid: where its model and cells live.
struct Unit<'a> {
    task: &'a dyn Task,
    budget: usize,
    hash: String,
    model_dir: PathBuf,
}

impl Unit<'_> {
    /// The cell file of `input` (named by its full key).
    fn cell_path(&self, a: &EvaluateArgs, input: &Input) -> Result<PathBuf> {
        let h = cell_hash(a, &self.hash, input)?;
        Ok(a.out.join("cells").join(format!("{}_{}_obs{}_seed{}_{h}.json", self.task.name(), self.budget, input.k, a.seed)))
    }
}

/// A cell of an earlier run that can be reused: present and not failed.
fn done_cell(path: &Path) -> Option<serde_json::Value> {
    read_json(path).filter(|c| c.get("error").is_none())
}

pub(crate) fn evaluate(a: EvaluateArgs) -> Result<()> {
    if a.num_samples == 0 {
        return Err(Error::usage("--num-samples must be positive"));
    }
    let (tasks, budgets, obs) = (parse_tasks(&a.tasks)?, parse_budgets(&a.num_simulations)?, parse_observations(&a.observations)?);
    // Read every observation and reference first, so bad data fails before training.
    let root = sbibm_root(&a);
    let mut inputs = Vec::new();
    for t in &tasks {
        let task = task_by_name(t)?;
        inputs.push(read_inputs(&root, task.as_ref(), &obs)?);
    }
    std::fs::create_dir_all(a.out.join("cells")).map_err(|e| Error::io(&a.out, e))?;
    std::fs::create_dir_all(a.out.join("models")).map_err(|e| Error::io(&a.out, e))?;
    let _lock = fmpe::io::OutputLock::acquire(&a.out)?;
    let gpu = open_gpu()?;
    let t0 = Instant::now();
    let (mut rows, mut failed, mut reused) = (Vec::new(), Vec::new(), 0usize);
    for (t, task_inputs) in tasks.iter().zip(&inputs) {
        let task = task_by_name(t)?;
        for &budget in &budgets {
            let (dt, dx) = (task.dim_theta(), task.dim_x());
            let job = Job::new(Source::task(task.as_ref(), 0), &a.transform, &a.net, a.seed, (dt, dx), budget)?;
            let hash = model_hash(&job)?;
            let model_dir = a.out.join("models").join(format!("{t}_{budget}_seed{}_{hash}", a.seed));
            let unit = Unit { task: task.as_ref(), budget, hash, model_dir };
            let mut todo = Vec::new();
            for input in task_inputs {
                if done_cell(&unit.cell_path(&a, input)?).is_none() {
                    todo.push(input);
                }
            }
            reused += task_inputs.len() - todo.len();
            if !todo.is_empty() {
                let (model, train_seconds) = unit_model(&a, &gpu, &unit, job)?;
                let on_gpu = GpuModel::new(gpu.clone(), &model)?;
                for input in todo {
                    let cell = score_cell(&a, &unit, &on_gpu, &model, train_seconds, input)?;
                    write_json(&unit.cell_path(&a, input)?, &cell)?;
                }
            }
            for input in task_inputs {
                let cell = read_json(&unit.cell_path(&a, input)?)
                    .ok_or_else(|| Error::invalid(format!("cell {t} {budget} observation {} was not written", input.k)))?;
                if cell.get("error").is_some() {
                    failed.push(format!("{t} {budget} observation {}", input.k));
                }
                rows.push(cell);
            }
        }
    }
    let md = write_results(&a.out, &rows)?;
    crate::say!("{}", md.trim_end());
    crate::say!("{} cells ({reused} reused) in {:.1} s → {}", rows.len(), t0.elapsed().as_secs_f64(), a.out.display());
    super::json::emit("evaluate", super::json::FileReport::read(&a.out, "results.json")?)?;
    if !failed.is_empty() {
        return Err(Error::LowAcceptance(format!(
            "{}: rejection sampling gave up (see above); the other cells are in {} \
             (raise --max-sampling-time, or use --no-reject)",
            failed.join(", "),
            a.out.display()
        )));
    }
    Ok(())
}

/// The model of a (task, budget): loaded when an earlier run trained it with the same
/// key, else simulated, trained and saved (with `evaluate.json`: the seconds spent).
/// Returns it and its simulation + training seconds.
fn unit_model(a: &EvaluateArgs, gpu: &std::sync::Arc<fmpe::Gpu>, unit: &Unit<'_>, mut job: Job) -> Result<(Model, f64)> {
    let info = unit.model_dir.join("evaluate.json");
    if let (Ok(model), Some(j)) = (Model::load(&unit.model_dir), read_json(&info)) {
        log::info!("{} at {} simulations: reusing the model in {}", unit.task.name(), unit.budget, unit.model_dir.display());
        return Ok((model, j["train_seconds"].as_f64().unwrap_or(f64::NAN)));
    }
    let t0 = Instant::now();
    let (theta, x, dropped) = pipeline::simulate_finite(unit.task, unit.budget, a.seed)?;
    job.meta.dropped_rows = dropped;
    let model = pipeline::fit(gpu, job, &theta.data, &x.data, true)?;
    let seconds = t0.elapsed().as_secs_f64();
    model.save_with(&unit.model_dir, &mut |d| {
        fmpe::plot::training_curve(&model.info.history, &d.join("training_curve.png"))?;
        let info = serde_json::json!({"train_seconds": seconds, "dropped_simulations": dropped});
        write_json(&d.join("evaluate.json"), &info)
    })?;
    Ok((model, seconds))
}

/// Samples one observation, writes its samples and pair plot beside the model, scores
/// them with the C2ST (unless `--no-c2st`): returns the cell (with an `error` when
/// rejection sampling gave up).
fn score_cell(a: &EvaluateArgs, unit: &Unit<'_>, on_gpu: &GpuModel, model: &Model, train_seconds: f64, input: &Input) -> Result<serde_json::Value> {
    let (task, k, dt) = (unit.task, input.k, unit.task.dim_theta());
    let anchor = sbibm_anchor(task.name(), unit.budget);
    let mut cell = serde_json::json!({
        "task": task.name(), "num_simulations": unit.budget, "observation": k, "seed": a.seed, "model_hash": unit.hash, "cell_hash": cell_hash(a, &unit.hash, input)?,
        "version": env!("CARGO_PKG_VERSION"), "c2st": null, "train_seconds": train_seconds,
        "epochs": model.info.history.len(), "best_epoch": model.info.best_epoch,
        "held_out_nll": model.info.held_out.as_ref().map(|h| h.nll),
        "hidden": model.info.net.hidden,
        "selection": model.info.selection.as_ref().map(|s| s.candidates.iter().map(|c| serde_json::json!({"hidden": c.hidden, "parameter_transform": !c.transform.is_identity(), "held_out_nll": c.held_out_nll, "reflect_training": c.reflect_training, "log_prior_mass": c.log_prior_mass, "low_mass_share": c.low_mass_share})).collect::<Vec<_>>()),
        "reflect_outside_prior": a.solver.options(a.seed).reflect_outside_prior.unwrap_or(on_gpu.reflects_by_default()),
        "parameter_transform": if model.info.transform.is_identity() { "none" } else { "transform" },
        "npe": anchor.map(|x| x.npe), "best_amortized": anchor.map(|x| x.best_amortized),
        "model": unit.model_dir,
    });
    let ts = Instant::now();
    let post = on_gpu.posterior(&input.xo)?;
    let (s, rep) = match post.sample(a.num_samples, &a.solver.options(a.seed.wrapping_add(k as u64))) {
        Ok(v) => {
            let (s, _, rep) = v.into_parts();
            (s, rep)
        }
        Err(Error::LowAcceptance(msg)) => {
            let msg = super::flags::with_flags(&msg);
            log::warn!("{} at {}, observation {k}: failed: {msg}", task.name(), unit.budget);
            cell["error"] = msg.into();
            cell["sample_seconds"] = ts.elapsed().as_secs_f64().into();
            return Ok(cell);
        }
        Err(e) => return Err(e),
    };
    let t_sample = ts.elapsed().as_secs_f64();
    write_matrix(&unit.model_dir.join(format!("samples_obs{k}.csv")), &Matrix::new(a.num_samples, dt, s.clone()).with_header(task.theta_names()))?;
    let plot = unit.model_dir.join(format!("pairplot_obs{k}.png"));
    fmpe::plot::pair_plot(&s, Some(&input.reference.data), dt, &task.theta_names(), &plot)?;
    let tc = Instant::now();
    if !a.no_c2st {
        let score = fmpe::metrics::c2st(on_gpu.gpu(), &input.reference.data, &s, dt, &fmpe::metrics::C2stOptions::default())?;
        cell["c2st"] = score.into();
    }
    let t_c2st = tc.elapsed().as_secs_f64();
    log::info!(
        "{} at {}, observation {k}: C2ST {} (sample {t_sample:.1} s, acceptance {:.3}, C2ST {t_c2st:.1} s)",
        task.name(),
        unit.budget,
        cell["c2st"].as_f64().map_or("not scored".to_string(), |v| format!("{v:.4}")),
        rep.acceptance_rate
    );
    cell["acceptance_rate"] = rep.acceptance_rate.into();
    cell["sample_seconds"] = t_sample.into();
    cell["c2st_seconds"] = t_c2st.into();
    cell["mean_ode_steps"] = rep.mean_steps.into();
    Ok(cell)
}

/// Mean and sample standard deviation of the finite values (NaN when there are none).
fn mean_sd(v: &[f64]) -> (f64, f64) {
    let s: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    if s.is_empty() {
        return (f64::NAN, f64::NAN);
    }
    let m = s.iter().sum::<f64>() / s.len() as f64;
    (m, (s.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (s.len().max(2) - 1) as f64).sqrt())
}

fn fmt(v: f64) -> String {
    if v.is_finite() {
        format!("{v:.4}")
    } else {
        String::new()
    }
}

/// Writes results.json (every cell and one summary per task and budget), results.csv
/// (one line per cell) and results.md (one row per task and budget: C2ST per
/// observation, mean ± sd, the anchors and the wall time) into `out`; returns the
/// markdown table.
fn write_results(out: &Path, cells: &[serde_json::Value]) -> Result<String> {
    let c2st = |c: &serde_json::Value| c["c2st"].as_f64().unwrap_or(f64::NAN);
    let mut groups: Vec<(String, u64, Vec<&serde_json::Value>)> = Vec::new();
    for c in cells {
        let (t, b) = (c["task"].as_str().unwrap_or_default().to_string(), c["num_simulations"].as_u64().unwrap_or(0));
        match groups.iter_mut().find(|g| g.0 == t && g.1 == b) {
            Some(g) => g.2.push(c),
            None => groups.push((t, b, vec![c])),
        }
    }
    let mut csv = String::from("task,num_simulations,observation,c2st,npe,best_amortized,held_out_nll,train_seconds,sample_seconds,c2st_seconds\n");
    for c in cells {
        let f = |k: &str| c[k].as_f64().map_or(String::new(), |v| format!("{v}"));
        csv += &format!(
            "{},{},{},{},{},{},{},{},{},{}\n",
            c["task"].as_str().unwrap_or_default(),
            c["num_simulations"],
            c["observation"],
            f("c2st"),
            f("npe"),
            f("best_amortized"),
            f("held_out_nll"),
            f("train_seconds"),
            f("sample_seconds"),
            f("c2st_seconds")
        );
    }
    let mut md = String::from("| task | simulations | C2ST per observation | mean ± sd | NPE | best amortized | held-out NLL | wall (train + cells) |\n|---|---|---|---|---|---|---|---|\n");
    let mut summaries = Vec::new();
    for (t, b, cs) in &groups {
        let scores: Vec<f64> = cs.iter().map(|c| c2st(c)).collect();
        let (m, sd) = mean_sd(&scores);
        let per: Vec<String> = cs
            .iter()
            .map(|c| if c.get("error").is_some() { format!("{}: failed", c["observation"]) } else { format!("{}: {}", c["observation"], fmt(c2st(c))) })
            .collect();
        let secs = |k: &str| cs.iter().map(|c| c[k].as_f64().unwrap_or(0.0)).sum::<f64>();
        let wall = cs[0]["train_seconds"].as_f64().unwrap_or(0.0) + secs("sample_seconds") + secs("c2st_seconds");
        let (npe, best) = (cs[0]["npe"].as_f64().unwrap_or(f64::NAN), cs[0]["best_amortized"].as_f64().unwrap_or(f64::NAN));
        let nll = cs[0]["held_out_nll"].as_f64().unwrap_or(f64::NAN);
        let mean_cell = if m.is_finite() { format!("{} ± {}", fmt(m), fmt(sd)) } else { "not scored".into() };
        md += &format!("| {t} | {b} | {} | {mean_cell} | {} | {} | {} | {wall:.0} s |\n", per.join(", "), fmt(npe), fmt(best), fmt(nll));
        let num = |v: f64| if v.is_finite() { serde_json::Value::from(v) } else { serde_json::Value::Null };
        summaries.push(serde_json::json!({
            "task": t, "num_simulations": b, "c2st_mean": num(m), "c2st_std": num(sd), "npe": num(npe),
            "best_amortized": num(best), "held_out_nll": num(nll), "wall_seconds": wall, "observations": cs.len(),
        }));
    }
    write_json(&out.join("results.json"), &serde_json::json!({"summary": summaries, "cells": cells}))?;
    write_file_atomic(&out.join("results.csv"), |w| std::io::Write::write_all(w, csv.as_bytes()))?;
    write_file_atomic(&out.join("results.md"), |w| std::io::Write::write_all(w, md.as_bytes()))?;
    Ok(md)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grids_parse_and_bad_values_name_their_flag() {
        assert_eq!(parse_budgets("1000, 10000").unwrap(), vec![1000, 10000]);
        assert!(parse_budgets("1000,0").unwrap_err().to_string().contains("--num-simulations"));
        assert_eq!(parse_tasks("all").unwrap().len(), 10);
        assert_eq!(parse_tasks("slcp,two_moons").unwrap(), vec!["slcp", "two_moons"]);
        assert!(parse_tasks("slcp,nope").unwrap_err().to_string().contains("--tasks"));
        assert_eq!(parse_observations("1-3,7").unwrap(), vec![1, 2, 3, 7]);
        assert!(parse_observations("0-3").is_err());
        // FNV-1a test vector ("a").
        assert_eq!(fnv1a(b"a", 0xcbf2_9ce4_8422_2325), 0xaf63_dc4c_8601_ec8c);
    }
}
