"""Pair plots of posterior samples, as PNG files (no matplotlib needed)."""
from __future__ import annotations

import os
from typing import Optional, Sequence, Union

from . import _fmpe
from ._arrays import matrix

__all__ = ["pairplot"]


def pairplot(samples, reference=None, path: Union[str, "os.PathLike[str]"] = "pairplot.png", labels: Optional[Sequence[str]] = None) -> str:
    """Writes a pair plot of ``samples [n, d]`` (and optionally ``reference [m, d]`` in
    another colour) to the PNG ``path`` (atomically): histograms on the diagonal, 2-D
    scatter below. Returns the path. sbi's ``pairplot`` returns a matplotlib figure
    instead."""
    s = matrix(samples, "samples")
    r = None if reference is None else matrix(reference, "reference", s.shape[1], "the columns of samples")
    names = [str(v) for v in labels] if labels is not None else [f"theta_{i + 1}" for i in range(s.shape[1])]
    p = os.fspath(path)
    _fmpe.pair_plot(s, r, names, p)
    return p
