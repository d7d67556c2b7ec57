import json
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf

import vgrad
from vgrad._cache import cache_size

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def tape_kernel_norms(model, x, y):
    """The reference: one eager GradientTape over the real model."""
    kernels = {layer.name: layer.kernel for layer in model.layers if hasattr(layer, "kernel")}
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    gradients = tape.gradient(loss, list(kernels.values()))
    return {name: float(tf.norm(g)) for name, g in zip(kernels, gradients)}


def hand_written_forward(model, x, depth):
    """The reference forward pass: the MLP written out layer by layer, keeping every z.

    Returns the last hidden activation and the list of pre-activations z."""
    hidden, zs = tf.constant(x), []
    for index in range(1, depth + 1):
        z = model.get_layer(f"dense_{index}")(hidden)
        zs.append(z)
        hidden = model.get_layer(f"activation_{index}")(z)
    return hidden, zs


def test_kernel_norms_equal_gradient_tape(batch):
    x, y = batch
    model = vgrad.build_mlp(4, 16, activation="tanh", seed=1)
    norms = vgrad.gradient_norms(model, x, y)
    expected = tape_kernel_norms(model, x, y)
    assert list(norms) == ["dense_1", "dense_2", "dense_3", "dense_4", "logits"]
    for name in expected:
        assert norms[name] == pytest.approx(expected[name], rel=1e-5)


def test_backprop_rms_equal_gradient_tape(batch):
    x, y = batch
    depth = 4
    model = vgrad.build_mlp(depth, 16, activation="sigmoid", seed=2)
    with tf.GradientTape() as tape:
        hidden, zs = hand_written_forward(model, x, depth)
        loss = LOSS(y, model.get_layer("logits")(hidden))
    expected = [float(tf.sqrt(tf.reduce_mean(tf.square(g)))) for g in tape.gradient(loss, zs)]
    norms = vgrad.backprop_rms(model, x, y)
    assert list(norms) == [f"dense_{i}" for i in range(1, depth + 1)]
    np.testing.assert_allclose(list(norms.values()), expected, rtol=1e-5)


def test_backprop_rms_of_dense_with_builtin_activation(batch):
    x, y = batch
    inputs = keras.Input((64,))
    hidden = keras.layers.Dense(8, activation="tanh", name="hidden")(inputs)
    model = keras.Model(inputs, keras.layers.Dense(10, name="out")(hidden))
    with tf.GradientTape() as tape:
        kernel, bias = model.get_layer("hidden").kernel, model.get_layer("hidden").bias
        z = tf.matmul(x, kernel) + bias
        loss = LOSS(y, model.get_layer("out")(tf.tanh(z)))
    expected = float(tf.sqrt(tf.reduce_mean(tf.square(tape.gradient(loss, z)))))
    assert vgrad.backprop_rms(model, x, y)["hidden"] == pytest.approx(expected, rel=1e-5)
    stats = vgrad.activation_stats(model, x)["hidden"]  # taken after the activation, not at z
    assert stats.mean == pytest.approx(float(np.mean(np.tanh(z))), abs=1e-6)
    assert stats.std == pytest.approx(float(np.std(np.tanh(z))), rel=1e-4)


def first_to_last(norms, depth):
    return norms["dense_1"] / norms[f"dense_{depth}"]


def test_deep_sigmoid_vanishes_while_relu_he_does_not(digits):
    (x_train, y_train), _ = digits
    x, y = x_train[:256], y_train[:256]
    sigmoid = vgrad.build_mlp(20, 64, activation="sigmoid", kernel_initializer="glorot_uniform", seed=0)
    relu = vgrad.build_mlp(20, 64, activation="relu", kernel_initializer="he_normal", seed=0)
    assert first_to_last(vgrad.gradient_norms(sigmoid, x, y), 20) < 1e-6
    assert 0.1 < first_to_last(vgrad.gradient_norms(relu, x, y), 20) < 10
    assert first_to_last(vgrad.backprop_rms(sigmoid, x, y), 20) < 1e-6
    assert 0.1 < first_to_last(vgrad.backprop_rms(relu, x, y), 20) < 10


def test_exploding_gradients_are_returned_not_raised(batch):
    x, y = batch
    large = keras.initializers.RandomNormal(stddev=50.0, seed=0)
    norms = vgrad.gradient_norms(vgrad.build_mlp(12, 32, activation="relu", kernel_initializer=large), x, y)
    # Huge but representable: the norm does not overflow although the squares would.
    assert all(1e20 < value < np.inf for value in norms.values())
    overflowing = keras.initializers.RandomNormal(stddev=1e3, seed=0)
    model = vgrad.build_mlp(12, 32, activation="relu", kernel_initializer=overflowing)
    assert not all(np.isfinite(list(vgrad.gradient_norms(model, x, y).values())))
    # The forward pass overflowed: flagged, and the back-propagated norms come back, not raised.
    measurement = vgrad.measure(model, x, y)
    assert not measurement.forward_finite
    assert list(vgrad.backprop_rms(model, x, y)) == [f"dense_{i}" for i in range(1, 13)]


def test_repeated_calls_do_not_retrace(batch, tiny_mlp):
    x, y = batch
    first = vgrad.gradient_norms(tiny_mlp, x, y)
    second = vgrad.gradient_norms(tiny_mlp, x, y)
    vgrad.backprop_rms(tiny_mlp, x[:32], y[:32])  # same function, other batch size
    functions = [value for key, value in tiny_mlp._vgrad_compiled.items() if key[0] == "measure"]
    assert len(functions) == 1
    assert functions[0][1].experimental_get_tracing_count() <= 2  # at most one retrace for a new shape
    assert first == second


def test_probes_leave_batch_norm_statistics_untouched(batch):
    x, y = batch
    model = vgrad.build_mlp(2, 8, batch_norm=True, seed=0)
    before = [v.numpy().copy() for v in model.non_trainable_variables]
    vgrad.gradient_norms(model, x, y)
    vgrad.backprop_rms(model, x, y)
    vgrad.activation_stats(model, x)
    for old, variable in zip(before, model.non_trainable_variables):
        assert np.array_equal(old, variable.numpy())


def test_custom_loss(batch, tiny_mlp):
    x, y = batch
    loss = keras.losses.CategoricalCrossentropy(from_logits=True)
    one_hot = np.eye(10, dtype="float32")[y]
    norms = vgrad.gradient_norms(tiny_mlp, x, one_hot, loss=loss)
    with tf.GradientTape() as tape:
        value = loss(one_hot, tiny_mlp(x, training=True))
    expected = tf.norm(tape.gradient(value, tiny_mlp.get_layer("dense_1").kernel))
    assert norms["dense_1"] == pytest.approx(float(expected), rel=1e-5)


@pytest.mark.parametrize(
    "make_input, error, match",
    [
        (lambda x, y: (x[:10], y[:9]), ValueError, "same number of examples"),
        (lambda x, y: (x, np.full_like(y, 10)), ValueError, r"labels in \[0, 10\)"),
        (lambda x, y: (x, y - 1), ValueError, r"labels in \[0, 10\)"),
        (lambda x, y: (x[:, :10], y), ValueError, "feature count 64"),
        (lambda x, y: (x[:0], y[:0]), ValueError, "at least one example"),
        (lambda x, y: (x, y + 0.5), TypeError, "integer class labels"),
    ],
)
@pytest.mark.parametrize("probe", [vgrad.gradient_norms, vgrad.backprop_rms])
def test_bad_batches(batch, tiny_mlp, probe, make_input, error, match):
    x, y = make_input(*batch)
    with pytest.raises(error, match=match):
        probe(tiny_mlp, x, y)


def test_model_without_kernels(batch):
    x, y = batch
    inputs = keras.Input((64,))
    model = keras.Model(inputs, keras.layers.Activation("tanh")(inputs[:, :10]))
    with pytest.raises(ValueError, match="no layer with a trainable kernel"):
        vgrad.gradient_norms(model, x, y)


def test_not_a_model(batch):
    with pytest.raises(TypeError, match="model must be a keras.Model"):
        vgrad.gradient_norms("model.keras", *batch)


SCRIPT = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
    import keras, tensorflow as tf, vgrad
    keras.utils.set_random_seed(0)
    tf.config.experimental.enable_op_determinism()
    (x, y), _ = vgrad.load_digits()
    model = vgrad.build_mlp(6, 32, activation="tanh", batch_norm=True)
    print(json.dumps([vgrad.gradient_norms(model, x[:200], y[:200]),
                      vgrad.backprop_rms(model, x[:200], y[:200])]))
    """
)


@pytest.mark.slow
def test_bit_identical_in_fresh_processes():
    runs = [
        subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True)
        for _ in range(2)
    ]
    first, second = (json.loads(run.stdout.strip().splitlines()[-1]) for run in runs)
    assert first == second
    assert len(first[0]) == 7 and all(value > 0 for value in first[0].values())


class Subclassed(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.hidden(x))


def test_subclassed_model_kernel_norms_work_but_taps_are_refused(batch):
    x, y = batch
    model = Subclassed()
    model(x[:1])
    norms = vgrad.gradient_norms(model, x, y)
    assert len(norms) == 2 and all(value > 0 for value in norms.values())
    with pytest.raises(ValueError, match="subclassed"):
        vgrad.backprop_rms(model, x, y)
    with pytest.raises(ValueError, match="subclassed"):
        vgrad.activation_stats(model, x)


def test_norms_of_tiny_and_huge_gradients_neither_underflow_nor_overflow():
    from vgrad._numerics import scaled_norm

    tiny = tf.fill([1000], 1e-30)
    huge = tf.fill([1000], 1e30)
    assert float(scaled_norm(tiny)) == pytest.approx(1e-30 * np.sqrt(1000), rel=1e-5)
    assert float(scaled_norm(huge, mean=True)) == pytest.approx(1e30, rel=1e-5)
    assert float(scaled_norm(tf.zeros([3]))) == 0.0
    assert np.isinf(float(scaled_norm(tf.constant([1.0, np.inf]))))
    assert np.isnan(float(scaled_norm(tf.constant([1.0, np.nan]))))
    assert np.isnan(float(scaled_norm(tf.constant([np.nan, np.inf]))))


def test_deep_sigmoid_gradient_is_measured_not_zero(batch):
    x, y = batch
    model = vgrad.build_mlp(40, 32, activation="sigmoid", seed=0)
    norms = vgrad.backprop_rms(model, x, y)
    assert 0 < norms["dense_1"] < 1e-19


def test_probed_models_can_be_freed(batch):
    import gc
    import weakref

    model = vgrad.build_mlp(2, 4, seed=0)
    vgrad.gradient_norms(model, *batch)
    vgrad.backprop_rms(model, *batch)
    vgrad.activation_stats(model, batch[0])
    reference = weakref.ref(model)
    del model
    gc.collect()
    assert reference() is None


def test_batched_norms_equal_one_by_one():
    from vgrad._numerics import scaled_norm, scaled_norms

    tensors = [tf.fill([1000], 1e-30), tf.fill([10, 3], 1e30), tf.zeros([3]), tf.constant([1.0, np.inf]),
               tf.constant([1.0, np.nan]), tf.constant([np.nan, np.inf]), tf.constant([[3.0, -4.0]])]
    for mean in (False, True):
        batched = scaled_norms(tensors, mean=mean).numpy()
        single = np.array([float(scaled_norm(t, mean=mean)) for t in tensors])
        np.testing.assert_allclose(batched, single, rtol=1e-6)
    assert scaled_norms([]).shape == (0,)
