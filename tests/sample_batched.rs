//! Amortized sampling (`GpuModel::sample_batched`): one set of ODE solves over the rows
//! of many observations gives, observation by observation, exactly the samples of
//! separate single-observation calls, with rejection rounds kept per observation.
mod common;

use fmpe::model::{BoxPrior, Model};
use fmpe::net::{init_params, Conditioning, NetConfig};
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use rand::SeedableRng;

/// A randomly initialised model (`dim_theta = 2`, `dim_x = 3`) with a box prior that
/// cuts off part of the flow's mass, so rejection runs several rounds.
fn model(conditioning: Conditioning, embedding: Vec<usize>, seed: u64) -> GpuModel {
    let cfg = NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![16, 16], conditioning, embedding };
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut m = Model::with_params(cfg.clone(), init_params(&cfg, &mut rng));
    m.info.prior = Some(BoxPrior { low: vec![-1.0, -0.8], high: vec![1.2, 1.0] });
    GpuModel::new(common::gpu_arc().clone(), &m).unwrap()
}

fn observations(m: usize) -> Vec<f64> {
    (0..m * 3).map(|i| ((i * 37 % 11) as f64 - 5.0) * 0.3).collect()
}

#[test]
fn batched_samples_equal_separate_calls_bit_for_bit() {
    let xs = observations(5);
    for (cond, emb) in [(Conditioning::Glu, vec![]), (Conditioning::Concat, vec![]), (Conditioning::Glu, vec![8, 4])] {
        let on_gpu = model(cond, emb.clone(), 3);
        for solver in [Solver::Rk4 { steps: 7 }, Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }] {
            // Chunks of 64 rows: runs of one observation span chunks and chunks hold
            // several observations; the default chunk holds every row of a round.
            for chunk_size in [Some(64), None] {
                let opts = PosteriorOptions { solver, seed: 9, chunk_size, ..Default::default() };
                let batched = on_gpu.sample_batched(&xs, 50, &opts).unwrap();
                assert_eq!(batched.len(), 5);
                let mut rounds = 0;
                for (j, b) in batched.iter().enumerate() {
                    let alone = on_gpu.posterior(&xs[3 * j..3 * j + 3]).unwrap().sample(50, &opts).unwrap();
                    let what = format!("{cond:?} {emb:?} {solver:?} chunk {chunk_size:?}, observation {}", j + 1);
                    assert_eq!(b.as_slice(), alone.as_slice(), "{what}: samples differ");
                    assert_eq!(b.report().proposed, alone.report().proposed, "{what}: rejection rounds differ");
                    assert!((b.report().mean_steps - alone.report().mean_steps).abs() < 1e-9, "{what}: steps differ");
                    rounds += (b.report().proposed > 50) as usize;
                    let prior = on_gpu.prior().unwrap();
                    assert!((0..50).all(|i| prior.contains(b.row(i))), "{what}: a sample outside the prior");
                }
                assert!(rounds > 0, "the prior box should make some observation need a second round");
            }
        }
        // Different observations give different samples (the x part is per row).
        let b = on_gpu.sample_batched(&xs, 10, &PosteriorOptions { solver: Solver::Rk4 { steps: 5 }, ..Default::default() }).unwrap();
        assert_ne!(b[0].as_slice(), b[1].as_slice());
    }
    // With a time limit the rounds open with capped pilots (256, then 4,096 draws),
    // per observation exactly as one call per observation draws them: 600 samples need
    // more than the first pilot.
    let on_gpu = model(Conditioning::Concat, vec![], 3);
    for chunk_size in [Some(64), None] {
        let opts = PosteriorOptions { solver: Solver::Rk4 { steps: 7 }, seed: 4, chunk_size, max_seconds: Some(600.0), ..Default::default() };
        let batched = on_gpu.sample_batched(&xs, 600, &opts).unwrap();
        for (j, b) in batched.iter().enumerate() {
            let alone = on_gpu.posterior(&xs[3 * j..3 * j + 3]).unwrap().sample(600, &opts).unwrap();
            assert_eq!(b.as_slice(), alone.as_slice(), "time limit, chunk {chunk_size:?}, observation {}: samples differ", j + 1);
            assert_eq!(b.report().proposed, alone.report().proposed, "time limit, chunk {chunk_size:?}, observation {}: rounds differ", j + 1);
            assert!(b.report().proposed > 600, "observation {}: some draws are rejected", j + 1);
        }
    }
}

#[test]
fn batched_sampling_names_the_bad_observation() {
    let on_gpu = model(Conditioning::Glu, vec![], 1);
    let opts = PosteriorOptions::default();
    let err = on_gpu.sample_batched(&[0.0; 7], 5, &opts).unwrap_err().to_string();
    assert!(err.contains("dim_x = 3"), "{err}");
    let err = on_gpu.sample_batched(&[], 5, &opts).unwrap_err().to_string();
    assert!(err.contains("whole number of rows"), "{err}");
    let mut xs = observations(3);
    xs[7] = f64::NAN;
    let err = on_gpu.sample_batched(&xs, 5, &opts).unwrap_err().to_string();
    assert!(err.contains("observation 3") && err.contains("not finite"), "{err}");
}

/// `log_prob_pairs` (each θ with its own x, one set of solves) equals per-observation
/// `log_prob` calls bit for bit with the exact divergence, also across chunks.
#[test]
fn log_prob_pairs_equal_separate_log_prob_calls() {
    for (cond, emb) in [(Conditioning::Glu, vec![]), (Conditioning::Concat, vec![6])] {
        let on_gpu = model(cond, emb.clone(), 5);
        let xs = observations(40);
        let theta: Vec<f64> = (0..80).map(|i| ((i * 13 % 17) as f64 - 8.0) * 0.11).collect();
        for (solver, chunk_size) in [(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, Some(16)), (Solver::Rk4 { steps: 6 }, None)] {
            let opts = PosteriorOptions { solver, chunk_size, ..Default::default() };
            let pairs = on_gpu.log_prob_pairs(&theta, &xs, &opts).unwrap();
            let mut outside = 0;
            for i in 0..40 {
                let alone = on_gpu.posterior(&xs[3 * i..3 * i + 3]).unwrap().log_prob(&theta[2 * i..2 * i + 2], &opts).unwrap()[0];
                assert_eq!(pairs[i].to_bits(), alone.to_bits(), "{cond:?} {emb:?} {solver:?}: pair {i}: {} vs {alone}", pairs[i]);
                outside += (alone == f64::NEG_INFINITY) as usize;
            }
            assert!(outside > 0 && outside < 40, "some pairs should fall outside the prior box ({outside})");
        }
    }
    let on_gpu = model(Conditioning::Glu, vec![], 5);
    let err = on_gpu.log_prob_pairs(&[0.0; 4], &[0.0; 3], &PosteriorOptions::default()).unwrap_err().to_string();
    assert!(err.contains("same n"), "{err}");
}

/// The time limit covers the whole batched call, and `log_prob_pairs` refuses to
/// renormalise (that needs a sampling run per observation).
#[test]
fn batched_limits_and_unsupported_options_are_errors() {
    let on_gpu = model(Conditioning::Glu, vec![], 2);
    let xs = observations(4);
    let opts = PosteriorOptions { max_seconds: Some(1e-9), ..Default::default() };
    match on_gpu.sample_batched(&xs, 200, &opts) {
        Err(fmpe::Error::LowAcceptance(msg)) => assert!(msg.contains("whole call") && msg.contains("max_seconds"), "{msg}"),
        other => panic!("expected LowAcceptance, got {other:?}"),
    }
    let opts = PosteriorOptions { normalize_to_prior: true, ..Default::default() };
    match on_gpu.log_prob_pairs(&[0.0, 0.0], &xs[..3], &opts) {
        Err(fmpe::Error::InvalidOption { name, .. }) => assert_eq!(name, "normalize_to_prior"),
        other => panic!("expected InvalidOption, got {other:?}"),
    }
}
