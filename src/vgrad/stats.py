"""Activation statistics per hidden layer: mean, spread, saturation, dead units."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from vgrad._backend import require_tensorflow
from vgrad._batch import build_on, check_features
from vgrad._checks import check_flag
from vgrad._cache import cached, compile_probe
from vgrad._forward import check_replayable, tapped_forward
from vgrad._state import restoring_state
from vgrad.tables import LayerDict, format_number

#: |tanh| above this is in the flat tail, where tanh' = 1 - a**2 < 0.06 (6% of its peak).
TANH_SATURATION = 0.97
_SATURATING = ("sigmoid", "tanh", "hard_sigmoid", "hard_tanh", "softsign")
_DYING = ("relu", "relu6")


def activation_kind(function):
    """Lower-case name of an activation function or layer class (``"relu"``, ``"tanh"`` ...)."""
    name = function if isinstance(function, str) else getattr(function, "__name__", "")
    return name.lower()


@dataclass(frozen=True)
class ActivationStats:
    """Statistics of one hidden layer's activations over a batch.

    Attributes
    ----------
    activation : str
        Name of the activation function.
    mean, std : float
        Mean and standard deviation over the batch and the units.
    saturated_fraction : float
        Share of outputs in a flat tail (``nan`` for non-saturating functions): tanh
        (and softsign, hard tanh) with ``|a| > 0.97``; sigmoid (and hard sigmoid) with
        ``|2a - 1| > 0.97``, i.e. ``a < 0.015`` or ``a > 0.985``. In both tails the
        derivative is below 6% of its peak.
    dead_fraction : float
        Share of units (ReLU, ReLU6) that output 0 on every example of the batch
        (``nan`` for other functions).
    """

    activation: str
    mean: float
    std: float
    saturated_fraction: float
    dead_fraction: float

    def format_line(self):
        """One fixed-width line: ``(sigmoid) mean +0.50, std 0.21, saturated 12.3%, dead n/a``."""
        def percent(value):
            return "   n/a" if np.isnan(value) else f"{100 * value:5.1f}%"

        return (
            f"({self.activation:>8}) mean {format_number(self.mean, '+.3f')}, "
            f"std {format_number(self.std, '.3f')}, saturated {percent(self.saturated_fraction)}, "
            f"dead {percent(self.dead_fraction)}"
        )


def layer_statistics(activations, function):
    """``[mean, std, saturated fraction, dead fraction]`` of one layer's activations (a tensor)."""
    kind = activation_kind(function)
    # float32 whatever the layer computes in (mixed precision gives float16)
    a = tf.cast(tf.reshape(activations, (tf.shape(activations)[0], -1)), tf.float32)
    nan = tf.constant(np.nan, tf.float32)
    if kind in ("sigmoid", "hard_sigmoid"):
        saturated = tf.reduce_mean(tf.cast(tf.abs(2.0 * a - 1.0) > TANH_SATURATION, tf.float32))
    elif kind in _SATURATING:
        saturated = tf.reduce_mean(tf.cast(tf.abs(a) > TANH_SATURATION, tf.float32))
    else:
        saturated = nan
    if kind in _DYING:
        dead = tf.reduce_mean(tf.cast(tf.reduce_all(a <= 0.0, axis=0), tf.float32))
    else:
        dead = nan
    return tf.stack([tf.reduce_mean(a), tf.math.reduce_std(a), saturated, dead])


def _stats_probe(model, training):
    check_replayable(model)
    save, restore = restoring_state(model)
    names = []  # filled when the function is traced

    def fn(x):
        saved = save()
        _, taps = tapped_forward(model, x, training=training)
        restore(saved)
        names[:] = [(name, activation_kind(taps.functions[name])) for name in taps.activations]
        if not names:
            return tf.zeros((0, 4))
        return tf.stack(
            [layer_statistics(taps.activations[n], taps.functions[n]) for n in taps.activations]
        )

    return names, compile_probe(fn)


def activation_stats(model, x, *, training=True):
    """Mean, spread, saturation and dead units of each hidden layer's activations.

    Parameters
    ----------
    model : keras.Model
        A Sequential or functional model (see :func:`vgrad.backprop_rms`).
    x : (num_samples, ...) array_like
        Input batch.
    training : bool, default True
        Run the model as in a training step (BatchNorm on batch statistics).

    Returns
    -------
    LayerDict
        {hidden layer name: ActivationStats}, input side first; it prints one
        fixed-width line per layer.

    Raises
    ------
    TypeError, ValueError
        For an empty batch, a wrong feature count, or a model without hidden activations.
    """
    require_tensorflow("activation_stats")
    x = check_features(model, x)
    training = check_flag("training", training)
    build_on(model, x)
    names, fn = cached(model, ("stats", training), lambda: _stats_probe(model, training))
    values = fn(tf.constant(x)).numpy().astype(np.float64)
    if not names:
        raise ValueError(f"model {model.name!r} has no hidden activation to measure")
    return LayerDict(
        (name, ActivationStats(kind, *row.tolist())) for (name, kind), row in zip(names, values)
    )
