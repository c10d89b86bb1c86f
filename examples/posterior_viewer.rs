//! A wgpu application that embeds fmpe: it creates its own device, lends it to fmpe,
//! trains a small two_moons model (2,000 simulations, 20 epochs, in the logit-transformed
//! space of the prior box, so every sample is inside the box and nothing is redrawn),
//! and then, each frame, records a whole posterior draw of 20,000 samples into its own
//! command encoder ([`fmpe::posterior::Posterior::record_sample`]), straight into a
//! vertex buffer, followed by its own render pass that draws the samples as an additive
//! point cloud into an offscreen texture. One `Queue::submit` per frame, by the
//! application; no sample goes through the host on the way to the screen. The last frame
//! is written to a PNG (8-bit grey: each point adds 8 / 255, so a pixel's value is
//! 8 × the number of samples on it).
//!
//! `cargo run --release --example posterior_viewer [-- OUT.png [CHUNK]]` (default
//! `posterior_viewer.png`, chunk 1024). Runs headless (e.g. on Mesa lavapipe).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use fmpe::model::ModelMeta;
use fmpe::net::{Conditioning, NetConfig};
use fmpe::posterior::{DrawTarget, GpuModel, PosteriorOptions, ResidentValues, Solver};
use fmpe::tasks::{simulate_dataset, task_by_name};
use fmpe::train::{Control, Fmpe, TrainConfig};
use fmpe::transform::ThetaTransform;

/// Grey value each sample adds to its pixel (out of 255).
pub const INTENSITY: u32 = 8;

/// What the viewer draws and where.
#[derive(Clone, Debug)]
pub struct Config {
    /// PNG written from the last frame.
    pub out: PathBuf,
    /// Image width and height (pixels).
    pub size: u32,
    /// Posterior samples per frame.
    pub n: usize,
    /// Frames rendered (the first compiles pipelines and builds fmpe's plans).
    pub frames: usize,
    /// The observation x_o.
    pub observation: [f64; 2],
    /// fmpe's chunk size (rows integrated together).
    pub chunk: usize,
}

impl Default for Config {
    fn default() -> Self {
        Config { out: PathBuf::from("posterior_viewer.png"), size: 512, n: 20_000, frames: 1, observation: [0.0, 0.0], chunk: 1024 }
    }
}

/// The θ box shown: the prior box [-1, 1]², θ₁ to the right, θ₂ up.
#[derive(Clone, Copy, Debug)]
pub struct View {
    /// Lower corner.
    pub lo: [f32; 2],
    /// Upper corner.
    pub hi: [f32; 2],
}

impl View {
    /// Pixel coordinates (x right, y down; pixel i covers [i, i + 1)) of θ in a
    /// `size`-pixel square image.
    pub fn to_pixel(self, theta: &[f32], size: u32) -> (f64, f64) {
        let u = (theta[0] - self.lo[0]) as f64 / (self.hi[0] - self.lo[0]) as f64;
        let v = (self.hi[1] - theta[1]) as f64 / (self.hi[1] - self.lo[1]) as f64;
        (u * size as f64, v * size as f64)
    }
}

/// What a run measured.
#[derive(Debug)]
pub struct Report {
    /// The last frame's samples `[n, 2]`, read back (asynchronously) for checking.
    pub samples: Vec<f32>,
    /// The θ box shown.
    pub view: View,
    /// Training seconds.
    pub train_seconds: f64,
    /// Wall-clock milliseconds of each frame (record the draw + render, submit, wait).
    pub frame_ms: Vec<f64>,
    /// Milliseconds of a sampling-only and a rendering-only submission (after the frames).
    pub sample_ms: f64,
    /// See `sample_ms`.
    pub render_ms: f64,
    /// fmpe's own submissions while the frames were recorded (0: the app submits).
    pub fmpe_submissions_in_frames: u64,
}

type AnyResult<T> = Result<T, Box<dyn std::error::Error>>;

/// The application's own device (any adapter wgpu offers, e.g. lavapipe).
pub fn app_device() -> AnyResult<(wgpu::Device, wgpu::Queue)> {
    let instance = wgpu::Instance::new(wgpu::InstanceDescriptor::new_without_display_handle_from_env());
    let adapter = pollster::block_on(instance.request_adapter(&wgpu::RequestAdapterOptions::default()))?;
    let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
        label: Some("viewer"),
        required_limits: adapter.limits(),
        ..Default::default()
    }))?;
    Ok((device, queue))
}

/// Trains the two_moons model on the application's device.
fn train(gpu: &Arc<fmpe::Gpu>) -> AnyResult<fmpe::model::Model> {
    let task = task_by_name("two_moons")?;
    let (theta, x) = simulate_dataset(task.as_ref(), 2_000, 1);
    let prior = task.prior().support_box().ok_or("two_moons has a box prior")?;
    let meta = ModelMeta {
        task: Some("two_moons".into()),
        transform: ThetaTransform::from_box(&prior),
        prior: Some(prior),
        ..Default::default()
    };
    let net = NetConfig { dim_theta: 2, dim_x: 2, hidden: vec![32; 2], conditioning: Conditioning::Concat, embedding: vec![] };
    let cfg = TrainConfig { max_epochs: 20, batch_size: 64, learning_rate: 2e-3, seed: 1, ..Default::default() };
    Ok(Fmpe::new(gpu.clone(), net, meta).append_simulations(&theta, &x)?.train(&cfg, &mut |_| Control::Continue)?)
}

const SHADER: &str = r#"
struct View { scale: vec2<f32>, shift: vec2<f32>, intensity: f32 }
@group(0) @binding(0) var<uniform> view: View;
@vertex fn vs(@location(0) theta: vec2<f32>) -> @builtin(position) vec4<f32> {
    return vec4<f32>(theta * view.scale + view.shift, 0.0, 1.0);
}
@fragment fn fs() -> @location(0) vec4<f32> {
    return vec4<f32>(view.intensity, view.intensity, view.intensity, 1.0);
}
"#;

/// The application's render pipeline: points, additive blending, into RGBA8.
struct Renderer {
    pipeline: wgpu::RenderPipeline,
    bind: wgpu::BindGroup,
    target: wgpu::Texture,
    readback: wgpu::Buffer,
    size: u32,
}

impl Renderer {
    fn new(device: &wgpu::Device, queue: &wgpu::Queue, view: &View, size: u32) -> Renderer {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("points"),
            source: wgpu::ShaderSource::Wgsl(SHADER.into()),
        });
        let scale = [2.0 / (view.hi[0] - view.lo[0]), 2.0 / (view.hi[1] - view.lo[1])];
        let shift = [-1.0 - view.lo[0] * scale[0], -1.0 - view.lo[1] * scale[1]];
        let uniforms = [scale[0], scale[1], shift[0], shift[1], INTENSITY as f32 / 255.0, 0.0, 0.0, 0.0];
        let ubuf = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("view"),
            size: 32,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        queue.write_buffer(&ubuf, 0, bytemuck::cast_slice(&uniforms));
        let pipeline = device.create_render_pipeline(&wgpu::RenderPipelineDescriptor {
            label: Some("points"),
            layout: None,
            vertex: wgpu::VertexState {
                module: &module,
                entry_point: Some("vs"),
                compilation_options: Default::default(),
                buffers: &[Some(wgpu::VertexBufferLayout {
                    array_stride: 8,
                    step_mode: wgpu::VertexStepMode::Vertex,
                    attributes: &wgpu::vertex_attr_array![0 => Float32x2],
                })],
            },
            primitive: wgpu::PrimitiveState { topology: wgpu::PrimitiveTopology::PointList, ..Default::default() },
            depth_stencil: None,
            multisample: Default::default(),
            fragment: Some(wgpu::FragmentState {
                module: &module,
                entry_point: Some("fs"),
                compilation_options: Default::default(),
                targets: &[Some(wgpu::ColorTargetState {
                    format: wgpu::TextureFormat::Rgba8Unorm,
                    blend: Some(wgpu::BlendState {
                        color: wgpu::BlendComponent {
                            src_factor: wgpu::BlendFactor::One,
                            dst_factor: wgpu::BlendFactor::One,
                            operation: wgpu::BlendOperation::Add,
                        },
                        alpha: wgpu::BlendComponent::REPLACE,
                    }),
                    write_mask: wgpu::ColorWrites::ALL,
                })],
            }),
            multiview_mask: None,
            cache: None,
        });
        let bind = device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("view"),
            layout: &pipeline.get_bind_group_layout(0),
            entries: &[wgpu::BindGroupEntry { binding: 0, resource: ubuf.as_entire_binding() }],
        });
        let target = device.create_texture(&wgpu::TextureDescriptor {
            label: Some("frame"),
            size: wgpu::Extent3d { width: size, height: size, depth_or_array_layers: 1 },
            mip_level_count: 1,
            sample_count: 1,
            dimension: wgpu::TextureDimension::D2,
            format: wgpu::TextureFormat::Rgba8Unorm,
            usage: wgpu::TextureUsages::RENDER_ATTACHMENT | wgpu::TextureUsages::COPY_SRC,
            view_formats: &[],
        });
        let readback = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("frame readback"),
            size: (size * 4).next_multiple_of(256) as u64 * size as u64,
            usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        Renderer { pipeline, bind, target, readback, size }
    }

    /// Records the point cloud of the `n` vertices at the start of `vertices`.
    fn record(&self, enc: &mut wgpu::CommandEncoder, vertices: &wgpu::Buffer, n: usize) {
        let view = self.target.create_view(&Default::default());
        let mut pass = enc.begin_render_pass(&wgpu::RenderPassDescriptor {
            label: Some("points"),
            color_attachments: &[Some(wgpu::RenderPassColorAttachment {
                view: &view,
                depth_slice: None,
                resolve_target: None,
                ops: wgpu::Operations { load: wgpu::LoadOp::Clear(wgpu::Color::BLACK), store: wgpu::StoreOp::Store },
            })],
            ..Default::default()
        });
        pass.set_pipeline(&self.pipeline);
        pass.set_bind_group(0, &self.bind, &[]);
        pass.set_vertex_buffer(0, vertices.slice(..(n as u64 * 8)));
        pass.draw(0..n as u32, 0..1);
    }

    /// Records the copy of the frame into the readback buffer.
    fn record_copy(&self, enc: &mut wgpu::CommandEncoder) {
        let bpr = (self.size * 4).next_multiple_of(256);
        enc.copy_texture_to_buffer(
            self.target.as_image_copy(),
            wgpu::TexelCopyBufferInfo {
                buffer: &self.readback,
                layout: wgpu::TexelCopyBufferLayout { offset: 0, bytes_per_row: Some(bpr), rows_per_image: Some(self.size) },
            },
            wgpu::Extent3d { width: self.size, height: self.size, depth_or_array_layers: 1 },
        );
    }

    /// The red channel of the copied frame (the app's own blocking readback).
    fn grey(&self, device: &wgpu::Device) -> AnyResult<Vec<u8>> {
        let slice = self.readback.slice(..);
        slice.map_async(wgpu::MapMode::Read, |_| {});
        device.poll(wgpu::PollType::wait_indefinitely())?;
        let bpr = (self.size * 4).next_multiple_of(256) as usize;
        let grey = {
            let data = slice.get_mapped_range()?;
            (0..self.size as usize * self.size as usize)
                .map(|i| data[(i / self.size as usize) * bpr + (i % self.size as usize) * 4])
                .collect()
        };
        self.readback.unmap();
        Ok(grey)
    }
}

fn write_png(path: &Path, grey: &[u8], size: u32) -> AnyResult<()> {
    let mut bytes = Vec::new();
    {
        let mut enc = png::Encoder::new(&mut bytes, size, size);
        enc.set_color(png::ColorType::Grayscale);
        enc.set_depth(png::BitDepth::Eight);
        enc.write_header()?.write_image_data(grey)?;
    }
    std::fs::write(path, bytes)?;
    Ok(())
}

/// Trains, then renders `cfg.frames` frames, each one submit by the application; writes
/// the last frame to `cfg.out`.
pub fn run(cfg: &Config) -> AnyResult<Report> {
    let (device, queue) = app_device()?;
    let gpu = Arc::new(fmpe::Gpu::from_device(device.clone(), queue.clone())?);
    let t = Instant::now();
    let model = train(&gpu)?;
    let train_seconds = t.elapsed().as_secs_f64();
    let posterior = GpuModel::new(gpu.clone(), &model)?.posterior(&cfg.observation)?;
    // A borrowed device tells fmpe nothing about the adapter, so the application picks
    // the chunk size: 1,024 rows is cache-sized on a CPU rasteriser (lavapipe); a GPU
    // wants all 20,000 rows in one chunk.
    let opts = PosteriorOptions { solver: Solver::Rk4 { steps: 4 }, seed: 7, chunk_size: Some(cfg.chunk), ..Default::default() };
    let layout = posterior.resident_layout(cfg.n, &opts, false, 0);
    let vertices = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("posterior samples"),
        size: layout.end(),
        usage: wgpu::BufferUsages::VERTEX | wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_DST | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    });
    let view = View { lo: [-1.0, -1.0], hi: [1.0, 1.0] };
    let renderer = Renderer::new(&device, &queue, &view, cfg.size);
    let mut frame_ms = Vec::new();
    let submissions_before = gpu.submission_count();
    for _ in 0..cfg.frames.max(1) {
        let t = Instant::now();
        let mut enc = device.create_command_encoder(&Default::default());
        posterior.record_sample(&mut enc, cfg.n, &opts, &DrawTarget::new(&vertices))?;
        renderer.record(&mut enc, &vertices, cfg.n);
        queue.submit(Some(enc.finish()));
        device.poll(wgpu::PollType::wait_indefinitely())?;
        frame_ms.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let fmpe_submissions_in_frames = gpu.submission_count() - submissions_before;
    // The split: sampling alone, then rendering alone (and the copies out).
    let t = Instant::now();
    let mut enc = device.create_command_encoder(&Default::default());
    posterior.record_sample(&mut enc, cfg.n, &opts, &DrawTarget::new(&vertices))?;
    queue.submit(Some(enc.finish()));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let sample_ms = t.elapsed().as_secs_f64() * 1e3;
    let t = Instant::now();
    let mut enc = device.create_command_encoder(&Default::default());
    renderer.record(&mut enc, &vertices, cfg.n);
    queue.submit(Some(enc.finish()));
    device.poll(wgpu::PollType::wait_indefinitely())?;
    let render_ms = t.elapsed().as_secs_f64() * 1e3;
    // Read the frame and the samples back (the samples asynchronously, through fmpe).
    let mut enc = device.create_command_encoder(&Default::default());
    renderer.record_copy(&mut enc);
    let readback = layout.record_readback(&device, &mut enc, &vertices)?;
    queue.submit(Some(enc.finish()));
    let got: Arc<Mutex<Option<fmpe::Result<ResidentValues>>>> = Arc::default();
    let slot = got.clone();
    readback.map_async(move |v| *slot.lock().unwrap() = Some(v));
    let grey = renderer.grey(&device)?; // polls the device: runs the callback above too
    let samples = got.lock().unwrap().take().ok_or("the readback callback did not run")??.samples;
    write_png(&cfg.out, &grey, cfg.size)?;
    Ok(Report { samples, view, train_seconds, frame_ms, sample_ms, render_ms, fmpe_submissions_in_frames })
}

#[allow(dead_code)]
fn main() -> AnyResult<()> {
    let mut args = std::env::args().skip(1);
    let out = args.next().map_or_else(|| PathBuf::from("posterior_viewer.png"), PathBuf::from);
    let chunk = args.next().map_or(Ok(1024), |c| c.parse()).map_err(|e| format!("chunk size: {e}"))?;
    let cfg = Config { out, chunk, ..Default::default() };
    let t = Instant::now();
    let r = run(&cfg)?;
    println!("trained in {:.1} s", r.train_seconds);
    let fmt: Vec<String> = r.frame_ms.iter().map(|ms| format!("{ms:.0}")).collect();
    println!("frames of {} samples (record draw + render, one submit, wait): {} ms", cfg.n, fmt.join(", "));
    println!("sampling alone {:.0} ms, rendering alone {:.0} ms", r.sample_ms, r.render_ms);
    println!("fmpe submissions during the frames: {}", r.fmpe_submissions_in_frames);
    println!("wrote {} ({}x{}) in {:.1} s", cfg.out.display(), cfg.size, cfg.size, t.elapsed().as_secs_f64());
    Ok(())
}
