"""GradientMonitor under KERAS_BACKEND=jax: the same norms as under TensorFlow (computed
in a TensorFlow subprocess from the same weights and batches), the batch loss, every,
update ratios, non-finite steps, the optimizer left as found, and diagnose(monitor).

Run in its own process: ``KERAS_BACKEND=jax python -m pytest tests/test_monitor_jax.py``.
Elsewhere it skips, unless ``VGRAD_REQUIRE_JAX=1`` (set by ``make test``), then it fails.
"""

import math
import os
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest

import keras

if keras.backend.backend() != "jax":
    _MESSAGE = (f"test_monitor_jax.py needs KERAS_BACKEND=jax (this process runs Keras on "
                f"{keras.backend.backend()!r})")
    if os.environ.get("VGRAD_REQUIRE_JAX") == "1":
        pytest.fail(_MESSAGE, pytrace=False)
    pytest.skip(_MESSAGE, allow_module_level=True)

import vgrad  # noqa: E402
from jax_reference import BATCH, LOSS, MODELS, NUM_STEPS, records  # noqa: E402

#: Global clip norm of the equality runs: between the models' gradient norms, so that
#: some recorded steps are clipped and some are not.
CLIP = 1.2


@pytest.fixture(scope="module")
def batches():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(BATCH * NUM_STEPS, 8, 8, 1)).astype("float32")
    y = rng.integers(0, 10, size=BATCH * NUM_STEPS).astype("int32")
    return x, y


@pytest.fixture(scope="module")
def weights():
    out = {}
    for index, (name, build) in enumerate(MODELS.items()):
        keras.utils.set_random_seed(index)
        out[name] = build().get_weights()
    return out


@pytest.fixture(scope="module")
def tensorflow_records(tmp_path_factory, batches, weights):
    """The records of each model under TensorFlow, from a subprocess."""
    folder = tmp_path_factory.mktemp("jax_reference")
    x, y = batches
    arrays = {"x": x, "y": y, "global_clipnorm": np.array(CLIP)}
    for name, values in weights.items():
        arrays.update({f"{name}/weight_{i}": w for i, w in enumerate(values)})
    np.savez(folder / "weights.npz", **arrays)
    environment = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="2")
    script = Path(__file__).with_name("jax_reference.py")
    subprocess.run([sys.executable, str(script), str(folder / "weights.npz"),
                    str(folder / "records.npz")], check=True, env=environment, timeout=300)
    result = np.load(folder / "records.npz")
    assert str(result["backend"]) == "tensorflow"
    return result


def relative_difference(a, b):
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.max(np.abs(a - b) / np.maximum(np.abs(b), 1e-30)))


@pytest.mark.parametrize("name", list(MODELS))
def test_first_norms_equal_tensorflow(name, batches, weights, tensorflow_records):
    ours = records(name, weights[name], *batches, CLIP)
    theirs = {key: tensorflow_records[f"{name}/{key}"]
              for key in ("history", "global_norm", "clipped", "steps", "loss")}
    assert ours["steps"].tolist() == theirs["steps"].tolist() == list(range(NUM_STEPS))
    first = relative_difference(ours["history"][0], theirs["history"][0])
    print(f"{name}: max relative difference of the first recorded norms {first:.2e}")
    assert first <= 1e-5
    assert relative_difference(ours["global_norm"][0], theirs["global_norm"][0]) <= 1e-5
    # Later steps start from weights that already differ by rounding.
    assert relative_difference(ours["history"], theirs["history"]) <= 1e-3
    assert ours["clipped"].tolist() == theirs["clipped"].tolist()
    assert relative_difference(ours["loss"], theirs["loss"]) <= 1e-4


def test_clipping_flags_are_mixed_in_the_equality_runs(tensorflow_records):
    """The flags compared above are not all equal, so their agreement means something."""
    flags = np.concatenate([tensorflow_records[f"{name}/clipped"] for name in MODELS])
    assert flags.any() and not flags.all()


def compiled_mlp(seed=0, optimizer=None):
    keras.utils.set_random_seed(seed)
    model = MODELS["mlp"]()
    model.compile(optimizer or keras.optimizers.SGD(0.05), LOSS)
    return model


def test_loss_is_the_loss_of_the_recorded_batch(batches):
    x, y = batches
    model = compiled_mlp()
    expected = [float(LOSS(y[:BATCH], model(x[:BATCH], training=True)))]
    monitor = vgrad.GradientMonitor()
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.loss == pytest.approx(expected, rel=1e-5)


def test_every_update_ratio_and_weight_norm(batches):
    x, y = batches
    model = compiled_mlp()
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    monitor = vgrad.GradientMonitor(every=2)
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0, callbacks=[monitor])
    after = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    kernel = model.trainable_variables[0].path  # the first Dense kernel
    expected_ratio = np.linalg.norm(after[kernel] - before[kernel]) / np.linalg.norm(before[kernel])
    assert monitor.update_ratio[kernel] == pytest.approx([expected_ratio], rel=1e-4)
    assert monitor.weight_norm[kernel] == pytest.approx([np.linalg.norm(before[kernel])], rel=1e-5)
    model.fit(x, y, batch_size=BATCH // 2, epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor])  # steps 1..6: records 2, 4, 6
    assert monitor.steps == [0, 2, 4, 6]
    assert set(monitor.history) == set(before)
    assert all(len(norms) == 4 for norms in monitor.history.values())


@pytest.mark.parametrize("optimizer", [
    lambda: keras.optimizers.SGD(0.05, momentum=0.9),  # update read from assign/assign_add
    lambda: keras.optimizers.Adam(1e-3),  # from assign_sub
    lambda: keras.optimizers.AdamW(1e-3, weight_decay=0.1),  # decay bypasses assign*: copy
], ids=["sgd-momentum", "adam", "adamw"])
def test_update_norms_are_the_weight_changes_on_both_update_paths(batches, optimizer):
    x, y = batches
    model = compiled_mlp(optimizer=optimizer())
    monitor = vgrad.GradientMonitor()
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0, callbacks=[monitor])
    before = {v.path: np.array(v.numpy()) for v in model.trainable_variables}
    model.fit(x[BATCH:2 * BATCH], y[BATCH:2 * BATCH], batch_size=BATCH, epochs=1, verbose=0,
              callbacks=[monitor])  # step 1: momentum and Adam moments are not zero
    assert monitor.steps == [0, 1]
    for variable in model.trainable_variables:
        change = np.linalg.norm(variable.numpy() - before[variable.path])
        weight = np.linalg.norm(before[variable.path])
        assert change > 0
        assert monitor.weight_norm[variable.path][1] == pytest.approx(weight, rel=1e-5)
        assert monitor.update_ratio[variable.path][1] == pytest.approx(change / weight, rel=1e-3)


def test_nonfinite_gradient_is_recorded_and_stops_training(batches):
    x, y = batches
    x = x.copy()
    x[BATCH + 1, 0, 0, 0] = np.inf  # the second batch
    model = compiled_mlp()
    monitor = vgrad.GradientMonitor(stop_on_nonfinite=True)
    with pytest.warns(RuntimeWarning, match="non-finite gradient at step"):
        model.fit(x, y, batch_size=BATCH, epochs=3, shuffle=False, verbose=0,
                  callbacks=[monitor])
    assert monitor.steps == [0, 1]
    assert monitor.nonfinite == [False, True] and monitor.num_nonfinite == 1
    assert not math.isfinite(monitor.global_norm[1])


def test_clipping_flags_follow_the_threshold(batches):
    x, y = batches
    for clip, expected in ((1e-3, True), (1e3, False)):
        model = compiled_mlp(optimizer=keras.optimizers.SGD(0.05, global_clipnorm=clip))
        monitor = vgrad.GradientMonitor()
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[monitor])
        assert monitor.clipped == [expected] * NUM_STEPS


def test_optimizer_left_as_found_and_steps_continue(batches):
    x, y = batches
    model = compiled_mlp(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)
    paths = [v.path for v in model.optimizer.variables]
    monitor = vgrad.GradientMonitor()
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)  # no internal failure
        for _ in range(2):
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[monitor])
            assert [v.path for v in model.optimizer.variables] == paths
            model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0)  # without the monitor
    assert monitor.steps == [3, 4, 5, 9, 10, 11]
    assert int(model.optimizer.iterations.numpy()) == 15


def test_diagnose_reads_the_monitor(batches):
    x, y = batches
    model = compiled_mlp()
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[monitor])
    report = vgrad.diagnose(monitor)
    assert isinstance(report, vgrad.Diagnosis)
    assert "sequential" in str(report)


def test_tensorboard_scalars_are_written(batches, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = batches
    model = compiled_mlp()
    monitor = vgrad.GradientMonitor(log_dir=tmp_path)
    model.fit(x, y, batch_size=BATCH, epochs=1, verbose=0, callbacks=[monitor])
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("gradient_norm/global")] == [0, 1, 2]
    assert [e.value for e in events.Scalars("gradient_norm/global")] == pytest.approx(
        monitor.global_norm, rel=1e-6)


def test_histograms_are_refused_on_jax(tmp_path):
    with pytest.raises(ValueError, match="TensorFlow backend only"):
        vgrad.GradientMonitor(log_dir=tmp_path, histograms=True)


@pytest.mark.parametrize("name", ["gradient_norms", "backprop_rms", "measure", "diagnose"])
def test_tensorflow_only_entry_points_name_the_backend(name, batches):
    x, y = batches
    model = compiled_mlp()
    with pytest.raises(RuntimeError, match=r"needs Keras's TensorFlow backend.*'jax'.*"
                                           r"GradientMonitor and vgrad.diagnose\(monitor\)"):
        getattr(vgrad, name)(model, x[:BATCH], y[:BATCH])
    with pytest.raises(RuntimeError, match="vgrad.activation_stats needs"):
        vgrad.activation_stats(model, x[:BATCH])


def test_private_keras_apis_the_jax_hook_relies_on():
    # A Keras release may drop any of these without notice; vgrad._jax_hook needs them
    # to keep its records in the optimizer's state inside the jitted step.
    model = compiled_mlp()
    callback = keras.callbacks.Callback()
    callback.set_model(model)
    missing = [api for api, present in [
        ("Optimizer._variables (a list the optimizer state is built from)",
         isinstance(getattr(model.optimizer, "_variables", None), list)),
        ("JAXTrainer._make_function(step)", callable(getattr(model, "_make_function", None))),
        ("Trainer._loss_tracker (total and count of the loss)",
         hasattr(getattr(model, "_loss_tracker", None), "result")),
        ("Callback._model (the model without a JAX state sync)", callback._model is model),
    ] if not present]
    assert not missing, (f"Keras {keras.__version__} changed private APIs that "
                         f"vgrad._jax_hook uses: {missing}; adapt vgrad/_jax_hook.py")


def fitted_records(batches, every=1, **compile_options):
    """``(steps, history)`` of a monitored fit of the MLP over six batches of 8."""
    x, y = batches
    keras.utils.set_random_seed(0)
    model = MODELS["mlp"]()
    model.compile(keras.optimizers.Adam(1e-2), LOSS, **compile_options)
    monitor = vgrad.GradientMonitor(every=every)
    model.fit(x, y, batch_size=BATCH // 2, epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor])
    return monitor.steps, monitor.history


@pytest.mark.parametrize("options", [{"steps_per_execution": 3}, {"jit_compile": False}],
                         ids=["steps_per_execution=3", "jit_compile=False"])
def test_several_steps_per_call_and_eager_steps_record_the_same_norms(batches, options):
    # steps_per_execution > 1: the recording function decides in the step which steps
    # it records; jit_compile=False: the step runs op by op. Both equal the jitted run.
    steps, history = fitted_records(batches, every=2)
    other_steps, other_history = fitted_records(batches, every=2, **options)
    assert steps == other_steps == [0, 2, 4]
    assert len(history) == len(other_history) == 6  # a new model: new paths, same order
    for norms, other_norms in zip(history.values(), other_history.values()):
        np.testing.assert_allclose(other_norms, norms, rtol=1e-5)


def test_a_fit_that_raises_leaves_the_optimizer_as_found(batches):
    x, y = batches

    class Interrupt(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            if batch == 1:
                raise KeyboardInterrupt

    model = compiled_mlp(optimizer=keras.optimizers.Adam(1e-3))
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)
    paths = [v.path for v in model.optimizer.variables]
    monitor = vgrad.GradientMonitor()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
                  callbacks=[monitor, Interrupt()])
    assert [v.path for v in model.optimizer.variables] == paths
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor])
    assert [v.path for v in model.optimizer.variables] == paths
    assert monitor.steps[-3:] == [3, 4, 5]
    assert all(math.isfinite(norm) for norm in monitor.global_norm)


class OwnTracker(keras.Model):
    """The keras.io JAX guide's custom ``train_step`` with its own loss tracker."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.tracker = keras.metrics.Mean(name="loss")

    def train_step(self, state, data):
        import jax

        trainable, non_trainable, optimizer_variables, metrics_variables = state
        x, y = data

        def compute(trainable_variables):
            y_pred, new_non_trainable = self.stateless_call(trainable_variables, non_trainable, x)
            loss = keras.losses.sparse_categorical_crossentropy(y, y_pred, from_logits=True)
            return keras.ops.mean(loss), new_non_trainable

        (loss, non_trainable), grads = jax.value_and_grad(compute, has_aux=True)(trainable)
        trainable, optimizer_variables = self.optimizer.stateless_apply(
            optimizer_variables, grads, trainable)
        metrics_variables = self.tracker.stateless_update_state(metrics_variables, loss)
        logs = {"loss": self.tracker.stateless_result(metrics_variables)}
        return logs, (trainable, non_trainable, optimizer_variables, metrics_variables)

    @property
    def metrics(self):
        return [self.tracker]


def test_a_custom_step_with_its_own_tracker_records_nan_not_zero(batches):
    x, y = batches
    inputs = keras.Input((8, 8, 1))
    hidden = keras.layers.Dense(16, activation="relu")(keras.layers.Flatten()(inputs))
    model = OwnTracker(inputs, keras.layers.Dense(10)(hidden))
    model.compile(optimizer=keras.optimizers.Adam(1e-2))
    monitor = vgrad.GradientMonitor()
    history = model.fit(x, y, batch_size=BATCH, epochs=2, verbose=0, callbacks=[monitor])
    assert history.history["loss"][1] < history.history["loss"][0]  # it learns
    assert len(monitor.steps) == 2 * NUM_STEPS and all(math.isnan(v) for v in monitor.loss)
    assert vgrad.diagnose(monitor).verdict != "not learning"


def test_a_loss_scale_optimizer_is_refused_at_fit_start(batches):
    x, y = batches
    model = compiled_mlp(optimizer=keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD()))
    with pytest.raises(ValueError, match="cannot watch a LossScaleOptimizer"):
        model.fit(x, y, batch_size=BATCH, verbose=0, callbacks=[vgrad.GradientMonitor()])
