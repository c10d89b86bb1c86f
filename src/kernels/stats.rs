//! Column statistics and z-scoring of the dataset (`shaders/stats.wgsl`).

use bytemuck::{Pod, Zeroable};

use super::program::ProgramBuilder;
use super::registry::{param_block, Family, KernelSpec, Layout, ShaderModule, StructLayout};

/// The stats family.
pub(crate) static FAMILY: Family = Family {
    name: "stats",
    modules: &[ShaderModule { name: "stats", source: include_str!("../../shaders/stats.wgsl") }],
    kernels: &[&COLUMN_STATS, &ZSCORE],
    constants: &[],
    structs: &[],
};

/// `column_stats`: mean and sample std of each column of `data` (one workgroup per column).
pub static COLUMN_STATS: KernelSpec = KernelSpec {
    name: "column_stats",
    module: "stats",
    entry_point: "column_stats",
    layout: Layout::Misc,
    params: StructLayout::of::<StatsParams>,
    variant: "",
    constants: &[],
};
/// `zscore`: `data = (data − mean) / std` in place.
pub static ZSCORE: KernelSpec = KernelSpec {
    name: "zscore",
    module: "stats",
    entry_point: "zscore",
    layout: Layout::Misc,
    params: StructLayout::of::<StatsParams>,
    variant: "",
    constants: &[],
};

/// Parameters of `column_stats` / `zscore` (`shaders/stats.wgsl`).
/// Every `*_off` field is an offset in f32 elements into the bound buffer; the field
/// order and padding mirror the WGSL struct of the same kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug, Pod, Zeroable, Default)]
pub struct StatsParams {
    /// Rows of the column statistics (`column_stats`) or rows z-scored (`zscore`).
    pub rows: u32,
    /// Columns.
    pub cols: u32,
    /// Data `[rows, cols]` in the `data` buffer (f32 offset).
    pub off: u32,
    /// Means `[cols]` then stds `[cols]` in `acts`.
    pub stats_off: u32,
}
param_block!(StatsParams as "StatsParams" { rows, cols, off, stats_off });

/// Records `column_stats` (one workgroup per column: `p.cols` workgroups).
pub fn column_stats(b: &mut ProgramBuilder, p: &StatsParams) {
    b.push_groups(&COLUMN_STATS, p, (p.cols, 1, 1));
}

/// Records `zscore` over the `p.rows × p.cols` elements.
pub fn zscore(b: &mut ProgramBuilder, p: &StatsParams) {
    b.push_1d(&ZSCORE, p, (p.rows * p.cols) as usize);
}
