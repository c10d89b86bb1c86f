//! `theta_transform` (`src/kernels/transform.rs`) against the f64 reference of the
//! parameter transforms, on the paths production uses: forward in place in the dataset
//! buffer (training) and inverse with z-scoring and log-Jacobian (sampling, log_prob).
mod common;

use common::*;
use fmpe::kernels::transform::{theta_transform, TransformMode, KIND_IDENTITY, KIND_LOG, KIND_LOGIT};
use fmpe::kernels::{Bindings, ProgramBuilder, TransformParams};
use fmpe::reference;
use fmpe::transform::{Bijection, ThetaTransform};

#[test]
fn transform_table_uses_the_kernel_kind_codes() {
    let t = ThetaTransform::new(vec![Bijection::Identity, Bijection::Logit { low: 0.0, high: 1.0 }, Bijection::Log { low: 0.0 }]);
    let table = t.gpu_table(3);
    assert_eq!([table[0], table[4], table[8]], [KIND_IDENTITY as f32, KIND_LOGIT as f32, KIND_LOG as f32]);
}

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
fn run_transform(bij: &[Bijection], input: &[f64], mode: TransformMode, flags: u32, out_rs: usize, scale: &[f64], shift: &[f64], ld0: f64) -> (Vec<f64>, Vec<f64>) {
    let gpu = common::gpu();
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
        mode: mode as u32,
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
    theta_transform(&mut b, &p);
    b.build(gpu, Bindings { acts: Some(&ab), data: Some(&db), ..Default::default() }).unwrap().run(gpu).unwrap();
    let raw = if data_mode { gpu.read_f32(&db, 0, n * d).unwrap() } else { gpu.read_f32(&ab, out as u64, n * out_rs).unwrap() };
    let rows = raw.chunks(out_rs).flat_map(|r| r[..d].iter().map(|&v| v as f64)).collect();
    (rows, to_f64(&gpu.read_f32(&ab, ld as u64, n).unwrap()))
}

#[test]
fn theta_transform_matches_reference_near_the_bounds_and_round_trips() {
    let bij = transform_components();
    let d = bij.len();
    // The kernel sees θ in f32: the reference gets the same rounded inputs.
    let theta: Vec<f64> = transform_rows(40).iter().map(|&v| v as f32 as f64).collect();
    let n = theta.len() / d;
    let (ones, zeros) = (vec![1.0; d], vec![0.0; d]);

    // Forward in place in the dataset buffer (as training does; the only forward use).
    let (y_ref, _) = reference::transform::forward_rows(&bij, &theta);
    let (y, _) = run_transform(&bij, &theta, TransformMode::Forward, TransformParams::DATA, d, &ones, &zeros, 0.0);
    assert_close("forward theta' in the dataset buffer", &y, &y_ref, 2e-5, 2e-6);
    let ymax = y.iter().zip(&y_ref).fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    eprintln!("forward: max |θ' - ref| = {ymax:.2e} over {n} rows (incl. bounds)");
    // Points on a logit bound are clamped to ±log(1/ε).
    let edge = -reference::transform::LOGIT_EPS.ln();
    let on_bound = (n - 5) * d; // first near-bound row: offset 0 from the lower bound
    assert!((y[on_bound + 1] + edge).abs() < 1e-4 && (y[on_bound + 4] + edge).abs() < 1e-4, "{:?}", &y[on_bound..on_bound + d]);
    let scale = [0.5, 2.0, 1.5, 0.7, 3.0];
    let shift = [0.1, -0.3, 1.0, 0.0, 2.0];

    // Inverse from z-scored values (as sampling ends), including saturating ones.
    let mut zin: Vec<f64> = rand_vec(40 * d, 31).iter().map(|v| 2.5 * v).collect();
    for s in [30.0, -30.0, 0.0] {
        zin.extend(std::iter::repeat_n(s, d));
    }
    let zin: Vec<f64> = zin.iter().map(|&v| v as f32 as f64).collect();
    let flags = TransformParams::ZSCORE | TransformParams::LOG_DET;
    let (th, ld) = run_transform(&bij, &zin, TransformMode::Inverse, flags, d, &scale, &shift, 0.25);
    let yin: Vec<f64> = zin.iter().enumerate().map(|(e, v)| v * scale[e % d] + shift[e % d]).collect();
    let (th_ref, ld_ref) = reference::transform::inverse_rows(&bij, &yin);
    // f32 un-z-scoring perturbs θ' by ~1e-7 |θ'|; θ moves by that times dθ/dθ'.
    assert_close("inverse theta", &th, &th_ref, 2e-5, 1e-5);
    let ld_want: Vec<f64> = ld_ref.iter().map(|v| v + 0.25).collect();
    assert_close("inverse log|det| (accumulated onto ld)", &ld, &ld_want, 5e-5, 1e-5);
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

    // Round trip θ → θ' → θ on the GPU for the interior rows, through the paths
    // production uses (forward in the dataset buffer, inverse with z-scoring).
    let interior = &theta[..40 * d];
    let (y, _) = run_transform(&bij, interior, TransformMode::Forward, TransformParams::DATA, d, &ones, &zeros, 0.0);
    let (back, _) = run_transform(&bij, &y, TransformMode::Inverse, TransformParams::ZSCORE, d, &ones, &zeros, 0.0);
    let worst = back.iter().zip(interior).fold(0f64, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
    eprintln!("round trip: max |T⁻¹(T(θ)) − θ| / (1 + |θ|) = {worst:.2e}");
    assert!(worst < 1e-5, "round trip error {worst}");
}
