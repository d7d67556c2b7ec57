import math

import keras
import numpy as np
import pytest

import vgrad


@pytest.fixture()
def small_data(digits):
    (x_train, y_train), (x_test, y_test) = digits
    return (x_train[:256], y_train[:256]), (x_test[:64], y_test[:64])


def by_hand_scores(model, x, y):
    """Cross-entropy and accuracy of a one-hidden-layer ReLU build_mlp model, in NumPy float64."""
    dense, logits_layer = model.get_layer("dense_1"), model.get_layer("logits")
    hidden = np.maximum(x @ np.float64(dense.kernel.numpy()) + np.float64(dense.bias.numpy()), 0.0)
    logits = hidden @ np.float64(logits_layer.kernel.numpy()) + np.float64(logits_layer.bias.numpy())
    shifted = logits - logits.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    loss = -np.mean(log_probabilities[np.arange(len(y)), y])
    return loss, np.mean(logits.argmax(axis=1) == y)


def test_a_shallow_net_learns_and_scores_are_recorded(small_data):
    model = vgrad.build_mlp(1, 32, seed=0)
    run = vgrad.train(model, small_data, optimizer=keras.optimizers.Adam(1e-2), epochs=5, label="shallow")
    assert set(run.history) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(run.history["loss"]) == 5
    assert run.final_loss < run.history["loss"][0]
    # The test scores against a forward pass by hand through the trained weights: they
    # must be the test set's (not the training set's), in the right order, after training.
    (x_train, y_train), (x_test, y_test) = small_data
    loss, accuracy = by_hand_scores(model, x_test.astype(np.float64), y_test)
    assert run.test_loss == pytest.approx(loss, rel=1e-4)
    assert run.test_accuracy == pytest.approx(accuracy)
    assert (run.test_loss, run.test_accuracy) != pytest.approx(by_hand_scores(model, x_train, y_train))
    assert run.test_accuracy == pytest.approx(run.history["val_accuracy"][-1])
    assert str(run).startswith("shallow") and "test accuracy" in str(run)
    assert not run.diverged


def test_numpy_integers_are_accepted(small_data):
    (x_train, y_train), test = small_data
    run = vgrad.train(vgrad.build_mlp(1, 4), ((x_train[:64], y_train[:64]), test), optimizer="sgd",
                      epochs=np.int64(2), batch_size=np.int32(32))
    assert len(run.history["loss"]) == 2


def test_divergence_is_reported_not_raised(small_data):
    init = keras.initializers.RandomNormal(stddev=10.0)
    # Linear units cannot die, so the huge first step must overflow the weights.
    model = vgrad.build_mlp(8, 32, activation="linear", kernel_initializer=init, seed=0)
    run = vgrad.train(model, small_data, optimizer=keras.optimizers.SGD(10.0), epochs=2)
    assert run.diverged and not math.isfinite(run.final_loss)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"data": ([1, 2],)}, TypeError, "data must be"), ({"epochs": 0}, ValueError, "epochs"),
     ({"batch_size": 1.5}, TypeError, "batch_size must be an int"),
     ({"epochs": "3"}, TypeError, "epochs must be an int"), ({"epochs": True}, TypeError, "epochs")],
)
def test_bad_arguments(small_data, kwargs, error, match):
    arguments = {"data": small_data, "optimizer": "sgd", **kwargs}
    with pytest.raises(error, match=match):
        vgrad.train(vgrad.build_mlp(1, 4, seed=0), **arguments)
