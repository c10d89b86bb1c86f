//! What the ODE integrates per row: the vector field `v` alone, or `[v, ∇·v]`.

use crate::error::{Error, Result};
use crate::kernels::{Arena, Buf, Mat, ProgramBuilder};
use crate::net::{EvalGraph, JvpGraph, NetConfig, ParamLayout};

use super::record;

/// How the divergence `∇_θ · v` is computed for log-densities.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Divergence {
    /// Exact trace of the Jacobian: one tangent pass per θ dimension (all batched in one
    /// set of dispatches over `dim_theta × rows` tangent rows). Cost ∝ dim_theta.
    #[default]
    Exact,
    /// Hutchinson's unbiased estimator `mean_{p < probes} ε_pᵀ J ε_p`, with `probes`
    /// Rademacher (±1) probes, or standard Gaussian ones if `gaussian`. Each sample's
    /// probes are drawn once (Philox keyed by the seed and the sample index) and kept
    /// for the whole ODE solve. Cost ∝ probes. The resulting log-density is a random
    /// estimate (unbiased for Δ, not for exp(log q)).
    Hutchinson {
        /// Probes per sample (≥ 1).
        probes: usize,
        /// Gaussian instead of Rademacher probes.
        gaussian: bool,
    },
}

impl Divergence {
    /// Tangent rows per sample.
    pub(crate) fn probes(self, dim_theta: usize) -> usize {
        match self {
            Divergence::Exact => dim_theta,
            Divergence::Hutchinson { probes, .. } => probes,
        }
    }

    /// `tangent_init` mode and `div_reduce` scale.
    pub(crate) fn mode_scale(self) -> (crate::kernels::ProbeMode, f32) {
        use crate::kernels::ProbeMode;
        match self {
            Divergence::Exact => (ProbeMode::Exact, 1.0),
            Divergence::Hutchinson { probes, gaussian } => {
                (if gaussian { ProbeMode::Gaussian } else { ProbeMode::Rademacher }, 1.0 / probes.max(1) as f32)
            }
        }
    }

    /// Checks the probe count.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `divergence` for zero Hutchinson probes.
    pub fn validate(self) -> Result<()> {
        match self {
            Divergence::Hutchinson { probes: 0, .. } => {
                Err(Error::option("divergence", "Hutchinson's estimator needs at least one probe"))
            }
            _ => Ok(()),
        }
    }
}

/// Which field a chunk integrates (part of a plan's key).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum FieldKind {
    /// `v` alone: state `[θ]`.
    Velocity,
    /// `[v, ∇·v]`: state `[θ, Δ]`.
    WithDivergence(Divergence),
}

impl FieldKind {
    /// Columns of the ODE state.
    pub(crate) fn state_dim(self, dim_theta: usize) -> usize {
        match self {
            FieldKind::Velocity => dim_theta,
            FieldKind::WithDivergence(_) => dim_theta + 1,
        }
    }

    /// Rows a network dispatch covers per sample (tangent rows for the divergence).
    pub(crate) fn rows_per_sample(self, dim_theta: usize) -> usize {
        match self {
            FieldKind::Velocity => 1,
            FieldKind::WithDivergence(div) => div.probes(dim_theta),
        }
    }

    /// Network workspace floats per sample (with `per_row_x`, each row carries its own
    /// observation and x-only values).
    pub(crate) fn floats_per_row(self, cfg: &NetConfig, per_row_x: bool) -> usize {
        let x = if per_row_x { EvalGraph::x_floats_per_row(cfg) } else { 0 };
        x + match self {
            FieldKind::Velocity => EvalGraph::floats_per_row(cfg),
            FieldKind::WithDivergence(div) => JvpGraph::floats_per_row(cfg, div.probes(cfg.dim_theta)),
        }
    }
}

/// The network workspace of a field.
pub(crate) enum FieldGraph {
    /// Evaluation of `v`.
    Velocity(EvalGraph),
    /// Joint evaluation of `v` and `J·ε`, reduced to `∇·v`.
    WithDivergence(JvpGraph, Divergence),
}

impl FieldGraph {
    /// Allocates the network workspace for `n` rows, with one observation for all rows
    /// or (`per_row_x`) one per row.
    pub(crate) fn new(kind: FieldKind, cfg: &NetConfig, n: usize, per_row_x: bool, arena: &mut Arena) -> FieldGraph {
        let x_rows = if per_row_x { n } else { 1 };
        match kind {
            FieldKind::Velocity => FieldGraph::Velocity(EvalGraph::with_x_rows(cfg, n, x_rows, arena)),
            FieldKind::WithDivergence(div) => {
                FieldGraph::WithDivergence(JvpGraph::with_x_rows(cfg, n, div.probes(cfg.dim_theta), x_rows, arena), div)
            }
        }
    }

    /// Offset of the z-scored observations `[x_rows, dim_x]`.
    pub(crate) fn x_off(&self) -> usize {
        match self {
            FieldGraph::Velocity(e) => e.x,
            FieldGraph::WithDivergence(j, _) => j.eval.x,
        }
    }

    /// The tangent workspace, if the field has a divergence.
    pub(crate) fn jvp(&self) -> Option<(&JvpGraph, Divergence)> {
        match self {
            FieldGraph::Velocity(_) => None,
            FieldGraph::WithDivergence(j, div) => Some((j, *div)),
        }
    }

    /// Records the x-only precompute of the network (after the observations are
    /// uploaded: once per workspace with one observation, with each chunk with an
    /// observation per row).
    pub(crate) fn record_precompute(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout) {
        match self {
            FieldGraph::Velocity(e) => e.precompute(b, cfg, layout),
            FieldGraph::WithDivergence(j, _) => j.precompute(b, cfg, layout),
        }
    }

    /// Records one field evaluation for `n` rows: input rows `(t, θ)` `[n, 1 + dim_theta]`
    /// at `tin`, output rows `[n, ds]` at `out` (`v` in the first `dim_theta` columns,
    /// `∇·v` in column `dim_theta` when the field has a divergence; `ds` is the state
    /// dimension). `div_ctx` gives the divergence reduction its state and output offsets.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn record_eval(
        &self,
        b: &mut ProgramBuilder,
        cfg: &NetConfig,
        layout: &ParamLayout,
        n: usize,
        tin: usize,
        out: usize,
        div_ctx: &record::DivContext,
    ) {
        match self {
            FieldGraph::Velocity(e) => e.forward(b, cfg, layout, n, tin, out),
            FieldGraph::WithDivergence(j, div) => {
                let ds = cfg.dim_theta + 1;
                j.forward(b, cfg, layout, n, tin, Mat::rows(Buf::Acts, out, ds));
                record::div_reduce(b, j, div_ctx, out + cfg.dim_theta, div.mode_scale().1);
            }
        }
    }
}
