"""vgrad.diagnose: nets built to vanish, explode (forward and backward), die, sit still
or train well, and the pure policy rules behind the verdicts."""

import json
import math
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

import keras
import tensorflow as tf

import vgrad
from vgrad import policy
from vgrad.diagnosis import ADVICE, Diagnosis, diagnose
from vgrad.policy import EXPLODING_RATIO, VANISHING_RATIO

CROSS_ENTROPY = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.fixture(scope="module")
def small(batch):
    x, y = batch
    return x[:64], y[:64]


def big_normal(stddev):
    return keras.initializers.RandomNormal(stddev=stddev)


# -- the tutorial's MLPs -------------------------------------------------------------------


def test_deep_sigmoid_vanishes_and_ratio_matches_backprop_rms(small):
    model = vgrad.build_mlp(20, 16, activation="sigmoid", seed=0)
    diagnosis = diagnose(model, *small)
    norms = vgrad.backprop_rms(model, *small)
    assert diagnosis.verdict == "vanishing" and diagnosis.ratio_kind == "backprop"
    assert [layer.name for layer in diagnosis.layers] == [*norms, "logits"]  # every weight layer
    assert diagnosis.ratio == pytest.approx(norms["dense_1"] / norms["dense_20"])
    assert diagnosis.ratio < VANISHING_RATIO and diagnosis.layers[-2].backprop_ratio == 1.0
    assert diagnosis.layers[0].activation == "sigmoid"
    assert diagnosis.advice[:2] == (ADVICE["relu"].format(activations="sigmoid"), ADVICE["he"])
    assert ADVICE["residual"] in diagnosis.advice and "tanh" not in " ".join(diagnosis.advice)


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
    assert max(len(line) for line in text.splitlines()) <= 88
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
    assert max(layer.saturated_fraction or 0 for layer in diagnosis.layers) > 0.5
    assert ADVICE["relu"].format(activations="tanh") in diagnosis.advice
    assert ADVICE["batch_norm"] in diagnosis.advice


def features(activations=(), **flags):
    return SimpleNamespace(activations=frozenset(activations), simple_rnn=False,
                           **{"normalized": False, "residual": False, **flags})


@pytest.mark.parametrize("verdict", ["vanishing", "exploding", "healthy"])
def test_advice_never_adds_what_the_model_has(verdict):
    for flags in ({"normalized": True}, {"residual": True}, {}):
        advice = policy.choose_advice(verdict, features(["sigmoid"], **flags), saturated=["sigmoid"])
        assert (ADVICE["batch_norm"] in advice) is not flags.get("normalized", False)
        assert ADVICE["residual"] not in advice or not flags.get("residual")
    gelu = policy.choose_advice(verdict, features(["gelu"], normalized=True, residual=True))
    assert not any(word in " ".join(gelu) for word in ("sigmoid", "tanh", "BatchNorm", "residual"))


def test_sigmoid_net_with_batch_norm_is_healthy_and_not_told_to_add_it(small):
    model = vgrad.build_mlp(20, 16, activation="sigmoid", batch_norm=True, seed=0)
    diagnosis = diagnose(model, *small)
    assert diagnosis.verdict == "healthy" and ADVICE["batch_norm"] not in diagnosis.advice


# -- issue 10, failure 8: findings of their own ------------------------------------------


def test_dead_relu_layer_is_its_own_finding_with_leaky_advice(small):
    model = vgrad.build_mlp(4, 16, kernel_initializer="he_normal", seed=0)
    model.get_layer("dense_2").bias.assign(np.full(16, -100.0, np.float32))  # every unit dies
    diagnosis = diagnose(model, *small)
    assert diagnosis.layers[1].dead_fraction == 1.0
    assert diagnosis.verdict == "dead units" and "100% of dense_2" in diagnosis.reason
    assert diagnosis.advice[0] == ADVICE["leaky"]
    assert not any("He initialisation (kernel" in text for text in diagnosis.advice[1:])


def test_zero_output_layer_names_the_layer_not_relu_or_he(small):
    model = vgrad.build_mlp(6, 16, kernel_initializer="he_normal", seed=0)
    model.get_layer("logits").kernel.assign(np.zeros((16, 10), np.float32))
    diagnosis = diagnose(model, *small)
    assert diagnosis.verdict == "zero layer" and "logits" in diagnosis.reason
    assert diagnosis.advice == (ADVICE["zero_layer"].format(layers="logits"),)


def test_trained_model_at_chance_level_is_not_learning(small):
    model = vgrad.build_mlp(3, 16, kernel_initializer="he_normal", seed=0)
    logits = model.get_layer("logits").kernel
    logits.assign(logits * 0.01)  # near-uniform predictions: the loss is about ln 10
    model.compile(keras.optimizers.SGD(1e-9), CROSS_ENTROPY)
    untrained = diagnose(model, *small)  # before any step, chance level is expected
    assert untrained.verdict == "healthy" and "chance level" in " ".join(untrained.notes)
    model.train_on_batch(*small)
    diagnosis = diagnose(model, *small)
    assert diagnosis.verdict == "not learning" and "chance level" in diagnosis.reason
    assert diagnosis.advice == (ADVICE["check_training"],)
    assert diagnosis.loss_source == "the model's compiled loss"
    assert "the model's compiled loss" in str(diagnosis)


# -- issue 10, failure 4: every layer, like with like, inconclusive with one point -------


def encoder_block():
    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 8, name="embedding")(inputs)
    attended = keras.layers.MultiHeadAttention(2, 4, name="mha")(x, x)
    x = keras.layers.LayerNormalization(name="norm")(keras.layers.Add()([x, attended]))
    h = keras.layers.Dense(16, activation="gelu", name="mlp_in")(x)
    x = keras.layers.Add()([x, keras.layers.Dense(8, name="mlp_out")(h)])
    x = keras.layers.GlobalAveragePooling1D()(x)
    return keras.Model(inputs, keras.layers.Dense(3, name="head")(x))


def test_transformer_lists_every_weight_layer_and_compares_block_inputs():
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).integers(0, 20, size=(32, 6)).astype("int32")
    diagnosis = diagnose(encoder_block(), x, x[:, 0] % 3)
    weights = [r.name for r in diagnosis.layers if r.kind != "block"]
    assert weights == ["embedding", "mha/query", "mha/key", "mha/value", "mha/attention_output",
                       "norm", "mlp_in", "mlp_out", "head"]
    assert diagnosis.ratio_kind == "block" and diagnosis.verdict == "healthy"
    assert "mha/query" not in diagnosis.reason
    assert not any(word in " ".join(diagnosis.advice) for word in ("sigmoid", "BatchNorm", "residual"))


def test_one_comparable_point_is_inconclusive_never_a_layer_against_itself(small):
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(16, activation="relu"),
                              keras.layers.Dense(10)])
    diagnosis = diagnose(model, *small)
    assert diagnosis.verdict == "inconclusive" and "fewer than two comparable" in diagnosis.reason
    assert math.isnan(diagnosis.ratio) and diagnosis.ratio_kind == "none"


class ThreeDense(keras.Model):
    def __init__(self):
        super().__init__(name="three_dense")
        self.hidden = [keras.layers.Dense(8, activation="sigmoid", name=f"d{i}") for i in (1, 2)]
        self.out = keras.layers.Dense(10, name="out")

    def call(self, x):
        for layer in self.hidden:
            x = layer(x)
        return self.out(x)


def test_unbuilt_subclassed_model_lists_its_layers_and_is_inconclusive(small):
    diagnosis = diagnose(ThreeDense(), *small)
    assert [layer.name for layer in diagnosis.layers] == ["d1", "d2", "out"]
    assert diagnosis.verdict == "inconclusive" and diagnosis.layers[0].kernel_norm > 0
    assert any("subclassed" in note for note in diagnosis.notes)


# -- issue 10, failure 7: bad data gets an error, not a verdict --------------------------


def test_bad_arguments_name_what_is_accepted(small, tiny_mlp):
    with pytest.raises(TypeError, match="keras.Model .* or a GradientMonitor"):
        diagnose("model.keras", *small)
    with pytest.raises(TypeError, match="needs the input batch"):
        diagnose(tiny_mlp)
    with pytest.raises(ValueError, match="same number of examples"):
        diagnose(tiny_mlp, small[0], small[1][:3])
    with pytest.raises(TypeError, match="takes no x"):
        diagnose(fake_monitor([1.0, 1.0]), *small)
    x = small[0].copy()
    x[3, 5] = np.nan
    with pytest.raises(ValueError, match="^x must be finite"):
        diagnose(tiny_mlp, x, small[1])


# -- recorded runs: a stand-in with the GradientMonitor attributes ---------------------


def fake_monitor(kernel_levels, *, steps=12, global_norm=None, nonfinite=(), update=None,
                 loss=None, model=None, paths=None):
    """A monitor-like record: kernel ``i`` has norm ``kernel_levels[i]`` at every step."""
    history, update_ratio = {}, {}
    paths = paths or [f"dense_{index}/kernel" for index in range(1, len(kernel_levels) + 1)]
    for index, (path, level) in enumerate(zip(paths, kernel_levels), 1):
        history[path] = [level] * steps
        history[path.replace("kernel", "bias")] = [1.0] * steps
        update_ratio[path] = [(update or {}).get(index, 1e-3)] * steps
    flags = [step in nonfinite for step in range(steps)]
    return SimpleNamespace(
        history=history, steps=list(range(steps)), update_ratio=update_ratio,
        global_norm=[1.0] * steps if global_norm is None else list(global_norm),
        clipped=[False] * steps, num_clipped=0, nonfinite=flags, model=model,
        **({} if loss is None else {"loss": list(loss)}),
    )


@pytest.mark.parametrize(
    ("monitor", "verdict", "words"),
    [
        (fake_monitor([1e-7, 1e-4, 1.0]), "vanishing", "median kernel-gradient norm"),
        (fake_monitor([1.0, 1.0, 1.0], update={1: 1e-8}), "vanishing", "update ratio"),
        (fake_monitor([1.0, 1.0, 1.0], update={1: 0.0}), "vanishing", "0.0e+00"),  # issue 11
        (fake_monitor([1.0, 2.0, 0.0]), "inconclusive", "cannot be formed"),  # issue 11
        (fake_monitor([1.0, 2.0, 1.0], nonfinite={7}), "exploding", "steps [7]"),
        (fake_monitor([1.0, 1.0], global_norm=np.geomspace(1, 1e3 - 1, 12)), "exploding", "grew"),
        (fake_monitor([1.0, 0.5, 2.0]), "healthy", "within"),
        (fake_monitor([1.0, 0.5, 2.0], loss=np.linspace(2.0, 1.0, 12)), "healthy", "within"),
        (fake_monitor([1.0, 0.5, 2.0], loss=[2.0] * 12), "not learning", "has not moved"),
        (fake_monitor([1.0, 0.5, 2.0], update={3: 5e-2}), "large updates", "50x"),
    ],
)
def test_monitor_rules(monitor, verdict, words):
    diagnosis = diagnose(monitor)
    assert diagnosis.verdict == verdict and words in diagnosis.reason, diagnosis.reason
    assert diagnosis.source == "monitor"
    assert [layer.name for layer in diagnosis.layers][0] == "dense_1/kernel"  # kernels only


def test_large_update_ratio_points_to_the_learning_rate_not_relu():
    diagnosis = diagnose(fake_monitor([1.0, 0.5, 2.0], update={3: 5e-2}))
    assert diagnosis.advice[0] == ADVICE["lower_lr"]
    assert not any(key in diagnosis.advice for key in (ADVICE["he"], ADVICE["batch_norm"]))


@pytest.mark.parametrize(("optimizer", "verdict"), [("adamw", "healthy"), ("sgd", "vanishing")])
def test_adaptive_optimizer_weighs_update_ratios_over_gradient_norms(optimizer, verdict):
    # Small kernel gradients with healthy update ratios: learning under AdamW (which
    # normalises the step), vanishing under SGD (whose step is the gradient).
    model = vgrad.build_mlp(2, 8, seed=0)
    model.compile(optimizer, CROSS_ENTROPY)
    paths = [v.path for v in model.trainable_variables if v.path.endswith("kernel")]
    diagnosis = diagnose(fake_monitor([1e-7, 1e-4, 1.0], model=model, paths=paths))
    assert diagnosis.verdict == verdict
    assert not any("Replace" in text for text in diagnosis.advice)  # the model is ReLU already


def test_monitor_with_nothing_recorded_raises():
    with pytest.raises(ValueError, match="recorded no gradient norms"):
        diagnose(fake_monitor([], steps=0))


@pytest.mark.slow
def test_real_monitor_of_a_deep_sigmoid_fit(small):
    model = vgrad.build_mlp(12, 16, activation="sigmoid", seed=0)
    model.compile(keras.optimizers.SGD(0.1), CROSS_ENTROPY)
    monitor = vgrad.GradientMonitor()
    model.fit(*small, batch_size=16, epochs=1, verbose=0, callbacks=[monitor])
    diagnosis = diagnose(monitor)
    assert isinstance(diagnosis, Diagnosis) and diagnosis.verdict == "vanishing"
    assert len(diagnosis.layers) == 13  # 12 hidden kernels and the logits


# -- the pure policy ------------------------------------------------------------------------


def test_ratio_of_a_zero_last_gradient_is_inconclusive_not_healthy():
    verdict, reason, ratio = policy.ratio_verdict("a", "b", {"a": 1.0, "b": 0.0}, "rms")
    assert verdict == "inconclusive" and math.isnan(ratio)
    assert policy.ratio_verdict("a", "a", {"a": 1.0}, "rms")[0] == "inconclusive"


def test_update_level_counts_zero_as_low():
    assert policy.update_level(0.0) == "low"
    assert [policy.update_level(v) for v in (1e-3, 5e-2, math.nan, None)] == [
        "healthy", "high", None, None]


def test_loss_progress_and_chance_level():
    assert policy.loss_progress([2.3] * 9)[0]
    assert policy.loss_progress(np.linspace(2.3, 1.0, 9))[0] is False
    # ends at chance level: stuck, unless updates at a healthy pace still bring it down
    assert policy.loss_progress(np.linspace(3.0, 2.31, 9), chance=math.log(10))[0]
    flat_at_chance = [3.0, 2.7, 2.4, 2.31, 2.30, 2.31, 2.30, 2.31, 2.30]
    assert policy.loss_progress(flat_at_chance, chance=math.log(10), paced=True)[0]
    early_adam = np.linspace(2.53, 2.17, 16)  # 16 steps of a run that goes on to learn
    assert policy.loss_progress(early_adam, chance=math.log(10), paced=True)[0] is False
    assert policy.loss_progress(early_adam, chance=math.log(10))[0]
    assert policy.loss_progress([1.0, 0.5]) == (False, None)  # too few records to judge


def test_policy_is_pure_and_plots_read_its_band():
    code = "import sys, vgrad.policy; assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    assert vgrad.plots.HEALTHY_BAND is policy.HEALTHY_BAND == (VANISHING_RATIO, EXPLODING_RATIO)
    assert set(policy.VERDICTS) >= {"healthy", "vanishing", "exploding", "inconclusive"}


def test_every_module_stays_small():
    source = Path(vgrad.__file__).parent
    sizes = {path.relative_to(source).as_posix(): len(path.read_text().splitlines())
             for path in source.rglob("*.py")}
    assert {"diagnosis.py", "policy.py", "findings.py", "monitor.py"} <= set(sizes)
    assert {name: lines for name, lines in sizes.items() if lines > 250} == {}


# -- one measurement, what the model has -----------------------------------------------------


def test_diagnose_measures_once_and_reads_one_hot_targets(small, monkeypatch):
    from vgrad import measurement

    calls = []
    real = measurement.measure
    monkeypatch.setattr(measurement, "measure", lambda *a, **k: calls.append(1) or real(*a, **k))
    model = vgrad.build_mlp(3, 16, kernel_initializer="he_normal", seed=0)
    labels = diagnose(model, *small)
    one_hot = diagnose(model, small[0], np.eye(10, dtype="float32")[small[1]])
    assert len(calls) == 2 and labels.verdict == one_hot.verdict == "healthy"
    assert "one-hot" in one_hot.loss_name and one_hot.loss == pytest.approx(labels.loss, rel=1e-5)


def test_architecture_reads_activations_merges_norms_and_optimizer():
    from vgrad._architecture import architecture

    inputs = keras.Input((6,), dtype="int32")
    x = keras.layers.Embedding(20, 8)(inputs)
    x = keras.layers.LayerNormalization()(x + keras.layers.Dense(8, activation="gelu")(x))
    x = keras.layers.LSTM(4)(x)
    model = keras.Model(inputs, keras.layers.Dense(1, activation="sigmoid")(x))
    model.compile(keras.optimizers.LossScaleOptimizer(keras.optimizers.AdamW()), "mse")
    found = architecture(model)
    assert found.activations == {"gelu"}  # the output sigmoid is not a hidden activation
    assert found.residual and found.layer_norm and found.normalized and not found.batch_norm
    assert found.recurrent == {"LSTM"} and not found.simple_rnn
    assert found.optimizer == "AdamW" and found.adaptive
    plain = architecture(vgrad.build_mlp(2, 4, activation="tanh", batch_norm=True, seed=0))
    assert plain.activations == {"tanh"} and plain.batch_norm and not plain.residual
    assert plain.optimizer is None and not plain.adaptive


def test_monitor_zero_kernel_is_a_zero_layer_named_in_the_advice():
    monitor = fake_monitor([1.0, 0.0, 2.0])
    monitor.weight_norm = {path: [0.0 if path == "dense_2/kernel" else 1.0] * 12
                           for path in monitor.history}
    diagnosis = diagnose(monitor)
    assert diagnosis.verdict == "zero layer" and "dense_2/kernel" in diagnosis.reason
    assert diagnosis.advice == (ADVICE["zero_layer"].format(layers="dense_2"),)
