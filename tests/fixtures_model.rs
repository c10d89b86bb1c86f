//! A model directory written by fmpe at commit 40cac14 (`tests/fixtures/two_moons_40cac14`,
//! made with that version's binary; its README lists the commands) still loads with the
//! current library and samples what that version sampled: dopri5, rk4 and dopri5 with
//! log-densities, 64 samples each, seed 1.
//!
//! How exact: on the adapter that wrote the fixture (Mesa lavapipe, "llvmpipe") the
//! comparison is bitwise on the `f32` values the CSV files hold (they are written as the
//! shortest decimal that round-trips the `f32`, so parsing one back gives the same `f32`):
//! the numerics are meant to stay bitwise the same, and a looser check would hide a
//! reordered float operation. Other adapters may round `exp`, `log` and `tanh` (GELU)
//! differently (WGSL allows a few ulp) and the ODE solve carries such differences along,
//! so there the check is `|a − b| ≤ 1e-4 · (1 + |b|)`; that bound was not measured (no
//! other adapter was at hand when the fixture was written).

mod common;

use std::path::PathBuf;

use fmpe::io::{read_matrix, Matrix};
use fmpe::model::Model;
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};

fn fixture() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join("two_moons_40cac14")
}

fn expected(name: &str) -> Matrix {
    read_matrix(&fixture().join(name)).unwrap_or_else(|e| panic!("fixture {name}: {e}"))
}

/// Whether the test adapter is the one that wrote the fixture (then: bitwise).
fn same_adapter(gpu: &fmpe::Gpu) -> bool {
    gpu.adapter().is_some_and(|a| a.name.contains("llvmpipe"))
}

/// Compares `got` (row-major, `expected.cols` columns) with the fixture's values.
fn assert_matches(what: &str, got: &[f64], expected: &Matrix, bitwise: bool) {
    assert_eq!(got.len(), expected.data.len(), "{what}: {} values, the fixture has {}", got.len(), expected.data.len());
    for (i, (&a, &b)) in got.iter().zip(&expected.data).enumerate() {
        let (row, col) = (i / expected.cols, i % expected.cols);
        if bitwise {
            assert_eq!(
                (a as f32).to_bits(),
                (b as f32).to_bits(),
                "{what}: row {row}, column {col}: {} now, {} at 40cac14",
                a as f32,
                b as f32
            );
        } else {
            assert!((a - b).abs() <= 1e-4 * (1.0 + b.abs()), "{what}: row {row}, column {col}: {a} now, {b} at 40cac14");
        }
    }
}

fn load() -> (Model, Vec<f64>) {
    let model = Model::load(&fixture().join("model")).expect("a model written by 40cac14 loads");
    let obs = expected("observation.csv");
    assert_eq!((obs.rows, obs.cols), (1, 2));
    (model, obs.data)
}

#[test]
fn model_written_by_40cac14_loads() {
    let (model, _) = load();
    assert_eq!((model.dim_theta(), model.dim_x()), (2, 2));
    assert_eq!(model.info.net.hidden, vec![16, 16]);
    assert_eq!(model.params.len(), model.info.net.layout().len);
    assert_eq!(model.info.history.len(), 2);
    assert_eq!(model.info.theta_names, vec!["theta_1", "theta_2"]);
}

#[test]
fn model_written_by_40cac14_samples_as_it_did() {
    let gpu = common::gpu_arc();
    let bitwise = same_adapter(gpu);
    let (model, obs) = load();
    let post = GpuModel::new(gpu.clone(), &model).unwrap().posterior(&obs).unwrap();
    // `fmpe sample` at 40cac14: rejection to the prior box on, 600 s limit, default chunk.
    let opts = |solver| PosteriorOptions { solver, seed: 1, max_seconds: Some(600.0), ..Default::default() };

    let s = post.sample(64, &opts(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 })).unwrap();
    assert_matches("dopri5 samples", s.as_slice(), &expected("samples_dopri5.csv"), bitwise);

    let s = post.sample(64, &opts(Solver::Rk4 { steps: 20 })).unwrap();
    assert_matches("rk4 samples", s.as_slice(), &expected("samples_rk4.csv"), bitwise);

    let lp_opts = opts(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 });
    let s = post.sample_and_log_prob(64, &lp_opts).unwrap();
    let lp = s.log_prob().expect("sample_and_log_prob returns log_prob");
    let joined: Vec<f64> = s.as_slice().chunks(2).zip(lp).flat_map(|(row, &l)| [row[0], row[1], l]).collect();
    assert_matches("samples with log_prob", &joined, &expected("samples_log_prob.csv"), bitwise);
}
