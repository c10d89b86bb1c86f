//! The kernel variants train the same network: with each matmul variant the adapter can
//! run (portable, the specialised tiles, the subgroup CPU kernel), a seeded training
//! run's first 20 step losses agree within 1e-4 relative and the validation loss after
//! 5 epochs within 2 %, on the default concat network and a GLU network with an
//! x-embedding (every product layout the network records).
mod common;

use fmpe::gpu::{GpuOptions, KernelChoice};
use fmpe::model::ModelMeta;
use fmpe::net::{Conditioning, NetConfig};
use fmpe::train::{Control, Fmpe};
use fmpe::train_config::TrainConfig;
use fmpe::Gpu;
use std::sync::Arc;

fn devices() -> Vec<(KernelChoice, Arc<Gpu>)> {
    let base = common::gpu_options();
    [KernelChoice::Portable, KernelChoice::Gpu, KernelChoice::Cpu]
        .into_iter()
        .filter_map(|k| Gpu::with_options(&GpuOptions { kernels: k, ..base.clone() }).ok().map(|g| (k, Arc::new(g))))
        .collect()
}

fn problem(n: usize) -> (Vec<f64>, Vec<f64>) {
    let theta = common::rand_vec(n * 2, 21);
    let x: Vec<f64> = theta.iter().zip(common::rand_vec(n * 2, 22)).map(|(t, e)| t * t + 0.3 * e).collect();
    (theta, x)
}

/// (train loss, val loss) per epoch.
fn history(gpu: &Arc<Gpu>, net: &NetConfig, tc: &TrainConfig, n: usize) -> Vec<(f64, f64)> {
    let (theta, x) = problem(n);
    let m = Fmpe::new(gpu.clone(), net.clone(), ModelMeta::default())
        .append_simulations(&theta, &x)
        .unwrap()
        .train(tc, &mut |_| Control::Continue)
        .unwrap();
    m.info.history.iter().map(|r| (r.train_loss, r.val_loss)).collect()
}

fn nets() -> Vec<NetConfig> {
    vec![
        NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![64; 4], conditioning: Conditioning::Concat, embedding: vec![] },
        NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![36, 20], conditioning: Conditioning::Glu, embedding: vec![12, 8] },
    ]
}

#[test]
fn variants_agree_on_the_first_20_step_losses() {
    let devs = devices();
    assert!(devs.len() >= 2, "the portable and gpu variants run everywhere");
    for net in nets() {
        // 64 training rows at batch 64: one step per epoch, so each epoch's loss is
        // one step's loss; patience above the epoch count.
        let tc = TrainConfig { batch_size: 64, max_epochs: 20, patience: 100, validation_fraction: 0.2, seed: 3, ..Default::default() };
        let runs: Vec<_> = devs.iter().map(|(k, g)| (k, history(g, &net, &tc, 80))).collect();
        let (k0, base) = &runs[0];
        assert_eq!(base.len(), 20);
        for (k, h) in &runs[1..] {
            for (step, (a, b)) in h.iter().zip(base).enumerate() {
                let rel = (a.0 - b.0).abs() / b.0.abs();
                assert!(rel <= 1e-4, "{k:?} vs {k0:?}, step {}: loss {} vs {} ({net:?})", step + 1, a.0, b.0);
            }
        }
    }
}

#[test]
fn variants_agree_on_the_validation_loss_after_5_epochs() {
    let devs = devices();
    for net in nets() {
        let tc = TrainConfig { batch_size: 128, max_epochs: 5, seed: 4, ..Default::default() };
        let runs: Vec<_> = devs.iter().map(|(k, g)| (k, history(g, &net, &tc, 2000))).collect();
        let (k0, base) = &runs[0];
        let v0 = base.last().unwrap().1;
        assert!(v0.is_finite());
        for (k, h) in &runs[1..] {
            let v = h.last().unwrap().1;
            assert!((v - v0).abs() <= 0.02 * v0.abs(), "{k:?} vs {k0:?}: validation loss {v} vs {v0} ({net:?})");
        }
    }
}
