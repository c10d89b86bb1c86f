//! A small throughput benchmark of [`super::Posterior::log_prob`] (for `fmpe bench`).

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;

use super::{Divergence, GpuModel, PosteriorOptions};
use crate::error::Result;
use crate::gpu::Gpu;
use crate::model::Model;
use crate::net::{init_params, Conditioning, NetConfig};

/// One measured configuration of [`bench_log_prob`].
#[derive(Clone, Debug, Serialize)]
pub struct LogProbBench {
    /// Dimension of θ.
    pub dim_theta: usize,
    /// `exact` or `hutchinson(k)`.
    pub divergence: String,
    /// Points per `log_prob` call.
    pub points: usize,
    /// Wall-clock seconds of the timed call (after one warm-up call).
    pub seconds: f64,
    /// Log-density evaluations per second.
    pub evals_per_second: f64,
    /// Dispatches recorded per dopri5 step (whole batch).
    pub dispatches_per_step: usize,
    /// dopri5 step programs executed by the timed call (whole batch; they run in groups
    /// of 8 per submission, so this is a multiple of 8), from the dispatch counter.
    pub steps: f64,
    /// Queue submissions of the timed call.
    pub submissions: u64,
}

/// Measures `log_prob` throughput for dim θ = 2 and 10 (glu network, hidden
/// `[64, 64, 64]`, freshly initialised weights with active residual blocks, x of the
/// same dimension), with exact and Hutchinson (1 Rademacher probe) divergence, on
/// `points` points drawn from N(0, I). Each configuration runs once to warm up and
/// once timed.
///
/// # Errors
/// GPU errors.
pub fn bench_log_prob(gpu: &Arc<Gpu>, points: usize) -> Result<Vec<LogProbBench>> {
    use rand::{Rng, SeedableRng};
    let mut rows = Vec::new();
    for dim in [2usize, 10] {
        let cfg = NetConfig { dim_theta: dim, dim_x: dim, hidden: vec![64, 64, 64], conditioning: Conditioning::Glu, embedding: vec![] };
        let mut rng = rand::rngs::StdRng::seed_from_u64(dim as u64);
        let mut params = init_params(&cfg, &mut rng);
        for b in cfg.layout().blocks {
            for v in &mut params[b.linear2.weight..b.linear2.bias + b.linear2.fan_out] {
                *v = (rng.random::<f32>() - 0.5) * 0.2;
            }
        }
        let model = Model::with_params(cfg, params);
        let post = GpuModel::new(gpu.clone(), &model)?.posterior(&vec![0.1; dim])?;
        let theta: Vec<f64> = (0..points * dim).map(|_| rng.sample(rand_distr::StandardNormal)).collect();
        for (name, div) in [("exact".to_string(), Divergence::Exact), ("hutchinson(1)".to_string(), Divergence::Hutchinson { probes: 1, gaussian: false })] {
            let opts = PosteriorOptions { divergence: div, reject_outside_prior: false, ..Default::default() };
            post.log_prob(&theta, &opts)?;
            let (d0, s0) = (gpu.dispatch_count(), gpu.submission_count());
            let t0 = Instant::now();
            post.log_prob(&theta, &opts)?;
            let seconds = t0.elapsed().as_secs_f64();
            let (per_step, _) = post.ode_step_dispatches(opts.solver, Some(div));
            let dispatched = (gpu.dispatch_count() - d0) as f64;
            rows.push(LogProbBench {
                dim_theta: dim,
                divergence: name,
                points,
                seconds,
                evals_per_second: points as f64 / seconds,
                dispatches_per_step: per_step,
                // Each submission of steps also runs one count dispatch; start/finish are small.
                steps: (dispatched / per_step as f64).floor(),
                submissions: gpu.submission_count() - s0,
            });
        }
    }
    Ok(rows)
}
