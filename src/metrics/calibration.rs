//! Simulation-based calibration (SBC; Talts et al. 2018) and expected coverage from
//! rank statistics, on posterior samples the caller has drawn and read back.
//!
//! Host post-processing, O(M·L·d): for M held-out pairs (θ_i, x_i) with
//! θ_i ~ prior, x_i ~ simulator(θ_i), and L posterior samples θ_i^(l) ~ q(θ | x_i), the
//! rank of θ_i in dimension k is `#{l : θ_ik^(l) < θ_ik}` ∈ [0, L]. A calibrated
//! posterior gives uniform ranks; the coverage of the central credible interval of
//! level α (estimated from the ranks) then equals α.

use crate::error::{Error, Result};

/// SBC rank statistics, `[m, d]` row-major: `ranks[i * d + k]` = number of the `l`
/// posterior samples of pair `i` whose component `k` is below `theta[i * d + k]`
/// (0 ..= l).
///
/// `theta` is `[m, d]` (the true parameters), `samples` is `[m, l, d]` row-major (the
/// `l` posterior samples of pair `i` are rows `i * l .. (i + 1) * l` of an `[m·l, d]`
/// matrix), all in the same units.
///
/// # Errors
/// [`Error::Invalid`] if `d` or `l` is 0, the lengths do not match `[m, d]` and
/// `[m, l, d]`, or a value is NaN.
pub fn sbc_ranks(theta: &[f64], samples: &[f64], d: usize, l: usize) -> Result<Vec<usize>> {
    if d == 0 || l == 0 || !theta.len().is_multiple_of(d) || samples.len() != theta.len() * l {
        return Err(Error::invalid(format!(
            "sbc_ranks: need theta [m, d] and samples [m, l, d] with d = {d}, l = {l} (got {} and {} values)",
            theta.len(),
            samples.len()
        )));
    }
    if theta.iter().chain(samples).any(|v| v.is_nan()) {
        return Err(Error::invalid("sbc_ranks: NaN in theta or the posterior samples"));
    }
    let m = theta.len() / d;
    let mut ranks = vec![0usize; m * d];
    for i in 0..m {
        for s in 0..l {
            let row = &samples[(i * l + s) * d..(i * l + s + 1) * d];
            for k in 0..d {
                ranks[i * d + k] += usize::from(row[k] < theta[i * d + k]);
            }
        }
    }
    Ok(ranks)
}

/// Expected coverage of central credible intervals, estimated from SBC ranks.
#[derive(Clone, Debug, PartialEq)]
pub struct Coverage {
    /// Nominal levels α (fractions in (0, 1)).
    pub levels: Vec<f64>,
    /// Empirical coverage `[levels, d]` row-major: the fraction of pairs whose θ lies in
    /// the central α-interval of its posterior samples, per dimension.
    pub coverage: Vec<f64>,
    /// One-number summary: max over levels and dimensions of |coverage − α|
    /// (0 = perfectly calibrated; positive either way).
    pub max_abs_error: f64,
    /// Signed mean over levels and dimensions of coverage − α: negative means
    /// over-confident (too narrow) posteriors, positive under-confident.
    pub mean_error: f64,
}

/// Coverage of the central α-intervals for each `levels` α, from `ranks` `[m, d]` of
/// [`sbc_ranks`] with `l` posterior samples per pair: θ_i counts as covered in
/// dimension k when its normalised rank `u = rank / l` satisfies `|u − ½| ≤ α/2`
/// (it lies between the (1−α)/2 and (1+α)/2 sample quantiles). `levels` empty uses
/// α = 0.05, 0.10, …, 0.95.
///
/// # Errors
/// [`Error::Invalid`] if `d` or `l` is 0, `ranks` is empty or not `[m, d]`, a rank
/// exceeds `l`, or a level is outside (0, 1).
pub fn expected_coverage(ranks: &[usize], d: usize, l: usize, levels: &[f64]) -> Result<Coverage> {
    if d == 0 || l == 0 || ranks.is_empty() || !ranks.len().is_multiple_of(d) || ranks.iter().any(|&r| r > l) {
        return Err(Error::invalid(format!(
            "expected_coverage: need ranks [m, {d}] in 0..={l} (got {} values)",
            ranks.len()
        )));
    }
    let levels: Vec<f64> =
        if levels.is_empty() { (1..20).map(|i| i as f64 * 0.05).collect() } else { levels.to_vec() };
    if let Some(a) = levels.iter().find(|a| !(**a > 0.0 && **a < 1.0)) {
        return Err(Error::invalid(format!("expected_coverage: level {a} is not in (0, 1)")));
    }
    let m = ranks.len() / d;
    let mut coverage = vec![0.0; levels.len() * d];
    for (j, &a) in levels.iter().enumerate() {
        for k in 0..d {
            let hits = (0..m)
                .filter(|&i| ((ranks[i * d + k] as f64 / l as f64) - 0.5).abs() <= 0.5 * a + 1e-12)
                .count();
            coverage[j * d + k] = hits as f64 / m as f64;
        }
    }
    let errs = levels.iter().enumerate().flat_map(|(j, &a)| coverage[j * d..(j + 1) * d].iter().map(move |c| c - a));
    let (mut max_abs, mut sum, mut n) = (0.0f64, 0.0, 0usize);
    for e in errs {
        max_abs = max_abs.max(e.abs());
        sum += e;
        n += 1;
    }
    Ok(Coverage { levels, coverage, max_abs_error: max_abs, mean_error: sum / n as f64 })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_distr::{Distribution, Normal};

    /// θ ~ N(0, 1), "posterior" samples N(0, s²): calibrated for s = 1, over-confident
    /// for s < 1.
    fn setup(s: f64) -> (Vec<f64>, Vec<f64>) {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let n = Normal::new(0.0, 1.0).unwrap();
        let (m, l, d) = (2000, 100, 2);
        let theta: Vec<f64> = (0..m * d).map(|_| n.sample(&mut rng)).collect();
        let samples: Vec<f64> = (0..m * l * d).map(|_| s * n.sample(&mut rng)).collect();
        (theta, samples)
    }

    #[test]
    fn calibrated_posterior_has_nominal_coverage() {
        let (theta, samples) = setup(1.0);
        let ranks = sbc_ranks(&theta, &samples, 2, 100).unwrap();
        assert!(ranks.iter().all(|&r| r <= 100));
        let c = expected_coverage(&ranks, 2, 100, &[]).unwrap();
        assert_eq!(c.levels.len(), 19);
        assert!(c.max_abs_error < 0.04, "{c:?}");
        assert!(c.mean_error.abs() < 0.02, "{c:?}");
    }

    #[test]
    fn overconfident_posterior_undercovers() {
        let (theta, samples) = setup(0.5);
        let ranks = sbc_ranks(&theta, &samples, 2, 100).unwrap();
        let c = expected_coverage(&ranks, 2, 100, &[0.5, 0.9]).unwrap();
        // P(|θ| ≤ 0.5 z_{0.95}) = P(|Z| ≤ 0.82) ≈ 0.59 for the 90 % interval.
        assert!((c.coverage[2] - 0.59).abs() < 0.05, "{c:?}");
        assert!(c.mean_error < -0.15, "{c:?}");
        assert!(sbc_ranks(&theta, &samples[1..], 2, 100).is_err());
        assert!(expected_coverage(&ranks, 2, 100, &[1.0]).is_err());
        assert!(expected_coverage(&[101, 0], 2, 100, &[]).is_err());
    }
}
