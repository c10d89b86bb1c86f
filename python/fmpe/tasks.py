"""The ten sbibm benchmark tasks (priors and simulators, as in sbibm 1.1.0), and their
observations and reference posteriors (sbibm's files: two_moons observation 1 ships
with the package; the others are read from ``sbibm_dir``, ``$FMPE_SBIBM_DIR`` or
``../shared/sbibm`` when present)::

    task = fmpe.tasks.get("two_moons")
    theta = task.prior_sample(10_000, seed=1)      # [n, dim θ]
    x = task.simulate(theta, seed=1)               # [n, dim x]
    x_o = task.observation(1)                      # [dim x]
    ref = task.reference_posterior_samples(1)      # [10000, dim θ]
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import List, Optional

import numpy as np

from . import _fmpe
from ._arrays import ShapeLike, matrix, num_samples
from .errors import DataError, FmpeIOError
from .priors import Prior

__all__ = ["Task", "TaskPrior", "get", "names"]

_DATA = Path(__file__).resolve().parent / "data"


def names() -> List[str]:
    """The task names, in the order of the sbibm paper."""
    return [
        "two_moons", "gaussian_linear", "gaussian_linear_uniform", "gaussian_mixture", "slcp",
        "slcp_distractors", "bernoulli_glm", "bernoulli_glm_raw", "sir", "lotka_volterra",
    ]


class TaskPrior(Prior):
    """A task's prior; passing it to ``fmpe.FMPE`` selects the task's box, parameter
    transform (logit for uniform, log for log-normal priors) and x transform."""

    def __init__(self, info: dict):
        self._info = info
        self.dim = info["dim_theta"]
        self.kind = info["prior"]
        if self.kind == "uniform":
            self.low, self.high = np.array(info["low"]), np.array(info["high"])

    def sample(self, sample_shape: ShapeLike = (1,), seed: Optional[int] = None) -> np.ndarray:
        """Prior draws ``[*sample_shape, dim θ]``; ``seed=None`` draws a random seed.
        ``prior_sample(n, seed)`` of the task gives the same draws as ``fmpe simulate``."""
        n, shape = num_samples(sample_shape)
        seed = int(np.random.SeedSequence().entropy % (2**63)) if seed is None else int(seed)
        return _fmpe.task_prior_sample(self._info["name"], n, seed).reshape(*shape, self.dim)

    def _box(self):
        return (self.low, self.high) if self.kind == "uniform" else None

    def _task(self) -> Optional[str]:
        return self._info["name"]

    def __repr__(self) -> str:
        return f"TaskPrior({self._info['name']!r}, {self.kind})"


class Task:
    """A benchmark task: ``name``, ``dim_theta``, ``dim_x``, ``theta_names``, ``x_names``,
    ``prior`` (a ``TaskPrior``)."""

    def __init__(self, name: str):
        info = _fmpe.task_info(name)
        self.name: str = info["name"]
        self.dim_theta: int = info["dim_theta"]
        self.dim_x: int = info["dim_x"]
        self.theta_names: List[str] = info["theta_names"]
        self.x_names: List[str] = info["x_names"]
        self.prior = TaskPrior(info)

    def prior_sample(self, n: int, seed: int = 0) -> np.ndarray:
        """``n`` prior draws ``[n, dim θ]``, deterministic given ``seed`` (the draws of
        ``fmpe simulate --seed``)."""
        return _fmpe.task_prior_sample(self.name, int(n), int(seed))

    def simulate(self, theta, seed: int = 0) -> np.ndarray:
        """One x per row of ``theta [n, dim θ]``: ``[n, dim x]`` (rows of failed
        simulations are NaN); row i uses its own generator of (seed, i), so
        ``simulate(prior_sample(n, s), s)`` is ``fmpe simulate --seed s``'s data."""
        t = matrix(theta, "theta", self.dim_theta, "dim theta")
        return _fmpe.task_simulate(self.name, t, int(seed))

    def _file(self, k: int, file: str, sbibm_dir: Optional[str]) -> Path:
        if not (isinstance(k, (int, np.integer)) and 1 <= k <= 10):
            raise DataError(f"observation number must be 1..10, got {k!r}", array="num_observation")
        rel = Path(self.name) / f"num_observation_{int(k)}" / file
        roots = [sbibm_dir, os.environ.get("FMPE_SBIBM_DIR"), str(_DATA), "../shared/sbibm"]
        for root in roots:
            if root and (Path(root) / rel).is_file():
                return Path(root) / rel
        raise FmpeIOError(
            f"{rel}: not found in sbibm_dir, $FMPE_SBIBM_DIR, the package's data or ../shared/sbibm "
            "(sbibm's files: pip download sbibm==1.1.0, sbibm/tasks/<task>/files/)",
            path=str(rel),
        )

    def _csv(self, k: int, file: str, sbibm_dir: Optional[str]) -> np.ndarray:
        return np.atleast_2d(np.loadtxt(self._file(k, file, sbibm_dir), delimiter=",", skiprows=1, dtype=np.float64))

    def observation(self, k: int, sbibm_dir: Optional[str] = None) -> np.ndarray:
        """sbibm's observation ``k`` (1..10): ``[dim x]``."""
        return self._csv(k, "observation.csv", sbibm_dir)[0]

    def true_parameters(self, k: int, sbibm_dir: Optional[str] = None) -> np.ndarray:
        """The θ that generated observation ``k``: ``[dim θ]``."""
        return self._csv(k, "true_parameters.csv", sbibm_dir)[0]

    def reference_posterior_samples(self, k: int, sbibm_dir: Optional[str] = None) -> np.ndarray:
        """sbibm's reference posterior samples of observation ``k``: ``[10000, dim θ]``."""
        return self._csv(k, "reference_posterior_samples.csv", sbibm_dir)

    def __repr__(self) -> str:
        return f"Task({self.name!r}, dim_theta={self.dim_theta}, dim_x={self.dim_x})"


def get(name: str) -> Task:
    """The task called ``name`` (one of ``names()``); ``DataError`` listing the valid
    names otherwise."""
    return Task(name)
