//! Amortized sampling (`GpuModel::sample_batched`): one set of ODE solves over the rows
//! of many observations gives, observation by observation, exactly the samples of
//! separate single-observation calls, with rejection rounds kept per observation.
mod common;

use fmpe::model::{BoxPrior, Model, Reflection, Selection};
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

/// `reflect_outside_prior` keeps every proposal and folds it into the box: sample by
/// sample, the reflected draw is the unrestricted draw (same seed, same θ₀) mirrored at
/// the bounds, single-observation and batched alike; log-densities of folded samples
/// and resident draws are refused by name.
#[test]
fn reflected_samples_are_the_free_draws_folded_into_the_box() {
    let on_gpu = model(Conditioning::Glu, vec![], 3);
    let prior = on_gpu.prior().unwrap().clone();
    let xs = observations(3);
    let n = 400;
    for solver in [Solver::Rk4 { steps: 7 }, Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }] {
        let free = PosteriorOptions { solver, seed: 5, reject_outside_prior: false, ..Default::default() };
        let reflect = PosteriorOptions { reflect_outside_prior: Some(true), reject_outside_prior: true, ..free.clone() };
        let batched = on_gpu.sample_batched(&xs, n, &reflect).unwrap();
        for (j, x) in xs.chunks(3).enumerate() {
            let post = on_gpu.posterior(x).unwrap();
            let raw = post.sample(n, &free).unwrap();
            let folded = post.sample(n, &reflect).unwrap();
            assert_eq!(folded.report().proposed, n, "{solver:?} observation {}: nothing is redrawn", j + 1);
            assert_eq!(folded.report().acceptance_rate, 1.0);
            let mut outside = 0;
            for i in 0..n {
                let mut want = raw.row(i).to_vec();
                outside += usize::from(!prior.contains(&want));
                prior.reflect(&mut want);
                assert_eq!(folded.row(i), &want[..], "{solver:?} observation {}, sample {i}", j + 1);
                assert!(prior.contains(folded.row(i)));
            }
            assert!(outside > n / 20, "{solver:?} observation {}: the box should cut off some mass ({outside} of {n} outside)", j + 1);
            assert_eq!(batched[j].as_slice(), folded.as_slice(), "{solver:?} observation {}: batched differs", j + 1);
        }
    }
    // The default (None) follows the model's recorded choice when restricting to the
    // box, and keeps samples outside when not.
    assert!(!on_gpu.reflects_by_default());
    let chosen = {
        let cfg = NetConfig { dim_theta: 2, dim_x: 3, hidden: vec![16, 16], conditioning: Conditioning::Glu, embedding: vec![] };
        let mut rng = rand::rngs::StdRng::seed_from_u64(3);
        let mut m = Model::with_params(cfg.clone(), init_params(&cfg, &mut rng));
        m.info.prior = Some(prior.clone());
        let reflection = Reflection { reflect: true, rejected_nll: 1.0, reflected_nll: 0.5, difference_se: 0.1, pairs: 100 };
        m.info.selection = Some(Selection { metric: "held_out_nll".into(), candidates: vec![], chosen: 0, reflection: Some(reflection) });
        GpuModel::new(common::gpu_arc().clone(), &m).unwrap()
    };
    assert!(chosen.reflects_by_default());
    let solver = Solver::Rk4 { steps: 7 };
    let by_default = chosen.posterior(&xs[..3]).unwrap().sample(n, &PosteriorOptions { solver, seed: 5, ..Default::default() }).unwrap();
    let forced = on_gpu.posterior(&xs[..3]).unwrap().sample(n, &PosteriorOptions { solver, seed: 5, reflect_outside_prior: Some(true), ..Default::default() }).unwrap();
    assert_eq!(by_default.as_slice(), forced.as_slice(), "the model's choice reflects");
    let keep = PosteriorOptions { solver, seed: 5, reject_outside_prior: false, ..Default::default() };
    let kept = chosen.posterior(&xs[..3]).unwrap().sample(n, &keep).unwrap();
    assert!((0..n).any(|i| !prior.contains(kept.row(i))), "without rejection the default keeps samples outside");
    let never = PosteriorOptions { solver, seed: 5, reflect_outside_prior: Some(false), ..Default::default() };
    assert!(chosen.posterior(&xs[..3]).unwrap().sample(n, &never).unwrap().report().proposed > n, "Some(false) rejects");
    // Log-densities: the default rejects, an explicit request is refused.
    let lp = chosen.posterior(&xs[..3]).unwrap().sample_and_log_prob(50, &PosteriorOptions { solver, ..Default::default() }).unwrap();
    assert!(lp.report().proposed > 50);
    let post = on_gpu.posterior(&xs[..3]).unwrap();
    let opts = PosteriorOptions { reflect_outside_prior: Some(true), ..Default::default() };
    let e = post.sample_and_log_prob(10, &opts).unwrap_err();
    assert!(matches!(&e, fmpe::Error::InvalidOption { name, .. } if *name == "reflect_outside_prior"), "{e}");
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
