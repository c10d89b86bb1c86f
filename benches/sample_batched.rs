//! Amortized sampling against one call per observation (issue 12): `n` posterior samples
//! for each of `m` observations of a trained model, by `GpuModel::sample_batched` (one
//! set of solves over all rows) and by `m` separate `Posterior::sample` calls, run
//! alternately (3 pairs) in one process. Checks the results are bitwise equal.
//!
//! `cargo bench --bench sample_batched -- MODEL_DIR [m] [n] [rk4|dopri5]`
//! (observations: m points on a line through the mean of the training x, within ±0.5
//! standard deviations; models without an x transform).
use std::sync::Arc;
use std::time::Instant;

use fmpe::model::Model;
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use fmpe::Gpu;

fn main() -> fmpe::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).filter(|a| a != "--bench").collect();
    let Some(dir) = args.first() else {
        // `cargo bench` runs every bench without arguments: this one needs a model.
        println!("sample_batched: skipped (usage: cargo bench --bench sample_batched -- MODEL_DIR [m] [n] [rk4|dopri5])");
        return Ok(());
    };
    let m: usize = args.get(1).map_or(Ok(10), |s| s.parse()).map_err(|_| fmpe::Error::usage("m: not a count"))?;
    let n: usize = args.get(2).map_or(Ok(1000), |s| s.parse()).map_err(|_| fmpe::Error::usage("n: not a count"))?;
    let solver = match args.get(3).map(String::as_str) {
        Some("rk4") => Solver::Rk4 { steps: 20 },
        _ => Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 },
    };
    let model = Model::load(std::path::Path::new(dir))?;
    let on_gpu = GpuModel::new(Arc::new(Gpu::new()?), &model)?;
    let dx = on_gpu.dim_x();
    let mut xs = Vec::with_capacity(m * dx);
    for j in 0..m {
        for k in 0..dx {
            xs.push(model.x_mean[k] + model.x_std[k] * (j as f64 / m.max(2) as f64 - 0.5));
        }
    }
    let opts = PosteriorOptions { solver, seed: 1, ..Default::default() };
    // Warm up (pipelines compiled once).
    on_gpu.sample_batched(&xs[..dx], 16, &opts)?;
    on_gpu.posterior(&xs[..dx])?.sample(16, &opts)?;
    let (mut sep, mut bat) = (Vec::new(), Vec::new());
    for _ in 0..3 {
        let t = Instant::now();
        let alone: Vec<Vec<f64>> = xs.chunks(dx).map(|x| Ok(on_gpu.posterior(x)?.sample(n, &opts)?.as_slice().to_vec())).collect::<fmpe::Result<_>>()?;
        sep.push(t.elapsed().as_secs_f64());
        let t = Instant::now();
        let batched = on_gpu.sample_batched(&xs, n, &opts)?;
        bat.push(t.elapsed().as_secs_f64());
        assert!(batched.iter().zip(&alone).all(|(b, a)| b.as_slice() == a.as_slice()), "batched samples differ from separate calls");
    }
    let med = |v: &mut Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (s, b) = (med(&mut sep), med(&mut bat));
    println!(
        "{m} observations × {n} samples, {solver:?}: separate calls {s:.2} s ({:.0} draws/s), sample_batched {b:.2} s ({:.0} draws/s), {:.2}× (medians of 3 pairs; bitwise equal)",
        (m * n) as f64 / s,
        (m * n) as f64 / b,
        s / b
    );
    Ok(())
}
