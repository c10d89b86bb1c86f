//! GPU context: adapter selection or a borrowed `wgpu::Device`, the one place that
//! submits work, readback, and the plumbing that turns wgpu validation errors and
//! device loss into [`Error`]s.

use std::any::Any;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

mod choice;
mod texture;
pub use texture::{ParamsTexture, PARAMS_TEX_WIDTH};
pub use choice::{choose_matmul, AdapterTraits, KernelChoice, MatmulVariant};

/// Which adapter [`Gpu::with_options`] opens.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AdapterSelector {
    /// wgpu's default adapter for the power preference.
    #[default]
    Default,
    /// The adapter at this index of [`list_adapters`] (as `fmpe devices` numbers them).
    Index(usize),
    /// The first adapter whose name contains this text (case-insensitive).
    Name(String),
}

/// Power preference passed to wgpu when [`AdapterSelector::Default`] picks the adapter.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum PowerPreference {
    /// A discrete GPU where there is one.
    #[default]
    HighPerformance,
    /// An integrated GPU where there is one.
    LowPower,
    /// No preference.
    None,
}

/// How fmpe picks its adapter. `Default` is: the primary backends (Vulkan, Metal,
/// DX12), wgpu's high-performance adapter. The library reads no environment
/// variables; the binary and the tests build these options from `WGPU_BACKEND`,
/// `WGPU_ADAPTER_NAME`, `WGPU_ADAPTER_INDEX` and `WGPU_POWER_PREF` with
/// [`GpuOptions::from_vars`].
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GpuOptions {
    /// Which adapter.
    pub adapter: AdapterSelector,
    /// Backends to consider, as a comma-separated list of wgpu backend names
    /// ("vulkan", "metal", "dx12", "gl", ...); `None`: Vulkan, Metal and DX12.
    pub backends: Option<String>,
    /// Power preference of the default adapter.
    pub power_preference: PowerPreference,
    /// Kernel variants ([`KernelChoice::Auto`]: chosen from the adapter by
    /// [`choose_matmul`]).
    pub kernels: KernelChoice,
}

impl GpuOptions {
    /// Options from variables looked up by `var` (the caller decides where they come
    /// from, e.g. `|k| std::env::var(k).ok()`): `WGPU_BACKEND` (backend list),
    /// `WGPU_ADAPTER_NAME` (name substring), `WGPU_ADAPTER_INDEX` (index in
    /// [`list_adapters`]; the name wins when both are set) and `WGPU_POWER_PREF`
    /// ("high", "low", "none"), and `FMPE_KERNELS` ("auto", "portable", "cpu", "gpu";
    /// see [`KernelChoice`]). Unset or empty variables keep the defaults.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `kernels` for an unknown `FMPE_KERNELS` value.
    pub fn from_vars(var: impl Fn(&str) -> Option<String>) -> Result<GpuOptions> {
        let get = |k: &str| var(k).filter(|v| !v.trim().is_empty());
        let mut o = GpuOptions { backends: get("WGPU_BACKEND"), ..Default::default() };
        if let Some(i) = get("WGPU_ADAPTER_INDEX").and_then(|v| v.trim().parse().ok()) {
            o.adapter = AdapterSelector::Index(i);
        }
        if let Some(name) = get("WGPU_ADAPTER_NAME") {
            o.adapter = AdapterSelector::Name(name);
        }
        o.power_preference = match get("WGPU_POWER_PREF").map(|v| v.to_lowercase()).as_deref() {
            Some("low") => PowerPreference::LowPower,
            Some("none") => PowerPreference::None,
            _ => PowerPreference::HighPerformance,
        };
        if let Some(k) = get("FMPE_KERNELS") {
            o.kernels = KernelChoice::parse(&k)?;
        }
        Ok(o)
    }

    fn wgpu_backends(&self) -> wgpu::Backends {
        match &self.backends {
            Some(list) => wgpu::Backends::from_comma_list(list),
            None => wgpu::Backends::PRIMARY,
        }
    }
}

/// Description of one adapter, as shown by `fmpe devices`.
#[derive(Clone, Debug)]
pub struct AdapterSummary {
    /// Adapter name, e.g. "llvmpipe (LLVM 15.0.6, 256 bits)".
    pub name: String,
    /// Backend (Vulkan, Metal, Dx12, Gl).
    pub backend: String,
    /// Device type (DiscreteGpu, IntegratedGpu, Cpu, ...).
    pub device_type: String,
    /// Driver name and version information.
    pub driver: String,
}

impl From<&wgpu::AdapterInfo> for AdapterSummary {
    fn from(i: &wgpu::AdapterInfo) -> Self {
        AdapterSummary {
            name: i.name.clone(),
            backend: format!("{:?}", i.backend),
            device_type: format!("{:?}", i.device_type),
            driver: format!("{} {}", i.driver, i.driver_info).trim().to_string(),
        }
    }
}

impl std::fmt::Display for AdapterSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({}, {}, driver: {})", self.name, self.backend, self.device_type, self.driver)
    }
}

/// A GPU device and queue on which fmpe records its kernels.
///
/// Create one with [`Gpu::new`] (fmpe picks the adapter) or [`Gpu::from_device`]
/// (an application, e.g. a renderer, lends its own device and queue). All work is
/// submitted through [`Gpu::submit`], which counts submissions; GPU errors raised
/// while fmpe works are returned as [`Error::Gpu`] / [`Error::DeviceLost`].
pub struct Gpu {
    /// The device (shared handle; cloning a `wgpu::Device` is cheap).
    pub device: wgpu::Device,
    /// The queue.
    pub queue: wgpu::Queue,
    adapter: Option<AdapterSummary>,
    traits: AdapterTraits,
    matmul: MatmulVariant,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Vec<String>>>,
    submissions: AtomicU64,
    dispatches: AtomicU64,
    cache: Mutex<Vec<Arc<dyn Any + Send + Sync>>>,
    dummy: OnceLock<wgpu::Buffer>,
    dummy_texture: OnceLock<ParamsTexture>,
    staging: Mutex<Vec<wgpu::Buffer>>,
}

impl std::fmt::Debug for Gpu {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Gpu").field("adapter", &self.adapter).finish()
    }
}

fn instance(options: &GpuOptions) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = options.wgpu_backends();
    wgpu::Instance::new(desc)
}

/// Lists every adapter wgpu finds on the backends of `options`.
pub fn list_adapters(options: &GpuOptions) -> Vec<AdapterSummary> {
    let inst = instance(options);
    pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()))
        .iter()
        .map(|a| AdapterSummary::from(&a.get_info()))
        .collect()
}

impl Gpu {
    /// Opens the default adapter ([`GpuOptions::default`]) with a device of its own.
    ///
    /// # Errors
    /// As [`Gpu::with_options`].
    pub fn new() -> Result<Gpu> {
        Gpu::with_options(&GpuOptions::default())
    }

    /// Picks an adapter as `options` say and creates a device of its own.
    ///
    /// # Errors
    /// [`Error::NoAdapter`] when no adapter exists or none matches the selector (the
    /// message tells a Linux user without a GPU to install `mesa-vulkan-drivers`),
    /// [`Error::Gpu`] when the device cannot be created.
    pub fn with_options(options: &GpuOptions) -> Result<Gpu> {
        let adapter = pick_adapter(options)?;
        let info = adapter.get_info();
        let mut limits = wgpu::Limits::default();
        // Storage buffers and workgroup sizes: take what the adapter offers.
        let al = adapter.limits();
        limits.max_storage_buffer_binding_size = al.max_storage_buffer_binding_size;
        limits.max_buffer_size = al.max_buffer_size;
        limits.max_storage_buffers_per_shader_stage = al.max_storage_buffers_per_shader_stage;
        limits.max_compute_workgroups_per_dimension = al.max_compute_workgroups_per_dimension;
        // Subgroup operations where the adapter has them (the CPU kernels need them).
        let required_features = adapter.features() & wgpu::Features::SUBGROUP;
        let (device, queue) = pollster::block_on(adapter.request_device(&wgpu::DeviceDescriptor {
            label: Some("fmpe"),
            required_features,
            required_limits: limits,
            ..Default::default()
        }))
        .map_err(|e| Error::Gpu(format!("cannot create a device on {}: {e}", info.name)))?;
        let traits = AdapterTraits {
            device_type: Some(info.device_type),
            subgroups: device.features().contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: info.subgroup_min_size,
            subgroup_max_size: info.subgroup_max_size,
        };
        let matmul = choose_matmul(options.kernels, &traits)?;
        let mut gpu = Gpu::wrap(device, queue, Some(AdapterSummary::from(&info)));
        gpu.traits = traits;
        gpu.matmul = matmul;
        // We own this device: route errors nobody captured into our list instead of
        // wgpu's default handler (which panics), and remember device loss.
        let sink = gpu.uncaptured.clone();
        gpu.device.on_uncaptured_error(Arc::new(move |e: wgpu::Error| {
            sink.lock().unwrap().push(e.to_string());
        }));
        let lost = gpu.lost.clone();
        gpu.device.set_device_lost_callback(move |reason, msg| {
            *lost.lock().unwrap() = Some(format!("{reason:?}: {msg}"));
        });
        Ok(gpu)
    }

    /// Borrows an application's device and queue (e.g. a renderer's). fmpe leaves the
    /// application's error handler and device-lost callback alone; it captures errors
    /// of its own work with error scopes.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the device's limits are below what fmpe needs (4 storage
    /// buffers per shader stage, 256-invocation workgroups).
    ///
    /// fmpe does not know the adapter of a borrowed device, so [`KernelChoice::Auto`]
    /// picks the specialised tiled kernels, which need nothing beyond WebGPU's core;
    /// tell fmpe the adapter with [`Gpu::with_adapter_info`] (a CPU adapter with
    /// `wgpu::Features::SUBGROUP` enabled then gets the CPU kernels) or choose with
    /// [`Gpu::with_kernels`].
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue) -> Result<Gpu> {
        let l = device.limits();
        if l.max_storage_buffers_per_shader_stage < 4 || l.max_compute_invocations_per_workgroup < 256 {
            return Err(Error::invalid(
                "the device's limits are too small for fmpe (needs 4 storage buffers per stage and 256 invocations per workgroup)",
            ));
        }
        Ok(Gpu::wrap(device, queue, None))
    }

    /// Tells fmpe the adapter of a borrowed device (its type and subgroup sizes feed
    /// the kernel choice, re-made as [`KernelChoice::Auto`]).
    ///
    /// # Errors
    /// None today (kept fallible like [`Gpu::with_kernels`]).
    pub fn with_adapter_info(mut self, info: &wgpu::AdapterInfo) -> Result<Gpu> {
        self.traits.device_type = Some(info.device_type);
        self.traits.subgroup_min_size = info.subgroup_min_size;
        self.traits.subgroup_max_size = info.subgroup_max_size;
        self.adapter.get_or_insert_with(|| AdapterSummary::from(info));
        self.with_kernels(KernelChoice::Auto)
    }

    /// Picks the kernel variants (see [`choose_matmul`]). Programs recorded before the
    /// call keep the variant they were recorded with.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `kernels` when the device cannot run the choice.
    pub fn with_kernels(mut self, choice: KernelChoice) -> Result<Gpu> {
        self.matmul = choose_matmul(choice, &self.traits)?;
        Ok(self)
    }

    /// The matmul variant this device runs.
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.matmul
    }

    /// What the kernel selection rule saw of this device.
    pub fn adapter_traits(&self) -> AdapterTraits {
        self.traits
    }

    fn wrap(device: wgpu::Device, queue: wgpu::Queue, adapter: Option<AdapterSummary>) -> Gpu {
        let traits = AdapterTraits {
            device_type: None,
            subgroups: device.features().contains(wgpu::Features::SUBGROUP),
            subgroup_min_size: 0,
            subgroup_max_size: 0,
        };
        let matmul = choose_matmul(KernelChoice::Auto, &traits).unwrap_or(MatmulVariant::Portable);
        Gpu {
            device,
            queue,
            adapter,
            traits,
            matmul,
            lost: Arc::new(Mutex::new(None)),
            uncaptured: Arc::new(Mutex::new(Vec::new())),
            submissions: AtomicU64::new(0),
            dispatches: AtomicU64::new(0),
            cache: Mutex::new(Vec::new()),
            dummy: OnceLock::new(),
            dummy_texture: OnceLock::new(),
            staging: Mutex::new(Vec::new()),
        }
    }

    /// The adapter in use (None for a borrowed device).
    pub fn adapter(&self) -> Option<&AdapterSummary> {
        self.adapter.as_ref()
    }

    /// True for a software rasteriser on the CPU (e.g. Mesa lavapipe), where small
    /// working sets (cache-sized chunks) run faster.
    pub fn is_cpu(&self) -> bool {
        self.adapter.as_ref().is_some_and(|a| a.device_type == "Cpu")
    }

    /// Default number of ODE samples integrated together: 1,024 on a CPU adapter
    /// (cache-sized), 16,384 on a GPU.
    pub fn default_chunk(&self) -> usize {
        if self.is_cpu() {
            1024
        } else {
            16_384
        }
    }

    /// The device's limits.
    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// Largest storage-buffer binding, in f32 elements.
    pub fn max_binding_floats(&self) -> u64 {
        let l = self.limits();
        l.max_storage_buffer_binding_size.min(l.max_buffer_size) / 4
    }

    /// A per-device value of type `T` (e.g. compiled pipelines), made by `init` on
    /// first use and shared afterwards. `init` must not call `cached` itself.
    ///
    /// # Errors
    /// Whatever `init` returns (nothing is cached then).
    pub fn cached<T: Any + Send + Sync>(&self, init: impl FnOnce(&Gpu) -> Result<T>) -> Result<Arc<T>> {
        let mut cache = self.cache.lock().unwrap();
        if let Some(v) = cache.iter().find_map(|v| v.clone().downcast::<T>().ok()) {
            return Ok(v);
        }
        let v = Arc::new(init(self)?);
        cache.push(v.clone());
        Ok(v)
    }

    /// A 16-byte storage buffer bound where a kernel's binding is unused.
    pub(crate) fn dummy(&self) -> &wgpu::Buffer {
        self.dummy.get_or_init(|| self.storage("fmpe dummy", 4))
    }

    /// A 1 × 1 read-only storage texture bound where the matmul's parameter mirror is
    /// unused.
    pub(crate) fn dummy_texture(&self) -> &wgpu::TextureView {
        self.dummy_texture.get_or_init(|| ParamsTexture::new(self, 1)).view()
    }

    /// Runs `f`, returning any validation / out-of-memory error raised by wgpu calls
    /// made inside it as [`Error::Gpu`] (with `what` for context).
    pub fn scoped<T>(&self, what: &str, f: impl FnOnce() -> T) -> Result<T> {
        self.check_lost()?;
        let oom = self.device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = self.device.push_error_scope(wgpu::ErrorFilter::Validation);
        let out = f();
        let e1 = pollster::block_on(val.pop());
        let e2 = pollster::block_on(oom.pop());
        if let Some(e) = e1.or(e2) {
            return Err(Error::Gpu(format!("{what}: {e}")));
        }
        self.check_lost()?;
        Ok(out)
    }

    fn check_lost(&self) -> Result<()> {
        if let Some(m) = self.lost.lock().unwrap().clone() {
            return Err(Error::DeviceLost(m));
        }
        if let Some(m) = self.uncaptured.lock().unwrap().pop() {
            return Err(Error::Gpu(m));
        }
        Ok(())
    }

    /// Creates a zero-initialised storage buffer of `bytes` bytes (rounded up to a
    /// multiple of 16, at least 16), usable as copy source and destination.
    pub fn storage(&self, label: &str, bytes: u64) -> wgpu::Buffer {
        self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            // A multiple of 16 bytes: kernels may view a buffer as `array<vec4<f32>>`.
            size: bytes.max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    /// Creates a storage buffer holding `data`.
    pub fn storage_from(&self, label: &str, data: &[f32]) -> wgpu::Buffer {
        let buf = self.storage(label, (data.len() * 4) as u64);
        if !data.is_empty() {
            self.queue.write_buffer(&buf, 0, bytemuck::cast_slice(data));
        }
        buf
    }

    /// Creates a uniform buffer holding `bytes`.
    pub fn uniform_from(&self, label: &str, bytes: &[u8]) -> wgpu::Buffer {
        let buf = self.device.create_buffer(&wgpu::BufferDescriptor {
            label: Some(label),
            size: (bytes.len() as u64).max(16).next_multiple_of(16),
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        });
        self.queue.write_buffer(&buf, 0, bytes);
        buf
    }

    /// Starts a command encoder.
    pub fn encoder(&self) -> wgpu::CommandEncoder {
        self.device.create_command_encoder(&wgpu::CommandEncoderDescriptor { label: Some("fmpe") })
    }

    /// Submits one command buffer: the only place in fmpe that calls `Queue::submit`.
    ///
    /// # Errors
    /// [`Error::Gpu`] for validation errors raised while finishing or submitting,
    /// [`Error::DeviceLost`] if the device is gone.
    pub fn submit(&self, encoder: wgpu::CommandEncoder) -> Result<()> {
        self.scoped("submitting GPU work", || {
            self.queue.submit(Some(encoder.finish()));
        })?;
        self.submissions.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Number of `Queue::submit` calls fmpe made on this context.
    pub fn submission_count(&self) -> u64 {
        self.submissions.load(Ordering::Relaxed)
    }

    /// Number of compute dispatches fmpe recorded on this context.
    pub fn dispatch_count(&self) -> u64 {
        self.dispatches.load(Ordering::Relaxed)
    }

    pub(crate) fn count_dispatches(&self, n: u64) {
        self.dispatches.fetch_add(n, Ordering::Relaxed);
    }

    /// Waits until the GPU is idle.
    ///
    /// # Errors
    /// [`Error::DeviceLost`] / [`Error::Gpu`] if waiting fails.
    pub fn wait(&self) -> Result<()> {
        self.device
            .poll(wgpu::PollType::wait_indefinitely())
            .map_err(|e| Error::DeviceLost(format!("while waiting for the GPU: {e}")))?;
        self.check_lost()
    }

    /// Copies `len` f32 from `src` (starting at element `offset`) into a new staging
    /// buffer, submits, waits and returns the values. One submission.
    ///
    /// # Errors
    /// As [`Gpu::submit`] and [`Gpu::wait`].
    pub fn read_f32(&self, src: &wgpu::Buffer, offset: u64, len: usize) -> Result<Vec<f32>> {
        let mut enc = self.encoder();
        let staging = self.copy_to_staging(&mut enc, src, offset, len);
        self.submit(enc)?;
        self.map_staging(staging, len)
    }

    /// Records a copy of `len` f32 at element `offset` of `src` into a staging buffer
    /// (reused from earlier readbacks when one is large enough; [`Gpu::map_staging`]
    /// returns it to the pool).
    pub fn copy_to_staging(
        &self,
        enc: &mut wgpu::CommandEncoder,
        src: &wgpu::Buffer,
        offset: u64,
        len: usize,
    ) -> wgpu::Buffer {
        let bytes = (len as u64 * 4).max(4);
        let reused = {
            let mut pool = self.staging.lock().unwrap();
            pool.iter().position(|b| b.size() >= bytes && b.size() <= bytes.max(4096) * 4).map(|i| pool.swap_remove(i))
        };
        let staging = reused.unwrap_or_else(|| {
            self.device.create_buffer(&wgpu::BufferDescriptor {
                label: Some("fmpe readback"),
                size: bytes.next_multiple_of(256),
                usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
                mapped_at_creation: false,
            })
        });
        if len > 0 {
            enc.copy_buffer_to_buffer(src, offset * 4, &staging, 0, len as u64 * 4);
        }
        staging
    }

    /// Maps a staging buffer filled by an already submitted copy and returns `len` f32.
    /// The buffer is taken by value: it goes back to the pool that
    /// [`Gpu::copy_to_staging`] draws from, so no caller keeps a handle to a buffer the
    /// pool may hand out again.
    ///
    /// # Errors
    /// [`Error::Gpu`] if mapping fails, [`Error::DeviceLost`] if the device is gone.
    pub fn map_staging(&self, staging: wgpu::Buffer, len: usize) -> Result<Vec<f32>> {
        if len == 0 {
            return Ok(Vec::new());
        }
        let (tx, rx) = std::sync::mpsc::channel();
        staging.map_async(wgpu::MapMode::Read, ..(len as u64 * 4), move |r| {
            let _ = tx.send(r);
        });
        self.wait()?;
        rx.recv()
            .map_err(|_| Error::Gpu("readback was cancelled".into()))?
            .map_err(|e| Error::Gpu(format!("cannot map the readback buffer: {e}")))?;
        let out = {
            let view = staging
                .get_mapped_range(..(len as u64 * 4))
                .map_err(|e| Error::Gpu(format!("cannot read the readback buffer: {e}")))?;
            bytemuck::cast_slice::<u8, f32>(&view)[..len].to_vec()
        };
        staging.unmap();
        let mut pool = self.staging.lock().unwrap();
        if pool.len() < 8 {
            pool.push(staging);
        }
        Ok(out)
    }
}

fn pick_adapter(options: &GpuOptions) -> Result<wgpu::Adapter> {
    let inst = instance(options);
    let listed = || pollster::block_on(inst.enumerate_adapters(wgpu::Backends::all()));
    let names = |all: &[wgpu::Adapter]| {
        let names: Vec<String> = all.iter().map(|a| a.get_info().name).collect();
        if names.is_empty() { "none".to_string() } else { names.join(", ") }
    };
    match &options.adapter {
        AdapterSelector::Name(want) => {
            let want_lc = want.to_lowercase();
            let all = listed();
            let found = names(&all);
            all.into_iter().find(|a| a.get_info().name.to_lowercase().contains(&want_lc)).ok_or_else(|| {
                Error::NoAdapter { detail: format!(" whose name contains '{want}' (adapters found: {found})") }
            })
        }
        AdapterSelector::Index(i) => {
            let all = listed();
            let found = names(&all);
            all.into_iter()
                .nth(*i)
                .ok_or_else(|| Error::NoAdapter { detail: format!(" with index {i} (adapters found: {found})") })
        }
        AdapterSelector::Default => {
            let power_preference = match options.power_preference {
                PowerPreference::HighPerformance => wgpu::PowerPreference::HighPerformance,
                PowerPreference::LowPower => wgpu::PowerPreference::LowPower,
                PowerPreference::None => wgpu::PowerPreference::None,
            };
            pollster::block_on(inst.request_adapter(&wgpu::RequestAdapterOptions {
                power_preference,
                ..Default::default()
            }))
            .map_err(|e| Error::NoAdapter {
                detail: match &options.backends {
                    Some(b) => format!(" (backends {b}: {e})"),
                    None => format!(" ({e})"),
                },
            })
        }
    }
}

// A `Gpu` is shared between threads (e.g. held in an `Arc` by a posterior).
const _: fn() = || {
    fn send_sync<T: Send + Sync + 'static>() {}
    send_sync::<Gpu>();
};

/// Splits `groups` workgroups over a 2-D grid that respects the per-dimension limit.
pub fn grid(groups: u32, max_per_dim: u32) -> (u32, u32) {
    if groups <= max_per_dim {
        (groups.max(1), 1)
    } else {
        let y = groups.div_ceil(max_per_dim);
        (groups.div_ceil(y), y)
    }
}
