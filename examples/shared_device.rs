//! Embedding fmpe in an application that already owns a `wgpu::Device` (a renderer,
//! say): the application creates the device and lends it to fmpe with
//! `Gpu::from_device`; fmpe records its kernels on it and never installs handlers of its
//! own on a borrowed device.
//!
//! `cargo run --release --example shared_device`

use fmpe::net::{Conditioning, NetConfig};
use fmpe::model::ModelMeta;
use fmpe::posterior::{GpuModel, PosteriorOptions};
use fmpe::train::{Control, Fmpe, TrainConfig};
use fmpe::Gpu;

fn main() -> fmpe::Result<()> {
    // The application's own device (here: any adapter wgpu offers).
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))
        .map_err(|e| fmpe::Error::NoAdapter { detail: format!(" ({e})") })?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("my renderer"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))
    .map_err(|e| fmpe::Error::Gpu(e.to_string()))?;
    println!("application device on {}", adapter.get_info().name);

    // Lend it to fmpe (cloning wgpu handles is cheap; the application keeps its own).
    let gpu = std::sync::Arc::new(Gpu::from_device(device.clone(), queue.clone())?);

    // A toy problem: θ ~ N(0, 1), x = θ + 0.5 ε; posterior N(0.8 x_o, 0.2).
    let n = 1_000;
    let theta: Vec<f64> = (0..n).map(|i| ((i as f64 * 0.618).fract() - 0.5) * 3.4).collect();
    let x: Vec<f64> = theta.iter().enumerate().map(|(i, t)| t + 0.5 * ((i as f64 * 0.414).fract() - 0.5) * 3.4).collect();
    let net = NetConfig { dim_theta: 1, dim_x: 1, hidden: vec![32, 32], conditioning: Conditioning::Glu, embedding: vec![] };
    let model = Fmpe::new(gpu.clone(), net, ModelMeta::default())
        .append_simulations(&theta, &x)?
        .train(&TrainConfig { max_epochs: 10, ..Default::default() }, &mut |_| Control::Continue)?;
    let samples = GpuModel::new(gpu.clone(), &model)?.posterior(&[1.0])?.sample(500, &PosteriorOptions::default())?;
    println!("posterior mean at x_o = 1: {:.3}", samples.as_slice().iter().sum::<f64>() / 500.0);
    println!("fmpe made {} submissions on the application's queue", gpu.submission_count());
    Ok(())
}
