//! f64 reference of the vector-field network `v(t, θ_t, x)` (dingo's `DenseResidualNet`
//! with concat or GLU conditioning, tanh-GELU, optional x-embedding MLP), exactly as specified in
//! [`crate::net::config`] and laid out by [`NetConfig::layout`].
//!
//! Provides the forward pass, the flow-matching loss with a hand-written reverse-mode
//! gradient, a forward-mode Jacobian-vector product w.r.t. θ_t and the exact divergence
//! `∇_θ · v` (needed for the log-density of FMPE, Dax et al. 2023 Sec. 3, via the
//! instantaneous change of variables of Chen et al. 2018, Thm. 1).
//!
//! Parameter buffers are `f64` of length `cfg.layout().len`; use
//! [`crate::reference::to_f64`] to widen the GPU's `f32` parameters.

use crate::net::config::{Conditioning, LinearLayout, NetConfig};

/// `sqrt(2/π)`.
const SQRT_2_OVER_PI: f64 = 0.797_884_560_802_865_4;
/// Cubic coefficient of the tanh GELU.
const GELU_C: f64 = 0.044_715;

/// GELU, tanh approximation (PyTorch `approximate="tanh"`; Hendrycks & Gimpel 2016):
/// `gelu(a) = ½ a (1 + tanh(√(2/π)(a + 0.044715 a³)))`.
pub fn gelu(a: f64) -> f64 {
    0.5 * a * (1.0 + (SQRT_2_OVER_PI * (a + GELU_C * a * a * a)).tanh())
}

/// Derivative of [`gelu`]:
/// `½ (1 + T) + ½ a (1 − T²) √(2/π) (1 + 3·0.044715 a²)` with `T = tanh(√(2/π)(a + 0.044715 a³))`.
pub fn gelu_grad(a: f64) -> f64 {
    let th = (SQRT_2_OVER_PI * (a + GELU_C * a * a * a)).tanh();
    0.5 * (1.0 + th) + 0.5 * a * (1.0 - th * th) * SQRT_2_OVER_PI * (1.0 + 3.0 * GELU_C * a * a)
}

/// Logistic sigmoid `1 / (1 + e^{−s})`.
pub fn sigmoid(s: f64) -> f64 {
    1.0 / (1.0 + (-s).exp())
}

/// `out = W a + b` for one row (`W [fan_out, fan_in]` row-major, PyTorch convention).
fn lin(p: &[f64], l: &LinearLayout, a: &[f64]) -> Vec<f64> {
    debug_assert_eq!(a.len(), l.fan_in);
    (0..l.fan_out)
        .map(|o| {
            let w = &p[l.weight + o * l.fan_in..l.weight + (o + 1) * l.fan_in];
            p[l.bias + o] + w.iter().zip(a).map(|(wi, ai)| wi * ai).sum::<f64>()
        })
        .collect()
}

/// `out = W a` (no bias) — the tangent / linear part of a layer.
fn lin_nobias(p: &[f64], l: &LinearLayout, a: &[f64]) -> Vec<f64> {
    (0..l.fan_out)
        .map(|o| {
            let w = &p[l.weight + o * l.fan_in..l.weight + (o + 1) * l.fan_in];
            w.iter().zip(a).map(|(wi, ai)| wi * ai).sum::<f64>()
        })
        .collect()
}

/// Backward of `out = W a + b` given `dout`: accumulates `dW += dout ⊗ a`, `db += dout`
/// into `grad` and returns `da = Wᵀ dout`.
fn lin_back(p: &[f64], l: &LinearLayout, a: &[f64], dout: &[f64], grad: &mut [f64]) -> Vec<f64> {
    let mut da = vec![0.0; l.fan_in];
    for o in 0..l.fan_out {
        let d = dout[o];
        grad[l.bias + o] += d;
        let row = l.weight + o * l.fan_in;
        for i in 0..l.fan_in {
            grad[row + i] += d * a[i];
            da[i] += p[row + i] * d;
        }
    }
    da
}

/// Intermediate values of one residual block for one row.
struct BlockCache {
    /// Input of the resize layer (the previous block's output), if resized.
    h_pre_resize: Option<Vec<f64>>,
    /// Block input `h` (after the optional resize).
    h: Vec<f64>,
    /// `gelu(h)`.
    a1: Vec<f64>,
    /// `u = linear1(gelu(h))`.
    u: Vec<f64>,
    /// `gelu(u)`.
    a2: Vec<f64>,
    /// `y = linear2(gelu(u))` (before gating).
    y: Vec<f64>,
    /// Gate `g = sigmoid(gate(c))` (glu mode only).
    g: Option<Vec<f64>>,
}

/// Everything the backward pass needs for one row.
struct RowCache {
    /// Input of each embedding layer: `x` for layer 0, `gelu(e_{k-1})` after.
    emb_in: Vec<Vec<f64>>,
    /// Output of each embedding layer but the last (`e_k`, pre-activation).
    emb_out: Vec<Vec<f64>>,
    z: Vec<f64>,
    c: Vec<f64>,
    blocks: Vec<BlockCache>,
    /// Final hidden state `h_K` (input of the output layer's GELU).
    h_out: Vec<f64>,
    v: Vec<f64>,
}

/// Main input `z` and gate context `c` of one row (`x` already embedded).
fn inputs(cfg: &NetConfig, t: f64, theta: &[f64], x: &[f64]) -> (Vec<f64>, Vec<f64>) {
    let mut c = Vec::with_capacity(1 + theta.len());
    c.push(t);
    c.extend_from_slice(theta);
    let z = match cfg.conditioning {
        Conditioning::Concat => {
            let mut z = c.clone();
            z.extend_from_slice(x);
            z
        }
        Conditioning::Glu => x.to_vec(),
    };
    (z, c)
}

fn forward_row(cfg: &NetConfig, p: &[f64], t: f64, theta: &[f64], x: &[f64]) -> RowCache {
    let layout = cfg.layout();
    // x-embedding: e_0 = lin_0(x), e_k = lin_k(gelu(e_{k-1})).
    let mut emb_in = Vec::with_capacity(layout.embedding.len());
    let mut emb_out = Vec::with_capacity(layout.embedding.len());
    let mut e = x.to_vec();
    for (k, l) in layout.embedding.iter().enumerate() {
        let a: Vec<f64> = if k == 0 { e.clone() } else { e.iter().map(|&v| gelu(v)).collect() };
        if k > 0 {
            emb_out.push(e);
        }
        e = lin(p, l, &a);
        emb_in.push(a);
    }
    let (z, c) = inputs(cfg, t, theta, &e);
    let mut h = lin(p, &layout.input, &z);
    let mut blocks = Vec::with_capacity(layout.blocks.len());
    for b in &layout.blocks {
        let h_pre_resize = match &b.resize {
            Some(r) => {
                let pre = h;
                h = lin(p, r, &pre);
                Some(pre)
            }
            None => None,
        };
        let a1: Vec<f64> = h.iter().map(|&a| gelu(a)).collect();
        let u = lin(p, &b.linear1, &a1);
        let a2: Vec<f64> = u.iter().map(|&a| gelu(a)).collect();
        let y = lin(p, &b.linear2, &a2);
        let g = b.gate.as_ref().map(|gl| lin(p, gl, &c).into_iter().map(sigmoid).collect::<Vec<_>>());
        let h_next: Vec<f64> = match &g {
            Some(g) => h.iter().zip(&y).zip(g).map(|((hi, yi), gi)| hi + yi * gi).collect(),
            None => h.iter().zip(&y).map(|(hi, yi)| hi + yi).collect(),
        };
        blocks.push(BlockCache { h_pre_resize, h, a1, u, a2, y, g });
        h = h_next;
    }
    let v = lin(p, &layout.output, &h);
    RowCache { emb_in, emb_out, z, c, blocks, h_out: h, v }
}

fn check_shapes(cfg: &NetConfig, params: &[f64], t: &[f64], theta: &[f64], x: &[f64]) -> usize {
    let b = t.len();
    assert_eq!(params.len(), cfg.layout().len, "params must be [layout.len]");
    assert_eq!(theta.len(), b * cfg.dim_theta, "theta must be [B, dim_theta]");
    assert_eq!(x.len(), b * cfg.dim_x, "x must be [B, dim_x]");
    b
}

/// Forward pass, row by row.
///
/// * `params [layout.len]`, `t [B]`, `theta [B, dim_theta]`, `x [B, dim_x]`.
///
/// Returns `v [B, dim_theta]`.
///
/// # Panics
/// If the shapes disagree with `cfg`.
pub fn forward(cfg: &NetConfig, params: &[f64], t: &[f64], theta: &[f64], x: &[f64]) -> Vec<f64> {
    let b = check_shapes(cfg, params, t, theta, x);
    let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
    let mut v = Vec::with_capacity(b * dt);
    for r in 0..b {
        let rc = forward_row(cfg, params, t[r], &theta[r * dt..(r + 1) * dt], &x[r * dx..(r + 1) * dx]);
        v.extend_from_slice(&rc.v);
    }
    v
}

/// Flow-matching loss (Dax et al. 2023 Sec. 3 with the OT path of eq. 9; Lipman et al.
/// 2023 eq. 23), as an empirical mean:
/// `L = mean over B·dim_theta of (v(t, θ_t, x) − target)²`, and its exact gradient with
/// respect to every parameter, by hand-written reverse-mode backpropagation.
///
/// * `params [layout.len]`, `t [B]`, `theta [B, dim_theta]` (the path point `ψ_t`),
///   `x [B, dim_x]`, `target [B, dim_theta]` (the conditional field `u_t`).
///
/// Returns `(L, dL/dparams [layout.len])` (gradient in the flat layout order).
///
/// # Panics
/// If the shapes disagree with `cfg`.
pub fn loss_and_grad(
    cfg: &NetConfig,
    params: &[f64],
    t: &[f64],
    theta: &[f64],
    x: &[f64],
    target: &[f64],
) -> (f64, Vec<f64>) {
    let b = check_shapes(cfg, params, t, theta, x);
    let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
    assert_eq!(target.len(), b * dt, "target must be [B, dim_theta]");
    let layout = cfg.layout();
    let p = params;
    let mut grad = vec![0.0; layout.len];
    let mut loss = 0.0;
    let scale = 1.0 / (b * dt) as f64;
    for r in 0..b {
        let rc = forward_row(cfg, p, t[r], &theta[r * dt..(r + 1) * dt], &x[r * dx..(r + 1) * dx]);
        let tgt = &target[r * dt..(r + 1) * dt];
        let dv: Vec<f64> = rc
            .v
            .iter()
            .zip(tgt)
            .map(|(v, y)| {
                loss += (v - y) * (v - y);
                2.0 * (v - y) * scale
            })
            .collect();
        // output layer: v = W_o h_K + b_o (no activation, as dingo's DenseResidualNet)
        let mut dh = lin_back(p, &layout.output, &rc.h_out, &dv, &mut grad);
        for (bl, bc) in layout.blocks.iter().zip(&rc.blocks).rev() {
            // h_next = h + y ⊙ g   (g ≡ 1 in concat mode); dh flows through the residual as is.
            let dy: Vec<f64> = match (&bc.g, &bl.gate) {
                (Some(g), Some(gl)) => {
                    let ds: Vec<f64> = (0..bl.width)
                        .map(|i| dh[i] * bc.y[i] * g[i] * (1.0 - g[i]))
                        .collect();
                    lin_back(p, gl, &rc.c, &ds, &mut grad); // dc not needed (no params upstream)
                    dh.iter().zip(g).map(|(d, gi)| d * gi).collect()
                }
                _ => dh.clone(),
            };
            let da2 = lin_back(p, &bl.linear2, &bc.a2, &dy, &mut grad);
            let du: Vec<f64> = da2.iter().zip(&bc.u).map(|(d, &u)| d * gelu_grad(u)).collect();
            let da1 = lin_back(p, &bl.linear1, &bc.a1, &du, &mut grad);
            for i in 0..bl.width {
                dh[i] += da1[i] * gelu_grad(bc.h[i]);
            }
            if let (Some(rl), Some(pre)) = (&bl.resize, &bc.h_pre_resize) {
                dh = lin_back(p, rl, pre, &dh, &mut grad);
            }
        }
        let dz = lin_back(p, &layout.input, &rc.z, &dh, &mut grad);
        // Into the embedding: its output is z's x-feature columns.
        let mut de = dz[cfg.x_column()..].to_vec();
        for (k, l) in layout.embedding.iter().enumerate().rev() {
            let da = lin_back(p, l, &rc.emb_in[k], &de, &mut grad);
            if k > 0 {
                de = da.iter().zip(&rc.emb_out[k - 1]).map(|(d, &e)| d * gelu_grad(e)).collect();
            }
        }
    }
    (loss * scale, grad)
}

/// Forward-mode Jacobian-vector product with respect to θ_t (t and x held fixed).
///
/// * `params [layout.len]`, `t [B]`, `theta [B, dim_theta]`, `x [B, dim_x]`,
///   `eps [B, dim_theta]` (one tangent per row).
///
/// Returns `(v [B, dim_theta], J·eps [B, dim_theta])` with `J = ∂v/∂θ_t` of each row.
/// In concat mode θ enters through the main input `z = [t, θ, e]`; in glu mode through
/// every block's gate context `c = [t, θ]`. The x-embedding `e` carries no tangent.
///
/// # Panics
/// If the shapes disagree with `cfg`.
pub fn jvp(
    cfg: &NetConfig,
    params: &[f64],
    t: &[f64],
    theta: &[f64],
    x: &[f64],
    eps: &[f64],
) -> (Vec<f64>, Vec<f64>) {
    let b = check_shapes(cfg, params, t, theta, x);
    let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
    let de = cfg.x_features();
    assert_eq!(eps.len(), b * dt, "eps must be [B, dim_theta]");
    let layout = cfg.layout();
    let p = params;
    let mut v = Vec::with_capacity(b * dt);
    let mut jv = Vec::with_capacity(b * dt);
    for r in 0..b {
        let rc = forward_row(cfg, p, t[r], &theta[r * dt..(r + 1) * dt], &x[r * dx..(r + 1) * dx]);
        let e = &eps[r * dt..(r + 1) * dt];
        // tangents of c = [t, θ] and z
        let mut dc = vec![0.0; 1 + dt];
        dc[1..].copy_from_slice(e);
        let dz = match cfg.conditioning {
            Conditioning::Concat => {
                let mut dz = dc.clone();
                dz.extend(std::iter::repeat_n(0.0, de));
                dz
            }
            Conditioning::Glu => vec![0.0; de],
        };
        let mut dh = lin_nobias(p, &layout.input, &dz);
        for (bl, bc) in layout.blocks.iter().zip(&rc.blocks) {
            if let Some(rl) = &bl.resize {
                dh = lin_nobias(p, rl, &dh);
            }
            let da1: Vec<f64> = dh.iter().zip(&bc.h).map(|(d, &h)| d * gelu_grad(h)).collect();
            let du = lin_nobias(p, &bl.linear1, &da1);
            let da2: Vec<f64> = du.iter().zip(&bc.u).map(|(d, &u)| d * gelu_grad(u)).collect();
            let dy = lin_nobias(p, &bl.linear2, &da2);
            match (&bc.g, &bl.gate) {
                (Some(g), Some(gl)) => {
                    let ds = lin_nobias(p, gl, &dc);
                    for i in 0..bl.width {
                        let dg = g[i] * (1.0 - g[i]) * ds[i];
                        dh[i] += dy[i] * g[i] + bc.y[i] * dg;
                    }
                }
                _ => {
                    for i in 0..bl.width {
                        dh[i] += dy[i];
                    }
                }
            }
        }
        jv.extend(lin_nobias(p, &layout.output, &dh));
        v.extend_from_slice(&rc.v);
    }
    (v, jv)
}

/// Exact divergence `∇_θ · v = Σ_i ∂v_i/∂θ_i` of each row, computed with `dim_theta`
/// JVPs against the unit tangents `e_i` (no Hutchinson estimator).
///
/// * `params [layout.len]`, `t [B]`, `theta [B, dim_theta]`, `x [B, dim_x]`.
///
/// Returns `div [B]`.
///
/// # Panics
/// If the shapes disagree with `cfg`.
pub fn divergence(cfg: &NetConfig, params: &[f64], t: &[f64], theta: &[f64], x: &[f64]) -> Vec<f64> {
    let b = check_shapes(cfg, params, t, theta, x);
    let dt = cfg.dim_theta;
    let mut div = vec![0.0; b];
    for i in 0..dt {
        let mut eps = vec![0.0; b * dt];
        for r in 0..b {
            eps[r * dt + i] = 1.0;
        }
        let (_, jv) = jvp(cfg, params, t, theta, x, &eps);
        for r in 0..b {
            div[r] += jv[r * dt + i];
        }
    }
    div
}
