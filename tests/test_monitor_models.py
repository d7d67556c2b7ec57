"""GradientMonitor on models it did not see built: a subclassed model whose variables
appear on the first batch, and models with their own ``train_step`` calling
``optimizer.apply`` or ``optimizer.apply_gradients``; each against a GradientTape."""

import math

import numpy as np
import pytest
import tensorflow as tf

import keras
import vgrad

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class Unbuilt(keras.Model):
    """Two Dense layers with seeded initialisers, built by the first call."""

    def __init__(self, update=None):
        super().__init__()
        self.update = update  # None: Keras's train_step; "apply" or "apply_gradients"
        self.hidden = keras.layers.Dense(
            8, activation="tanh", kernel_initializer=keras.initializers.GlorotUniform(1))
        self.logits = keras.layers.Dense(
            10, kernel_initializer=keras.initializers.GlorotUniform(2),
            bias_initializer=keras.initializers.RandomNormal(seed=3))

    def call(self, x):
        return self.logits(self.hidden(x))

    def train_step(self, data):
        if self.update is None:
            return super().train_step(data)
        x, y = data
        with tf.GradientTape() as tape:
            loss = LOSS(y, self(x, training=True))
        gradients = tape.gradient(loss, self.trainable_variables)
        if self.update == "apply":
            self.optimizer.apply(gradients, self.trainable_variables)
        else:
            self.optimizer.apply_gradients(zip(gradients, self.trainable_variables))
        return {"loss": loss}


def tape_norms_and_loss(x, y):
    """Gradient norms (by layer and weight) and loss of a fresh Unbuilt model on ``x``, ``y``."""
    model = Unbuilt()
    with tf.GradientTape() as tape:
        loss = LOSS(y, model(x, training=True))
    gradients = tape.gradient(loss, model.trainable_variables)
    return [float(np.linalg.norm(g.numpy())) for g in gradients], float(loss)


@pytest.mark.parametrize("update", [None, "apply", "apply_gradients"])
def test_model_built_on_its_first_batch_is_monitored(update, batch):
    x, y = batch
    expected, expected_loss = tape_norms_and_loss(x, y)
    model = Unbuilt(update)
    model.compile(keras.optimizers.SGD(0.1), LOSS)
    assert not model.trainable_variables  # nothing to hook before the first batch
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=len(x), epochs=2, shuffle=False, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0, 1]
    assert list(monitor.history) == [v.path for v in model.trainable_variables]
    first = [norms[0] for norms in monitor.history.values()]
    np.testing.assert_allclose(first, expected, rtol=1e-5)
    np.testing.assert_allclose(monitor.global_norm[0], math.hypot(*expected), rtol=1e-5)
    if update is None:  # Keras's train_step hands its loss to optimizer.scale_loss
        np.testing.assert_allclose(monitor.loss[0], expected_loss, rtol=1e-6)
    else:  # a train_step of one's own does not: the loss is unknown
        assert np.isnan(monitor.loss).all() and len(monitor.loss) == 2
    # A second fit continues on the now-built model.
    model.fit(x, y, batch_size=len(x), epochs=1, verbose=0, callbacks=[monitor])
    assert monitor.steps == [0, 1, 2]
    assert "apply" not in vars(model.optimizer)
