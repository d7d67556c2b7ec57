"""GradientMonitor in the training setups people use around it: callbacks that raise,
recompiling, a second model, copies, schedules that lower the learning rate, sample
weights, short runs, and plots given the wrong object. Each test reproduces a defect
found by trying those setups, against the real behaviour."""

import copy
import pickle
import types

import numpy as np
import pytest

import keras

import vgrad


@pytest.fixture()
def data(batch):
    x, y = batch
    return x, y


def _mlp(seed=0, optimizer=None):
    model = vgrad.build_mlp(3, 16, seed=seed)
    model.compile(optimizer or keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def test_a_fit_that_raised_before_any_step_does_not_block_the_next_monitor(data):
    x, y = data
    model = _mlp()
    broken = keras.callbacks.LearningRateScheduler(lambda epoch, lr: "0.01")  # not a float
    with pytest.raises(ValueError):
        model.fit(x, y, verbose=0, callbacks=[vgrad.GradientMonitor(), broken])
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    assert len(monitor.steps) == 4
    with pytest.raises(ValueError, match="one GradientMonitor per fit"):
        model.fit(x, y, verbose=0, callbacks=[vgrad.GradientMonitor(), vgrad.GradientMonitor()])


def test_a_new_optimizer_or_another_model_is_announced(data):
    x, y = data
    model, monitor = _mlp(), vgrad.GradientMonitor()
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    model.compile(keras.optimizers.SGD(0.01),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(UserWarning, match=r"new optimizer, whose steps start again at 0.*"
                                         r"steps 0\.\.3\) are kept"):
        model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0, 1, 2, 3] * 2
    with pytest.warns(UserWarning, match="the 8 records of the model it watched before are dropped"):
        _mlp(seed=1).fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0, 1, 2, 3]


def test_copies_and_pickles_keep_the_records(data):
    x, y = data
    model, monitor = _mlp(), vgrad.GradientMonitor(every=2)
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    for clone in (copy.deepcopy(monitor), pickle.loads(pickle.dumps(monitor))):
        assert clone.steps == monitor.steps == [0, 2]
        assert clone.history == monitor.history and clone.every == 2
        assert vgrad.diagnose(clone).verdict == vgrad.diagnose(monitor).verdict
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])  # the original goes on
    assert monitor.steps == [0, 2, 4, 6]


def test_a_lowered_learning_rate_is_judged_by_its_latest_updates(digits):
    (x_train, y_train), _ = digits
    model = _mlp(optimizer=keras.optimizers.SGD(0.5))
    monitor = vgrad.GradientMonitor()
    # large steps for four epochs, then small ones (as ReduceLROnPlateau would)
    lower = keras.callbacks.LearningRateScheduler(lambda epoch, lr: 0.5 if epoch < 4 else 1e-4)
    model.fit(x_train[:512], y_train[:512], batch_size=64, epochs=6, verbose=0,
              callbacks=[monitor, lower])
    ratios = np.array(list(monitor.update_ratio.values()))
    # over the whole run the median is high; over the last third (16 steps) it is low
    assert np.nanmedian(ratios) > 3e-2 > 1e-3 > np.nanmedian(ratios[:, -16:])
    assert vgrad.diagnose(monitor).verdict == "healthy"


def test_zero_loss_everywhere_is_not_called_dead_units(data):
    x, y = data
    model, monitor = _mlp(), vgrad.GradientMonitor()
    model.fit(x, y, sample_weight=np.zeros(len(x)), batch_size=16, epochs=1, verbose=0,
              callbacks=[monitor])
    assert set(monitor.loss) == {0.0} and set(monitor.global_norm) == {0.0}
    diagnosis = vgrad.diagnose(monitor)
    assert diagnosis.verdict == "not learning" and "loss is 0" in diagnosis.reason


@pytest.mark.parametrize(("update_ratio", "verdict"), [(1e-3, "healthy"), (5e-2, "not learning")])
def test_a_loss_still_falling_near_chance_is_learning_if_the_steps_are_sane(update_ratio,
                                                                          verdict):
    # 16 steps of a run whose loss falls steadily (median of the thirds 2.47, 2.35, 2.23)
    # and ends near chance level, ln 10 = 2.30: with updates at a healthy pace the run is
    # learning; with steps 50x too large the same curve is a loss wandering near chance.
    model = _mlp()
    paths = [v.path for v in model.trainable_variables if v.path.endswith("kernel")]
    steps = list(range(16))
    monitor = types.SimpleNamespace(
        model=model, steps=steps, loss=list(np.linspace(2.53, 2.17, 16)),
        history={p: [0.5] * 16 for p in paths}, global_norm=[0.9] * 16,
        update_ratio={p: [update_ratio] * 16 for p in paths}, clipped=[False] * 16,
        num_clipped=0, nonfinite=[False] * 16)
    diagnosis = vgrad.diagnose(monitor)
    assert diagnosis.verdict == verdict, diagnosis
    if verdict == "healthy":
        assert any("still near chance level, and is falling" in n for n in diagnosis.notes)


def test_few_records_are_said_to_be_few(data):
    x, y = data
    model, monitor = _mlp(), vgrad.GradientMonitor(every=1000)
    model.fit(x, y, batch_size=32, epochs=2, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0]
    assert any("only 1 recorded step:" in note for note in vgrad.diagnose(monitor).notes)


def test_plots_refuse_a_monitor_where_they_take_other_records(data):
    import matplotlib.pyplot as plt

    x, y = data
    model, monitor = _mlp(), vgrad.GradientMonitor()
    model.fit(x, y, batch_size=32, verbose=0, callbacks=[monitor])
    with pytest.raises(TypeError, match="one number per layer.*plot_monitor"):
        vgrad.plots.plot_gradient_norms(monitor.history)
    with pytest.raises(TypeError, match="not a GradientMonitor.*plot_monitor"):
        vgrad.plots.plot_training_curves(monitor)
    with pytest.raises(TypeError, match="not a GradientMonitor"):
        vgrad.plots.plot_training_curves({"run": monitor})
    plt.close("all")


def test_run_eagerly_records_the_loss(data):
    x, y = data
    model = vgrad.build_mlp(2, 8, seed=0)
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    model.compile(keras.optimizers.SGD(0.0), loss, run_eagerly=True)  # weights stay put
    monitor = vgrad.GradientMonitor()
    model.fit(x[:32], y[:32], batch_size=16, epochs=1, shuffle=False, verbose=0,
              callbacks=[monitor])
    expected = [float(loss(y[i:i + 16], model(x[i:i + 16]))) for i in (0, 16)]
    assert monitor.loss == pytest.approx(expected, rel=1e-5)


def test_unfreezing_a_layer_keeps_the_history_in_model_order(data):
    x, y = data
    model = vgrad.build_mlp(2, 8, seed=0)
    first = next(layer for layer in model.layers if layer.weights)
    first.trainable = False
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=64, verbose=0, callbacks=[monitor])
    first.trainable = True
    model.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    with pytest.warns(UserWarning, match="new optimizer"):
        model.fit(x, y, batch_size=64, verbose=0, callbacks=[monitor])
    paths = [v.path for v in model.trainable_variables]
    assert list(monitor.history) == list(monitor.update_ratio) == paths
    assert np.isnan(monitor.history[first.kernel.path][:2]).all()
    assert np.isfinite(monitor.history[first.kernel.path][2:]).all()
