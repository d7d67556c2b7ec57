"""The depth sweep: its measurement, its printed table and its plotting interface."""

import dataclasses
import math

import numpy as np
import pytest

import vgrad
from vgrad.phase import measured_ratio

SMALL_CONFIGS = {
    "relu / he": {"activation": "relu", "kernel_initializer": "he_normal"},
    "sigmoid / glorot": {"activation": "sigmoid"},
}


@pytest.fixture(scope="module")
def small_sweep(digits):
    (x_train, y_train), _ = digits
    return vgrad.depth_sweep(SMALL_CONFIGS, (2, 6), x_train[:64], y_train[:64], width=16, verbose=False)


def test_sweep_exposes_arrays_for_plotting(small_sweep):
    assert small_sweep.labels == ["relu / he", "sigmoid / glorot"]
    assert small_sweep.depths.dtype.kind == "i" and small_sweep.depths.tolist() == [2, 6]
    for values in (small_sweep.measured, small_sweep.predicted):
        assert values.shape == (2, 2) and values.dtype == np.float64 and np.all(values > 0)
    # sigmoid vanishes with depth, ReLU with He does not (predicted exactly 1)
    assert small_sweep.measured[1, 1] < small_sweep.measured[1, 0] < 1
    np.testing.assert_allclose(small_sweep.predicted[0], [1.0, 1.0], rtol=1e-12)
    data = small_sweep.to_dict()
    assert data["sigmoid / glorot"]["depths"] == [2, 6]
    assert data["sigmoid / glorot"]["measured"] == small_sweep.measured[1].tolist()
    with pytest.raises(dataclasses.FrozenInstanceError):
        small_sweep.width = 3


def test_sweep_prints_one_fixed_width_row_per_configuration_and_depth(small_sweep):
    lines = repr(small_sweep).splitlines()
    assert len(lines) == 2 + 4
    assert lines[0].startswith("DepthSweep(width=16, seed=0)")
    assert len({len(line) for line in lines[1:]}) == 1
    assert lines[-1].split()[-4:-2] == ["6", f"{small_sweep.measured[1, 1]:.3e}"]
    assert str(small_sweep) == repr(small_sweep)


def test_sweep_matches_the_measurement_of_one_net(small_sweep, digits):
    (x_train, y_train), _ = digits
    model = vgrad.build_mlp(6, 16, activation="sigmoid", seed=0)
    norms = vgrad.backprop_rms(model, x_train[:64], y_train[:64])
    assert small_sweep.measured[1, 1] == pytest.approx(norms["dense_1"] / norms["dense_6"], rel=1e-5)
    # the prediction of the same net sits in the same cell, and within half a decade of
    # the measurement (an independent check: theory against the tape)
    assert small_sweep.predicted[1, 1] == vgrad.predicted_backprop_ratios(model, x_train[:64])["dense_1"]
    assert abs(np.log10(small_sweep.measured[1, 1] / small_sweep.predicted[1, 1])) < 0.5


def test_measured_ratio_is_backprop_rms_and_leaves_batch_norm_alone(batch):
    x, y = batch
    model = vgrad.build_mlp(5, 32, activation="relu", batch_norm=True, seed=1)
    moving = [variable.numpy().copy() for variable in model.non_trainable_variables]
    norms = vgrad.backprop_rms(model, x, y)
    assert measured_ratio(model, x, y, predicted=3.0) == pytest.approx(norms["dense_1"] / norms["dense_5"], rel=1e-5)
    for before, variable in zip(moving, model.non_trainable_variables):
        np.testing.assert_array_equal(before, variable.numpy())


def test_loss_scaling_rescues_gradients_that_float32_squares_lose(batch):
    # A 40-layer sigmoid net: dLoss/dz at dense_1 is about 1e-29, whose float32 square
    # underflows to zero; measured_ratio scales the loss, backprop_rms the squares.
    x, y = batch
    model = vgrad.build_mlp(40, 32, activation="sigmoid", seed=0)
    predicted = vgrad.predicted_backprop_ratios(model, x)["dense_1"]
    measured = measured_ratio(model, x, y, predicted=predicted)
    assert predicted < 1e-20 and abs(math.log10(measured / predicted)) < 0.5
    norms = vgrad.backprop_rms(model, x, y)
    assert norms["dense_1"] / norms["dense_40"] == pytest.approx(measured, rel=1e-3)


def test_default_configs_cover_the_regimes(digits, capsys):
    (x_train, y_train), _ = digits
    assert len(vgrad.DEPTH_SWEEP_CONFIGS) == 7
    sweep = vgrad.depth_sweep(vgrad.DEPTH_SWEEP_CONFIGS, (8,), x_train[:128], y_train[:128], width=32)
    assert capsys.readouterr().out == ""  # a library function prints nothing unless asked
    vgrad.depth_sweep(vgrad.DEPTH_SWEEP_CONFIGS, (2,), x_train[:16], y_train[:16], width=4,
                      verbose=True)
    assert len(capsys.readouterr().out.splitlines()) == 7  # one progress line per configuration
    ratio = dict(zip(sweep.labels, sweep.measured[:, 0]))
    assert ratio["sigmoid / glorot"] < ratio["tanh / standard"] < ratio["relu / glorot"] < 0.2
    assert 0.3 < ratio["relu / he"] < 3 < ratio["relu / he + batchnorm"]
    # within half a decade of the prediction everywhere, even at width 32
    assert np.all(np.abs(np.log10(sweep.measured / sweep.predicted)) < 0.5)


def test_bad_input_is_refused(batch):
    x, y = batch
    with pytest.raises(TypeError, match="configs must be a non-empty dict"):
        vgrad.depth_sweep({}, (2,), x, y)
    with pytest.raises(ValueError, match=r"configs\['a'\] sets \['depth'\]"):
        vgrad.depth_sweep({"a": {"depth": 3}}, (2,), x, y)
    for depths in ([], [0, 2], [2.5]):
        with pytest.raises(ValueError, match="depths must be a non-empty sequence of ints >= 1"):
            vgrad.depth_sweep(SMALL_CONFIGS, depths, x, y)
    with pytest.raises(TypeError, match="x and y must be arrays"):
        vgrad.depth_sweep(SMALL_CONFIGS, (2,), None, y)
    with pytest.raises(ValueError, match="width must be an int >= 1"):
        vgrad.depth_sweep(SMALL_CONFIGS, (2,), x, y, width=0)
    with pytest.raises(ValueError, match="y must hold 128 integer labels"):
        vgrad.depth_sweep(SMALL_CONFIGS, (2,), x, y[:-1])
    with pytest.raises(ValueError, match="x must be a"):
        vgrad.depth_sweep(SMALL_CONFIGS, (2,), x[0], y)
    with pytest.raises(TypeError, match="verbose must be True or False"):
        vgrad.depth_sweep(SMALL_CONFIGS, (2,), x, y, verbose="yes")
