//! The per-row ODE kernels (`src/kernels/ode.rs`): `ode_init` bookkeeping, the
//! Runge–Kutta stage input and update of `ode_axpy` with the dopri5 and rk4 tableaux,
//! and dopri5's `dopri5_finalize` / `dopri5_count`, against f64 references
//! (`fmpe::reference::ode`).
mod common;

use common::*;
use fmpe::kernels::{ode, AxpyMode, AxpyParams, Bindings, FinParams, InitParams, ProgramBuilder};
use fmpe::reference::ode::{dopri5_finalize_row, stage_input, Dopri5Row, DP_A, DP_C};

/// Offsets of one ODE workspace of `n` rows with `d` components.
struct Ws {
    n: usize,
    d: usize,
    y: usize,
    t: usize,
    h: usize,
    k: usize,
    out: usize,
    stats: usize,
    active: usize,
    count: usize,
    len: usize,
}

impl Ws {
    fn new(n: usize, d: usize) -> Ws {
        let y = 0;
        let t = y + n * d;
        let h = t + n;
        let k = h + n;
        let out = k + 7 * n * d;
        let stats = out + n * (d + 1);
        let active = stats + 2 * n;
        let count = active + n;
        Ws { n, d, y, t, h, k, out, stats, active, count, len: count + 1 }
    }
    fn ks(&self, acts: &[f64], r: usize) -> Vec<Vec<f64>> {
        (0..7).map(|s| acts[self.k + s * self.n * self.d + r * self.d..][..self.d].to_vec()).collect()
    }
    fn axpy(&self, mode: AxpyMode, c: f32, coef: &[f64], d_net: usize) -> AxpyParams {
        let mut cf = [0f32; 8];
        for (a, b) in cf.iter_mut().zip(coef) {
            *a = *b as f32;
        }
        AxpyParams {
            n: self.n as u32,
            d: self.d as u32,
            d_net: d_net as u32,
            nk: coef.len() as u32,
            y_off: self.y as u32,
            t_off: self.t as u32,
            h_off: self.h as u32,
            k_off: self.k as u32,
            k_stride: (self.n * self.d) as u32,
            out_off: self.out as u32,
            out_rs: (d_net + 1) as u32,
            mode: mode as u32,
            c,
            pad: [0.0; 3],
            coef: cf,
        }
    }
    fn fin(&self, d_err: usize, t1: f32, atol: f32, rtol: f32, h_min: f32) -> FinParams {
        FinParams {
            n: self.n as u32,
            d: self.d as u32,
            d_err: d_err as u32,
            pad0: 0,
            y_off: self.y as u32,
            t_off: self.t as u32,
            h_off: self.h as u32,
            k_off: self.k as u32,
            k_stride: (self.n * self.d) as u32,
            stats_off: self.stats as u32,
            active_off: self.active as u32,
            count_off: self.count as u32,
            t1,
            atol,
            rtol,
            h_min,
        }
    }
}

/// Uploads `acts` (rounded to f32), runs what `record` records, returns the workspace.
fn run(acts: &[f64], record: impl FnOnce(&mut ProgramBuilder)) -> Vec<f64> {
    let gpu = common::gpu();
    let ab = gpu.storage_from("acts", &to_f32(acts));
    let mut b = ProgramBuilder::new(gpu);
    record(&mut b);
    b.build(gpu, Bindings { acts: Some(&ab), ..Default::default() }).unwrap().run(gpu).unwrap();
    to_f64(&gpu.read_f32(&ab, 0, acts.len()).unwrap())
}

#[test]
fn ode_init_without_noise_sets_the_bookkeeping_and_keeps_the_state() {
    let w = Ws::new(300, 3);
    let acts = to_f64(&to_f32(&rand_vec(w.len, 70)));
    let p = InitParams {
        n: w.n as u32,
        d: w.d as u32,
        d_noise: w.d as u32,
        noise: 0,
        y_off: w.y as u32,
        t_off: w.t as u32,
        h_off: w.h as u32,
        stats_off: w.stats as u32,
        active_off: w.active as u32,
        t0: 1.0,
        h0: -0.05,
        ..Default::default()
    };
    let got = run(&acts, |b| ode::ode_init(b, &p));
    assert_eq!(&got[w.y..w.y + w.n * w.d], &acts[w.y..w.y + w.n * w.d], "y is left as uploaded");
    for i in 0..w.n {
        assert_eq!((got[w.t + i], got[w.h + i], got[w.active + i]), (1.0, -0.05f32 as f64, 1.0));
        assert_eq!((got[w.stats + 2 * i], got[w.stats + 2 * i + 1]), (0.0, 0.0));
    }
}

#[test]
fn dopri5_stage_inputs_match_the_tableau() {
    // Per-row t and h; stage s combines k_1..k_s with the Dormand–Prince row a_s; the
    // network sees only the first d_net of the d components (as in the density ODE).
    let (n, d, d_net) = (333usize, 4usize, 3usize);
    let w = Ws::new(n, d);
    let mut acts = rand_vec(w.len, 71);
    for i in 0..n {
        acts[w.t + i] = 0.5 * (acts[w.t + i] + 1.0);
        acts[w.h + i] *= 0.1;
    }
    let acts = to_f64(&to_f32(&acts));
    for s in 1..7 {
        let coef: Vec<f64> = DP_A[s][..s].to_vec();
        let p = w.axpy(AxpyMode::Stage, DP_C[s] as f32, &coef, d_net);
        let got = run(&acts, |b| ode::ode_axpy(b, &p));
        let mut want = Vec::new();
        for i in 0..n {
            let y = &acts[w.y + i * d..][..d];
            let coef32: Vec<f64> = coef.iter().map(|&c| c as f32 as f64).collect();
            let c32 = DP_C[s] as f32 as f64;
            want.extend(stage_input(y, acts[w.t + i], acts[w.h + i], &w.ks(&acts, i), c32, &coef32, d_net));
        }
        assert_close(&format!("dopri5 stage {} input", s + 1), &got[w.out..w.out + n * (d_net + 1)], &want, 1e-6, 1e-5);
        assert_eq!(&got[..w.out], &acts[..w.out], "a stage input writes only tin");
    }
}

#[test]
fn rk4_update_advances_y_and_t() {
    let (n, d) = (300usize, 2usize);
    let w = Ws::new(n, d);
    let acts = to_f64(&to_f32(&rand_vec(w.len, 72)));
    let coef = [1.0 / 6.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 6.0];
    let p = w.axpy(AxpyMode::Update, 0.0, &coef, d);
    let got = run(&acts, |b| ode::ode_axpy(b, &p));
    for i in 0..n {
        let h = acts[w.h + i];
        let k = w.ks(&acts, i);
        let want: Vec<f64> =
            (0..d).map(|j| acts[w.y + i * d + j] + h * (0..4).map(|s| coef[s] as f32 as f64 * k[s][j]).sum::<f64>()).collect();
        assert_close("rk4 y", &got[w.y + i * d..][..d], &want, 1e-6, 1e-5);
        assert!((got[w.t + i] - (acts[w.t + i] + h)).abs() < 1e-6, "rk4 t row {i}");
    }
}

/// Rows that exercise every branch of the step control, then random rows.
fn finalize_rows(n: usize, d: usize, t1: f64) -> Vec<Dopri5Row> {
    let dir = if t1 > 0.5 { 1.0 } else { -1.0 };
    let r = rand_vec(n * 8 * d + 3 * n, 73);
    (0..n)
        .map(|i| {
            let v = |q: usize| r[i * 8 * d + q];
            let k: Vec<Vec<f64>> = (0..7).map(|s| (0..d).map(|j| v(d + s * d + j)).collect()).collect();
            let mut row = Dopri5Row {
                y: (0..d).map(|j| 1.0 + v(j)).collect(),
                t: 0.5,
                h: dir * 0.002,
                k,
                stats: (3.0, 1.0),
                active: true,
            };
            match i % 8 {
                0 => {}                                   // accepted
                1 => row.h = dir * 0.4,                   // rejected (err ≫ 1)
                2 => row.t = t1 - dir * 0.001,            // accepted last step: reaches t1
                3 => row.active = false,                  // finished row: untouched
                4 => row.k[2][0] = f64::NAN,              // non-finite field: NaN and stop
                5 => {
                    row.h = dir * 1e-7; // |h| ≤ h_min: accepted whatever the error
                    row.k[3] = vec![1e6; d];
                }
                6 => row.k = vec![vec![0.0; d]; 7],       // err = 0: grow by 10
                _ => row.h = dir * 0.4 * (r[n * 8 * d + i] + 1.0).abs(), // random size
            }
            row
        })
        .collect()
}

fn check_finalize(t1: f64) {
    let (n, d, d_err) = (257usize, 3usize, 2usize);
    let (atol, rtol, h_min) = (1e-3f32, 1e-3f32, 1e-6f32);
    let w = Ws::new(n, d);
    let rows = finalize_rows(n, d, t1);
    let mut acts = vec![0.0; w.len];
    for (i, row) in rows.iter().enumerate() {
        acts[w.y + i * d..][..d].copy_from_slice(&row.y);
        acts[w.t + i] = row.t;
        acts[w.h + i] = row.h;
        for s in 0..7 {
            acts[w.k + s * n * d + i * d..][..d].copy_from_slice(&row.k[s]);
        }
        acts[w.stats + 2 * i] = row.stats.0;
        acts[w.stats + 2 * i + 1] = row.stats.1;
        acts[w.active + i] = row.active as u8 as f64;
    }
    let acts = to_f64(&to_f32(&acts));
    let p = w.fin(d_err, t1 as f32, atol, rtol, h_min);
    let got = run(&acts, |b| {
        ode::dopri5_finalize(b, &p);
        ode::dopri5_count(b, &p);
    });
    let mut active = 0.0;
    let mut decided = [0usize; 2];
    for i in 0..n {
        let row = Dopri5Row {
            y: acts[w.y + i * d..][..d].to_vec(),
            t: acts[w.t + i],
            h: acts[w.h + i],
            k: w.ks(&acts, i),
            stats: (acts[w.stats + 2 * i], acts[w.stats + 2 * i + 1]),
            active: acts[w.active + i] != 0.0,
        };
        let (a, r, hm) = (atol as f64, rtol as f64, h_min as f64);
        let want = dopri5_finalize_row(&row, d_err, t1, a, r, hm);
        // Skip rows whose decision flips within 2% of the tolerance (f32 vs f64).
        let lo = dopri5_finalize_row(&row, d_err, t1, a * 0.98, r * 0.98, hm);
        let hi = dopri5_finalize_row(&row, d_err, t1, a * 1.02, r * 1.02, hm);
        if lo.stats != hi.stats {
            continue;
        }
        decided[(want.stats.0 > row.stats.0) as usize] += 1;
        let got_y = &got[w.y + i * d..][..d];
        if want.y.iter().any(|v| v.is_nan()) {
            assert!(got_y.iter().all(|v| v.is_nan()), "row {i}: NaN state expected, got {got_y:?}");
        } else {
            assert_close(&format!("row {i} y"), got_y, &want.y, 1e-6, 1e-5);
        }
        let got_stats = (got[w.stats + 2 * i], got[w.stats + 2 * i + 1]);
        assert_eq!(got_stats, want.stats, "row {i} accepted/rejected");
        assert_eq!(got[w.active + i] != 0.0, want.active, "row {i} active");
        assert!((got[w.t + i] - want.t).abs() < 1e-6, "row {i} t: {} vs {}", got[w.t + i], want.t);
        assert!((got[w.h + i] - want.h).abs() <= 1e-6 + 1e-4 * want.h.abs(), "row {i} h: {} vs {}", got[w.h + i], want.h);
        assert_close(&format!("row {i} k_1 (FSAL)"), &w.ks(&got, i)[0], &want.k[0], 0.0, 0.0);
        active += got[w.active + i];
    }
    for i in 0..n {
        if rows[i].active {
            continue;
        }
        assert_eq!(&got[w.y + i * d..][..d], &acts[w.y + i * d..][..d], "finished row {i} changed");
    }
    assert!(decided[0] > 10 && decided[1] > 10, "both accepted and rejected rows are tested: {decided:?}");
    let all_active: f64 = (0..n).map(|i| got[w.active + i]).sum();
    assert_eq!(got[w.count], all_active, "dopri5_count");
    assert!(active > 0.0);
}

#[test]
fn dopri5_finalize_and_count_match_the_reference_forward() {
    check_finalize(1.0);
}

#[test]
fn dopri5_finalize_and_count_match_the_reference_backward() {
    check_finalize(0.0);
}
