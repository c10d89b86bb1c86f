//! Parameter transforms: train and sample in an unbounded space θ' = T(θ) (the
//! bijections sbi builds for bounded priors), and the elementwise x transform
//! ([`XTransform`]) applied before x's z-scoring.
//!
//! T acts per component ([`Bijection`]): the identity, a scaled logit for a box prior
//! component `[low, high]`, or a log for a component bounded below (sbibm's log-normal
//! priors: `low = 0`). The network, its z-score statistics and the ODE all live in θ'
//! space; samples are mapped back with T⁻¹ on the GPU, and a log-density in θ adds the
//! Jacobian term: `log q(θ) = log q'(T(θ)) + Σ_j log |dθ'_j/dθ_j|`.
//!
//! Support and clamping:
//! * logit: θ must lie in the closed box `[low, high]`. Points on a bound (or rounded
//!   onto one in f32) are clamped to `ε (high − low)` inside it
//!   ([`LOGIT_EPS`] = 1e-6), i.e. `|θ'| ≤ 13.8`; training
//!   data outside the box is an error; `log_prob` is −∞ outside the box.
//! * log: θ must exceed `low` (open support); `θ − low` is floored at the smallest
//!   normal f32 in the kernel. Training data at or below `low` is an error; `log_prob`
//!   is −∞ there.
//!
//! The host maps in f64 are [`Bijection::forward`] and [`Bijection::inverse`]; the
//! kernel is `theta_transform` in `shaders/transform.wgsl` (the tests check both against
//! the independent f64 mirror in `crate::reference`).
//!
//! Depends only on [`crate::error`] and [`crate::prior`] (for [`ThetaTransform::from_box`]
//! and [`ThetaTransform::for_prior`]).

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::prior::{BoxPrior, Prior};

/// Relative clamp of the logit transform: `θ − low` and `high − θ` are taken as at least
/// `LOGIT_EPS · (high − low)`, so points on (or rounded onto) a bound map to
/// `±log(1/ε) ≈ ±13.8` instead of ±∞.
pub const LOGIT_EPS: f64 = 1e-6;

/// Smallest positive normal f32: the floor of `θ − low` in the log transform.
pub const LOG_FLOOR: f64 = f32::MIN_POSITIVE as f64;

/// A bijection of one θ component onto R (or the identity).
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Bijection {
    /// θ' = θ.
    Identity,
    /// θ' = log((θ − low) / (high − θ)) on the box component `[low, high]`.
    Logit {
        /// Lower bound.
        low: f64,
        /// Upper bound (> low).
        high: f64,
    },
    /// θ' = log(θ − low) for θ > low.
    Log {
        /// Lower bound (0 for a log-normal prior).
        low: f64,
    },
}

impl Bijection {
    /// Kind code of the kernel table (0 identity, 1 logit, 2 log).
    fn code(&self) -> f32 {
        match self {
            Bijection::Identity => 0.0,
            Bijection::Logit { .. } => 1.0,
            Bijection::Log { .. } => 2.0,
        }
    }

    /// Forward map of one value (f64, the kernel's clamping): returns
    /// `(θ', log |dθ'/dθ|)`.
    ///
    /// * Identity: `(θ, 0)`.
    /// * Logit on `(low, high)`, `w = high − low`, `a = max(θ − low, ε w)`,
    ///   `b = max(high − θ, ε w)`: `θ' = log a − log b`, `log |dθ'/dθ| = log w − log a − log b`.
    /// * Log above `low`, `a = max(θ − low, LOG_FLOOR)`: `θ' = log a`, `log |dθ'/dθ| = −log a`.
    pub fn forward(&self, theta: f64) -> (f64, f64) {
        match *self {
            Bijection::Identity => (theta, 0.0),
            Bijection::Logit { low, high } => {
                let w = high - low;
                let a = (theta - low).max(LOGIT_EPS * w);
                let c = (high - theta).max(LOGIT_EPS * w);
                (a.ln() - c.ln(), w.ln() - a.ln() - c.ln())
            }
            Bijection::Log { low } => {
                let a = (theta - low).max(LOG_FLOOR);
                (a.ln(), -a.ln())
            }
        }
    }

    /// Inverse map of one value `y = θ'` (f64): returns `(θ, log |dθ'/dθ|)`.
    ///
    /// * Identity: `(y, 0)`.
    /// * Logit: `θ = low + w σ(y)` (evaluated as `high − w σ(−y)` for `y ≥ 0`, so either
    ///   bound is approached with full relative precision), `log |dθ'/dθ| =
    ///   −log w + softplus(y) + softplus(−y)`.
    /// * Log: `θ = low + exp(y)`, `log |dθ'/dθ| = −y`.
    pub fn inverse(&self, y: f64) -> (f64, f64) {
        match *self {
            Bijection::Identity => (y, 0.0),
            Bijection::Logit { low, high } => {
                let w = high - low;
                let s = |v: f64| 1.0 / (1.0 + (-v).exp());
                let theta = if y >= 0.0 { high - w * s(-y) } else { low + w * s(y) };
                let softplus = |v: f64| v.max(0.0) + (-v.abs()).exp().ln_1p();
                (theta, -w.ln() + softplus(y) + softplus(-y))
            }
            Bijection::Log { low } => (low + y.exp(), -y),
        }
    }

    /// True when the finite value `theta` lies in the support: anything for the
    /// identity, the closed box for the logit (bounds are clamped), `θ > low` for the log.
    pub fn contains(&self, theta: f64) -> bool {
        match *self {
            Bijection::Identity => true,
            Bijection::Logit { low, high } => theta >= low && theta <= high,
            Bijection::Log { low } => theta > low,
        }
    }
}

impl std::fmt::Display for Bijection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Bijection::Identity => write!(f, "identity"),
            Bijection::Logit { low, high } => write!(f, "logit on [{low}, {high}]"),
            Bijection::Log { low } => write!(f, "log above {low}"),
        }
    }
}

/// The transform of all θ components, stored in `model.json` as a list of
/// `{"kind": "identity" | "logit" | "log", "low": …, "high": …}` objects, one per
/// component. An empty list (models written before transforms existed) is the
/// identity.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
#[serde(transparent)]
pub struct ThetaTransform {
    /// One bijection per θ component `[dim_theta]`, or empty for the identity.
    pub components: Vec<Bijection>,
}

impl ThetaTransform {
    /// The identity (no transform).
    pub fn identity() -> ThetaTransform {
        ThetaTransform::default()
    }

    /// One bijection per component `[dim_theta]`.
    pub fn new(components: Vec<Bijection>) -> ThetaTransform {
        ThetaTransform { components }
    }

    /// A logit per component of a box prior.
    pub fn from_box(b: &BoxPrior) -> ThetaTransform {
        ThetaTransform::new(b.low.iter().zip(&b.high).map(|(&low, &high)| Bijection::Logit { low, high }).collect())
    }

    /// The transform for a task prior: logit per component of a uniform prior, log
    /// (low = 0) per component of a log-normal prior, identity for a Gaussian prior.
    pub fn for_prior(p: &Prior) -> ThetaTransform {
        match p {
            Prior::Uniform { low, high } => ThetaTransform::from_box(&BoxPrior { low: low.clone(), high: high.clone() }),
            Prior::LogNormal { mu, .. } => ThetaTransform::new(vec![Bijection::Log { low: 0.0 }; mu.len()]),
            Prior::Gaussian { .. } => ThetaTransform::identity(),
        }
    }

    /// True when every component is the identity (or the list is empty).
    pub fn is_identity(&self) -> bool {
        self.components.iter().all(|b| *b == Bijection::Identity)
    }

    /// The bijections of `dim_theta` components (the identity expanded when empty).
    pub fn resolved(&self, dim_theta: usize) -> Vec<Bijection> {
        if self.components.is_empty() {
            vec![Bijection::Identity; dim_theta]
        } else {
            self.components.clone()
        }
    }

    /// Checks the dimension and the bounds: finite, `low < high` also after rounding to
    /// f32 (the kernel's precision).
    ///
    /// # Errors
    /// [`Error::InvalidOption`] named `"transform"`, naming the component.
    pub fn validate(&self, dim_theta: usize) -> Result<()> {
        if !self.components.is_empty() && self.components.len() != dim_theta {
            return Err(Error::option(
                "transform",
                format!("the parameter transform has {} components, θ has {dim_theta}", self.components.len()),
            ));
        }
        let f32_finite = |v: f64| v.is_finite() && (v as f32).is_finite();
        for (j, b) in self.components.iter().enumerate() {
            let ok = match *b {
                Bijection::Identity => true,
                Bijection::Logit { low, high } => {
                    f32_finite(low) && f32_finite(high) && f32_finite(high - low) && (low as f32) < (high as f32)
                }
                Bijection::Log { low } => f32_finite(low),
            };
            if !ok {
                let need = match b {
                    Bijection::Logit { .. } => "finite f32 bounds with low < high and a finite width high − low",
                    _ => "a finite f32 lower bound",
                };
                return Err(Error::option("transform", format!("component {}: {b} needs {need}", j + 1)));
            }
        }
        Ok(())
    }

    /// True when every component is a logit on exactly the bounds of `prior`: samples
    /// mapped back by T⁻¹ then always lie in the box, so rejection against it is moot.
    pub fn covers(&self, prior: &BoxPrior) -> bool {
        self.components.len() == prior.low.len()
            && self.components.iter().zip(prior.low.iter().zip(&prior.high)).all(
                |(b, (&l, &h))| matches!(*b, Bijection::Logit { low, high } if low == l && high == h),
            )
    }

    /// True when the row `theta [dim_theta]` lies in the support of every component
    /// (see [`Bijection::contains`]).
    pub fn contains(&self, theta: &[f64]) -> bool {
        self.components.iter().zip(theta).all(|(b, &t)| b.contains(t))
    }

    /// The first `(row, component)` (0-based) of `theta [n, dim_theta]` with a finite
    /// value outside the support, if any (non-finite values are left to the callers'
    /// finiteness checks).
    pub fn first_outside(&self, theta: &[f64], dim_theta: usize) -> Option<(usize, usize)> {
        if self.is_identity() || dim_theta == 0 {
            return None;
        }
        theta.chunks(dim_theta).enumerate().find_map(|(r, row)| {
            self.components.iter().zip(row).position(|(b, &t)| t.is_finite() && !b.contains(t)).map(|c| (r, c))
        })
    }

    /// The error message for a training value outside the support: what the value is,
    /// which support it misses, and the ways out (the command-line tool adds its flag).
    pub fn outside_message(&self, component: usize, value: f64) -> String {
        let b = self.components[component];
        let want = match b {
            Bijection::Logit { low, high } => format!("the prior box [{low}, {high}]"),
            Bijection::Log { low } => format!("the support θ > {low} of the log transform"),
            Bijection::Identity => "R".into(),
        };
        format!(
            "θ component {} = {value} lies outside {want}; the parameter transform ({b}) cannot map it \
             (fix the data, widen the prior, or train without the parameter transform)",
            component + 1
        )
    }

    /// Maps rows `theta [n, dim_theta]` to θ' on the host (f64): returns
    /// `(θ' [n, dim_theta], Σ_j log |dθ'_j/dθ_j| [n])`. See [`Bijection::forward`].
    ///
    /// # Panics
    /// If `dim_theta` is 0 or `theta.len()` is not a multiple of it.
    pub fn forward_rows(&self, theta: &[f64], dim_theta: usize) -> (Vec<f64>, Vec<f64>) {
        map_rows(&self.resolved(dim_theta), theta, Bijection::forward)
    }

    /// Maps rows `y [n, dim_theta]` of θ' back to θ on the host (f64): returns
    /// `(θ [n, dim_theta], Σ_j log |dθ'_j/dθ_j| [n])`. See [`Bijection::inverse`].
    ///
    /// # Panics
    /// If `dim_theta` is 0 or `y.len()` is not a multiple of it.
    pub fn inverse_rows(&self, y: &[f64], dim_theta: usize) -> (Vec<f64>, Vec<f64>) {
        map_rows(&self.resolved(dim_theta), y, Bijection::inverse)
    }

    /// The kernel's table `[dim_theta, 4]`: `(kind, low, high, high − low)` per
    /// component, kind 0 identity, 1 logit, 2 log (see `shaders/transform.wgsl`).
    ///
    /// Logit bounds are rounded *inward* to f32 (e.g. 0.3 becomes the largest f32 below
    /// 0.3 as the upper bound), so a sample that T⁻¹ saturates onto a bound still lies in
    /// the f64 box and is never rejected.
    pub fn gpu_table(&self, dim_theta: usize) -> Vec<f32> {
        let up = |v: f64| {
            let f = v as f32;
            if (f as f64) < v { f.next_up() } else { f }
        };
        let down = |v: f64| {
            let f = v as f32;
            if (f as f64) > v { f.next_down() } else { f }
        };
        self.resolved(dim_theta)
            .iter()
            .flat_map(|b| {
                let (lo, hi) = match *b {
                    Bijection::Identity => (0.0, 0.0),
                    Bijection::Logit { low, high } => (up(low), down(high)),
                    Bijection::Log { low } => (low as f32, 0.0),
                };
                [b.code(), lo, hi, (hi as f64 - lo as f64) as f32]
            })
            .collect()
    }
}

/// Applies one bijection per component to rows `v [n, d]`: returns the mapped rows and
/// the per-row sum of `log |dθ'/dθ|` (summed left to right, as the f64 mirror does).
fn map_rows(bij: &[Bijection], v: &[f64], f: fn(&Bijection, f64) -> (f64, f64)) -> (Vec<f64>, Vec<f64>) {
    let d = bij.len();
    assert!(d > 0 && v.len().is_multiple_of(d), "rows must be [n, {d}]");
    let mut out = Vec::with_capacity(v.len());
    let mut ld = Vec::with_capacity(v.len() / d);
    for row in v.chunks(d) {
        let mut s = 0.0;
        for (b, &x) in bij.iter().zip(row) {
            let (y, l) = f(b, x);
            out.push(y);
            s += l;
        }
        ld.push(s);
    }
    (out, ld)
}

impl std::fmt::Display for ThetaTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.is_identity() {
            return write!(f, "none");
        }
        let parts: Vec<String> = self.components.iter().map(|b| b.to_string()).collect();
        write!(f, "{}", parts.join(", "))
    }
}

/// An elementwise transform of the data x applied before its z-scoring, in training and
/// to the observation (the posterior p(θ | x) is unchanged by a bijection of x; only how
/// well the network sees x changes). Stored in `model.json` as `x_transform`.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum XTransform {
    /// x as simulated.
    #[default]
    Identity,
    /// `log(1 + x)` per element, for non-negative heavy-tailed data such as population
    /// counts (sbibm's lotka_volterra, whose x spans 0.1 to 10³: z-scoring alone squeezes
    /// the small values of typical observations into a sliver of the input range).
    /// Needs x > −1.
    Log1p,
}

impl XTransform {
    /// True for [`XTransform::Identity`].
    pub fn is_identity(&self) -> bool {
        *self == XTransform::Identity
    }

    /// Flat index into `x` of the first finite value outside the transform's domain
    /// (x ≤ −1 for `log1p`), if any. Non-finite values are not checked (the callers
    /// drop or reject them).
    pub fn first_outside_domain(&self, x: &[f64]) -> Option<usize> {
        match self {
            XTransform::Identity => None,
            XTransform::Log1p => x.iter().position(|v| v.is_finite() && *v <= -1.0),
        }
    }

    /// Maps `x` `[n, dim_x]` (row-major) in place, in f64 on the host.
    ///
    /// # Errors
    /// [`Error::Invalid`] (the data does not fit the transform) naming the 1-based row
    /// and column of the first finite value outside the domain (x ≤ −1 for `log1p`).
    /// Non-finite values are left as they are (the callers drop or reject them).
    pub fn apply(&self, x: &mut [f64], dim_x: usize) -> Result<()> {
        if let Some(i) = self.first_outside_domain(x) {
            return Err(Error::invalid(format!(
                "x row {}, column {} = {}: the x transform {self} needs x > -1 (train without it, or fix the data)",
                i / dim_x.max(1) + 1,
                i % dim_x.max(1) + 1,
                x[i]
            )));
        }
        if *self == XTransform::Log1p {
            x.iter_mut().for_each(|v| *v = v.ln_1p());
        }
        Ok(())
    }
}

impl std::str::FromStr for XTransform {
    type Err = Error;
    fn from_str(s: &str) -> Result<XTransform> {
        match s {
            "none" | "identity" => Ok(XTransform::Identity),
            "log1p" => Ok(XTransform::Log1p),
            other => Err(Error::option("x_transform", format!("expected none or log1p, got '{other}'"))),
        }
    }
}

impl std::fmt::Display for XTransform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            XTransform::Identity => "none",
            XTransform::Log1p => "log1p",
        })
    }
}
