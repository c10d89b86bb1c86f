//! Workspace layout of one ODE chunk and the one chunk-sizing rule.

use crate::gpu::Gpu;
use crate::kernels::Arena;
use crate::net::NetConfig;

use super::field::{FieldGraph, FieldKind};

/// Offsets (f32 elements) of one chunk's workspace: the network workspace of the field,
/// then the ODE state of `n` rows with `ds` columns (`ds = dim_theta`, or
/// `dim_theta + 1` with the divergence column Δ).
pub(crate) struct Workspace {
    /// Rows.
    pub n: usize,
    /// dim_theta.
    pub d: usize,
    /// State columns.
    pub ds: usize,
    /// Network workspace.
    pub field: FieldGraph,
    /// State `[n, ds]`.
    pub y: usize,
    /// Per-row time `[n]`.
    pub t: usize,
    /// Per-row step `[n]`.
    pub h: usize,
    /// Per-row accepted / rejected step counts `[n, 2]`.
    pub stats: usize,
    /// Per-row active flag `[n]`.
    pub active: usize,
    /// Active-row count `[1]`.
    pub count: usize,
    /// Stage derivatives `k_s` `[7, n, ds]`.
    pub k: usize,
    /// Stage input rows `(t, θ)` `[n, 1 + dim_theta]`.
    pub tin: usize,
    /// Samples in original units `[n, dim_theta]`.
    pub out: usize,
    /// Log-densities `[n]` (divergence fields).
    pub logq: usize,
    /// θ' std `[dim_theta]`.
    pub scale: usize,
    /// θ' mean `[dim_theta]`.
    pub shift: usize,
    /// Parameter-transform table `[dim_theta, 4]`.
    pub tab: usize,
    /// Floats in all.
    pub len: usize,
}

/// ODE-state floats per row besides the network workspace (see [`Workspace`]).
fn state_floats_per_row(d: usize, ds: usize) -> usize {
    9 * ds + d + 8
}

impl Workspace {
    /// Lays out the workspace of `n` rows, with one observation for all rows or
    /// (`per_row_x`) one per row.
    pub(crate) fn new(kind: FieldKind, cfg: &NetConfig, n: usize, per_row_x: bool) -> Workspace {
        let d = cfg.dim_theta;
        let ds = kind.state_dim(d);
        let mut a = Arena::default();
        let field = FieldGraph::new(kind, cfg, n, per_row_x, &mut a);
        let mut w = Workspace {
            n,
            d,
            ds,
            field,
            y: a.alloc(n * ds),
            t: a.alloc(n),
            h: a.alloc(n),
            stats: a.alloc(2 * n),
            active: a.alloc(n),
            count: a.alloc(1),
            k: a.alloc(7 * n * ds),
            tin: a.alloc(n * (d + 1)),
            out: a.alloc(n * d),
            logq: a.alloc(n),
            scale: a.alloc(d),
            shift: a.alloc(d),
            tab: a.alloc(4 * d),
            len: 0,
        };
        w.len = a.len();
        w
    }

    /// Offset of stage derivative `k_s` `[n, ds]`.
    pub(crate) fn k_stage(&self, s: usize) -> usize {
        self.k + s * self.n * self.ds
    }
}

/// The one chunk-sizing rule: the largest number of rows whose workspace fits one
/// storage binding (with 64 Ki floats to spare) and whose network dispatches (one row
/// per tangent probe with a divergence) stay within the workgroup limit; `requested`
/// (default [`Gpu::default_chunk`]) caps it. At least 1. With `per_row_x`, each row
/// also holds its own observation.
pub(crate) fn max_chunk(gpu: &Gpu, cfg: &NetConfig, kind: FieldKind, per_row_x: bool, requested: Option<usize>) -> usize {
    let d = cfg.dim_theta;
    let per_row = (kind.floats_per_row(cfg, per_row_x) + state_floats_per_row(d, kind.state_dim(d))) as u64;
    let by_binding = (gpu.max_binding_floats().saturating_sub(1 << 16) / per_row.max(1)) as usize;
    let by_dispatch = gpu.limits().max_compute_workgroups_per_dimension as usize * 64 / kind.rows_per_sample(d).max(1);
    requested.unwrap_or(gpu.default_chunk()).min(by_binding).min(by_dispatch).max(1)
}
