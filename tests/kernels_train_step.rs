//! The training-step kernels (`src/kernels/train_step.rs`): `gather_path` (the OT path
//! with its Philox noise and time prior, the epoch permutation), `fm_loss` and
//! `glu_backward`, against f64 references.
mod common;

use common::*;
use fmpe::kernels::{train_step, Bindings, GatherParams, GluParams, LossParams, ProgramBuilder, StepState};
use fmpe::reference;

const SEED: u64 = 0x1234_5678_9abc;

/// Runs `gather_path` once over `data` (θ rows then x rows) and returns the workspace.
#[allow(clippy::too_many_arguments)]
fn gather(n: usize, dt: usize, dx: usize, glu: bool, rows: usize, validation: bool, step: StepState, alpha: f32) -> (Vec<f64>, GatherParams, Vec<f64>) {
    gather_reflecting(n, dt, dx, glu, rows, validation, step, alpha, None)
}

/// [`gather`] training on the reflected density when `reflect` gives the box bounds
/// `[dt, 2]` and the margin: the bounds go into the workspace after the rows' slots.
#[allow(clippy::too_many_arguments)]
fn gather_reflecting(
    n: usize,
    dt: usize,
    dx: usize,
    glu: bool,
    rows: usize,
    validation: bool,
    step: StepState,
    alpha: f32,
    reflect: Option<(&[f64], f32)>,
) -> (Vec<f64>, GatherParams, Vec<f64>) {
    let gpu = common::gpu();
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
        bounds_off: (rows * (din + 2 * dt + 1)) as u32,
        reflect_margin: reflect.map_or(0.0, |r| r.1),
    };
    let len = rows * (din + 2 * dt + 1) + 2 * dt;
    let mut init = vec![0.0f32; len];
    if let Some((bounds, _)) = reflect {
        init[p.bounds_off as usize..].copy_from_slice(&to_f32(bounds));
    }
    let acts = gpu.storage_from("acts", &init);
    let data_buf = gpu.storage_from("data", &to_f32(&data));
    let step_buf = gpu.uniform_from("step", bytemuck::bytes_of(&step));
    let mut b = ProgramBuilder::new(gpu);
    train_step::gather_path(&mut b, &p);
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

/// With reflection on, every θ₁ the path is built from is the data's component or its
/// mirror across the nearer bound, mirrored exactly when the Philox uniform of word
/// `REFLECT_CTR + j / 4` falls below `reflection_weight` (the CPU mirror decides the
/// same components); validation rows decide the same way at every epoch.
#[test]
fn reflected_rows_mirror_the_components_the_reference_picks() {
    let (n, dt, dx, alpha, margin) = (400usize, 6usize, 2usize, 1.0f32, 0.3f64);
    // Box [−1.1, 1.0] per component, except a wider one for the last component.
    let bounds: Vec<f64> = (0..dt).flat_map(|j| if j + 1 == dt { [-3.0, 3.0] } else { [-1.1, 1.0] }).collect();
    let key = [SEED as u32, (SEED >> 32) as u32];
    for (validation, step) in [(true, StepState::default()), (false, StepState { step: 5, epoch: 0, ..Default::default() })] {
        let (acts, p, data) = gather_reflecting(n, dt, dx, false, n, validation, step, alpha, Some((&bounds, margin as f32)));
        let (mut mirrored, mut weight_sum) = (0usize, 0.0f64);
        for r in 0..n {
            let (ctr_row, ctr_step, stream) = if validation { (r as u32, 0, 1) } else { (r as u32, step.step, 0) };
            // Which data row: validation rows are in order; training rows are found
            // from θ₀ and the target below.
            let c = r * p.in_rs as usize;
            let t = acts[c];
            let tg = p.target_off as usize + r * dt;
            let theta0: Vec<f64> = (0..dt).map(|j| acts[c + 1 + j] - t * acts[tg + j]).collect();
            let th1: Vec<f64> = (0..dt).map(|j| acts[tg + j] + (1.0 - 1e-4) * theta0[j]).collect();
            let idx = if validation {
                r
            } else {
                let x_row = &acts[c + 1 + dt..c + 1 + dt + dx];
                (0..n).find(|&i| (0..dx).all(|k| (data[n * dt + i * dx + k] - x_row[k]).abs() < 1e-6)).expect("x row from the data")
            };
            let u4 = reference::philox::philox4x32_10([ctr_row, ctr_step, reference::path::REFLECT_CTR, stream], key);
            let u4b = reference::philox::philox4x32_10([ctr_row, ctr_step, reference::path::REFLECT_CTR + 1, stream], key);
            for j in 0..dt {
                let u = reference::philox::uniform(if j < 4 { u4[j] } else { u4b[j - 4] });
                let (lo, hi) = (bounds[2 * j], bounds[2 * j + 1]);
                let th = data[idx * dt + j];
                let want = reference::path::reflect_at_random(th, lo, hi, margin, u);
                let w = reference::path::reflection_weight((th - lo).min(hi - th), margin * (hi - lo));
                weight_sum += w;
                // Skip the f32/f64 coin flips that sit on the threshold.
                if (u - w).abs() > 1e-5 {
                    assert!((th1[j] - want).abs() < 1e-4, "row {r} component {j}: θ₁ {} against the reference {want} (data {th})", th1[j]);
                }
                if (th1[j] - th).abs() > 1e-3 {
                    mirrored += 1;
                }
            }
        }
        // Components are mirrored at the rate the weights say.
        let se = weight_sum.sqrt();
        assert!((mirrored as f64 - weight_sum).abs() < 4.0 * se + 1.0, "{mirrored} mirrored, {weight_sum:.1} expected");
        assert!(mirrored > 50, "{mirrored}");
    }
    // Off by default: the plain gather's θ₁ is the data's.
    let (acts, p, data) = gather(n, dt, dx, false, n, true, StepState::default(), alpha);
    for r in 0..n {
        let c = r * p.in_rs as usize;
        let tg = p.target_off as usize + r * dt;
        for j in 0..dt {
            let th1 = acts[tg + j] + (1.0 - 1e-4) * (acts[c + 1 + j] - acts[c] * acts[tg + j]);
            assert!((th1 - data[r * dt + j]).abs() < 1e-4);
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
fn fm_loss_sums_squared_errors_into_its_slot_and_writes_the_gradient() {
    let gpu = common::gpu();
    // More elements than one workgroup (256 threads) covers, plus a loss slot taken
    // from the step state and one given explicitly.
    let count = 1000;
    let (v_off, t_off, dv_off, loss_off) = (0usize, 1024usize, 2048usize, 3072usize);
    let acts = rand_vec(loss_off + 8, 60);
    let ab = gpu.storage_from("acts", &to_f32(&acts));
    let step = gpu.uniform_from("step", bytemuck::bytes_of(&StepState { step_in_epoch: 3, ..Default::default() }));
    let scale = 2.0 / count as f32;
    let p = LossParams {
        count: count as u32,
        v_off: v_off as u32,
        target_off: t_off as u32,
        dv_off: dv_off as u32,
        write_dv: 1,
        loss_off: loss_off as u32,
        slot: 0,
        slot_from_step: 1,
        scale,
    };
    let mut b = ProgramBuilder::new(gpu);
    train_step::fm_loss(&mut b, &p);
    // Validation form: no gradient, explicit slot 6.
    train_step::fm_loss(&mut b, &LossParams { dv_off: 0, write_dv: 0, slot: 6, slot_from_step: 0, scale: 0.0, ..p });
    b.build(gpu, Bindings { acts: Some(&ab), step: Some(&step), ..Default::default() }).unwrap().run(gpu).unwrap();
    let got = to_f64(&gpu.read_f32(&ab, 0, loss_off + 8).unwrap());
    let v = to_f64(&to_f32(&acts[v_off..v_off + count]));
    let t = to_f64(&to_f32(&acts[t_off..t_off + count]));
    let (loss, dv) = reference::train_step::fm_loss(&v, &t, scale as f64);
    assert_close("fm_loss slot from the step", &got[loss_off + 3..loss_off + 4], &[loss], 1e-4, 1e-5);
    assert_close("fm_loss explicit slot", &got[loss_off + 6..loss_off + 7], &[loss], 1e-4, 1e-5);
    assert_close("fm_loss dL/dv", &got[dv_off..dv_off + count], &dv, 1e-7, 1e-5);
    // Other slots and the gap after dv are untouched.
    assert_eq!(got[loss_off], acts[loss_off] as f32 as f64);
    assert_eq!(got[dv_off + count], acts[dv_off + count] as f32 as f64);
}

#[test]
fn glu_backward_matches_reference() {
    let gpu = common::gpu();
    let count = 700;
    let (dh, y, g, dy, dgp) = (0usize, 1024usize, 2048usize, 3072usize, 4096usize);
    let mut acts = rand_vec(dgp + count, 61);
    for e in 0..count {
        acts[g + e] = 0.5 * (acts[g + e] + 1.0); // a gate value in [0, 1)
    }
    let acts = to_f64(&to_f32(&acts));
    let ab = gpu.storage_from("acts", &to_f32(&acts));
    let p = GluParams {
        count: count as u32,
        dh_off: dh as u32,
        y_off: y as u32,
        g_off: g as u32,
        dy_off: dy as u32,
        dgp_off: dgp as u32,
    };
    let mut b = ProgramBuilder::new(gpu);
    train_step::glu_backward(&mut b, &p);
    b.build(gpu, Bindings { acts: Some(&ab), ..Default::default() }).unwrap().run(gpu).unwrap();
    let got = to_f64(&gpu.read_f32(&ab, 0, dgp + count).unwrap());
    let (want_dy, want_dgp) =
        reference::train_step::glu_backward(&acts[dh..dh + count], &acts[y..y + count], &acts[g..g + count]);
    assert_close("glu dy", &got[dy..dy + count], &want_dy, 1e-7, 1e-6);
    assert_close("glu dgate_pre", &got[dgp..dgp + count], &want_dgp, 1e-7, 1e-6);
}
