//! `column_stats` and `zscore` (`src/kernels/stats.rs`) against the f64 reference.
mod common;

use common::*;
use fmpe::kernels::{stats, Bindings, ProgramBuilder, StatsParams};
use fmpe::reference;

#[test]
fn column_stats_and_zscoring_match_reference() {
    let gpu = common::gpu();
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
    stats::column_stats(&mut b, &sp);
    stats::zscore(&mut b, &sp);
    b.build(gpu, Bindings { acts: Some(&acts), data: Some(&db), ..Default::default() }).unwrap().run(gpu).unwrap();
    let st = to_f64(&gpu.read_f32(&acts, 0, 2 * cols).unwrap());
    assert_close("column means", &st[..cols], &mean, 1e-4, 1e-6);
    assert_close("column stds", &st[cols..], &std, 1e-5, 1e-4);
    assert_eq!(st[cols + 2], 1.0);
    let z = to_f64(&gpu.read_f32(&db, 0, rows * cols).unwrap());
    let want: Vec<f64> = data.iter().enumerate().map(|(i, v)| (v - mean[i % cols]) / std[i % cols]).collect();
    assert_close("z-scored data", &z, &want, 1e-4, 1e-4);
}
