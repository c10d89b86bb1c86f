//! The Adam kernel (`src/kernels/adam.rs`) against the f64 reference step.
mod common;

use common::*;
use fmpe::kernels::{adam, AdamParams, Bindings, ProgramBuilder, StepState};
use fmpe::reference;

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
        let st = StepState {
            step,
            lr: lr as f32,
            bias_corr1: (1.0 - f64::powi(b1, step as i32)) as f32,
            bias_corr2: (1.0 - f64::powi(b2, step as i32)) as f32,
            ..Default::default()
        };
        let sb = gpu.uniform_from("step", bytemuck::bytes_of(&st));
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

