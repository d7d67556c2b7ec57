"""Checks and conversion of a ``(model, x, y)`` batch, shared by every probe.

:func:`check_features` checks and converts ``x`` for any model; :func:`check_batch`
and :func:`default_loss` are the older class-label-only checks that the phase diagram
and the recurrent probes still use (``vgrad.measure`` resolves the loss itself, see
``vgrad._losses``).
"""

from __future__ import annotations

import numpy as np

import keras

from vgrad._checks import check_array, check_model, check_same_length


def kernel_layers(model):
    """Return ``[(layer name, kernel variable)]`` in the model's layer order.

    Dense and convolution layers contribute ``layer.kernel``; recurrent layers the
    input kernel of their cell. Nested models are searched recursively.
    """
    check_model(model)
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


def model_inputs(model):
    """The model's symbolic inputs, or ``None`` while it has none (unbuilt, subclassed)."""
    try:
        return model.inputs or None
    except (AttributeError, ValueError):  # "Sequential model ... has no defined inputs yet"
        return None


def spurious_axes(model, x):
    """Leading ``None`` axes of the declared input that ``x`` does not have.

    Keras 2 wrote ``batch_input_shape`` into the first layer of a Sequential model;
    Keras 3 reads it as ``input_shape`` and declares one axis too many, ``(None, None, 2)``
    for ``(None, 2)``. Such a model still runs on ``x`` of shape ``(num_samples, 2)``.
    """
    inputs = model_inputs(model)
    if not inputs:
        return 0
    expected, extra = tuple(inputs[0].shape[1:]), 0
    while len(expected) - extra > x.ndim - 1 and expected[extra] is None:
        extra += 1
    return extra


def _input_dtype(model, x):
    inputs = model_inputs(model)
    if inputs:
        dtype = np.dtype(keras.backend.standardize_dtype(inputs[0].dtype))
        return dtype if np.issubdtype(dtype, np.integer) else np.dtype(np.float32)
    return np.dtype(np.int32) if np.issubdtype(x.dtype, np.integer) else np.dtype(np.float32)


def _input_embedding(model):
    """The ``Embedding`` layer that reads the model's input directly, or ``None``."""
    layers = getattr(model, "layers", None) or []
    if isinstance(model, keras.Sequential):
        return layers[0] if layers and isinstance(layers[0], keras.layers.Embedding) else None
    inputs = model_inputs(model) or []
    for layer in layers:
        if isinstance(layer, keras.layers.Embedding):
            try:
                tensor = layer.input
            except (AttributeError, ValueError):  # shared or not called on a symbolic input
                continue
            if any(tensor is i for i in inputs):
                return layer
    return None


def _check_token_ids(model, x):
    """Integer ``x`` must index the rows ``0 .. input_dim - 1`` of an ``Embedding`` that
    reads the input directly (a lookup layer in between maps ids itself)."""
    embedding = _input_embedding(model)
    if embedding is not None and (x.min() < 0 or x.max() >= embedding.input_dim):
        raise ValueError(f"x holds token ids from {x.min()} to {x.max()}, but the Embedding "
                         f"layer {embedding.name!r} of model {model.name!r} accepts 0 to "
                         f"{embedding.input_dim - 1} (input_dim={embedding.input_dim})")


def first_batch(data):
    """``(x, y)`` of the first batch of a ``tf.data.Dataset`` or ``keras.utils.PyDataset``
    that yields ``(x, y)`` or ``(x, y, sample_weight)``; ``None`` for anything else.

    Raises
    ------
    ValueError
        If the dataset is empty or its batches hold no targets.
    """
    import tensorflow as tf

    if isinstance(data, tf.data.Dataset):
        element = next(iter(data.take(1)), None)
    elif isinstance(data, keras.utils.PyDataset):
        element = data[0] if len(data) else None
    else:
        return None
    if element is None:
        raise ValueError("x is an empty dataset; diagnose needs one batch (x, y) from it")
    if not isinstance(element, (tuple, list)) or len(element) < 2:
        raise ValueError("x is a dataset whose batches hold no targets; diagnose needs "
                         "batches (x, y) or (x, y, sample_weight), or pass x and y")
    return tuple(np.asarray(part) for part in element[:2])


def check_features(model, x):
    """Return ``x`` as an array of the model's input dtype after checking it.

    ``x`` must be numeric, finite and non-empty, with the per-example shape of the
    model's input where the model declares one (``None`` dimensions match anything).
    Integer inputs (token ids for an ``Embedding``) stay integers; all else is float32.
    """
    check_model(model)
    inputs = model_inputs(model)
    if inputs and len(inputs) > 1:
        raise ValueError(f"model {model.name!r} has {len(inputs)} inputs; x must be one array, "
                         "so vgrad measures single-input models (GradientMonitor watches any "
                         "model's training)")
    outputs = getattr(model, "outputs", None) if inputs else None
    if outputs and len(outputs) > 1:
        raise ValueError(f"model {model.name!r} has {len(outputs)} outputs; vgrad measures "
                         "single-output models (GradientMonitor watches any model's training)")
    x = check_array("x", x)
    x = x.astype(_input_dtype(model, x), copy=False)
    if np.issubdtype(x.dtype, np.integer):
        _check_token_ids(model, x)
    if inputs:
        expected = tuple(inputs[0].shape[1 + spurious_axes(model, x):])
        got = x.shape[1:]
        if len(expected) != len(got) or any(e is not None and e != g for e, g in zip(expected, got)):
            raise ValueError(
                f"x has per-example shape {got} but model {model.name!r} expects {expected} "
                f"(feature count {expected[-1] if expected else None})"
            )
    return x


def build_on(model, x):
    """Build an unbuilt model (variables created on the first call) on one example of ``x``."""
    unbuilt_sequential = isinstance(model, keras.Sequential) and model_inputs(model) is None
    if not model.built or unbuilt_sequential:
        model(x[:1], training=False)


def _num_outputs(model):
    inputs = model_inputs(model)
    shape = model.outputs[0].shape if inputs and getattr(model, "outputs", None) else None
    return None if shape is None else shape[-1]


def check_batch(model, x, y, loss):
    """Return ``(x, y)`` as arrays after checking lengths, shapes and labels.

    Labels are checked against ``[0, num_classes)`` only for the default loss
    (``loss is None``), whose labels are class indices.
    """
    x = check_features(model, x)
    y = check_array("y", y)
    check_same_length(x, y)
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
