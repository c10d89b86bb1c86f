//! Recording the vector-field network on the GPU: training forward + backward (all
//! activations kept for the backward pass) and the evaluation forward used by the ODE
//! solvers, whose x-dependent part is computed once per ODE plan (observation, chunk
//! size, solver), never per step.
//!
//! Every linear layer is one fused matmul dispatch (bias, GELU on load, gate and
//! residual in the epilogue); the weight gradient and bias gradient of a layer come
//! from one dispatch (virtual ones column), and with two or more equal blocks the
//! weight gradients of `linear1` (and of `linear2`) of all blocks are one batched
//! dispatch.
//!
//! The optional x-embedding (see [`crate::net::config`]) adds 3 dispatches per
//! embedding layer to a training step: its forward, its weight + bias gradient, and one
//! data gradient (for the last layer: `dz[:, e-columns] = dh_0 · W_in[:, e-columns]`,
//! for the others `(de_k W_k) ⊙ gelu'(e_{k-1})`). The embedding's last layer writes
//! straight into the `e` columns of the main input `z`.

use crate::kernels::train_step::{glu_backward, GluParams};
use crate::kernels::{Arena, Buf, Mat, Matmul, Op, ProgramBuilder};
use crate::net::{Conditioning, LinearLayout, NetConfig, ParamLayout};

/// `Wᵀ` of a layer as a `[fan_in, fan_out]` view into the parameter buffer
/// (right operand of the forward product `a Wᵀ`).
pub(crate) fn w_t(l: &LinearLayout) -> Mat {
    Mat::strided(Buf::Params, l.weight, 1, l.fan_in)
}
/// `W` of a layer as a `[fan_out, fan_in]` view (right operand of `dY W`).
fn w(l: &LinearLayout) -> Mat {
    Mat::rows(Buf::Params, l.weight, l.fan_in)
}
pub(crate) fn bias(l: &LinearLayout) -> Mat {
    Mat::rows(Buf::Params, l.bias, l.fan_out)
}

/// `out = op(a) Wᵀ + b` for `rows` rows.
pub(crate) fn linear(rows: usize, l: &LinearLayout, a: Mat, a_op: Op, out: Mat) -> Matmul {
    let mut mm = Matmul::new(rows, l.fan_out, l.fan_in, a, w_t(l), out);
    mm.a_op = a_op;
    mm.bias = Some(bias(l));
    mm
}

/// Weight and bias gradient of layer `l`: `gW = dYᵀ op(X)`, `gb = Σ_rows dY`.
fn weight_grad(rows: usize, l: &LinearLayout, dy: Mat, x: Mat, x_op: Op) -> Matmul {
    let mut mm = Matmul::new(
        l.fan_out,
        l.fan_in,
        rows,
        dy.t(),
        x,
        Mat::rows(Buf::Grads, l.weight, l.fan_in),
    );
    mm.b_op = x_op;
    mm.bias_grad = Some(l.bias);
    mm
}

/// Workspace offsets of one training forward/backward pass for up to `capacity` rows.
#[derive(Clone, Debug)]
pub struct TrainGraph {
    /// Row capacity.
    pub capacity: usize,
    /// Main input `[rows, input_dim]`.
    pub input: usize,
    /// Raw (z-scored) x `[rows, dim_x]`, the embedding's input (with an embedding only;
    /// without one x is written into `input` directly, see [`TrainGraph::x_dest`]).
    pub x: usize,
    /// Output of embedding layer k `[rows, E_{k+1}]` for every layer but the last (whose
    /// output is the x-feature part of `input`).
    pub emb: Vec<usize>,
    /// Gradient w.r.t. the output of embedding layer k `[rows, E_{k+1}]`, every layer.
    pub demb: Vec<usize>,
    /// Gate context `[rows, 1 + dim_theta]` (glu).
    pub ctx: usize,
    /// Regression target `[rows, dim_theta]`.
    pub target: usize,
    /// Network output `[rows, dim_theta]`.
    pub v: usize,
    /// dL/dv `[rows, dim_theta]`.
    pub dv: usize,
    /// h_k, k = 0..=K (h_0 = input layer output, h_{k+1} = output of block k).
    pub h: Vec<usize>,
    /// Input of block k after its resize layer (equals `h[k]` without resize).
    pub hin: Vec<usize>,
    /// Pre-activation of linear1 per block.
    pub u: Vec<usize>,
    /// Output of linear2 before the gate, per block (glu).
    pub ypre: Vec<usize>,
    /// Gate values per block (glu).
    pub g: Vec<usize>,
    /// Gradients w.r.t. h_k.
    pub dh: Vec<usize>,
    /// Gradient w.r.t. the block input after resize (only where a resize exists).
    pub dhin: Vec<usize>,
    /// Gradient w.r.t. u per block.
    pub du: Vec<usize>,
    /// dL/dy (after gate) and dL/d(gate pre-activation), per block (glu).
    pub dy: Vec<usize>,
    /// See `dy`.
    pub dgp: Vec<usize>,
}

impl TrainGraph {
    /// Allocates the workspace of one pass for `capacity` rows.
    pub fn new(cfg: &NetConfig, layout: &ParamLayout, capacity: usize, arena: &mut Arena) -> TrainGraph {
        let r = capacity;
        let dt = cfg.dim_theta;
        let glu = cfg.conditioning == Conditioning::Glu;
        let n_emb = layout.embedding.len();
        let mut g = TrainGraph {
            capacity,
            input: arena.alloc(r * cfg.input_dim()),
            x: if n_emb > 0 { arena.alloc(r * cfg.dim_x) } else { 0 },
            emb: layout.embedding[..n_emb.saturating_sub(1)].iter().map(|l| arena.alloc(r * l.fan_out)).collect(),
            demb: layout.embedding.iter().map(|l| arena.alloc(r * l.fan_out)).collect(),
            ctx: if glu { arena.alloc(r * cfg.context_dim()) } else { 0 },
            target: arena.alloc(r * dt),
            v: arena.alloc(r * dt),
            dv: arena.alloc(r * dt),
            h: vec![],
            hin: vec![],
            u: vec![],
            ypre: vec![],
            g: vec![],
            dh: vec![],
            dhin: vec![],
            du: vec![],
            dy: vec![],
            dgp: vec![],
        };
        // Block k's slice of the workspace starts with its input h_k and dh_k, and every
        // block allocates the same buffers in the same order, so with equal widths the
        // blocks lie one fixed stride apart (the batched weight gradients of
        // `TrainGraph::block_batch`); h_K and dh_K come last, where block K's would.
        for (k, b) in layout.blocks.iter().enumerate() {
            let w = b.width;
            let w_in = if k == 0 { cfg.hidden[0] } else { cfg.hidden[k - 1] };
            g.h.push(arena.alloc(r * w_in));
            g.dh.push(arena.alloc(r * w_in));
            let hin = if b.resize.is_some() { arena.alloc(r * w) } else { g.h[k] };
            g.hin.push(hin);
            g.dhin.push(if b.resize.is_some() { arena.alloc(r * w) } else { 0 });
            g.u.push(arena.alloc(r * w));
            g.du.push(arena.alloc(r * w));
            if glu {
                g.ypre.push(arena.alloc(r * w));
                g.g.push(arena.alloc(r * w));
                g.dy.push(arena.alloc(r * w));
                g.dgp.push(arena.alloc(r * w));
            }
        }
        let w_out = *cfg.hidden.last().expect("at least one block");
        g.h.push(arena.alloc(r * w_out));
        g.dh.push(arena.alloc(r * w_out));
        g
    }

    /// `(acts stride, parameter stride)` when the blocks' workspace slices and
    /// parameters lie at fixed strides (two or more blocks of equal width, none with a
    /// resize layer): then the weight gradient of `linear1` of every block is one
    /// batched dispatch, and so is that of `linear2` ([`Matmul::batch`]).
    fn block_batch(&self, layout: &ParamLayout, glu: bool) -> Option<(usize, usize)> {
        let bl = &layout.blocks;
        if bl.len() < 2 || bl.iter().any(|b| b.resize.is_some() || b.width != bl[0].width) {
            return None;
        }
        let s = self.u[1].checked_sub(self.u[0])?;
        let p = bl[1].linear1.weight.checked_sub(bl[0].linear1.weight)?;
        let uniform = |v: &dyn Fn(usize) -> usize, stride: usize| (0..bl.len()).all(|k| v(k) == v(0) + k * stride);
        let dy = |k: usize| if glu { self.dy[k] } else { self.dh[k + 1] };
        let acts_ok = uniform(&|k| self.u[k], s)
            && uniform(&|k| self.du[k], s)
            && uniform(&|k| self.hin[k], s)
            && uniform(&dy, s);
        let params_ok = uniform(&|k| bl[k].linear1.weight, p)
            && uniform(&|k| bl[k].linear1.bias, p)
            && uniform(&|k| bl[k].linear2.weight, p)
            && uniform(&|k| bl[k].linear2.bias, p);
        (acts_ok && params_ok).then_some((s, p))
    }

    /// Where the (z-scored) x rows go, as `(offset, row stride)`: the embedding's input
    /// buffer, or without an embedding the x columns of `input` directly.
    pub fn x_dest(&self, cfg: &NetConfig) -> (usize, usize) {
        if cfg.embedding.is_empty() {
            (self.input + cfg.x_column(), cfg.input_dim())
        } else {
            (self.x, cfg.dim_x)
        }
    }

    /// Input of embedding layer k and the operator applied on load.
    fn emb_input(&self, k: usize, cfg: &NetConfig, layout: &ParamLayout) -> (Mat, Op) {
        if k == 0 {
            (Mat::rows(Buf::Acts, self.x, cfg.dim_x), Op::Id)
        } else {
            (Mat::rows(Buf::Acts, self.emb[k - 1], layout.embedding[k - 1].fan_out), Op::Gelu)
        }
    }

    /// Records the forward pass for `rows` rows: x (at [`TrainGraph::x_dest`]), the
    /// `(t, θ_t)` part of input (or ctx) must be filled; writes every activation and `v`.
    pub fn forward(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout, rows: usize) {
        let din = cfg.input_dim();
        let glu = cfg.conditioning == Conditioning::Glu;
        let ctx = Mat::rows(Buf::Acts, self.ctx, cfg.context_dim());
        let n_emb = layout.embedding.len();
        for (k, l) in layout.embedding.iter().enumerate() {
            let (a, op) = self.emb_input(k, cfg, layout);
            let out = if k + 1 == n_emb {
                Mat::rows(Buf::Acts, self.input + cfg.x_column(), din)
            } else {
                Mat::rows(Buf::Acts, self.emb[k], l.fan_out)
            };
            b.matmul(&linear(rows, l, a, op, out));
        }
        b.matmul(&linear(rows, &layout.input, Mat::rows(Buf::Acts, self.input, din), Op::Id, self.hmat(0, cfg)));
        for (k, blk) in layout.blocks.iter().enumerate() {
            let w = blk.width;
            let hin = Mat::rows(Buf::Acts, self.hin[k], w);
            if let Some(rz) = &blk.resize {
                b.matmul(&linear(rows, rz, self.hmat(k, cfg), Op::Id, hin));
            }
            let u = Mat::rows(Buf::Acts, self.u[k], w);
            b.matmul(&linear(rows, &blk.linear1, hin, Op::Gelu, u));
            let mut l2 = linear(rows, &blk.linear2, u, Op::Gelu, self.hmat(k + 1, cfg));
            l2.res = Some(hin);
            if glu {
                let gate = blk.gate.as_ref().expect("glu block has a gate");
                let gm = Mat::rows(Buf::Acts, self.g[k], w);
                let mut gmm = linear(rows, gate, ctx, Op::Id, gm);
                gmm.act = Op::Sigmoid;
                b.matmul(&gmm);
                l2.pre = Some(Mat::rows(Buf::Acts, self.ypre[k], w));
                l2.aux = Some((gm, Op::Id));
            }
            b.matmul(&l2);
        }
        let k = layout.blocks.len();
        b.matmul(&linear(
            rows,
            &layout.output,
            self.hmat(k, cfg),
            Op::Id,
            Mat::rows(Buf::Acts, self.v, cfg.dim_theta),
        ));
    }

    fn hmat(&self, k: usize, cfg: &NetConfig) -> Mat {
        let w = if k == 0 { cfg.hidden[0] } else { cfg.hidden[k - 1] };
        Mat::rows(Buf::Acts, self.h[k], w)
    }

    /// Records the backward pass for `rows` rows, from `dv` (filled by the loss kernel)
    /// to the gradient of every parameter (each written exactly once, so the gradient
    /// buffer needs no zeroing).
    pub fn backward(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout, rows: usize) {
        let dt = cfg.dim_theta;
        let glu = cfg.conditioning == Conditioning::Glu;
        let kk = layout.blocks.len();
        let dv = Mat::rows(Buf::Acts, self.dv, dt);
        // Output layer.
        b.matmul(&weight_grad(rows, &layout.output, dv, self.hmat(kk, cfg), Op::Id));
        b.matmul(&Matmul::new(rows, cfg.hidden[kk - 1], dt, dv, w(&layout.output), self.dhmat(kk, cfg)));
        let batched = self.block_batch(layout, glu);
        for k in (0..kk).rev() {
            let blk = &layout.blocks[k];
            let wd = blk.width;
            let dh_out = self.dhmat(k + 1, cfg);
            let hin = Mat::rows(Buf::Acts, self.hin[k], wd);
            let u = Mat::rows(Buf::Acts, self.u[k], wd);
            let dy = if glu {
                let p = GluParams {
                    count: (rows * wd) as u32,
                    dh_off: self.dh[k + 1] as u32,
                    y_off: self.ypre[k] as u32,
                    g_off: self.g[k] as u32,
                    dy_off: self.dy[k] as u32,
                    dgp_off: self.dgp[k] as u32,
                };
                glu_backward(b, &p);
                let gate = blk.gate.as_ref().expect("glu block has a gate");
                b.matmul(&weight_grad(
                    rows,
                    gate,
                    Mat::rows(Buf::Acts, self.dgp[k], wd),
                    Mat::rows(Buf::Acts, self.ctx, cfg.context_dim()),
                    Op::Id,
                ));
                Mat::rows(Buf::Acts, self.dy[k], wd)
            } else {
                dh_out
            };
            if batched.is_none() {
                b.matmul(&weight_grad(rows, &blk.linear2, dy, u, Op::Gelu));
            }
            let du = Mat::rows(Buf::Acts, self.du[k], wd);
            let mut mm = Matmul::new(rows, wd, wd, dy, w(&blk.linear2), du);
            mm.aux = Some((u, Op::GeluGrad));
            b.matmul(&mm);
            if batched.is_none() {
                b.matmul(&weight_grad(rows, &blk.linear1, du, hin, Op::Gelu));
            }
            // d(block input) = d(h_out) (residual) + (du W1) ⊙ gelu'(hin)
            let dhin = if blk.resize.is_some() { Mat::rows(Buf::Acts, self.dhin[k], wd) } else { self.dhmat(k, cfg) };
            let mut mm = Matmul::new(rows, wd, wd, du, w(&blk.linear1), dhin);
            mm.aux = Some((hin, Op::GeluGrad));
            mm.res = Some(dh_out);
            b.matmul(&mm);
            if let Some(rz) = &blk.resize {
                b.matmul(&weight_grad(rows, rz, dhin, self.hmat(k, cfg), Op::Id));
                b.matmul(&Matmul::new(rows, rz.fan_in, wd, dhin, w(rz), self.dhmat(k, cfg)));
            }
        }
        if let Some((acts_stride, param_stride)) = batched {
            // The weight gradients of linear2 and linear1 of every block, block k at
            // workspace offset + k · acts_stride and parameter offset + k · param_stride:
            // the same products as one dispatch per block, in two dispatches.
            let (blk, wd) = (&layout.blocks[0], layout.blocks[0].width);
            let dy0 = Mat::rows(Buf::Acts, if glu { self.dy[0] } else { self.dh[1] }, wd);
            let du0 = Mat::rows(Buf::Acts, self.du[0], wd);
            for mut mm in [
                weight_grad(rows, &blk.linear2, dy0, Mat::rows(Buf::Acts, self.u[0], wd), Op::Gelu),
                weight_grad(rows, &blk.linear1, du0, Mat::rows(Buf::Acts, self.hin[0], wd), Op::Gelu),
            ] {
                mm.batch = Some((kk, acts_stride));
                mm.batch_param_stride = Some(param_stride);
                b.matmul(&mm);
            }
        }
        b.matmul(&weight_grad(
            rows,
            &layout.input,
            self.dhmat(0, cfg),
            Mat::rows(Buf::Acts, self.input, cfg.input_dim()),
            Op::Id,
        ));
        // Into the embedding, last layer first.
        let n_emb = layout.embedding.len();
        if n_emb > 0 {
            let l = &layout.input;
            let de = cfg.x_features();
            // W_in restricted to the x-feature columns, as a [H_1, d_e] view.
            let w_e = Mat::rows(Buf::Params, l.weight + cfg.x_column(), l.fan_in);
            let d_last = Mat::rows(Buf::Acts, self.demb[n_emb - 1], de);
            b.matmul(&Matmul::new(rows, de, cfg.hidden[0], self.dhmat(0, cfg), w_e, d_last));
            for (k, el) in layout.embedding.iter().enumerate().rev() {
                let dy = Mat::rows(Buf::Acts, self.demb[k], el.fan_out);
                let (a, op) = self.emb_input(k, cfg, layout);
                b.matmul(&weight_grad(rows, el, dy, a, op));
                if k > 0 {
                    let din = Mat::rows(Buf::Acts, self.demb[k - 1], el.fan_in);
                    let mut mm = Matmul::new(rows, el.fan_in, el.fan_out, dy, w(el), din);
                    mm.aux = Some((Mat::rows(Buf::Acts, self.emb[k - 1], el.fan_in), Op::GeluGrad));
                    b.matmul(&mm);
                }
            }
        }
    }

    fn dhmat(&self, k: usize, cfg: &NetConfig) -> Mat {
        let w = if k == 0 { cfg.hidden[0] } else { cfg.hidden[k - 1] };
        Mat::rows(Buf::Acts, self.dh[k], w)
    }
}

/// Workspace of the evaluation forward `v(t, θ, x)`: for one fixed observation
/// (`x_rows == 1`, its x-only part computed once and broadcast over the rows) or for
/// an observation per row (`x_rows == capacity`, amortized solves over many
/// observations).
#[derive(Clone, Debug)]
pub struct EvalGraph {
    /// Row capacity.
    pub capacity: usize,
    /// Rows of the observation part: 1 (one observation for every row) or `capacity`
    /// (one per row).
    pub x_rows: usize,
    /// z-scored observations `[x_rows, dim_x]`.
    pub x: usize,
    /// Output of each x-embedding layer `[x_rows, E_{k+1}]` (the last one is the
    /// embedded observation `e(x)`).
    pub emb: Vec<usize>,
    /// Precomputed x-only values, `[x_rows, H_1]` each: concat: `c_0 = W_in[:, x-part] e + b_in`
    /// (`e` the embedded observation, or x itself without an embedding); glu: `h_0`,
    /// then block 0's pre-gate output `y_0` at `pre + x_rows · H_1`.
    pub pre: usize,
    /// Scratch for the precompute (glu: `u_0` `[x_rows, H_1]`).
    pub pre_u: usize,
    /// Hidden state `[rows, max width]`, updated in place.
    pub h: usize,
    /// Second hidden buffer for resize layers `[rows, max width]`.
    pub h2: usize,
    /// linear1 output `[rows, max width]`.
    pub u: usize,
    /// Gate values `[rows, max width]` (glu).
    pub g: usize,
}

impl EvalGraph {
    /// Allocates the workspace for `capacity` rows and one observation.
    pub fn new(cfg: &NetConfig, capacity: usize, arena: &mut Arena) -> EvalGraph {
        Self::with_x_rows(cfg, capacity, 1, arena)
    }

    /// Allocates the workspace for `capacity` rows and `x_rows` observation rows (1, or
    /// `capacity` for an observation per row).
    pub fn with_x_rows(cfg: &NetConfig, capacity: usize, x_rows: usize, arena: &mut Arena) -> EvalGraph {
        let hmax = *cfg.hidden.iter().max().unwrap();
        let glu = cfg.conditioning == Conditioning::Glu;
        EvalGraph {
            capacity,
            x_rows,
            x: arena.alloc(x_rows * cfg.dim_x),
            emb: cfg.embedding.iter().map(|&w| arena.alloc(x_rows * w)).collect(),
            pre: arena.alloc(2 * x_rows * cfg.hidden[0]),
            pre_u: arena.alloc(x_rows * cfg.hidden[0]),
            h: arena.alloc(capacity * hmax),
            h2: arena.alloc(capacity * hmax),
            u: arena.alloc(capacity * hmax),
            g: if glu { arena.alloc(capacity * hmax) } else { 0 },
        }
    }

    /// Workspace floats per row (for chunk sizing), with one observation.
    pub fn floats_per_row(cfg: &NetConfig) -> usize {
        let hmax = *cfg.hidden.iter().max().unwrap();
        4 * hmax
    }

    /// Extra workspace floats per row when every row has its own observation (x, its
    /// embedding and the precomputed values).
    pub fn x_floats_per_row(cfg: &NetConfig) -> usize {
        cfg.dim_x + cfg.embedding.iter().sum::<usize>() + 3 * cfg.hidden[0]
    }

    /// View of precomputed part `part` (0: `c_0` or `h_0`, 1: `y_0`) as a `[rows, H_1]`
    /// operand: broadcast with one observation, row by row with one per row.
    pub fn pre_view(&self, cfg: &NetConfig, part: usize) -> Mat {
        let h1 = cfg.hidden[0];
        let m = Mat::rows(Buf::Acts, self.pre + part * self.x_rows * h1, h1);
        if self.x_rows == 1 {
            m.broadcast()
        } else {
            m
        }
    }

    /// Sets `c_0` of the concat input layer on `mm` (`[t, θ] W_in[:, :1 + dθ]ᵀ + c_0`):
    /// as the bias with one observation, as the residual with one per row (the input
    /// layer has no activation, so both add `c_0` to the same sum: the same bits).
    pub(crate) fn add_concat_c0(&self, cfg: &NetConfig, mm: &mut Matmul) {
        let c0 = Mat::rows(Buf::Acts, self.pre, cfg.hidden[0]);
        if self.x_rows == 1 {
            mm.bias = Some(c0);
        } else {
            mm.res = Some(c0);
        }
    }

    /// Records the x-only part (run once per ODE plan, after `x` is uploaded, or once
    /// per chunk with an observation per row): the embedding `e(x)` (one dispatch over
    /// `x_rows` rows per embedding layer), then the values of [`EvalGraph::pre`] from it.
    pub fn precompute(&self, b: &mut ProgramBuilder, cfg: &NetConfig, layout: &ParamLayout) {
        let (h1, xr) = (cfg.hidden[0], self.x_rows);
        let mut x = Mat::rows(Buf::Acts, self.x, cfg.dim_x);
        for (k, l) in layout.embedding.iter().enumerate() {
            let out = Mat::rows(Buf::Acts, self.emb[k], l.fan_out);
            b.matmul(&linear(xr, l, x, if k == 0 { Op::Id } else { Op::Gelu }, out));
            x = out;
        }
        let de = cfg.x_features();
        match cfg.conditioning {
            Conditioning::Concat => {
                // c0 = W_in[:, 1 + dθ ..] e + b_in   (e = x without an embedding)
                let l = &layout.input;
                // Wᵀ view of the x columns only: element (k, j) = W[j, 1 + dθ + k].
                let w_x = Mat::strided(Buf::Params, l.weight + cfg.x_column(), 1, l.fan_in);
                let mut mm = Matmul::new(xr, h1, de, x, w_x, Mat::rows(Buf::Acts, self.pre, h1));
                mm.bias = Some(bias(l));
                b.matmul(&mm);
            }
            Conditioning::Glu => {
                let blk = &layout.blocks[0];
                let h0 = Mat::rows(Buf::Acts, self.pre, h1);
                let y0 = Mat::rows(Buf::Acts, self.pre + xr * h1, h1);
                let u0 = Mat::rows(Buf::Acts, self.pre_u, h1);
                b.matmul(&linear(xr, &layout.input, x, Op::Id, h0));
                b.matmul(&linear(xr, &blk.linear1, h0, Op::Gelu, u0));
                b.matmul(&linear(xr, &blk.linear2, u0, Op::Gelu, y0));
            }
        }
    }

    /// Records `v = f(tin)` for `rows` rows, where `tin` is `[rows, 1 + dim_theta]`
    /// rows `(t, θ)` (z-scored θ) at `tin_off` and `v` is written row-major `[rows, dim_theta]`
    /// at `v_off`.
    pub fn forward(
        &self,
        b: &mut ProgramBuilder,
        cfg: &NetConfig,
        layout: &ParamLayout,
        rows: usize,
        tin_off: usize,
        v_off: usize,
    ) {
        let ctxd = cfg.context_dim();
        let tin = Mat::rows(Buf::Acts, tin_off, ctxd);
        let h1 = cfg.hidden[0];
        let mut width = h1;
        let mut h = self.h;
        let glu = cfg.conditioning == Conditioning::Glu;
        let first_block;
        match cfg.conditioning {
            Conditioning::Concat => {
                // h0 = [t, θ] W_in[:, :1 + dθ]ᵀ + c0
                let l = &layout.input;
                let mut mm = Matmul::new(rows, h1, ctxd, tin, w_t(l), Mat::rows(Buf::Acts, h, h1));
                self.add_concat_c0(cfg, &mut mm);
                b.matmul(&mm);
                first_block = 0;
            }
            Conditioning::Glu => {
                // h1 = h0 + y0 ⊙ sigmoid(c W_gateᵀ + b_gate), with h0, y0 precomputed.
                let gate = layout.blocks[0].gate.as_ref().expect("glu gate");
                let mut mm = linear(rows, gate, tin, Op::Id, Mat::rows(Buf::Acts, h, h1));
                mm.act = Op::Sigmoid;
                mm.aux = Some((self.pre_view(cfg, 1), Op::Id));
                mm.res = Some(self.pre_view(cfg, 0));
                b.matmul(&mm);
                first_block = 1;
            }
        }
        for blk in &layout.blocks[first_block..] {
            let wd = blk.width;
            if let Some(rz) = &blk.resize {
                let other = if h == self.h { self.h2 } else { self.h };
                b.matmul(&linear(rows, rz, Mat::rows(Buf::Acts, h, width), Op::Id, Mat::rows(Buf::Acts, other, wd)));
                h = other;
            }
            width = wd;
            let hm = Mat::rows(Buf::Acts, h, wd);
            let u = Mat::rows(Buf::Acts, self.u, wd);
            b.matmul(&linear(rows, &blk.linear1, hm, Op::Gelu, u));
            let mut l2 = linear(rows, &blk.linear2, u, Op::Gelu, hm);
            l2.res = Some(hm);
            if glu {
                let gate = blk.gate.as_ref().expect("glu gate");
                let gm = Mat::rows(Buf::Acts, self.g, wd);
                let mut gmm = linear(rows, gate, tin, Op::Id, gm);
                gmm.act = Op::Sigmoid;
                b.matmul(&gmm);
                l2.aux = Some((gm, Op::Id));
            }
            b.matmul(&l2);
        }
        b.matmul(&linear(
            rows,
            &layout.output,
            Mat::rows(Buf::Acts, h, width),
            Op::Id,
            Mat::rows(Buf::Acts, v_off, cfg.dim_theta),
        ));
    }
}
