"""Posterior quality: the sbibm C2ST (on the GPU), simulation-based calibration and
expected coverage."""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from . import _fmpe
from ._arrays import matrix
from ._device import DeviceLike, get_device
from .errors import DataError

__all__ = ["c2st", "sbc", "sbc_ranks", "expected_coverage", "SBCResult"]


def c2st(a, b, *, seed: int = 1, folds: int = 5, max_rows: int = 10_000, device: DeviceLike = None) -> float:
    """Classifier two-sample test between ``a [n, d]`` (the reference) and ``b [m, d]``,
    exactly as sbibm computes it (z-scored with ``a``'s statistics, MLP 2×10·d ReLU,
    Adam, ``folds``-fold cross-validation, the first ``max_rows`` rows of each): the mean
    held-out accuracy, ≈ 0.5 for one distribution, 1.0 for separable sets."""
    a = matrix(a, "a")
    b = matrix(b, "b", a.shape[1], "the columns of a")
    score, _ = _fmpe.c2st(get_device(device), a, b, int(seed), int(folds), int(max_rows))
    return score


def sbc_ranks(theta, samples) -> np.ndarray:
    """SBC ranks ``[m, d]``: for each pair i and component k, how many of the posterior
    samples ``samples[i] ([l, d])`` lie below ``theta[i, k]``. ``theta [m, d]``,
    ``samples [m, l, d]``."""
    t = matrix(theta, "theta")
    s = np.asarray(samples, dtype=np.float64)
    if s.ndim != 3 or s.shape[0] != t.shape[0] or s.shape[2] != t.shape[1]:
        raise DataError(f"samples must be [m, l, d] = [{t.shape[0]}, l, {t.shape[1]}], got shape {s.shape}", array="samples")
    m, l, d = s.shape
    return _fmpe.ranks(t, np.ascontiguousarray(s.reshape(m * l, d)), l)


class SBCResult:
    """``ranks [m, d]``, ``levels``, ``coverage [levels, d]`` (fraction of pairs whose θ
    lies in the central α-interval), ``max_abs_error`` (max |coverage − α|) and
    ``mean_error`` (signed mean; negative = over-confident)."""

    def __init__(self, ranks, levels, coverage, max_abs_error, mean_error):
        self.ranks = ranks
        self.levels = np.asarray(levels)
        self.coverage = np.asarray(coverage).reshape(len(levels), -1)
        self.max_abs_error = max_abs_error
        self.mean_error = mean_error

    def __repr__(self) -> str:
        return f"SBCResult(pairs={len(self.ranks)}, max_abs_error={self.max_abs_error:.3f}, mean_error={self.mean_error:+.3f})"


def expected_coverage(ranks, num_posterior_samples: int, levels: Optional[Sequence[float]] = None) -> SBCResult:
    """Expected coverage of central credible intervals from SBC ``ranks [m, d]`` made with
    ``num_posterior_samples`` samples per pair; ``levels`` default 0.05, 0.10, …, 0.95."""
    r = np.asarray(ranks)
    if r.ndim != 2 or r.dtype.kind not in "iu":
        raise DataError(f"ranks must be an integer [m, d] array, got {r.dtype} of shape {r.shape}", array="ranks")
    lv, cov, mx, mean = _fmpe.coverage(r.tolist(), int(num_posterior_samples), [float(v) for v in (levels or [])])
    return SBCResult(r, lv, cov, mx, mean)


def sbc(posterior, theta, x, num_posterior_samples: int = 100, seed: int = 0, levels: Optional[Sequence[float]] = None, **sample_options) -> SBCResult:
    """Simulation-based calibration of ``posterior`` on held-out pairs ``theta [m, d]``,
    ``x [m, dim x]`` (θ drawn from the prior, x simulated from it): draws
    ``num_posterior_samples`` per x with ``sample_batched``, ranks θ among them and
    returns the expected coverage (``SBCResult``)."""
    t = matrix(theta, "theta", posterior.dim_theta, "dim theta")
    s = posterior.sample_batched((int(num_posterior_samples),), x, seed=seed, **sample_options)
    return expected_coverage(sbc_ranks(t, s), num_posterior_samples, levels)
