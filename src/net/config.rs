//! Configuration and flat parameter layout of the vector-field network.
//!
//! The network is dingo's `DenseResidualNet` (Dax et al. 2021/2023), which FMPE uses as
//! its vector field `v(t, θ_t, x)`. With hidden widths `hidden = [H_1, …, H_K]` (one
//! residual block per entry) it computes, for one row (all vectors are rows, `W` is
//! `[out, in]` row-major as in PyTorch, `lin(W, b, a) = a Wᵀ + b`):
//!
//! ```text
//! concat mode: z = [t, θ_t, x]      (d_in = 1 + dim_theta + dim_x), no gate context
//! glu mode:    z = x                (d_in = dim_x),  context c = [t, θ_t] (1 + dim_theta)
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
//! All parameters live in **one flat f32 buffer**; [`ParamLayout`] gives each tensor's
//! offset, in this order: `input`, then for each block k: `resize.k` (only if present),
//! `blocks.k.linear1`, `blocks.k.linear2`, `blocks.k.gate` (glu only), then `output`;
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
            other => Err(Error::invalid(format!(
                "unknown conditioning '{other}' (expected concat or glu)"
            ))),
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
    /// [`Error::Invalid`] if a dimension or width is zero or there is no block.
    pub fn validate(&self) -> Result<()> {
        if self.dim_theta == 0 || self.dim_x == 0 {
            return Err(Error::invalid("dim_theta and dim_x must be positive"));
        }
        if self.hidden.is_empty() || self.hidden.contains(&0) {
            return Err(Error::usage("--hidden needs at least one positive width"));
        }
        Ok(())
    }

    /// Width of the main input `z`: `1 + dim_theta + dim_x` (concat) or `dim_x` (glu).
    pub fn input_dim(&self) -> usize {
        match self.conditioning {
            Conditioning::Concat => 1 + self.dim_theta + self.dim_x,
            Conditioning::Glu => self.dim_x,
        }
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
        ParamLayout { input, blocks, output, len: off }
    }
}

impl ParamLayout {
    /// All linear layers in buffer order.
    pub fn linears(&self) -> Vec<&LinearLayout> {
        let mut v = vec![&self.input];
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

/// Initial parameters `[layout.len]`: PyTorch's `nn.Linear` default
/// (weights and biases U(−1/√fan_in, 1/√fan_in)), except every block's `linear2`,
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
