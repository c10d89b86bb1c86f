"""Shared fixtures: small models trained once per session (on lavapipe each takes a few
seconds), and the CLI binary the round-trip tests compare against."""
import os
from pathlib import Path

import numpy as np
import pytest

import fmpe

# Linear Gaussian: θ ~ N(0, I₂), x | θ ~ N(θ, S² I₂): the posterior is
# N(x / (1 + S²), S² / (1 + S²) I₂).
S = 0.5


def analytic_posterior(x_o):
    mean = np.asarray(x_o) / (1.0 + S**2)
    var = S**2 / (1.0 + S**2)
    return mean, var


@pytest.fixture(scope="session")
def fmpe_bin() -> str:
    """The CLI binary, from $FMPE_BIN (.ci/run sets it); the test fails without it."""
    path = os.environ.get("FMPE_BIN")
    if not path or not Path(path).is_file():
        pytest.fail(f"set FMPE_BIN to the fmpe CLI binary (e.g. target/release/fmpe); got {path!r}")
    return str(Path(path).resolve())


def linear_gaussian_data(n, seed):
    rng = np.random.default_rng(seed)
    theta = rng.standard_normal((n, 2))
    x = theta + S * rng.standard_normal((n, 2))
    return theta, x


@pytest.fixture(scope="session")
def gaussian_posterior():
    """FMPE on the linear Gaussian (Gaussian prior: no transform, no box)."""
    theta, x = linear_gaussian_data(3000, 0)
    inference = fmpe.FMPE(fmpe.Gaussian(np.zeros(2), np.eye(2)), hidden=48, blocks=2, time_prior_exponent=1.0, seed=0)
    inference.append_simulations(theta, x).train(max_num_epochs=30, show_progress_bars=False)
    return inference.build_posterior()


@pytest.fixture(scope="session")
def box_posterior():
    """FMPE on θ ~ U(-1, 1)², x = θ + N(0, 0.5²): trained WITHOUT the parameter transform,
    so the flow leaks mass outside the box that rejection has to remove."""
    prior = fmpe.BoxUniform(-np.ones(2), np.ones(2))
    theta = prior.sample((2000,), seed=1)
    x = theta + 0.5 * np.random.default_rng(1).standard_normal(theta.shape)
    inference = fmpe.FMPE(prior, hidden=32, blocks=2, time_prior_exponent=1.0, transform=False, seed=1)
    inference.append_simulations(theta, x).train(max_num_epochs=8, show_progress_bars=False)
    return inference.build_posterior()


@pytest.fixture(scope="session")
def tiny_posterior():
    """A tiny model (trained two epochs) for tests of plumbing, not accuracy."""
    theta, x = linear_gaussian_data(600, 2)
    inference = fmpe.FMPE(hidden=16, blocks=1, seed=2)
    inference.append_simulations(theta, x).train(max_num_epochs=2, show_progress_bars=False)
    return inference.build_posterior()
