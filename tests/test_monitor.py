"""GradientMonitor: recorded norms against an independent GradientTape, clipping,
exploding nets, TensorBoard files, and the model left as it was found."""

import math
import warnings

import numpy as np
import pytest
import tensorflow as tf

import keras
import vgrad

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compiled(model, optimizer=None, **compile_options):
    model.compile(optimizer or keras.optimizers.SGD(0.1), LOSS, **compile_options)
    return model


def tape_norms(model, x, y):
    """{variable path: gradient L2 norm} of the mean loss, computed outside ``fit``."""
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    return {
        v.path: float(np.linalg.norm(tf.convert_to_tensor(g).numpy().astype(np.float64)))
        for v, g in zip(model.trainable_variables, gradients)
    }


def one_step(model, x, y, monitor, **fit_options):
    """One optimizer step on the whole batch, in order, with ``monitor`` attached."""
    model.fit(x, y, batch_size=len(x), epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor], **fit_options)


class TwoDense(keras.Model):
    def __init__(self):
        super().__init__()
        self.hidden = keras.layers.Dense(8, activation="tanh")
        self.logits = keras.layers.Dense(10)

    def call(self, x):
        return self.logits(self.hidden(x))


def sequential_dense():
    return keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                             keras.layers.Dense(10)])


def functional_batch_norm():
    return vgrad.build_mlp(2, 8, batch_norm=True, seed=0)


def subclassed():
    model = TwoDense()
    model(np.zeros((1, 64), np.float32))
    return model


def recurrent():
    return keras.Sequential([keras.Input((64,)), keras.layers.Reshape((8, 8)),
                             keras.layers.LSTM(4), keras.layers.Dense(10)])


@pytest.mark.parametrize(
    "build", [sequential_dense, functional_batch_norm, subclassed, recurrent],
)
def test_norms_equal_an_independent_gradient_tape(build, batch):
    x, y = batch
    keras.utils.set_random_seed(0)
    model = compiled(build())
    expected = tape_norms(model, x, y)
    expected_loss = float(LOSS(y, model(x, training=True)))
    monitor = vgrad.GradientMonitor()
    one_step(model, x, y, monitor)
    assert monitor.steps == [0]
    np.testing.assert_allclose(monitor.loss, [expected_loss], rtol=1e-5)
    assert list(monitor.history) == [v.path for v in model.trainable_variables]
    for path, norm in expected.items():
        np.testing.assert_allclose(monitor.history[path], [norm], rtol=1e-4, err_msg=path)
    np.testing.assert_allclose(
        monitor.global_norm, [math.sqrt(sum(n**2 for n in expected.values()))], rtol=1e-4
    )
    assert monitor.nonfinite == [False] and monitor.clipped == [False]


@pytest.mark.parametrize(
    "optimizer",
    [lambda: keras.optimizers.SGD(0.1), lambda: keras.optimizers.Adam(0.01),
     lambda: keras.optimizers.AdamW(0.01, weight_decay=0.1)],
    ids=["SGD", "Adam", "AdamW (weights copied)"],
)
def test_update_ratio_is_the_weight_change_over_the_weight(optimizer, batch):
    x, y = batch
    model = compiled(vgrad.build_mlp(2, 8, activation="tanh", seed=0), optimizer())
    monitor = vgrad.GradientMonitor()
    weights = [[v.numpy() for v in model.trainable_variables]]
    for _ in range(2):
        one_step(model, x, y, monitor)
        weights.append([v.numpy() for v in model.trainable_variables])
    for index, variable in enumerate(model.trainable_variables):
        before = [np.linalg.norm(w[index]) for w in weights[:2]]
        change = [np.linalg.norm(a[index] - b[index]) for a, b in zip(weights[1:], weights)]
        np.testing.assert_allclose(monitor.weight_norm[variable.path], before, rtol=1e-5)
        with np.errstate(divide="ignore"):
            expected = np.divide(change, before)
        # Biases start at zero: their ratio at step 0 is inf, as the definition says.
        np.testing.assert_allclose(monitor.update_ratio[variable.path], expected, rtol=1e-3)


def test_loss_is_the_batch_loss_of_each_recorded_step(digits):
    (x, y), _ = digits
    x, y = x[:48], y[:48]
    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(
        10, kernel_regularizer=keras.regularizers.L2(0.1))])
    compiled(model)
    weights = model.get_weights()
    monitor = vgrad.GradientMonitor(every=2)
    model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    replay = compiled(keras.models.clone_model(model), keras.optimizers.SGD(0.1))
    replay.set_weights(weights)
    losses = []  # the three steps replayed outside fit
    for start in range(0, 48, 16):
        xb, yb = x[start:start + 16], y[start:start + 16]
        logits = replay(xb)
        losses.append(float(LOSS(yb, logits)) + float(sum(replay.losses)))
        replay.train_on_batch(xb, yb)
    assert monitor.steps == [0, 2]
    # The loss of each recorded batch, regularisation included; not the epoch's running mean.
    np.testing.assert_allclose(monitor.loss, losses[::2], rtol=1e-5)
    assert not np.isclose(monitor.loss[1], np.mean(losses), rtol=1e-3)


def test_every_records_every_kth_global_step(digits):
    (x, y), _ = digits
    x, y = x[:40], y[:40]
    models = [compiled(vgrad.build_mlp(2, 8, seed=0)) for _ in range(2)]
    every_step, every_third = vgrad.GradientMonitor(), vgrad.GradientMonitor(every=3)
    for model, monitor in zip(models, (every_step, every_third)):
        model.fit(x, y, batch_size=4, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    assert every_step.steps == list(range(10))
    assert every_third.steps == [0, 3, 6, 9]
    for path, norms in every_third.history.items():
        np.testing.assert_allclose(norms, every_step.history[path][::3], rtol=1e-6)
    # A second fit continues the optimizer's step count.
    models[1].fit(x, y, batch_size=8, epochs=1, shuffle=False, verbose=0, callbacks=[every_third])
    assert every_third.steps == [0, 3, 6, 9, 12]


@pytest.mark.parametrize("every", [1, 2])
@pytest.mark.parametrize("jit_compile", [False, True])
def test_several_steps_per_execution_and_xla(every, jit_compile, digits):
    (x, y), _ = digits
    x, y = x[:48], y[:48]
    reference = compiled(vgrad.build_mlp(2, 8, seed=0))
    reference_monitor = vgrad.GradientMonitor()
    reference.fit(x, y, batch_size=8, shuffle=False, verbose=0, callbacks=[reference_monitor])
    model = compiled(vgrad.build_mlp(2, 8, seed=0), steps_per_execution=4,
                     jit_compile=jit_compile)
    monitor = vgrad.GradientMonitor(every=every)
    model.fit(x, y, batch_size=8, shuffle=False, verbose=0, callbacks=[monitor])
    assert monitor.steps == list(range(0, 6, every))
    for path, norms in monitor.history.items():
        np.testing.assert_allclose(norms, reference_monitor.history[path][::every], rtol=1e-4)


@pytest.mark.parametrize(
    "option, small, large",
    [("global_clipnorm", 1e-3, 1e6), ("clipnorm", 1e-3, 1e6), ("clipvalue", 1e-6, 1e6)],
)
def test_clipping_is_flagged_and_norms_are_taken_before_it(option, small, large, batch):
    x, y = batch
    for threshold, expect_clipped in ((small, True), (large, False)):
        optimizer = keras.optimizers.SGD(0.1, **{option: threshold})
        model = compiled(vgrad.build_mlp(2, 8, seed=0), optimizer)
        expected = tape_norms(model, x, y)
        monitor = vgrad.GradientMonitor()
        one_step(model, x, y, monitor)
        one_step(model, x, y, monitor)
        assert monitor.clipped == [expect_clipped] * 2
        assert monitor.num_clipped == 2 * expect_clipped
        for path, norm in expected.items():  # the unclipped gradient of the first step
            np.testing.assert_allclose(monitor.history[path][0], norm, rtol=1e-4)
        largest = {"global_clipnorm": monitor.global_norm,
                   "clipnorm": np.max(list(monitor.history.values()), axis=0)}.get(option)
        if largest is not None:
            assert (np.asarray(largest) > threshold).tolist() == [expect_clipped] * 2


def test_sparse_and_loss_scaled_gradients(digits):
    (x, y), _ = digits
    indices = (x[:64, :16] > 0).astype("int32")  # an Embedding's gradient is IndexedSlices
    model = keras.Sequential([keras.Input((16,), dtype="int32"), keras.layers.Embedding(2, 3),
                              keras.layers.Flatten(), keras.layers.Dense(10)])
    # The loss scaling optimizer hands unscaled gradients to its inner optimizer.
    compiled(model, keras.optimizers.LossScaleOptimizer(keras.optimizers.SGD(0.1)))
    expected = tape_norms(model, indices, y[:64])
    embeddings = model.layers[0].embeddings
    before = embeddings.numpy()
    monitor = vgrad.GradientMonitor()
    one_step(model, indices, y[:64], monitor)
    for path, norm in expected.items():
        np.testing.assert_allclose(monitor.history[path], [norm], rtol=1e-4)
    change = np.linalg.norm(embeddings.numpy() - before) / np.linalg.norm(before)
    np.testing.assert_allclose(monitor.update_ratio[embeddings.path], [change], rtol=1e-4)


def exploding_mlp():
    """A deep ReLU MLP whose constant weights multiply activations by 64 per layer."""
    return vgrad.build_mlp(12, 64, kernel_initializer=keras.initializers.Constant(1.0), seed=0)


def test_exploding_gradients_are_recorded_as_nonfinite_not_raised(batch):
    x, y = batch
    model = compiled(exploding_mlp())
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=32, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0, 1, 2, 3]  # training went on
    assert monitor.nonfinite[0] and monitor.num_nonfinite >= 1
    assert not math.isfinite(monitor.global_norm[0])
    assert any(not math.isfinite(norms[0]) for norms in monitor.history.values())


def test_stop_on_nonfinite_stops_training_after_the_first_bad_step(batch):
    x, y = batch
    model = compiled(exploding_mlp())
    monitor = vgrad.GradientMonitor(stop_on_nonfinite=True)
    with pytest.warns(RuntimeWarning, match=r"non-finite gradient at step 0;"):
        model.fit(x, y, batch_size=32, epochs=3, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0]
    assert int(model.optimizer.iterations.numpy()) == 1


def test_tensorboard_files_hold_the_recorded_values(batch, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    x, y = batch
    model = compiled(vgrad.build_mlp(2, 8, seed=0))
    monitor = vgrad.GradientMonitor(log_dir=tmp_path, histograms=True)
    model.fit(x, y, batch_size=64, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    tags = events.Tags()
    path = model.trainable_variables[0].path
    assert {"gradient_norm/global", f"gradient_norm/{path}", f"update_ratio/{path}"} <= set(
        tags["scalars"]
    )
    assert f"gradient/{path}" in tags["tensors"]  # TensorBoard 2 histograms are tensors
    read = events.Scalars(f"gradient_norm/{path}")
    assert [event.step for event in read] == monitor.steps == [0, 1]
    np.testing.assert_allclose([event.value for event in read], monitor.history[path], rtol=1e-6)
    histogram = events.Tensors(f"gradient/{path}")
    assert [event.step for event in histogram] == [0, 1]


@pytest.mark.parametrize("live_seconds, expected", [(0.0, [[0, 1], [0, 1, 2, 3]]),
                                                  (3600.0, [[], []])])
def test_tensorboard_follows_the_fit_at_epoch_ends(live_seconds, expected, batch, tmp_path,
                                                   monkeypatch):
    # Epoch ends write and flush the records when LIVE_SECONDS have passed since the
    # last write; the end of fit always does.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    import vgrad.monitor

    monkeypatch.setattr(vgrad.monitor, "LIVE_SECONDS", live_seconds)
    x, y = batch
    model = compiled(vgrad.build_mlp(2, 8, seed=0))
    on_disk = []

    class ReadEvents(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            events = EventAccumulator(str(tmp_path))
            events.Reload()
            scalars = events.Tags()["scalars"]
            on_disk.append([e.step for e in events.Scalars("gradient_norm/global")]
                           if "gradient_norm/global" in scalars else [])

    monitor = vgrad.GradientMonitor(log_dir=tmp_path)
    model.fit(x, y, batch_size=64, epochs=2, shuffle=False, verbose=0,
              callbacks=[monitor, ReadEvents()])
    assert on_disk == expected
    events = EventAccumulator(str(tmp_path))
    events.Reload()
    assert [e.step for e in events.Scalars("gradient_norm/global")] == [0, 1, 2, 3]


@pytest.mark.parametrize("jit_compile", [False, True])
def test_histograms_are_binned_in_the_step_as_numpy_bins_the_gradient(jit_compile, batch, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    x, y = batch
    model = compiled(vgrad.build_mlp(2, 8, seed=0), jit_compile=jit_compile)
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    monitor = vgrad.GradientMonitor(every=2, log_dir=tmp_path, histograms=True)
    model.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0, callbacks=[monitor])
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0})
    events.Reload()
    for variable, gradient in zip(model.trainable_variables, gradients):
        written = events.Tensors(f"gradient/{variable.path}")
        assert [event.step for event in written] == monitor.steps == [0, 2]
        table = tensor_util.make_ndarray(written[0].tensor_proto)  # (bins, [left, right, count])
        values = gradient.numpy().ravel()
        half_width = np.abs(values).max()
        np.testing.assert_allclose(table[[0, -1], [0, 1]], [-half_width, half_width], rtol=1e-6)
        counts, _ = np.histogram(values, bins=len(table), range=(-half_width, half_width))
        assert table[:, 2].sum() == values.size
        # float32 binning on the device may move a value lying on an edge by one bin
        assert np.abs(table[:, 2] - counts).sum() <= 2, variable.path


@pytest.mark.parametrize("jit_compile", [False, True])
def test_histograms_of_nan_gradients_are_data_not_a_crash(jit_compile, batch, tmp_path):
    # tf.histogram_fixed_width raises on nan: the monitor must bin it instead, into the
    # first bin, and training must go on with the step flagged; no histogram is written
    # for a gradient holding inf/nan (its range would be made up), its norm shows nan.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    from vgrad._hook_ops import bin_gradients

    gradient = tf.constant([np.nan, np.nan, -np.inf, 0.25, 0.999, np.inf])
    maxima, counts = bin_gradients([gradient], 4, xla=jit_compile)
    assert np.isnan(maxima.numpy()[0])  # the range is then [-1, 1]
    assert counts.numpy().tolist() == [[3, 0, 1, 2]]

    x, y = batch
    x = x.copy()
    x[0, 0] = np.nan  # in the first batch
    model = compiled(vgrad.build_mlp(2, 8, seed=0), jit_compile=jit_compile)
    monitor = vgrad.GradientMonitor(log_dir=tmp_path, histograms=True)
    model.fit(x, y, batch_size=len(x) // 2, epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor])
    kernel = model.trainable_variables[0]
    assert monitor.steps == [0, 1] and monitor.nonfinite[0]
    assert np.isnan(monitor.history[kernel.path][0])
    events = EventAccumulator(str(tmp_path), size_guidance={"tensors": 0, "scalars": 0})
    events.Reload()
    assert [e.step for e in events.Scalars(f"gradient_norm/{kernel.path}")] == [0, 1]
    tag = f"gradient/{kernel.path}"
    written = events.Tensors(tag) if tag in events.Tags()["tensors"] else []
    assert 0 not in [e.step for e in written]
    assert [e.step for e in written] == [
        s for s, norm in zip(monitor.steps, monitor.history[kernel.path]) if np.isfinite(norm)]
    bias = model.trainable_variables[1]  # the first layer's bias: finite at step 0?
    for event in events.Tensors(f"gradient/{bias.path}") if f"gradient/{bias.path}" in \
            events.Tags()["tensors"] else []:
        counts = tensor_util.make_ndarray(event.tensor_proto)[:, 2]
        assert counts.sum() == np.prod(bias.shape)


def test_model_is_left_as_it_was_found(batch, tmp_path):
    x, y = batch
    model = compiled(vgrad.build_mlp(2, 8, seed=0))
    plain_function = model.make_train_function() or model.train_function
    monitor = vgrad.GradientMonitor(every=2)
    model.fit(x, y, batch_size=32, shuffle=False, verbose=0, callbacks=[monitor])
    assert "apply" not in vars(model.optimizer)
    assert model.train_function is plain_function
    recorded = list(monitor.steps)
    model.fit(x, y, batch_size=32, verbose=0)  # no monitor: nothing more recorded
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    assert monitor.steps == recorded + [8, 10]
    model.save(tmp_path / "model.keras")
    restored = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(restored.predict(x[:4], verbose=0), model.predict(x[:4], verbose=0))


@pytest.mark.parametrize("every", [1, 3])
def test_monitored_training_is_bit_identical_to_unmonitored(every, batch):
    x, y = batch
    weights = []
    for callbacks in ([], [vgrad.GradientMonitor(every=every)]):
        keras.utils.set_random_seed(1)
        model = compiled(vgrad.build_mlp(2, 8, batch_norm=True, seed=0),
                         keras.optimizers.Adam(0.01))
        model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=callbacks)
        weights.append(model.get_weights())
    for unmonitored, monitored in zip(*weights):
        np.testing.assert_array_equal(monitored, unmonitored)


def test_repr_prints_one_line_per_variable(batch):
    x, y = batch
    model = compiled(vgrad.build_mlp(1, 4, seed=0))
    monitor = vgrad.GradientMonitor()
    assert "0 records" in repr(monitor)
    one_step(model, x, y, monitor)
    lines = repr(monitor).splitlines()
    assert lines[0].startswith("GradientMonitor(every=1): 1 records")
    assert [line.split()[0] for line in lines[2:]] == [*monitor.history, "(global)"]


@pytest.mark.parametrize(
    "arguments, error, match",
    [
        ({"every": 0}, ValueError, "every"),
        ({"every": 2.0}, TypeError, "every"),
        ({"every": True}, TypeError, "every"),
        ({"log_dir": 3}, TypeError, "log_dir"),
        ({"histograms": "yes", "log_dir": "logs"}, TypeError, "histograms"),
        ({"histograms": True}, ValueError, "log_dir"),
        ({"stop_on_nonfinite": 1}, TypeError, "stop_on_nonfinite"),
    ],
)
def test_bad_arguments_raise(arguments, error, match):
    with pytest.raises(error, match=match):
        vgrad.GradientMonitor(**arguments)


def test_unsupported_setups_are_refused_when_fit_starts(batch):
    x, y = batch
    model = compiled(vgrad.build_mlp(1, 4, seed=0),
                     keras.optimizers.SGD(0.1, gradient_accumulation_steps=2))
    with pytest.raises(ValueError, match="gradient_accumulation_steps"):
        model.fit(x, y, verbose=0, callbacks=[vgrad.GradientMonitor()])
    model = compiled(vgrad.build_mlp(1, 4, seed=0))
    with warnings.catch_warnings(), pytest.raises(ValueError, match="one GradientMonitor"):
        model.fit(x, y, verbose=0, callbacks=[vgrad.GradientMonitor(), vgrad.GradientMonitor()])
