"""Recurrent builder, spectrum and gradients through time."""

import numpy as np
import pytest
import tensorflow as tf

import keras

import vgrad
from vgrad.rnn import unrolled_forward

INPUT_DIM, NUM_CLASSES = 9, 8


def tiny_rnn(cell="simple", units=6, **kwargs):
    return vgrad.build_rnn(
        units, input_dim=INPUT_DIM, num_classes=NUM_CLASSES, cell=cell, seed=0, **kwargs
    )


@pytest.fixture(scope="module")
def sequences():
    """16 sequences of 12 steps from the memory task."""
    return vgrad.memory_task(16, 12, seed=0)


def by_hand_linear_norms(model, x, y):
    """||dL/dh_t|| (RMS over batch and units) of a linear SimpleRNN, in NumPy float64."""
    cell, head = model.get_layer("rnn").cell, model.get_layer("logits")
    kernel, recurrent, bias = (
        np.float64(v.numpy()) for v in (cell.kernel, cell.recurrent_kernel, cell.bias)
    )
    out_kernel, out_bias = np.float64(head.kernel.numpy()), np.float64(head.bias.numpy())
    hidden = np.zeros((len(x), recurrent.shape[0]))
    for step in range(x.shape[1]):
        hidden = x[:, step] @ kernel + hidden @ recurrent + bias
    logits = hidden @ out_kernel + out_bias
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    # dL/dh_T for the batch-mean cross-entropy, then dL/dh_{t-1} = dL/dh_t W_rec^T.
    gradient = (probabilities - np.eye(NUM_CLASSES)[y]) / len(x) @ out_kernel.T
    norms = []
    for _ in range(x.shape[1]):
        norms.append(np.sqrt(np.mean(gradient**2)))
        gradient = gradient @ recurrent.T
    return np.array(norms[::-1])


def test_linear_rnn_matches_closed_form(sequences):
    x, y = sequences
    model = tiny_rnn(activation="linear")
    random_kernel = np.random.default_rng(1).normal(0, 0.4, (6, 6)).astype("float32")
    model.get_layer("rnn").cell.recurrent_kernel.assign(random_kernel)
    norms = vgrad.time_gradient_rms(model, x, y)
    assert norms.shape == (12,) and norms.dtype == np.float64
    np.testing.assert_allclose(norms, by_hand_linear_norms(model, x, y), rtol=1e-4)


@pytest.mark.parametrize("cell", ["simple", "lstm", "gru"])
def test_unrolled_loop_agrees_with_keras_layer(cell, sequences):
    x, y = sequences
    model = tiny_rnn(cell)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernel = model.get_layer("rnn").cell.kernel
    with tf.GradientTape(persistent=True) as tape:
        keras_outputs = model(x, training=False)
        keras_loss = loss_fn(y, keras_outputs)
        unrolled_outputs, hidden_states = unrolled_forward(model, x, tape=tape)
        unrolled_loss = loss_fn(y, unrolled_outputs)
    np.testing.assert_allclose(
        unrolled_outputs.numpy(), keras_outputs.numpy(), rtol=1e-5, atol=1e-6
    )
    assert len(hidden_states) == 12
    np.testing.assert_allclose(
        tape.gradient(unrolled_loss, kernel).numpy(),
        tape.gradient(keras_loss, kernel).numpy(),
        rtol=1e-4,
        atol=1e-7,
    )
    norms = vgrad.time_gradient_rms(model, x, y)
    assert norms.shape == (12,) and np.all(np.isfinite(norms)) and np.all(norms > 0)


def test_sequential_model_and_custom_loss_are_accepted(sequences):
    x, y = sequences
    model = keras.Sequential(
        [keras.Input((None, INPUT_DIM)), keras.layers.GRU(4), keras.layers.Dense(1)]
    )
    mse = keras.losses.MeanSquaredError()
    norms = vgrad.time_gradient_rms(model, x, y.astype("float32"), loss=mse)
    assert norms.shape == (12,) and np.all(np.isfinite(norms))


@pytest.mark.parametrize("scale", [0.5, 1.0, 1.5])
def test_linear_scale_sets_the_decay_rate_exactly(scale):
    # Orthogonal kernel times g: dL/dh_{t-1} has exactly g times the norm of dL/dh_t.
    # Over 60 steps 0.5**59 ~ 2e-18 times the last value: its square underflows float32.
    x, y = vgrad.memory_task(4, 60, seed=0)
    norms = vgrad.time_gradient_rms(tiny_rnn(activation="linear", recurrent_scale=scale), x, y)
    np.testing.assert_allclose(norms[:-1] / norms[1:], scale, rtol=1e-3)
    assert norms[0] / norms[-1] == pytest.approx(scale**59, rel=1e-3)


def test_tanh_rnn_obeys_the_pascanu_bound(sequences):
    # |tanh'| <= 1, so ||dL/dh_t|| <= sigma_max^(T - t) ||dL/dh_T||: vanishing when sigma_max < 1.
    x, y = sequences
    model = tiny_rnn(recurrent_scale=0.5)
    sigma = vgrad.largest_singular_value(model)
    norms = vgrad.time_gradient_rms(model, x, y)
    bound = sigma ** np.arange(11, -1, -1) * norms[-1]
    assert np.all(norms <= bound * (1 + 1e-5))
    assert norms[0] / norms[-1] < 0.5**11


def test_exploding_gradient_is_returned_as_non_finite_values():
    x, y = vgrad.memory_task(2, 100, seed=0)  # 3**100 overflows float32
    norms = vgrad.time_gradient_rms(tiny_rnn(activation="linear", recurrent_scale=3.0), x, y)
    assert norms.shape == (100,) and not np.all(np.isfinite(norms))


@pytest.mark.parametrize("cell, num_gates", [("simple", 1), ("lstm", 4), ("gru", 3)])
def test_largest_singular_value_equals_the_scale(cell, num_gates):
    model = tiny_rnn(cell, recurrent_scale=0.7)
    layer = model.get_layer("rnn")
    assert vgrad.largest_singular_value(model) == pytest.approx(0.7, rel=1e-5)
    by_numpy = np.linalg.norm(layer.cell.recurrent_kernel.numpy(), 2)
    assert vgrad.largest_singular_value(layer) == pytest.approx(by_numpy, rel=1e-5)
    blocks = vgrad.largest_singular_value(model, by_gate=True)
    assert len(blocks) == num_gates
    assert all(value <= 0.7 * (1 + 1e-5) for value in blocks.values())
    if cell == "lstm":
        assert list(blocks) == ["input", "forget", "cell", "output"]


def test_largest_singular_value_of_an_exploded_kernel_is_nan():
    model = tiny_rnn()
    model.get_layer("rnn").cell.recurrent_kernel.assign(np.full((6, 6), np.nan, "float32"))
    assert np.isnan(vgrad.largest_singular_value(model))
    model.get_layer("rnn").cell.recurrent_kernel.assign(np.full((6, 6), np.inf, "float32"))
    assert vgrad.largest_singular_value(model) == np.inf


def test_build_rnn_names_shapes_and_seeds(sequences):
    x, _ = sequences
    model = tiny_rnn("lstm")
    assert [layer.name for layer in model.layers] == ["sequence", "rnn", "logits"]
    assert isinstance(model.get_layer("rnn"), keras.layers.LSTM)
    assert model(x).shape == (16, NUM_CLASSES)
    same = tiny_rnn("lstm")
    other = vgrad.build_rnn(6, input_dim=INPUT_DIM, num_classes=NUM_CLASSES, cell="lstm", seed=1)
    for first, second, third in zip(model.get_weights(), same.get_weights(), other.get_weights()):
        np.testing.assert_array_equal(first, second)
        assert first.shape == third.shape
    assert not np.array_equal(model.get_weights()[1], other.get_weights()[1])


def test_build_rnn_defaults_fit_the_memory_task_and_seed_zero():
    x, y = vgrad.memory_task(4, 5)
    model = vgrad.build_rnn(3)
    assert model(x).shape == (4, 8) and model.input_shape == (None, None, 9)
    for a, b in zip(model.get_weights(), vgrad.build_rnn(3, seed=0).get_weights()):
        np.testing.assert_array_equal(a, b)
    keras.utils.set_random_seed(2)
    first = vgrad.build_rnn(3, seed=None).get_weights()[0]
    keras.utils.set_random_seed(2)
    np.testing.assert_array_equal(vgrad.build_rnn(3, seed=None).get_weights()[0], first)
    assert not np.array_equal(first, model.get_weights()[0])


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"cell": "transformer"}, ValueError, "'simple', 'lstm', 'gru'"),
        ({"recurrent_scale": 0.0}, ValueError, "recurrent_scale"),
        ({"recurrent_scale": "big"}, TypeError, "recurrent_scale"),
        ({"activation": "nope"}, ValueError, "activation"),
        ({"seed": 1.5}, TypeError, "seed"),
        ({"seed": 2**32}, ValueError, "seed"),
        ({"units": 0}, ValueError, "units"),
    ],
)
def test_build_rnn_rejects_bad_arguments(kwargs, error, match):
    arguments = {"units": 4, "input_dim": 3, "num_classes": 2, **kwargs}
    with pytest.raises(error, match=match):
        vgrad.build_rnn(arguments.pop("units"), **arguments)


def test_time_gradient_rms_rejects_other_models_and_bad_batches(sequences):
    x, y = sequences
    inputs = keras.Input((None, INPUT_DIM))
    hidden = keras.layers.SimpleRNN(4)(inputs)
    two_heads = keras.layers.Add()([keras.layers.Dense(8)(hidden), keras.layers.Dense(8)(hidden)])
    branched = keras.Model(inputs, two_heads)
    every_step = keras.Sequential(
        [keras.Input((None, INPUT_DIM)), keras.layers.SimpleRNN(4, return_sequences=True)]
    )
    mlp = vgrad.build_mlp(2, 4, input_dim=INPUT_DIM, num_classes=NUM_CLASSES)
    cases = [
        (mlp, x, y, ValueError, "recurrent"),
        (every_step, x, y, ValueError, "return_sequences"),
        (branched, x, y, ValueError, "chain"),
        (tiny_rnn().get_layer("rnn"), x, y, TypeError, "keras.Model"),
        (tiny_rnn(), x, y[:5], ValueError, "same number"),
        (tiny_rnn(), x[:, 0], y, ValueError, "shape"),
        (tiny_rnn(), x[..., :4], y, ValueError, "expects"),
        (tiny_rnn(), x, y + NUM_CLASSES, ValueError, "labels"),
    ]
    for model, x_bad, y_bad, error, match in cases:
        with pytest.raises(error, match=match):
            vgrad.time_gradient_rms(model, x_bad, y_bad)
    with pytest.raises(TypeError, match="SimpleRNN, LSTM or GRU"):
        vgrad.largest_singular_value(keras.layers.Dense(3))
