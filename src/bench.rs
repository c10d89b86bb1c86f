//! Measurements behind `fmpe bench --suite` and `cargo bench --bench matmul`: matmul
//! GFLOP/s per operand layout, training examples/s, posterior draws/s and log_prob
//! evaluations/s, with the dispatch and submission counts that explain them. Every
//! figure is timed on a warmed-up device (pipelines compiled, buffers allocated) for
//! about `seconds` of wall time; the rows are plain data for tables and JSON.

use std::sync::Arc;
use std::time::Instant;

use rand::SeedableRng;
use rand_distr::{Distribution, Normal};
use serde::Serialize;

use crate::error::Result;
use crate::gpu::Gpu;
use crate::kernels::{Bindings, Buf, Mat, Matmul, Op, ProgramBuilder};
use crate::model::{Model, ModelMeta};
use crate::net::{Conditioning, NetConfig};
use crate::ode::{Divergence, Solver};
use crate::posterior::{GpuModel, PosteriorOptions};
use crate::train::{Control, Fmpe, Trainer};
use crate::train_config::TrainConfig;

/// The three products of a linear layer with `fan_in` inputs and `fan_out` outputs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MatmulLayout {
    /// Forward `Y = gelu(X) · Wᵀ + b`: X `[rows, fan_in]`, W `[fan_out, fan_in]`.
    ForwardGeluBias,
    /// Backward data `dX = dY · W`: dY `[rows, fan_out]`.
    BackwardData,
    /// Weight gradient `dW = dYᵀ · X` `[fan_out, fan_in]` with the bias gradient
    /// `Σ_rows dY` as a virtual extra column.
    WeightGradBias,
}

/// One matmul figure.
#[derive(Clone, Debug, Serialize)]
pub struct MatmulBench {
    /// Which product.
    pub layout: MatmulLayout,
    /// Rows of X (the batch).
    pub rows: usize,
    /// Layer input width.
    pub fan_in: usize,
    /// Layer output width.
    pub fan_out: usize,
    /// Useful floating-point operations per second / 1e9 (2 per multiply-add).
    pub gflops: f64,
}

/// Times `layout` at `rows × fan_in → fan_out` for about `seconds` (many dispatches in
/// one submission; the best of three submissions).
///
/// # Errors
/// [`crate::Error::Gpu`] if the device rejects the buffers or the program.
pub fn matmul(gpu: &Gpu, layout: MatmulLayout, rows: usize, fan_in: usize, fan_out: usize, seconds: f64) -> Result<MatmulBench> {
    matmul_with(gpu, layout, rows, fan_in, fan_out, seconds, true)
}

/// As [`matmul`], with the weights read from their texture mirror
/// ([`crate::gpu::ParamsTexture`], where the device's matmul variant reads one) or from
/// their storage buffer (`params_tex` false).
///
/// # Errors
/// As [`matmul`].
pub fn matmul_with(gpu: &Gpu, layout: MatmulLayout, rows: usize, fan_in: usize, fan_out: usize, seconds: f64, params_tex: bool) -> Result<MatmulBench> {
    let (m, k, n) = (rows, fan_in, fan_out);
    let acts = gpu.storage("bench acts", ((m * k + m * n) * 4) as u64);
    let params = gpu.storage("bench params", ((n * k + n) * 4) as u64);
    let grads = gpu.storage("bench grads", ((n * k + n) * 4) as u64);
    let (x, y) = (Mat::rows(Buf::Acts, 0, k), Mat::rows(Buf::Acts, m * k, n));
    let mm = match layout {
        MatmulLayout::ForwardGeluBias => {
            let mut mm = Matmul::new(m, n, k, x, Mat::strided(Buf::Params, 0, 1, k), y);
            mm.a_op = Op::Gelu;
            mm.bias = Some(Mat::rows(Buf::Params, n * k, n));
            mm
        }
        MatmulLayout::BackwardData => Matmul::new(m, k, n, y, Mat::rows(Buf::Params, 0, k), x),
        MatmulLayout::WeightGradBias => {
            let mut mm = Matmul::new(n, k, m, y.t(), x, Mat::rows(Buf::Grads, 0, k));
            mm.bias_grad = Some(n * k);
            mm
        }
    };
    let flop = 2.0 * (m * n * k) as f64;
    let tex = if params_tex { crate::gpu::ParamsTexture::for_gpu(gpu, n * k + n) } else { None };
    if let Some(t) = &tex {
        t.sync_now(gpu, &params)?;
    }
    let bind = Bindings {
        acts: Some(&acts),
        params: Some(&params),
        grads: Some(&grads),
        params_tex: tex.as_ref().map(|t| t.view()),
        ..Default::default()
    };
    let program = |reps: usize| -> Result<crate::kernels::Program> {
        let mut b = ProgramBuilder::new(gpu);
        for _ in 0..reps {
            b.matmul(&mm);
        }
        b.build(gpu, bind)
    };
    // Calibrate: one dispatch (compiles the pipeline), then size the program.
    let probe = program(8)?;
    probe.run(gpu)?;
    gpu.wait()?;
    let t0 = Instant::now();
    probe.run(gpu)?;
    gpu.wait()?;
    let per = t0.elapsed().as_secs_f64() / 8.0;
    let reps = ((seconds / 3.0 / per.max(1e-7)) as usize).clamp(8, 4000);
    let prog = program(reps)?;
    let mut best = f64::MAX;
    for _ in 0..3 {
        let t0 = Instant::now();
        prog.run(gpu)?;
        gpu.wait()?;
        best = best.min(t0.elapsed().as_secs_f64());
    }
    Ok(MatmulBench { layout, rows, fan_in, fan_out, gflops: flop * reps as f64 / best / 1e9 })
}

/// One training figure.
#[derive(Clone, Debug, Serialize)]
pub struct TrainBench {
    /// Minibatch size.
    pub batch: usize,
    /// Optimiser steps per second.
    pub steps_per_second: f64,
    /// Training examples per second (`steps_per_second × batch`).
    pub examples_per_second: f64,
    /// Compute dispatches recorded per training step.
    pub dispatches_per_step: usize,
    /// Queue submissions per training step (epoch ends excluded).
    pub submissions_per_step: f64,
    /// Steps timed.
    pub steps: usize,
}

/// A synthetic problem: θ ~ N(0, 0.1 I), x = θ + N(0, 0.1 I), `n` rows of dimension `d`.
pub fn synthetic(n: usize, d: usize, seed: u64) -> (Vec<f64>, Vec<f64>) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let nd = Normal::new(0.0, 0.1f64.sqrt()).expect("valid normal");
    let theta: Vec<f64> = (0..n * d).map(|_| nd.sample(&mut rng)).collect();
    let x: Vec<f64> = theta.iter().map(|t| t + nd.sample(&mut rng)).collect();
    (theta, x)
}

/// The network `width × blocks` (concat conditioning, no embedding) for dim θ = dim x = `d`.
pub fn network(width: usize, blocks: usize, d: usize) -> NetConfig {
    NetConfig { dim_theta: d, dim_x: d, hidden: vec![width; blocks], conditioning: Conditioning::Concat, embedding: vec![] }
}

/// Times training steps of `net` at `batch` for about `seconds` (after 3 warm-up steps)
/// on the synthetic problem of `theta`, `x`.
///
/// # Errors
/// As [`Trainer::new`] and [`Trainer::step`].
pub fn training(gpu: &Gpu, net: &NetConfig, batch: usize, theta: &[f64], x: &[f64], seconds: f64) -> Result<TrainBench> {
    let tc = TrainConfig { batch_size: batch, ..TrainConfig::default() };
    let mut tr = Trainer::new(gpu, net.clone(), tc, theta, x, None)?;
    let spe = tr.steps_per_epoch();
    let step = |tr: &mut Trainer| -> Result<u64> {
        let mut epoch_subs = 0;
        if tr.steps_done_in_epoch() == spe {
            let s = gpu.submission_count();
            tr.end_epoch()?;
            epoch_subs = gpu.submission_count() - s;
        }
        tr.step()?;
        Ok(epoch_subs)
    };
    for _ in 0..3 {
        step(&mut tr)?;
    }
    gpu.wait()?;
    let s0 = gpu.submission_count();
    let t0 = Instant::now();
    let (mut steps, mut epoch_subs) = (0usize, 0u64);
    while steps < 3 || t0.elapsed().as_secs_f64() < seconds {
        epoch_subs += step(&mut tr)?;
        steps += 1;
        if steps % 8 == 0 {
            gpu.wait()?;
        }
    }
    gpu.wait()?;
    let secs = t0.elapsed().as_secs_f64();
    Ok(TrainBench {
        batch,
        steps_per_second: steps as f64 / secs,
        examples_per_second: (steps * batch) as f64 / secs,
        dispatches_per_step: tr.dispatches_per_step(),
        submissions_per_step: (gpu.submission_count() - s0 - epoch_subs) as f64 / steps as f64,
        steps,
    })
}

/// Trains `net` for `epochs` epochs on the synthetic problem (a model whose field has
/// structure, for sampling and log_prob figures).
///
/// # Errors
/// As [`Fmpe::train`].
pub fn briefly_trained(gpu: &Arc<Gpu>, net: &NetConfig, theta: &[f64], x: &[f64], epochs: usize) -> Result<Model> {
    let tc = TrainConfig { max_epochs: epochs, ..TrainConfig::default() };
    Fmpe::new(gpu.clone(), net.clone(), ModelMeta::default()).append_simulations(theta, x)?.train(&tc, &mut |_| Control::Continue)
}

/// One sampling or log_prob figure.
#[derive(Clone, Debug, Serialize)]
pub struct OdeBench {
    /// `rk4(20)`, `dopri5(1e-5)`, `log_prob exact` or `log_prob hutchinson(1)`.
    pub what: String,
    /// Draws (sampling) or evaluations (log_prob) per second.
    pub per_second: f64,
    /// Draws or evaluations timed.
    pub count: usize,
    /// Mean accepted ODE steps per draw (sampling; 0 for log_prob, whose figure counts points).
    pub steps_per_sample: f64,
    /// Compute dispatches per ODE step (whole chunk).
    pub dispatches_per_ode_step: usize,
    /// ODE steps per queue submission.
    pub ode_steps_per_submission: usize,
}

/// Times posterior draws (rk4 with 20 steps, and dopri5 with atol = rtol = 1e-5) and
/// log_prob evaluations (exact and Hutchinson with one probe) of `model` at the
/// observation `x_o`, each for about `seconds` after a small warm-up call.
///
/// # Errors
/// As [`GpuModel::new`], [`crate::posterior::Posterior::sample`] and
/// [`crate::posterior::Posterior::log_prob`].
pub fn ode(gpu: &Arc<Gpu>, model: &Model, x_o: &[f64], seconds: f64) -> Result<Vec<OdeBench>> {
    let post = GpuModel::new(gpu.clone(), model)?.posterior(x_o)?;
    let d = model.theta_mean.len();
    let mut rows = Vec::new();
    for solver in [Solver::Rk4 { steps: 20 }, Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }] {
        let opts = PosteriorOptions { solver, reject_outside_prior: false, ..Default::default() };
        let time = |n: usize| -> Result<(f64, f64)> {
            let t0 = Instant::now();
            let s = post.sample(n, &opts)?;
            Ok((t0.elapsed().as_secs_f64(), s.report().mean_steps))
        };
        time(64)?; // compiles the pipelines and sizes the buffers
        let (t_warm, _) = time(64)?;
        let n = ((64.0 * seconds / t_warm.max(1e-4)) as usize).clamp(64, 50_000);
        let (t, steps) = time(n)?;
        let (per_step, steps_per_sub) = post.ode_step_dispatches(solver, None);
        let what = match solver {
            Solver::Rk4 { steps } => format!("rk4({steps})"),
            Solver::Dopri5 { atol, .. } => format!("dopri5({atol:e})"),
        };
        rows.push(OdeBench {
            what,
            per_second: n as f64 / t,
            count: n,
            steps_per_sample: steps,
            dispatches_per_ode_step: per_step,
            ode_steps_per_submission: steps_per_sub,
        });
    }
    for (name, div) in [("exact", Divergence::Exact), ("hutchinson(1)", Divergence::Hutchinson { probes: 1, gaussian: false })] {
        let opts = PosteriorOptions { divergence: div, reject_outside_prior: false, ..Default::default() };
        let points = |n: usize| -> Vec<f64> { synthetic(n, d, 99).0 };
        post.log_prob(&points(16), &opts)?; // compiles the pipelines
        let t0 = Instant::now();
        post.log_prob(&points(16), &opts)?;
        let t_warm = t0.elapsed().as_secs_f64();
        let n = ((16.0 * seconds / t_warm.max(1e-4)) as usize).clamp(16, 20_000);
        let theta = points(n);
        let t0 = Instant::now();
        post.log_prob(&theta, &opts)?;
        let t = t0.elapsed().as_secs_f64();
        let (per_step, steps_per_sub) = post.ode_step_dispatches(opts.solver, Some(div));
        rows.push(OdeBench {
            what: format!("log_prob {name}"),
            per_second: n as f64 / t,
            count: n,
            steps_per_sample: 0.0,
            dispatches_per_ode_step: per_step,
            ode_steps_per_submission: steps_per_sub,
        });
    }
    Ok(rows)
}
