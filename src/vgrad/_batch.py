"""Checks and conversion of a ``(model, x, y)`` batch, shared by every probe."""

from __future__ import annotations

import numpy as np

import keras


def kernel_layers(model):
    """Return ``[(layer name, kernel variable)]`` in the model's layer order.

    Dense and convolution layers contribute ``layer.kernel``; recurrent layers the
    input kernel of their cell. Nested models are searched recursively.
    """
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    found = []
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.extend(kernel_layers(layer))
            continue
        owner = layer if hasattr(layer, "kernel") else getattr(layer, "cell", None)
        kernel = getattr(owner, "kernel", None)
        if isinstance(kernel, keras.Variable) and kernel.trainable:
            found.append((layer.name, kernel))
    return found


def _num_outputs(model):
    shape = model.outputs[0].shape if getattr(model, "outputs", None) else None
    return None if shape is None else shape[-1]


def check_features(model, x):
    """Return ``x`` as a float32 array after checking it against ``model``'s input."""
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    try:
        x = np.asarray(x, dtype=np.float32)
    except (TypeError, ValueError) as error:
        raise TypeError(f"x must be a numeric array, got {type(x).__name__}") from error
    if x.ndim < 1 or x.shape[0] == 0:
        raise ValueError(f"x must hold at least one example; got shape {x.shape}")
    inputs = getattr(model, "inputs", None)
    if inputs:
        expected = tuple(inputs[0].shape[1:])
        got = x.shape[1:]
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(
                f"x has per-example shape {got} but model {model.name!r} expects {expected} "
                f"(feature count {expected[-1] if expected else None})"
            )
    return x


def check_batch(model, x, y, loss):
    """Return ``(x, y)`` as arrays after checking lengths, shapes and labels.

    Labels are checked against ``[0, num_classes)`` only for the default loss
    (``loss is None``), whose labels are class indices.
    """
    x = check_features(model, x)
    y = np.asarray(y)
    if y.ndim < 1 or len(y) != len(x):
        raise ValueError(
            f"x and y must have the same number of examples; got len(x)={len(x)}, "
            f"y shape {y.shape}"
        )
    if loss is None:
        if not np.issubdtype(y.dtype, np.integer):
            if not np.issubdtype(y.dtype, np.floating) or not np.all(np.mod(y, 1) == 0):
                raise TypeError(f"y must hold integer class labels, got dtype {y.dtype}")
        num_classes = _num_outputs(model)
        if num_classes is not None and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(
                f"y must hold labels in [0, {num_classes}) for model {model.name!r}; "
                f"got values from {y.min()} to {y.max()}"
            )
        y = y.astype(np.int32)
    elif not callable(loss):
        raise TypeError(f"loss must be None or a callable loss(y_true, y_pred), got {loss!r}")
    return x, y


def default_loss(loss):
    """The loss to use: ``loss`` itself, or cross-entropy from logits when ``None``."""
    if loss is None:
        return keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    return loss
