//! The `affine` kernel (`src/kernels/affine.rs`): per-column scale and shift with a
//! strided input, against the f64 formula.
mod common;

use common::*;
use fmpe::kernels::{affine, AffineParams, Bindings, ProgramBuilder};

#[test]
fn affine_matches_reference() {
    let gpu = common::gpu();
    // affine: y = x * scale + shift, rows read with a row stride.
    let n = 50;
    let x = rand_vec(n * 4, 8);
    let mut a: Vec<f64> = x.clone();
    a.extend([2.0, -3.0, 0.5]); // scale at 200
    a.extend([1.0, 2.0, 3.0]); // shift at 203
    let outb = gpu.storage("out", 4 * (206 + n as u64 * 3));
    let mut both = to_f32(&a);
    both.resize(206 + n * 3, 0.0);
    gpu.queue.write_buffer(&outb, 0, bytemuck::cast_slice(&both));
    let mut b = ProgramBuilder::new(gpu);
    let p = AffineParams { n: n as u32, d: 3, in_off: 0, in_rs: 4, out_off: 206, scale_off: 200, shift_off: 203, pad: 0 };
    affine::affine(&mut b, &p);
    b.build(gpu, Bindings { acts: Some(&outb), ..Default::default() }).unwrap().run(gpu).unwrap();
    let got = to_f64(&gpu.read_f32(&outb, 206, n * 3).unwrap());
    let want: Vec<f64> = (0..n * 3).map(|e| x[(e / 3) * 4 + e % 3] * [2.0, -3.0, 0.5][e % 3] + [1.0, 2.0, 3.0][e % 3]).collect();
    assert_close("affine", &got, &want, 1e-5, 1e-5);
}

