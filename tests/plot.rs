//! PNG figures: written atomically, non-trivial, right size. No GPU needed.

use std::path::PathBuf;

use fmpe::plot::{pair_plot, training_curve};
use fmpe::train::EpochRecord;

fn out_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("fmpe-plot-test-{}-{test}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// Deterministic N(0, 1) draws (Box–Muller on a xorshift stream).
fn normals(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15) | 1;
    let mut u = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        ((s >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    };
    (0..n).map(|_| (-2.0 * u().ln()).sqrt() * (std::f64::consts::TAU * u()).cos()).collect()
}

fn png_size(bytes: &[u8]) -> (u32, u32) {
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n", "not a PNG");
    let be = |o: usize| u32::from_be_bytes(bytes[o..o + 4].try_into().unwrap());
    (be(16), be(20))
}

#[test]
fn pair_plot_writes_a_png() {
    let dir = out_dir("pairs");
    let d = 3;
    let n = 3000;
    let z = normals(n * d, 1);
    // Correlated samples; the reference is shifted in dimension 1.
    let samples: Vec<f64> = (0..n).flat_map(|r| [z[3 * r], 0.8 * z[3 * r] + 0.6 * z[3 * r + 1], 2.0 + 0.5 * z[3 * r + 2]]).collect();
    let zr = normals(n * d, 2);
    let reference: Vec<f64> = (0..n).flat_map(|r| [0.5 + zr[3 * r], zr[3 * r + 1], 2.0 + 0.5 * zr[3 * r + 2]]).collect();
    let names: Vec<String> = ["alpha", "beta", "gamma"].iter().map(|s| s.to_string()).collect();
    let path = dir.join("pairs.png");
    pair_plot(&samples, Some(&reference), d, &names, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), (3 * 240 + 20, 3 * 240 + 50));
    assert!(bytes.len() > 20_000, "suspiciously small PNG: {} bytes", bytes.len());
    // No temporary file is left behind.
    let left: Vec<_> = std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert!(left.iter().all(|n| !n.to_string_lossy().contains(".tmp-")), "{left:?}");
    // Without a reference and names, still fine; bad shapes are errors.
    pair_plot(&samples[..300], None, d, &[], &dir.join("pairs_noref.png")).unwrap();
    assert!(pair_plot(&samples[..4], None, d, &[], &dir.join("bad.png")).is_err());
    assert!(!dir.join("bad.png").exists());
    if std::env::var_os("FMPE_KEEP_PLOTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("plots in {}", dir.display());
    }
}

#[test]
fn training_curve_writes_a_png() {
    let dir = out_dir("curve");
    let history: Vec<EpochRecord> = (1..=60)
        .map(|e| EpochRecord {
            epoch: e,
            train_loss: 1.0 / (e as f64).sqrt() + 0.2,
            val_loss: if e % 7 == 0 { f64::NAN } else { 1.1 / (e as f64).sqrt() + 0.25 },
            learning_rate: 1e-3,
            seconds: e as f64,
        })
        .collect();
    let path = dir.join("curve.png");
    training_curve(&history, &path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(png_size(&bytes), (800, 500));
    assert!(bytes.len() > 5_000, "suspiciously small PNG: {} bytes", bytes.len());
    assert!(training_curve(&[], &dir.join("empty.png")).is_err());
    if std::env::var_os("FMPE_KEEP_PLOTS").is_none() {
        let _ = std::fs::remove_dir_all(&dir);
    } else {
        eprintln!("plots in {}", dir.display());
    }
}
