//! Embedding fmpe in a wgpu application (issue 13): GPU-resident draws into the
//! application's buffer, whole draws recorded into the application's encoder, the
//! asynchronous readback, the application's error handler on a borrowed device, and the
//! `posterior_viewer` example's picture.
//!
//! The bitwise checks use the model fixture of `tests/fixtures_model.rs` (small and
//! fast; trained with the logit transform of its box, so no sample is ever rejected),
//! with `reject_outside_prior: false` as well.

mod common;

#[path = "../examples/posterior_viewer.rs"]
#[allow(dead_code)]
mod viewer;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use fmpe::model::Model;
use fmpe::posterior::{DrawTarget, GpuModel, Posterior, PosteriorOptions, ResidentLayout, ResidentValues, Solver};
use fmpe::Gpu;

fn fixture_model() -> (Model, Vec<f64>) {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/two_moons_40cac14");
    let model = Model::load(&dir.join("model")).expect("the fixture model loads");
    let obs = fmpe::io::read_matrix(&dir.join("observation.csv")).expect("the fixture observation").data;
    (model, obs)
}

fn posterior_on(gpu: &Arc<Gpu>) -> Posterior {
    let (model, obs) = fixture_model();
    GpuModel::new(gpu.clone(), &model).unwrap().posterior(&obs).unwrap()
}

fn buffer(device: &wgpu::Device, bytes: u64) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("app samples"),
        size: bytes,
        usage: wgpu::BufferUsages::VERTEX
            | wgpu::BufferUsages::STORAGE
            | wgpu::BufferUsages::COPY_DST
            | wgpu::BufferUsages::COPY_SRC,
        mapped_at_creation: false,
    })
}

/// The application's asynchronous readback of `layout` through fmpe's `Readback`: one
/// submit and one poll, both the application's.
fn read(device: &wgpu::Device, queue: &wgpu::Queue, buf: &wgpu::Buffer, layout: &ResidentLayout) -> ResidentValues {
    let mut enc = device.create_command_encoder(&Default::default());
    let rb = layout.record_readback(device, &mut enc, buf).unwrap();
    queue.submit(Some(enc.finish()));
    let got: Arc<Mutex<Option<fmpe::Result<ResidentValues>>>> = Arc::default();
    let slot = got.clone();
    rb.map_async(move |v| *slot.lock().unwrap() = Some(v));
    assert!(got.lock().unwrap().is_none(), "map_async must not block or call back before the app polls");
    device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
    let v = got.lock().unwrap().take().expect("the callback ran during the app's poll");
    v.unwrap()
}

fn bits(v: &[f32]) -> Vec<u32> {
    v.iter().map(|x| x.to_bits()).collect()
}

fn bits64(v: &[f64]) -> Vec<u32> {
    v.iter().map(|&x| (x as f32).to_bits()).collect()
}

fn opts(solver: Solver) -> PosteriorOptions {
    PosteriorOptions { solver, seed: 5, reject_outside_prior: false, ..Default::default() }
}

/// `sample_to_buffer` / `sample_and_log_prob_to_buffer` write what `sample` /
/// `sample_and_log_prob` return, bit for bit as f32, also at an offset and in other
/// chunk sizes; fmpe submits one command buffer per chunk and reads nothing back.
#[test]
fn buffer_path_equals_host_path_bitwise() {
    let gpu = Arc::new(common::fresh_gpu());
    let post = posterior_on(&gpu);
    let (n, offset) = (300, 16);
    let buf = buffer(&gpu.device, 8192);
    for (solver, with_lp) in [(Solver::Rk4 { steps: 20 }, false), (Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, true)] {
        let o = opts(solver);
        let host = if with_lp { post.sample_and_log_prob(n, &o) } else { post.sample(n, &o) }.unwrap();
        let resident_opts = PosteriorOptions { chunk_size: Some(128), ..o.clone() };
        let target = DrawTarget { offset, dopri5_steps: 200, ..DrawTarget::new(&buf) };
        let before = gpu.submission_count();
        let layout = if with_lp {
            post.sample_and_log_prob_to_buffer(n, &resident_opts, &target)
        } else {
            post.sample_to_buffer(n, &resident_opts, &target)
        }
        .unwrap();
        assert_eq!(gpu.submission_count() - before, 3, "{solver:?}: one submission per chunk of 128 rows");
        assert_eq!(layout.samples_range(), offset..offset + 4 * 2 * n as u64);
        let got = read(&gpu.device, &gpu.queue, &buf, &layout);
        assert_eq!(bits(&got.samples), bits64(host.as_slice()), "{solver:?}: samples");
        if with_lp {
            assert_eq!(bits(&got.log_prob.unwrap()), bits64(host.log_prob().unwrap()), "{solver:?}: log_prob");
            assert_eq!(got.unfinished.unwrap(), vec![0.0; n], "every dopri5 row reached t = 1 within 200 steps");
        } else {
            assert!(got.log_prob.is_none() && got.unfinished.is_none());
        }
    }
}

/// The encoder path: the app's buffer keeps its NaN sentinel after fmpe's call (fmpe
/// submitted nothing) and after a full device wait; after the app's one submit it holds
/// the host path's samples (rk4) and samples, log-densities and flags (dopri5 budget).
#[test]
fn encoder_path_submits_nothing_and_matches_after_the_apps_submit() {
    let gpu = Arc::new(common::fresh_gpu());
    let (device, queue) = (gpu.device.clone(), gpu.queue.clone());
    let post = posterior_on(&gpu);
    let n = 200;
    for (solver, with_lp) in [(Solver::Rk4 { steps: 20 }, false), (Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 }, true)] {
        let o = opts(solver);
        let buf = buffer(&device, 4 * 4 * n as u64);
        queue.write_buffer(&buf, 0, bytemuck::cast_slice(&vec![f32::NAN; 4 * n]));
        queue.submit([]);
        let before = gpu.submission_count();
        let mut enc = device.create_command_encoder(&Default::default());
        let target = DrawTarget { dopri5_steps: 200, ..DrawTarget::new(&buf) };
        let layout = if with_lp {
            post.record_sample_and_log_prob(&mut enc, n, &o, &target)
        } else {
            post.record_sample(&mut enc, n, &o, &target)
        }
        .unwrap();
        assert_eq!(gpu.submission_count(), before, "fmpe submitted nothing");
        device.poll(wgpu::PollType::wait_indefinitely()).unwrap();
        let sentinel = read(&device, &queue, &buf, &layout);
        assert!(sentinel.samples.iter().all(|v| v.is_nan()), "{solver:?}: the sentinel is still there before the app submits");
        queue.submit(Some(enc.finish()));
        let got = read(&device, &queue, &buf, &layout);
        let host = if with_lp { post.sample_and_log_prob(n, &o) } else { post.sample(n, &o) }.unwrap();
        assert_eq!(bits(&got.samples), bits64(host.as_slice()), "{solver:?}: samples after the app's submit");
        if with_lp {
            assert_eq!(bits(&got.log_prob.unwrap()), bits64(host.log_prob().unwrap()));
            assert_eq!(got.unfinished.unwrap(), vec![0.0; n]);
        }
    }
}

/// A dopri5 budget too small flags rows instead of waiting for them.
#[test]
fn a_small_dopri5_budget_flags_unfinished_rows() {
    let gpu = common::gpu_arc();
    let post = posterior_on(gpu);
    let buf = buffer(&gpu.device, 4096);
    let o = opts(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 });
    let layout = post.sample_to_buffer(64, &o, &DrawTarget { dopri5_steps: 1, ..DrawTarget::new(&buf) }).unwrap();
    let got = read(&gpu.device, &gpu.queue, &buf, &layout);
    assert_eq!(got.unfinished.unwrap(), vec![1.0; 64], "no row reaches t = 1 in one step of h = 0.05");
}

/// Checks before recording: rejection needs the transform (or no rejection), the
/// buffer's size, usage and offset; nothing is recorded or submitted on an error.
#[test]
fn checks_come_before_recording() {
    let gpu = Arc::new(common::fresh_gpu());
    let post = posterior_on(&gpu);
    let rk4 = opts(Solver::Rk4 { steps: 4 });
    let name = |r: fmpe::Result<ResidentLayout>| match r {
        Err(fmpe::Error::InvalidOption { name, .. }) => name,
        other => panic!("expected an invalid option, got {other:?}"),
    };
    let small = buffer(&gpu.device, 4 * 2 * 10 - 4);
    assert_eq!(name(post.sample_to_buffer(10, &rk4, &DrawTarget::new(&small))), "buffer");
    let ok = buffer(&gpu.device, 1024);
    assert_eq!(name(post.sample_to_buffer(10, &rk4, &DrawTarget { offset: 2, ..DrawTarget::new(&ok) })), "offset");
    let no_dst = gpu.device.create_buffer(&wgpu::BufferDescriptor {
        label: None,
        size: 1024,
        usage: wgpu::BufferUsages::VERTEX,
        mapped_at_creation: false,
    });
    assert_eq!(name(post.sample_to_buffer(10, &rk4, &DrawTarget::new(&no_dst))), "buffer");
    let dopri = opts(Solver::Dopri5 { atol: 1e-5, rtol: 1e-5 });
    assert_eq!(name(post.sample_to_buffer(10, &dopri, &DrawTarget { dopri5_steps: 0, ..DrawTarget::new(&ok) })), "dopri5_steps");
    // The fixture was trained with the logit transform of its box (fmpe train's
    // default): every sample is inside, so rejection on is fine. The same weights
    // without the transform would need rejection: refused before recording.
    let reject = PosteriorOptions { reject_outside_prior: true, ..rk4.clone() };
    let (mut model, obs) = fixture_model();
    let b = model.info.prior.clone().unwrap();
    assert!(post.transform().covers(&b), "the fixture's transform is the logit of its box");
    model.info.transform = fmpe::transform::ThetaTransform::identity();
    let untransformed = GpuModel::new(gpu.clone(), &model).unwrap().posterior(&obs).unwrap();
    assert_eq!(name(untransformed.sample_to_buffer(10, &reject, &DrawTarget::new(&ok))), "reject_outside_prior");
    assert_eq!(gpu.submission_count(), 0, "nothing submitted by failed calls");
    let layout = post.sample_to_buffer(100, &reject, &DrawTarget::new(&ok)).unwrap();
    let got = read(&gpu.device, &gpu.queue, &ok, &layout);
    assert!(got.samples.chunks(2).all(|r| b.contains(&[r[0] as f64, r[1] as f64])), "all inside the box");
    let host = post.sample(100, &reject).unwrap();
    assert_eq!(bits(&got.samples), bits64(host.as_slice()));
}

/// On a borrowed device the app's uncaptured-error handler stays in place: a validation
/// error inside fmpe (a copy into a buffer the app destroyed) comes back as
/// `fmpe::Error::Gpu` and the app's handler is not called; the app's own error still
/// reaches its handler.
#[test]
fn a_borrowed_device_keeps_the_apps_error_handler() {
    let (device, queue) = viewer::app_device().expect("an adapter");
    let calls = Arc::new(AtomicUsize::new(0));
    let c = calls.clone();
    device.on_uncaptured_error(Arc::new(move |_e: wgpu::Error| {
        c.fetch_add(1, Ordering::SeqCst);
    }));
    let gpu = Arc::new(Gpu::from_device(device.clone(), queue.clone()).unwrap());
    let post = posterior_on(&gpu);
    let buf = buffer(&device, 1024);
    buf.destroy();
    let r = post.sample_to_buffer(10, &opts(Solver::Rk4 { steps: 4 }), &DrawTarget::new(&buf));
    assert!(matches!(r, Err(fmpe::Error::Gpu(_))), "a validation error inside fmpe is an fmpe::Error::Gpu: {r:?}");
    assert_eq!(calls.load(Ordering::SeqCst), 0, "the app's handler was not called for fmpe's error");
    // The app's own mistake (an unaligned copy) still goes to the app's handler.
    let a = buffer(&device, 64);
    let mut enc = device.create_command_encoder(&Default::default());
    enc.copy_buffer_to_buffer(&a, 0, &a, 32, 3);
    queue.submit(Some(enc.finish()));
    assert!(calls.load(Ordering::SeqCst) >= 1, "the app's handler is still installed");
    // And fmpe still works on the device afterwards.
    let ok = buffer(&device, 1024);
    post.sample_to_buffer(10, &opts(Solver::Rk4 { steps: 4 }), &DrawTarget::new(&ok)).unwrap();
}

/// The `posterior_viewer` example (its code, run here): the PNG exists, has the
/// expected size, and the intensity-weighted centroid and spread of its lit pixels are
/// those of the samples mapped to pixels (centroid within 2 px, spread within 5 %).
#[test]
fn posterior_viewer_draws_the_samples() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = viewer::Config { out: dir.path().join("viewer.png"), frames: 1, ..Default::default() };
    let r = viewer::run(&cfg).unwrap();
    assert_eq!(r.fmpe_submissions_in_frames, 0, "the app submits each frame");
    assert_eq!(r.samples.len(), 2 * cfg.n);
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&cfg.out).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut img = vec![0u8; reader.output_buffer_size()];
    let info = reader.next_frame(&mut img).unwrap();
    assert_eq!((info.width, info.height), (cfg.size, cfg.size));
    assert_eq!(info.color_type, png::ColorType::Grayscale);
    let px = &img[..(cfg.size * cfg.size) as usize];
    assert!(px.iter().all(|&v| v < 255), "no pixel saturated (weights are exact counts)");
    // Pixels: weight = value / INTENSITY samples, at the pixel's centre.
    let moments = |pts: &mut dyn Iterator<Item = (f64, f64, f64)>| {
        let (mut w, mut sx, mut sy, mut sxx, mut syy) = (0.0, 0.0, 0.0, 0.0, 0.0);
        for (x, y, wt) in pts {
            w += wt;
            sx += wt * x;
            sy += wt * y;
            sxx += wt * x * x;
            syy += wt * y * y;
        }
        let (mx, my) = (sx / w, sy / w);
        (w, mx, my, (sxx / w - mx * mx).sqrt(), (syy / w - my * my).sqrt())
    };
    let s = cfg.size as usize;
    let lit = moments(&mut px.iter().enumerate().filter(|(_, &v)| v > 0).map(|(i, &v)| {
        ((i % s) as f64 + 0.5, (i / s) as f64 + 0.5, v as f64 / viewer::INTENSITY as f64)
    }));
    let samples = moments(&mut r.samples.chunks(2).map(|t| r.view.to_pixel(t, cfg.size)).map(|(x, y)| (x, y, 1.0)));
    assert!((lit.0 - samples.0).abs() <= 0.001 * samples.0, "weights {} vs {} samples", lit.0, samples.0);
    assert!((lit.1 - samples.1).abs() <= 2.0 && (lit.2 - samples.2).abs() <= 2.0, "centroid {lit:?} vs {samples:?}");
    assert!((lit.3 / samples.3 - 1.0).abs() <= 0.05 && (lit.4 / samples.4 - 1.0).abs() <= 0.05, "spread {lit:?} vs {samples:?}");
    eprintln!(
        "viewer: trained in {:.1} s; frames {:?} ms; sampling {:.0} ms, rendering {:.0} ms",
        r.train_seconds, r.frame_ms, r.sample_ms, r.render_ms
    );
}
