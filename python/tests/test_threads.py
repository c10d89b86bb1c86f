"""The GIL is released while the GPU works; threads sampling or saving at once get the
results they would get alone; Ctrl-C stops training cleanly; progress in a batch log."""
import os
import signal
import threading
import time
import warnings

import numpy as np

import fmpe
from conftest import linear_gaussian_data


class Counter:
    """A Python thread that counts as fast as the GIL lets it."""

    def __init__(self):
        self.n = 0
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop:
            self.n += 1

    def __enter__(self):
        self._t.start()
        return self

    def __exit__(self, *exc):
        self._stop = True
        self._t.join()

    def rate(self, work):
        """Counts per second while `work()` runs."""
        n0, t0 = self.n, time.perf_counter()
        work()
        return (self.n - n0) / (time.perf_counter() - t0)


def test_gil_is_released_during_train_and_sample(tiny_posterior):
    theta, x = linear_gaussian_data(1500, 3)
    with Counter() as c:
        baseline = c.rate(lambda: time.sleep(0.5))
        inference = fmpe.FMPE(hidden=32, blocks=2, seed=4).append_simulations(theta, x)
        during_train = c.rate(lambda: inference.train(max_num_epochs=3, show_progress_bars=False))
        during_sample = c.rate(lambda: tiny_posterior.sample((4000,), x=[0.1, 0.2], seed=1))
    # Holding the GIL, the counter would stall (a few switch intervals at most).
    assert during_train > 0.1 * baseline, (during_train, baseline)
    assert during_sample > 0.1 * baseline, (during_sample, baseline)


def test_two_threads_sampling_at_once_equal_alone(tiny_posterior):
    jobs = [([0.2, -0.1], 31), ([1.0, 0.5], 32)]
    alone = [tiny_posterior.sample((500,), x=x, seed=s) for x, s in jobs]
    together = [None, None]
    barrier = threading.Barrier(2)

    def run(i):
        barrier.wait()
        x, s = jobs[i]
        together[i] = tiny_posterior.sample((500,), x=x, seed=s)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for a, b in zip(alone, together):
        assert np.array_equal(a, b)


def test_concurrent_saves_to_different_paths(tiny_posterior, tmp_path):
    paths = [tmp_path / f"model_{i}" for i in range(4)]
    errors = []

    def save(p):
        try:
            tiny_posterior.save(p)
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=save, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    want = tiny_posterior.sample((100,), x=[0.0, 0.3], seed=2)
    for p in paths:
        assert sorted(os.listdir(p)) == ["model.json", "model.safetensors"]
        assert np.array_equal(fmpe.load_posterior(p).sample((100,), x=[0.0, 0.3], seed=2), want)
    # No temporary directory left beside them.
    assert sorted(os.listdir(tmp_path)) == [f"model_{i}" for i in range(4)]


def test_ctrl_c_stops_training_and_keeps_the_best_weights():
    # Python turns SIGINT into KeyboardInterrupt only when its parent left the signal
    # at its default; a shell's background job (`cmd &` without job control) starts
    # with SIGINT ignored. Install Python's handler for this test, as a terminal has it.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        _ctrl_c_stops_training()
    finally:
        signal.signal(signal.SIGINT, previous)


def _ctrl_c_stops_training():
    theta, x = linear_gaussian_data(1500, 4)
    inference = fmpe.FMPE(hidden=16, blocks=1, seed=5).append_simulations(theta, x)
    sent = []

    def interrupt(record):
        if record["epoch"] == 2 and not sent:
            sent.append(1)
            os.kill(os.getpid(), signal.SIGINT)  # handled at the next epoch's check

    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        result = inference.train(max_num_epochs=200, callback=interrupt, show_progress_bars=False)
    assert result.interrupted
    assert 2 <= result.epochs <= 4, result.epochs
    assert any("interrupted" in str(m.message) for m in w)
    s = inference.build_posterior().sample((10,), x=[0.0, 0.0], seed=1)
    assert np.all(np.isfinite(s))


def test_progress_without_a_tty_prints_periodic_lines(capsys):
    theta, x = linear_gaussian_data(600, 6)
    stops = []
    r = fmpe.FMPE(hidden=16, blocks=1).append_simulations(theta, x).train(
        max_num_epochs=20, callback=lambda rec: stops.append(rec["epoch"]) or rec["epoch"] >= 3
    )
    err = capsys.readouterr().err
    assert r.epochs == 3 and stops == [1, 2, 3]  # the callback stopped training
    assert "epoch 1/20" in err and "epoch 3/20" in err
    assert "\r" not in err
