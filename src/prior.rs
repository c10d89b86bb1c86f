//! The prior over θ: [`Prior`] (the distributions of the sbibm tasks: uniform box,
//! Gaussian, log-normal) and [`BoxPrior`], the box support `[low, high]` that a trained
//! model stores and rejects samples against; plus the small dense linear algebra the
//! Gaussian prior needs.
//!
//! A leaf module: it depends on nothing in the crate but [`crate::error`].

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// A prior over θ ∈ R^d, as used by the sbibm tasks.
///
/// All samples are returned as `[n, d]` row-major `Vec<f64>`.
#[derive(Debug, Clone, PartialEq)]
pub enum Prior {
    /// Independent θ_i ~ U(low_i, high_i). The support used by [`Prior::in_support`] and
    /// [`Prior::log_prob`] is the closed box `[low, high]`.
    Uniform {
        /// Lower bounds, length d.
        low: Vec<f64>,
        /// Upper bounds, length d (each `> low`).
        high: Vec<f64>,
    },
    /// Multivariate normal N(mean, cov); `cov` is the **covariance** `[d, d]` row-major and
    /// must be symmetric positive definite (use [`Prior::gaussian`] to check).
    Gaussian {
        /// Mean, length d.
        mean: Vec<f64>,
        /// Covariance `[d, d]`, row-major.
        cov: Vec<f64>,
    },
    /// Independent θ_i ~ LogNormal(mu_i, sigma_i): log θ_i ~ N(mu_i, sigma_i²).
    LogNormal {
        /// Mean of log θ, length d.
        mu: Vec<f64>,
        /// Standard deviation of log θ, length d (each `> 0`).
        sigma: Vec<f64>,
    },
}

impl Prior {
    /// A Gaussian prior, checking the shapes and that `cov` (`[d, d]` row-major) is
    /// symmetric positive definite.
    ///
    /// # Errors
    /// [`Error::Invalid`] if the shapes disagree or the Cholesky factorisation fails.
    pub fn gaussian(mean: Vec<f64>, cov: Vec<f64>) -> Result<Prior> {
        let d = mean.len();
        if cov.len() != d * d {
            return Err(Error::invalid(format!(
                "Gaussian prior: covariance has {} entries, expected {d}x{d}",
                cov.len()
            )));
        }
        for i in 0..d {
            for j in 0..i {
                let (a, b) = (cov[i * d + j], cov[j * d + i]);
                if (a - b).abs() > 1e-9 * (1.0 + a.abs().max(b.abs())) {
                    return Err(Error::invalid("Gaussian prior: covariance is not symmetric"));
                }
            }
        }
        if cholesky(&cov, d).is_none() {
            return Err(Error::invalid("Gaussian prior: covariance is not positive definite"));
        }
        Ok(Prior::Gaussian { mean, cov })
    }

    /// Dimension d of θ.
    pub fn dim(&self) -> usize {
        match self {
            Prior::Uniform { low, .. } => low.len(),
            Prior::Gaussian { mean, .. } => mean.len(),
            Prior::LogNormal { mu, .. } => mu.len(),
        }
    }

    /// Draws `n` independent samples, returned as `[n, d]` row-major.
    ///
    /// Panics if a Gaussian covariance is not positive definite.
    pub fn sample(&self, n: usize, rng: &mut impl Rng) -> Vec<f64> {
        let d = self.dim();
        let mut out = Vec::with_capacity(n * d);
        match self {
            Prior::Uniform { low, high } => {
                for _ in 0..n {
                    for i in 0..d {
                        let u: f64 = rng.random();
                        out.push(low[i] + (high[i] - low[i]) * u);
                    }
                }
            }
            Prior::Gaussian { mean, cov } => {
                let l = cholesky(cov, d).expect("Gaussian prior: covariance is not positive definite");
                let mut z = vec![0.0; d];
                for _ in 0..n {
                    for zi in z.iter_mut() {
                        *zi = rng.sample(StandardNormal);
                    }
                    for i in 0..d {
                        let mut s = mean[i];
                        for j in 0..=i {
                            s += l[i * d + j] * z[j];
                        }
                        out.push(s);
                    }
                }
            }
            Prior::LogNormal { mu, sigma } => {
                for _ in 0..n {
                    for i in 0..d {
                        let z: f64 = rng.sample(StandardNormal);
                        out.push((mu[i] + sigma[i] * z).exp());
                    }
                }
            }
        }
        out
    }

    /// Whether one row `theta` (length d) lies in the support: the closed box for
    /// `Uniform`, all values finite for `Gaussian`, all values finite and `> 0` for
    /// `LogNormal`.
    pub fn in_support(&self, theta: &[f64]) -> bool {
        if theta.len() != self.dim() {
            return false;
        }
        match self {
            Prior::Uniform { low, high } => {
                theta.iter().zip(low.iter().zip(high)).all(|(&t, (&l, &h))| t >= l && t <= h)
            }
            Prior::Gaussian { .. } => theta.iter().all(|t| t.is_finite()),
            Prior::LogNormal { .. } => theta.iter().all(|&t| t.is_finite() && t > 0.0),
        }
    }

    /// Log density of one row `theta` (length d); `-inf` outside the support (or for a row
    /// of the wrong length).
    pub fn log_prob(&self, theta: &[f64]) -> f64 {
        if !self.in_support(theta) {
            return f64::NEG_INFINITY;
        }
        const LN_2PI: f64 = 1.837_877_066_409_345_5;
        match self {
            Prior::Uniform { low, high } => -low.iter().zip(high).map(|(l, h)| (h - l).ln()).sum::<f64>(),
            Prior::Gaussian { mean, cov } => {
                let d = mean.len();
                let l = cholesky(cov, d).expect("Gaussian prior: covariance is not positive definite");
                // solve L y = theta - mean
                let mut y = vec![0.0; d];
                for i in 0..d {
                    let mut s = theta[i] - mean[i];
                    for j in 0..i {
                        s -= l[i * d + j] * y[j];
                    }
                    y[i] = s / l[i * d + i];
                }
                let log_det: f64 = (0..d).map(|i| l[i * d + i].ln()).sum();
                -0.5 * d as f64 * LN_2PI - log_det - 0.5 * y.iter().map(|v| v * v).sum::<f64>()
            }
            Prior::LogNormal { mu, sigma } => theta
                .iter()
                .zip(mu.iter().zip(sigma))
                .map(|(&t, (&m, &s))| {
                    let z = (t.ln() - m) / s;
                    -t.ln() - s.ln() - 0.5 * LN_2PI - 0.5 * z * z
                })
                .sum(),
        }
    }

    /// The box `(low, high)` for a `Uniform` prior; `None` otherwise.
    pub fn bounds(&self) -> Option<(Vec<f64>, Vec<f64>)> {
        match self {
            Prior::Uniform { low, high } => Some((low.clone(), high.clone())),
            _ => None,
        }
    }

    /// The box support of a `Uniform` prior as a [`BoxPrior`] (what a trained model
    /// stores and rejects samples against); `None` for unbounded priors.
    pub fn support_box(&self) -> Option<BoxPrior> {
        self.bounds().map(|(low, high)| BoxPrior { low, high })
    }

    /// Mean of θ (length d).
    pub fn mean(&self) -> Vec<f64> {
        match self {
            Prior::Uniform { low, high } => low.iter().zip(high).map(|(l, h)| 0.5 * (l + h)).collect(),
            Prior::Gaussian { mean, .. } => mean.clone(),
            Prior::LogNormal { mu, sigma } => mu.iter().zip(sigma).map(|(m, s)| (m + 0.5 * s * s).exp()).collect(),
        }
    }

    /// Marginal variances of θ (length d).
    pub fn variance(&self) -> Vec<f64> {
        match self {
            Prior::Uniform { low, high } => low.iter().zip(high).map(|(l, h)| (h - l) * (h - l) / 12.0).collect(),
            Prior::Gaussian { mean, cov } => {
                let d = mean.len();
                (0..d).map(|i| cov[i * d + i]).collect()
            }
            Prior::LogNormal { mu, sigma } => mu
                .iter()
                .zip(sigma)
                .map(|(m, s)| ((s * s).exp() - 1.0) * (2.0 * m + s * s).exp())
                .collect(),
        }
    }
}

/// A box prior `[low_i, high_i]` per θ component, in original units: the support of a
/// uniform [`Prior`] (see [`Prior::support_box`]), stored in `model.json` as
/// `{"low": [..], "high": [..]}`.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct BoxPrior {
    /// Lower bounds `[dim_theta]`.
    pub low: Vec<f64>,
    /// Upper bounds `[dim_theta]`.
    pub high: Vec<f64>,
}

impl BoxPrior {
    /// Checks the dimension, finiteness and `low < high` componentwise.
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `"prior"` (the box as a whole) saying which
    /// component is wrong.
    pub fn validate(&self, dim_theta: usize) -> Result<()> {
        if self.low.len() != dim_theta || self.high.len() != dim_theta {
            return Err(Error::option(
                "prior",
                format!("low and high need {dim_theta} values each (got {} and {})", self.low.len(), self.high.len()),
            ));
        }
        if let Some(i) = (0..dim_theta).find(|&i| !(self.low[i].is_finite() && self.high[i].is_finite())) {
            return Err(Error::option(
                "prior",
                format!(
                    "bounds must be finite numbers (component {}: {} to {}); leave the box out for an unbounded prior",
                    i + 1,
                    self.low[i],
                    self.high[i]
                ),
            ));
        }
        if let Some(i) = (0..dim_theta).find(|&i| self.low[i].partial_cmp(&self.high[i]) != Some(std::cmp::Ordering::Less)) {
            return Err(Error::option(
                "prior",
                format!("low must be below high (component {}: {} vs {})", i + 1, self.low[i], self.high[i]),
            ));
        }
        Ok(())
    }

    /// True when `theta` `[dim_theta]` lies inside the box (bounds included).
    pub fn contains(&self, theta: &[f64]) -> bool {
        theta.iter().zip(self.low.iter().zip(&self.high)).all(|(&t, (&l, &h))| t >= l && t <= h)
    }

    /// Folds `theta` `[dim_theta]` into the box in place: a component outside
    /// `[low, high]` is mirrored at the bound it crossed, again at the other bound if it
    /// lies more than a box width out, and so on (a triangle wave of period
    /// `2 (high − low)`); components inside are unchanged. Sampling with
    /// [`crate::posterior::PosteriorOptions::reflect_outside_prior`] applies it to each sample: a
    /// flow trained on a density that jumps to zero at a bound rounds the jump, putting
    /// a little mass just outside the bound and missing as much just inside it, and the
    /// mirror puts that mass back where it was missing (BENCHMARKS.md, "Reflection at
    /// the box bounds"). A non-finite component is left as it is.
    pub fn reflect(&self, theta: &mut [f64]) {
        for ((t, &l), &h) in theta.iter_mut().zip(&self.low).zip(&self.high) {
            if !t.is_finite() || (*t >= l && *t <= h) {
                continue;
            }
            let w = h - l;
            let u = (*t - l).rem_euclid(2.0 * w);
            *t = (if u > w { l + (2.0 * w - u) } else { l + u }).clamp(l, h);
        }
    }

    /// The uniform prior on this box.
    pub fn to_prior(&self) -> Prior {
        Prior::Uniform { low: self.low.clone(), high: self.high.clone() }
    }
}

/// Lower Cholesky factor L (`[d, d]` row-major, `a = L Lᵀ`) of a symmetric positive
/// definite `a` (`[d, d]` row-major); `None` if `a` is not positive definite.
pub fn cholesky(a: &[f64], d: usize) -> Option<Vec<f64>> {
    assert_eq!(a.len(), d * d);
    let mut l = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..=i {
            let mut s = a[i * d + j];
            for k in 0..j {
                s -= l[i * d + k] * l[j * d + k];
            }
            if i == j {
                if s.is_nan() || s <= 0.0 || s.is_infinite() {
                    return None;
                }
                l[i * d + i] = s.sqrt();
            } else {
                l[i * d + j] = s / l[j * d + j];
            }
        }
    }
    Some(l)
}

/// Inverse of a symmetric positive definite `a` (`[d, d]` row-major) via its Cholesky
/// factor; `None` if `a` is not positive definite.
pub fn inverse_spd(a: &[f64], d: usize) -> Option<Vec<f64>> {
    let l = cholesky(a, d)?;
    // L^{-1} by forward substitution, column by column.
    let mut linv = vec![0.0; d * d];
    for c in 0..d {
        for i in c..d {
            let mut s = if i == c { 1.0 } else { 0.0 };
            for k in c..i {
                s -= l[i * d + k] * linv[k * d + c];
            }
            linv[i * d + c] = s / l[i * d + i];
        }
    }
    // a^{-1} = L^{-T} L^{-1}
    let mut inv = vec![0.0; d * d];
    for i in 0..d {
        for j in 0..d {
            let mut s = 0.0;
            for k in i.max(j)..d {
                s += linv[k * d + i] * linv[k * d + j];
            }
            inv[i * d + j] = s;
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inverse_of_spd_matrix() {
        let a = [4.0, 2.0, 0.6, 2.0, 5.0, 1.0, 0.6, 1.0, 3.0];
        let inv = inverse_spd(&a, 3).unwrap();
        for i in 0..3 {
            for j in 0..3 {
                let s: f64 = (0..3).map(|k| a[i * 3 + k] * inv[k * 3 + j]).sum();
                assert!((s - if i == j { 1.0 } else { 0.0 }).abs() < 1e-12);
            }
        }
        assert!(cholesky(&[1.0, 2.0, 2.0, 1.0], 2).is_none());
    }

    #[test]
    fn gaussian_log_prob_matches_closed_form() {
        let p = Prior::gaussian(vec![0.0, 1.0], vec![2.0, 0.0, 0.0, 0.5]).unwrap();
        let lp = p.log_prob(&[1.0, 0.0]);
        let want = -(2.0 * std::f64::consts::PI).ln() - 0.5 * (2.0f64 * 0.5).ln() - 0.5 * (0.5 + 2.0);
        assert!((lp - want).abs() < 1e-12);
    }

    /// The fold mirrors at the crossed bound, then at the other one, and keeps points
    /// inside; mirroring a uniform density just outside a bound doubles the density just
    /// inside it (the mass is put back, not lost).
    #[test]
    fn reflect_folds_into_the_box() {
        let b = BoxPrior { low: vec![-1.0, 0.0, 2.0], high: vec![1.0, 4.0, 3.0] };
        let cases: [([f64; 3], [f64; 3]); 5] = [
            ([0.3, 1.0, 2.5], [0.3, 1.0, 2.5]),
            ([1.25, -0.5, 3.0], [0.75, 0.5, 3.0]),
            ([-1.5, 4.75, 1.9], [-0.5, 3.25, 2.1]),
            // Beyond a box width out: mirrored twice (1 → -1 → back in).
            ([3.5, 9.0, 4.25], [-0.5, 1.0, 2.25]),
            ([-4.5, -8.5, 0.0], [-0.5, 0.5, 2.0]),
        ];
        for (x, want) in cases {
            let mut t = x;
            b.reflect(&mut t);
            for (a, w) in t.iter().zip(want) {
                assert!((a - w).abs() < 1e-12, "{x:?} -> {t:?}, want {want:?}");
            }
            assert!(b.contains(&t));
        }
        let mut nan = [f64::NAN, 5.0, 2.5];
        b.reflect(&mut nan);
        assert!(nan[0].is_nan() && nan[1] == 3.0 && nan[2] == 2.5);
        // Mass conservation: a uniform density on [0.8, 1.2] folds onto [0.8, 1.0] at
        // twice the density.
        let b1 = BoxPrior { low: vec![-1.0], high: vec![1.0] };
        let n = 4000;
        let mut inside_top = 0;
        for i in 0..n {
            let mut t = [0.8 + 0.4 * (i as f64 + 0.5) / n as f64];
            b1.reflect(&mut t);
            inside_top += usize::from(t[0] >= 0.8 && t[0] <= 1.0);
        }
        assert_eq!(inside_top, n);
    }
}
