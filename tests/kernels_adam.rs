//! The Adam kernel (`src/kernels/adam.rs`) against the f64 reference step.
mod common;

use common::*;
use fmpe::kernels::{adam, AdamParams, Bindings, ProgramBuilder, StepState};
use fmpe::reference;

/// The step-state uniform of Adam step `step` (1-based) at learning rate `lr`.
fn step_state(gpu: &fmpe::Gpu, step: u32, lr: f64, b1: f64, b2: f64) -> wgpu::Buffer {
    let st = StepState {
        step,
        lr: lr as f32,
        bias_corr1: (1.0 - f64::powi(b1, step as i32)) as f32,
        bias_corr2: (1.0 - f64::powi(b2, step as i32)) as f32,
        ..Default::default()
    };
    gpu.uniform_from("step", bytemuck::bytes_of(&st))
}

#[test]
fn adam_matches_reference_over_several_steps() {
    let gpu = common::gpu();
    let n = 1000;
    let mut p = rand_vec(n, 1);
    let (mut m, mut v) = (vec![0.0; n], vec![0.0; n]);
    let pb = gpu.storage_from("p", &to_f32(&p));
    let mb = gpu.storage("m", n as u64 * 4);
    let vb = gpu.storage("v", n as u64 * 4);
    let (b1, b2, eps, wd, lr) = (0.9, 0.999, 1e-8, 0.01, 1e-2);
    for step in 1..=4u32 {
        let g = rand_vec(n, 10 + step as u64);
        let gb = gpu.storage_from("g", &to_f32(&g));
        let sb = step_state(gpu, step, lr, b1, b2);
        let mut b = ProgramBuilder::new(gpu);
        let ap = AdamParams {
            n: n as u32,
            off: 0,
            batch_stride: 0, decay_len: 0,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: eps as f32,
            weight_decay: wd as f32,
        };
        adam::adam(&mut b, &ap);
        b.build(gpu, Bindings { params: Some(&pb), grads: Some(&gb), moments: Some((&mb, &vb)), step: Some(&sb), ..Default::default() })
            .unwrap()
            .run(gpu)
            .unwrap();
        reference::adam::adam_step(&mut p, &g, &mut m, &mut v, step, lr, b1, b2, eps, wd);
    }
    let got = to_f64(&gpu.read_f32(&pb, 0, n).unwrap());
    assert_close("adam params after 4 steps", &got, &p, 2e-6, 1e-5);
}


#[test]
fn adam_batched_updates_each_set_as_adam_alone_with_decay_on_its_weights_only() {
    // Three parameter sets of 300 at offset 8, stride 304 (the C2ST's folds): set z is
    // params[8 + 304 z ..][..300], its weight decay on the first 200 only (weights before
    // biases). Each set against the f64 reference step on its own slices (decay 0.01 on
    // the weights, 0 on the biases), and the floats between and around the sets untouched.
    let gpu = common::gpu();
    let (n, off, stride, count, decay_len) = (300usize, 8usize, 304usize, 3usize, 200usize);
    let len = off + count * stride;
    let p0 = rand_vec(len, 3);
    let mut p = p0.clone();
    let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
    let pb = gpu.storage_from("p", &to_f32(&p));
    let mb = gpu.storage("m", len as u64 * 4);
    let vb = gpu.storage("v", len as u64 * 4);
    let (b1, b2, eps, wd, lr) = (0.9, 0.999, 1e-8, 0.01, 1e-2);
    for step in 1..=3u32 {
        let g = rand_vec(len, 20 + step as u64);
        let gb = gpu.storage_from("g", &to_f32(&g));
        let sb = step_state(gpu, step, lr, b1, b2);
        let mut b = ProgramBuilder::new(gpu);
        let ap = AdamParams {
            n: n as u32,
            off: off as u32,
            batch_stride: stride as u32,
            decay_len: decay_len as u32,
            beta1: b1 as f32,
            beta2: b2 as f32,
            eps: eps as f32,
            weight_decay: wd as f32,
        };
        adam::adam_batched(&mut b, &ap, count);
        assert_eq!(b.len(), 1, "one dispatch for every set");
        b.build(gpu, Bindings { params: Some(&pb), grads: Some(&gb), moments: Some((&mb, &vb)), step: Some(&sb), ..Default::default() })
            .unwrap()
            .run(gpu)
            .unwrap();
        for z in 0..count {
            let s = off + z * stride;
            let (w, bias) = (s..s + decay_len, s + decay_len..s + n);
            reference::adam::adam_step(&mut p[w.clone()], &g[w.clone()], &mut m[w.clone()], &mut v[w], step, lr, b1, b2, eps, wd);
            reference::adam::adam_step(&mut p[bias.clone()], &g[bias.clone()], &mut m[bias.clone()], &mut v[bias], step, lr, b1, b2, eps, 0.0);
        }
    }
    let got = to_f64(&gpu.read_f32(&pb, 0, len).unwrap());
    for z in 0..count {
        let s = off + z * stride;
        assert_close(&format!("set {z} after 3 steps"), &got[s..s + n], &p[s..s + n], 2e-6, 1e-5);
        // The 4 floats after each set (stride − n) are not part of it.
        assert_eq!(&got[s + n..s + stride], &to_f64(&to_f32(&p0[s + n..s + stride]))[..], "set {z}: padding changed");
    }
    assert_eq!(&got[..off], &to_f64(&to_f32(&p0[..off]))[..], "floats before the first set changed");
    // The decay split matters: the same steps with decay on every parameter differ.
    let mut all = p0.clone();
    let (mut m2, mut v2) = (vec![0.0; len], vec![0.0; len]);
    for step in 1..=3u32 {
        let g = rand_vec(len, 20 + step as u64);
        let s = off;
        reference::adam::adam_step(&mut all[s..s + n], &g[s..s + n], &mut m2[s..s + n], &mut v2[s..s + n], step, lr, b1, b2, eps, wd);
    }
    let diff = (off + decay_len..off + n).map(|i| (all[i] - got[i]).abs()).fold(0.0, f64::max);
    assert!(diff > 1e-6, "decay on the biases would change them (max |Δ| {diff:e})");
}
