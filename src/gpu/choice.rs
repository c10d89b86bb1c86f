//! Which kernel variants a device runs: the user's [`KernelChoice`], what the adapter
//! offers ([`AdapterTraits`]) and the rule that turns both into a [`MatmulVariant`]
//! ([`choose_matmul`]).
//!
//! What is fast on a discrete GPU (workgroup tiles staged through shared memory) is the
//! slowest shape on a CPU adapter such as Mesa lavapipe, where every storage or
//! workgroup load is a scalar loop over the SIMD lanes and a barrier is a coroutine
//! switch; there a barrier-free kernel that loads each weight in one lane and hands it
//! out with `subgroupBroadcast` is 10–30× faster (figures in BENCHMARKS.md).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// The kernel variants a user asks for (the binary and the tests map
/// `FMPE_KERNELS=portable|cpu|gpu` onto it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KernelChoice {
    /// Chosen by [`choose_matmul`] from the adapter's type, features and subgroup size.
    #[default]
    Auto,
    /// The generic kernels (runtime strides, buffers and epilogue flags): run on every
    /// device, slowest; the reference the other variants are checked against.
    Portable,
    /// Barrier-free subgroup kernels for CPU adapters whose subgroups are 8 SIMD lanes.
    /// Needs `wgpu::Features::SUBGROUP` with subgroup size 8.
    Cpu,
    /// Workgroup-tiled kernels specialised per operand layout and epilogue when their
    /// pipeline is created (for GPUs; needs nothing beyond WebGPU's core).
    Gpu,
}

impl KernelChoice {
    /// Parses `auto`, `portable`, `cpu` or `gpu` (case-insensitive).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `kernels` for anything else.
    pub fn parse(s: &str) -> Result<KernelChoice> {
        match s.trim().to_lowercase().as_str() {
            "auto" | "" => Ok(KernelChoice::Auto),
            "portable" => Ok(KernelChoice::Portable),
            "cpu" => Ok(KernelChoice::Cpu),
            "gpu" => Ok(KernelChoice::Gpu),
            other => Err(Error::option("kernels", format!("unknown kernel choice '{other}' (expected auto, portable, cpu or gpu)"))),
        }
    }
}

/// The matmul variant a device runs (the resolved [`KernelChoice`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MatmulVariant {
    /// `shaders/matmul.wgsl` with runtime flags: 64 × 64 workgroup tiles.
    Portable,
    /// `shaders/matmul_cpu.wgsl`: one subgroup of 8 lanes per workgroup, lanes own rows,
    /// weights shared with `subgroupBroadcast`, specialised per layout and epilogue.
    Cpu,
    /// `shaders/matmul.wgsl` specialised per epilogue and operand buffers (pipeline
    /// override constants): 64 × 64 workgroup tiles.
    Gpu,
}

impl MatmulVariant {
    /// Lower-case name (`portable`, `cpu`, `gpu`).
    pub fn name(self) -> &'static str {
        match self {
            MatmulVariant::Portable => "portable",
            MatmulVariant::Cpu => "cpu",
            MatmulVariant::Gpu => "gpu",
        }
    }
}

/// What the selection rule looks at: the adapter's type (None for a borrowed device
/// whose adapter fmpe was not told about), whether the device has subgroup operations
/// enabled, and the adapter's subgroup size range.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AdapterTraits {
    /// Device type, when known.
    pub device_type: Option<wgpu::DeviceType>,
    /// `wgpu::Features::SUBGROUP` is enabled on the device.
    pub subgroups: bool,
    /// Smallest subgroup size the adapter may use.
    pub subgroup_min_size: u32,
    /// Largest subgroup size the adapter may use.
    pub subgroup_max_size: u32,
}

impl AdapterTraits {
    /// True when the CPU variant can run: subgroups enabled, always of size 8.
    pub fn supports_cpu_variant(&self) -> bool {
        self.subgroups && self.subgroup_min_size == 8 && self.subgroup_max_size == 8
    }
}

/// The selection rule.
///
/// `Auto`: a CPU adapter (`DeviceType::Cpu`) that supports the CPU variant (see
/// [`AdapterTraits::supports_cpu_variant`]) gets [`MatmulVariant::Cpu`]; a CPU adapter
/// without it, and every GPU, gets the specialised tiled [`MatmulVariant::Gpu`]; a
/// device of unknown type (borrowed without its adapter) gets [`MatmulVariant::Gpu`]
/// too, which needs nothing beyond WebGPU's core. An explicit choice is honoured.
///
/// # Errors
/// [`Error::InvalidOption`] named `kernels` when `Cpu` is asked for on a device that
/// cannot run it.
pub fn choose_matmul(choice: KernelChoice, t: &AdapterTraits) -> Result<MatmulVariant> {
    match choice {
        KernelChoice::Portable => Ok(MatmulVariant::Portable),
        KernelChoice::Gpu => Ok(MatmulVariant::Gpu),
        KernelChoice::Cpu if t.supports_cpu_variant() => Ok(MatmulVariant::Cpu),
        KernelChoice::Cpu => Err(Error::option(
            "kernels",
            format!(
                "the cpu kernels need subgroup operations with 8 lanes; this device has {} (subgroup sizes {}..{})",
                if t.subgroups { "subgroups" } else { "no subgroup feature" },
                t.subgroup_min_size,
                t.subgroup_max_size
            ),
        )),
        KernelChoice::Auto => Ok(match t.device_type {
            Some(wgpu::DeviceType::Cpu) if t.supports_cpu_variant() => MatmulVariant::Cpu,
            _ => MatmulVariant::Gpu,
        }),
    }
}
