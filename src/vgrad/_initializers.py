"""How a model's weights were initialised: which layers were drawn at a large fixed
scale (where "a smaller initial scale" is advice worth giving) and whether ReLU layers
already use He's initialiser (where "use He" is not)."""

from __future__ import annotations

import math

import keras

#: A fixed-scale initialiser counts as large above this multiple of Glorot's variance.
LARGE_INIT = 4.0
_WEIGHTS = (("kernel_initializer", "kernel"), ("depthwise_initializer", "depthwise_kernel"),
            ("pointwise_initializer", "pointwise_kernel"),
            ("embeddings_initializer", "embeddings"))


def initialized_weights(layer):
    """``[(initializer, variable)]`` for ``layer``'s kernels and embeddings (a recurrent
    layer's input kernel), once the layer has weights."""
    owner = getattr(layer, "cell", None) or layer
    found = []
    for initializer_name, weight_name in _WEIGHTS:
        initializer = getattr(owner, initializer_name, None)
        variable = getattr(owner, weight_name, None)
        if initializer is not None and variable is not None and layer.weights:
            found.append((initializer, variable))
    return found


def _fans(shape):
    """``(fan_in, fan_out)`` of a weight of ``shape`` as Keras's initialisers compute them
    (convolutions: receptive field times channels), or ``None`` below two dimensions."""
    if len(shape) < 2:
        return None
    receptive = math.prod(shape[:-2]) if len(shape) > 2 else 1
    return receptive * shape[-2], receptive * shape[-1]


def _variance(initializer, shape):
    """The variance of a fixed-scale ``initializer`` for a weight of ``shape``, or ``None``
    for any other (Glorot, He, LeCun and ``VarianceScaling`` follow the layer's fans)."""
    fans = _fans(shape)
    if fans is None:
        return None
    if isinstance(initializer, (keras.initializers.RandomNormal,
                                keras.initializers.TruncatedNormal)):
        return float(initializer.stddev) ** 2
    if isinstance(initializer, keras.initializers.RandomUniform):
        return max(abs(float(initializer.minval)), abs(float(initializer.maxval))) ** 2 / 3
    if isinstance(initializer, keras.initializers.Constant):
        value = getattr(initializer, "value", None)
        return float(value) ** 2 if isinstance(value, (int, float)) else None
    if isinstance(initializer, keras.initializers.Ones):
        return 1.0
    return None


def large(initializer, variable):
    """Whether ``initializer`` draws ``variable`` with over ``LARGE_INIT`` times the
    variance Glorot's initialiser would, ``2 / (fan_in + fan_out)``."""
    shape = tuple(variable.shape)
    variance, fans = _variance(initializer, shape), _fans(shape)
    return variance is not None and variance > LARGE_INIT * 2.0 / sum(fans)


def is_he(initializer):
    """Whether ``initializer`` is He's (``VarianceScaling(2, "fan_in")``, normal or uniform)."""
    return (isinstance(initializer, keras.initializers.VarianceScaling)
            and initializer.scale == 2.0 and initializer.mode == "fan_in")
