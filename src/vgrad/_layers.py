"""Every layer with trainable weights, in forward order, with its kind and main weight.

Nested models are entered (their layers keep their own names, as in
``model.summary()``); layers built from sublayers, such as ``MultiHeadAttention``
(``mha/query``, ``mha/key``, ``mha/value``, ``mha/attention_output``) or a user's
transformer-block layer, are listed sublayer by sublayer as ``outer/inner``.

Order: a functional or Sequential model's layers are in graph (forward) order; the
sublayers of a custom layer, and the layers of a subclassed model, in the order they
were created, since Keras keeps no record of the order ``call`` uses them in.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras


def _classes(*names):
    return tuple(getattr(keras.layers, name) for name in names if hasattr(keras.layers, name))


_DENSE = _classes("Dense", "EinsumDense")
_CONV = _classes("Conv1D", "Conv2D", "Conv3D", "Conv1DTranspose", "Conv2DTranspose",
                 "Conv3DTranspose", "DepthwiseConv1D", "DepthwiseConv2D", "SeparableConv1D",
                 "SeparableConv2D")
_NORMALIZATION = _classes("BatchNormalization", "LayerNormalization", "GroupNormalization",
                          "RMSNormalization")
ATTENTION_CLASSES = _classes("MultiHeadAttention", "GroupQueryAttention")
_KINDS = (("conv", _CONV), ("dense", _DENSE), ("embedding", _classes("Embedding")),
          ("normalization", _NORMALIZATION), ("recurrent", (keras.layers.RNN,)))


@dataclass(frozen=True)
class LayerSpec:
    """One weight layer: ``main`` is the variable whose gradient stands for the layer."""

    name: str
    class_name: str
    kind: str
    main: object
    activation: str | None
    variables: tuple


def _sublayers(layer):
    # Keras keeps a layer's tracked sublayers in creation order; there is no public accessor.
    flatten = getattr(layer, "_flatten_layers", None)
    return list(flatten(include_self=False, recursive=False)) if flatten else []


def layer_kind(layer):
    """The kind of a leaf layer by its class: "conv", "dense", "embedding",
    "normalization", "recurrent" or "other"."""
    return next((kind for kind, classes in _KINDS if isinstance(layer, classes)), "other")


def _main_variable(layer, kind, variables):
    if kind == "embedding":
        return layer.embeddings
    if kind == "normalization":
        for candidate in (getattr(layer, "gamma", None), getattr(layer, "beta", None)):
            if any(candidate is v for v in variables):
                return candidate
        return variables[0]
    if kind == "recurrent":
        return layer.cell.kernel
    kernel = getattr(layer, "kernel", None)
    return kernel if any(kernel is v for v in variables) else variables[0]


def _activation(layer, kind):
    if kind not in ("dense", "conv", "attention"):
        return None
    function = getattr(layer, "activation", None)
    return None if function is None else getattr(function, "__name__", str(function))


def _walk(layer, name, inherited_kind, found):
    variables = tuple(layer.trainable_variables)
    if not variables:
        return
    if isinstance(layer, keras.Model):
        # A model nested in a model keeps its layers' own names (as model.summary() does);
        # one inside a custom layer is prefixed like the layer's other sublayers.
        prefix = f"{name.rsplit('/', 1)[0]}/" if "/" in name else ""
        for sublayer in layer.layers:
            _walk(sublayer, f"{prefix}{sublayer.name}", inherited_kind, found)
        return
    kind = layer_kind(layer)
    if kind == "other" or isinstance(layer, ATTENTION_CLASSES):
        sublayers = [s for s in _sublayers(layer) if s.trainable_variables]
        if sublayers:
            inner_kind = "attention" if isinstance(layer, ATTENTION_CLASSES) else inherited_kind
            for sublayer in sublayers:
                _walk(sublayer, f"{name}/{sublayer.name}", inner_kind, found)
            covered = {id(v) for s in sublayers for v in s.trainable_variables}
            variables = tuple(v for v in variables if id(v) not in covered)
            if not variables:
                return
    kind = inherited_kind if inherited_kind and kind == "dense" else kind
    main = _main_variable(layer, kind, variables)
    found.append(LayerSpec(name, type(layer).__name__, kind, main, _activation(layer, kind), variables))


def weight_layers(model):
    """Return ``[LayerSpec]`` for every layer of ``model`` with trainable weights, input side first."""
    found = []
    for layer in model.layers:
        _walk(layer, layer.name, None, found)
    return found
