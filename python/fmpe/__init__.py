"""fmpe: Flow Matching Posterior Estimation (Dax et al., NeurIPS 2023) on the GPU, with
sbi's API over numpy arrays. Every number is made by WGSL compute shaders through wgpu
(Vulkan, Metal, DX12; Mesa's lavapipe on Linux without a GPU)::

    import numpy as np, fmpe
    prior = fmpe.BoxUniform(low=-np.ones(2), high=np.ones(2))
    theta = prior.sample((10_000,), seed=0)                       # [n, 2]
    x = theta + 0.1 * np.random.default_rng(0).standard_normal(theta.shape)
    inference = fmpe.FMPE(prior)
    inference.append_simulations(theta, x).train()
    posterior = inference.build_posterior()
    samples = posterior.sample((10_000,), x=[0.1, 0.2], seed=1)  # [10000, 2]
"""
from . import tasks
from ._device import list_devices
from .errors import (
    DataError,
    FmpeError,
    FmpeIOError,
    GpuError,
    LowAcceptanceError,
    NoAdapterError,
    OptionError,
)
from .inference import FMPE, Posterior, TrainResult, load_posterior
from .metrics import SBCResult, c2st, expected_coverage, sbc, sbc_ranks
from .plot import pairplot
from .priors import BoxUniform, Gaussian, Prior

from ._fmpe import __version__

__all__ = [
    "FMPE", "Posterior", "TrainResult", "load_posterior",
    "BoxUniform", "Gaussian", "Prior", "tasks",
    "c2st", "sbc", "sbc_ranks", "expected_coverage", "SBCResult", "pairplot",
    "list_devices",
    "FmpeError", "DataError", "OptionError", "NoAdapterError", "GpuError", "LowAcceptanceError", "FmpeIOError",
    "__version__",
]
