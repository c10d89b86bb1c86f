//! The data path before the GPU: simulations checked and mapped by the x transform
//! ([`Simulations`]), the train/validation split, the shuffled f32 upload layout of the
//! dataset buffer, and the z-score statistics the GPU computes from it
//! ([`ZscoreStats`]).

use rand::seq::SliceRandom;

use crate::error::{Error, Result};
use crate::gpu::Gpu;
use crate::net::NetConfig;
use crate::train_config::TrainConfig;
use crate::transform::XTransform;

/// Simulations `(θ, x)` ready for training: row-major θ `[n, dim_theta]` in original
/// units and x `[n, dim_x]` already mapped by the x transform (the data path applies
/// it once, here, in f64). Every value is finite.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Simulations {
    dim_theta: usize,
    dim_x: usize,
    theta: Vec<f64>,
    x: Vec<f64>,
}

impl Simulations {
    /// No rows yet, for θ of `dim_theta` and x of `dim_x` components.
    pub fn empty(dim_theta: usize, dim_x: usize) -> Simulations {
        Simulations { dim_theta, dim_x, theta: Vec::new(), x: Vec::new() }
    }

    /// Appends rows `theta [m, dim_theta]` and `x [m, dim_x]` (row-major), mapping x by
    /// `x_transform` (in f64) first.
    ///
    /// # Errors
    /// [`Error::Invalid`] when the row counts differ or a value is not finite (drop
    /// failed simulations first, e.g. with [`crate::io::drop_nonfinite_rows`]) or when
    /// an x lies outside the x transform's domain (naming its 1-based row, within this
    /// call, and column). Nothing is appended on error.
    pub fn append(&mut self, theta: &[f64], x: &[f64], x_transform: XTransform) -> Result<()> {
        let (dt, dx) = (self.dim_theta, self.dim_x);
        if dt == 0 || dx == 0 {
            return Err(Error::invalid("dim_theta and dim_x must be positive"));
        }
        if !theta.len().is_multiple_of(dt) || !x.len().is_multiple_of(dx) || theta.len() / dt != x.len() / dx {
            return Err(Error::invalid(format!(
                "theta has {} values for dim_theta = {dt} and x has {} for dim_x = {dx}: row counts differ",
                theta.len(),
                x.len()
            )));
        }
        let mut mapped = x.to_vec();
        if !x_transform.is_identity() {
            x_transform.apply(&mut mapped, dx)?;
        }
        if theta.iter().chain(mapped.iter()).any(|v| !v.is_finite()) {
            return Err(Error::invalid("theta and x must be finite (drop failed simulations first)"));
        }
        self.theta.extend_from_slice(theta);
        self.x.extend(mapped);
        Ok(())
    }

    /// Rows held.
    pub fn rows(&self) -> usize {
        self.theta.len() / self.dim_theta.max(1)
    }

    /// θ `[rows, dim_theta]`, original units.
    pub fn theta(&self) -> &[f64] {
        &self.theta
    }

    /// x `[rows, dim_x]`, after the x transform.
    pub fn x(&self) -> &[f64] {
        &self.x
    }

    /// Data warnings: one per constant column of θ or x (its standard deviation is
    /// taken as 1 in the z-scoring).
    pub fn warnings(&self) -> Vec<String> {
        constant_column_warnings(&self.theta, &self.x, self.dim_theta, self.dim_x)
    }
}

/// One warning per constant column of `theta [n, dt]` and `x [n, dx]`.
pub(crate) fn constant_column_warnings(theta: &[f64], x: &[f64], dt: usize, dx: usize) -> Vec<String> {
    let n = theta.len() / dt.max(1);
    let mut warnings = Vec::new();
    if n == 0 {
        return warnings;
    }
    for (name, vals, d) in [("theta", theta, dt), ("x", x, dx)] {
        for c in 0..d {
            let first = vals[c];
            if (0..n).all(|r| vals[r * d + c] == first) {
                warnings.push(format!("{name} column {} is constant ({first}); its standard deviation is taken as 1", c + 1));
            }
        }
    }
    warnings
}

/// Checks the shapes and finiteness of `theta [n, dim_theta]` and `x [n, dim_x]`;
/// returns n.
pub(crate) fn check_rows(cfg: &NetConfig, theta: &[f64], x: &[f64]) -> Result<usize> {
    let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
    if !theta.len().is_multiple_of(dt) || !x.len().is_multiple_of(dx) || theta.len() / dt != x.len() / dx {
        return Err(Error::invalid(format!(
            "theta has {} values for dim_theta = {dt} and x has {} for dim_x = {dx}: row counts differ",
            theta.len(),
            x.len()
        )));
    }
    if theta.iter().chain(x.iter()).any(|v| !v.is_finite()) {
        return Err(Error::invalid("theta and x must be finite (drop failed simulations first)"));
    }
    Ok(theta.len() / dt)
}

/// How the n rows are used: the first `n_train` (after the shuffle) train in minibatches
/// of `batch`, the last `n_val` validate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Split {
    /// All rows.
    pub n: usize,
    /// Training rows.
    pub n_train: usize,
    /// Validation rows.
    pub n_val: usize,
    /// Minibatch size actually used (`batch_size` capped at `n_train`).
    pub batch: usize,
    /// `n_train / batch` (the last partial batch is dropped).
    pub steps_per_epoch: usize,
}

impl Split {
    /// The split of `n` rows under `tc`, checked against the device's limits.
    pub(crate) fn new(gpu: &Gpu, cfg: &NetConfig, tc: &TrainConfig, n: usize) -> Result<Split> {
        let (dt, dx) = (cfg.dim_theta, cfg.dim_x);
        let n_val = ((n as f64) * tc.validation_fraction).round() as usize;
        if tc.validation_fraction > 0.0 && (n_val == 0 || n - n_val < 2) {
            let min = min_rows(tc.validation_fraction);
            return Err(Error::option(
                "validation_fraction",
                format!(
                    "{n} simulations are too few to hold out a validation fraction of {}: at least {min} are needed \
                     (1 validation row and 2 training rows); simulate more, or use a validation fraction of 0 to \
                     train without validation (early stopping then watches the training loss)",
                    tc.validation_fraction
                ),
            ));
        }
        let n_train = n - n_val;
        if n_train < 2 {
            return Err(Error::invalid(format!("need at least 2 training rows, have {n_train}")));
        }
        let batch = tc.batch_size.min(n_train);
        let max_rows = gpu.limits().max_compute_workgroups_per_dimension as usize * 64;
        if batch > max_rows {
            return Err(Error::option(
                "batch_size",
                format!("{batch} exceeds this device's dispatch limit ({max_rows} rows)"),
            ));
        }
        if (n * (dt + dx)) as u64 > gpu.max_binding_floats() {
            return Err(Error::invalid(format!(
                "the dataset ({n} rows of {} floats) exceeds the device's largest storage binding",
                dt + dx
            )));
        }
        Ok(Split { n, n_train, n_val, batch, steps_per_epoch: n_train / batch })
    }

    /// Validation chunks of at most `batch` rows.
    pub(crate) fn val_chunks(&self) -> usize {
        self.n_val.div_ceil(self.batch)
    }
}

/// The fewest rows that give at least one validation row and two training rows for
/// a validation fraction `f` in (0, 1) (rows are split as `round(n f)` validation).
pub(crate) fn min_rows(f: f64) -> usize {
    // round(n f) >= 1  <=>  n f >= 0.5; then n - round(n f) >= 2 for the first such n
    // at most a few rows later.
    let mut n = ((0.5 / f).ceil() as usize).max(3);
    while n < usize::MAX / 2 && (((n as f64) * f).round() < 1.0 || n - ((n as f64) * f).round() as usize <= 1) {
        n += 1;
    }
    n
}

/// Shuffles the rows once (a host permutation drawn from `rng`) and lays them out as the
/// dataset buffer: θ `[n, dt]` then x `[n, dx]`, f32. Returns the buffer and the
/// permutation (`order[r]` is the input row at shuffled row `r`).
pub(crate) fn shuffled_upload(theta: &[f64], x: &[f64], dt: usize, dx: usize, rng: &mut impl rand::Rng) -> (Vec<f32>, Vec<usize>) {
    let n = theta.len() / dt;
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(rng);
    let mut data = vec![0f32; n * (dt + dx)];
    for (r, &src) in order.iter().enumerate() {
        for j in 0..dt {
            data[r * dt + j] = theta[src * dt + j] as f32;
        }
        for j in 0..dx {
            data[n * dt + r * dx + j] = x[src * dx + j] as f32;
        }
    }
    (data, order)
}

/// z-score statistics of the training rows (ddof = 1; a zero standard deviation is
/// taken as 1). θ's are those of θ' = T(θ) under the parameter transform.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ZscoreStats {
    /// Column means of θ' `[dim_theta]`.
    pub theta_mean: Vec<f64>,
    /// Column standard deviations of θ' `[dim_theta]`.
    pub theta_std: Vec<f64>,
    /// Column means of x (after the x transform) `[dim_x]`.
    pub x_mean: Vec<f64>,
    /// Column standard deviations of x `[dim_x]`.
    pub x_std: Vec<f64>,
}

#[cfg(test)]
mod tests {
    use super::constant_column_warnings;

    #[test]
    fn min_rows_gives_one_validation_and_two_training_rows() {
        for (f, want) in [(0.05, 10), (0.1, 5), (0.5, 4), (0.9, 16), (0.01, 50)] {
            assert_eq!(super::min_rows(f), want, "fraction {f}");
            let n = want;
            let n_val = ((n as f64) * f).round() as usize;
            assert!(n_val >= 1 && n - n_val >= 2, "fraction {f}: {n} rows give {n_val} validation rows");
            let m = n - 1;
            let m_val = ((m as f64) * f).round() as usize;
            assert!(m_val == 0 || m - m_val < 2, "fraction {f}: {m} rows would already do");
        }
    }

    #[test]
    fn constant_columns_are_reported_and_no_rows_is_no_warning() {
        assert!(constant_column_warnings(&[], &[], 2, 3).is_empty());
        let theta = [1.0, 5.0, 2.0, 5.0];
        let x = [0.5, 0.5];
        let w = constant_column_warnings(&theta, &x, 2, 1);
        assert_eq!(w.len(), 2, "{w:?}");
        assert!(w[0].starts_with("theta column 2 is constant (5)") && w[1].starts_with("x column 1"), "{w:?}");
    }
}
