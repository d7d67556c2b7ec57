"""vgrad.diagnose: nets built to vanish, explode (forward and backward) and train well."""

import json
from types import SimpleNamespace

import numpy as np
import pytest

import keras
import tensorflow as tf

import vgrad
from vgrad.diagnosis import ADVICE, EXPLODING_RATIO, VANISHING_RATIO, Diagnosis, diagnose

CROSS_ENTROPY = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def small(batch):
    x, y = batch
    return x[:64], y[:64]


def big_normal(stddev):
    return keras.initializers.RandomNormal(stddev=stddev)


def test_deep_sigmoid_vanishes_and_ratio_matches_backprop_norms(small):
    model = vgrad.build_mlp(20, 16, activation="sigmoid", seed=0)
    diagnosis = diagnose(model, *small)
    norms = vgrad.backprop_norms(model, *small)
    assert diagnosis.verdict == "vanishing"
    assert [layer.name for layer in diagnosis.layers] == list(norms)
    assert diagnosis.ratio == pytest.approx(norms["dense_1"] / norms["dense_20"])
    assert diagnosis.ratio < VANISHING_RATIO and diagnosis.layers[-1].backprop_ratio == 1.0
    assert diagnosis.layers[0].activation == "sigmoid"
    assert diagnosis.advice[:2] == (ADVICE["relu"], ADVICE["he"])
    assert ADVICE["residual"] in diagnosis.advice


def test_relu_he_is_healthy(small):
    diagnosis = diagnose(vgrad.build_mlp(10, 16, kernel_initializer="he_normal", seed=0), *small)
    assert diagnosis.verdict == "healthy"
    assert VANISHING_RATIO < diagnosis.ratio < EXPLODING_RATIO
    assert diagnosis.advice == (ADVICE["healthy"],)
    assert diagnosis.forward_finite and diagnosis.gradients_finite


def test_large_init_explodes_with_finite_values(small):
    diagnosis = diagnose(vgrad.build_mlp(12, 16, kernel_initializer=big_normal(1.0), seed=0), *small)
    assert diagnosis.verdict == "exploding" and diagnosis.ratio > EXPLODING_RATIO
    assert diagnosis.forward_finite and diagnosis.gradients_finite
    assert diagnosis.advice[0] == ADVICE["clip"]


def nonfinite_derivative_loss(y_true, y_pred):
    """Cross-entropy, plus a term that is 0 in value but whose derivative is nan."""
    zero = y_pred[:, :1] - tf.stop_gradient(y_pred[:, :1])
    return CROSS_ENTROPY(y_true, y_pred) + tf.reduce_mean(tf.sqrt(tf.abs(zero)))


def test_backward_overflow_is_reported_and_prints_and_serialises(small):
    # With a ReLU net and cross-entropy the loss overflows before the gradients do,
    # so a finite loss with non-finite gradients is provoked through the loss itself.
    model = vgrad.build_mlp(12, 16, kernel_initializer=big_normal(30.0), seed=0)
    diagnosis = diagnose(model, *small, loss=nonfinite_derivative_loss)
    assert diagnosis.verdict == "exploding"
    assert diagnosis.forward_finite and not diagnosis.gradients_finite
    assert np.isfinite(diagnosis.loss) and "backward pass overflows" in diagnosis.reason
    assert not diagnosis.layers[0].finite and np.isnan(diagnosis.layers[0].kernel_norm)
    text = str(diagnosis)
    assert len([line for line in text.splitlines() if line.startswith("dense_")]) == 12
    assert "verdict: exploding" in text and "dense_1 !" in text and repr(diagnosis) == text
    data = json.loads(json.dumps(diagnosis.to_dict(), allow_nan=False))
    assert data["layers"][0]["kernel_norm"] == "nan" and data["verdict"] == "exploding"


def test_forward_overflow_is_told_apart_and_not_fixed_by_clipping(small):
    diagnosis = diagnose(vgrad.build_mlp(12, 16, kernel_initializer=big_normal(1e3), seed=0), *small)
    assert diagnosis.verdict == "exploding" and not diagnosis.forward_finite
    assert not np.isfinite(diagnosis.loss) and "forward pass overflows" in diagnosis.reason
    assert diagnosis.advice[0] == ADVICE["inputs"] and ADVICE["clip"] not in diagnosis.advice


def test_saturated_tanh_gets_relu_and_batch_norm_advice(small):
    model = vgrad.build_mlp(4, 16, activation="tanh", kernel_initializer=big_normal(1.0), seed=0)
    diagnosis = diagnose(model, *small)
    assert max(layer.saturated_fraction for layer in diagnosis.layers) > 0.5
    assert ADVICE["relu"] in diagnosis.advice and ADVICE["batch_norm"] in diagnosis.advice


def test_dead_relu_layer_gets_leaky_and_he_advice(small):
    model = vgrad.build_mlp(4, 16, kernel_initializer="he_normal", seed=0)
    model.get_layer("dense_2").bias.assign(np.full(16, -100.0, np.float32))  # every unit dies
    diagnosis = diagnose(model, *small)
    assert diagnosis.layers[1].dead_fraction == 1.0
    assert diagnosis.verdict == "vanishing" and "exactly 0" in diagnosis.reason
    assert ADVICE["leaky"] in diagnosis.advice


class ThreeDense(keras.Model):
    def __init__(self):
        super().__init__(name="three_dense")
        self.hidden = [keras.layers.Dense(8, activation="sigmoid", name=f"d{i}") for i in (1, 2)]
        self.out = keras.layers.Dense(10, name="out")

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)


def test_subclassed_model_falls_back_to_kernel_norms(small):
    model = ThreeDense()
    model(small[0][:1])
    diagnosis = diagnose(model, *small)
    assert diagnosis.ratio_kind == "kernel" and [l.name for l in diagnosis.layers] == ["d1", "d2"]
    assert diagnosis.layers[0].backprop_rms is None and diagnosis.layers[0].kernel_norm > 0
    assert "kernel-gradient norms only" in diagnosis.notes[0]


def test_bad_arguments_name_what_is_accepted(small, tiny_mlp):
    with pytest.raises(TypeError, match="keras.Model .* or a GradientMonitor"):
        diagnose("model.keras", *small)
    with pytest.raises(TypeError, match="needs the input batch"):
        diagnose(tiny_mlp)
    with pytest.raises(ValueError, match="same number of examples"):
        diagnose(tiny_mlp, small[0], small[1][:3])
    with pytest.raises(TypeError, match="takes no x"):
        diagnose(fake_monitor([1.0, 1.0]), *small)


# -- recorded runs: a stand-in with the GradientMonitor attributes ---------------------


def fake_monitor(kernel_levels, *, steps=12, global_norm=None, nonfinite=(), update=None):
    """A monitor-like record: kernel ``i`` has norm ``kernel_levels[i]`` at every step."""
    history, update_ratio = {}, {}
    for index, level in enumerate(kernel_levels, 1):
        history[f"dense_{index}/kernel"] = [level] * steps
        history[f"dense_{index}/bias"] = [1.0] * steps
        update_ratio[f"dense_{index}/kernel"] = [(update or {}).get(index, 1e-3)] * steps
    flags = [step in nonfinite for step in range(steps)]
    return SimpleNamespace(
        history=history, steps=list(range(steps)), update_ratio=update_ratio,
        global_norm=[1.0] * steps if global_norm is None else list(global_norm), clipped=[False] * steps,
        num_clipped=0, nonfinite=flags,
    )


@pytest.mark.parametrize(
    ("monitor", "verdict", "words"),
    [
        (fake_monitor([1e-7, 1e-4, 1.0]), "vanishing", "median kernel-gradient norm"),
        (fake_monitor([1.0, 1.0, 1.0], update={1: 1e-8}), "vanishing", "update ratio"),
        (fake_monitor([1.0, 2.0, 1.0], nonfinite={7}), "exploding", "steps [7]"),
        (fake_monitor([1.0, 1.0], global_norm=np.geomspace(1, 1e3 - 1, 12)), "exploding", "grew"),
        (fake_monitor([1.0, 0.5, 2.0]), "healthy", "within"),
    ],
)
def test_monitor_rules(monitor, verdict, words):
    diagnosis = diagnose(monitor)
    assert diagnosis.verdict == verdict and words in diagnosis.reason
    assert diagnosis.source == "monitor" and diagnosis.loss is None
    assert [layer.name for layer in diagnosis.layers][0] == "dense_1/kernel"  # kernels only


def test_monitor_with_nothing_recorded_raises():
    with pytest.raises(ValueError, match="recorded no gradient norms"):
        diagnose(fake_monitor([], steps=0))


@pytest.mark.slow
def test_real_monitor_of_a_deep_sigmoid_fit(small):
    model = vgrad.build_mlp(12, 16, activation="sigmoid", seed=0)
    model.compile(keras.optimizers.SGD(0.1), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = vgrad.GradientMonitor()
    model.fit(*small, batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    diagnosis = diagnose(monitor)
    assert isinstance(diagnosis, Diagnosis) and diagnosis.verdict == "vanishing"
    assert len(diagnosis.layers) == 13  # 12 hidden kernels and the logits
