"""A short, reproducible training run of a classifier, with its curves and test score."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import keras

from vgrad._checks import check_count


@dataclass(frozen=True)
class TrainingRun:
    """What one call of :func:`train` measured.

    Attributes
    ----------
    label : str
        Name of the configuration, used in tables and legends.
    history : dict
        Keras ``History.history``: {"loss": [...], "accuracy": [...], "val_loss": [...],
        "val_accuracy": [...]}, one value per epoch.
    test_loss, test_accuracy : float
        Scores on the held-out set after the last epoch (``nan`` once the loss diverged).
    seconds : float
        Wall-clock time of ``fit``.
    """

    label: str
    history: dict = field(repr=False)
    test_loss: float
    test_accuracy: float
    seconds: float = field(repr=False, compare=False)

    @property
    def final_loss(self):
        """Training loss of the last epoch."""
        return self.history["loss"][-1]

    @property
    def diverged(self):
        """Whether the training loss became non-finite."""
        return not all(math.isfinite(value) for value in self.history["loss"])

    def __str__(self):
        return (
            f"{self.label:<28} loss {self.history['loss'][0]:8.3f} -> {self.final_loss:8.3f}   "
            f"test accuracy {self.test_accuracy:6.1%}"
        )


def train(model, data, *, optimizer, epochs=10, batch_size=64, label=None, callbacks=None):
    """Compile and fit ``model`` on ``data``, then score it on the test set.

    The loss is sparse categorical cross-entropy from logits; accuracy is tracked on
    the training batches and, as ``val_accuracy``, on the test set after each epoch.
    Nothing is printed (``verbose=0``); the returned run holds the curves.

    Parameters
    ----------
    model : keras.Model
        A classifier that outputs logits, e.g. from :func:`vgrad.build_mlp`.
    data : tuple
        ``((x_train, y_train), (x_test, y_test))`` as :func:`vgrad.load_digits` returns.
    optimizer : str or keras.optimizers.Optimizer
        A Keras optimizer identifier or instance (a fresh instance per run: optimizers
        keep state).
    epochs : int, default 10
        At least 1; numpy integers are accepted.
    batch_size : int, default 64
        At least 1.
    label : str, optional
        Name for tables and legends; defaults to the model's name.
    callbacks : list of keras.callbacks.Callback, optional
        Passed on to ``model.fit``, e.g. a :class:`vgrad.GradientMonitor`.

    Returns
    -------
    TrainingRun

    Raises
    ------
    TypeError
        If ``data`` is not two ``(x, y)`` pairs, or ``epochs`` or ``batch_size`` is not
        an integer.
    ValueError
        If ``epochs`` or ``batch_size`` is below 1.
    """
    try:
        (x_train, y_train), (x_test, y_test) = data
    except (TypeError, ValueError) as error:
        raise TypeError("data must be ((x_train, y_train), (x_test, y_test))") from error
    epochs, batch_size = check_count("epochs", epochs), check_count("batch_size", batch_size)
    model.compile(
        optimizer=optimizer,
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    start = time.perf_counter()
    history = model.fit(
        x_train, y_train, epochs=epochs, batch_size=batch_size,
        validation_data=(x_test, y_test), callbacks=callbacks, verbose=0,
    )
    seconds = time.perf_counter() - start
    curves = {key: [float(v) for v in values] for key, values in history.history.items()}
    test_loss, test_accuracy = (float(v) for v in model.evaluate(x_test, y_test, verbose=0))
    return TrainingRun(label or model.name, curves, test_loss, test_accuracy, seconds)
