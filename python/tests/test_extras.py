"""Tasks, metrics and plots from Python."""
import numpy as np

import fmpe


def test_tasks_match_the_cli_simulator(fmpe_bin, tmp_path):
    import subprocess

    task = fmpe.tasks.get("two_moons")
    theta = task.prior_sample(200, seed=4)
    x = task.simulate(theta, seed=4)
    r = subprocess.run([fmpe_bin, "simulate", "--task", "two_moons", "--num-simulations", "200",
                        "--seed", "4", "--out", str(tmp_path / "sim")], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    # The CLI writes float32 .npy files.
    assert np.array_equal(np.load(tmp_path / "sim" / "theta.npy"), theta.astype(np.float32))
    assert np.array_equal(np.load(tmp_path / "sim" / "x.npy"), x.astype(np.float32))
    assert task.observation(1).shape == (2,)
    ref = task.reference_posterior_samples(1)
    assert ref.shape == (10_000, 2) and np.all(np.abs(ref) <= 1.0)


def test_c2st_separates_and_does_not_separate():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((500, 2))
    assert fmpe.c2st(a, rng.standard_normal((500, 2))) < 0.6
    assert fmpe.c2st(a, rng.standard_normal((500, 2)) + 3.0) > 0.95


def test_sbc_coverage_of_a_calibrated_posterior(gaussian_posterior):
    from conftest import linear_gaussian_data

    theta, x = linear_gaussian_data(30, 11)
    res = fmpe.sbc(gaussian_posterior, theta, x, num_posterior_samples=60, seed=3, solver="rk4", steps=20)
    assert res.ranks.shape == (30, 2) and res.coverage.shape == (19, 2)
    assert abs(res.mean_error) < 0.12 and res.max_abs_error < 0.3, res


def test_pairplot_writes_a_png(tmp_path):
    rng = np.random.default_rng(1)
    p = fmpe.pairplot(rng.standard_normal((300, 2)), rng.standard_normal((300, 2)), path=tmp_path / "p.png")
    assert open(p, "rb").read(8) == b"\x89PNG\r\n\x1a\n"
