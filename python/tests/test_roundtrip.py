"""The CLI and Python read and write the same model directory: a model trained by the
CLI samples bitwise alike in Python and the reverse; training itself is the same."""
import subprocess

import numpy as np
import pytest

import fmpe
from conftest import linear_gaussian_data

OBS = np.array([[0.3, -0.2]])
TRAIN_FLAGS = ["--hidden", "16", "--blocks", "1", "--max-epochs", "2", "--seed", "3"]


def _cli(bin_, *args):
    r = subprocess.run([bin_, *args], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r


def _data(tmp_path):
    theta, x = linear_gaussian_data(500, 5)
    np.save(tmp_path / "theta.npy", theta)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "obs.npy", OBS)
    return theta, x


def _cli_sample(bin_, model, tmp_path, seed, name):
    out = tmp_path / name
    _cli(bin_, "sample", "--model", str(model), "--observation", str(tmp_path / "obs.npy"),
         "--num-samples", "300", "--seed", str(seed), "--out", str(out))
    return np.load(out)


def test_cli_trained_model_samples_bitwise_alike_in_python(fmpe_bin, tmp_path):
    _data(tmp_path)
    model = tmp_path / "cli_model"
    _cli(fmpe_bin, "train", "--theta", str(tmp_path / "theta.npy"), "--x", str(tmp_path / "x.npy"),
         "--out", str(model), *TRAIN_FLAGS)
    cli = _cli_sample(fmpe_bin, model, tmp_path, 11, "cli.npy")
    py = fmpe.load_posterior(model).sample((300,), x=OBS, seed=11)
    assert cli.shape == (300, 2)
    assert np.array_equal(cli, py)


def test_python_saved_model_samples_bitwise_alike_from_the_cli(fmpe_bin, tmp_path):
    theta, x = _data(tmp_path)
    inference = fmpe.FMPE(hidden=16, blocks=1, seed=3)
    inference.append_simulations(theta, x).train(max_num_epochs=2, show_progress_bars=False)
    posterior = inference.build_posterior()
    posterior.save(tmp_path / "py_model")
    cli = _cli_sample(fmpe_bin, tmp_path / "py_model", tmp_path, 12, "cli.npy")
    assert np.array_equal(cli, posterior.sample((300,), x=OBS, seed=12))
    # Same data, flags and seed: the CLI trains the same weights as Python.
    _cli(fmpe_bin, "train", "--theta", str(tmp_path / "theta.npy"), "--x", str(tmp_path / "x.npy"),
         "--out", str(tmp_path / "cli_model"), *TRAIN_FLAGS)
    assert np.array_equal(cli, _cli_sample(fmpe_bin, tmp_path / "cli_model", tmp_path, 12, "cli2.npy"))


def test_sample_batched_equals_separate_sample_calls(tiny_posterior):
    xs = np.random.default_rng(9).standard_normal((10, 2))
    batched = tiny_posterior.sample_batched((50,), x=xs, seed=21)
    assert batched.shape == (10, 50, 2)
    for i in range(10):
        assert np.array_equal(batched[i], tiny_posterior.sample((50,), x=xs[i], seed=21))
    # Different observations give different samples (the check can fail).
    assert not np.array_equal(batched[0], batched[1])


def test_sample_and_log_prob_match_sample_and_log_prob(tiny_posterior):
    s, lp = tiny_posterior.sample_and_log_prob((64,), x=OBS, seed=5)
    assert np.array_equal(s, tiny_posterior.sample((64,), x=OBS, seed=5))
    assert np.allclose(lp, tiny_posterior.log_prob(s, x=OBS), atol=2e-3)


def test_model_selection_as_the_cli_does(fmpe_bin, tmp_path):
    """A box prior at a small budget (below 3,163 simulations): Python trains the policy's
    two candidates (with and without the logit transform), scores both by held-out NLL
    and keeps the lower, as `fmpe train` does: the same scores, the same choice, the
    same samples. `select_transform=False` trains the first candidate only."""
    prior = fmpe.BoxUniform(-np.ones(2), np.ones(2))
    theta = prior.sample((500,), seed=4)
    x = theta + 0.3 * np.random.default_rng(4).standard_normal(theta.shape)
    np.save(tmp_path / "theta.npy", theta)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "obs.npy", OBS)
    inference = fmpe.FMPE(prior, hidden=16, blocks=1, seed=3)
    seen = set()
    result = inference.append_simulations(theta, x).train(
        max_num_epochs=3, show_progress_bars=False, callback=lambda r: seen.add(r["candidate"])
    )
    posterior = inference.build_posterior()
    sel = posterior.info["selection"]
    assert seen == {0, 1}
    assert sel["metric"] == "held_out_nll" and len(sel["candidates"]) == 2
    scores = [c["held_out_nll"] for c in sel["candidates"]]
    assert all(np.isfinite(scores))
    assert sel["chosen"] == int(np.argmin(scores))
    assert result.epochs == sel["candidates"][sel["chosen"]]["epochs"]

    model = tmp_path / "cli_model"
    _cli(fmpe_bin, "train", "--theta", str(tmp_path / "theta.npy"), "--x", str(tmp_path / "x.npy"),
         "--prior-low=-1,-1", "--prior-high=1,1", "--out", str(model), *TRAIN_FLAGS[:4], "--max-epochs", "3", "--seed", "3")
    cli = fmpe.load_posterior(model)
    cli_sel = cli.info["selection"]
    assert cli_sel["chosen"] == sel["chosen"]
    assert [c["held_out_nll"] for c in cli_sel["candidates"]] == scores
    assert np.array_equal(cli.sample((300,), x=OBS, seed=5), posterior.sample((300,), x=OBS, seed=5))

    single = fmpe.FMPE(prior, hidden=16, blocks=1, seed=3, select_transform=False)
    single.append_simulations(theta, x).train(max_num_epochs=3, show_progress_bars=False)
    assert single.build_posterior().info.get("selection") is None
    with pytest.raises(fmpe.OptionError):
        fmpe.FMPE(prior, select_transform="yes")

    # Training on the reflected density, forced on at dim θ 2: the candidate without
    # the logit trains on it in Python as with the CLI's --reflect-training on.
    refl = fmpe.FMPE(prior, hidden=16, blocks=1, seed=3, reflect_training=True)
    refl.append_simulations(theta, x).train(max_num_epochs=3, show_progress_bars=False)
    rsel = refl.build_posterior().info["selection"]
    assert [c["reflect_training"] for c in rsel["candidates"]] == [False, True]
    model = tmp_path / "cli_model_reflect"
    _cli(fmpe_bin, "train", "--theta", str(tmp_path / "theta.npy"), "--x", str(tmp_path / "x.npy"),
         "--prior-low=-1,-1", "--prior-high=1,1", "--out", str(model), *TRAIN_FLAGS[:4], "--max-epochs", "3", "--seed", "3",
         "--reflect-training", "on")
    cli_rsel = fmpe.load_posterior(model).info["selection"]
    assert [c["held_out_nll"] for c in cli_rsel["candidates"]] == [c["held_out_nll"] for c in rsel["candidates"]]
    assert rsel["candidates"][1]["held_out_nll"] != scores[1], "the reflecting candidate trains differently"
    with pytest.raises(fmpe.OptionError):
        fmpe.FMPE(prior, reflect_training="yes")


def test_weight_averaging_trains_the_same_weights_as_the_cli(fmpe_bin, tmp_path):
    """``ema_decay`` reaches the trainer as the CLI's ``--ema-decay`` does: the same
    stored option and the same samples; without an average the weights differ (the
    check can fail)."""
    theta, x = _data(tmp_path)
    inference = fmpe.FMPE(hidden=16, blocks=1, seed=3, ema_decay=0.9)
    inference.append_simulations(theta, x).train(max_num_epochs=2, show_progress_bars=False)
    posterior = inference.build_posterior()
    assert posterior.info["train"]["ema_decay"] == 0.9
    _cli(fmpe_bin, "train", "--theta", str(tmp_path / "theta.npy"), "--x", str(tmp_path / "x.npy"),
         "--out", str(tmp_path / "cli_ema"), *TRAIN_FLAGS, "--ema-decay", "0.9")
    _cli(fmpe_bin, "train", "--theta", str(tmp_path / "theta.npy"), "--x", str(tmp_path / "x.npy"),
         "--out", str(tmp_path / "cli_plain"), *TRAIN_FLAGS, "--ema-decay", "0")
    py = posterior.sample((300,), x=OBS, seed=12)
    assert np.array_equal(_cli_sample(fmpe_bin, tmp_path / "cli_ema", tmp_path, 12, "ema.npy"), py)
    assert not np.array_equal(_cli_sample(fmpe_bin, tmp_path / "cli_plain", tmp_path, 12, "plain.npy"), py)
    with pytest.raises(fmpe.OptionError):
        fmpe.FMPE(ema_decay=1.5).append_simulations(theta, x).train(max_num_epochs=1, show_progress_bars=False)
