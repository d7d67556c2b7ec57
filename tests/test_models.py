import keras
import numpy as np
import pytest

import vgrad


def hidden_names(model):
    return [layer.name for layer in model.layers if layer.name.startswith("dense_")]


def test_layer_names_and_shapes():
    model = vgrad.build_mlp(4, 16, activation="tanh", input_dim=64, num_classes=10, seed=0)
    assert hidden_names(model) == ["dense_1", "dense_2", "dense_3", "dense_4"]
    assert model.layers[-1].name == "logits"
    assert model.get_layer("dense_1").kernel.shape == (64, 16)
    assert model.get_layer("logits").kernel.shape == (16, 10)
    assert model.output_shape == (None, 10)
    assert model.get_layer("activation_2").activation is keras.activations.tanh


def test_batch_norm_between_dense_and_activation():
    model = vgrad.build_mlp(2, 8, batch_norm=True, seed=0)
    names = [layer.name for layer in model.layers]
    assert names.index("dense_1") < names.index("batch_normalization_1") < names.index("activation_1")
    assert not model.get_layer("dense_1").use_bias


def test_residual_adds_identity_where_width_is_kept():
    model = vgrad.build_mlp(3, 8, activation="relu", residual=True, input_dim=5, seed=0)
    names = {layer.name for layer in model.layers}
    # dense_1 changes the width (5 -> 8), so it gets no skip connection.
    assert "add_1" not in names and {"add_2", "add_3"} <= names
    x = np.random.default_rng(0).normal(size=(4, 5)).astype("float32")
    hidden = keras.Model(model.inputs[0], model.get_layer("activation_1").output)(x)
    branch = keras.Model(model.inputs[0], model.get_layer("activation_2").output)(x)
    added = keras.Model(model.inputs[0], model.get_layer("add_2").output)(x)
    np.testing.assert_allclose(added, hidden + branch, rtol=1e-6)


def test_same_seed_same_weights_and_layers_differ():
    first = vgrad.build_mlp(3, 16, kernel_initializer="he_normal", seed=7)
    second = vgrad.build_mlp(3, 16, kernel_initializer="he_normal", seed=7)
    other = vgrad.build_mlp(3, 16, kernel_initializer="he_normal", seed=8)
    for a, b in zip(first.get_weights(), second.get_weights()):
        assert np.array_equal(a, b)
    assert not np.array_equal(first.get_weights()[0], other.get_weights()[0])
    kernel_2 = first.get_layer("dense_2").kernel.numpy()
    kernel_3 = first.get_layer("dense_3").kernel.numpy()
    assert not np.array_equal(kernel_2, kernel_3)


def test_initializer_object_with_seed_still_differs_per_layer():
    init = keras.initializers.RandomNormal(stddev=0.1, seed=3)
    model = vgrad.build_mlp(2, 8, input_dim=8, kernel_initializer=init)
    assert not np.array_equal(
        model.get_layer("dense_1").kernel.numpy(), model.get_layer("dense_2").kernel.numpy()
    )


def test_he_normal_variance():
    model = vgrad.build_mlp(1, 512, kernel_initializer="he_normal", input_dim=512, seed=0)
    variance = model.get_layer("dense_1").kernel.numpy().var()
    assert variance == pytest.approx(2 / 512, rel=0.02)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"depth": 0, "width": 4}, ValueError, "depth"),
        ({"depth": 2, "width": 0}, ValueError, "width"),
        ({"depth": 2.5, "width": 4}, TypeError, "depth"),
        ({"depth": True, "width": 4}, TypeError, "depth"),
        ({"depth": 2, "width": 4, "activation": "swishy"}, ValueError, "activation.*'relu'"),
        ({"depth": 2, "width": 4, "kernel_initializer": "he_magic"}, ValueError, "kernel_initializer.*'he_normal'"),
        ({"depth": 2, "width": 4, "batch_norm": "yes"}, TypeError, "batch_norm"),
        ({"depth": 2, "width": 4, "input_dim": 0}, ValueError, "input_dim"),
        ({"depth": 2, "width": 4, "seed": "0"}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        vgrad.build_mlp(**kwargs)
