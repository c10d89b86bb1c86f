//! The GPU ODE solvers (rk4, dopri5) on fields with known solutions, against the f64
//! reference; per-sample step control makes a sample independent of its batch.
mod common;

use common::*;
use fmpe::model::Model;
use fmpe::net::{init_params, Conditioning, NetConfig};
use fmpe::posterior::{GpuModel, Posterior, PosteriorOptions, Solver};
use fmpe::reference;
use rand::SeedableRng;

/// A model whose field is given by `params` (identity z-scoring, no prior).
fn model(cfg: NetConfig, params: Vec<f32>) -> Model {
    Model::with_params(cfg, params)
}

/// The posterior of `m` for `xo` on the shared test GPU.
fn posterior(m: &Model, xo: &[f64]) -> Posterior {
    GpuModel::new(common::gpu_arc().clone(), m).unwrap().posterior(xo).unwrap()
}

/// θ₀ of sample `i` exactly as the GPU draws it (Philox, Box–Muller).
fn theta0(i: u32, d: usize, seed: u64) -> Vec<f64> {
    let key = [seed as u32, (seed >> 32) as u32];
    (0..d)
        .map(|j| {
            let r = reference::philox::philox4x32_10([i, 0, 2 + (j / 4) as u32, 0x0DE], key);
            let u = |k: usize| reference::philox::uniform(r[k]);
            let (a, b) = reference::philox::box_muller(u(0), u(1));
            let (c, e) = reference::philox::box_muller(u(2), u(3));
            [a, b, c, e][j % 4]
        })
        .collect()
}

/// Linear field: concat network whose residual blocks are switched off (linear2 = 0),
/// so v(t, θ) = W_out (W_in [t, θ, x] + b_in) + b_out = A θ + β t + c.
fn linear_field() -> (NetConfig, Vec<f64>) {
    let cfg = NetConfig { dim_theta: 3, dim_x: 2, hidden: vec![8], conditioning: Conditioning::Concat, embedding: vec![] };
    let mut rng = rand::rngs::StdRng::seed_from_u64(5);
    let mut p: Vec<f64> = init_params(&cfg, &mut rng).iter().map(|&v| v as f64).collect();
    for b in cfg.layout().blocks {
        for v in &mut p[b.linear2.weight..b.linear2.bias + b.linear2.fan_out] {
            *v = 0.0;
        }
    }
    (cfg, p)
}

/// A non-linear field: a random glu network with active blocks.
fn nonlinear_field() -> (NetConfig, Vec<f64>) {
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16, 16], conditioning: Conditioning::Glu, embedding: vec![] };
    let mut rng = rand::rngs::StdRng::seed_from_u64(6);
    let mut p: Vec<f64> = init_params(&cfg, &mut rng).iter().map(|&v| v as f64).collect();
    let noise = rand_vec(p.len(), 9);
    for b in cfg.layout().blocks {
        for i in b.linear2.weight..b.linear2.bias + b.linear2.fan_out {
            p[i] = 0.5 * noise[i];
        }
    }
    (cfg, p)
}

fn truth(cfg: &NetConfig, p: &[f64], xo: &[f64], y0: &[f64], n: usize) -> Vec<f64> {
    let x_rows: Vec<f64> = (0..n).flat_map(|_| xo.iter().copied()).collect();
    let f = |t: &[f64], y: &[f64]| reference::net::forward(cfg, p, t, y, &x_rows);
    reference::ode::rk4(f, y0, n, cfg.dim_theta, 0.0, 1.0, 2000)
}

fn check_solvers(cfg: NetConfig, p: Vec<f64>) {
    let n = 300;
    let d = cfg.dim_theta;
    let xo = vec![0.4, -0.7];
    let seed = 1234u64;
    let y0: Vec<f64> = (0..n as u32).flat_map(|i| theta0(i, d, seed)).collect();
    let want = truth(&cfg, &p, &xo, &y0, n);
    let m = model(cfg, to_f32(&p));
    let post = posterior(&m, &xo);
    let scale = want.iter().fold(1.0f64, |a, v| a.max(v.abs()));
    for (solver, tol) in [
        (Solver::Rk4 { steps: 40 }, 2e-4),
        (Solver::Dopri5 { atol: 1e-6, rtol: 1e-6 }, 2e-4),
        (Solver::Dopri5 { atol: 1e-3, rtol: 1e-3 }, 1e-2),
    ] {
        let opts = PosteriorOptions { solver, seed, ..Default::default() };
        let samples = post.sample(n, &opts).unwrap();
        assert_eq!((samples.n(), samples.dim(), samples.log_prob()), (n, d, None));
        let (got, rep) = (samples.as_slice(), samples.report());
        let err = got.iter().zip(&want).fold(0.0f64, |a, (g, w)| a.max((g - w).abs()));
        eprintln!("{solver:?}: max error {err:.2e} (scale {scale:.2}), mean steps {:.1}", rep.mean_steps);
        assert!(err <= tol * scale, "{solver:?}: max error {err:.3e} exceeds {:.1e}", tol * scale);
    }
}

#[test]
fn rk4_and_dopri5_solve_a_linear_field() {
    let (cfg, p) = linear_field();
    check_solvers(cfg, p);
}

#[test]
fn rk4_and_dopri5_solve_a_nonlinear_field() {
    let (cfg, p) = nonlinear_field();
    check_solvers(cfg, p);
}

#[test]
fn a_sample_does_not_depend_on_its_batch() {
    let (cfg, p) = nonlinear_field();
    let m = model(cfg, to_f32(&p));
    let post = posterior(&m, &[0.1, 0.2]);
    let opts = PosteriorOptions { solver: Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, seed: 77, ..Default::default() };
    let alone = post.sample(1, &opts).unwrap().into_parts().0;
    let many = post.sample(1000, &opts).unwrap().into_parts().0;
    let chunked = PosteriorOptions { chunk_size: Some(37), ..opts.clone() };
    let chunks = post.sample(1000, &chunked).unwrap().into_parts().0;
    for j in 0..2 {
        assert!((alone[j] - many[j]).abs() <= 1e-6, "sample 0 alone {:?} vs in a batch {:?}", &alone[..2], &many[..2]);
    }
    let diff = many.iter().zip(&chunks).fold(0.0f64, |a, (x, y)| a.max((x - y).abs()));
    assert!(diff <= 1e-6, "chunked sampling differs by {diff}");
}

/// The plans (workspace + recorded programs) a posterior keeps are reused across calls,
/// chunk sizes and threads without changing a bit of the result, and one uploaded model
/// serves several observations.
#[test]
fn reused_plans_and_shared_models_give_identical_samples() {
    let (cfg, p) = nonlinear_field();
    let m = model(cfg, to_f32(&p));
    let on_gpu = GpuModel::new(common::gpu_arc().clone(), &m).unwrap();
    let post = std::sync::Arc::new(on_gpu.posterior(&[0.1, 0.2]).unwrap());
    for solver in [Solver::Rk4 { steps: 70 }, Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }] {
        let opts = PosteriorOptions { solver, seed: 5, chunk_size: Some(64), ..Default::default() };
        // Fresh posterior (new plans) vs. the same posterior called again (cached plans).
        let first = post.sample(100, &opts).unwrap().into_parts().0;
        let again = post.sample(100, &opts).unwrap().into_parts().0;
        assert_eq!(first, again, "{solver:?}: a cached plan changed the samples");
        let fresh = on_gpu.posterior(&[0.1, 0.2]).unwrap().sample(100, &opts).unwrap().into_parts().0;
        assert_eq!(first, fresh, "{solver:?}: a fresh posterior differs");
        // Concurrent calls on one posterior (Send + Sync) give the same samples.
        let handles: Vec<_> = (0..2)
            .map(|_| {
                let (post, opts) = (post.clone(), opts.clone());
                std::thread::spawn(move || post.sample(100, &opts).unwrap().into_parts().0)
            })
            .collect();
        for h in handles {
            assert_eq!(h.join().unwrap(), first, "{solver:?}: a concurrent call differs");
        }
    }
    // Another observation through the same uploaded weights gives other samples, equal
    // to those of a separately uploaded model.
    let opts = PosteriorOptions { solver: Solver::Rk4 { steps: 10 }, seed: 5, ..Default::default() };
    let a = on_gpu.posterior(&[-0.5, 0.3]).unwrap().sample(20, &opts).unwrap();
    let b = posterior(&m, &[-0.5, 0.3]).sample(20, &opts).unwrap();
    let c = on_gpu.posterior(&[0.1, 0.2]).unwrap().sample(20, &opts).unwrap();
    assert_eq!(a.as_slice(), b.as_slice());
    assert_ne!(a.as_slice(), c.as_slice());
    assert_eq!(a.row(3), &a.as_slice()[6..8]);
}

/// Invalid options are reported by field name, never by a command-line flag.
#[test]
fn invalid_options_name_their_field() {
    let (cfg, p) = linear_field();
    let post = posterior(&model(cfg, to_f32(&p)), &[0.4, -0.7]);
    let d = PosteriorOptions::default();
    for (opts, name) in [
        (PosteriorOptions { solver: Solver::Rk4 { steps: 0 }, ..d.clone() }, "steps"),
        (PosteriorOptions { solver: Solver::Dopri5 { atol: 0.0, rtol: 1e-5 }, ..d.clone() }, "atol"),
        (PosteriorOptions { solver: Solver::Dopri5 { atol: 1e-5, rtol: -1.0 }, ..d.clone() }, "rtol"),
        (PosteriorOptions { chunk_size: Some(0), ..d.clone() }, "chunk_size"),
        (PosteriorOptions { divergence: fmpe::posterior::Divergence::Hutchinson { probes: 0, gaussian: false }, ..d.clone() }, "divergence"),
        (PosteriorOptions { max_seconds: Some(f64::NAN), ..d.clone() }, "max_seconds"),
    ] {
        for err in [post.sample(3, &opts).unwrap_err(), post.log_prob(&[0.0; 3], &opts).unwrap_err(), post.sample_and_log_prob(3, &opts).unwrap_err()] {
            match &err {
                fmpe::Error::InvalidOption { name: got, .. } => assert_eq!(*got, name, "{err}"),
                e => panic!("expected InvalidOption {name}, got {e}"),
            }
            assert!(!err.to_string().contains("--"), "{err}");
        }
    }
}
