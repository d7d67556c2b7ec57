import keras
import numpy as np
import pytest

import vgrad


def layer_outputs(model, x, name):
    return keras.Model(model.inputs[0], model.get_layer(name).output)(x, training=True).numpy()


def test_stats_match_numpy(batch):
    x, _ = batch
    model = vgrad.build_mlp(3, 16, activation="tanh", seed=0)
    stats = vgrad.activation_stats(model, x)
    assert list(stats) == ["dense_1", "dense_2", "dense_3"]
    a = layer_outputs(model, x, "activation_2")
    assert stats["dense_2"].mean == pytest.approx(a.mean(), abs=1e-6)
    assert stats["dense_2"].std == pytest.approx(a.std(), rel=1e-4)
    assert stats["dense_2"].saturated_fraction == pytest.approx(np.mean(np.abs(a) > 0.97))
    assert np.isnan(stats["dense_2"].dead_fraction)
    assert stats["dense_2"].activation == "tanh"


@pytest.mark.parametrize("activation", ["tanh", "sigmoid"])
def test_saturating_net_is_saturated(batch, activation):
    x, _ = batch
    init = keras.initializers.RandomNormal(stddev=3.0, seed=0)
    saturated = vgrad.build_mlp(3, 64, activation=activation, kernel_initializer=init)
    gentle = vgrad.build_mlp(3, 64, activation=activation, kernel_initializer="glorot_uniform", seed=0)
    assert vgrad.activation_stats(saturated, x)["dense_3"].saturated_fraction > 0.8
    assert vgrad.activation_stats(gentle, x)["dense_3"].saturated_fraction < 0.05


def test_dead_relu_units_are_counted(batch):
    x, _ = batch
    model = vgrad.build_mlp(2, 16, activation="relu", kernel_initializer="he_normal", seed=0)
    kernel, bias = model.get_layer("dense_1").get_weights()
    bias[:4] = -1e3  # these four units can never fire
    model.get_layer("dense_1").set_weights([kernel, bias])
    stats = vgrad.activation_stats(model, x)
    assert stats["dense_1"].dead_fraction == pytest.approx(4 / 16)
    assert np.isnan(stats["dense_1"].saturated_fraction)
    bias[:] = -1e3
    model.get_layer("dense_1").set_weights([kernel, bias])
    # A dead first layer feeds zeros on; with zero biases the second layer dies too.
    assert vgrad.activation_stats(model, x)["dense_2"].dead_fraction == 1.0


def test_prints_one_line_per_layer(batch, tiny_mlp):
    text = repr(vgrad.activation_stats(tiny_mlp, batch[0]))
    lines = text.splitlines()
    assert len(lines) == 3 and all(line.startswith("dense_") for line in lines)
    assert "saturated" in lines[0] and "dead    n/a" in lines[0]
    assert len({len(line) for line in lines}) == 1


def test_bad_input(tiny_mlp, batch):
    with pytest.raises(ValueError, match="feature count"):
        vgrad.activation_stats(tiny_mlp, batch[0][:, :3])
    with pytest.raises(ValueError, match="at least one example"):
        vgrad.activation_stats(tiny_mlp, batch[0][:0])
