"""A monitor never breaks the training it watches: an internal failure detaches it with
one warning, and a fit that raises leaves the optimizer unhooked with the records kept."""

import warnings

import numpy as np
import pytest

import keras
import vgrad
from vgrad import _monitor_base as monitor_module  # where the monitor decodes its rows
from vgrad._optimizer_hook import OptimizerHook

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train(x, y, callbacks, epochs=2):
    keras.utils.set_random_seed(1)
    model = vgrad.build_mlp(2, 8, seed=0)
    model.compile(keras.optimizers.Adam(0.01), LOSS)
    plain_function = model.make_train_function() or model.train_function
    model.fit(x, y, batch_size=32, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    return model, plain_function


def broken_trace(*args, **kwargs):
    raise KeyError("provoked while tracing")


def broken_decoding(*args, **kwargs):
    raise KeyError("provoked while reading the records")


@pytest.mark.parametrize(
    "target, replacement, cause",
    [(OptimizerHook, ("_before", broken_trace), "provoked while tracing"),
     (monitor_module, ("decode_rows", broken_decoding), "provoked while reading")],
    ids=["in the compiled step", "on the host"],
)
def test_internal_failure_detaches_the_monitor_and_training_goes_on(
        target, replacement, cause, batch, monkeypatch):
    x, y = batch
    reference, _ = train(x, y, [])
    monkeypatch.setattr(target, *replacement)
    monitor = vgrad.GradientMonitor()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        model, plain_function = train(x, y, [monitor])
    ours = [w for w in caught if "GradientMonitor" in str(w.message)]
    assert len(ours) == 1 and issubclass(ours[0].category, RuntimeWarning)
    assert "KeyError" in str(ours[0].message) and cause in str(ours[0].message)
    assert int(model.optimizer.iterations.numpy()) == 8  # every step ran
    for monitored, unmonitored in zip(model.get_weights(), reference.get_weights()):
        np.testing.assert_array_equal(monitored, unmonitored)
    assert "apply" not in vars(model.optimizer)
    assert model.train_function is plain_function


class RaiseAt(keras.callbacks.Callback):
    def __init__(self, step):
        super().__init__()
        self.step = step

    def on_train_batch_end(self, batch, logs=None):
        if batch == self.step:
            raise RuntimeError(f"callback failed at step {batch}")


def test_a_fit_that_raises_leaves_the_optimizer_unhooked_and_keeps_the_records(batch):
    x, y = batch
    model = vgrad.build_mlp(2, 8, seed=0)
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    monitor = vgrad.GradientMonitor()
    with pytest.raises(RuntimeError, match="step 4"):
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                  callbacks=[monitor, RaiseAt(4)])
    assert "apply" not in vars(model.optimizer) and "scale_loss" not in vars(model.optimizer)
    assert monitor.steps == [0, 1, 2, 3, 4]
    assert len(monitor.loss) == 5 and np.isfinite(monitor.loss).all()
    # The model trains on, with or without the monitor, and nothing more is recorded
    # without it.
    model.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert monitor.steps == [0, 1, 2, 3, 4]
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[vgrad.GradientMonitor()])
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0, 1, 2, 3, 4, 15, 16]
    assert "apply" not in vars(model.optimizer)


def test_a_new_monitor_takes_over_from_one_left_by_a_fit_that_raised(batch):
    x, y = batch
    model = vgrad.build_mlp(2, 8, seed=0)
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    interrupted = vgrad.GradientMonitor(every=10)
    with pytest.raises(RuntimeError, match="step 2"):
        model.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0,
                  callbacks=[interrupted, RaiseAt(2)])
    assert interrupted.steps == [0]
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=64, epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.steps == [3, 4] and interrupted.steps == [0]
