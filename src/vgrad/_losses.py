"""Which loss a measurement uses, and why: given, compiled, or inferred from the output and ``y``.

The inference follows what Keras users write: integer labels with softmax (or logits)
outputs take sparse categorical cross-entropy, one-hot rows categorical cross-entropy,
a single sigmoid unit with labels in {0, 1} binary cross-entropy, and an output without
a squashing activation with numeric targets the mean squared error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np

import keras

_NAMES = {
    "sparse": "sparse categorical cross-entropy",
    "categorical": "categorical cross-entropy (one-hot targets)",
    "binary": "binary cross-entropy",
    "mse": "mean squared error",
}
_IDENTIFIERS = {
    "sparse_categorical_crossentropy": "sparse",
    "categorical_crossentropy": "categorical",
    "binary_crossentropy": "binary",
    "mean_squared_error": "mse",
    "mse": "mse",
}
_CLASSES = {
    keras.losses.SparseCategoricalCrossentropy: "sparse",
    keras.losses.CategoricalCrossentropy: "categorical",
    keras.losses.BinaryCrossentropy: "binary",
    keras.losses.MeanSquaredError: "mse",
}
_ACCEPTED = ("None, a Keras loss identifier such as 'mse' or 'binary_crossentropy', "
             "or a callable loss(y_true, y_pred)")


@dataclass(frozen=True)
class Output:
    """The model's output: per-example ``shape`` (last axis = units) and the output layer."""

    shape: tuple
    activation: str
    layer_name: str

    @property
    def units(self):
        return self.shape[-1] if self.shape else 1

    def describe(self):
        plural = "unit" if self.units == 1 else "units"
        return f"{self.units} {self.activation} {plural} (layer {self.layer_name!r})"


@dataclass(frozen=True)
class ResolvedLoss:
    """A loss ready to measure: ``function(y_true, y_pred)``, its name, why, and ``y`` converted.

    ``key`` identifies the computation: two resolved losses with the same key compute
    the same thing, so they share one compiled function.
    """

    function: object
    name: str
    source: str
    key: tuple
    y: np.ndarray


def own_activation_name(layer):
    """Name of a layer's own activation (``"linear"`` when it has none)."""
    if isinstance(layer, keras.layers.Softmax):
        return "softmax"
    function = getattr(layer, "activation", None)
    if function is None:
        return "linear"
    return function if isinstance(function, str) else getattr(function, "__name__", "linear")


def output_layer(model):
    """The layer that computes the model's output (nested models are entered)."""
    layer = model
    while isinstance(layer, keras.Model) and layer.layers:
        layer = layer.layers[-1]
    return layer


def _kind_of(loss):
    """``(kind, from_logits)`` of a known Keras loss, ``(None, False)`` for any other."""
    if isinstance(loss, str):
        return _IDENTIFIERS.get(loss), False
    if isinstance(loss, keras.losses.Loss):
        kind = next((kind for cls, kind in _CLASSES.items() if isinstance(loss, cls)), None)
        return kind, bool(loss.get_config().get("from_logits", False))
    return _IDENTIFIERS.get(getattr(loss, "__name__", None)), False


def _function_and_key(loss):
    if isinstance(loss, str):
        try:
            function = keras.losses.get(loss)
        except (ValueError, TypeError):
            function = None
        if not callable(function):
            raise ValueError(f"loss {loss!r} is not a Keras loss identifier; loss must be {_ACCEPTED}")
        return function, ("identifier", loss)
    if isinstance(loss, keras.losses.Loss) and type(loss).__module__.startswith("keras."):
        # Built-in losses are fully described by their config: a fresh but equal object
        # reuses the compiled function instead of compiling (and keeping) a new one.
        config = json.dumps(loss.get_config(), sort_keys=True, default=str)
        return loss, ("config", type(loss).__name__, config)
    if callable(loss):
        return loss, ("object", id(loss))
    raise TypeError(f"loss must be {_ACCEPTED}; got {loss!r}")


def _name(loss, kind, from_logits):
    if kind is None:
        return getattr(loss, "name", None) or getattr(loss, "__name__", None) or type(loss).__name__
    return _NAMES[kind] + (" from logits" if from_logits else "")


def _integral(y):
    return np.issubdtype(y.dtype, np.integer) or (
        np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0)
    )


def _labels(y, output):
    """Class indices in ``[0, units)``, shaped like the output without its last axis."""
    if y.shape[1:] == tuple(output.shape[:-1]) + (1,):
        y = y.reshape(y.shape[:-1])
    if not _integral(y) or y.shape[1:] != tuple(output.shape[:-1]):
        raise TypeError(
            f"y must hold integer class labels in [0, {output.units}) of shape (num_samples, "
            f"{', '.join(map(str, output.shape[:-1]))}) for {output.describe()}; got dtype {y.dtype}, "
            f"shape {y.shape} (one-hot targets need shape (num_samples, {output.units}))"
        )
    if y.min() < 0 or y.max() >= output.units:
        raise ValueError(
            f"y must hold labels in [0, {output.units}) for {output.describe()}; "
            f"got values from {y.min()} to {y.max()}"
        )
    return y.astype(np.int32)


def _fits(shape, got):
    """Whether a per-example shape ``got`` fits ``shape`` (``None`` matches any size)."""
    return len(got) == len(shape) and all(e is None or e == g for e, g in zip(shape, got))


def _targets(y, output, what):
    """Float targets with the output's per-example shape (a missing last axis of 1 is added)."""
    shape = tuple(output.shape)
    if y.shape[1:] == shape[:-1] and shape[-1:] == (1,):
        y = y.reshape(*y.shape, 1)
    if not _fits(shape, y.shape[1:]):
        raise ValueError(f"y must hold {what} of per-example shape {shape} for {output.describe()}; "
                         f"got shape {y.shape}")
    return y.astype(np.float32)


def _probabilities(y, output, what):
    y = _targets(y, output, what)
    if y.min() < 0 or y.max() > 1:
        raise ValueError(f"y must hold {what} in [0, 1] for binary cross-entropy; "
                         f"got values from {y.min()} to {y.max()}")
    return y


def _one_hot_rows(y, output):
    return (y.ndim >= 2 and output.units > 1 and _fits(output.shape, y.shape[1:])
            and np.isin(y, (0, 1)).all() and np.all(y.sum(axis=-1) == 1))


def convert_targets(kind, y, output):
    """``y`` checked and converted for a loss of ``kind`` (``None``: passed as it is)."""
    if kind == "sparse":
        return _labels(y, output)
    if kind == "categorical":
        return _targets(y, output, "one-hot targets")
    if kind == "binary":
        return _probabilities(y, output, "labels")
    if kind == "mse":
        return _targets(y, output, "numeric targets")
    return y.astype(np.int32 if np.issubdtype(y.dtype, np.integer) else np.float32)


def _infer(y, output):
    """``(kind, from_logits, kind of y)`` that fit the output and ``y``, or raise."""
    activation, units = output.activation, output.units
    logits = activation != "softmax"
    zero_one = np.isin(y, (0, 1)).all()
    if _one_hot_rows(y, output) and activation in ("softmax", "linear"):
        return "categorical", logits, "one-hot targets"
    if activation == "sigmoid":
        if units == 1 or _fits(output.shape, y.shape[1:]):
            return "binary", False, "0/1 labels" if zero_one else "targets in [0, 1]"
    if units == 1 and activation == "linear" and np.issubdtype(y.dtype, np.integer) and zero_one:
        return "binary", True, "integer 0/1 labels"
    if units > 1 and activation in ("softmax", "linear") and _integral(y) and y.shape[1:] in (
        tuple(output.shape[:-1]), tuple(output.shape[:-1]) + (1,)
    ):
        return "sparse", logits, "integer labels"
    same_shape = _fits(output.shape, y.shape[1:]) or (
        units == 1 and _fits(output.shape[:-1], y.shape[1:])
    )
    if activation != "softmax" and same_shape:
        return "mse", False, "numeric targets"
    if units > 1 and y.ndim == 1:
        return "sparse", logits, "integer labels"  # let _labels name what is wrong
    raise ValueError(
        f"cannot infer a loss for {output.describe()} and y of shape {y.shape}, dtype {y.dtype}: "
        "expected integer class labels or one-hot rows (softmax or logits), 0/1 labels (one "
        "sigmoid unit) or numeric targets (linear output); or pass loss= or compile the model"
    )


def resolve_loss(model, y, loss, output):
    """The :class:`ResolvedLoss` for ``model``, ``y`` (checked, finite) and ``loss=``."""
    compiled = getattr(model, "loss", None) if getattr(model, "compiled", False) else None
    if isinstance(compiled, (list, tuple, dict)) and len(compiled) == 1:
        # One output's loss in a list or a dict keyed by the output's name.
        compiled = next(iter(compiled.values() if isinstance(compiled, dict) else compiled))
    if isinstance(compiled, (list, tuple, dict)) and loss is None:
        raise ValueError(f"model {model.name!r} is compiled with {len(compiled)} losses, one "
                         "per output; vgrad measures single-output models: pass loss= to "
                         "measure with one loss")
    if loss is not None or compiled is not None:
        given = loss if loss is not None else compiled
        function, key = _function_and_key(given)
        kind, from_logits = _kind_of(given)
        source = "given as loss=" if loss is not None else "the model's compiled loss"
        return ResolvedLoss(function, _name(given, kind, from_logits), source,
                            ("given" if loss is not None else "compiled", *key),
                            convert_targets(kind, y, output))
    kind, from_logits, what = _infer(y, output)
    function = {
        "sparse": lambda: keras.losses.SparseCategoricalCrossentropy(from_logits=from_logits),
        "categorical": lambda: keras.losses.CategoricalCrossentropy(from_logits=from_logits),
        "binary": lambda: keras.losses.BinaryCrossentropy(from_logits=from_logits),
        "mse": keras.losses.MeanSquaredError,
    }[kind]()
    return ResolvedLoss(function, _name(function, kind, from_logits),
                        f"inferred: {output.describe()} and {what}",
                        ("inferred", kind, from_logits), convert_targets(kind, y, output))
