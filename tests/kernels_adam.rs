//! The Adam kernels (`src/kernels/adam.rs`), scalar and vec4, against the f64
//! reference step.
mod common;

use common::*;
use fmpe::kernels::adam::{self, AdamWidth};
use fmpe::kernels::{AdamParams, Bindings, ProgramBuilder, StepState};
use fmpe::reference;

/// The step-state uniform of Adam step `step` (1-based) at learning rate `lr`, all
/// steps in one epoch.
fn step_state(gpu: &fmpe::Gpu, step: u32, lr: f64, b1: f64, b2: f64) -> wgpu::Buffer {
    let st = StepState {
        step,
        step_in_epoch: step - 1,
        lr: lr as f32,
        bias_corr1: (1.0 - f64::powi(b1, step as i32)) as f32,
        bias_corr2: (1.0 - f64::powi(b2, step as i32)) as f32,
        ..Default::default()
    };
    gpu.uniform_from("step", bytemuck::bytes_of(&st))
}

/// `count` parameter sets of `n` at `off + z · stride`, the weight decay on the first
/// `decay_len` of each (weights before biases), as `adam_batched` updates them.
struct Sets {
    off: usize,
    stride: usize,
    count: usize,
    n: usize,
    decay_len: usize,
}

impl Sets {
    /// The f64 reference step on every set: decay `h[4]` on the weights, none on the
    /// biases; `h` = [lr, β1, β2, ε, weight decay].
    fn reference_step(&self, p: &mut [f64], g: &[f64], (m, v): (&mut [f64], &mut [f64]), step: u32, h: [f64; 5]) {
        let [lr, b1, b2, eps, wd] = h;
        for z in 0..self.count {
            let s = self.off + z * self.stride;
            let (w, bias) = (s..s + self.decay_len, s + self.decay_len..s + self.n);
            reference::adam::adam_step(&mut p[w.clone()], &g[w.clone()], &mut m[w.clone()], &mut v[w], step, lr, b1, b2, eps, wd);
            reference::adam::adam_step(&mut p[bias.clone()], &g[bias.clone()], &mut m[bias.clone()], &mut v[bias], step, lr, b1, b2, eps, 0.0);
        }
    }
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
        let sets = Sets { off, stride, count, n, decay_len };
        sets.reference_step(&mut p, &g, (&mut m, &mut v), step, [lr, b1, b2, eps, wd]);
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

/// Both widths on ranges that are not a multiple of 4 (a partial last vector): three
/// sets of 298 at offset 8, stride 304, decay on the first 199; each set against the
/// f64 reference, the floats around the sets untouched, and the two widths bitwise
/// equal. The guarded step likewise (n = 301 at offset 4, so the flag `m[off + n]` sits
/// in the last vector's padding and must survive), skipping the update when a gradient
/// is not finite.
#[test]
fn scalar_and_vec4_widths_agree_on_ragged_ranges() {
    let gpu = common::gpu();
    let (n, off, stride, count, decay_len) = (298usize, 8usize, 304usize, 3usize, 199usize);
    let len = off + count * stride;
    let p0 = to_f64(&to_f32(&rand_vec(len, 5)));
    let (b1, b2, eps, wd, lr) = (0.9, 0.999, 1e-8, 0.01, 1e-2);
    let ap = AdamParams { n: n as u32, off: off as u32, batch_stride: stride as u32, decay_len: decay_len as u32, beta1: b1 as f32, beta2: b2 as f32, eps: eps as f32, weight_decay: wd as f32 };
    assert_eq!(AdamWidth::of(&ap), AdamWidth::Vec4);
    assert_eq!(AdamWidth::of(&AdamParams { off: 2, ..ap }), AdamWidth::Scalar);
    assert_eq!(AdamWidth::of(&AdamParams { batch_stride: 302, ..ap }), AdamWidth::Scalar);
    let mut results = Vec::new();
    for width in [AdamWidth::Scalar, AdamWidth::Vec4] {
        let pb = gpu.storage_from("p", &to_f32(&p0));
        let mb = gpu.storage("m", len as u64 * 4);
        let vb = gpu.storage("v", len as u64 * 4);
        let mut p = p0.clone();
        let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
        for step in 1..=3u32 {
            let g = rand_vec(len, 40 + step as u64);
            let gb = gpu.storage_from("g", &to_f32(&g));
            let sb = step_state(gpu, step, lr, b1, b2);
            let mut b = ProgramBuilder::new(gpu);
            adam::adam_batched_as(&mut b, &ap, count, width);
            b.build(gpu, Bindings { params: Some(&pb), grads: Some(&gb), moments: Some((&mb, &vb)), step: Some(&sb), ..Default::default() }).unwrap().run(gpu).unwrap();
            let sets = Sets { off, stride, count, n, decay_len };
            sets.reference_step(&mut p, &g, (&mut m, &mut v), step, [lr, b1, b2, eps, wd]);
        }
        let got = to_f64(&gpu.read_f32(&pb, 0, len).unwrap());
        let got_m = to_f64(&gpu.read_f32(&mb, 0, len).unwrap());
        for z in 0..count {
            let s = off + z * stride;
            assert_close(&format!("{width:?}: set {z} after 3 steps"), &got[s..s + n], &p[s..s + n], 2e-6, 1e-5);
            assert_eq!(&got[s + n..s + stride], &p0[s + n..s + stride], "{width:?}: set {z}: the floats after it changed");
            assert!(got_m[s + n..s + stride].iter().all(|x| *x == 0.0), "{width:?}: set {z}: moments after it changed");
        }
        assert_eq!(&got[..off], &p0[..off], "{width:?}: floats before the first set changed");
        results.push(got);
    }
    assert_eq!(results[0], results[1], "scalar and vec4 give the same numbers");

    // Guarded: n = 301 at offset 4; the flag and the epoch count follow the range.
    let (n, off) = (301usize, 4usize);
    let len = off + n + 2 + 3;
    let ap = AdamParams { n: n as u32, off: off as u32, batch_stride: 0, decay_len: 0, beta1: b1 as f32, beta2: b2 as f32, eps: eps as f32, weight_decay: wd as f32 };
    let mut results = Vec::new();
    for width in [AdamWidth::Scalar, AdamWidth::Vec4] {
        let pb = gpu.storage_from("p", &to_f32(&p0[..len]));
        let mb = gpu.storage("m", len as u64 * 4);
        let vb = gpu.storage("v", len as u64 * 4);
        let mut p = p0[..len].to_vec();
        let (mut m, mut v) = (vec![0.0; len], vec![0.0; len]);
        for step in 1..=3u32 {
            let mut g = rand_vec(len, 60 + step as u64);
            if step == 2 {
                g[off + 17] = f64::NAN; // flags the step: nothing changes
            }
            let gb = gpu.storage_from("g", &to_f32(&g));
            let sb = step_state(gpu, step, lr, b1, b2);
            let mut b = ProgramBuilder::new(gpu);
            adam::adam_guarded_as(&mut b, &ap, width);
            b.build(gpu, Bindings { params: Some(&pb), grads: Some(&gb), moments: Some((&mb, &vb)), step: Some(&sb), ..Default::default() }).unwrap().run(gpu).unwrap();
            if step != 2 {
                let r = off..off + n;
                reference::adam::adam_step(&mut p[r.clone()], &g[r.clone()], &mut m[r.clone()], &mut v[r], step, lr, b1, b2, eps, wd);
            }
        }
        let got = to_f64(&gpu.read_f32(&pb, 0, len).unwrap());
        let got_m = to_f64(&gpu.read_f32(&mb, 0, len).unwrap());
        assert_close(&format!("{width:?}: guarded, after 3 steps (one skipped)"), &got[off..off + n], &p[off..off + n], 2e-6, 1e-5);
        assert_eq!(&got[..off], &p0[..off], "{width:?}: floats before the range changed");
        assert_eq!(&got[off + n..], &p0[off + n..len], "{width:?}: floats after the range changed");
        assert_eq!((got_m[off + n], got_m[off + n + 1]), (0.0, 1.0), "{width:?}: the last step's flag and the epoch's count of flagged steps");
        results.push(got);
    }
    assert_eq!(results[0], results[1], "guarded: scalar and vec4 give the same numbers");
}

/// `ema` against the f64 mirror over steps in the warm-up (1–3, where
/// `(1 + step) / (10 + step)` is below the decay) and after it (5,000), on a range that
/// starts at an offset and ends in a partial workgroup: values outside the range stay.
#[test]
fn ema_matches_reference_in_and_after_the_warm_up() {
    let gpu = common::gpu();
    let (off, n, total) = (7usize, 1029usize, 1100usize);
    let decay = 0.999;
    let mut avg = rand_vec(total, 3);
    let avg0 = avg.clone();
    let ab = gpu.storage_from("avg", &to_f32(&avg));
    let mb = gpu.storage("m", total as u64 * 4);
    let vb = gpu.storage("v", total as u64 * 4);
    for step in [1u32, 2, 3, 5000] {
        let p = rand_vec(total, 20 + step as u64);
        let pb = gpu.storage_from("p", &to_f32(&p));
        let sb = step_state(gpu, step, 1e-3, 0.9, 0.999);
        let mut b = ProgramBuilder::new(gpu);
        adam::ema(&mut b, &fmpe::kernels::EmaParams { n: n as u32, off: off as u32, decay: decay as f32, ..Default::default() });
        b.build(gpu, Bindings { params: Some(&ab), grads: Some(&pb), moments: Some((&mb, &vb)), step: Some(&sb), ..Default::default() })
            .unwrap()
            .run(gpu)
            .unwrap();
        reference::adam::ema_step(&mut avg[off..off + n], &p[off..off + n], step, decay);
    }
    let got = to_f64(&gpu.read_f32(&ab, 0, total).unwrap());
    assert_close("ema inside the range after 4 steps", &got[off..off + n], &avg[off..off + n], 2e-6, 1e-5);
    assert_eq!(&got[..off], &to_f64(&to_f32(&avg0[..off]))[..], "ema wrote before its range");
    assert_eq!(&got[off + n..], &to_f64(&to_f32(&avg0[off + n..]))[..], "ema wrote after its range");
    // The warm-up matters: at step 1 the average moves 9/11 of the way, not 1/1000.
    let mut one = vec![0.0];
    reference::adam::ema_step(&mut one, &[1.0], 1, decay);
    assert!((one[0] - 9.0 / 11.0).abs() < 1e-12, "warm-up decay at step 1: {}", one[0]);
}
