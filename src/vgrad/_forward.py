"""A forward pass that keeps each hidden layer's pre-activation and activation.

Keras gives no public hook for intermediate tensors, so for Sequential models the
layers are called one by one and for functional models the graph is replayed with
``Functional._run_through_graph`` (the method ``Functional.call`` itself uses),
wrapping each operation; a Sequential or functional model used as a layer is entered
the same way, and a ``TimeDistributed`` Dense or Conv layer is tapped through its inner
layer. Tensors computed this way lie on the path from the inputs
to the loss, so a ``tf.GradientTape`` gives ``dLoss/dz`` for them directly.

Each residual merge (an ``Add`` layer, or ``x + y`` in a functional graph) also records
its skip input, the tensor that entered the residual block, so that the gradient
reaching each block can be measured.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field

import keras

from vgrad._batch import model_inputs

_ACTIVATION_LAYERS = (
    keras.layers.Activation,
    keras.layers.ReLU,
    keras.layers.LeakyReLU,
    keras.layers.ELU,
    keras.layers.PReLU,
    keras.layers.Softmax,
)
_LINEAR = keras.activations.linear


@dataclass
class Taps:
    """What a tapped forward pass recorded, keyed by hidden-layer name."""

    pre_activations: dict = field(default_factory=dict)
    activations: dict = field(default_factory=dict)
    functions: dict = field(default_factory=dict)
    #: {Add layer name: its skip input}, the tensor entering each residual block.
    block_inputs: dict = field(default_factory=dict)


def _accepts_training(layer):
    try:
        return "training" in inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return False


def _is_residual_merge(operation):
    """An ``Add`` layer, or the ``x + y`` operation of a functional graph (``keras.ops.add``)."""
    if isinstance(operation, keras.layers.Add):
        return True
    kind = type(operation)
    return kind.__name__ == "Add" and kind.__module__.startswith("keras.src.ops")


def _has_kernel(layer):
    # Dense and Conv layers have ``kernel``; separable and depthwise convolutions do not.
    return any(hasattr(layer, name) for name in ("kernel", "depthwise_kernel"))


def _has_own_activation(layer):
    fn = getattr(layer, "activation", None)
    return (
        _has_kernel(layer)
        and not hasattr(layer, "cell")
        and callable(fn)
        and fn is not _LINEAR
    )


def replayable(model):
    """Whether ``model``'s graph can be replayed layer by layer: a built Sequential or
    functional model (one with symbolic inputs)."""
    graph = isinstance(model, keras.Sequential) or (
        hasattr(model, "_run_through_graph") and getattr(model, "_nodes_by_depth", None)
    )
    return bool(graph and model_inputs(model))


class _Tapper:
    """Wraps operations so that their pre-activations and activations are kept."""

    def __init__(self, training):
        self.training = training
        self.taps = Taps()
        self.last_kernel_layer = None
        self.order = {}  # id(tensor) -> when it was computed
        self.produced = []  # keeps those tensors alive, so that no id is reused

    def register(self, output):
        for tensor in keras.tree.flatten(output):
            self.order[id(tensor)] = len(self.produced)
            self.produced.append(tensor)
        return output

    def record_block(self, operation, args, kwargs):
        """A residual merge: its skip input is the earliest computed of its inputs."""
        inputs = args[0] if len(args) == 1 else args or kwargs.get("inputs", ())
        if not isinstance(inputs, (list, tuple)):
            return
        # Only a sum of same-shaped tensors is a residual merge (not x + 1, not x + bias).
        inputs = [tensor for tensor in inputs if hasattr(tensor, "shape") and hasattr(tensor, "dtype")]
        shapes = {tuple(tensor.shape) for tensor in inputs}
        if len(inputs) > 1 and len(shapes) == 1 and all(t.dtype.is_floating for t in inputs):
            skip = min(inputs, key=lambda tensor: self.order.get(id(tensor), -1))
            self.taps.block_inputs[operation.name] = skip

    def record(self, name, z, activation_fn, output):
        self.taps.pre_activations[name] = z
        self.taps.activations[name] = output
        self.taps.functions[name] = activation_fn

    def replay(self, model, x):
        """Run a Sequential or functional ``model`` on ``x`` one operation at a time
        (a model nested in it is entered: its layers keep their own names)."""
        if isinstance(model, keras.Sequential):
            outputs = x
            for layer in model.layers:
                outputs = self.wrap(layer)(outputs)
            return outputs
        outputs = model._run_through_graph(x, operation_fn=self.wrap)
        return outputs[0] if isinstance(outputs, (list, tuple)) and len(outputs) == 1 else outputs

    def tap_activation(self, operation, owner, name, args, kwargs):
        """Run ``operation`` with ``owner``'s activation (its own, or a wrapped layer's)
        switched off to expose z, apply it, and record both under ``name``."""
        activation_fn = owner.activation
        owner.activation = _LINEAR
        try:
            z = operation(*args, **kwargs)
        finally:
            owner.activation = activation_fn
        output = activation_fn(z)
        self.last_kernel_layer = name
        self.record(name, z, activation_fn, output)
        return output

    def wrap(self, operation):
        def run(*args, **kwargs):
            return self.register(call(*args, **kwargs))

        def call(*args, **kwargs):
            if isinstance(operation, keras.Model) and replayable(operation) and len(args) == 1:
                return self.replay(operation, args[0])
            if isinstance(operation, keras.layers.Layer) and _accepts_training(operation):
                kwargs.setdefault("training", self.training)
            if (isinstance(operation, keras.layers.TimeDistributed)
                    and _has_own_activation(operation.layer)):
                # tapped under outer/inner, the name vgrad._layers gives the inner layer
                name = f"{operation.name}/{operation.layer.name}"
                return self.tap_activation(operation, operation.layer, name, args, kwargs)
            if _is_residual_merge(operation):
                self.record_block(operation, args, kwargs)
            if isinstance(operation, _ACTIVATION_LAYERS):
                output = operation(*args, **kwargs)
                name = self.last_kernel_layer or operation.name
                fn = getattr(operation, "activation", None) or operation.__class__.__name__
                self.record(name, args[0], fn, output)
                return output
            if _has_own_activation(operation):
                return self.tap_activation(operation, operation, operation.name, args, kwargs)
            output = operation(*args, **kwargs)
            if _has_kernel(operation):
                self.last_kernel_layer = operation.name
            return output

        return run


def check_replayable(model):
    """Raise ``ValueError`` unless ``model``'s graph can be replayed layer by layer."""
    if not replayable(model):
        raise ValueError(
            f"model {model.name!r} is subclassed (or not built); per-layer activations need a "
            "built Sequential or functional keras.Model"
        )


def tapped_forward(model, x, training=True):
    """Run ``model`` on ``x`` and return ``(outputs, Taps)``.

    Hidden layers are keyed by the name of the kernel layer (Dense, Conv) that feeds
    the activation, so for :func:`vgrad.build_mlp` models the keys are ``dense_i``.
    The output layer has no entry, also when it has an activation of its own (a
    softmax or sigmoid output is not a hidden activation).

    Raises
    ------
    ValueError
        For subclassed models, whose graph cannot be replayed.
    """
    check_replayable(model)
    tapper = _Tapper(training)
    outputs = tapper.replay(model, x)
    taps = tapper.taps
    # The output layer's own activation (softmax, sigmoid) is not a hidden activation.
    final = {id(tensor) for tensor in keras.tree.flatten(outputs)}
    for name in [name for name, a in taps.activations.items() if id(a) in final]:
        for record in (taps.pre_activations, taps.activations, taps.functions):
            del record[name]
    return outputs, taps
