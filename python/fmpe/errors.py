"""The exceptions fmpe raises (every error of the Rust engine arrives as one of these).

``FmpeError`` is the base class::

    FmpeError
    ├── DataError(ValueError)          bad data: .array, .row, .column (0-based for numpy
    │                                   arrays; 1-based line/column for files)
    ├── OptionError(ValueError)        an option out of range: .name (e.g. "atol")
    ├── NoAdapterError(RuntimeError)   no GPU adapter (says how to install lavapipe)
    ├── GpuError(RuntimeError)         the GPU reported an error or was lost
    ├── LowAcceptanceError(RuntimeError)  rejection to the prior accepts too few samples:
    │                                   .acceptance_rate
    └── FmpeIOError(OSError)           a file could not be read or written: .path
"""
from __future__ import annotations

import re
from typing import Optional

__all__ = [
    "FmpeError",
    "DataError",
    "OptionError",
    "NoAdapterError",
    "GpuError",
    "LowAcceptanceError",
    "FmpeIOError",
]


class FmpeError(Exception):
    """Base class of every fmpe exception."""


class DataError(FmpeError, ValueError):
    """Bad input data. ``array`` names the array (``"theta"``, ``"x"``, …) or the file,
    ``row`` / ``column`` locate the offending value when known (0-based indices into a
    numpy array; 1-based line and column in a file)."""

    def __init__(self, message: str, array: Optional[str] = None, row: Optional[int] = None, column: Optional[int] = None):
        super().__init__(message)
        self.array = array
        self.row = row
        self.column = column


class OptionError(FmpeError, ValueError):
    """An option out of its range or inconsistent with another; ``name`` is the option."""

    def __init__(self, message: str, name: Optional[str] = None):
        super().__init__(message)
        self.name = name


class NoAdapterError(FmpeError, RuntimeError):
    """No GPU adapter was found. On Linux without a GPU, install Mesa's software Vulkan
    driver: ``sudo apt-get install mesa-vulkan-drivers libvulkan1`` (lavapipe)."""


class GpuError(FmpeError, RuntimeError):
    """The GPU reported a validation or out-of-memory error, or the device was lost."""


class LowAcceptanceError(FmpeError, RuntimeError):
    """Rejection sampling to the prior's support accepted too few samples to finish in
    time. ``acceptance_rate`` is the fraction accepted so far (None if unknown)."""

    def __init__(self, message: str, acceptance_rate: Optional[float] = None):
        super().__init__(message)
        if acceptance_rate is None:
            acceptance_rate = _rate_from_message(message)
        self.acceptance_rate = acceptance_rate


class FmpeIOError(FmpeError, OSError):
    """A file or directory could not be read or written; ``path`` names it."""

    def __init__(self, message: str, path: Optional[str] = None):
        super().__init__(message)
        self.path = path

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


def _rate_from_message(message: str) -> Optional[float]:
    m = re.search(r"\((\d+) of (\d+) proposed\)", message)
    if m and int(m.group(2)) > 0:
        return int(m.group(1)) / int(m.group(2))
    m = re.search(r"acceptance rate ([0-9.eE+-]+)", message)
    return float(m.group(1)) if m else None
