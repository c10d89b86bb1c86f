//! Pipelines (compiled once per device and cached on the [`Gpu`]), recorded programs
//! (static lists of dispatches replayed into a compute pass), the per-step state and
//! the workspace allocator.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use bytemuck::{Pod, Zeroable};

use super::registry::{param_block, specialized_source, KernelSpec, Layout, ParamBlock};
use crate::error::{Error, Result};
use crate::gpu::{grid, Gpu, MatmulVariant};

/// Override constants of one specialised pipeline: `(name, value)` pairs, merged over
/// the kernel spec's own [`KernelSpec::constants`].
pub type Specialization = Vec<(&'static str, f64)>;

/// Size of one per-dispatch parameter slot (bytes) seen by the shader.
pub const SLOT_BYTES: u64 = 256;

/// Compiled pipelines and bind-group layouts of one device (cached on the [`Gpu`]).
///
/// Every pipeline is compiled when a program first records its kernel, and kept:
/// kernels of the default variant (`variant == ""`) once, from their module's full
/// source; kernels of a named variant once per [`Specialization`], each from its
/// module's source with only the unrolled copies its constants leave live
/// ([`specialized_source`]). A program's new pipelines compile on parallel threads
/// ([`Pipelines::prepare`]), so a command pays only for the kernels it runs (on
/// lavapipe, compiling all ~27 default kernels up front took longer than most short
/// commands' GPU work). Modules that need a feature the device
/// lacks (subgroup operations) are never compiled; no program records their kernels
/// there.
pub(crate) struct Pipelines {
    params_texture: bool,
    layouts: [wgpu::BindGroupLayout; 4],
    layout_objects: [wgpu::PipelineLayout; 4],
    /// Shader modules by their expanded source (a specialisation that drops unrolled
    /// copies gets a module of its own).
    modules: Mutex<HashMap<String, wgpu::ShaderModule>>,
    /// Compiled pipelines by [`Pipelines::key`].
    compiled: Mutex<HashMap<String, wgpu::ComputePipeline>>,
}

fn entry(binding: u32, ty: wgpu::BindingType) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry { binding, visibility: wgpu::ShaderStages::COMPUTE, ty, count: None }
}
fn storage(read_only: bool) -> wgpu::BindingType {
    wgpu::BindingType::Buffer {
        ty: wgpu::BufferBindingType::Storage { read_only },
        has_dynamic_offset: false,
        min_binding_size: None,
    }
}
fn uniform(dynamic: bool) -> wgpu::BindingType {
    wgpu::BindingType::Buffer {
        ty: wgpu::BufferBindingType::Uniform,
        has_dynamic_offset: dynamic,
        min_binding_size: None,
    }
}

impl Pipelines {
    /// `params_texture`: the matmul layout has binding 4, the parameter mirror read by
    /// the CPU variant (only devices that record that variant).
    fn new(device: &wgpu::Device, params_texture: bool) -> Pipelines {
        let mk = |label: &str, entries: &[wgpu::BindGroupLayoutEntry]| {
            device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor { label: Some(label), entries })
        };
        let mut matmul_entries = vec![entry(0, uniform(true)), entry(1, storage(false)), entry(2, storage(true)), entry(3, storage(false))];
        if params_texture {
            matmul_entries.push(entry(
                4,
                wgpu::BindingType::StorageTexture {
                    access: wgpu::StorageTextureAccess::ReadOnly,
                    format: wgpu::TextureFormat::Rgba32Float,
                    view_dimension: wgpu::TextureViewDimension::D2,
                },
            ));
        }
        let layouts = [
            mk("fmpe matmul", &matmul_entries),
            mk(
                "fmpe misc",
                &[entry(0, uniform(true)), entry(1, storage(false)), entry(2, storage(false)), entry(3, uniform(false))],
            ),
            mk(
                "fmpe adam",
                &[
                    entry(0, uniform(true)),
                    entry(1, storage(false)),
                    entry(2, storage(true)),
                    entry(3, storage(false)),
                    entry(4, storage(false)),
                    entry(5, uniform(false)),
                ],
            ),
            mk(
                "fmpe lanes",
                &[entry(0, uniform(true)), entry(1, storage(false)), entry(2, storage(true)), entry(3, storage(false)), entry(4, uniform(false))],
            ),
        ];
        let layout_objects = [0usize, 1, 2, 3].map(|i| {
            device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
                label: Some("fmpe"),
                bind_group_layouts: &[Some(&layouts[i])],
                immediate_size: 0,
            })
        });
        Pipelines {
            params_texture,
            layouts,
            layout_objects,
            modules: Mutex::new(HashMap::new()),
            compiled: Mutex::new(HashMap::new()),
        }
    }

    /// The module `name` expanded for `spec` (every unrolled copy without one).
    fn module(&self, device: &wgpu::Device, name: &'static str, spec: Option<&Specialization>) -> wgpu::ShaderModule {
        let code = specialized_source(name, spec.map(|s| s.as_slice())).expect("registered module and constants");
        if let Some(m) = self.modules.lock().unwrap().get(&code) {
            return m.clone();
        }
        let m = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some(name),
            source: wgpu::ShaderSource::Wgsl(code.as_str().into()),
        });
        self.modules.lock().unwrap().entry(code).or_insert(m).clone()
    }

    fn compile(
        &self,
        device: &wgpu::Device,
        k: &KernelSpec,
        constants: &[(&str, f64)],
        spec: Option<&Specialization>,
    ) -> wgpu::ComputePipeline {
        device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(k.name),
            layout: Some(&self.layout_objects[k.layout as usize]),
            module: &self.module(device, k.module, spec),
            entry_point: Some(k.entry_point),
            compilation_options: wgpu::PipelineCompilationOptions { constants, ..Default::default() },
            cache: None,
        })
    }

    /// The cache key of `k` with `spec` (`None`: the kernel's own constants, full source).
    fn key(k: &KernelSpec, spec: Option<&Specialization>) -> String {
        let mut key = k.name.to_string();
        match spec {
            None => key.push_str(" *"),
            Some(spec) => {
                for (n, v) in spec {
                    key.push_str(&format!(" {n}={v}"));
                }
            }
        }
        key
    }

    /// The pipeline of `k`, compiled at first use: with `spec`, specialised over the
    /// kernel's own constants; without, from the module's full source with the kernel's
    /// constants.
    ///
    /// # Errors
    /// [`Error::Gpu`] when wgpu rejects the module or the pipeline (nothing is cached
    /// then).
    fn get(&self, device: &wgpu::Device, k: &'static KernelSpec, spec: Option<&Specialization>) -> Result<wgpu::ComputePipeline> {
        let key = Self::key(k, spec);
        if let Some(p) = self.compiled.lock().unwrap().get(&key) {
            return Ok(p.clone());
        }
        let mut constants: Vec<(&str, f64)> = k.constants.to_vec();
        if let Some(spec) = spec {
            constants.extend(spec.iter().copied());
        }
        // Error scopes belong to the thread that pushes them (wgpu 30), and `prepare`
        // compiles on worker threads: each compilation captures its own errors.
        let oom = device.push_error_scope(wgpu::ErrorFilter::OutOfMemory);
        let val = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let pipe = self.compile(device, k, &constants, spec.map(|_| &constants));
        let e1 = pollster::block_on(val.pop());
        let e2 = pollster::block_on(oom.pop());
        if let Some(e) = e1.or(e2) {
            return Err(Error::Gpu(format!("compiling the pipeline {key}: {e}")));
        }
        Ok(self.compiled.lock().unwrap().entry(key).or_insert(pipe).clone())
    }

    /// Compiles the pipelines of `wanted` not compiled yet, on up to as many threads as
    /// the host has cores (drivers compile a pipeline when it is created; lavapipe
    /// takes 0.1–1 s per matmul pipeline, and a program needs up to a dozen).
    ///
    /// # Errors
    /// The first [`Error::Gpu`] of [`Pipelines::get`] (every other pipeline is still
    /// compiled and cached).
    fn prepare(&self, device: &wgpu::Device, wanted: &[(&'static KernelSpec, Option<Specialization>)]) -> Result<()> {
        let missing: Vec<&(&'static KernelSpec, Option<Specialization>)> = {
            let done = self.compiled.lock().unwrap();
            wanted.iter().filter(|(k, s)| !done.contains_key(&Self::key(k, s.as_ref()))).collect()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(missing.len());
        if threads < 2 {
            return Ok(());
        }
        let next = AtomicUsize::new(0);
        let first_error: Mutex<Option<Error>> = Mutex::new(None);
        std::thread::scope(|scope| {
            for _ in 0..threads {
                scope.spawn(|| {
                    while let Some((k, s)) = missing.get(next.fetch_add(1, Ordering::Relaxed)) {
                        if let Err(e) = self.get(device, k, s.as_ref()) {
                            first_error.lock().unwrap().get_or_insert(e);
                        }
                    }
                });
            }
        });
        match first_error.into_inner().unwrap() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The pipeline cache of `gpu`'s device (its layouts; pipelines compile on first use).
    fn of(gpu: &Gpu) -> Result<Arc<Pipelines>> {
        gpu.cached(|g| {
            let tex = g.matmul_variant() == MatmulVariant::Cpu;
            g.scoped("creating the pipeline layouts", || Pipelines::new(&g.device, tex))
        })
    }
}

/// The per-step state (`struct Step` in `shaders/step.wgsl`), written once per submission.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct StepState {
    /// Global optimiser step (1-based for Adam's bias correction; RNG counter).
    pub step: u32,
    /// Epoch (permutation key).
    pub epoch: u32,
    /// Batch index within the epoch.
    pub step_in_epoch: u32,
    /// Padding.
    pub pad0: u32,
    /// Learning rate.
    pub lr: f32,
    /// 1 − β1^step.
    pub bias_corr1: f32,
    /// 1 − β2^step.
    pub bias_corr2: f32,
    /// Padding.
    pub pad1: f32,
}
param_block!(StepState as "Step" { step, epoch, step_in_epoch, pad0, lr, bias_corr1, bias_corr2, pad1 });

#[derive(Clone, Debug)]
struct Dispatch {
    kernel: &'static KernelSpec,
    /// Override constants of a specialised kernel (None: the kernel's own pipeline).
    spec: Option<Arc<Specialization>>,
    slot: u32,
    groups: (u32, u32, u32),
}

/// Collects dispatches and their parameter blocks; [`ProgramBuilder::build`] uploads
/// the parameters once and binds the buffers. Kernels are recorded with the typed
/// functions of their family module (e.g. [`super::stats::zscore`]).
#[derive(Default)]
pub struct ProgramBuilder {
    slots: Vec<[u8; SLOT_BYTES as usize]>,
    ops: Vec<Dispatch>,
    max_groups: u32,
    matmul: Option<MatmulVariant>,
}

/// Buffers bound by a program. Unused entries may be `None`.
#[derive(Clone, Copy, Default)]
pub struct Bindings<'a> {
    /// The workspace.
    pub acts: Option<&'a wgpu::Buffer>,
    /// Network parameters.
    pub params: Option<&'a wgpu::Buffer>,
    /// Gradients.
    pub grads: Option<&'a wgpu::Buffer>,
    /// Dataset / auxiliary buffer of the misc kernels.
    pub data: Option<&'a wgpu::Buffer>,
    /// Step-state uniform.
    pub step: Option<&'a wgpu::Buffer>,
    /// Adam moments (m, v).
    pub moments: Option<(&'a wgpu::Buffer, &'a wgpu::Buffer)>,
    /// The texture mirror of `params` ([`crate::gpu::ParamsTexture`]): a program built
    /// with it reads the parameters' aligned vec4s and biases in CPU-variant matmuls
    /// from the texture, so the caller records [`crate::gpu::ParamsTexture::sync`]
    /// after every write to `params` and before the next pass of the program. Ignored
    /// on devices without the CPU variant.
    pub params_tex: Option<&'a wgpu::TextureView>,
}

/// A recorded, replayable list of dispatches with their uploaded parameters.
pub struct Program {
    _uniforms: wgpu::Buffer,
    groups: [Option<wgpu::BindGroup>; 4],
    ops: Vec<Dispatch>,
    /// The pipeline of each op, resolved when the program was built.
    pipes: Vec<wgpu::ComputePipeline>,
    /// Index into `pipes` of each op (consecutive equal indices skip `set_pipeline`).
    pipe_of_op: Vec<usize>,
    stride: u32,
}

impl ProgramBuilder {
    /// An empty program for `gpu` (whose per-dimension workgroup limit it respects).
    pub fn new(gpu: &Gpu) -> ProgramBuilder {
        ProgramBuilder {
            slots: Vec::new(),
            ops: Vec::new(),
            max_groups: gpu.limits().max_compute_workgroups_per_dimension,
            matmul: Some(gpu.matmul_variant()),
        }
    }

    /// The matmul variant products are recorded in (the device's, see
    /// [`Gpu::matmul_variant`]; [`MatmulVariant::Portable`] for a default builder).
    pub fn matmul_variant(&self) -> MatmulVariant {
        self.matmul.unwrap_or(MatmulVariant::Portable)
    }

    /// Number of dispatches recorded so far.
    pub fn len(&self) -> usize {
        self.ops.len()
    }

    /// True when nothing was recorded.
    pub fn is_empty(&self) -> bool {
        self.ops.is_empty()
    }

    /// The per-dimension workgroup limit of the device.
    pub(crate) fn max_groups(&self) -> u32 {
        self.max_groups
    }

    /// Records `kernel` with `params` and an explicit workgroup count. The family
    /// modules' typed recorders are the only callers, so each kernel gets its own block.
    pub(crate) fn push_groups<T: ParamBlock>(&mut self, kernel: &'static KernelSpec, params: &T, groups: (u32, u32, u32)) {
        debug_assert_eq!(T::WGSL_NAME, (kernel.params)().wgsl_name, "parameter block of {}", kernel.name);
        let bytes = bytemuck::bytes_of(params);
        assert!(bytes.len() <= SLOT_BYTES as usize, "parameter block too large");
        let mut slot = [0u8; SLOT_BYTES as usize];
        slot[..bytes.len()].copy_from_slice(bytes);
        self.slots.push(slot);
        self.ops.push(Dispatch { kernel, spec: None, slot: (self.slots.len() - 1) as u32, groups });
    }

    /// Records `kernel` (a kernel of a named variant) specialised with `spec`.
    pub(crate) fn push_specialized<T: ParamBlock>(
        &mut self,
        kernel: &'static KernelSpec,
        params: &T,
        groups: (u32, u32, u32),
        spec: Specialization,
    ) {
        self.push_groups(kernel, params, groups);
        self.ops.last_mut().expect("just pushed").spec = Some(Arc::new(spec));
    }

    /// Records `kernel` over `threads` independent work items (256 per workgroup).
    pub(crate) fn push_1d<T: ParamBlock>(&mut self, kernel: &'static KernelSpec, params: &T, threads: usize) {
        let (x, y) = grid((threads.max(1) as u32).div_ceil(256), self.max_groups);
        self.push_groups(kernel, params, (x, y, 1));
    }

    /// Records `kernel` over `threads` work items (256 per workgroup) for each of `count`
    /// batch members (workgroup z = member index).
    ///
    /// # Panics
    /// If `count` exceeds the device's workgroups per dimension.
    pub(crate) fn push_1d_batched<T: ParamBlock>(&mut self, kernel: &'static KernelSpec, params: &T, threads: usize, count: usize) {
        let (x, y) = grid((threads.max(1) as u32).div_ceil(256), self.max_groups);
        let z = count.max(1) as u32;
        assert!(z <= self.max_groups, "a batch of {count} exceeds the dispatch limit of {}", kernel.name);
        self.push_groups(kernel, params, (x, y, z));
    }

    /// Uploads the parameter blocks and binds `b`.
    ///
    /// # Errors
    /// [`crate::Error::Gpu`] if wgpu rejects a bind group (e.g. a buffer exceeds a
    /// binding limit) or the pipelines cannot be compiled.
    pub fn build(self, gpu: &Gpu, b: Bindings<'_>) -> Result<Program> {
        let pipes = Pipelines::of(gpu)?;
        let align = gpu.limits().min_uniform_buffer_offset_alignment.max(SLOT_BYTES as u32);
        let mut bytes = vec![0u8; (self.slots.len().max(1) * align as usize).max(SLOT_BYTES as usize)];
        for (i, s) in self.slots.iter().enumerate() {
            bytes[i * align as usize..i * align as usize + SLOT_BYTES as usize].copy_from_slice(s);
        }
        let tex = b.params_tex.is_some() && pipes.params_texture;
        let (pipe_list, pipe_of_op) = gpu.scoped("creating specialised pipelines", || self.resolve(gpu, &pipes, tex))??;
        gpu.scoped("binding a program", || {
            let uniforms = gpu.uniform_from("fmpe program parameters", &bytes);
            let groups = self.bind_groups(gpu, &pipes, &uniforms, b);
            Program { _uniforms: uniforms, groups, ops: self.ops, pipes: pipe_list, pipe_of_op, stride: align }
        })
    }

    /// The distinct pipelines of the recorded ops and each op's index among them. With
    /// `params_tex`, CPU-variant matmuls are specialised to read the parameter mirror.
    fn resolve(&self, gpu: &Gpu, pipes: &Pipelines, params_tex: bool) -> Result<(Vec<wgpu::ComputePipeline>, Vec<usize>)> {
        let spec_of = |op: &Dispatch| {
            op.spec.as_deref().map(|s| {
                let mut s = s.clone();
                if params_tex && op.kernel.module == "matmul_cpu" {
                    s.push(("PARAMS_TEX", 1.0));
                }
                s
            })
        };
        let mut wanted: Vec<(&'static KernelSpec, Option<Specialization>)> = Vec::new();
        for op in &self.ops {
            let s = spec_of(op);
            if !wanted.iter().any(|(k, w)| k.name == op.kernel.name && *w == s) {
                wanted.push((op.kernel, s));
            }
        }
        pipes.prepare(&gpu.device, &wanted)?;
        let mut list: Vec<wgpu::ComputePipeline> = Vec::new();
        let mut keys: Vec<(&'static str, Option<Specialization>)> = Vec::new();
        let mut of_op = Vec::with_capacity(self.ops.len());
        for op in &self.ops {
            let key = (op.kernel.name, spec_of(op));
            let idx = match keys.iter().position(|k| *k == key) {
                Some(i) => i,
                None => {
                    list.push(pipes.get(&gpu.device, op.kernel, key.1.as_ref())?);
                    keys.push(key);
                    keys.len() - 1
                }
            };
            of_op.push(idx);
        }
        Ok((list, of_op))
    }

    fn bind_groups(
        &self,
        gpu: &Gpu,
        pipes: &Pipelines,
        uniforms: &wgpu::Buffer,
        b: Bindings<'_>,
    ) -> [Option<wgpu::BindGroup>; 4] {
        let dummy = gpu.dummy();
        let step_dummy;
        let step = match b.step {
            Some(s) => s,
            None => {
                step_dummy = gpu.uniform_from("fmpe step (unused)", &[0u8; 32]);
                &step_dummy
            }
        };
        let used = |l: Layout| self.ops.iter().any(|o| o.kernel.layout == l);
        let slot = wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: uniforms,
            offset: 0,
            size: std::num::NonZeroU64::new(SLOT_BYTES),
        });
        let whole = wgpu::Buffer::as_entire_binding;
        let mk = |l: Layout, res: Vec<wgpu::BindingResource>| {
            let entries: Vec<wgpu::BindGroupEntry> = res
                .into_iter()
                .enumerate()
                .map(|(i, r)| wgpu::BindGroupEntry { binding: i as u32, resource: r })
                .collect();
            gpu.device.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some("fmpe program"),
                layout: &pipes.layouts[l as usize],
                entries: &entries,
            })
        };
        let acts = b.acts.unwrap_or(dummy);
        let g_matmul = used(Layout::Matmul).then(|| {
            let mut res = vec![slot.clone(), whole(acts), whole(b.params.unwrap_or(dummy)), whole(b.grads.unwrap_or(dummy))];
            if pipes.params_texture {
                res.push(wgpu::BindingResource::TextureView(b.params_tex.unwrap_or_else(|| gpu.dummy_texture())));
            }
            mk(Layout::Matmul, res)
        });
        let g_misc = used(Layout::Misc)
            .then(|| mk(Layout::Misc, vec![slot.clone(), whole(acts), whole(b.data.unwrap_or(dummy)), whole(step)]));
        let g_adam = used(Layout::Adam).then(|| {
            let (m, v) = b.moments.expect("Adam needs moment buffers");
            let res = vec![
                slot.clone(),
                whole(b.params.expect("Adam needs params")),
                whole(b.grads.expect("Adam needs grads")),
                whole(m),
                whole(v),
                whole(step),
            ];
            mk(Layout::Adam, res)
        });
        let g_lanes = used(Layout::Lanes).then(|| {
            mk(Layout::Lanes, vec![slot.clone(), whole(acts), whole(b.params.unwrap_or(dummy)), whole(b.grads.unwrap_or(dummy)), whole(step)])
        });
        [g_matmul, g_misc, g_adam, g_lanes]
    }
}

impl Program {
    /// Number of dispatches in the program.
    pub fn dispatches(&self) -> usize {
        self.ops.len()
    }

    /// Records the program into `pass`.
    ///
    /// # Errors
    /// None today (kept fallible for callers that record into their own passes).
    pub fn record(&self, gpu: &Gpu, pass: &mut wgpu::ComputePass<'_>) -> Result<()> {
        let mut current = usize::MAX;
        for (op, &pi) in self.ops.iter().zip(&self.pipe_of_op) {
            if current != pi {
                pass.set_pipeline(&self.pipes[pi]);
                current = pi;
            }
            let bg = self.groups[op.kernel.layout as usize].as_ref().expect("bind group built");
            pass.set_bind_group(0, bg, &[op.slot * self.stride]);
            pass.dispatch_workgroups(op.groups.0, op.groups.1, op.groups.2);
        }
        gpu.count_dispatches(self.ops.len() as u64);
        Ok(())
    }

    /// Records the program in a fresh encoder and submits it (one submission).
    ///
    /// # Errors
    /// As [`Gpu::submit`].
    pub fn run(&self, gpu: &Gpu) -> Result<()> {
        let mut enc = gpu.encoder();
        {
            let mut pass = enc.begin_compute_pass(&wgpu::ComputePassDescriptor::default());
            self.record(gpu, &mut pass)?;
        }
        gpu.submit(enc)
    }
}

/// Bump allocator of f32 offsets inside a workspace buffer.
#[derive(Clone, Debug, Default)]
pub struct Arena {
    next: usize,
}

impl Arena {
    /// Reserves `len` floats (aligned to 64 floats) and returns the offset.
    pub fn alloc(&mut self, len: usize) -> usize {
        let off = self.next;
        self.next += len.max(1).next_multiple_of(64);
        off
    }
    /// Floats reserved so far.
    pub fn len(&self) -> usize {
        self.next
    }
    /// True when nothing is reserved.
    pub fn is_empty(&self) -> bool {
        self.next == 0
    }
}
