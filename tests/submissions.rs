//! Counting `Queue::submit` calls through the one place that submits: exactly one per
//! training step, one per epoch for validation + loss readback, none while recording.
mod common;

use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{Posterior, SampleOptions, Solver};
use fmpe::model::ModelMeta;
use fmpe::train::{Control, Fmpe, TrainConfig, Trainer};

#[test]
fn one_submission_per_training_step() {
    let Some(gpu) = common::fresh_gpu() else { return };
    let n = 600;
    let theta = common::rand_vec(n * 2, 1);
    let x: Vec<f64> = theta.iter().zip(common::rand_vec(n * 2, 2)).map(|(t, e)| t + 0.1 * e).collect();
    let mut per_step_counts = Vec::new();
    for (conditioning, embedding) in [
        (Conditioning::Glu, vec![]),
        (Conditioning::Concat, vec![]),
        (Conditioning::Glu, vec![8, 4]),
        (Conditioning::Concat, vec![8, 4]),
    ] {
        let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16, 24], conditioning, embedding };
        let tc = TrainConfig { batch_size: 50, validation_fraction: 0.1, ..Default::default() };
        let mut tr = Trainer::new(&gpu, cfg, tc, &theta, &x, None).unwrap();
        assert_eq!(tr.steps_per_epoch(), 540 / 50);
        let s0 = gpu.submission_count();
        let d0 = gpu.dispatch_count();
        for k in 1..=tr.steps_per_epoch() {
            tr.step().unwrap();
            assert_eq!(gpu.submission_count() - s0, k as u64, "step {k}");
        }
        let per_step = (gpu.dispatch_count() - d0) / tr.steps_per_epoch() as u64;
        assert_eq!(per_step as usize, tr.dispatches_per_step());
        let s1 = gpu.submission_count();
        let (rec, _) = tr.end_epoch().unwrap();
        assert_eq!(gpu.submission_count() - s1, 1, "validation + loss readback is one submission");
        assert!(rec.train_loss.is_finite() && rec.val_loss.is_finite());
        per_step_counts.push(tr.dispatches_per_step());
    }
    eprintln!("dispatches per training step (glu, concat; then with a 2-layer embedding): {per_step_counts:?}");
    // The embedding adds 3 dispatches per layer: forward, weight + bias gradient, data gradient.
    assert_eq!(per_step_counts[2], per_step_counts[0] + 6);
    assert_eq!(per_step_counts[3], per_step_counts[1] + 6);
}

#[test]
fn rk4_sampling_is_one_submission_per_chunk() {
    let Some(gpu) = common::fresh_gpu() else { return };
    let n = 200;
    let theta = common::rand_vec(n * 2, 3);
    let x = common::rand_vec(n * 2, 4);
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16], conditioning: Conditioning::Glu, embedding: vec![] };
    let tc = TrainConfig { max_epochs: 1, batch_size: 50, ..Default::default() };
    let model = Fmpe::new(&gpu, cfg, ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap();
    let post = Posterior::new(&gpu, &model, &[0.0, 0.0]).unwrap();
    let s0 = gpu.submission_count();
    let opts = SampleOptions { solver: Solver::Rk4 { steps: 10 }, chunk_size: Some(100), ..Default::default() };
    post.sample(300, &opts).unwrap();
    assert_eq!(gpu.submission_count() - s0, 3, "one submission per chunk of 100");
}

#[test]
fn training_is_reproducible_for_a_seed() {
    let Some(gpu) = common::gpu() else { return };
    let n = 400;
    let theta = common::rand_vec(n * 2, 5);
    let x: Vec<f64> = theta.iter().zip(common::rand_vec(n * 2, 6)).map(|(t, e)| t + 0.2 * e).collect();
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16, 16], conditioning: Conditioning::Glu, embedding: vec![] };
    let run = |seed: u64| {
        let tc = TrainConfig { max_epochs: 3, batch_size: 64, seed, ..Default::default() };
        Fmpe::new(gpu, cfg.clone(), ModelMeta::default()).append_simulations(&theta, &x).unwrap().train(&tc, &mut |_| Control::Continue).unwrap()
    };
    let (a, b, c) = (run(7), run(7), run(8));
    assert_eq!(a.params, b.params, "same seed, same adapter: identical weights");
    let losses = |m: &fmpe::model::Model| m.info.history.iter().map(|r| (r.train_loss, r.val_loss)).collect::<Vec<_>>();
    assert_eq!(losses(&a), losses(&b));
    assert_ne!(a.params, c.params, "another seed gives other weights");
}
