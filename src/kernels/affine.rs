//! Per-column affine map back to original units (`shaders/affine.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The affine family.
pub(crate) static FAMILY: Family = Family {
    name: "affine",
    modules: &[ShaderModule { name: "affine", source: include_str!("../../shaders/affine.wgsl") }],
    kernels: &[&AFFINE],
    constants: &[],
    structs: &[],
};

/// `affine`: `out[i, j] = in[i, j] · scale[j] + shift[j]`.
pub static AFFINE: KernelSpec = KernelSpec {
    name: "affine",
    module: "affine",
    entry_point: "affine",
    layout: Layout::Misc,
    params: StructLayout::of::<AffineParams>,
    variant: "",
    constants: &[],
};

/// Parameters of `affine` (`shaders/affine.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct AffineParams {
    /// Rows.
    pub n: u32,
    /// Components per row.
    pub d: u32,
    /// Input rows `[n, d]` (f32 offset in `acts`).
    pub in_off: u32,
    /// Input row stride.
    pub in_rs: u32,
    /// Output rows `[n, d]`, row stride `d`.
    pub out_off: u32,
    /// Scale `[d]` (the std).
    pub scale_off: u32,
    /// Shift `[d]` (the mean).
    pub shift_off: u32,
    /// Padding.
    pub pad: u32,
}
param_block!(AffineParams as "AffineParams" { n, d, in_off, in_rs, out_off, scale_off, shift_off, pad });

/// Records `affine` over the `p.n × p.d` elements.
pub fn affine(b: &mut ProgramBuilder, p: &AffineParams) {
    b.push_1d(&AFFINE, p, (p.n * p.d) as usize);
}
