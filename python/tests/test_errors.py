"""Bad input raises the documented exception with a clear message, and writes nothing."""
import os

import numpy as np
import pytest

import fmpe
from conftest import linear_gaussian_data


def test_wrong_shapes_and_dimensions():
    theta, x = linear_gaussian_data(100, 0)
    inf = fmpe.FMPE()
    with pytest.raises(fmpe.DataError, match="theta has 100 rows and x has 99"):
        inf.append_simulations(theta, x[:99])
    with pytest.raises(fmpe.DataError, match=r"2-D array") as e:
        inf.append_simulations(theta[:, :, None], x)
    assert e.value.array == "theta"
    with pytest.raises(fmpe.DataError, match="2-D array"):
        inf.append_simulations(theta[:, 0], x)
    inf.append_simulations(theta, x)
    with pytest.raises(fmpe.DataError, match="x has 3 columns, expected dim x = 2"):
        inf.append_simulations(theta, np.hstack([x, x[:, :1]]))
    assert inf.num_simulations == 100  # nothing appended by the failed calls


def test_nan_in_theta_names_row_and_column():
    theta, x = linear_gaussian_data(50, 1)
    theta[17, 1] = np.nan
    with pytest.raises(fmpe.DataError) as e:
        fmpe.FMPE().append_simulations(theta, x)
    assert (e.value.array, e.value.row, e.value.column) == ("theta", 17, 1)
    assert "theta[17, 1] is nan" in str(e.value)
    assert isinstance(e.value, ValueError)


def test_invalid_x_rows_are_dropped_with_a_warning_or_refused():
    theta, x = linear_gaussian_data(50, 1)
    x[[3, 9], 0] = np.inf
    inf = fmpe.FMPE()
    with pytest.warns(UserWarning, match="dropped 2 of 50 simulations"):
        inf.append_simulations(theta, x)
    assert inf.num_simulations == 48
    with pytest.raises(fmpe.DataError) as e:
        fmpe.FMPE().append_simulations(theta, x, exclude_invalid_x=False)
    assert (e.value.array, e.value.row, e.value.column) == ("x", 3, 0)


def test_integer_arrays_are_refused_float32_and_fortran_order_accepted():
    theta, x = linear_gaussian_data(40, 2)
    with pytest.raises(fmpe.DataError, match="dtype int64; pass floating-point"):
        fmpe.FMPE().append_simulations(theta.astype(np.int64), x)
    inf = fmpe.FMPE().append_simulations(np.asfortranarray(theta.astype(np.float32)), x)
    assert inf.num_simulations == 40


def test_non_contiguous_slices_give_the_same_results_as_copies(tiny_posterior):
    grid = np.random.default_rng(3).standard_normal((40, 4))
    view = grid[::2, ::2]  # non-contiguous in both axes
    assert not view.flags["C_CONTIGUOUS"]
    a = tiny_posterior.log_prob(view, x=[0.1, 0.1])
    b = tiny_posterior.log_prob(np.ascontiguousarray(view), x=[0.1, 0.1])
    assert np.array_equal(a, b)


def test_bad_observations_and_theta_for_a_posterior(tiny_posterior):
    with pytest.raises(fmpe.DataError, match="x has 3 values, the model expects dim_x = 2"):
        tiny_posterior.sample((5,), x=[0.1, 0.2, 0.3])
    with pytest.raises(fmpe.DataError, match="one observation"):
        tiny_posterior.sample((5,), x=np.zeros((2, 2)))
    with pytest.raises(fmpe.DataError, match="no observation"):
        tiny_posterior.sample((5,))
    bad = np.zeros((4, 2))
    bad[2, 0] = np.nan
    with pytest.raises(fmpe.DataError) as e:
        tiny_posterior.log_prob(bad, x=[0.0, 0.0])
    assert (e.value.row, e.value.column) == (2, 0)
    with pytest.raises(fmpe.DataError, match="dtype int"):
        tiny_posterior.log_prob(np.zeros((3, 2), dtype=np.int32), x=[0.0, 0.0])


def test_options_out_of_range_name_the_option(tiny_posterior):
    with pytest.raises(fmpe.OptionError) as e:
        tiny_posterior.sample((5,), x=[0, 0.0], solver="euler")
    assert e.value.name == "solver"
    with pytest.raises(fmpe.OptionError) as e:
        tiny_posterior.sample((5,), x=[0, 0.0], atol=-1.0)
    assert e.value.name == "atol"
    theta, x = linear_gaussian_data(50, 1)
    with pytest.raises(fmpe.OptionError) as e:
        fmpe.FMPE().append_simulations(theta, x).train(validation_fraction=1.5)
    assert e.value.name == "validation_fraction"


def test_low_acceptance_has_its_own_class_with_the_rate(box_posterior):
    with pytest.raises(fmpe.LowAcceptanceError) as e:
        box_posterior.sample((5000,), x=[0.9, -0.9], seed=1, max_sampling_time=0.0)
    assert 0.0 < e.value.acceptance_rate < 1.0


def test_no_adapter_says_how_to_install_lavapipe():
    with pytest.raises(fmpe.NoAdapterError, match="mesa-vulkan-drivers"):
        fmpe.FMPE(device="no-such-adapter-xyz")


def test_nothing_is_written_on_bad_input(tiny_posterior, tmp_path):
    target = tmp_path / "notes.txt"
    target.write_text("keep me")
    with pytest.raises(fmpe.FmpeError, match="refusing to replace"):
        tiny_posterior.save(target)
    assert target.read_text() == "keep me"
    png = tmp_path / "plot.png"
    with pytest.raises(fmpe.DataError, match="2-D"):
        fmpe.pairplot(np.zeros((10, 2, 2)), path=png)
    with pytest.raises(fmpe.DataError, match="columns"):
        fmpe.pairplot(np.zeros((10, 2)), reference=np.zeros((10, 3)), path=png)
    assert sorted(os.listdir(tmp_path)) == ["notes.txt"]


def test_box_prior_with_theta_outside_names_row_and_column():
    prior = fmpe.BoxUniform([-1.0, -1.0], [1.0, 1.0])
    theta, x = linear_gaussian_data(60, 4)
    theta = np.clip(theta, -0.9, 0.9)
    theta[5, 1] = 1.5
    with pytest.raises(fmpe.DataError) as e:
        fmpe.FMPE(prior).append_simulations(theta, x).train(max_num_epochs=1, show_progress_bars=False)
    assert (e.value.array, e.value.row, e.value.column) == ("theta", 5, 1)
    assert "transform=False" in str(e.value)
