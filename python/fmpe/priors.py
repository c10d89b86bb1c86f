"""Priors over θ: ``BoxUniform`` and ``Gaussian`` (sbi's names), and the built-in tasks'
priors (``fmpe.tasks.get(name).prior``). A prior given to ``fmpe.FMPE`` selects the
parameter transform and the support, as the CLI's task priors do: a box is trained in
its logit space by default (``transform=False`` trains in θ itself and rejects samples
outside the box), a Gaussian needs neither."""
from __future__ import annotations

import secrets
from typing import Optional, Sequence

import numpy as np

from ._arrays import ShapeLike, num_samples
from .errors import DataError

__all__ = ["BoxUniform", "Gaussian", "Prior"]


def _rng(seed: Optional[int]) -> np.random.Generator:
    return np.random.default_rng(secrets.randbits(63) if seed is None else seed)


def _vector(v, name: str) -> np.ndarray:
    try:
        a = np.atleast_1d(np.asarray(v, dtype=np.float64))
    except (TypeError, ValueError) as e:
        raise DataError(f"{name} cannot be read as numbers: {e}", array=name) from None
    if a.ndim != 1 or a.size == 0 or not np.all(np.isfinite(a)):
        raise DataError(f"{name} must be a non-empty 1-D array of finite values, got {a!r}", array=name)
    return np.ascontiguousarray(a, dtype=np.float64)


class Prior:
    """Base class: ``dim``, ``sample(sample_shape, seed=None)`` → ``[*sample_shape, dim]``,
    ``log_prob(theta [n, dim])`` → ``[n]``."""

    dim: int

    def sample(self, sample_shape: ShapeLike = (1,), seed: Optional[int] = None) -> np.ndarray:
        n, shape = num_samples(sample_shape)
        return self._sample(n, _rng(seed)).reshape(*shape, self.dim)

    def _sample(self, n: int, rng: np.random.Generator) -> np.ndarray:  # pragma: no cover
        raise NotImplementedError

    def _box(self):
        """(low, high) of a box support, or None."""
        return None

    def _task(self) -> Optional[str]:
        return None


class BoxUniform(Prior):
    """Independent θ_i ~ U(low_i, high_i) (sbi's ``BoxUniform``, numpy arrays instead of
    tensors). ``low`` and ``high`` are ``[dim]`` with ``low < high``."""

    def __init__(self, low: Sequence[float], high: Sequence[float]):
        self.low = _vector(low, "low")
        self.high = _vector(high, "high")
        if self.low.shape != self.high.shape:
            raise DataError(f"low has {self.low.size} values and high has {self.high.size}", array="high")
        if not np.all(self.low < self.high):
            c = int(np.flatnonzero(~(self.low < self.high))[0])
            raise DataError(f"low[{c}] = {self.low[c]} is not below high[{c}] = {self.high[c]}", array="high", column=c)
        self.dim = self.low.size

    def _sample(self, n, rng):
        return self.low + (self.high - self.low) * rng.random((n, self.dim))

    def log_prob(self, theta) -> np.ndarray:
        t = np.atleast_2d(np.asarray(theta, dtype=float))
        inside = np.all((t >= self.low) & (t <= self.high), axis=-1)
        return np.where(inside, -np.sum(np.log(self.high - self.low)), -np.inf)

    def _box(self):
        return self.low, self.high

    def __repr__(self) -> str:
        return f"BoxUniform(low={self.low.tolist()}, high={self.high.tolist()})"


class Gaussian(Prior):
    """Multivariate normal N(mean, cov): ``mean [dim]``, ``cov [dim, dim]`` symmetric
    positive definite (sbi users pass ``MultivariateNormal(mean, cov)``)."""

    def __init__(self, mean: Sequence[float], cov):
        self.mean = _vector(mean, "mean")
        c = np.asarray(cov, dtype=float)
        d = self.mean.size
        if c.shape != (d, d) or not np.all(np.isfinite(c)):
            raise DataError(f"cov must be a finite [{d}, {d}] matrix, got shape {c.shape}", array="cov")
        if not np.allclose(c, c.T, rtol=1e-9, atol=1e-12):
            raise DataError("cov is not symmetric", array="cov")
        try:
            self._chol = np.linalg.cholesky(c)
        except np.linalg.LinAlgError:
            raise DataError("cov is not positive definite", array="cov") from None
        self.cov = c
        self.dim = d

    def _sample(self, n, rng):
        return self.mean + rng.standard_normal((n, self.dim)) @ self._chol.T

    def log_prob(self, theta) -> np.ndarray:
        t = np.atleast_2d(np.asarray(theta, dtype=float)) - self.mean
        y = np.linalg.solve(self._chol, t.T).T
        return -0.5 * np.sum(y * y, axis=-1) - np.sum(np.log(np.diag(self._chol))) - 0.5 * self.dim * np.log(2 * np.pi)

    def __repr__(self) -> str:
        return f"Gaussian(mean={self.mean.tolist()}, cov={self.cov.tolist()})"
