//! The non-matmul kernels against f64 references: the OT path with its Philox noise
//! and time prior, the epoch permutation, Adam, z-scoring, and the affine map.
mod common;

use common::*;
use fmpe::kernels::{
    AdamParams, AffineParams, Bindings, GatherParams, Kernel, ProgramBuilder, StatsParams, StepState,
};
use fmpe::reference;

const SEED: u64 = 0x1234_5678_9abc;

/// Runs `gather_path` once over `data` (θ rows then x rows) and returns the workspace.
#[allow(clippy::too_many_arguments)]
fn gather(n: usize, dt: usize, dx: usize, glu: bool, rows: usize, validation: bool, step: StepState, alpha: f32) -> (Vec<f64>, GatherParams, Vec<f64>) {
    let gpu = common::gpu().unwrap();
    let theta = rand_vec(n * dt, 3);
    let x = rand_vec(n * dx, 4);
    let data: Vec<f64> = theta.iter().chain(&x).copied().collect();
    let din = if glu { dx } else { 1 + dt + dx };
    let p = GatherParams {
        rows: rows as u32,
        dim_theta: dt as u32,
        dim_x: dx as u32,
        glu: glu as u32,
        n_train: n as u32,
        row_offset: 0,
        validation: validation as u32,
        seed_lo: SEED as u32,
        seed_hi: (SEED >> 32) as u32,
        theta_off: 0,
        x_off: (n * dt) as u32,
        in_off: 0,
        in_rs: din as u32,
        ctx_off: (rows * din) as u32,
        target_off: (rows * (din + dt + 1)) as u32,
        x_dst_off: if glu { 0 } else { 1 + dt as u32 },
        x_dst_rs: din as u32,
        alpha,
        sigma_min: 1e-4,
    };
    let len = rows * (din + 2 * dt + 1);
    let acts = gpu.storage("acts", len as u64 * 4);
    let data_buf = gpu.storage_from("data", &to_f32(&data));
    let step_buf = gpu.uniform_from("step", bytemuck::bytes_of(&step));
    let mut b = ProgramBuilder::new(gpu);
    b.push_1d(Kernel::GatherPath, &p, rows);
    b.build(gpu, Bindings { acts: Some(&acts), data: Some(&data_buf), step: Some(&step_buf), ..Default::default() })
        .unwrap()
        .run(gpu)
        .unwrap();
    (to_f64(&gpu.read_f32(&acts, 0, len).unwrap()), p, data)
}

fn philox_normals(ctr: [u32; 3], d: usize) -> Vec<f64> {
    let key = [SEED as u32, (SEED >> 32) as u32];
    (0..d)
        .map(|j| {
            let r = reference::philox::philox4x32_10([ctr[0], ctr[1], 1 + (j / 4) as u32, ctr[2]], key);
            let u = |k: usize| reference::philox::uniform(r[k]);
            let (a, b) = reference::philox::box_muller(u(0), u(1));
            let (c, e) = reference::philox::box_muller(u(2), u(3));
            [a, b, c, e][j % 4]
        })
        .collect()
}

#[test]
fn validation_rows_on_the_ot_path_match_the_reference() {
    if common::gpu().is_none() {
        return;
    }
    let (n, dt, dx, alpha) = (40usize, 5usize, 3usize, 4.0f32);
    for glu in [false, true] {
        let (acts, p, data) = gather(n, dt, dx, glu, n, true, StepState::default(), alpha);
        let key = [SEED as u32, (SEED >> 32) as u32];
        for r in 0..n {
            let u = reference::philox::uniform(reference::philox::philox4x32_10([r as u32, 0, 0, 1], key)[0]);
            let t = reference::path::time_from_uniform(u, alpha as f64);
            let theta0 = philox_normals([r as u32, 0, 1], dt);
            let theta1 = &data[r * dt..(r + 1) * dt];
            let (psi, target) = reference::path::ot_path(&theta0, theta1, &[t], dt, 1e-4);
            let (t_gpu, psi_gpu): (f64, Vec<f64>) = if glu {
                let c = p.ctx_off as usize + r * (dt + 1);
                (acts[c], acts[c + 1..c + 1 + dt].to_vec())
            } else {
                let c = r * p.in_rs as usize;
                (acts[c], acts[c + 1..c + 1 + dt].to_vec())
            };
            assert!((t_gpu - t).abs() < 1e-5, "row {r}: t {t_gpu} vs {t}");
            assert_close("psi", &psi_gpu, &psi, 1e-5, 1e-4);
            let tg = p.target_off as usize + r * dt;
            assert_close("target", &acts[tg..tg + dt], &target, 1e-5, 1e-4);
            let xc = r * p.in_rs as usize + if glu { 0 } else { 1 + dt };
            assert_close("x", &acts[xc..xc + dx], &data[n * dt + r * dx..n * dt + (r + 1) * dx], 1e-6, 0.0);
        }
    }
}

/// Recovers the data row of each training row from (ψ, target, t): θ₀ = ψ − t·target,
/// θ₁ = target + (1 − σ_min)θ₀.
fn rows_used(n: usize, step: StepState, rows: usize) -> Vec<usize> {
    let (dt, dx) = (2usize, 1usize);
    let (acts, p, data) = gather(n, dt, dx, false, rows, false, step, 1.0);
    (0..rows)
        .map(|r| {
            let c = r * p.in_rs as usize;
            let t = acts[c];
            let tg = p.target_off as usize + r * dt;
            let th1: Vec<f64> = (0..dt).map(|j| acts[tg + j] + (1.0 - 1e-4) * (acts[c + 1 + j] - t * acts[tg + j])).collect();
            let idx = (0..n)
                .min_by(|&a, &b| {
                    let da: f64 = (0..dt).map(|j| (data[a * dt + j] - th1[j]).powi(2)).sum();
                    let db: f64 = (0..dt).map(|j| (data[b * dt + j] - th1[j]).powi(2)).sum();
                    da.partial_cmp(&db).unwrap()
                })
                .unwrap();
            // x travels with its θ.
            assert!((acts[c + 1 + dt] - data[n * dt + idx]).abs() < 1e-6, "x not paired with its theta");
            idx
        })
        .collect()
}

#[test]
fn each_epoch_visits_every_training_row_once_in_a_new_order() {
    if common::gpu().is_none() {
        return;
    }
    let n = 37;
    let e0 = rows_used(n, StepState { epoch: 0, step: 1, ..Default::default() }, n);
    let e1 = rows_used(n, StepState { epoch: 1, step: 2, ..Default::default() }, n);
    for e in [&e0, &e1] {
        let mut s = e.clone();
        s.sort();
        assert_eq!(s, (0..n).collect::<Vec<_>>(), "an epoch must be a permutation of the rows");
    }
    assert_ne!(e0, e1, "epochs must be shuffled differently");
}

#[test]
fn philox_noise_and_time_prior_have_the_right_distribution_and_are_reproducible() {
    if common::gpu().is_none() {
        return;
    }
    let (n, dt, alpha) = (4000usize, 8usize, 4.0f32);
    let step = StepState { step: 7, epoch: 0, ..Default::default() };
    let (acts, p, _) = gather(n, dt, 1, true, n, false, step, alpha);
    let (again, _, _) = gather(n, dt, 1, true, n, false, step, alpha);
    assert_eq!(acts, again, "same seed and step must give the same numbers");
    // θ₀ = ψ − t·target: N(0, 1) moments.
    let mut z = Vec::new();
    let mut ts = Vec::new();
    for r in 0..n {
        let c = p.ctx_off as usize + r * (dt + 1);
        let t = acts[c];
        ts.push(t);
        for j in 0..dt {
            z.push(acts[c + 1 + j] - t * acts[p.target_off as usize + r * dt + j]);
        }
    }
    let m = z.iter().sum::<f64>() / z.len() as f64;
    let v = z.iter().map(|x| (x - m).powi(2)).sum::<f64>() / z.len() as f64;
    let se = (1.0 / z.len() as f64).sqrt();
    assert!(m.abs() < 4.0 * se, "normal mean {m}");
    assert!((v - 1.0).abs() < 4.0 * (2.0f64 / z.len() as f64).sqrt(), "normal variance {v}");
    // Time prior: P(t <= s) = s^(1+α); compare the histogram in 10 bins (chi-square).
    let bins = 10;
    let mut counts = vec![0usize; bins];
    for &t in &ts {
        assert!((0.0..=1.0).contains(&t));
        counts[((t * bins as f64) as usize).min(bins - 1)] += 1;
    }
    let mut chi2 = 0.0;
    for (b, &c) in counts.iter().enumerate() {
        let (lo, hi) = (b as f64 / bins as f64, (b + 1) as f64 / bins as f64);
        let e = n as f64 * (hi.powf(1.0 + alpha as f64) - lo.powf(1.0 + alpha as f64));
        if e > 0.5 {
            chi2 += (c as f64 - e).powi(2) / e;
        }
    }
    assert!(chi2 < 30.0, "time prior histogram does not follow t^α: chi2 = {chi2}, counts {counts:?}");
}

#[test]
fn adam_matches_reference_over_several_steps() {
    if common::gpu().is_none() {
        return;
    }
    let gpu = common::gpu().unwrap();
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
        b.push_1d(
            Kernel::Adam,
            &AdamParams { n: n as u32, pad: [0; 3], beta1: b1 as f32, beta2: b2 as f32, eps: eps as f32, weight_decay: wd as f32 },
            n,
        );
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
fn zscoring_and_affine_match_reference() {
    if common::gpu().is_none() {
        return;
    }
    let gpu = common::gpu().unwrap();
    let (rows, cols) = (1234usize, 3usize);
    let mut data = rand_vec(rows * cols, 5);
    for r in 0..rows {
        data[r * cols] = 100.0 + 5.0 * data[r * cols]; // far from zero: tests the two-pass variance
        data[r * cols + 2] = 7.0; // constant column: std taken as 1
    }
    let (mean, std) = reference::zscore_stats(&data, rows, cols);
    let db = gpu.storage_from("data", &to_f32(&data));
    let acts = gpu.storage("acts", 4 * 64);
    let sp = StatsParams { rows: rows as u32, cols: cols as u32, off: 0, stats_off: 0 };
    let mut b = ProgramBuilder::new(gpu);
    b.push_groups(Kernel::ColumnStats, &sp, (cols as u32, 1, 1));
    b.push_1d(Kernel::Zscore, &sp, rows * cols);
    // affine back: out = z * std + mean, into acts[64..]
    b.build(gpu, Bindings { acts: Some(&acts), data: Some(&db), ..Default::default() }).unwrap().run(gpu).unwrap();
    let st = to_f64(&gpu.read_f32(&acts, 0, 2 * cols).unwrap());
    assert_close("column means", &st[..cols], &mean, 1e-4, 1e-6);
    assert_close("column stds", &st[cols..], &std, 1e-5, 1e-4);
    assert_eq!(st[cols + 2], 1.0);
    let z = to_f64(&gpu.read_f32(&db, 0, rows * cols).unwrap());
    let want: Vec<f64> = data.iter().enumerate().map(|(i, v)| (v - mean[i % cols]) / std[i % cols]).collect();
    assert_close("z-scored data", &z, &want, 1e-4, 1e-4);

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
    b.push_1d(
        Kernel::Affine,
        &AffineParams { n: n as u32, d: 3, in_off: 0, in_rs: 4, out_off: 206, scale_off: 200, shift_off: 203, pad: 0 },
        n * 3,
    );
    b.build(gpu, Bindings { acts: Some(&outb), ..Default::default() }).unwrap().run(gpu).unwrap();
    let got = to_f64(&gpu.read_f32(&outb, 206, n * 3).unwrap());
    let want: Vec<f64> = (0..n * 3).map(|e| x[(e / 3) * 4 + e % 3] * [2.0, -3.0, 0.5][e % 3] + [1.0, 2.0, 3.0][e % 3]).collect();
    assert_close("affine", &got, &want, 1e-5, 1e-5);
}
