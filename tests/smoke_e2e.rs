mod common;
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{Posterior, SampleOptions, Solver};
use fmpe::train::{TrainConfig, Trainer};
use rand::SeedableRng;
use rand_distr::{Distribution, Normal};

#[test]
fn smoke_gaussian_linear() {
    let Some(gpu) = common::gpu() else { return };
    let d = 3;
    let n = 4000;
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    let nd = Normal::new(0.0, 0.1f64.sqrt()).unwrap();
    let theta: Vec<f64> = (0..n * d).map(|_| nd.sample(&mut rng)).collect();
    let x: Vec<f64> = theta.iter().map(|t| t + nd.sample(&mut rng)).collect();
    for cond in [Conditioning::Glu] {
        let cfg = NetConfig { dim_theta: d, dim_x: d, hidden: vec![64, 64, 64], conditioning: cond };
        let alpha: f64 = std::env::var("ALPHA").map(|s| s.parse().unwrap()).unwrap_or(4.0); let tc = TrainConfig { max_epochs: 40, batch_size: 128, time_prior_exponent: alpha, ..Default::default() };
        let t0 = std::time::Instant::now();
        let tr = Trainer::new(gpu, cfg.clone(), tc.clone(), &theta, &x, None).unwrap();
        let out = tr.fit(false).unwrap();
        eprintln!("{cond}: train {:.1}s, best epoch {}, last {:?}", t0.elapsed().as_secs_f64(), out.best_epoch, out.history.last());
        let info = fmpe::model::ModelInfo {
            format_version: 1, net: cfg, sigma_min: tc.sigma_min, time_prior_exponent: tc.time_prior_exponent,
            theta_names: vec![], x_names: vec![], task: None, prior: None, train: tc, n_train: out.n_train, n_val: out.n_val,
            dropped_rows: 0, best_epoch: out.best_epoch, history: out.history.clone(),
        };
        let model = fmpe::model::Model { info, params: out.params, theta_mean: out.theta_mean, theta_std: out.theta_std, x_mean: out.x_mean, x_std: out.x_std };
        let xo = vec![0.3, -0.2, 0.1];
        let post = Posterior::new(gpu, &model, &xo).unwrap();
        for solver in [Solver::default()] {
            let t0 = std::time::Instant::now();
            let (s, rep) = post.sample(5000, &SampleOptions { solver, ..Default::default() }).unwrap();
            let mut mean = vec![0.0; d];
            let mut var = vec![0.0; d];
            for r in s.chunks(d) { for j in 0..d { mean[j] += r[j] / 5000.0; } }
            for r in s.chunks(d) { for j in 0..d { var[j] += (r[j] - mean[j]).powi(2) / 5000.0; } }
            eprintln!("  {solver:?}: {:.2}s mean {mean:?} (want {:?}) var {var:?} (want 0.05) steps {:.1} rej {:.2}", t0.elapsed().as_secs_f64(), xo.iter().map(|v| v / 2.0).collect::<Vec<_>>(), rep.mean_steps, rep.mean_rejected_steps);
        }
    }
}
