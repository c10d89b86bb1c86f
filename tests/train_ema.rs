//! The moving average of the weights (`TrainConfig::ema_decay`, `shaders/adam_ema.wgsl`) in a
//! training run: the average follows the parameters step by step as the f64 mirror
//! does, it is what validation scores and what the run keeps, a rollback restores it
//! with the parameters, it survives a checkpoint bitwise (written as version 2; version
//! 1 without an average), and a checkpoint is not resumed with another choice of
//! average.
mod common;

use fmpe::net::{Conditioning, NetConfig};
use fmpe::reference;
use fmpe::train::{Checkpoint, EpochEnd, TrainConfig, Trainer, CHECKPOINT_VERSION, CHECKPOINT_VERSION_PLAIN};

fn net() -> NetConfig {
    NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16, 16], conditioning: Conditioning::Concat, embedding: vec![] }
}

/// A linear-Gaussian toy problem: x = θ + noise.
fn data(n: usize) -> (Vec<f64>, Vec<f64>) {
    let theta = common::rand_vec(2 * n, 11);
    let noise = common::rand_vec(2 * n, 12);
    let x = theta.iter().zip(&noise).map(|(t, e)| t + 0.3 * e).collect();
    (theta, x)
}

fn config(ema_decay: f64) -> TrainConfig {
    TrainConfig { batch_size: 32, max_epochs: 3, patience: 100, seed: 5, ema_decay, ..Default::default() }
}

#[test]
fn the_average_follows_the_f64_mirror_and_is_the_kept_and_validated_model() {
    let gpu = common::gpu();
    let (theta, x) = data(400);
    let decay = 0.9;
    let init = {
        use rand::SeedableRng;
        fmpe::net::init_params(&net(), &mut rand::rngs::StdRng::seed_from_u64(3))
    };
    let mut tr = Trainer::new(gpu, net(), config(decay), &theta, &x, Some(init.clone())).unwrap();
    let mut avg: Vec<f64> = init.iter().map(|&v| v as f64).collect();
    let mut last = Vec::new();
    for step in 1..=tr.steps_per_epoch() as u32 {
        tr.step().unwrap();
        last = tr.read_params().unwrap().iter().map(|&v| v as f64).collect::<Vec<_>>();
        reference::adam::ema_step(&mut avg, &last, step, decay);
    }
    let (rec, _) = tr.end_epoch().unwrap();
    // Epoch 1 is the best so far: the run keeps the average, not the last parameters.
    let kept: Vec<f64> = tr.outcome().unwrap().params.iter().map(|&v| v as f64).collect();
    common::assert_close("kept weights = the f64 moving average", &kept, &avg, 1e-5, 1e-4);
    let far = kept.iter().zip(&last).map(|(a, b)| (a - b).abs()).fold(0.0, f64::max);
    assert!(far > 1e-3, "the average should differ from the last parameters (max |Δ| {far})");
    // Validation scored the average: a run without one, started from the average and
    // given one step at a vanishing learning rate, validates to the same loss.
    let still = TrainConfig { learning_rate: 1e-30, ..config(0.0) };
    let mut plain = Trainer::new(gpu, net(), still, &theta, &x, Some(kept.iter().map(|&v| v as f32).collect())).unwrap();
    plain.step().unwrap();
    let (rec0, _) = plain.end_epoch().unwrap();
    assert!(
        (rec.val_loss - rec0.val_loss).abs() <= 1e-5 * rec0.val_loss.abs(),
        "validation loss {} on the run with the average, {} on the average itself",
        rec.val_loss,
        rec0.val_loss
    );
}

#[test]
fn a_checkpointed_run_with_an_average_resumes_bitwise_and_refuses_another_choice() {
    let gpu = common::gpu();
    let (theta, x) = data(400);
    let run = |epochs: usize, from: Option<&Checkpoint>| {
        let mut tr = Trainer::new(gpu, net(), config(0.95), &theta, &x, None).unwrap();
        if let Some(ck) = from {
            tr.restore(ck).unwrap();
        }
        while tr.epochs_done() < epochs {
            while tr.steps_done_in_epoch() < tr.steps_per_epoch() {
                tr.step().unwrap();
            }
            tr.end_epoch().unwrap();
        }
        tr
    };
    let full = run(3, None).outcome().unwrap().params;
    let ck = run(1, None).checkpoint().unwrap();
    assert_eq!(ck.ema.len(), net().layout().len);
    assert_eq!(ck.state.checkpoint_version, CHECKPOINT_VERSION);
    let path = std::env::temp_dir().join(format!("fmpe-ema-ck-{}.safetensors", std::process::id()));
    ck.save(&path).unwrap();
    let loaded = Checkpoint::load(&path).unwrap();
    let _ = std::fs::remove_file(&path);
    assert_eq!(loaded, ck);
    let resumed = run(3, Some(&loaded)).outcome().unwrap().params;
    assert!(resumed == full, "the resumed run's kept weights differ from the uninterrupted run's");
    // Without an average the checkpoint cannot continue (and the reverse).
    let mut plain = Trainer::new(gpu, net(), config(0.0), &theta, &x, None).unwrap();
    let e = plain.restore(&loaded).unwrap_err().to_string();
    assert!(e.contains("moving average"), "{e}");
    let no_avg = plain.checkpoint().unwrap();
    assert!(no_avg.ema.is_empty() && no_avg.good_ema.is_empty());
    assert_eq!(no_avg.state.checkpoint_version, CHECKPOINT_VERSION_PLAIN);
    let mut with = Trainer::new(gpu, net(), config(0.95), &theta, &x, None).unwrap();
    let e = with.restore(&no_avg).unwrap_err().to_string();
    assert!(e.contains("moving average"), "{e}");
}

#[test]
fn a_rollback_restores_the_average_with_the_parameters() {
    let gpu = common::gpu();
    let (theta, x) = data(400);
    // A learning rate of 1e30 makes some step's gradient non-finite (tests/divergence.rs):
    // the first epoch diverges and is rolled back to the initial state.
    let tc = TrainConfig { batch_size: 40, learning_rate: 1e30, max_rollbacks: 2, ema_decay: 0.9, seed: 5, ..Default::default() };
    let init = {
        use rand::SeedableRng;
        fmpe::net::init_params(&net(), &mut rand::rngs::StdRng::seed_from_u64(3))
    };
    let mut tr = Trainer::new(gpu, net(), tc, &theta, &x, Some(init.clone())).unwrap();
    for _ in 0..tr.steps_per_epoch() {
        tr.step().unwrap();
    }
    assert_ne!(tr.checkpoint().unwrap().ema, init, "the average moved during the epoch");
    assert!(matches!(tr.finish_epoch().unwrap(), EpochEnd::RolledBack(_)), "the epoch diverged");
    let ck = tr.checkpoint().unwrap();
    assert_eq!(ck.params, init, "parameters rolled back");
    assert_eq!(ck.ema, init, "the average rolled back with them");
    assert_eq!(ck.good_ema, init);
}
