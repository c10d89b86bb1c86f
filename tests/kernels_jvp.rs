//! The JVP / density kernels (`src/kernels/jvp.rs`): `tangent_init` in its three probe
//! modes (against the Philox reference), `div_reduce` and `density_finish` in its three
//! modes, against f64 formulas.
mod common;

use common::*;
use fmpe::kernels::{jvp, Bindings, DensityMode, JvpParams, ProbeMode, ProgramBuilder};
use fmpe::reference::philox::{box_muller, philox4x32_10, uniform};

const SEED: u64 = 0x0bad_5eed_1234;

fn run(acts: &[f64], record: impl FnOnce(&mut ProgramBuilder)) -> Vec<f64> {
    let gpu = common::gpu();
    let ab = gpu.storage_from("acts", &to_f32(acts));
    let mut b = ProgramBuilder::new(gpu);
    record(&mut b);
    b.build(gpu, Bindings { acts: Some(&ab), ..Default::default() }).unwrap().run(gpu).unwrap();
    to_f64(&gpu.read_f32(&ab, 0, acts.len()).unwrap())
}

fn params(n: usize, d: usize, probes: usize, mode: u32) -> JvpParams {
    JvpParams {
        n: n as u32,
        d: d as u32,
        probes: probes as u32,
        mode,
        eps_off: 0,
        first_index: 1000,
        seed_lo: SEED as u32,
        seed_hi: (SEED >> 32) as u32,
        ..Default::default()
    }
}

#[test]
fn tangent_init_fills_exact_rademacher_and_gaussian_probes() {
    let (n, d) = (300usize, 5usize);
    // Exact: probe p of every row is the unit vector e_p (probes = d).
    let got = run(&vec![7.0; n * d * d], |b| jvp::tangent_init(b, &params(n, d, d, ProbeMode::Exact as u32)));
    for q in 0..n * d {
        for j in 0..d {
            assert_eq!(got[q * d + j], (j == q / n) as u8 as f64, "exact probe row {q}, component {j}");
        }
    }
    // Hutchinson probes from the Philox counter (first_index + i, p, 2 + j / 4, 0x9B0BE).
    let probes = 3;
    let key = [SEED as u32, (SEED >> 32) as u32];
    let block = |i: usize, p: usize, j: usize| philox4x32_10([1000 + i as u32, p as u32, 2 + (j / 4) as u32, 0x9B0BE], key);
    let got = run(&vec![7.0; n * probes * d], |b| jvp::tangent_init(b, &params(n, d, probes, ProbeMode::Rademacher as u32)));
    for q in 0..n * probes {
        let (p, i) = (q / n, q % n);
        for j in 0..d {
            let want = if block(i, p, j)[j % 4] & 0x8000_0000 != 0 { 1.0 } else { -1.0 };
            assert_eq!(got[q * d + j], want, "Rademacher probe {p} of row {i}, component {j}");
        }
    }
    let got = run(&vec![7.0; n * probes * d], |b| jvp::tangent_init(b, &params(n, d, probes, ProbeMode::Gaussian as u32)));
    let mut want = Vec::new();
    for q in 0..n * probes {
        let (p, i) = (q / n, q % n);
        for j in 0..d {
            let r = block(i, p, j);
            let u = |k: usize| uniform(r[k]);
            let (a, b) = box_muller(u(0), u(1));
            let (c, e) = box_muller(u(2), u(3));
            want.push([a, b, c, e][j % 4]);
        }
    }
    assert_close("Gaussian probes", &got, &want, 1e-5, 1e-5);
}

#[test]
fn div_reduce_sums_probe_products_per_row() {
    let (n, d, probes) = (260usize, 3usize, 2usize);
    let (eps, jeps, out) = (0usize, probes * n * d, 2 * probes * n * d);
    let out_rs = 4;
    let acts = to_f64(&to_f32(&rand_vec(out + n * out_rs, 80)));
    let scale = 0.5f32;
    let p = JvpParams { eps_off: eps as u32, jeps_off: jeps as u32, out_off: out as u32, out_rs: out_rs as u32, scale, ..params(n, d, probes, 0) };
    let got = run(&acts, |b| jvp::div_reduce(b, &p));
    for i in 0..n {
        let s: f64 = (0..probes)
            .flat_map(|pr| (0..d).map(move |j| (pr * n + i) * d + j))
            .map(|e| acts[eps + e] * acts[jeps + e])
            .sum();
        assert_close(&format!("divergence row {i}"), &[got[out + i * out_rs]], &[scale as f64 * s], 1e-6, 1e-5);
        assert_eq!(got[out + i * out_rs + 1], acts[out + i * out_rs + 1], "only column 0 of the output row is written");
    }
}

#[test]
fn density_finish_in_its_three_modes() {
    // Joint state rows [theta (d), delta] at row stride ds = d + 2.
    let (n, d) = (270usize, 3usize);
    let ds = d + 2;
    let (y, out) = (0usize, n * ds);
    let acts = to_f64(&to_f32(&rand_vec(out + n, 81)));
    let shift = -0.75f32;
    let p = |mode: DensityMode| JvpParams { ds: ds as u32, y_off: y as u32, out_off: out as u32, shift, mode: mode as u32, ..params(n, d, 1, 0) };
    let log_normal = |i: usize| {
        let sq: f64 = (0..d).map(|j| acts[y + i * ds + j].powi(2)).sum();
        -0.5 * sq - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
    };
    let delta = |i: usize| acts[y + i * ds + d];
    type Want<'a> = Box<dyn Fn(usize) -> f64 + 'a>;
    let cases: [(DensityMode, Want); 3] = [
        (DensityMode::LogProb, Box::new(|i| log_normal(i) + delta(i) + shift as f64)),
        (DensityMode::ForwardStart, Box::new(log_normal)),
        (DensityMode::ForwardEnd, Box::new(|i| acts[out + i] - delta(i) + shift as f64)),
    ];
    for (mode, want) in cases {
        let got = run(&acts, |b| jvp::density_finish(b, &p(mode)));
        let want: Vec<f64> = (0..n).map(want).collect();
        assert_close(&format!("density_finish {mode:?}"), &got[out..out + n], &want, 1e-5, 1e-5);
        assert_eq!(&got[..out], &acts[..out], "{mode:?} writes only the output");
    }
}
