//! fmpe's WGSL kernels, one module per kernel family: each family file
//! (`src/kernels/<family>.rs`) holds its `#[repr(C)]` parameter blocks, its kernel specs
//! and typed recorder functions (e.g. [`stats::zscore`]), and names its shader files
//! (`shaders/<family>.wgsl` or `shaders/<family>_<part>.wgsl`); its tests live in
//! `tests/kernels_<family>.rs`.
//!
//! The registry (the list of kernels and shader modules, the WGSL constants shared with
//! Rust, each module's assembled source) is derived from the families' declarations
//! ([`registry`]); pipelines are compiled once per device and cached on the [`crate::Gpu`]
//! ([`program`]).
//!
//! Every kernel reads its per-dispatch parameters from a 256-byte slot of one uniform
//! buffer (dynamic offset), so a whole training step or ODE step is recorded once and
//! replayed each time with zero uploads besides a 32-byte step state.

pub mod registry;

pub mod program;

/// Declares the family modules and the registry's list of families, in this order.
macro_rules! families {
    ($($family:ident),* $(,)?) => {
        $(pub mod $family;)*
        /// Every kernel family, in registry order.
        pub static FAMILIES: &[&registry::Family] = &[$(&$family::FAMILY),*];
    };
}

families!(matmul, adam, train_step, stats, ode, affine, jvp, transform, c2st);

pub use program::{Arena, Bindings, Program, ProgramBuilder, StepState, SLOT_BYTES};
pub use registry::{kernels, shader_modules, shader_source, specialized_source, KernelSpec, Layout};

pub use adam::{AdamParams, EmaParams};
pub use affine::AffineParams;
pub use c2st::{C2stParams, MlpParams};
pub use jvp::{DensityMode, JvpParams, ProbeMode};
pub use matmul::{Buf, Mat, Matmul, Op};
pub use ode::{AxpyMode, AxpyParams, FinParams, InitParams};
pub use stats::StatsParams;
pub use train_step::{GatherParams, GluParams, LossParams};
pub use transform::{TransformMode, TransformParams};
