//! Configuration and flat parameter layout of the vector-field network.
//!
//! The network is dingo's `DenseResidualNet` (Dax et al. 2021/2023), which FMPE uses as
//! its vector field `v(t, θ_t, x)`. With hidden widths `hidden = [H_1, …, H_K]` (one
//! residual block per entry) it computes, for one row (all vectors are rows, `W` is
//! `[out, in]` row-major as in PyTorch, `lin(W, b, a) = a Wᵀ + b`):
//!
//! ```text
//! optional x-embedding, widths embedding = [E_1, …, E_L] (L = 0: e = x, d_e = dim_x):
//!     e = lin(embedding.0.weight, embedding.0.bias, x)                     [E_1]
//!     for k in 1..L:  e = lin(embedding.k.weight, embedding.k.bias, gelu(e))  [E_{k+1}]
//!     (d_e = E_L; GELU between embedding layers, none on x and none after the last)
//!
//! concat mode: z = [t, θ_t, e]      (d_in = 1 + dim_theta + d_e), no gate context
//! glu mode:    z = e                (d_in = d_e),  context c = [t, θ_t] (1 + dim_theta)
//!
//! h = lin(input.weight, input.bias, z)                                   [H_1]
//! for k in 0..K:
//!     if k > 0 and H_k != H_{k-1}:  h = lin(resize.k.weight, resize.k.bias, h)
//!     u = lin(blocks.k.linear1.weight, blocks.k.linear1.bias, gelu(h))   [H_k]
//!     y = lin(blocks.k.linear2.weight, blocks.k.linear2.bias, gelu(u))   [H_k]
//!     glu mode only: g = sigmoid(lin(blocks.k.gate.weight, blocks.k.gate.bias, c));  y = y ⊙ g
//!     h = h + y
//! v = lin(output.weight, output.bias, h)                                 [dim_theta]
//! ```
//!
//! As in dingo, the output layer reads the residual stream directly (no activation).
//! GELU is the tanh approximation, `gelu(a) = ½ a (1 + tanh(√(2/π)(a + 0.044715 a³)))`
//! (PyTorch's `approximate="tanh"`); WGSL has no `erf`.
//!
//! The embedding is trained jointly with the vector field (its gradient is the input
//! layer's gradient w.r.t. the `e` columns of `z`); it depends on x only, so sampling and
//! density evaluation compute `e(x_o)` once per ODE plan, and θ-tangents never pass it.
//!
//! All parameters live in **one flat f32 buffer**; [`ParamLayout`] gives each tensor's
//! offset, in this order: `embedding.0`, …, `embedding.{L-1}` (if any), `input`, then
//! for each block k: `resize.k` (only if present), `blocks.k.linear1`,
//! `blocks.k.linear2`, `blocks.k.gate` (glu only), then `output`;
//! within each layer the weight `[out, in]` row-major comes first, then the bias `[out]`.

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// How `(t, θ_t)` enters the network.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Conditioning {
    /// Main input `cat(t, θ_t, x)`, residual blocks without gate.
    Concat,
    /// Main input `x`; every residual block is gated by `sigmoid(W_c [t, θ_t] + b_c)`.
    Glu,
}

impl std::str::FromStr for Conditioning {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "concat" => Ok(Conditioning::Concat),
            "glu" => Ok(Conditioning::Glu),
            other => Err(Error::option("conditioning", format!("unknown conditioning '{other}' (expected concat or glu)"))),
        }
    }
}

impl std::fmt::Display for Conditioning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Conditioning::Concat => "concat",
            Conditioning::Glu => "glu",
        })
    }
}

/// Shape of the vector-field network.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetConfig {
    /// Dimension of θ (network output width).
    pub dim_theta: usize,
    /// Dimension of the observation x as fed to the network.
    pub dim_x: usize,
    /// Width of each residual block; one block per entry (at least one).
    pub hidden: Vec<usize>,
    /// Conditioning mode.
    pub conditioning: Conditioning,
    /// Output widths of the optional x-embedding MLP, one linear layer each (GELU
    /// between layers); empty: none, the network reads x directly. Absent in model files
    /// written before the embedding existed, which therefore load unchanged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub embedding: Vec<usize>,
}

/// One linear layer inside the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LinearLayout {
    /// PyTorch-style name prefix, e.g. `blocks.3.linear1`.
    pub name: String,
    /// Input features.
    pub fan_in: usize,
    /// Output features.
    pub fan_out: usize,
    /// Offset (in f32 elements) of the weight `[fan_out, fan_in]`, row-major.
    pub weight: usize,
    /// Offset (in f32 elements) of the bias `[fan_out]`.
    pub bias: usize,
}

/// The layers of one residual block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BlockLayout {
    /// Width `H_k` of the block.
    pub width: usize,
    /// Resize layer `H_{k-1} → H_k` applied before the block (None if widths agree or k = 0).
    pub resize: Option<LinearLayout>,
    /// First linear layer `H_k → H_k`.
    pub linear1: LinearLayout,
    /// Second linear layer `H_k → H_k` (initialised U(−1e-3, 1e-3), as dingo does).
    pub linear2: LinearLayout,
    /// Gate layer `1 + dim_theta → H_k` (glu mode only).
    pub gate: Option<LinearLayout>,
}

/// Offsets of every tensor of the network in the flat parameter buffer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ParamLayout {
    /// x-embedding layers, in order (`embedding.k`, `E_k → E_{k+1}` with `E_0 = dim_x`).
    pub embedding: Vec<LinearLayout>,
    /// Input layer `d_in → H_1`.
    pub input: LinearLayout,
    /// Residual blocks, in order.
    pub blocks: Vec<BlockLayout>,
    /// Output layer `H_K → dim_theta`.
    pub output: LinearLayout,
    /// Total number of parameters.
    pub len: usize,
}

impl NetConfig {
    /// Checks the configuration.
    ///
    /// # Errors
    /// [`Error::Invalid`] if a dimension is zero; [`Error::InvalidOption`] `"hidden"` /
    /// `"embedding"` if a width is zero or there is no block.
    pub fn validate(&self) -> Result<()> {
        if self.dim_theta == 0 || self.dim_x == 0 {
            return Err(Error::invalid("dim_theta and dim_x must be positive"));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::option("hidden", "needs at least one positive width"));
        }
        if self.embedding.contains(&0) {
            return Err(Error::option("embedding", "widths must be positive"));
        }
        Ok(())
    }

    /// Width `d_e` of the x-features the main network reads: the last embedding width,
    /// or `dim_x` without an embedding.
    pub fn x_features(&self) -> usize {
        self.embedding.last().copied().unwrap_or(self.dim_x)
    }

    /// Column of the main input `z` where the x-features start: `1 + dim_theta`
    /// (concat) or 0 (glu).
    pub fn x_column(&self) -> usize {
        match self.conditioning {
            Conditioning::Concat => 1 + self.dim_theta,
            Conditioning::Glu => 0,
        }
    }

    /// Width of the main input `z`: `1 + dim_theta + d_e` (concat) or `d_e` (glu), with
    /// `d_e` = [`NetConfig::x_features`].
    pub fn input_dim(&self) -> usize {
        self.x_column() + self.x_features()
    }

    /// Width of the gate context `c = [t, θ_t]` (glu mode): `1 + dim_theta`.
    pub fn context_dim(&self) -> usize {
        1 + self.dim_theta
    }

    /// The flat parameter layout (see the module docs for the order).
    pub fn layout(&self) -> ParamLayout {
        let mut off = 0usize;
        let mut lin = |name: String, fan_in: usize, fan_out: usize| {
            let l = LinearLayout { name, fan_in, fan_out, weight: off, bias: off + fan_in * fan_out };
            off += fan_in * fan_out + fan_out;
            l
        };
        let mut embedding = Vec::with_capacity(self.embedding.len());
        let mut fan_in = self.dim_x;
        for (k, &w) in self.embedding.iter().enumerate() {
            embedding.push(lin(format!("embedding.{k}"), fan_in, w));
            fan_in = w;
        }
        let input = lin("input".into(), self.input_dim(), self.hidden[0]);
        let mut blocks = Vec::with_capacity(self.hidden.len());
        for (k, &w) in self.hidden.iter().enumerate() {
            let resize = if k > 0 && self.hidden[k - 1] != w {
                Some(lin(format!("resize.{k}"), self.hidden[k - 1], w))
            } else {
                None
            };
            let linear1 = lin(format!("blocks.{k}.linear1"), w, w);
            let linear2 = lin(format!("blocks.{k}.linear2"), w, w);
            let gate = match self.conditioning {
                Conditioning::Glu => Some(lin(format!("blocks.{k}.gate"), self.context_dim(), w)),
                Conditioning::Concat => None,
            };
            blocks.push(BlockLayout { width: w, resize, linear1, linear2, gate });
        }
        let output = lin("output".into(), *self.hidden.last().unwrap(), self.dim_theta);
        ParamLayout { embedding, input, blocks, output, len: off }
    }
}

impl ParamLayout {
    /// All linear layers in buffer order.
    pub fn linears(&self) -> Vec<&LinearLayout> {
        let mut v: Vec<&LinearLayout> = self.embedding.iter().collect();
        v.push(&self.input);
        for b in &self.blocks {
            if let Some(r) = &b.resize {
                v.push(r);
            }
            v.push(&b.linear1);
            v.push(&b.linear2);
            if let Some(g) = &b.gate {
                v.push(g);
            }
        }
        v.push(&self.output);
        v
    }
}

/// Largest `dim_x` that the automatic embedding choice ([`auto_embedding`]) feeds to
/// the network directly.
pub const AUTO_EMBEDDING_MAX_DIM_X: usize = 32;

/// The embedding chosen automatically (the CLI's `--embedding auto`): none for `dim_x ≤ 32` (the input layer is
/// already a learned linear map of x, and the benchmark tasks with such x train well
/// without one), else `[128, 128, 32]`. For the 100-dimensional tasks (slcp_distractors:
/// 8 informative values among 92 distractors; bernoulli_glm_raw: 100 binary responses
/// whose sufficient statistic is 10-dimensional) the two 128-wide layers are at least as
/// wide as x, so nothing is lost before the first non-linearity, and the 32 outputs
/// exceed the number of informative statistics while keeping the main network's input
/// (and its first layer) small.
pub fn auto_embedding(dim_x: usize) -> Vec<usize> {
    if dim_x <= AUTO_EMBEDDING_MAX_DIM_X {
        Vec::new()
    } else {
        vec![128, 128, 32]
    }
}

/// Initial parameters `[layout.len]`: PyTorch's `nn.Linear` default
/// (weights and biases U(−1/√fan_in, 1/√fan_in); embedding layers included), except every block's `linear2`,
/// which is U(−1e-3, 1e-3) (weights and bias) so that each block starts near identity,
/// as in dingo's `DenseResidualNet`.
pub fn init_params(cfg: &NetConfig, rng: &mut impl rand::Rng) -> Vec<f32> {
    let layout = cfg.layout();
    let mut p = vec![0f32; layout.len];
    let mut fill = |l: &LinearLayout, bound: f32, rng: &mut dyn rand::RngCore| {
        for v in &mut p[l.weight..l.bias + l.fan_out] {
            let u: f32 = rand::Rng::random(rng);
            *v = (2.0 * u - 1.0) * bound;
        }
    };
    for l in layout.linears() {
        let small = layout.blocks.iter().any(|b| b.linear2.weight == l.weight);
        let bound = if small { 1e-3 } else { 1.0 / (l.fan_in as f32).sqrt() };
        fill(l, bound, rng);
    }
    p
}
