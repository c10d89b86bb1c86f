//! The GPU's non-finite guard of the optimiser step (`grad_check` + `adam_guarded` in
//! shaders/adam.wgsl) and the trainer's rollback to the last good epoch.
mod common;

use common::*;
use fmpe::kernels::{adam, AdamParams, Bindings, ProgramBuilder, StepState};
use fmpe::net::{Conditioning, NetConfig};
use fmpe::train::{EpochEnd, TrainConfig, Trainer};

/// One guarded step over `p` with gradient `g` (moments m `[n + 2]`, v `[n]`); returns
/// (p, m, v) after it.
fn guarded_step(p: &[f32], g: &[f32], m: &[f32], v: &[f32], step_in_epoch: u32) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let gpu = common::gpu();
    let n = p.len();
    let (pb, gb, mb, vb) = (gpu.storage_from("p", p), gpu.storage_from("g", g), gpu.storage_from("m", m), gpu.storage_from("v", v));
    let st = StepState { step: 1, step_in_epoch, lr: 0.1, bias_corr1: 0.1, bias_corr2: 0.001, ..Default::default() };
    let sb = gpu.uniform_from("step", bytemuck::bytes_of(&st));
    let ap = AdamParams { n: n as u32, off: 0, batch_stride: 0, decay_len: 0, beta1: 0.9, beta2: 0.999, eps: 1e-8, weight_decay: 0.0 };
    let mut b = ProgramBuilder::new(gpu);
    adam::adam_guarded(&mut b, &ap);
    let binds = Bindings { params: Some(&pb), grads: Some(&gb), moments: Some((&mb, &vb)), step: Some(&sb), ..Default::default() };
    b.build(gpu, binds).unwrap().run(gpu).unwrap();
    (gpu.read_f32(&pb, 0, n).unwrap(), gpu.read_f32(&mb, 0, n + 2).unwrap(), gpu.read_f32(&vb, 0, n).unwrap())
}

#[test]
fn a_non_finite_gradient_anywhere_skips_the_whole_update_and_is_counted() {
    let n = 1000;
    let p = to_f32(&rand_vec(n, 1));
    let g = to_f32(&rand_vec(n, 2));
    let (mut m, v) = (vec![0.25f32; n + 2], vec![0.5f32; n]);
    m[n + 1] = 3.0; // three flagged steps earlier in the epoch
    // Finite: the update happens, the flag is 0 and the count unchanged.
    let (p1, m1, v1) = guarded_step(&p, &g, &m, &v, 4);
    assert!(p1.iter().zip(&p).all(|(a, b)| a != b), "every parameter moves");
    assert!(v1.iter().zip(&v).all(|(a, b)| a != b));
    assert_eq!((m1[n], m1[n + 1]), (0.0, 3.0));
    // One NaN, one +inf (far apart, in other workgroups): nothing moves, flag 1, count + 1.
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        let mut gb = g.clone();
        gb[997] = bad;
        let (p2, m2, v2) = guarded_step(&p, &gb, &m, &v, 4);
        assert_eq!(p2, p, "parameters untouched ({bad})");
        assert_eq!(&m2[..n], &m[..n], "first moments untouched ({bad})");
        assert_eq!(v2, v, "second moments untouched ({bad})");
        assert_eq!((m2[n], m2[n + 1]), (1.0, 4.0), "flag and count ({bad})");
    }
    // The first step of an epoch restarts the count.
    let mut gb = g.clone();
    gb[3] = f32::NAN;
    let (_, m3, _) = guarded_step(&p, &gb, &m, &v, 0);
    assert_eq!((m3[n], m3[n + 1]), (1.0, 1.0));
}

#[test]
fn a_diverged_epoch_is_rolled_back_exactly_and_retried_with_a_lower_learning_rate() {
    let gpu = common::gpu();
    let n = 400;
    let theta = rand_vec(n * 2, 3);
    let x: Vec<f64> = theta.iter().zip(rand_vec(n * 2, 4)).map(|(t, e)| t + 0.2 * e).collect();
    let cfg = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16], conditioning: Conditioning::Concat, embedding: vec![] };
    let tc = TrainConfig { batch_size: 40, learning_rate: 1e30, max_rollbacks: 2, rollback_lr_factor: 0.5, ..Default::default() };
    let mut tr = Trainer::new(gpu, cfg, tc, &theta, &x, None).unwrap();
    let p0 = tr.read_params().unwrap();
    let mut prev = p0.clone();
    let mut skipped_seen = 0;
    for _ in 0..tr.steps_per_epoch() {
        tr.step().unwrap();
        let p = tr.read_params().unwrap();
        if p == prev {
            skipped_seen += 1;
        }
        prev = p;
    }
    assert!(skipped_seen > 0, "an lr of 1e30 makes some step's gradient non-finite");
    match tr.finish_epoch().unwrap() {
        EpochEnd::RolledBack(r) => {
            assert_eq!((r.epoch, r.retry), (1, 1));
            assert_eq!(r.skipped_steps, skipped_seen, "the GPU's count of skipped steps");
            assert_eq!(r.learning_rate, 5e29);
        }
        other => panic!("expected a rollback, got {other:?}"),
    }
    assert_eq!(tr.read_params().unwrap(), p0, "rolled back to the initial weights exactly");
    assert_eq!(tr.steps_done_in_epoch(), 0);
    // Two more diverged tries, then the error names the epoch.
    let mut last = None;
    for _ in 0..3 {
        for _ in 0..tr.steps_per_epoch() {
            tr.step().unwrap();
        }
        match tr.finish_epoch() {
            Ok(EpochEnd::RolledBack(_)) => continue,
            Ok(other) => panic!("expected divergence, got {other:?}"),
            Err(e) => {
                last = Some(e.to_string());
                break;
            }
        }
    }
    let msg = last.expect("fails after max_rollbacks");
    assert!(msg.contains("diverged in epoch 1") && msg.contains("after 2 rollbacks"), "{msg}");
}
