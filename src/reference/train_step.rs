//! The element-wise parts of the training step that are kernels of their own: the
//! flow-matching loss with its gradient (`fm_loss`) and the backward of the GLU gate
//! (`glu_backward`).

/// `(Σ_e (v_e − target_e)², dL/dv = scale · (v − target))` over `v`, `target` `[count]`.
pub fn fm_loss(v: &[f64], target: &[f64], scale: f64) -> (f64, Vec<f64>) {
    assert_eq!(v.len(), target.len(), "fm_loss: v and target must have the same length");
    let d: Vec<f64> = v.iter().zip(target).map(|(a, b)| a - b).collect();
    (d.iter().map(|x| x * x).sum(), d.iter().map(|x| scale * x).collect())
}

/// Backward of the gate `h' = h + y ⊙ g` with `g = σ(gate_pre)`, element-wise over
/// `[count]`: `(dy = dh ⊙ g, dgate_pre = dh ⊙ y ⊙ g (1 − g))`.
pub fn glu_backward(dh: &[f64], y: &[f64], g: &[f64]) -> (Vec<f64>, Vec<f64>) {
    assert!(dh.len() == y.len() && y.len() == g.len(), "glu_backward: lengths differ");
    let dy = dh.iter().zip(g).map(|(d, g)| d * g).collect();
    let dgp = dh.iter().zip(y).zip(g).map(|((d, y), g)| d * y * g * (1.0 - g)).collect();
    (dy, dgp)
}
