"""The variance of the weights an initializer draws, as the samples really have it."""

from __future__ import annotations

import math

import numpy as np

import keras

from vgrad._checks import check_count
from vgrad.models import StandardUniform

#: Variance of a standard normal truncated to [-2, 2], as Keras's truncated normals are.
TRUNCATED_NORMAL_VARIANCE = 1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(
    math.sqrt(2.0)
)
SUPPORTED_INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "standard_uniform", "orthogonal", "zeros", "RandomNormal(stddev=...)",
    "RandomUniform(minval=-a, maxval=a)", "TruncatedNormal(stddev=...)",
)


def initializer_variance(kernel_initializer, fan_in, fan_out):
    """Variance of one entry of a ``(fan_in, fan_out)`` kernel drawn by an initializer.

    The variance the samples really have: Keras's variance-scaling "normal" initializers
    draw a normal truncated at two standard deviations whose ``stddev`` Keras divides by
    0.8796 so that the variance is exactly ``scale / n``; ``TruncatedNormal(stddev=s)``
    does not, and has variance ``0.7737 s**2``. ``Orthogonal(gain)`` has
    ``gain**2 / max(fan_in, fan_out)``.

    Parameters
    ----------
    kernel_initializer : str, dict or keras.initializers.Initializer
        One of ``SUPPORTED_INITIALIZERS``; "standard_uniform" is
        :class:`vgrad.models.StandardUniform`.
    fan_in, fan_out : int
        Kernel shape, at least 1 each.

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        For fans that are not ints >= 1, or an unknown or non-zero-mean initializer.
    """
    fan_in, fan_out = check_count("fan_in", fan_in), check_count("fan_out", fan_out)
    try:
        initializer = (
            StandardUniform()
            if kernel_initializer in ("standard_uniform", "StandardUniform")
            else keras.initializers.get(kernel_initializer)
        )
    except (ValueError, TypeError):
        initializer = None
    inits = keras.initializers
    if isinstance(initializer, inits.VarianceScaling):
        fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        # Keras divides the truncated normal's stddev by 0.8796 so that this holds for it too.
        return initializer.scale / max(1.0, fans[initializer.mode])
    if isinstance(initializer, inits.Orthogonal):
        return initializer.gain**2 / max(fan_in, fan_out)
    if isinstance(initializer, inits.Zeros) or (
        isinstance(initializer, inits.Constant) and np.all(np.asarray(initializer.value) == 0)
    ):
        return 0.0
    if isinstance(initializer, inits.RandomNormal) and initializer.mean == 0:
        return float(initializer.stddev) ** 2
    if isinstance(initializer, inits.TruncatedNormal) and initializer.mean == 0:
        return TRUNCATED_NORMAL_VARIANCE * float(initializer.stddev) ** 2
    if isinstance(initializer, inits.RandomUniform) and initializer.minval == -initializer.maxval:
        return (initializer.maxval - initializer.minval) ** 2 / 12.0
    raise ValueError(
        f"kernel_initializer={kernel_initializer!r} is not a zero-mean initializer with a known "
        f"variance; accepted: {', '.join(SUPPORTED_INITIALIZERS)}"
    )
