//! Soak (issue 14, item 9, CI size): many consecutive posterior calls on one loaded
//! model hold host memory flat — resident set size at the last call ≤ at the warm-up
//! call + 8 MiB — and the number of live GPU buffers constant (wgpu's internal counters,
//! enabled for the tests by the `counters` feature in Cargo.toml's dev-dependencies).
//! Linux only (reads /proc/self/statm).
mod common;

#[cfg(target_os = "linux")]
fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap();
    let pages: u64 = statm.split_whitespace().nth(1).unwrap().parse().unwrap();
    pages * 4096
}

#[cfg(target_os = "linux")]
#[test]
fn repeated_posterior_calls_hold_host_memory_flat() {
    use fmpe::model::Model;
    use fmpe::net::{Conditioning, NetConfig};
    use fmpe::posterior::{GpuModel, PosteriorOptions, Solver};

    let gpu = std::sync::Arc::new(common::fresh_gpu());
    let on_gpu_device = gpu.device.clone();
    let net = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![16, 16], conditioning: Conditioning::Glu, embedding: vec![] };
    let len = net.layout().len;
    let params = common::to_f32(&common::rand_vec(len, 5)).iter().map(|v| v * 0.1).collect();
    let model = Model::with_params(net, params);
    let on_gpu = GpuModel::new(gpu, &model).unwrap();
    let opts = PosteriorOptions { solver: Solver::Rk4 { steps: 4 }, ..Default::default() };
    let (warm, total) = (50, 200);
    let mut at_warm = 0;
    let mut buffers_at_warm = 0;
    let buffers = || on_gpu_device.get_internal_counters().hal.buffers.read();
    for call in 1..=total {
        let xo = [0.01 * call as f64, -0.3];
        let s = on_gpu.posterior(&xo).unwrap().sample(32, &opts).unwrap();
        assert_eq!(s.into_parts().0.len(), 64);
        if call == warm {
            at_warm = rss_bytes();
            buffers_at_warm = buffers();
        }
    }
    let buffers_at_end = buffers();
    eprintln!("live GPU buffers at call {warm}: {buffers_at_warm}, at call {total}: {buffers_at_end}");
    assert!(buffers_at_warm > 0, "wgpu's buffer counter is not enabled");
    assert_eq!(buffers_at_end, buffers_at_warm, "live GPU buffers changed over {} calls", total - warm);
    let at_end = rss_bytes();
    eprintln!("RSS at call {warm}: {} KiB, at call {total}: {} KiB", at_warm / 1024, at_end / 1024);
    assert!(at_end <= at_warm + 8 * 1024 * 1024, "host memory grew by {} KiB over {} calls", (at_end - at_warm) / 1024, total - warm);
}
