import json
import zipfile

import keras
import numpy as np
import pytest

import vgrad
from vgrad.models import StandardUniform, keras_activation, mlp_layers


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
    model = vgrad.build_mlp(2, 8, input_dim=8, kernel_initializer=init, seed=None)
    assert not np.array_equal(
        model.get_layer("dense_1").kernel.numpy(), model.get_layer("dense_2").kernel.numpy()
    )
    # seed=None keeps the initializer's own seed; an int seed (default 0) overrides it.
    again = vgrad.build_mlp(2, 8, input_dim=8, kernel_initializer=init, seed=None)
    np.testing.assert_array_equal(again.get_weights()[0], model.get_weights()[0])
    assert not np.array_equal(vgrad.build_mlp(2, 8, input_dim=8, kernel_initializer=init).get_weights()[0],
                              model.get_weights()[0])


def test_the_default_seed_is_zero_and_none_follows_the_global_seed():
    default, zero = vgrad.build_mlp(2, 8), vgrad.build_mlp(2, 8, seed=0)
    for a, b in zip(default.get_weights(), zero.get_weights()):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(1)
    first = vgrad.build_mlp(2, 8, seed=None).get_weights()[0]
    keras.utils.set_random_seed(1)
    np.testing.assert_array_equal(vgrad.build_mlp(2, 8, seed=None).get_weights()[0], first)
    assert not np.array_equal(first, zero.get_weights()[0])


def test_keras_activation_returns_the_keras_function():
    assert keras_activation("tanh") is keras.activations.tanh
    assert keras_activation(keras.activations.relu) is keras.activations.relu
    with pytest.raises(ValueError, match="activation='swishy' is not a Keras activation"):
        keras_activation("swishy")


def test_mlp_layers_reads_the_naming_contract():
    model = vgrad.build_mlp(3, 8, activation="tanh", batch_norm=True, residual=True, input_dim=8)
    layers = mlp_layers(model)
    assert [dense.name for dense, _, _, _ in layers] == ["dense_1", "dense_2", "dense_3"]
    assert all(activation is keras.activations.tanh for _, activation, _, _ in layers)
    assert [norm.name for _, _, norm, _ in layers] == [f"batch_normalization_{i}" for i in (1, 2, 3)]
    assert [residual for *_, residual in layers] == [True, True, True]  # 8 -> 8 keeps the width
    plain = mlp_layers(vgrad.build_mlp(2, 4))
    assert [(norm, residual) for _, _, norm, residual in plain] == [(None, False), (None, False)]
    with pytest.raises(TypeError, match="keras.Model"):
        mlp_layers("model")
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, name="dense_1"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built by vgrad.build_mlp"):
        mlp_layers(sequential)


def test_standard_uniform_is_a_seeded_keras_initializer():
    initializer = StandardUniform(seed=3)
    values = np.asarray(initializer((64, 32)))
    assert 0.12 < np.abs(values).max() <= 1 / 8
    assert values.var() == pytest.approx(1 / (3 * 64), rel=0.05)
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(initializer))
    np.testing.assert_array_equal(np.asarray(restored((64, 32))), values)
    assert keras.initializers.get("vgrad>StandardUniform").get_config() == {"seed": None}
    model = vgrad.build_mlp(2, 16, kernel_initializer=StandardUniform(), seed=0)
    assert isinstance(model.get_layer("dense_2").kernel_initializer, StandardUniform)


def test_models_saved_with_standard_uniform_load_again(tmp_path):
    # The registered name "vgrad>StandardUniform" is what saved files refer to: it must
    # not change when the class moves (it lived in vgrad.theory before).
    assert keras.saving.get_registered_name(StandardUniform) == "vgrad>StandardUniform"
    assert keras.saving.get_registered_object("vgrad>StandardUniform") is StandardUniform
    model = vgrad.build_mlp(2, 4, activation="tanh", kernel_initializer=StandardUniform())
    path = tmp_path / "model.keras"
    model.save(path)
    with zipfile.ZipFile(path) as archive:
        config = json.loads(archive.read("config.json"))
    dense = next(layer for layer in config["config"]["layers"] if layer["name"] == "dense_1")
    assert dense["config"]["kernel_initializer"]["registered_name"] == "vgrad>StandardUniform"
    loaded = keras.models.load_model(path)
    assert isinstance(loaded.get_layer("dense_1").kernel_initializer, StandardUniform)
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        np.testing.assert_array_equal(a, b)
    # A config written before the move names the old module; it still loads.
    old = {"module": "vgrad.theory", "class_name": "StandardUniform", "config": {"seed": 3},
           "registered_name": "vgrad>StandardUniform"}
    restored = keras.saving.deserialize_keras_object(old)
    assert isinstance(restored, StandardUniform)
    np.testing.assert_array_equal(np.asarray(restored((4, 4))), np.asarray(StandardUniform(seed=3)((4, 4))))


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
        ({"depth": 2, "width": 4, "seed": -1}, ValueError, r"seed must be an int in \[0, 2\*\*32\) or None"),
        ({"depth": 2, "width": 4, "residual": 1}, TypeError, "residual must be True or False"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        vgrad.build_mlp(**kwargs)
