//! Command-line front end (clap). Each subcommand validates its input, does its work
//! through the library, and writes its outputs atomically (temporary name, then rename),
//! so a failed command leaves no partial file or directory behind.

use std::path::{Path, PathBuf};
use std::time::Instant;

use clap::{Args, Parser, Subcommand, ValueEnum};
use fmpe::error::{Error, Result};
use fmpe::io::{drop_nonfinite_rows, read_matrix, write_matrix, Matrix};
use fmpe::model::{BoxPrior, Model};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{Divergence, GpuModel, PosteriorOptions, SampleReport, Solver};
use fmpe::tasks::{task_by_name, Task};
use fmpe::train::{fit_model, LrSchedule, ModelMeta, TrainConfig};
use fmpe::transform::{ThetaTransform, XTransform};
use fmpe::Gpu;

mod bench;
mod calibrate;
mod evaluate;

/// Flow Matching Posterior Estimation on the GPU (wgpu + WGSL).
#[derive(Parser, Debug)]
#[command(name = "fmpe", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the GPU adapters wgpu finds and the one fmpe uses.
    Devices,
    /// Draw θ from a task's prior and simulate x: writes DIR/theta.npy and DIR/x.npy.
    Simulate(SimulateArgs),
    /// Train an FMPE model on θ/x files; writes MODEL_DIR (model.safetensors + model.json).
    Train(TrainArgs),
    /// Draw posterior samples for one observation.
    Sample(SampleArgs),
    /// Evaluate log q(θ | x_o) for the rows of a θ file (natural log, original units).
    LogProb(LogProbArgs),
    /// The main job: simulate, train and sample a benchmark task end to end.
    Run(RunArgs),
    /// Classifier two-sample test (sbibm's C2ST recipe) between two sample files, on the
    /// GPU; prints the score (0.5: indistinguishable, 1: separable) as the last line.
    C2st(C2stArgs),
    /// Pair plot (corner plot) of samples, optionally over reference samples, as PNG.
    Plot(PlotArgs),
    /// The SBI benchmark for one task: train once, sample each observation, C2ST against
    /// sbibm's reference posteriors, table + pair plots.
    Evaluate(evaluate::EvaluateArgs),
    /// Simulation-based calibration: coverage of credible intervals over held-out pairs.
    Calibrate(calibrate::CalibrateArgs),
    /// Measure training and sampling throughput and count dispatches and submissions.
    Bench(bench::BenchArgs),
}

#[derive(Args, Debug)]
struct SimulateArgs {
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

/// Network and training flags shared by `train`, `run` and `bench`.
#[derive(Args, Debug, Clone)]
pub struct NetTrainArgs {
    /// Width of the residual blocks, or a comma-separated list of widths (one block each).
    #[arg(long, default_value = "64")]
    hidden: String,
    /// Number of residual blocks when --hidden is a single width.
    #[arg(long, default_value_t = 4)]
    blocks: usize,
    /// How (t, θ_t) enters the network: concat (input [t, θ_t, x]) or glu (input x,
    /// blocks gated by [t, θ_t]).
    #[arg(long, value_enum, default_value_t = CondArg::Concat)]
    conditioning: CondArg,
    /// x-embedding MLP trained jointly with the vector field, whose output replaces x as
    /// the network's input: auto (none for dim x ≤ 32, else 128,128,32), none, or
    /// comma-separated layer widths such as 128,128,32 (GELU between layers).
    #[arg(long, default_value = "auto")]
    embedding: String,
    /// Minibatch size.
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Initial Adam learning rate.
    #[arg(long, default_value_t = 1e-3)]
    learning_rate: f64,
    /// Maximum number of epochs (the cosine schedule anneals over them).
    #[arg(long, default_value_t = 200)]
    max_epochs: usize,
    /// Early-stopping patience in epochs (best weights are restored).
    #[arg(long, default_value_t = 30)]
    patience: usize,
    /// Fraction of simulations held out for validation.
    #[arg(long, default_value_t = 0.05)]
    validation_fraction: f64,
    /// Time prior exponent α: t has density ∝ t^α (t = u^(1/(1+α))).
    #[arg(long, default_value_t = 4.0)]
    time_prior_exponent: f64,
    /// σ_min of the optimal-transport path.
    #[arg(long, default_value_t = 1e-4)]
    sigma_min: f64,
    /// Stop training after this many seconds (best weights are kept).
    #[arg(long)]
    max_train_seconds: Option<f64>,
    /// Learning-rate schedule: plateau (ReduceLROnPlateau, factor 0.5, patience 10) or
    /// cosine (annealed to 1e-6 over --max-epochs or --max-train-seconds).
    #[arg(long, value_enum, default_value_t = ScheduleArg::Cosine)]
    lr_schedule: ScheduleArg,
}

/// The parameter-transform flag of the commands that train a model (`train`, `run`,
/// `evaluate`).
#[derive(Args, Debug, Clone)]
pub struct TransformArgs {
    /// Train and sample in θ itself. By default a bounded prior is trained in an
    /// unbounded space (sbi's bijections for bounded priors): logit for box (uniform) components, log for
    /// log-normal ones; samples are mapped back and log-densities include the Jacobian.
    #[arg(long)]
    no_transform: bool,
    /// Elementwise transform of x before its z-scoring: `auto` (the task's choice:
    /// log1p for lotka_volterra, else none), `none`, or `log1p` (log(1 + x), for
    /// non-negative heavy-tailed data). Stored in the model and applied to observations.
    #[arg(long, default_value = "auto")]
    x_transform: String,
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
    /// [`Error::Usage`] for an unknown name.
    pub(crate) fn x_transform(&self, task: Option<&dyn Task>) -> Result<XTransform> {
        match self.x_transform.as_str() {
            "auto" => Ok(task.map(|t| t.default_x_transform()).unwrap_or_default()),
            s => s.parse(),
        }
    }
}

/// Says on stderr which x transform training uses (nothing for none).
pub(crate) fn announce_x_transform(t: XTransform) {
    if !t.is_identity() {
        eprintln!("x transform (applied before z-scoring, and to observations; --x-transform none to turn off): {t}");
    }
}

/// Says on stderr which parameter transform training uses.
pub(crate) fn announce_transform(t: &ThetaTransform) {
    if !t.is_identity() {
        eprintln!("parameter transform (training space θ' = T(θ); --no-transform to turn off): {t}");
    }
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum ScheduleArg {
    Plateau,
    Cosine,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum CondArg {
    Concat,
    Glu,
}

#[derive(Args, Debug)]
struct TrainArgs {
    /// θ file `[n, dim_theta]` (.npy or .csv).
    #[arg(long)]
    theta: PathBuf,
    /// x file `[n, dim_x]` (.npy or .csv); rows with NaN/inf are dropped with their θ.
    #[arg(long)]
    x: PathBuf,
    /// Output model directory.
    #[arg(long)]
    out: PathBuf,
    /// Benchmark task the data comes from (checks dimensions, stores names and prior).
    #[arg(long)]
    task: Option<String>,
    /// Seed of the split, shuffling, path noise and initialisation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Lower bounds of a box prior, comma-separated, one per θ component.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    prior_low: Option<Vec<f64>>,
    /// Upper bounds of a box prior, comma-separated, one per θ component.
    #[arg(long, value_delimiter = ',', allow_hyphen_values = true)]
    prior_high: Option<Vec<f64>>,
    #[command(flatten)]
    transform: TransformArgs,
    #[command(flatten)]
    net: NetTrainArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum SolverArg {
    Dopri5,
    Rk4,
}

/// Sampling flags shared by `sample`, `run` and `evaluate`.
#[derive(Args, Debug, Clone)]
pub struct SolverArgs {
    /// ODE solver.
    #[arg(long, value_enum, default_value_t = SolverArg::Dopri5)]
    solver: SolverArg,
    /// dopri5 absolute tolerance.
    #[arg(long, default_value_t = 1e-5)]
    atol: f64,
    /// dopri5 relative tolerance.
    #[arg(long, default_value_t = 1e-5)]
    rtol: f64,
    /// rk4 steps.
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Keep samples outside the prior support (default: reject and redraw).
    #[arg(long)]
    no_reject: bool,
    /// Give up (exit code 4) when rejection sampling would take longer than this.
    #[arg(long, default_value_t = 600.0)]
    max_sampling_time: f64,
    /// Samples integrated together on the GPU (default: chosen from the device limits).
    #[arg(long)]
    chunk_size: Option<usize>,
}

#[derive(Args, Debug)]
struct SampleArgs {
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
    /// joint solve with the exact divergence; requires --solver dopri5).
    #[arg(long)]
    with_log_prob: bool,
    #[command(flatten)]
    solver: SolverArgs,
}

#[derive(ValueEnum, Clone, Copy, Debug)]
enum DivergenceArg {
    Exact,
    Hutchinson,
}

#[derive(Args, Debug)]
struct LogProbArgs {
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
    /// Seed of the Hutchinson probes.
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args, Debug)]
struct C2stArgs {
    /// Reference samples `[n, d]` (.csv or .npy); z-scoring uses its statistics.
    a: PathBuf,
    /// Samples to compare `[m, d]`.
    b: PathBuf,
    /// Seed of the folds, shuffling and initialisation.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Rows used from each file (the benchmark uses the first 10,000).
    #[arg(long, default_value_t = 10_000)]
    max_rows: usize,
}

#[derive(Args, Debug)]
struct PlotArgs {
    /// Samples `[n, d]` (.csv or .npy; a trailing `log_prob` column is ignored).
    #[arg(long)]
    samples: PathBuf,
    /// Reference samples `[m, d]` drawn in another colour.
    #[arg(long)]
    reference: Option<PathBuf>,
    /// Output PNG.
    #[arg(long)]
    out: PathBuf,
}

#[derive(Args, Debug)]
struct RunArgs {
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

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Devices => devices(),
        Command::Simulate(a) => simulate(a),
        Command::Train(a) => train(a),
        Command::Sample(a) => sample(a),
        Command::LogProb(a) => log_prob(a),
        Command::Run(a) => run_task(a),
        Command::C2st(a) => c2st(a),
        Command::Plot(a) => plot(a),
        Command::Evaluate(a) => evaluate::evaluate(a),
        Command::Calibrate(a) => calibrate::calibrate(a),
        Command::Bench(a) => bench::bench(a),
    }
}

fn devices() -> Result<()> {
    let all = fmpe::gpu::list_adapters(&gpu_options());
    if all.is_empty() {
        return Err(Error::NoAdapter { detail: String::new() });
    }
    for (i, a) in all.iter().enumerate() {
        println!("[{i}] {a}");
    }
    let gpu = Gpu::with_options(&gpu_options())?;
    if let Some(a) = gpu.adapter() {
        println!("fmpe uses: {a}");
    }
    Ok(())
}

/// Adapter selection from the environment (WGPU_BACKEND, WGPU_ADAPTER_NAME, ...).
fn gpu_options() -> fmpe::gpu::GpuOptions {
    fmpe::gpu::GpuOptions::from_vars(|k| std::env::var(k).ok())
}

/// Opens the GPU and says which adapter is used.
pub(crate) fn open_gpu() -> Result<std::sync::Arc<Gpu>> {
    let gpu = std::sync::Arc::new(Gpu::with_options(&gpu_options())?);
    if let Some(a) = gpu.adapter() {
        eprintln!("GPU: {a}");
    }
    Ok(gpu)
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

/// A temporary sibling of `path` that is renamed onto it on success.
pub(crate) struct Staged {
    pub(crate) tmp: PathBuf,
    dest: PathBuf,
    done: bool,
}

impl Staged {
    pub(crate) fn dir(dest: &Path) -> Result<Staged> {
        if dest.exists() && !(dest.is_dir() && dest.read_dir().map_err(|e| Error::io(dest, e))?.next().is_none()) {
            return Err(Error::invalid(format!(
                "{} exists and is not an empty directory; choose another --out or remove it",
                dest.display()
            )));
        }
        let parent = dest.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        std::fs::create_dir_all(parent).map_err(|e| Error::io(parent, e))?;
        let name = dest.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_else(|| "out".into());
        let tmp = parent.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp).map_err(|e| Error::io(&tmp, e))?;
        Ok(Staged { tmp, dest: dest.to_path_buf(), done: false })
    }

    pub(crate) fn commit(mut self) -> Result<()> {
        if self.dest.is_dir() {
            std::fs::remove_dir(&self.dest).map_err(|e| Error::io(&self.dest, e))?;
        }
        std::fs::rename(&self.tmp, &self.dest).map_err(|e| Error::io(&self.dest, e))?;
        self.done = true;
        Ok(())
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if !self.done {
            let _ = std::fs::remove_dir_all(&self.tmp);
        }
    }
}

fn simulate(a: SimulateArgs) -> Result<()> {
    let task = task_by_name(&a.task)?;
    if a.num_simulations == 0 {
        return Err(Error::usage("--num-simulations must be positive"));
    }
    let staged = Staged::dir(&a.out)?;
    let t0 = Instant::now();
    let (theta, x) = fmpe::tasks::simulate_dataset(task.as_ref(), a.num_simulations, a.seed);
    let n = a.num_simulations;
    write_matrix(&staged.tmp.join("theta.npy"), &Matrix::new(n, task.dim_theta(), theta))?;
    write_matrix(&staged.tmp.join("x.npy"), &Matrix::new(n, task.dim_x(), x.clone()))?;
    staged.commit()?;
    let failed = x.chunks(task.dim_x()).filter(|r| r.iter().any(|v| !v.is_finite())).count();
    println!(
        "simulated {n} × {} ({} θ, {} x) in {:.2} s → {}/theta.npy, x.npy{}",
        task.name(),
        task.dim_theta(),
        task.dim_x(),
        t0.elapsed().as_secs_f64(),
        a.out.display(),
        if failed > 0 { format!(" ({failed} failed simulations have NaN x)") } else { String::new() }
    );
    Ok(())
}

/// The box prior of a task (uniform priors only).
pub(crate) fn task_box(task: &dyn Task) -> Option<BoxPrior> {
    task.prior().bounds().map(|(low, high)| BoxPrior { low, high })
}

fn user_box(low: &Option<Vec<f64>>, high: &Option<Vec<f64>>, dim: usize) -> Result<Option<BoxPrior>> {
    match (low, high) {
        (None, None) => Ok(None),
        (Some(l), Some(h)) => {
            let b = BoxPrior { low: l.clone(), high: h.clone() };
            b.validate(dim)?;
            Ok(Some(b))
        }
        _ => Err(Error::usage("--prior-low and --prior-high must be given together")),
    }
}

fn train(a: TrainArgs) -> Result<()> {
    let task = a.task.as_deref().map(task_by_name).transpose()?;
    let theta = read_matrix(&a.theta)?;
    let x = read_matrix(&a.x)?;
    if let Some(t) = &task {
        for (m, p, want, what) in [(&theta, &a.theta, t.dim_theta(), "dim_theta"), (&x, &a.x, t.dim_x(), "dim_x")] {
            if m.cols != want {
                return Err(Error::data(
                    p,
                    None,
                    None,
                    format!("has {} columns, but task {} has {what} = {want}", m.cols, t.name()),
                ));
            }
        }
    }
    let prior = match user_box(&a.prior_low, &a.prior_high, theta.cols)? {
        Some(b) => Some(b),
        None => task.as_deref().and_then(task_box),
    };
    let transform = a.transform.transform(prior.as_ref(), task.as_deref());
    transform.validate(theta.cols)?;
    if let Some((r, c)) = transform.first_outside(&theta.data, theta.cols) {
        let v = theta.data[r * theta.cols + c];
        return Err(Error::data(&a.theta, Some(theta.line_of_row(r)), Some(c + 1), transform.outside_message(c, v)));
    }
    let (theta, x, dropped) = drop_nonfinite_rows(&theta, &x, &a.theta, &a.x)?;
    if dropped > 0 {
        eprintln!("warning: dropped {dropped} simulations whose x contains NaN or ±inf ({} left)", x.rows);
    }
    let net = a.net.net(theta.cols, x.cols)?;
    let tc = a.net.train(a.seed)?;
    announce_transform(&transform);
    let x_transform = a.transform.x_transform(task.as_deref())?;
    if let Some(i) = x_transform.first_outside_domain(&x.data) {
        return Err(Error::data(
            &a.x,
            Some(x.line_of_row(i / x.cols)),
            Some(i % x.cols + 1),
            format!("{} is outside the domain x > -1 of --x-transform {x_transform} (use --x-transform none)", x.data[i]),
        ));
    }
    announce_x_transform(x_transform);
    let meta = ModelMeta {
        theta_names: theta.header.clone().or_else(|| task.as_ref().map(|t| t.theta_names())).unwrap_or_default(),
        x_names: x.header.clone().or_else(|| task.as_ref().map(|t| t.x_names())).unwrap_or_default(),
        task: task.as_ref().map(|t| t.name().to_string()),
        prior,
        transform,
        x_transform,
        dropped_rows: dropped,
    };
    // Refuse an unusable --out before spending time on training.
    check_model_out(&a.out)?;
    let gpu = open_gpu()?;
    let t0 = Instant::now();
    let (model, warnings) = fit_model(&gpu, net, tc, &theta.data, &x.data, meta, true)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    model.save_with(&a.out, &mut |d| fmpe::plot::training_curve(&model.info.history, &d.join("training_curve.png")))?;
    let last = model.info.history.last().expect("at least one epoch");
    println!(
        "trained on {} simulations ({} validation) for {} epochs in {:.1} s; best epoch {} (validation loss {:.4}); model → {}",
        model.info.n_train,
        model.info.n_val,
        last.epoch,
        t0.elapsed().as_secs_f64(),
        model.info.best_epoch,
        model.info.history[model.info.best_epoch - 1].val_loss,
        a.out.display()
    );
    Ok(())
}

fn check_model_out(out: &Path) -> Result<()> {
    if out.exists() && !(out.is_dir() && (out.join("model.json").exists() || out.read_dir().map(|mut d| d.next().is_none()).unwrap_or(false))) {
        return Err(Error::invalid(format!(
            "{} exists and is not a model directory; choose another --out",
            out.display()
        )));
    }
    Ok(())
}

/// Reads an observation file: exactly one row of `dim_x` values.
pub(crate) fn read_observation(path: &Path, dim_x: usize) -> Result<Vec<f64>> {
    let m = read_matrix(path)?;
    if m.rows != 1 {
        return Err(Error::data(
            path,
            None,
            None,
            format!("an observation file must hold exactly one row, found {} rows (fmpe samples one observation at a time)", m.rows),
        ));
    }
    if m.cols != dim_x {
        return Err(Error::data(path, None, None, format!("the observation has {} values, the model expects dim_x = {dim_x}", m.cols)));
    }
    if let Some(c) = m.data.iter().position(|v| !v.is_finite()) {
        return Err(Error::data(path, Some(m.line_of_row(0)), Some(c + 1), "the observation value is not finite"));
    }
    Ok(m.data)
}

fn report_line(rep: &SampleReport) -> String {
    format!(
        "{} samples in {:.2} s ({} proposed, acceptance rate {:.4}, mean ODE steps {:.1}, rejected steps {:.1})",
        rep.returned, rep.seconds, rep.proposed, rep.acceptance_rate, rep.mean_steps, rep.mean_rejected_steps
    )
}

fn sample(a: SampleArgs) -> Result<()> {
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
    let (data, cols, rep) = if a.with_log_prob {
        if !matches!(a.solver.solver, SolverArg::Dopri5) {
            return Err(Error::usage("--with-log-prob integrates with dopri5; drop --solver rk4"));
        }
        let (s, lp, rep) = post.sample_and_log_prob(a.num_samples, &a.solver.options(a.seed))?.into_parts();
        let mut data = Vec::with_capacity(a.num_samples * (d + 1));
        for (row, l) in s.chunks(d).zip(lp.unwrap_or_default()) {
            data.extend_from_slice(row);
            data.push(l);
        }
        names.push("log_prob".into());
        (data, d + 1, rep)
    } else {
        let (s, _, rep) = post.sample(a.num_samples, &a.solver.options(a.seed))?.into_parts();
        (s, d, rep)
    };
    write_matrix(&a.out, &Matrix::new(a.num_samples, cols, data).with_header(names))?;
    println!("{} → {}", report_line(&rep), a.out.display());
    Ok(())
}

fn log_prob(a: LogProbArgs) -> Result<()> {
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
        ..Default::default()
    };
    let lp = post.log_prob(&theta.data, &opts)?;
    write_matrix(&a.out, &Matrix::new(theta.rows, 1, lp.clone()).with_header(vec!["log_prob".into()]))?;
    let outside = lp.iter().filter(|v| **v == f64::NEG_INFINITY).count();
    println!(
        "log_prob of {} points in {:.2} s{} → {}",
        theta.rows,
        t0.elapsed().as_secs_f64(),
        if outside > 0 { format!(" ({outside} outside the prior support: -inf)") } else { String::new() },
        a.out.display()
    );
    Ok(())
}

fn c2st(a: C2stArgs) -> Result<()> {
    let x = read_matrix(&a.a)?;
    let y = read_matrix(&a.b)?;
    if x.cols != y.cols {
        return Err(Error::invalid(format!(
            "{} has {} columns but {} has {}",
            a.a.display(),
            x.cols,
            a.b.display(),
            y.cols
        )));
    }
    let gpu = open_gpu()?;
    let opts = fmpe::metrics::C2stOptions { seed: a.seed, max_rows: a.max_rows, ..Default::default() };
    let score = fmpe::metrics::c2st(&gpu, &x.data, &y.data, x.cols, &opts)?;
    println!("{score:.6}");
    Ok(())
}

fn plot(a: PlotArgs) -> Result<()> {
    if !a.out.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")) {
        return Err(Error::usage(format!("--out {}: the plot is a PNG; use a .png file name", a.out.display())));
    }
    let mut s = read_matrix(&a.samples)?;
    let drop_lp = |m: &mut Matrix| {
        if m.header.as_ref().and_then(|h| h.last()).is_some_and(|l| l == "log_prob") {
            let c = m.cols;
            m.data = m.data.chunks(c).flat_map(|r| r[..c - 1].to_vec()).collect();
            m.cols -= 1;
            if let Some(h) = &mut m.header {
                h.pop();
            }
        }
    };
    drop_lp(&mut s);
    let r = a.reference.as_ref().map(|p| read_matrix(p)).transpose()?;
    if let Some(r) = &r {
        if r.cols != s.cols {
            return Err(Error::invalid(format!("the reference has {} columns, the samples {}", r.cols, s.cols)));
        }
    }
    let names = s.header.clone().unwrap_or_else(|| (1..=s.cols).map(|i| format!("theta_{i}")).collect());
    fmpe::plot::pair_plot(&s.data, r.as_ref().map(|r| r.data.as_slice()), s.cols, &names, &a.out)?;
    println!("pair plot → {}", a.out.display());
    Ok(())
}

fn check_output_ext(p: &Path) -> Result<()> {
    match p.extension().and_then(|e| e.to_str()).map(|e| e.to_ascii_lowercase()).as_deref() {
        Some("csv") | Some("npy") => Ok(()),
        _ => Err(Error::usage(format!("--out {}: use a .csv or .npy file name", p.display()))),
    }
}

fn mean_std(s: &[f64], d: usize) -> (Vec<f64>, Vec<f64>) {
    let n = (s.len() / d) as f64;
    let mut m = vec![0.0; d];
    for r in s.chunks(d) {
        for j in 0..d {
            m[j] += r[j] / n;
        }
    }
    let mut v = vec![0.0; d];
    for r in s.chunks(d) {
        for j in 0..d {
            v[j] += (r[j] - m[j]).powi(2) / (n - 1.0).max(1.0);
        }
    }
    (m, v.into_iter().map(f64::sqrt).collect())
}

fn run_task(a: RunArgs) -> Result<()> {
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
    let net = a.net.net(dt, dx)?;
    let tc = a.net.train(a.seed)?;
    let staged = Staged::dir(&out)?;
    let gpu = open_gpu()?;

    let t0 = Instant::now();
    let (theta, x) = fmpe::tasks::simulate_dataset(task.as_ref(), a.num_simulations, a.seed);
    let theta_m = Matrix::new(a.num_simulations, dt, theta);
    let x_m = Matrix::new(a.num_simulations, dx, x);
    let (theta_m, x_m, dropped) = drop_nonfinite_rows(&theta_m, &x_m, Path::new("(simulated theta)"), Path::new("(simulated x)"))?;
    if dropped > 0 {
        eprintln!("warning: dropped {dropped} failed simulations (non-finite x)");
    }
    let t_sim = t0.elapsed().as_secs_f64();
    eprintln!("simulated {} × {} in {t_sim:.1} s", a.num_simulations, task.name());

    let t1 = Instant::now();
    let prior = task_box(task.as_ref());
    let transform = a.transform.transform(prior.as_ref(), Some(task.as_ref()));
    announce_transform(&transform);
    let x_transform = a.transform.x_transform(Some(task.as_ref()))?;
    announce_x_transform(x_transform);
    let meta = ModelMeta {
        theta_names: task.theta_names(),
        x_names: task.x_names(),
        task: Some(task.name().to_string()),
        prior,
        transform,
        x_transform,
        dropped_rows: dropped,
    };
    let (model, warnings) = fit_model(&gpu, net, tc, &theta_m.data, &x_m.data, meta, true)?;
    for w in warnings {
        eprintln!("warning: {w}");
    }
    let t_train = t1.elapsed().as_secs_f64();
    let best = &model.info.history[model.info.best_epoch - 1];
    let last = model.info.history.last().expect("one epoch");
    eprintln!(
        "trained {} epochs in {t_train:.1} s (best epoch {}, validation loss {:.4})",
        last.epoch, model.info.best_epoch, best.val_loss
    );
    model.save(&staged.tmp.join("model"))?;
    fmpe::plot::training_curve(&model.info.history, &staged.tmp.join("model").join("training_curve.png"))?;

    let t2 = Instant::now();
    let post = GpuModel::new(gpu.clone(), &model)?.posterior(&observation)?;
    let (s, _, rep) = post.sample(a.num_samples, &a.solver.options(a.seed))?.into_parts();
    let t_sample = t2.elapsed().as_secs_f64();
    write_matrix(&staged.tmp.join("samples.csv"), &Matrix::new(a.num_samples, dt, s.clone()).with_header(task.theta_names()))?;
    fmpe::plot::pair_plot(&s, None, dt, &task.theta_names(), &staged.tmp.join("pairplot.png"))?;
    write_matrix(&staged.tmp.join("observation.csv"), &Matrix::new(1, dx, observation.clone()).with_header(task.x_names()))?;
    let (mean, std) = mean_std(&s, dt);
    let summary = serde_json::json!({
        "task": task.name(),
        "adapter": gpu.adapter().map(|a| a.to_string()),
        "num_simulations": a.num_simulations,
        "dropped_simulations": dropped,
        "num_samples": a.num_samples,
        "dim_theta": dt,
        "dim_x": dx,
        "network": model.info.net,
        "parameters": model.params.len(),
        "transform": model.info.transform,
        "seconds": {"simulate": t_sim, "train": t_train, "sample": t_sample, "total": t0.elapsed().as_secs_f64()},
        "epochs": last.epoch,
        "best_epoch": model.info.best_epoch,
        "final_train_loss": last.train_loss,
        "best_validation_loss": best.val_loss,
        "sampling": rep,
        "posterior_mean": mean,
        "posterior_std": std,
        "observation": observation,
    });
    let text = serde_json::to_string_pretty(&summary).map_err(|e| Error::invalid(e.to_string()))?;
    std::fs::write(staged.tmp.join("summary.json"), text).map_err(|e| Error::io(staged.tmp.join("summary.json"), e))?;
    staged.commit()?;

    println!("fmpe run --task {}", task.name());
    println!("  adapter         {}", gpu.adapter().map(|a| a.to_string()).unwrap_or_default());
    println!("  simulations     {} ({} dropped), dim θ = {dt}, dim x = {dx}", a.num_simulations, dropped);
    let net = &model.info.net;
    let emb = if net.embedding.is_empty() { String::new() } else { format!("x-embedding {:?}, ", net.embedding) };
    println!("  network         {} blocks {:?}, {} conditioning, {emb}{} parameters", net.hidden.len(), net.hidden, net.conditioning, model.params.len());
    println!("  time            simulate {t_sim:.1} s, train {t_train:.1} s, sample {t_sample:.1} s");
    println!("  training        {} epochs, final train loss {:.4}, best validation loss {:.4} (epoch {})", last.epoch, last.train_loss, best.val_loss, model.info.best_epoch);
    println!("  sampling        {}", report_line(&rep));
    for j in 0..dt {
        println!("  {:<15} mean {:>10.4}  std {:>9.4}", task.theta_names()[j], mean[j], std[j]);
    }
    println!("  output          {}/samples.csv, pairplot.png, model/, summary.json", out.display());
    Ok(())
}
