//! Forward-mode tangent (Jacobian-vector product) of the vector field with respect to
//! θ_t, recorded on the GPU together with the evaluation forward: one set of dispatches
//! returns `v(t, θ, x_o)` for `rows` primal rows and `J·ε` (`J = ∂v/∂θ`) for a stack of
//! `probes` tangent vectors per row.
//!
//! Tangent rows are stacked probe-major: tangent row `q = p·rows + i` carries probe `p`
//! of primal row `i`. Every tangent product reads the primal values it needs (GELU
//! inputs, gates) through the matmul's *primal row modulus* (`row q → q % rows`), so no
//! primal value is copied per probe. The tangent rules are fused into the matmuls:
//!
//! ```text
//! linear / resize:   dout = din Wᵀ                                (no bias)
//! GELU then linear:  dout = (din ⊙ gelu'(a)) Wᵀ                   (a_mul operand: M = a, op GeluGrad)
//! block, concat:     dh' = dh + (du ⊙ gelu'(u)) W2ᵀ              (res epilogue, in place)
//! block, glu:        dh' = dh + ((du ⊙ gelu'(u)) W2ᵀ) ⊙ g         (aux = g, res = dh)
//!                         + (ε W_g[:, 1:]ᵀ) ⊙ r,  r = σ'(s) ⊙ y    (second product: aux = r, res = dh')
//!                    with s = W_g c + b_g the gate pre-activation, y the pre-gate output
//! input, concat:     dh_0 = ε W_in[:, 1:1+dθ]ᵀ                    (t and x carry no tangent)
//! input, glu:        dh_0 = 0 (x carries no tangent), so block 0 is only the gate term
//! x-embedding:       none (x-only: e(x_o) is part of the precompute, tangent-free)
//! output:            J ε = dh_K W_outᵀ
//! ```
//!
//! The primal pass is the one of [`EvalGraph::forward`], interleaved block by block with
//! the tangent pass (the tangent of linear1 reads the block input before linear2
//! overwrites it in place), plus, in glu mode, one small product per block for
//! `r = σ'(s) ⊙ y` (k = 1 + dim_theta). Dispatches per evaluation: concat
//! `2·(2K + 2) + 2·R`, glu `4K + 2 + 2K + 2·R` (K blocks, R resize layers).

use crate::kernels::{Arena, Buf, Mat, Matmul, Op, ProgramBuilder};
use crate::net::gpu::{linear, w_t};
use crate::net::{Conditioning, EvalGraph, NetConfig, ParamLayout};

/// Workspace of the joint evaluation of `v` and `J·ε` for up to `capacity` primal rows
/// and `probes` tangent vectors per row.
#[derive(Clone, Debug)]
pub struct JvpGraph {
    /// The primal evaluation workspace (observation, precompute, hidden buffers).
    pub eval: EvalGraph,
    /// Tangent vectors per primal row.
    pub probes: usize,
    /// Primal row capacity.
    pub capacity: usize,
    /// Pre-gate block output y `[capacity, max width]` (glu).
    pub ypre: usize,
    /// `σ'(gate pre-activation) ⊙ y` `[capacity, max width]` (glu).
    pub r: usize,
    /// Tangent of the hidden state `[probes · capacity, max width]`.
    pub dh: usize,
    /// Second tangent hidden buffer (resize layers) `[probes · capacity, max width]`.
    pub dh2: usize,
    /// Tangent of linear1's output `[probes · capacity, max width]`.
    pub du: usize,
    /// Tangent vectors ε `[probes · capacity, dim_theta]` (row `p·rows + i`), input.
    pub eps: usize,
    /// Output `J·ε` `[probes · capacity, dim_theta]`, same row order as `eps`.
    pub jeps: usize,
}

impl JvpGraph {
    /// Allocates the workspace.
    pub fn new(cfg: &NetConfig, capacity: usize, probes: usize, arena: &mut Arena) -> JvpGraph {
        Self::with_x_rows(cfg, capacity, probes, 1, arena)
    }

    /// Allocates the workspace with `x_rows` observation rows (1, or `capacity` for an
    /// observation per primal row; see [`EvalGraph::with_x_rows`]).
    pub fn with_x_rows(cfg: &NetConfig, capacity: usize, probes: usize, x_rows: usize, arena: &mut Arena) -> JvpGraph {
        let hmax = *cfg.hidden.iter().max().unwrap();
        let glu = cfg.conditioning == Conditioning::Glu;
        let eval = EvalGraph::with_x_rows(cfg, capacity, x_rows, arena);
        let tr = probes * capacity;
        JvpGraph {
            eval,
            probes,
            capacity,
            ypre: if glu { arena.alloc(capacity * hmax) } else { 0 },
            r: if glu { arena.alloc(capacity * hmax) } else { 0 },
            dh: arena.alloc(tr * hmax),
            dh2: arena.alloc(tr * hmax),
            du: arena.alloc(tr * hmax),
            eps: arena.alloc(tr * cfg.dim_theta),
            jeps: arena.alloc(tr * cfg.dim_theta),
        }
    }

    /// Workspace floats per primal row (for chunk sizing).
    pub fn floats_per_row(cfg: &NetConfig, probes: usize) -> usize {
        let hmax = *cfg.hidden.iter().max().unwrap();
        EvalGraph::floats_per_row(cfg) + 2 * hmax + probes * (3 * hmax + 2 * cfg.dim_theta)
    }

    /// Records the x-only precompute (see [`EvalGraph::precompute`]).
    pub fn precompute(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout) {
        self.eval.precompute(b, cfg, layout);
    }

    /// Records `v = f(tin)` and `J·ε` for `rows ≤ capacity` primal rows.
    ///
    /// * `tin_off`: `[rows, 1 + dim_theta]` rows `(t, θ)` (z-scored θ), row-major.
    /// * [`JvpGraph::eps`]: `[probes · rows, dim_theta]` tangents (row `p·rows + i`).
    /// * `v`: output view `[rows, dim_theta]` (any row stride, in the workspace).
    /// * [`JvpGraph::jeps`]: output `[probes · rows, dim_theta]`.
    pub fn forward(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout, rows: usize, tin_off: usize, v: Mat) {
        let d = cfg.dim_theta;
        let ctxd = cfg.context_dim();
        let tr = self.probes * rows;
        let tin = Mat::rows(Buf::Acts, tin_off, ctxd);
        let eps = Mat::rows(Buf::Acts, self.eps, d);
        let h1 = cfg.hidden[0];
        let eg = &self.eval;
        let mut width = h1;
        let (mut h, mut dh) = (eg.h, self.dh);
        let glu = cfg.conditioning == Conditioning::Glu;
        // Wᵀ of the θ columns of a layer whose input starts with (t, θ): element (k, j) = W[j, 1 + k].
        let w_theta_t = |off: usize, fan_in: usize| Mat::strided(Buf::Params, off + 1, 1, fan_in);
        let first_block;
        match cfg.conditioning {
            Conditioning::Concat => {
                let l = &layout.input;
                let mut mm = Matmul::new(rows, h1, ctxd, tin, w_t(l), Mat::rows(Buf::Acts, h, h1));
                eg.add_concat_c0(cfg, &mut mm);
                b.matmul(&mm);
                b.matmul(&Matmul::new(tr, h1, d, eps, w_theta_t(l.weight, l.fan_in), Mat::rows(Buf::Acts, dh, h1)));
                first_block = 0;
            }
            Conditioning::Glu => {
                let gate = layout.blocks[0].gate.as_ref().expect("glu gate");
                let y0 = eg.pre_view(cfg, 1);
                let mut mm = linear(rows, gate, tin, Op::Id, Mat::rows(Buf::Acts, h, h1));
                mm.act = Op::Sigmoid;
                mm.aux = Some((y0, Op::Id));
                mm.res = Some(eg.pre_view(cfg, 0));
                b.matmul(&mm);
                let r = Mat::rows(Buf::Acts, self.r, h1);
                let mut mr = linear(rows, gate, tin, Op::Id, r);
                mr.act = Op::SigmoidDeriv;
                mr.aux = Some((y0, Op::Id));
                b.matmul(&mr);
                let mut mt = Matmul::new(tr, h1, d, eps, w_theta_t(gate.weight, gate.fan_in), Mat::rows(Buf::Acts, dh, h1));
                mt.aux = Some((r, Op::Id));
                mt.primal_rows = rows;
                b.matmul(&mt);
                first_block = 1;
            }
        }
        for blk in &layout.blocks[first_block..] {
            let wd = blk.width;
            if let Some(rz) = &blk.resize {
                let other = if h == eg.h { eg.h2 } else { eg.h };
                let dother = if dh == self.dh { self.dh2 } else { self.dh };
                b.matmul(&linear(rows, rz, Mat::rows(Buf::Acts, h, width), Op::Id, Mat::rows(Buf::Acts, other, wd)));
                b.matmul(&Matmul::new(tr, wd, width, Mat::rows(Buf::Acts, dh, width), w_t(rz), Mat::rows(Buf::Acts, dother, wd)));
                h = other;
                dh = dother;
            }
            width = wd;
            let hm = Mat::rows(Buf::Acts, h, wd);
            let dhm = Mat::rows(Buf::Acts, dh, wd);
            let u = Mat::rows(Buf::Acts, eg.u, wd);
            let du = Mat::rows(Buf::Acts, self.du, wd);
            // Primal linear1, then its tangent (before linear2 overwrites h in place).
            b.matmul(&linear(rows, &blk.linear1, hm, Op::Gelu, u));
            let mut t1 = Matmul::new(tr, wd, wd, dhm, w_t(&blk.linear1), du);
            t1.a_mul = Some((hm, Op::GeluGrad));
            t1.primal_rows = rows;
            b.matmul(&t1);
            let mut l2 = linear(rows, &blk.linear2, u, Op::Gelu, hm);
            l2.res = Some(hm);
            let mut t2 = Matmul::new(tr, wd, wd, du, w_t(&blk.linear2), dhm);
            t2.a_mul = Some((u, Op::GeluGrad));
            t2.primal_rows = rows;
            t2.res = Some(dhm);
            if glu {
                let gate = blk.gate.as_ref().expect("glu gate");
                let gm = Mat::rows(Buf::Acts, eg.g, wd);
                let yp = Mat::rows(Buf::Acts, self.ypre, wd);
                let r = Mat::rows(Buf::Acts, self.r, wd);
                let mut gmm = linear(rows, gate, tin, Op::Id, gm);
                gmm.act = Op::Sigmoid;
                b.matmul(&gmm);
                l2.pre = Some(yp);
                l2.aux = Some((gm, Op::Id));
                b.matmul(&l2);
                let mut mr = linear(rows, gate, tin, Op::Id, r);
                mr.act = Op::SigmoidDeriv;
                mr.aux = Some((yp, Op::Id));
                b.matmul(&mr);
                t2.aux = Some((gm, Op::Id));
                b.matmul(&t2);
                let mut tg = Matmul::new(tr, wd, d, eps, w_theta_t(gate.weight, gate.fan_in), dhm);
                tg.aux = Some((r, Op::Id));
                tg.primal_rows = rows;
                tg.res = Some(dhm);
                b.matmul(&tg);
            } else {
                b.matmul(&l2);
                b.matmul(&t2);
            }
        }
        b.matmul(&linear(rows, &layout.output, Mat::rows(Buf::Acts, h, width), Op::Id, v));
        b.matmul(&Matmul::new(
            tr,
            d,
            width,
            Mat::rows(Buf::Acts, dh, width),
            w_t(&layout.output),
            Mat::rows(Buf::Acts, self.jeps, d),
        ));
    }
}
