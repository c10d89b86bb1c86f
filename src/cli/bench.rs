//! `fmpe bench`: training and sampling throughput, and the dispatch / submission counts
//! per training step and per ODE step, for a stated network and batch; with `--suite`,
//! the suite of `bench_suite.rs`.

use std::time::Instant;

use clap::Args;
use fmpe::error::Result;
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use fmpe::model::ModelMeta;
use fmpe::train::{Control, Fmpe, Trainer};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

use super::args::NetTrainArgs;
use super::util::open_gpu;

#[derive(Args, Debug)]
pub(crate) struct BenchArgs {
    /// Dimension of θ of the synthetic problem (x = θ + noise, so dim x = dim θ).
    #[arg(long, default_value_t = 2)]
    dim_theta: usize,
    /// Simulations resident on the GPU.
    #[arg(long, default_value_t = 10_000)]
    num_simulations: usize,
    /// Timed training steps.
    #[arg(long, default_value_t = 100)]
    train_steps: usize,
    /// Posterior samples per timed sampling run.
    #[arg(long, default_value_t = 10_000)]
    num_samples: usize,
    /// rk4 steps of the timed rk4 run.
    #[arg(long, default_value_t = 50)]
    rk4_steps: usize,
    /// Points per timed log_prob call (0 skips the log_prob figures).
    #[arg(long, default_value_t = 256)]
    log_prob_points: usize,
    #[command(flatten)]
    net: NetTrainArgs,
    #[command(flatten)]
    suite: super::bench_suite::SuiteArgs,
}

pub(crate) fn bench(a: BenchArgs) -> Result<()> {
    if a.suite.suite {
        return super::bench_suite::run(&a.suite);
    }
    let gpu = open_gpu()?;
    let d = a.dim_theta;
    let n = a.num_simulations;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let nd = Normal::new(0.0, 0.1f64.sqrt()).expect("valid normal");
    let theta: Vec<f64> = (0..n * d).map(|_| nd.sample(&mut rng)).collect();
    let x: Vec<f64> = theta.iter().map(|t| t + nd.sample(&mut rng)).collect();
    let resolved = a.net.resolve(n, d, d, 0)?;
    crate::say!("{}", resolved.summary());
    let (net, mut tc) = (resolved.net, resolved.train);
    let params = net.layout().len;
    let mut out = BenchJson::default();
    crate::say!(
        "network: {} blocks {:?}, {} conditioning, {}{params} parameters; batch {}; dim θ = dim x = {d}",
        net.hidden.len(),
        net.hidden,
        net.conditioning,
        if net.embedding.is_empty() { String::new() } else { format!("x-embedding {:?}, ", net.embedding) },
        tc.batch_size
    );

    // Training steps.
    let mut tr = Trainer::new(&gpu, net.clone(), tc.clone(), &theta, &x, None)?;
    let spe = tr.steps_per_epoch();
    // Returns the submissions made by epoch ends (validation + loss readback).
    let run_steps = |tr: &mut Trainer, k: usize| -> Result<u64> {
        let mut epoch_subs = 0;
        for _ in 0..k {
            if tr.steps_done_in_epoch() == spe {
                let s = gpu.submission_count();
                tr.end_epoch()?;
                epoch_subs += gpu.submission_count() - s;
            }
            tr.step()?;
        }
        Ok(epoch_subs)
    };
    run_steps(&mut tr, 5.min(spe))?;
    gpu.wait()?;
    let s0 = gpu.submission_count();
    let t0 = Instant::now();
    let k = a.train_steps;
    let epoch_subs = run_steps(&mut tr, k)?;
    gpu.wait()?;
    let secs = t0.elapsed().as_secs_f64();
    let subs = (gpu.submission_count() - s0 - epoch_subs) as f64 / k as f64;
    let disp = tr.dispatches_per_step() as f64;
    out.training = TrainingFigures {
        steps_per_second: k as f64 / secs,
        examples_per_second: (k * tr.batch_size()) as f64 / secs,
        submissions_per_step: subs,
        dispatches_per_step: disp,
        epoch_end_submissions: epoch_subs,
    };
    crate::say!(
        "training: {:.1} steps/s, {:.0} examples/s; {:.2} submissions and {:.0} dispatches per training step; {epoch_subs} more submissions for {epoch_subs} epoch ends (validation + loss readback)",
        k as f64 / secs,
        (k * tr.batch_size()) as f64 / secs,
        subs,
        disp
    );
    drop(tr);

    // A briefly trained model for the sampling figures (dopri5 step counts depend on the field).
    tc.max_epochs = 3;
    let model = Fmpe::new(gpu.clone(), net, ModelMeta::default())
        .append_simulations(&theta, &x)?
        .train(&tc, &mut |_| Control::Continue)?;
    let post = GpuModel::new(gpu.clone(), &model)?.posterior(&vec![0.1; d])?;
    for solver in [Solver::Rk4 { steps: a.rk4_steps }, Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }] {
        let opts = PosteriorOptions { solver, ..Default::default() };
        // Warm-up: compiles the pipelines this plan specialises (not part of the rate).
        post.sample(64.min(a.num_samples), &opts)?;
        let (s0, d0) = (gpu.submission_count(), gpu.dispatch_count());
        let t0 = Instant::now();
        let rep = post.sample(a.num_samples, &opts)?.report().clone();
        let secs = t0.elapsed().as_secs_f64();
        let (per_step, steps_per_sub) = post.ode_step_dispatches(solver, None);
        out.sampling.push(SamplingFigures {
            solver: format!("{solver:?}"),
            samples_per_second: a.num_samples as f64 / secs,
            mean_steps: rep.mean_steps,
            mean_rejected_steps: rep.mean_rejected_steps,
            dispatches_per_ode_step: per_step as f64,
            steps_per_submission: steps_per_sub as f64,
            submissions: gpu.submission_count() - s0,
            dispatches: gpu.dispatch_count() - d0,
        });
        crate::say!(
            "sampling {solver:?}: {:.0} posterior samples/s; {:.1} accepted + {:.1} rejected ODE steps per sample; {per_step} dispatches per ODE step (whole chunk), 1 submission per {steps_per_sub} steps; {} submissions and {} dispatches in all",
            a.num_samples as f64 / secs,
            rep.mean_steps,
            rep.mean_rejected_steps,
            gpu.submission_count() - s0,
            gpu.dispatch_count() - d0,
        );
    }
    if a.log_prob_points > 0 {
        for b in fmpe::posterior::bench_log_prob(&gpu, a.log_prob_points)? {
            crate::say!(
                "log_prob dim θ = {:>2} {:<14}: {:.0} evaluations/s ({} points in {:.2} s); {} dispatches per dopri5 step",
                b.dim_theta, b.divergence, b.evals_per_second, b.points, b.seconds, b.dispatches_per_step
            );
            out.log_prob.push(b);
        }
    }
    super::json::emit("bench", out)
}

/// `fmpe bench --json`: the figures printed, by name.
#[derive(serde::Serialize, Debug, Default)]
struct BenchJson {
    training: TrainingFigures,
    /// One entry per solver (rk4, dopri5).
    sampling: Vec<SamplingFigures>,
    /// With --log-prob-points.
    log_prob: Vec<fmpe::posterior::LogProbBench>,
}

/// Training throughput and GPU work per step.
#[derive(serde::Serialize, Debug, Default)]
struct TrainingFigures {
    steps_per_second: f64,
    examples_per_second: f64,
    submissions_per_step: f64,
    dispatches_per_step: f64,
    /// Submissions of the epoch ends (validation + loss readback) in the timed steps.
    epoch_end_submissions: u64,
}

/// Sampling throughput and GPU work of one solver.
#[derive(serde::Serialize, Debug, Default)]
struct SamplingFigures {
    solver: String,
    samples_per_second: f64,
    mean_steps: f64,
    mean_rejected_steps: f64,
    dispatches_per_ode_step: f64,
    steps_per_submission: f64,
    submissions: u64,
    dispatches: u64,
}
