"""``FMPE`` (training, sbi's names) and ``Posterior`` (sampling and densities)."""
from __future__ import annotations

import json
import os
import secrets
import warnings
from typing import Any, Callable, Dict, List, Optional, Sequence, Union

import numpy as np

from . import _fmpe
from ._arrays import ShapeLike, as_float, first_nonfinite, matrix, num_samples, observation
from ._device import DeviceLike, get_device
from ._progress import Progress
from .errors import DataError, OptionError
from .priors import BoxUniform, Prior

__all__ = ["FMPE", "Posterior", "TrainResult", "load_posterior"]

PathLike = Union[str, "os.PathLike[str]"]


class TrainResult:
    """What ``FMPE.train`` did: ``epochs``, ``best_epoch``, ``best_val_loss``, ``seconds``,
    ``history`` (one dict per epoch: epoch, train_loss, val_loss, learning_rate,
    seconds) and ``interrupted`` (stopped by Ctrl-C; the best weights are kept)."""

    def __init__(self, history: List[dict], interrupted: bool, best_epoch: int):
        self.history = history
        self.interrupted = interrupted
        self.epochs = len(history)
        self.best_epoch = best_epoch
        self.best_val_loss = history[best_epoch - 1]["val_loss"] if 0 < best_epoch <= len(history) else float("nan")
        self.seconds = history[-1]["seconds"] if history else 0.0

    def __repr__(self) -> str:
        return (
            f"TrainResult(epochs={self.epochs}, best_epoch={self.best_epoch}, "
            f"best_val_loss={self.best_val_loss:.4f}, seconds={self.seconds:.1f}, interrupted={self.interrupted})"
        )


class FMPE:
    """Flow Matching Posterior Estimation (Dax et al. 2023) on the GPU, with sbi's API::

        inference = fmpe.FMPE(prior)
        inference.append_simulations(theta, x).train()
        posterior = inference.build_posterior()
        samples = posterior.sample((10_000,), x=x_o)

    Parameters (None = the library's default, as the CLI's):

    * ``prior``: ``fmpe.BoxUniform``, ``fmpe.Gaussian``, a task's prior
      (``fmpe.tasks.get(name).prior``) or None. A box prior is stored with the model;
      samples are rejected outside it, and with ``transform=True`` (default) the flow is
      trained in the box's logit space (the task's bijections for a task prior).
    * ``hidden`` (64): residual-block width, or a list of widths (one block each);
      ``blocks`` (4): blocks when ``hidden`` is one width.
    * ``conditioning`` ("concat" or "glu"); ``embedding`` ("auto", "none" or a list of
      widths of the x-embedding MLP).
    * ``time_prior_exponent`` (None: the budget policy, 4, except 1 when dim θ > 2
      below 3,163 simulations and when dim θ > 5 below 31,623), ``sigma_min`` (1e-4):
      the FMPE path.
    * ``ema_decay`` (None: the budget policy, 0.999 below 3,163 simulations, else 0
      = none): decay per optimiser step of
      an exponential moving average of the weights (e.g. 0.999), which validation, early
      stopping and the returned posterior then use, as the CLI's ``--ema-decay``.
    * ``select_transform`` (None: the budget policy's choice, on below 3,163
      simulations, and below 31,623 when dim θ > 2): also train without the box prior's logit transform and keep the
      model with the lower held-out NLL, as the CLI's ``--select-transform`` (the
      scores are in ``posterior.info["selection"]``); True / False force it. Only a
      box prior with ``transform=True`` has an alternative to compare.
    * ``reflect_training`` (None: the budget policy's choice, on from dim θ 6): the
      candidate without the logit trains on the reflected density at the box bounds
      (components near a bound are mirrored across it at random, and its samples are
      folded back into the box), as the CLI's ``--reflect-training``; True / False
      force it.
    * ``seed`` (0): split, shuffling, initialisation and path noise; training is bitwise
      reproducible given the simulations and the seed.
    * ``device``: an adapter index or name substring (``fmpe.list_devices()``).
    """

    def __init__(
        self,
        prior: Optional[Prior] = None,
        *,
        hidden: Union[None, int, Sequence[int]] = None,
        blocks: Optional[int] = None,
        conditioning: Optional[str] = None,
        embedding: Union[None, str, Sequence[int]] = None,
        time_prior_exponent: Optional[float] = None,
        sigma_min: Optional[float] = None,
        ema_decay: Optional[float] = None,
        transform: bool = True,
        select_transform: Optional[bool] = None,
        reflect_training: Optional[bool] = None,
        seed: int = 0,
        device: DeviceLike = None,
    ):
        if prior is not None and not isinstance(prior, Prior):
            raise TypeError("prior must be fmpe.BoxUniform, fmpe.Gaussian, a task's prior or None")
        self.prior = prior
        # None: the budget policy's network, resolved by train() from the number of
        # simulations and the dimensions (as the CLI's `auto`).
        self._hidden_list: Optional[List[int]] = None
        self._width: Optional[int] = None
        if isinstance(hidden, (int, np.integer)):
            self._width = int(hidden)
        elif hidden is not None:
            self._hidden_list = [int(w) for w in hidden]
        self._blocks = None if blocks is None else int(blocks)
        self._conditioning = "concat" if conditioning is None else str(conditioning)
        if embedding is None or embedding == "auto":
            self._embedding: Optional[List[int]] = None
        elif embedding == "none":
            self._embedding = []
        else:
            self._embedding = [int(w) for w in embedding]  # type: ignore[union-attr]
        self._time_prior_exponent = time_prior_exponent
        self._sigma_min = sigma_min
        self._ema_decay = ema_decay
        self._transform = bool(transform)
        if select_transform is not None and not isinstance(select_transform, (bool, np.bool_)):
            raise OptionError(f"select_transform must be None, True or False, got {select_transform!r}", name="select_transform")
        self._select_transform = None if select_transform is None else bool(select_transform)
        if reflect_training is not None and not isinstance(reflect_training, (bool, np.bool_)):
            raise OptionError(f"reflect_training must be None, True or False, got {reflect_training!r}", name="reflect_training")
        self._reflect_training = None if reflect_training is None else bool(reflect_training)
        self._seed = int(seed)
        self._device = get_device(device)
        self._theta: List[np.ndarray] = []
        self._x: List[np.ndarray] = []
        self._dropped = 0
        self._flow: Optional[_fmpe.Flow] = None
        self.summary: Optional[TrainResult] = None
        #: The budget policy's resolved options of the last ``train()`` (one line).
        self.policy: Optional[str] = None

    @property
    def device(self) -> str:
        """The adapter this object trains on."""
        return self._device.name

    def append_simulations(self, theta, x, exclude_invalid_x: bool = True) -> "FMPE":
        """Adds simulations ``theta [n, dim θ]`` and ``x [n, dim x]`` (float32 or float64,
        any memory order). Rows whose x holds NaN or ±inf are dropped with a warning
        counting them (``exclude_invalid_x=False``: a ``DataError`` instead); θ must be
        finite. Returns ``self``. Raises ``DataError`` naming the array, row and column;
        nothing is appended then."""
        dt = self._theta[0].shape[1] if self._theta else (self.prior.dim if self.prior is not None else None)
        dx = self._x[0].shape[1] if self._x else None
        t = matrix(theta, "theta", dt, "dim theta")
        xa = matrix(x, "x", dx, "dim x", finite=False)
        if t.shape[0] != xa.shape[0]:
            raise DataError(f"theta has {t.shape[0]} rows and x has {xa.shape[0]}: one x per theta row is needed", array="x")
        ok = np.all(np.isfinite(xa), axis=1)
        if not ok.all():
            if not exclude_invalid_x:
                r, c = first_nonfinite(xa)  # type: ignore[misc]
                raise DataError(f"x[{r}, {c}] is {xa[r, c]} (exclude_invalid_x=False)", array="x", row=r, column=c)
            dropped = int((~ok).sum())
            if dropped == len(ok):
                raise DataError(f"every x row holds NaN or inf ({dropped} rows): nothing to train on", array="x")
            warnings.warn(f"dropped {dropped} of {len(ok)} simulations whose x holds NaN or inf", stacklevel=2)
            t, xa = t[ok], xa[ok]
            self._dropped += dropped
        self._theta.append(t)
        self._x.append(xa)
        return self

    @property
    def num_simulations(self) -> int:
        """Simulations appended (after dropping invalid x)."""
        return sum(len(t) for t in self._theta)

    def train(
        self,
        training_batch_size: Optional[int] = None,
        learning_rate: Optional[float] = None,
        max_num_epochs: Optional[int] = None,
        stop_after_epochs: Optional[int] = None,
        validation_fraction: Optional[float] = None,
        max_train_seconds: Optional[float] = None,
        show_train_summary: bool = False,
        callback: Optional[Callable[[dict], object]] = None,
        show_progress_bars: bool = True,
    ) -> TrainResult:
        """Trains on every simulation appended. None = the budget policy's value, as the
        CLI's ``auto`` resolves it from the number of simulations and the dimensions
        (at 10⁴ simulations: 4 × 64, batch 256, learning rate 1e-3 with cosine
        annealing, 200 epochs, early stopping after 30 epochs without a better
        validation loss, 5 % validation; at 10³: batch 32, 20 % validation, 320
        epochs, and with a box prior it also trains without the logit transform and keeps
        the lower held-out NLL, at 10⁴ too when dim θ > 2: ``select_transform``); the resolved line is in
        ``self.policy``. With model selection the callback's records carry
        ``candidate`` (0, 1, …) and the result's history is the kept candidate's. ``max_train_seconds``
        caps the wall time. ``callback(record)`` is called after each epoch with a dict
        (epoch, train_loss, val_loss, learning_rate, seconds, best_epoch, max_epochs,
        last) and stops training by returning True. Ctrl-C stops training after the
        current epoch and keeps the best weights (a warning says so). The GPU works with
        the GIL released. Returns a ``TrainResult``; ``build_posterior()`` uses it."""
        if not self._theta:
            raise DataError("no simulations: call append_simulations(theta, x) first", array="theta")
        theta = np.concatenate(self._theta) if len(self._theta) > 1 else self._theta[0]
        x = np.concatenate(self._x) if len(self._x) > 1 else self._x[0]
        base = json.loads(_fmpe.default_train_config())
        if self._sigma_min is not None:
            base["sigma_min"] = self._sigma_min
        base["seed"] = self._seed
        base["max_seconds"] = max_train_seconds
        for key, value in [("batch_size", training_batch_size), ("max_epochs", max_num_epochs), ("patience", stop_after_epochs)]:
            if value is not None and (not isinstance(value, (int, np.integer)) or value < 0):
                raise OptionError(f"{key}: must be a non-negative integer, got {value!r}", name=key)
        explicit = {
            "hidden": self._hidden_list,
            "width": self._width,
            "blocks": self._blocks,
            "batch_size": None if training_batch_size is None else int(training_batch_size),
            "learning_rate": None if learning_rate is None else float(learning_rate),
            "max_epochs": None if max_num_epochs is None else int(max_num_epochs),
            "patience": None if stop_after_epochs is None else int(stop_after_epochs),
            "validation_fraction": None if validation_fraction is None else float(validation_fraction),
            "time_prior_exponent": None if self._time_prior_exponent is None else float(self._time_prior_exponent),
            "ema_decay": None if self._ema_decay is None else float(self._ema_decay),
        }
        # The budget policy (the CLI's `auto`) for what the caller left at None.
        hidden, config_json, self.policy = _fmpe.resolve_policy(len(theta), theta.shape[1], x.shape[1], explicit, json.dumps(base))
        config = json.loads(config_json)
        meta = self._meta()
        net = {"hidden": hidden, "conditioning": self._conditioning, "embedding": self._embedding}
        progress = Progress(show_progress_bars, callback)
        try:
            flow, interrupted, data_warnings = _fmpe.train(
                self._device, theta, x, net, meta, json.dumps(config), self._select_transform, self._reflect_training, progress
            )
        finally:
            progress.close()
        for w in data_warnings:
            warnings.warn(w, stacklevel=2)
        info = json.loads(flow.info_json())
        self._flow = flow
        # With model selection, the history is the kept candidate's.
        chosen = (info.get("selection") or {}).get("chosen", 0)
        history = progress.histories[chosen] if chosen < len(progress.histories) else progress.history
        self.summary = TrainResult(history, interrupted, info["best_epoch"])
        if interrupted:
            warnings.warn(
                f"training interrupted (Ctrl-C) after epoch {self.summary.epochs}; "
                f"keeping the best weights (epoch {self.summary.best_epoch})",
                stacklevel=2,
            )
        if show_train_summary:
            print(_summary_text(self.summary, info))
        return self.summary

    def _meta(self) -> Dict[str, Any]:
        p = self.prior
        box = p._box() if p is not None else None
        return {
            "task": p._task() if p is not None else None,
            "prior_low": None if box is None else [float(v) for v in box[0]],
            "prior_high": None if box is None else [float(v) for v in box[1]],
            "transform": self._transform,
            "theta_names": [],
            "x_names": [],
            "dropped_rows": self._dropped,
        }

    def build_posterior(self, density_estimator: Any = None) -> "Posterior":
        """The posterior of the last training (``density_estimator`` is accepted for
        sbi compatibility and ignored)."""
        if self._flow is None:
            raise RuntimeError("train() first: there is no trained model yet")
        return Posterior(self._flow, self._device, self.prior)


def _summary_text(s: TrainResult, info: dict) -> str:
    return (
        f"trained on {info['n_train']} simulations ({info['n_val']} validation) for {s.epochs} epochs "
        f"in {s.seconds:.1f} s; best epoch {s.best_epoch} (validation loss {s.best_val_loss:.4f})"
        + ("; interrupted by Ctrl-C" if s.interrupted else "")
    )


def _seed(seed: Optional[int]) -> int:
    if seed is None:
        return secrets.randbits(63)
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise OptionError(f"seed must be a non-negative integer, got {seed!r}", name="seed")
    return int(seed)


class Posterior:
    """The flow posterior q(θ | x) of a trained model, on its device (sbi's
    ``DirectPosterior`` with numpy arrays). Thread-safe: several threads may sample at
    once; each call releases the GIL while the GPU works.

    Sampling options (every method): ``solver`` ("dopri5" adaptive with ``atol`` /
    ``rtol``, or "rk4" with ``steps``), ``seed`` (None: a fresh random seed per call; the
    same seed gives bitwise the same samples), ``reject_outside_prior`` (redraw samples
    outside the box prior), ``reflect_outside_prior`` (``sample`` and ``sample_batched``:
    True folds samples that leave the box prior back into it at its bounds instead, for
    posteriors cut off by the box; None, the default, is the model's choice made at
    training, ``info["selection"]["reflection"]``, and always True for a model trained
    on the reflected density, ``reflect_training``), ``max_sampling_time`` (seconds; ``LowAcceptanceError`` when
    rejection would take longer), ``chunk_size`` (rows per GPU chunk; results do not
    depend on it)."""

    def __init__(self, flow: "_fmpe.Flow", device: "_fmpe.Device", prior: Optional[Prior] = None):
        self._flow = flow
        self._device = device
        if prior is None and flow.prior_box is not None:
            prior = BoxUniform(*flow.prior_box)
        self.prior = prior
        self.default_x: Optional[np.ndarray] = None
        self.last_report: Optional[dict] = None

    @property
    def dim_theta(self) -> int:
        return self._flow.dim_theta

    @property
    def dim_x(self) -> int:
        return self._flow.dim_x

    @property
    def info(self) -> dict:
        """The model's description (``model.json``: network, transforms, prior, history)."""
        return json.loads(self._flow.info_json())

    def set_default_x(self, x) -> "Posterior":
        """Sets the observation used when ``x`` is not given; returns ``self``."""
        self.default_x = observation(x, self.dim_x)
        return self

    def _x(self, x) -> np.ndarray:
        if x is None:
            if self.default_x is None:
                raise DataError("no observation: pass x=... or call set_default_x(x) first", array="x")
            return self.default_x
        return observation(x, self.dim_x)

    @staticmethod
    def _opts(solver, atol, rtol, steps, seed, reject, max_time, chunk_size, divergence="exact", probes=1, gaussian=False, normalize=False, reflect=None) -> dict:
        return {
            "solver": solver,
            "atol": float(atol),
            "rtol": float(rtol),
            "steps": int(steps),
            "seed": _seed(seed),
            "reject_outside_prior": bool(reject),
            "reflect_outside_prior": None if reflect is None else bool(reflect),
            "max_seconds": None if max_time is None else float(max_time),
            "chunk_size": None if chunk_size is None else int(chunk_size),
            "divergence": divergence,
            "probes": int(probes),
            "gaussian_probes": bool(gaussian),
            "normalize_to_prior": bool(normalize),
        }

    def sample(
        self,
        sample_shape: ShapeLike = (1,),
        x=None,
        *,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        steps: int = 50,
        seed: Optional[int] = None,
        reject_outside_prior: bool = True,
        reflect_outside_prior: Optional[bool] = None,
        max_sampling_time: Optional[float] = None,
        chunk_size: Optional[int] = None,
    ) -> np.ndarray:
        """Posterior samples ``[*sample_shape, dim θ]`` (float64, original units) for the
        observation ``x`` (``[dim x]``; default: ``set_default_x``). The sampling report
        (acceptance rate, ODE steps, seconds) is in ``last_report``."""
        n, shape = num_samples(sample_shape)
        opts = self._opts(solver, atol, rtol, steps, seed, reject_outside_prior, max_sampling_time, chunk_size, reflect=reflect_outside_prior)
        s, _, report = self._flow.sample(self._x(x), n, opts, False)
        self.last_report = report
        return s.reshape(*shape, self.dim_theta)

    def sample_and_log_prob(
        self,
        sample_shape: ShapeLike = (1,),
        x=None,
        *,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        steps: int = 50,
        seed: Optional[int] = None,
        reject_outside_prior: bool = True,
        max_sampling_time: Optional[float] = None,
        chunk_size: Optional[int] = None,
    ):
        """``(samples [*sample_shape, dim θ], log_prob [*sample_shape])`` from one joint
        solve (exact divergence); the samples equal ``sample``'s for the same seed."""
        n, shape = num_samples(sample_shape)
        opts = self._opts(solver, atol, rtol, steps, seed, reject_outside_prior, max_sampling_time, chunk_size)
        s, lp, report = self._flow.sample(self._x(x), n, opts, True)
        self.last_report = report
        return s.reshape(*shape, self.dim_theta), lp.reshape(shape)

    def sample_batched(
        self,
        sample_shape: ShapeLike,
        x,
        *,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        steps: int = 50,
        seed: Optional[int] = None,
        reject_outside_prior: bool = True,
        reflect_outside_prior: Optional[bool] = None,
        max_sampling_time: Optional[float] = None,
        chunk_size: Optional[int] = None,
    ) -> np.ndarray:
        """``n`` samples for each observation of ``x [m, dim x]``: ``[m, n, dim θ]``,
        from one amortized GPU solve over the rows of all observations (each chunk of
        rows carries one observation per row; rejection rounds are kept per
        observation). Row ``i`` equals (bitwise) ``sample((n,), x=x[i], seed=seed)``
        (the same seed for every observation; with ``seed=None`` one random seed is
        drawn for the call)."""
        n, shape = num_samples(sample_shape)
        xs = matrix(x, "x", self.dim_x, "dim x")
        opts = self._opts(solver, atol, rtol, steps, seed, reject_outside_prior, max_sampling_time, chunk_size, reflect=reflect_outside_prior)
        out = self._flow.sample_batched(xs, n, opts)
        return out.reshape(xs.shape[0], *shape, self.dim_theta)

    def log_prob(
        self,
        theta,
        x=None,
        *,
        divergence: str = "exact",
        probes: int = 1,
        gaussian_probes: bool = False,
        solver: str = "dopri5",
        atol: float = 1e-5,
        rtol: float = 1e-5,
        steps: int = 50,
        seed: int = 0,
        reject_outside_prior: bool = True,
        chunk_size: Optional[int] = None,
        norm_posterior: bool = False,
    ) -> np.ndarray:
        """log q(θ | x) in nats of each row of ``theta [n, dim θ]`` (or one ``[dim θ]``):
        ``[n]``. ``divergence="exact"`` (the trace of the Jacobian) or ``"hutchinson"``
        (``probes`` random probes, Rademacher or Gaussian). With ``reject_outside_prior``
        points outside the box prior get −inf. The flow's density, not renormalised to
        the prior's support, unless ``norm_posterior=True`` (sbi's leakage correction:
        minus the log of the flow's mass inside the box, estimated once per x, solver
        and seed from 10,000 samples and cached; sbi's default is True, fmpe's False)."""
        t = as_float(theta, "theta")
        single = t.ndim == 1
        t = matrix(t[None, :] if single else t, "theta", self.dim_theta, "dim theta")
        opts = self._opts(solver, atol, rtol, steps, seed, reject_outside_prior, None, chunk_size, divergence, probes, gaussian_probes, norm_posterior)
        lp = self._flow.log_prob(self._x(x), t, opts)
        return lp[0] if single else lp

    def save(self, path: PathLike) -> None:
        """Writes the model directory ``path`` (``model.safetensors`` + ``model.json``,
        the CLI's format) atomically; an existing model directory is replaced, any other
        existing non-empty path is refused. ``fmpe.load_posterior`` and ``fmpe sample
        --model`` read it."""
        self._flow.save(os.fspath(path))

    def __repr__(self) -> str:
        return f"Posterior(dim_theta={self.dim_theta}, dim_x={self.dim_x}, prior={self.prior!r})"


def load_posterior(path: PathLike, device: DeviceLike = None) -> Posterior:
    """The posterior of the model directory ``path`` (written by ``Posterior.save`` or
    by the CLI's ``fmpe train`` / ``fmpe run``), uploaded to ``device``."""
    dev = get_device(device)
    return Posterior(_fmpe.Flow.load(dev, os.fspath(path)), dev)
