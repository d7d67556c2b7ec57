"""Depth sweep: measured and predicted gradient ratios, the data of a phase diagram."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from vgrad._batch import check_batch, default_loss
from vgrad._deprecated import renamed_names
from vgrad._forward import tapped_forward
from vgrad._checks import check_count, check_flag
from vgrad._sweep_checks import check_configs, check_depths, check_sweep_data
from vgrad._state import restoring_state
from vgrad.models import StandardUniform, build_mlp, mlp_layers
from vgrad.tables import format_table
from vgrad.theory import predicted_backprop_ratios

#: One net per regime: vanishing (sigmoid, tanh with the standard initialisation, ReLU
#: with Glorot), near the edge of chaos (tanh/Glorot, ReLU/He), BatchNorm's explosion at
#: initialisation (Yang et al. 2019) and its cure by skip connections.
DEPTH_SWEEP_CONFIGS = {
    "sigmoid / glorot": {"activation": "sigmoid", "kernel_initializer": "glorot_uniform"},
    "tanh / glorot": {"activation": "tanh", "kernel_initializer": "glorot_uniform"},
    "tanh / standard": {"activation": "tanh", "kernel_initializer": StandardUniform()},
    "relu / glorot": {"activation": "relu", "kernel_initializer": "glorot_uniform"},
    "relu / he": {"activation": "relu", "kernel_initializer": "he_normal"},
    "relu / he + batchnorm": {
        "activation": "relu", "kernel_initializer": "he_normal", "batch_norm": True,
    },
    "relu / he + batchnorm + residual": {
        "activation": "relu", "kernel_initializer": "he_normal", "batch_norm": True,
        "residual": True,
    },
}
DEFAULT_DEPTHS = (5, 10, 20, 30, 50)


@dataclass(frozen=True, repr=False)
class DepthSweep:
    """First-to-last back-propagated gradient ratios per configuration and depth.

    ``measured[i, j]`` is ``backprop_rms["dense_1"] / backprop_rms[f"dense_{d}"]``
    of configuration ``labels[i]`` at depth ``d = depths[j]``; ``predicted[i, j]`` is the
    same ratio from :func:`vgrad.predicted_backprop_ratios`. Below 1: vanishing toward
    the input; above 1: exploding.
    """

    labels: list
    depths: np.ndarray
    measured: np.ndarray
    predicted: np.ndarray
    width: int
    seed: int

    def to_dict(self):
        """``{label: {"depths": [...], "measured": [...], "predicted": [...]}}``."""
        return {
            label: {
                "depths": self.depths.tolist(),
                "measured": self.measured[row].tolist(),
                "predicted": self.predicted[row].tolist(),
            }
            for row, label in enumerate(self.labels)
        }

    def __repr__(self):
        rows = []
        for row, label in enumerate(self.labels):
            for column, depth in enumerate(self.depths):
                measured, predicted = self.measured[row, column], self.predicted[row, column]
                with np.errstate(divide="ignore", invalid="ignore"):
                    error = np.log10(measured / predicted)
                rows.append((label, int(depth), float(measured), float(predicted), float(error)))
        table = format_table(
            rows, ["configuration", "depth", "measured", "predicted", "log10(m/p)"],
            spec=["s", "d", ".3e", ".3e", "+.2f"],
        )
        return (f"DepthSweep(width={self.width}, seed={self.seed}): "
                f"RMS dLoss/dz at dense_1 / at dense_<depth>\n{table}")

    __str__ = __repr__

    def _repr_pretty_(self, printer, cycle):
        printer.text("DepthSweep(...)" if cycle else repr(self))


def _scaled(loss_fn, scale):
    def loss(y_true, logits):
        return scale * loss_fn(y_true, logits)

    return loss


def measured_ratio(model, x, y, *, predicted=None, loss=None):
    """``backprop_rms["dense_1"] / backprop_rms["dense_<depth>"]``, computed eagerly.

    The same training-mode pass as :func:`vgrad.backprop_rms` (BatchNorm statistics
    restored afterwards), run once without ``tf.function``: for a single pass a trace
    costs about five times the pass. Float32 squares of gradients underflow below
    about 1e-19, so the loss is multiplied by a power of two chosen from the
    ``predicted`` ratio, putting the first and last layers' gradients on either side of
    1 (the loss scaling of mixed-precision training, Micikevicius et al. 2018).
    Back-propagation is linear in the loss and a power of two scales exactly, so the
    ratio is unchanged.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`vgrad.build_mlp`.
    x : (num_samples, input_dim) array_like
    y : (num_samples,) array_like of int
    predicted : float, optional
        The ratio expected, e.g. from :func:`vgrad.predicted_backprop_ratios`.
    loss : callable, optional
        ``loss(y_true, logits)`` returning a scalar; default: cross-entropy from logits.

    Returns
    -------
    float
    """
    x, y = check_batch(model, x, y, loss)
    depth = len(mlp_layers(model))
    exponent = 0
    if predicted is not None and 0.0 < predicted < math.inf:
        exponent = int(np.clip(round(10.0 - 0.5 * math.log2(predicted)), -120, 120))
    loss_fn = _scaled(default_loss(loss), 2.0**exponent)
    save, restore = restoring_state(model)
    saved = save()
    try:
        with tf.GradientTape() as tape:
            outputs, taps = tapped_forward(model, tf.constant(x), training=True)
            loss_value = loss_fn(tf.constant(y), outputs)
        names = ("dense_1", f"dense_{depth}")
        gradients = tape.gradient(loss_value, [taps.pre_activations[name] for name in names])
    finally:
        restore(saved)
    first, last = (float(tf.sqrt(tf.reduce_mean(tf.square(g)))) for g in gradients)
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(np.float64(first) / last)


def depth_sweep(configs, depths, x, y, *, width=64, seed=0, verbose=False):
    """Measure and predict the first-to-last gradient ratio over depth, per configuration.

    Each configuration and depth builds a fresh :func:`vgrad.build_mlp` net, measures
    the ratio of :func:`vgrad.backprop_rms` at ``dense_1`` and ``dense_<depth>`` on
    ``(x, y)`` in training mode (see :func:`measured_ratio`) and sets it next to
    :func:`vgrad.predicted_backprop_ratios`. Building the nets takes most of the time.

    Parameters
    ----------
    configs : dict or None
        ``{label: build_mlp keyword arguments}``, without depth, width, seed, input_dim
        or num_classes; ``None`` for :data:`DEPTH_SWEEP_CONFIGS`.
    depths : sequence of int or None
        Numbers of hidden layers; ``None`` for ``(5, 10, 20, 30, 50)``.
    x : (num_samples, num_features) array_like
        Input batch, e.g. 256 standardised digits.
    y : (num_samples,) array_like of int
        Class labels.
    width : int, default 64
        Units per hidden layer.
    seed : int, default 0
        Seed of every net's initializers.
    verbose : bool, default False
        Print one progress line per configuration (label, depths, seconds).

    Returns
    -------
    DepthSweep
        ``labels``, ``depths``, ``measured`` and ``predicted`` (shape
        ``(len(labels), len(depths))``), ready for :func:`vgrad.plots.plot_phase_diagram`.

    Raises
    ------
    TypeError, ValueError
        For malformed ``configs``, ``depths`` or batch, or what :func:`vgrad.build_mlp`
        and :func:`vgrad.predicted_backprop_ratios` refuse.

    References
    ----------
    Schoenholz, S. S. et al. (2017). Deep information propagation. ICLR.

    Examples
    --------
    >>> sweep = depth_sweep(DEPTH_SWEEP_CONFIGS, (5, 10), x[:256], y[:256])  # doctest: +SKIP
    >>> sweep.measured.shape  # doctest: +SKIP
    (7, 2)
    """
    configs, depths = check_configs(configs, DEPTH_SWEEP_CONFIGS), check_depths(depths, DEFAULT_DEPTHS)
    x, y = check_sweep_data(x, y)
    width, verbose = check_count("width", width), check_flag("verbose", verbose)
    sizes = {"input_dim": x.shape[1], "num_classes": int(y.max()) + 1}
    measured = np.empty((len(configs), depths.size))
    predicted = np.empty_like(measured)
    for row, (label, config) in enumerate(configs.items()):
        start = time.perf_counter()
        for column, depth in enumerate(depths):
            model = build_mlp(int(depth), width, seed=seed, **sizes, **config)
            predicted[row, column] = predicted_backprop_ratios(model, x)["dense_1"]
            measured[row, column] = measured_ratio(model, x, y, predicted=predicted[row, column])
        if verbose:
            seconds = time.perf_counter() - start
            print(f"{label}: depths {', '.join(map(str, depths))} ({seconds:.1f} s)", flush=True)
    return DepthSweep(list(configs), depths, measured, predicted, int(width), seed)


__getattr__ = renamed_names(__name__, {"PHASE_CONFIGS": "DEPTH_SWEEP_CONFIGS"})
