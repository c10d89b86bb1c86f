//! Soak benchmark (issue 14, item 9, full size): 1,000 consecutive posterior calls on
//! one loaded model; prints host RSS and live GPU buffers at calls 100 and 1,000 and
//! fails when RSS grew by more than 8 MiB or the buffer count changed.
//! `cargo bench --bench soak` (Linux: reads /proc/self/statm).
use std::sync::Arc;

use fmpe::model::Model;
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};
use fmpe::Gpu;

fn rss_kib() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4
}

fn main() -> fmpe::Result<()> {
    let gpu = Arc::new(Gpu::new()?);
    let device = gpu.device.clone();
    let net = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![32, 32], conditioning: Conditioning::Glu, embedding: vec![] };
    let params = (0..net.layout().len).map(|i| ((i * 7919 % 1000) as f32 / 1000.0 - 0.5) * 0.1).collect();
    let on_gpu = GpuModel::new(gpu, &Model::with_params(net, params))?;
    let opts = PosteriorOptions { solver: Solver::Rk4 { steps: 4 }, ..Default::default() };
    let (mut at100, mut buf100) = (0, 0);
    let t0 = std::time::Instant::now();
    for call in 1..=1000 {
        let xo = [0.001 * call as f64, -0.3];
        on_gpu.posterior(&xo)?.sample(32, &opts)?;
        if call == 100 {
            at100 = rss_kib();
            buf100 = device.get_internal_counters().hal.buffers.read();
        }
    }
    let (at1000, buf1000) = (rss_kib(), device.get_internal_counters().hal.buffers.read());
    println!(
        "1000 posterior calls in {:.1} s: RSS {at100} KiB at call 100, {at1000} KiB at call 1000; live GPU buffers {buf100} → {buf1000}",
        t0.elapsed().as_secs_f64()
    );
    assert!(at1000 <= at100 + 8 * 1024, "host memory grew by {} KiB", at1000 - at100);
    assert_eq!(buf1000, buf100, "live GPU buffers changed");
    Ok(())
}
