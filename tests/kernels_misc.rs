//! The non-matmul kernels against f64 references: the OT path with its Philox noise
//! and time prior, the epoch permutation, Adam, z-scoring, the affine map, and the
//! parameter transform.
mod common;

use common::*;
use fmpe::kernels::{
    AdamParams, AffineParams, Bindings, GatherParams, Kernel, ProgramBuilder, StatsParams, StepState, TransformParams,
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

// ---------------------------------------------------------------------------------
// Parameter transform.

use fmpe::transform::{Bijection, ThetaTransform};

/// Identity, logit on a box straddling 0, log above 0, log above −3, logit on a box far
/// from 0: the bounds as the kernel sees them (rounded to f32).
fn transform_components() -> Vec<Bijection> {
    let r = |v: f64| v as f32 as f64;
    vec![
        Bijection::Identity,
        Bijection::Logit { low: r(-1.0), high: r(2.0) },
        Bijection::Log { low: 0.0 },
        Bijection::Log { low: r(-3.0) },
        Bijection::Logit { low: r(10.0), high: r(12.5) },
    ]
}

/// Rows in the support `[n, 5]`: random interior values, then rows on and near the bounds.
fn transform_rows(n_random: usize) -> Vec<f64> {
    let bij = transform_components();
    let u: Vec<f64> = rand_vec(n_random * bij.len(), 30).iter().map(|v| 0.5 * (v + 1.0)).collect();
    let mut rows = Vec::new();
    for r in 0..n_random {
        for (j, b) in bij.iter().enumerate() {
            let q = u[r * bij.len() + j].clamp(1e-3, 1.0 - 1e-3);
            rows.push(match *b {
                Bijection::Identity => 4.0 * q - 2.0,
                Bijection::Logit { low, high } => low + q * (high - low),
                Bijection::Log { low } => low + (8.0 * q - 5.0).exp(),
            });
        }
    }
    // Near-bound rows: relative offsets from the lower / upper bound (logit) and small
    // distances above the bound (log); 0 is exactly on the bound.
    for (k, f) in [0.0, 1e-7, 1e-5, 1e-3, 0.5].iter().enumerate() {
        for b in &bij {
            rows.push(match *b {
                Bijection::Identity => *f,
                Bijection::Logit { low, high } if k % 2 == 0 => low + f * (high - low),
                Bijection::Logit { low, high } => high - f * (high - low),
                Bijection::Log { low } => low + if *f == 0.0 { 1e-30 } else { *f },
            });
        }
    }
    rows
}

/// Runs one `theta_transform` dispatch. `input` `[n, d]` is uploaded at row stride `d`
/// (into `data` when `in_data`), `ld` is pre-filled with `ld0`; returns (output rows
/// `[n, d]` read at stride `out_rs`, ld `[n]`).
#[allow(clippy::too_many_arguments)]
fn run_transform(bij: &[Bijection], input: &[f64], mode: u32, flags: u32, out_rs: usize, scale: &[f64], shift: &[f64], ld0: f64) -> (Vec<f64>, Vec<f64>) {
    let gpu = common::gpu().unwrap();
    let d = bij.len();
    let n = input.len() / d;
    let table = ThetaTransform::new(bij.to_vec()).gpu_table(d);
    // acts: table at 0, scale at 64, shift at 128, ld at 192, in at 256, out after it.
    let (tab, sc, sh, ld, inp) = (0usize, 64usize, 128usize, 192usize, 256usize);
    let out = inp + n * d;
    let mut acts = vec![0f32; out + n * out_rs];
    acts[tab..tab + 4 * d].copy_from_slice(&table);
    for j in 0..d {
        acts[sc + j] = scale[j] as f32;
        acts[sh + j] = shift[j] as f32;
    }
    assert!(n <= 64);
    for i in 0..n {
        acts[ld + i] = ld0 as f32;
    }
    let data_mode = flags & TransformParams::DATA != 0;
    let (in_off, out_off) = if data_mode { (0, 0) } else { (inp, out) };
    if !data_mode {
        acts[inp..inp + n * d].copy_from_slice(&to_f32(input));
    }
    let ab = gpu.storage_from("acts", &acts);
    let db = gpu.storage_from("data", &to_f32(input));
    let p = TransformParams {
        n: n as u32,
        d: d as u32,
        mode,
        flags,
        in_off: in_off as u32,
        in_rs: d as u32,
        out_off: out_off as u32,
        out_rs: out_rs as u32,
        tab_off: tab as u32,
        ld_off: ld as u32,
        scale_off: sc as u32,
        shift_off: sh as u32,
    };
    let mut b = ProgramBuilder::new(gpu);
    b.push_1d(Kernel::Transform, &p, n);
    b.build(gpu, Bindings { acts: Some(&ab), data: Some(&db), ..Default::default() }).unwrap().run(gpu).unwrap();
    let raw = if data_mode { gpu.read_f32(&db, 0, n * d).unwrap() } else { gpu.read_f32(&ab, out as u64, n * out_rs).unwrap() };
    let rows = raw.chunks(out_rs).flat_map(|r| r[..d].iter().map(|&v| v as f64)).collect();
    (rows, to_f64(&gpu.read_f32(&ab, ld as u64, n).unwrap()))
}

#[test]
fn theta_transform_matches_reference_near_the_bounds_and_round_trips() {
    if common::gpu().is_none() {
        return;
    }
    let bij = transform_components();
    let d = bij.len();
    // The kernel sees θ in f32: the reference gets the same rounded inputs.
    let theta: Vec<f64> = transform_rows(40).iter().map(|&v| v as f32 as f64).collect();
    let n = theta.len() / d;
    let (ones, zeros) = (vec![1.0; d], vec![0.0; d]);

    // Forward, accumulating the log-Jacobian onto a pre-filled ld.
    let (y_ref, ld_ref) = reference::transform::forward_rows(&bij, &theta);
    let (y, ld) = run_transform(&bij, &theta, 0, TransformParams::LOG_DET, d, &ones, &zeros, 0.25);
    assert_close("forward theta'", &y, &y_ref, 2e-5, 2e-6);
    let ld_want: Vec<f64> = ld_ref.iter().map(|v| v + 0.25).collect();
    assert_close("forward log|det|", &ld, &ld_want, 5e-5, 1e-5);
    let (ymax, ldmax) = (y.iter().zip(&y_ref).fold(0f64, |m, (a, b)| m.max((a - b).abs())), ld.iter().zip(&ld_want).fold(0f64, |m, (a, b)| m.max((a - b).abs())));
    eprintln!("forward: max |θ' - ref| = {ymax:.2e}, max |log det - ref| = {ldmax:.2e} over {n} rows (incl. bounds)");
    // Points on a logit bound are clamped to ±log(1/ε).
    let edge = -reference::transform::LOGIT_EPS.ln();
    let on_bound = (n - 5) * d; // first near-bound row: offset 0 from the lower bound
    assert!((y[on_bound + 1] + edge).abs() < 1e-4 && (y[on_bound + 4] + edge).abs() < 1e-4, "{:?}", &y[on_bound..on_bound + d]);

    // Forward with z-scoring into a strided output (as log_prob starts its solve), and
    // in place in the dataset buffer (as training does).
    let scale = [0.5, 2.0, 1.5, 0.7, 3.0];
    let shift = [0.1, -0.3, 1.0, 0.0, 2.0];
    let (z, _) = run_transform(&bij, &theta, 0, TransformParams::ZSCORE, d + 1, &scale, &shift, 0.0);
    let z_ref: Vec<f64> = y_ref.iter().enumerate().map(|(e, v)| (v - shift[e % d]) / scale[e % d]).collect();
    assert_close("forward z-scored", &z, &z_ref, 2e-5, 2e-6);
    let (yd, _) = run_transform(&bij, &theta, 0, TransformParams::DATA, d, &ones, &zeros, 0.0);
    assert_close("forward in the dataset buffer", &yd, &y_ref, 2e-5, 2e-6);

    // Inverse from z-scored values (as sampling ends), including saturating ones.
    let mut zin: Vec<f64> = rand_vec(40 * d, 31).iter().map(|v| 2.5 * v).collect();
    for s in [30.0, -30.0, 0.0] {
        zin.extend(std::iter::repeat_n(s, d));
    }
    let zin: Vec<f64> = zin.iter().map(|&v| v as f32 as f64).collect();
    let (th, ld) = run_transform(&bij, &zin, 1, TransformParams::ZSCORE | TransformParams::LOG_DET, d, &scale, &shift, 0.0);
    let yin: Vec<f64> = zin.iter().enumerate().map(|(e, v)| v * scale[e % d] + shift[e % d]).collect();
    let (th_ref, ld_ref) = reference::transform::inverse_rows(&bij, &yin);
    // f32 un-z-scoring perturbs θ' by ~1e-7 |θ'|; θ moves by that times dθ/dθ'.
    assert_close("inverse theta", &th, &th_ref, 2e-5, 1e-5);
    assert_close("inverse log|det|", &ld, &ld_ref, 5e-5, 1e-5);
    // Never outside the closed support (f32 may round onto a bound).
    for (r, row) in th.chunks(d).enumerate() {
        for (b, &v) in bij.iter().zip(row) {
            match *b {
                Bijection::Logit { low, high } => assert!(v >= low && v <= high, "row {r}: {v} outside [{low}, {high}]"),
                Bijection::Log { low } => assert!(v >= low, "row {r}: {v} below {low}"),
                Bijection::Identity => {}
            }
        }
    }

    // Round trip θ → θ' → θ on the GPU for the interior rows.
    let interior = &theta[..40 * d];
    let (y, _) = run_transform(&bij, interior, 0, 0, d, &ones, &zeros, 0.0);
    let (back, _) = run_transform(&bij, &y, 1, 0, d, &ones, &zeros, 0.0);
    let worst = back.iter().zip(interior).fold(0f64, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
    eprintln!("round trip: max |T⁻¹(T(θ)) − θ| / (1 + |θ|) = {worst:.2e}");
    assert!(worst < 1e-5, "round trip error {worst}");
}
