//! Shared helpers of the GPU integration tests.
#![allow(dead_code)]

use std::sync::{Arc, OnceLock};

use fmpe::Gpu;

/// The test GPU, shared by the tests of one binary. GPU tests FAIL when no adapter is
/// found: this panics, and there is no switch that skips them (a skipped GPU test would
/// count as passed).
pub fn gpu() -> &'static Gpu {
    gpu_arc()
}

/// The shared test GPU as the `Arc` a posterior holds (same context as [`gpu`]); panics
/// without an adapter.
pub fn gpu_arc() -> &'static Arc<Gpu> {
    static GPU: OnceLock<Arc<Gpu>> = OnceLock::new();
    GPU.get_or_init(|| Arc::new(fresh_gpu()))
}

/// Adapter selection from the environment (WGPU_BACKEND, WGPU_ADAPTER_NAME, ...): only
/// the binary and the tests read environment variables.
pub fn gpu_options() -> fmpe::gpu::GpuOptions {
    fmpe::gpu::GpuOptions::from_vars(|k| std::env::var(k).ok()).expect("FMPE_KERNELS")
}

/// A fresh GPU context (for tests that count submissions); panics without an adapter,
/// like [`gpu`].
pub fn fresh_gpu() -> Gpu {
    Gpu::with_options(&gpu_options()).unwrap_or_else(|e| panic!("GPU tests need an adapter: {e}"))
}

/// The sbibm data folder: `$FMPE_SBIBM_DIR`, else `../shared/sbibm` beside the crate.
/// Tests that read it are `#[ignore = "needs ../shared/sbibm ..."]`: a user's clone has no
/// `../shared`, and CI runs them with `--include-ignored`.
pub fn sbibm_dir() -> std::path::PathBuf {
    match std::env::var_os("FMPE_SBIBM_DIR") {
        Some(d) => std::path::PathBuf::from(d),
        None => std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("shared").join("sbibm"),
    }
}

/// Deterministic pseudo-random values in [-1, 1).
pub fn rand_vec(n: usize, seed: u64) -> Vec<f64> {
    let mut s = seed.wrapping_mul(0x9E3779B97F4A7C15).wrapping_add(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            ((s >> 11) as f64 / (1u64 << 53) as f64) * 2.0 - 1.0
        })
        .collect()
}

/// Asserts |a - b| <= atol + rtol |b| elementwise.
pub fn assert_close(what: &str, a: &[f64], b: &[f64], atol: f64, rtol: f64) {
    assert_eq!(a.len(), b.len(), "{what}: lengths differ");
    let mut worst = (0usize, 0.0f64);
    for i in 0..a.len() {
        let err = (a[i] - b[i]).abs() - rtol * b[i].abs();
        if err.is_nan() || err > atol {
            panic!("{what}: element {i}: got {} expected {} (|diff| = {:.3e})", a[i], b[i], (a[i] - b[i]).abs());
        }
        if err > worst.1 {
            worst = (i, err);
        }
    }
}

pub fn to_f32(v: &[f64]) -> Vec<f32> {
    v.iter().map(|&x| x as f32).collect()
}
pub fn to_f64(v: &[f32]) -> Vec<f64> {
    v.iter().map(|&x| x as f64).collect()
}
