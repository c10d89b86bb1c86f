"""Conversion and checks of user arrays (shapes, dtypes, finiteness) before they reach
the engine, with errors that name the array, the row and the column (0-based)."""
from __future__ import annotations

import math
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from .errors import DataError, OptionError

ShapeLike = Union[int, Sequence[int]]


def as_float(a, name: str) -> np.ndarray:
    """``np.asarray(a)`` if it holds floating-point values (any float dtype, any memory
    order); a ``DataError`` otherwise (integers, booleans, objects, ragged lists)."""
    try:
        arr = np.asarray(a)
    except (ValueError, TypeError) as e:
        raise DataError(f"{name} cannot be read as a numeric array: {e}", array=name) from None
    if arr.dtype.kind != "f":
        raise DataError(
            f"{name} has dtype {arr.dtype}; pass floating-point values "
            f"(float32 or float64), e.g. {name}.astype(np.float64)",
            array=name,
        )
    return arr


def first_nonfinite(arr: np.ndarray) -> Optional[Tuple[int, int]]:
    """(row, column) of the first non-finite value of a 2-D array, or None."""
    bad = ~np.isfinite(arr)
    if not bad.any():
        return None
    r, c = np.argwhere(bad)[0]
    return int(r), int(c)


def matrix(a, name: str, dim: Optional[int] = None, what: str = "", finite: bool = True) -> np.ndarray:
    """``a`` as a C-contiguous float64 ``[n, dim]`` array, checked: 2-D, ``dim`` columns
    (when given), at least one row and (with ``finite``) no NaN or ±inf."""
    arr = as_float(a, name)
    if arr.ndim != 2:
        raise DataError(f"{name} must be a 2-D array [n, {what or 'dim'}], got shape {arr.shape}", array=name)
    if dim is not None and arr.shape[1] != dim:
        raise DataError(
            f"{name} has {arr.shape[1]} columns, expected {what + ' = ' if what else ''}{dim} (shape {arr.shape})",
            array=name,
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise DataError(f"{name} is empty (shape {arr.shape})", array=name)
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    if finite:
        rc = first_nonfinite(arr)
        if rc is not None:
            r, c = rc
            raise DataError(f"{name}[{r}, {c}] is {arr[r, c]}: values must be finite (row {r}, column {c})", array=name, row=r, column=c)
    return arr


def observation(x, dim_x: int, name: str = "x") -> np.ndarray:
    """One observation: ``[dim_x]`` or ``[1, dim_x]``, finite; returned as 1-D float64."""
    arr = as_float(x, name)
    if arr.ndim == 2 and arr.shape[0] == 1:
        arr = arr[0]
    if arr.ndim != 1:
        raise DataError(
            f"{name} must be one observation of shape ({dim_x},) or (1, {dim_x}), got shape {arr.shape} "
            "(use sample_batched for several observations)",
            array=name,
        )
    if arr.shape[0] != dim_x:
        raise DataError(f"{name} has {arr.shape[0]} values, the model expects dim_x = {dim_x}", array=name)
    arr = np.ascontiguousarray(arr, dtype=np.float64)
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        c = int(bad[0])
        raise DataError(f"{name}[{c}] is {arr[c]}: the observation must be finite", array=name, row=0, column=c)
    return arr


def num_samples(sample_shape: ShapeLike) -> Tuple[int, Tuple[int, ...]]:
    """sbi's ``sample_shape`` (an int or a tuple) → (count, shape)."""
    if isinstance(sample_shape, (int, np.integer)):
        shape: Tuple[int, ...] = (int(sample_shape),)
    else:
        try:
            shape = tuple(int(s) for s in sample_shape)
        except TypeError:
            raise OptionError(f"sample_shape must be an int or a tuple of ints, got {sample_shape!r}", name="sample_shape") from None
    n = math.prod(shape) if shape else 1
    if n <= 0 or any(s < 0 for s in shape):
        raise OptionError(f"sample_shape must give at least one sample, got {sample_shape!r}", name="sample_shape")
    return n, shape
