//! End to end on sbibm's gaussian_linear (prior N(0, 0.1·I₁₀), x ~ N(θ, 0.1·I₁₀), 0.1 the
//! variance), whose posterior is N(x_o/2, 0.05·I₁₀): after a small training run the mean
//! of 10,000 samples is within 0.05 of x_o/2 in every coordinate and each marginal
//! variance within ±20 % of 0.05. And a dim-x-100 problem with 90 distractor dimensions
//! through the x-embedding network.
mod common;

use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use fmpe::tasks::{simulate_dataset, task_by_name};
use fmpe::model::ModelMeta;
use fmpe::train::{Control, Fmpe, TrainConfig};

#[test]
fn gaussian_linear_posterior_mean_and_variance() {
    let gpu = common::gpu();
    let task = task_by_name("gaussian_linear").unwrap();
    let (theta, x) = simulate_dataset(task.as_ref(), 10_000, 3);
    let net = NetConfig { dim_theta: 10, dim_x: 10, hidden: vec![64; 3], conditioning: Conditioning::Concat, embedding: vec![] };
    // A small run: 40 epochs of the default (cosine) schedule with uniform t (α = 0).
    // With α = 4 the time prior puts P(t < 0.2) = 3e-4, so a run this short never learns
    // the field near t = 0 and the ODE expands the noise (variance ≈ 0.33, measured);
    // long runs with α = 4 are in BENCHMARKS.md.
    let tc = TrainConfig { max_epochs: 40, seed: 3, time_prior_exponent: 0.0, ..Default::default() };
    let t0 = std::time::Instant::now();
    let model = Fmpe::new(gpu, net, ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap();
    let t_train = t0.elapsed().as_secs_f64();
    // A fresh observation from the task.
    let (_, xo) = simulate_dataset(task.as_ref(), 1, 99);
    let post = GpuModel::new(common::gpu_arc().clone(), &model).unwrap().posterior(&xo).unwrap();
    let t0 = std::time::Instant::now();
    let samples = post.sample(10_000, &PosteriorOptions { seed: 5, ..Default::default() }).unwrap();
    assert_eq!((samples.n(), samples.dim()), (10_000, 10));
    let (s, _, rep) = samples.into_parts();
    let n = 10_000.0;
    let mut worst_mean: f64 = 0.0;
    let mut worst_var: f64 = 0.0;
    for (j, &xo_j) in xo.iter().enumerate() {
        let m = s.iter().skip(j).step_by(10).sum::<f64>() / n;
        let v = s.iter().skip(j).step_by(10).map(|v| (v - m).powi(2)).sum::<f64>() / (n - 1.0);
        eprintln!("θ_{}: mean {m:.4} (x_o/2 = {:.4}), variance {v:.4}", j + 1, xo_j / 2.0);
        worst_mean = worst_mean.max((m - xo_j / 2.0).abs());
        worst_var = worst_var.max((v / 0.05 - 1.0).abs());
    }
    eprintln!(
        "train {t_train:.1} s ({} epochs), sample {:.1} s ({:.1} steps/sample): worst |mean error| {worst_mean:.4}, worst relative variance error {worst_var:.3}",
        model.info.history.len(),
        t0.elapsed().as_secs_f64(),
        rep.mean_steps
    );
    assert!(worst_mean <= 0.05, "posterior mean off by {worst_mean} (> 0.05)");
    assert!(worst_var <= 0.2, "posterior variance off by {:.1} % (> 20 %)", 100.0 * worst_var);
}

/// dim x = 100 with 90 pure-noise distractors: prior N(0, I₂); x_j = θ_{j mod 2} + 0.5 ε_j
/// for j < 10, x_j ~ N(0, 1) for j ≥ 10 (independent of θ). The posterior is Gaussian
/// with precision 1 + 5/0.25 = 21 per component (sd 0.218) and mean
/// (4 Σ_{j ≡ i mod 2} x_j) / 21. A short run (8 epochs of 12,000 simulations) with a
/// small x-embedding [32, 8] learns it: posterior means within 0.1 at two observations
/// (measured on lavapipe: 0.053; prior means would be off by up to 1.6). The network is
/// smaller than `--embedding auto`'s [128, 128, 32] to keep the test fast on a CPU
/// adapter; both train to a lower validation loss than the same network without an
/// embedding in this budget (0.41–0.42 vs 0.49, measured).
#[test]
fn distractor_dimensions_with_an_x_embedding() {
    let gpu = common::gpu();
    use rand::SeedableRng;
    use rand_distr::{Distribution, StandardNormal};
    const DX: usize = 100;
    let simulate = |n: usize, seed: u64| {
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        let theta: Vec<f64> = (0..2 * n).map(|_| normal()).collect();
        let mut x = Vec::with_capacity(n * DX);
        for r in 0..n {
            for j in 0..DX {
                x.push(if j < 10 { theta[2 * r + j % 2] + 0.5 * normal() } else { normal() });
            }
        }
        (theta, x)
    };
    let (theta, x) = simulate(12_000, 1);
    let net = NetConfig { dim_theta: 2, dim_x: DX, hidden: vec![32; 2], conditioning: Conditioning::Concat, embedding: vec![32, 8] };
    let tc = TrainConfig { max_epochs: 8, batch_size: 128, seed: 1, time_prior_exponent: 0.0, ..Default::default() };
    let t0 = std::time::Instant::now();
    let model = Fmpe::new(gpu, net, ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap();
    let t_train = t0.elapsed().as_secs_f64();
    let mut worst: f64 = 0.0;
    // One upload of the weights serves both observations.
    let on_gpu = GpuModel::new(common::gpu_arc().clone(), &model).unwrap();
    for seed in [11, 12] {
        let (_, xo) = simulate(1, seed);
        let post = on_gpu.posterior(&xo).unwrap();
        let opts = PosteriorOptions { seed, solver: Solver::Rk4 { steps: 20 }, ..Default::default() };
        let s = post.sample(2000, &opts).unwrap().into_parts().0;
        for i in 0..2 {
            let m = s.iter().skip(i).step_by(2).sum::<f64>() / 2000.0;
            let want = 4.0 * (0..10).filter(|j| j % 2 == i).map(|j| xo[j]).sum::<f64>() / 21.0;
            eprintln!("x_o seed {seed}, θ_{}: posterior mean {m:.4}, analytic {want:.4}", i + 1);
            worst = worst.max((m - want).abs());
        }
    }
    let last = model.info.history.last().unwrap();
    eprintln!(
        "train {t_train:.1} s ({} epochs, final validation loss {:.3}); worst |mean error| {worst:.4} (posterior sd 0.218)",
        model.info.history.len(),
        last.val_loss
    );
    assert!(worst <= 0.1, "posterior mean off by {worst} (> 0.1)");
}
