//! Batched ODE solvers: fixed-step classic RK4 and Dormand–Prince 5(4) with per-row
//! adaptive step sizes.
//!
//! The field is `f(t [n], y [n, d]) -> dy [n, d]`, called on the **whole batch in its
//! original row order** every time (so a field may depend on the row index, e.g. on a
//! per-row observation x). Rows that have already finished are still passed (at their
//! final `t` and `y`) and their derivatives are ignored. For the results of a row to be
//! independent of the other rows, the field must itself act row by row.
//!
//! Sources: Kutta 1901 / Hairer, Nørsett & Wanner, *Solving ODEs I*, Sec. II.1 (RK4);
//! Dormand & Prince, "A family of embedded Runge–Kutta formulae", J. Comp. Appl. Math.
//! 6 (1980); Hairer, Nørsett & Wanner, Sec. II.4–5 and the code `DOPRI5` (tableau,
//! FSAL, error norm, step-size control).

/// Classic fourth-order Runge–Kutta with `steps` equal steps `h = (t1 − t0)/steps`
/// (t1 < t0 integrates backwards). Step `i` starts at `t0 + i·h`.
///
/// * `f(t [n], y [n, d]) -> dy [n, d]`, `y0 [n, d]`.
///
/// Returns `y(t1) [n, d]`.
///
/// # Panics
/// If `y0.len() != n * d` or the field returns a wrong length.
pub fn rk4<F>(f: F, y0: &[f64], n: usize, d: usize, t0: f64, t1: f64, steps: usize) -> Vec<f64>
where
    F: Fn(&[f64], &[f64]) -> Vec<f64>,
{
    assert_eq!(y0.len(), n * d, "rk4: y0 must be [n, d]");
    let mut y = y0.to_vec();
    if steps == 0 {
        return y;
    }
    let h = (t1 - t0) / steps as f64;
    let call = |t: f64, y: &[f64]| {
        let k = f(&vec![t; n], y);
        assert_eq!(k.len(), n * d, "rk4: field must return [n, d]");
        k
    };
    let axpy = |y: &[f64], a: f64, k: &[f64]| -> Vec<f64> { y.iter().zip(k).map(|(y, k)| y + a * k).collect() };
    for i in 0..steps {
        let t = t0 + i as f64 * h;
        let k1 = call(t, &y);
        let k2 = call(t + 0.5 * h, &axpy(&y, 0.5 * h, &k1));
        let k3 = call(t + 0.5 * h, &axpy(&y, 0.5 * h, &k2));
        let k4 = call(t + h, &axpy(&y, h, &k3));
        for j in 0..n * d {
            y[j] += h / 6.0 * (k1[j] + 2.0 * k2[j] + 2.0 * k3[j] + k4[j]);
        }
    }
    y
}

/// Dormand–Prince nodes `c_i`.
pub const DP_C: [f64; 7] = [0.0, 1.0 / 5.0, 3.0 / 10.0, 4.0 / 5.0, 8.0 / 9.0, 1.0, 1.0];
/// Dormand–Prince coupling coefficients `a_ij` (row i = stage i+1, lower triangular).
pub const DP_A: [[f64; 6]; 7] = [
    [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [1.0 / 5.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    [3.0 / 40.0, 9.0 / 40.0, 0.0, 0.0, 0.0, 0.0],
    [44.0 / 45.0, -56.0 / 15.0, 32.0 / 9.0, 0.0, 0.0, 0.0],
    [19372.0 / 6561.0, -25360.0 / 2187.0, 64448.0 / 6561.0, -212.0 / 729.0, 0.0, 0.0],
    [9017.0 / 3168.0, -355.0 / 33.0, 46732.0 / 5247.0, 49.0 / 176.0, -5103.0 / 18656.0, 0.0],
    [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0],
];
/// Fifth-order weights `b_i` (the solution that is propagated; equal to the last row of
/// `A`, which gives FSAL).
pub const DP_B5: [f64; 7] =
    [35.0 / 384.0, 0.0, 500.0 / 1113.0, 125.0 / 192.0, -2187.0 / 6784.0, 11.0 / 84.0, 0.0];
/// Embedded fourth-order weights `b*_i`.
pub const DP_B4: [f64; 7] = [
    5179.0 / 57600.0,
    0.0,
    7571.0 / 16695.0,
    393.0 / 640.0,
    -92097.0 / 339200.0,
    187.0 / 2100.0,
    1.0 / 40.0,
];

/// Safety limit on accepted + rejected steps of one row.
const MAX_STEPS_PER_ROW: u32 = 1_000_000;

/// Dormand–Prince 5(4) with FSAL and **per-row** adaptive steps: every row has its own
/// `t`, `h` and accept/reject decision, so a row's result does not depend on the other
/// rows (provided the field acts row by row).
///
/// * `f(t [n], y [n, d]) -> dy [n, d]`, `y0 [n, d]`; integrates from `t0` to `t1`
///   (backwards with negative steps if `t1 < t0`).
/// * Error of a step (per row): `e = h Σ_j (b5_j − b4_j) k_j`,
///   `err = sqrt(mean_{i < d_err} (e_i / (atol + rtol·max(|y_i|, |y_new_i|)))²)`;
///   only the first `d_err` components count (extra channels, e.g. a log-density, are
///   excluded). The step is accepted iff `err <= 1` (a NaN error rejects).
/// * Step size: initial `|h| = h0` (dopri default 0.05); each step uses
///   `h = dir·min(|h|, |t1 − t|)`; after the step (accepted or rejected)
///   `h ← h·clamp(0.9·err^(−1/5), 0.2, 10)` (factor 10 if `err == 0`, 0.2 if NaN), where
///   `h` is the step just attempted. A row is done when it reaches `t1` exactly (the
///   last step is clipped and `t` is then set to `t1`).
/// * FSAL: `k1` of a step is the `k7 = f(t + h, y_new)` of the previous accepted step
///   (after a rejection the old `k1` is reused); the very first `k1 = f(t0, y0)`.
///
/// Returns `(y(t1) [n, d], accepted steps [n], rejected steps [n])`.
///
/// # Panics
/// If `y0.len() != n * d`, `d_err > d`, `h0 <= 0`, or a row exceeds 10⁶ steps.
#[allow(clippy::too_many_arguments)]
pub fn dopri5<F>(
    f: F,
    y0: &[f64],
    n: usize,
    d: usize,
    d_err: usize,
    t0: f64,
    t1: f64,
    atol: f64,
    rtol: f64,
    h0: f64,
) -> (Vec<f64>, Vec<u32>, Vec<u32>)
where
    F: Fn(&[f64], &[f64]) -> Vec<f64>,
{
    assert_eq!(y0.len(), n * d, "dopri5: y0 must be [n, d]");
    assert!(d_err <= d, "dopri5: d_err must be <= d");
    assert!(h0 > 0.0, "dopri5: h0 must be positive");
    let mut y = y0.to_vec();
    let mut accepted = vec![0u32; n];
    let mut rejected = vec![0u32; n];
    if n == 0 || t0 == t1 {
        return (y, accepted, rejected);
    }
    let dir = if t1 > t0 { 1.0 } else { -1.0 };
    let call = |t: &[f64], y: &[f64]| {
        let k = f(t, y);
        assert_eq!(k.len(), n * d, "dopri5: field must return [n, d]");
        k
    };
    let mut t = vec![t0; n];
    let mut h = vec![dir * h0; n];
    let mut done = vec![false; n];
    let mut k1 = call(&t, &y);
    let mut ks: Vec<Vec<f64>> = vec![Vec::new(); 7];
    while done.iter().any(|&x| !x) {
        // step actually attempted by each row (0 for finished rows)
        let mut hs = vec![0.0; n];
        let mut last = vec![false; n];
        for r in 0..n {
            if !done[r] {
                let rem = t1 - t[r];
                if h[r].abs() >= rem.abs() {
                    hs[r] = rem;
                    last[r] = true;
                } else {
                    hs[r] = h[r];
                }
            }
        }
        ks[0] = k1.clone();
        for s in 1..7 {
            let ts: Vec<f64> = (0..n).map(|r| t[r] + DP_C[s] * hs[r]).collect();
            let mut ys = y.clone();
            for r in 0..n {
                for i in 0..d {
                    let mut acc = 0.0;
                    for (j, kj) in ks.iter().enumerate().take(s) {
                        acc += DP_A[s][j] * kj[r * d + i];
                    }
                    ys[r * d + i] += hs[r] * acc;
                }
            }
            if s == 6 {
                // stage 7 is evaluated at the new solution (A row 7 = b5)
                let y_new = ys.clone();
                let t_new: Vec<f64> = (0..n).map(|r| if last[r] { t1 } else { t[r] + hs[r] }).collect();
                ks[6] = call(&t_new, &y_new);
                // error estimate and accept/reject, row by row
                for r in 0..n {
                    if done[r] {
                        continue;
                    }
                    let mut ss = 0.0;
                    for i in 0..d_err {
                        let mut e = 0.0;
                        for (j, kj) in ks.iter().enumerate() {
                            e += (DP_B5[j] - DP_B4[j]) * kj[r * d + i];
                        }
                        e *= hs[r];
                        let sc = atol + rtol * y[r * d + i].abs().max(y_new[r * d + i].abs());
                        ss += (e / sc) * (e / sc);
                    }
                    let err = if d_err == 0 { 0.0 } else { (ss / d_err as f64).sqrt() };
                    let factor = if err == 0.0 {
                        10.0
                    } else if err.is_nan() {
                        0.2
                    } else {
                        (0.9 * err.powf(-0.2)).clamp(0.2, 10.0)
                    };
                    if err <= 1.0 {
                        accepted[r] += 1;
                        y[r * d..(r + 1) * d].copy_from_slice(&y_new[r * d..(r + 1) * d]);
                        k1[r * d..(r + 1) * d].copy_from_slice(&ks[6][r * d..(r + 1) * d]);
                        t[r] = t_new[r];
                        if last[r] {
                            done[r] = true;
                        }
                    } else {
                        rejected[r] += 1;
                    }
                    h[r] = hs[r] * factor;
                    assert!(
                        accepted[r] + rejected[r] <= MAX_STEPS_PER_ROW,
                        "dopri5: row {r} exceeded {MAX_STEPS_PER_ROW} steps (t = {}, h = {})",
                        t[r],
                        h[r]
                    );
                }
            } else {
                ks[s] = call(&ts, &ys);
            }
        }
    }
    (y, accepted, rejected)
}

/// Embedded error weights of the GPU step, `DP_B5 − DP_B4`.
pub fn dp_err_weights() -> [f64; 7] {
    std::array::from_fn(|j| DP_B5[j] - DP_B4[j])
}

/// One row's state of the GPU dopri5 step (`dopri5_finalize`).
#[derive(Clone, Debug, PartialEq)]
pub struct Dopri5Row {
    /// State `[d]`.
    pub y: Vec<f64>,
    /// Time.
    pub t: f64,
    /// Step size of the step just evaluated (signed).
    pub h: f64,
    /// `k_1 … k_7`, each `[d]` (`k_7 = f(t + h, y5)`).
    pub k: Vec<Vec<f64>>,
    /// Accepted and rejected step counts.
    pub stats: (f64, f64),
    /// Still integrating.
    pub active: bool,
}

/// The per-row step control of `dopri5_finalize` (shaders/ode_dopri5.wgsl) in f64:
/// `y5 = y + h Σ b5_s k_s`, `err = sqrt(mean_{j < d_err} (h Σ e_s k_s,j /
/// (atol + rtol max(|y_j|, |y5_j|)))²)`; accept when `err ≤ 1` or `|h| ≤ h_min`
/// (then `y = y5`, `t += h` snapped to `t1` within 1e-6, `k_1 = k_7`); the next step is
/// `h · clamp(0.9 err^(−1/5), 0.2, 10)` (≤ 1 after a rejection, 10 for err = 0), clipped
/// to `|t1 − t|`; a row at `t1` gets `h = 0` and stops. A non-finite error stops the row
/// with NaN state. Inactive rows are returned unchanged.
pub fn dopri5_finalize_row(row: &Dopri5Row, d_err: usize, t1: f64, atol: f64, rtol: f64, h_min: f64) -> Dopri5Row {
    let mut r = row.clone();
    if !row.active {
        return r;
    }
    let (h, t, d) = (row.h, row.t, row.y.len());
    let e_w = dp_err_weights();
    let y5: Vec<f64> = (0..d).map(|j| row.y[j] + h * (0..7).map(|s| DP_B5[s] * row.k[s][j]).sum::<f64>()).collect();
    let mut acc = 0.0;
    for j in 0..d_err {
        let se: f64 = (0..7).map(|s| e_w[s] * row.k[s][j]).sum();
        let sc = atol + rtol * row.y[j].abs().max(y5[j].abs());
        acc += (h * se / sc).powi(2);
    }
    let err = (acc / d_err.max(1) as f64).sqrt();
    if !err.is_finite() {
        r.y = vec![f64::NAN; d];
        r.h = 0.0;
        r.active = false;
        return r;
    }
    let dir = (t1 - t).signum();
    let mut factor = if err > 0.0 { (0.9 * err.powf(-0.2)).clamp(0.2, 10.0) } else { 10.0 };
    let mut t_new = t;
    if err <= 1.0 || h.abs() <= h_min {
        r.y = y5;
        r.k[0] = row.k[6].clone();
        t_new = t + h;
        if dir * (t1 - t_new) <= 1e-6 {
            t_new = t1;
        }
        r.t = t_new;
        r.stats.0 += 1.0;
    } else {
        factor = factor.min(1.0);
        r.stats.1 += 1.0;
    }
    if t_new == t1 {
        r.h = 0.0;
        r.active = false;
    } else {
        let rem = t1 - t_new;
        r.h = rem.signum() * (h.abs() * factor).min(rem.abs());
    }
    r
}

/// The Runge–Kutta stage input of `ode_axpy` (mode stage) for one row:
/// `[t + c h, y_j + h Σ_s coef_s k_s,j for j < d_net]`.
pub fn stage_input(y: &[f64], t: f64, h: f64, k: &[Vec<f64>], c: f64, coef: &[f64], d_net: usize) -> Vec<f64> {
    let mut out = vec![t + c * h];
    out.extend((0..d_net).map(|j| y[j] + h * coef.iter().zip(k).map(|(a, ks)| a * ks[j]).sum::<f64>()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Consistency (Σ_j a_ij = c_i), FSAL (b5 = last row of A) and the quadrature order
    /// conditions Σ b_i c_i^(q−1) = 1/q (q ≤ 5 for b5, q ≤ 4 for b4) of the tableau.
    #[test]
    fn dormand_prince_tableau() {
        for i in 0..7 {
            let s: f64 = DP_A[i].iter().sum();
            assert!((s - DP_C[i]).abs() < 1e-14, "row {i}");
        }
        assert_eq!(&DP_B5[..6], &DP_A[6][..]);
        for (b, qmax) in [(&DP_B5, 5), (&DP_B4, 4)] {
            for q in 1..=qmax {
                let s: f64 = (0..7).map(|i| b[i] * DP_C[i].powi(q - 1)).sum();
                assert!((s - 1.0 / q as f64).abs() < 1e-14, "q = {q}");
            }
        }
        // the embedded pair really differs at order 5
        let s4: f64 = (0..7).map(|i| DP_B4[i] * DP_C[i].powi(4)).sum();
        assert!((s4 - 0.2).abs() > 1e-4);
    }

    /// A zero field: every step has err = 0, so h grows by 10 until it is clipped to t1.
    #[test]
    fn zero_field_step_growth() {
        let f = |t: &[f64], y: &[f64]| vec![0.0; y.len().max(t.len())];
        let (y, acc, rej) = dopri5(f, &[1.0, 2.0], 2, 1, 1, 0.0, 10.0, 1e-6, 1e-6, 0.05);
        assert_eq!(y, vec![1.0, 2.0]);
        // steps 0.05, 0.5, 5, then clipped 4.45
        assert_eq!(acc, vec![4, 4]);
        assert_eq!(rej, vec![0, 0]);
    }
}
