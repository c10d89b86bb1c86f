//! One minibatch of the C2ST classifier (sbibm's recipe: scikit-learn's
//! `MLPClassifier` with two ReLU hidden layers of width h = 10 d and a logistic
//! output; see `crate::metrics::c2st`): the forward pass, the per-row logistic loss
//! (clipped as scikit-learn reports it), dL/dz, the hidden layers' deltas and every
//! weight and bias gradient of the mean loss. The GPU's `shaders/c2st_lanes.wgsl` (and
//! the other C2ST step paths) compute the same quantities in f32.
//!
//! Parameters are one flat vector in the layout of the GPU classifier: the weights
//! first — W1 `[h, d]`, W2 `[h, h]`, w3 `[h]`, each `[fan_out, fan_in]` row-major — then
//! the biases b1 `[h]`, b2 `[h]`, b3 (one value).

/// Offsets of the classifier's parameter blocks in its flat parameter vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Layout {
    /// Input features.
    pub d: usize,
    /// Hidden width.
    pub h: usize,
}

impl Layout {
    /// The layout of a classifier with `d` inputs and hidden width `h`.
    pub fn new(d: usize, h: usize) -> Layout {
        Layout { d, h }
    }
    /// First weight of W2 `[h, h]` (W1 `[h, d]` starts at 0).
    pub fn w2(&self) -> usize {
        self.h * self.d
    }
    /// First weight of w3 `[h]`.
    pub fn w3(&self) -> usize {
        self.w2() + self.h * self.h
    }
    /// Number of weights (the L2-penalised parameters, before the biases).
    pub fn n_weights(&self) -> usize {
        self.w3() + self.h
    }
    /// First bias of b1 `[h]`.
    pub fn b1(&self) -> usize {
        self.n_weights()
    }
    /// First bias of b2 `[h]`.
    pub fn b2(&self) -> usize {
        self.b1() + self.h
    }
    /// The output bias b3.
    pub fn b3(&self) -> usize {
        self.b2() + self.h
    }
    /// All parameters.
    pub fn len(&self) -> usize {
        self.b3() + 1
    }
    /// Never true (a classifier has at least its output bias).
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// Everything one minibatch computes (shapes for `rows` rows).
#[derive(Clone, Debug, PartialEq)]
pub struct Step {
    /// First hidden layer after ReLU, `[rows, h]`.
    pub h1: Vec<f64>,
    /// Second hidden layer after ReLU, `[rows, h]`.
    pub h2: Vec<f64>,
    /// Logits, `[rows]`.
    pub z: Vec<f64>,
    /// Per-row logistic loss clipped to [ε, −ln ε] (ε = f32 epsilon), `[rows]`.
    pub bce: Vec<f64>,
    /// dL/dz of the mean loss, `(sigmoid(z) − y) / rows`, `[rows]`.
    pub dz: Vec<f64>,
    /// dL/d(second-layer pre-activation), `[rows, h]`.
    pub d2: Vec<f64>,
    /// dL/d(first-layer pre-activation), `[rows, h]`.
    pub d1: Vec<f64>,
    /// Gradient of the mean loss (no L2 term) in the parameter layout, `[len]`.
    pub grads: Vec<f64>,
    /// Sum of the squared weights (the L2 term's ‖W‖²).
    pub wsq: f64,
}

/// The classifier's forward and backward pass on `x [rows, d]` with labels `y [rows]`
/// (0 or 1) and parameters `p` in the [`Layout`] `net`.
///
/// # Panics
/// If the lengths do not match `rows`, `net.d` and `net.len()`.
pub fn step(net: Layout, p: &[f64], x: &[f64], y: &[f64]) -> Step {
    let (d, h, rows) = (net.d, net.h, y.len());
    assert!(x.len() == rows * d && p.len() == net.len(), "c2st step: shapes");
    let (w2, w3, b1, b2, b3) = (net.w2(), net.w3(), net.b1(), net.b2(), net.b3());
    let mut s = Step {
        h1: vec![0.0; rows * h],
        h2: vec![0.0; rows * h],
        z: vec![0.0; rows],
        bce: vec![0.0; rows],
        dz: vec![0.0; rows],
        d2: vec![0.0; rows * h],
        d1: vec![0.0; rows * h],
        grads: vec![0.0; net.len()],
        wsq: p[..net.n_weights()].iter().map(|w| w * w).sum(),
    };
    let eps = f32::EPSILON as f64;
    for r in 0..rows {
        for j in 0..h {
            let a: f64 = (0..d).map(|i| p[j * d + i] * x[r * d + i]).sum::<f64>() + p[b1 + j];
            s.h1[r * h + j] = a.max(0.0);
        }
        for j in 0..h {
            let a: f64 = (0..h).map(|k| p[w2 + j * h + k] * s.h1[r * h + k]).sum::<f64>() + p[b2 + j];
            s.h2[r * h + j] = a.max(0.0);
        }
        let z = (0..h).map(|j| p[w3 + j] * s.h2[r * h + j]).sum::<f64>() + p[b3];
        s.z[r] = z;
        s.bce[r] = (z.max(0.0) - z * y[r] + (1.0 + (-z.abs()).exp()).ln()).clamp(eps, -eps.ln());
        s.dz[r] = (1.0 / (1.0 + (-z).exp()) - y[r]) / rows as f64;
        for j in 0..h {
            s.d2[r * h + j] = if s.h2[r * h + j] > 0.0 { s.dz[r] * p[w3 + j] } else { 0.0 };
        }
        for k in 0..h {
            let g: f64 = (0..h).map(|j| s.d2[r * h + j] * p[w2 + j * h + k]).sum();
            s.d1[r * h + k] = if s.h1[r * h + k] > 0.0 { g } else { 0.0 };
        }
    }
    let g = &mut s.grads;
    for r in 0..rows {
        for j in 0..h {
            for i in 0..d {
                g[j * d + i] += s.d1[r * h + j] * x[r * d + i];
            }
            for k in 0..h {
                g[w2 + j * h + k] += s.d2[r * h + j] * s.h1[r * h + k];
            }
            g[w3 + j] += s.dz[r] * s.h2[r * h + j];
            g[b1 + j] += s.d1[r * h + j];
            g[b2 + j] += s.d2[r * h + j];
        }
        g[b3] += s.dz[r];
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The mean loss as a function of the parameters, for finite differences.
    fn loss(net: Layout, p: &[f64], x: &[f64], y: &[f64]) -> f64 {
        let s = step(net, p, x, y);
        // The unclipped logistic loss (the clip is not differentiated).
        s.z.iter().zip(y).map(|(z, y)| z.max(0.0) - z * y + (1.0 + (-z.abs()).exp()).ln()).sum::<f64>() / y.len() as f64
    }

    #[test]
    fn gradients_match_finite_differences() {
        let net = Layout::new(3, 5);
        let val = |i: usize, s: f64| ((i as f64 * 0.618_034 + s).fract() - 0.5) * 1.6;
        let p: Vec<f64> = (0..net.len()).map(|i| val(i, 0.1)).collect();
        let x: Vec<f64> = (0..7 * 3).map(|i| 2.0 * val(i, 0.3)).collect();
        let y: Vec<f64> = (0..7).map(|r| (r % 2) as f64).collect();
        let s = step(net, &p, &x, &y);
        assert_eq!(net.len(), 15 + 25 + 5 + 5 + 5 + 1);
        let h = 1e-6;
        for i in 0..net.len() {
            let (mut up, mut down) = (p.clone(), p.clone());
            up[i] += h;
            down[i] -= h;
            let fd = (loss(net, &up, &x, &y) - loss(net, &down, &x, &y)) / (2.0 * h);
            assert!((fd - s.grads[i]).abs() < 1e-7, "parameter {i}: finite difference {fd}, gradient {}", s.grads[i]);
        }
        let wsq: f64 = p[..net.n_weights()].iter().map(|w| w * w).sum();
        assert_eq!(s.wsq, wsq);
        assert!(s.h1.contains(&0.0) && s.h1.iter().any(|&v| v > 0.0), "some units are off, some on");
    }
}
