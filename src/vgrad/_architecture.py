"""What a model is made of, so that advice names only what is (or is not) there.

Read from the layers themselves, nested models included: the hidden activations
(Dense/Conv ``activation=``, Activation and ReLU-style layers; not the output layer's),
normalisation layers, residual merges (``Add`` layers and ``x + y`` in a functional
graph), recurrent and attention layers, and the optimizer family.
"""

from __future__ import annotations

from dataclasses import dataclass

import keras
from vgrad._initializers import initialized_weights, is_he, large
from vgrad._layers import ATTENTION_CLASSES, layer_kind

#: Optimizers that scale each step by a running gradient statistic (their update
#: ratio stays near the learning rate whatever the gradient's size).
ADAPTIVE_OPTIMIZERS = frozenset({
    "Adam", "AdamW", "Adamax", "Nadam", "RMSprop", "Adagrad", "Adadelta", "Lion", "Lamb",
    "Adafactor", "Ftrl", "Muon",
})
_RECURRENT = ("SimpleRNN", "LSTM", "GRU", "RNN", "ConvLSTM1D", "ConvLSTM2D", "ConvLSTM3D")
_ATTENTION = ("MultiHeadAttention", "GroupedQueryAttention", "Attention", "AdditiveAttention")
_BATCH_NORM = ("BatchNormalization", "SyncBatchNormalization")
_OTHER_NORM = ("LayerNormalization", "GroupNormalization", "UnitNormalization",
               "RMSNormalization", "SpectralNormalization")
_NOISY = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "SpatialDropout3D",
          "AlphaDropout", "GaussianDropout", "GaussianNoise")
_ACTIVATION_CLASSES = {"ReLU": "relu", "LeakyReLU": "leaky_relu", "ELU": "elu",
                       "PReLU": "prelu", "Softmax": "softmax"}


@dataclass(frozen=True)
class Architecture:
    """The parts of a model that advice depends on.

    Attributes
    ----------
    activations : frozenset of str
        Hidden activation names (``"relu"``, ``"sigmoid"``, ``"gelu"`` ...), output layer excluded.
    batch_norm, layer_norm, residual, attention : bool
    recurrent : frozenset of str
        Class names of recurrent layers (``"SimpleRNN"``, ``"LSTM"``, ``"GRU"``).
    optimizer : str or None
        Class name of the compiled optimizer, a ``LossScaleOptimizer`` unwrapped.
    large_init : frozenset of str
        Layers whose kernels or embeddings were drawn with a variance above
        ``LARGE_INIT`` times Glorot's for their shape by a fixed-scale initialiser
        (``RandomNormal(stddev=1)`` on a 64-unit layer); Glorot, He and LeCun, which
        follow the layer's fans, never count.
    he_init : bool
        Every kernel initialiser of a hidden ReLU-family layer is He's (variance
        ``2 / fan_in``), and there is at least one such layer.
    noisy : frozenset of str
        Class names of layers that act only in training (Dropout and its variants,
        GaussianNoise): a training-mode loss is higher than the model's own.
    """

    activations: frozenset = frozenset()
    batch_norm: bool = False
    layer_norm: bool = False
    residual: bool = False
    attention: bool = False
    recurrent: frozenset = frozenset()
    optimizer: str | None = None
    large_init: frozenset = frozenset()
    he_init: bool = False
    noisy: frozenset = frozenset()

    @property
    def normalized(self):
        """Whether the model already normalises (BatchNorm, or LayerNorm as in a transformer)."""
        return self.batch_norm or self.layer_norm

    @property
    def simple_rnn(self):
        return "SimpleRNN" in self.recurrent

    @property
    def adaptive(self):
        """Whether the optimizer is of the Adam family."""
        return self.optimizer in ADAPTIVE_OPTIMIZERS


def leaf_layers(model):
    """Every layer of ``model`` in layer order, nested models flattened into their layers."""
    found = []
    for layer in getattr(model, "layers", ()):
        found.extend(leaf_layers(layer) if isinstance(layer, keras.Model) else [layer])
    return found


def _operations(model):
    found = []
    for operation in getattr(model, "operations", ()):
        found.append(operation)
        if isinstance(operation, keras.Model):
            found.extend(_operations(operation))
    return found


def hidden_activation_name(layer):
    """The hidden activation a layer applies, lower case, or ``None`` (linear or none)."""
    name = type(layer).__name__
    if name in _ACTIVATION_CLASSES:
        return _ACTIVATION_CLASSES[name]
    if name in _RECURRENT or hasattr(layer, "cell"):
        return None
    function = getattr(layer, "activation", None)
    if not callable(function):
        return None
    text = getattr(function, "__name__", type(function).__name__).lower()
    return None if text in ("linear", "none") else text


def optimizer_name(model):
    """Class name of ``model``'s optimizer (``LossScaleOptimizer`` unwrapped), or ``None``."""
    optimizer = getattr(model, "optimizer", None)
    optimizer = getattr(optimizer, "inner_optimizer", optimizer)
    return None if optimizer is None else type(optimizer).__name__


def architecture(model):
    """Read an :class:`Architecture` from ``model`` (any built or unbuilt keras.Model)."""
    layers = leaf_layers(model)
    names = [type(layer).__name__ for layer in layers]
    for inner in layers:  # Bidirectional and similar wrappers hold the recurrent layer
        wrapped = getattr(inner, "forward_layer", None) or getattr(inner, "layer", None)
        if wrapped is not None:
            names.append(type(wrapped).__name__)
    weighted = [i for i, layer in enumerate(layers) if layer.weights]
    output_side = weighted[-1] if weighted else len(layers)
    activations = {hidden_activation_name(layer) for layer in layers[:output_side]} - {None}
    merges = [type(o).__name__ for o in _operations(model)] + names
    large_layers = [layer.name for layer in layers
                    if any(large(i, v) for i, v in initialized_weights(layer))]
    relu_layers = [layer for layer in layers[:output_side]
                   if hidden_activation_name(layer) in ("relu", "relu6")]
    he = [i for layer in relu_layers for i, _ in initialized_weights(layer)]
    return Architecture(
        activations=frozenset(activations),
        batch_norm=any(name in _BATCH_NORM for name in names),
        layer_norm=any(name in _OTHER_NORM for name in names),
        residual="Add" in merges,
        attention=any(name in _ATTENTION for name in names),
        recurrent=frozenset(name for name in names if name in _RECURRENT),
        optimizer=optimizer_name(model),
        large_init=frozenset(large_layers),
        he_init=bool(he) and all(is_he(i) for i in he),
        noisy=frozenset(name for name in names if name in _NOISY),
    )


def _leaf_kind(layer):
    """:func:`vgrad._layers.layer_kind`, with attention layers and any kernel layer named."""
    if isinstance(layer, ATTENTION_CLASSES) or type(layer).__name__ in _ATTENTION:
        return "attention"
    kind = layer_kind(layer)
    if kind == "other" and (type(layer).__name__ in _RECURRENT or hasattr(layer, "cell")):
        return "recurrent"
    return "dense" if kind == "other" and hasattr(layer, "kernel") else kind


def _owner(model, path):
    """The top-level leaf layer that a variable path (``"mha/query/kernel"``) belongs to."""
    current, parts = model, path.split("/")[:-1]
    if parts and parts[0] == model.name and model.name not in {l.name for l in model.layers}:
        parts = parts[1:]  # Sequential models prefix their variables' paths with their name
    for part in parts:
        children = {layer.name: layer for layer in getattr(current, "layers", ())}
        if part not in children:
            return current if current is not model else None
        current = children[part]
        if not isinstance(current, keras.Model):
            return current
    return None


#: A layer's main weight, by the last part of its path, in order of preference.
_MAIN_SUFFIXES = ("kernel", "depthwise_kernel", "embeddings", "gamma", "scale")
#: Weights that never stand for their layer.
_SIDE_SUFFIXES = ("bias", "beta", "recurrent_kernel", "pointwise_kernel", "moving_mean",
                  "moving_variance", "seed_generator_state")


def main_weights(model, paths):
    """``{path: kind}`` for the main weight among ``paths`` of each layer, in path order.

    Main weights are kernels (not recurrent kernels; a separable convolution's
    depthwise kernel), embeddings and normalisation scales (``gamma``/``scale``);
    biases and ``beta`` are left out. A custom layer without any of these (its own
    ``add_weight(name="w")``) is represented by its first other weight, of kind
    ``"other"`` unless it has a ``kernel`` attribute. Without a model, every path
    ending in ``/kernel`` counts, as a Dense kernel.
    """
    groups = {}  # {layer path: its weights' paths}, in order of first appearance
    for path in paths:
        groups.setdefault(path.rsplit("/", 1)[0], []).append(path)
    chosen = []
    for members in groups.values():
        suffixes = {path.rsplit("/", 1)[-1]: path for path in members}
        main = next((suffixes[s] for s in _MAIN_SUFFIXES if s in suffixes), None)
        if main is None and model is not None:
            main = next((p for p in members if p.rsplit("/", 1)[-1] not in _SIDE_SUFFIXES),
                        None)
        if main is not None:
            chosen.append(main)
    found = {}
    for path in chosen:
        if model is None:
            if path.endswith("/kernel"):
                found[path] = "dense"
            continue
        layer = _owner(model, path)
        if layer is None:
            found[path] = "dense" if path.endswith("/kernel") else "other"
        else:
            found[path] = _leaf_kind(layer)
    return found
