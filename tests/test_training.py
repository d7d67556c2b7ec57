import math

import keras
import pytest

import vgrad


@pytest.fixture()
def small_data(digits):
    (x_train, y_train), (x_test, y_test) = digits
    return (x_train[:256], y_train[:256]), (x_test[:64], y_test[:64])


def test_a_shallow_net_learns_and_scores_are_recorded(small_data):
    model = vgrad.build_mlp(1, 32, seed=0)
    run = vgrad.train(model, small_data, optimizer=keras.optimizers.Adam(1e-2), epochs=5, label="shallow")
    assert set(run.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(run.history["loss"]) == 5
    assert run.final_loss < run.history["loss"][0]
    (_, _), (x_test, y_test) = small_data
    expected = model.evaluate(x_test, y_test, verbose=0)[1]
    assert run.test_accuracy == pytest.approx(expected)
    assert run.test_accuracy == pytest.approx(run.history["val_accuracy"][-1])
    assert str(run).startswith("shallow") and "test accuracy" in str(run)
    assert not run.diverged


def test_divergence_is_reported_not_raised(small_data):
    keras.utils.set_random_seed(0)
    init = keras.initializers.RandomNormal(stddev=10.0, seed=0)
    # Linear units cannot die, so the huge first step must overflow the weights.
    model = vgrad.build_mlp(8, 32, activation="linear", kernel_initializer=init)
    run = vgrad.train(model, small_data, optimizer=keras.optimizers.SGD(10.0), epochs=2)
    assert run.diverged and not math.isfinite(run.final_loss)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"data": ([1, 2],)}, TypeError, "data must be"), ({"epochs": 0}, ValueError, "epochs"),
     ({"batch_size": 1.5}, ValueError, "batch_size")],
)
def test_bad_arguments(small_data, kwargs, error, match):
    arguments = {"data": small_data, "optimizer": "sgd", **kwargs}
    with pytest.raises(error, match=match):
        vgrad.train(vgrad.build_mlp(1, 4, seed=0), **arguments)
