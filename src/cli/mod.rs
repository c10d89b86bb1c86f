//! Command-line front end (clap). Each subcommand validates its input, does its work
//! through the library, and writes its outputs atomically (temporary name, then rename),
//! so a failed command leaves no partial file or directory behind.
//!
//! One file per command; `args` holds the shared flag groups, `pipeline` the one
//! task → transform → meta → train path that `train`, `run` and `evaluate` share,
//! `progress` the training progress bar, and `flags` the table that turns the library's
//! option names into flag names in error messages.

use clap::{Parser, Subcommand};
use fmpe::error::Result;

mod args;
mod bench;
mod bench_suite;
mod c2st;
mod calibrate;
pub mod config;
mod devices;
mod evaluate;
mod flags;
mod json;
mod log_prob;
mod pipeline;
mod plot;
mod progress;
mod run;
mod sample;
mod simulate;
mod train;
mod util;

pub use flags::describe_error;

/// Whether `--json` was given (for [`say!`](crate::say)).
pub fn json_enabled() -> bool {
    json::enabled()
}

/// Flow Matching Posterior Estimation on the GPU (wgpu + WGSL).
#[derive(Parser, Debug)]
#[command(name = "fmpe", version, about, long_about = None, args_override_self = true)]
pub struct Cli {
    /// TOML file of flag values for the command (keys are flag names, `-` or `_`;
    /// top-level keys and a table named after the command apply; flags given on the
    /// command line override it). `fmpe train` writes its effective one as
    /// MODEL_DIR/config.toml.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<std::path::PathBuf>,
    /// Print one JSON document on stdout (`schema_version`, `command`, then the
    /// command's results); messages for people go to stderr.
    #[arg(long, global = true)]
    json: bool,
    /// Use the adapter with this index in `fmpe devices` (as WGPU_ADAPTER_INDEX does;
    /// the flag wins).
    #[arg(long, global = true, value_name = "N")]
    adapter: Option<usize>,
    /// Without a terminal (a log file, a batch job), print a training progress line at
    /// most every this many seconds.
    #[arg(long, global = true, value_name = "S", default_value_t = 10)]
    progress_seconds: u64,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// List the GPU adapters wgpu finds and the one fmpe uses.
    Devices,
    /// Draw θ from a task's prior and simulate x: writes DIR/theta.npy and DIR/x.npy.
    Simulate(simulate::SimulateArgs),
    /// Train an FMPE model on θ/x files; writes MODEL_DIR (model.safetensors + model.json).
    Train(train::TrainArgs),
    /// Draw posterior samples for one observation.
    Sample(sample::SampleArgs),
    /// Evaluate log q(θ | x_o) for the rows of a θ file (natural log, original units).
    LogProb(log_prob::LogProbArgs),
    /// The main job: simulate, train and sample a benchmark task end to end.
    Run(run::RunArgs),
    /// Classifier two-sample test (sbibm's C2ST recipe) between two sample files, on the
    /// GPU; prints the score (0.5: indistinguishable, 1: separable) as the last line.
    C2st(c2st::C2stArgs),
    /// Pair plot (corner plot) of samples, optionally over reference samples, as PNG.
    Plot(plot::PlotArgs),
    /// The SBI benchmark for one task: train once, sample each observation, C2ST against
    /// sbibm's reference posteriors, table + pair plots.
    Evaluate(evaluate::EvaluateArgs),
    /// Simulation-based calibration: coverage of credible intervals over held-out pairs.
    Calibrate(calibrate::CalibrateArgs),
    /// Measure training and sampling throughput and count dispatches and submissions.
    Bench(bench::BenchArgs),
}

/// Runs a parsed command line; returns the process exit code of a command that
/// succeeded (0, or 128 + signal for a training run stopped by SIGINT / SIGTERM).
pub fn run(cli: Cli) -> Result<i32> {
    json::enable(cli.json);
    util::set_adapter_index(cli.adapter);
    progress::set_line_seconds(cli.progress_seconds);
    if let Command::Train(a) = cli.command {
        return train::train(a);
    }
    run_other(cli.command).map(|()| 0)
}

fn run_other(command: Command) -> Result<()> {
    match command {
        Command::Devices => devices::devices(),
        Command::Simulate(a) => simulate::simulate(a),
        Command::Train(a) => train::train(a).map(|_| ()),
        Command::Sample(a) => sample::sample(a),
        Command::LogProb(a) => log_prob::log_prob(a),
        Command::Run(a) => run::run_task(a),
        Command::C2st(a) => c2st::c2st(a),
        Command::Plot(a) => plot::plot(a),
        Command::Evaluate(a) => evaluate::evaluate(a),
        Command::Calibrate(a) => calibrate::calibrate(a),
        Command::Bench(a) => bench::bench(a),
    }
}
