"""The GPU devices fmpe has opened, one per selector, shared by every object."""
from __future__ import annotations

import threading
from typing import Dict, Optional, Union

from . import _fmpe

DeviceLike = Union[None, int, str, "_fmpe.Device"]

_lock = threading.Lock()
_open: Dict[object, "_fmpe.Device"] = {}


def get_device(device: DeviceLike = None) -> "_fmpe.Device":
    """The opened device for ``device``: None (the default adapter, or the one the
    ``WGPU_ADAPTER_NAME`` / ``WGPU_ADAPTER_INDEX`` / ``WGPU_BACKEND`` variables pick), an
    adapter index (as ``fmpe.list_devices()`` numbers them) or a name substring.
    Opened once and reused. Raises ``NoAdapterError`` when no adapter matches."""
    if isinstance(device, _fmpe.Device):
        return device
    if device is not None and not isinstance(device, (int, str)):
        raise TypeError(f"device must be None, an int or a str, got {type(device).__name__}")
    key = device
    with _lock:
        dev = _open.get(key)
        if dev is None:
            dev = _fmpe.Device(device)
            _open[key] = dev
        return dev


def list_devices() -> list:
    """Descriptions of every adapter wgpu finds (name, backend, type, driver); the index
    in this list is what ``device=<int>`` selects."""
    return _fmpe.list_devices()
