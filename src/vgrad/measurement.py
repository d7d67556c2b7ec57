"""One measurement pass: everything the probes and the diagnosis read, from one batch.

:func:`measure` compiles one ``tf.function`` per model, loss and mode. For a batch it
runs one training-mode forward pass, keeping each hidden pre-activation, activation
and residual-block input, and one backward pass; it returns the loss, every trainable
variable's gradient norm, the back-propagated gradient RMS at each activation's and
each residual block's input, and the activation statistics, packed in one vector that
leaves the device once. Non-trainable state (BatchNorm moving statistics) is restored.

Deviations from ``notes/measure_contract.md``:

- The module is ``vgrad.measurement``, not ``vgrad.measure``: a submodule named like the
  package's function would replace that function as an attribute of ``vgrad`` once imported.
- ``WeightLayer.activation`` is the layer's own activation name for Dense, Conv and
  attention layers, ``"linear"`` included; ``None`` for other kinds.
- The output layer's own activation (softmax, sigmoid) is not a hidden activation: it
  has no entry in ``backprop`` or ``activations``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import tensorflow as tf

from vgrad._backend import require_tensorflow
from vgrad._batch import build_on, check_features, model_inputs, spurious_axes
from vgrad._cache import cached, compile_probe
from vgrad._checks import check_array, check_flag, check_model, check_same_length
from vgrad._forward import replayable, tapped_forward
from vgrad._layers import weight_layers
from vgrad._losses import Output, output_layer, own_activation_name, resolve_loss
from vgrad._numerics import dense_gradient, scaled_norms
from vgrad._state import restoring_state
from vgrad.stats import ActivationStats, activation_kind, layer_statistics
from vgrad.tables import LayerDict, format_number, format_table


@dataclass(frozen=True)
class WeightLayer:
    """One layer with trainable weights, as measured (see :func:`measure`)."""

    name: str
    class_name: str
    kind: str
    gradient_norm: float
    weight_norm: float
    zero_weights: bool
    activation: str | None
    variables: tuple


@dataclass(frozen=True, repr=False)
class Measurement:
    """What one forward and one backward pass on a batch measured; printed as tables."""

    model_name: str
    loss: float
    loss_name: str
    loss_source: str
    forward_finite: bool
    variable_norms: LayerDict
    weight_layers: tuple
    backprop: LayerDict
    block_backprop: LayerDict
    activations: LayerDict
    notes: tuple = ()

    def __str__(self):
        lines = [f"model {self.model_name!r}: loss {format_number(self.loss, '.4g')} "
                 f"({self.loss_name}; {self.loss_source})"
                 + ("" if self.forward_finite else "; the forward pass is NOT finite")]
        rows = [(layer.name, layer.class_name, layer.kind, layer.activation or "",
                 layer.gradient_norm, layer.weight_norm, "all zero" if layer.zero_weights else "")
                for layer in self.weight_layers]
        lines += ["", format_table(
            rows, ["weight layer", "class", "kind", "activation", "grad norm", "weight norm", ""],
            align="<<<<>><")]
        for title, table in (("back-propagated gradient RMS at activation inputs", self.backprop),
                             ("gradient RMS at residual block inputs", self.block_backprop),
                             ("activations", self.activations)):
            if table:
                lines += [f"\n{title}:", repr(table)]
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)

    __repr__ = __str__


def _output(model, x):
    """The model's :class:`Output` (cached; a subclassed model is called on one example)."""
    def build():
        if model_inputs(model) and getattr(model, "outputs", None):  # one: check_features
            shape = tuple(model.outputs[0].shape[1 + spurious_axes(model, x):])
        else:
            shape = tuple(model(tf.constant(x[:1]), training=False).shape[1:])
        layer = output_layer(model)
        return Output(shape, own_activation_name(layer), layer.name)

    return cached(model, ("output",), build)


def _compile(model, loss_function, training):
    """``(plan, fn)``: ``fn(x, y)`` returns one float32 vector that ``plan`` unpacks."""
    variables = list(model.trainable_variables)
    graph = replayable(model)
    save, restore = restoring_state(model)
    plan = {"variables": variables, "specs": weight_layers(model)}  # names added when traced

    def fn(x, y):
        saved = save()
        with tf.GradientTape() as tape:
            if x.dtype.is_floating:
                tape.watch(x)  # the first residual block may start at the input itself
            if graph:
                outputs, taps = tapped_forward(model, x, training=training)
            else:
                outputs, taps = model(x, training=training), None
            loss = tf.reduce_mean(tf.cast(loss_function(y, outputs), tf.float32))
        hidden = list(taps.pre_activations) if taps else []
        blocks = list(taps.block_inputs) if taps else []
        plan.update(hidden=hidden, blocks=blocks, kinds=[
            activation_kind(taps.functions[name]) for name in hidden])
        gradients = tape.gradient(
            loss, [variables, [taps.pre_activations[n] for n in hidden],
                   [taps.block_inputs[n] for n in blocks]],
            unconnected_gradients=tf.UnconnectedGradients.ZERO)
        restore(saved)
        finite = tf.math.is_finite(loss)
        # Hidden activations too: an inf that dead ReLUs zero out later leaves the loss finite.
        for output in [*tf.nest.flatten(outputs), *(taps.activations.values() if taps else ())]:
            finite &= tf.reduce_all(tf.math.is_finite(tf.cast(output, tf.float32)))
        parts = [tf.stack([loss, tf.cast(finite, tf.float32)]),
                 scaled_norms([dense_gradient(g) for g in gradients[0]]),
                 scaled_norms(gradients[1] + gradients[2], mean=True)]
        parts += [tf.reshape(layer_statistics(taps.activations[n], taps.functions[n]), [-1])
                  for n in hidden]
        parts.append(scaled_norms([spec.main for spec in plan["specs"]]))
        return tf.concat(parts, axis=0)

    return plan, compile_probe(fn)


def _unpack(model, values, plan, resolved, notes):
    variables, specs = plan["variables"], plan["specs"]
    count, hidden, blocks = len(variables), plan["hidden"], plan["blocks"]
    gradient, rest = values[2:2 + count], values[2 + count:]
    rms, rest = rest[:len(hidden) + len(blocks)], rest[len(hidden) + len(blocks):]
    stats, weight = rest[:4 * len(hidden)].reshape(-1, 4), rest[4 * len(hidden):]
    index = {id(variable): i for i, variable in enumerate(variables)}
    layers = tuple(  # a scaled norm is exactly 0 only when every entry is 0
        WeightLayer(spec.name, spec.class_name, spec.kind, float(gradient[index[id(spec.main)]]),
                    float(weight[i]), bool(weight[i] == 0.0), spec.activation,
                    tuple(v.path for v in spec.variables))
        for i, spec in enumerate(specs)
    )
    loss, rms, gradient = float(values[0]), rms.tolist(), gradient.tolist()
    return Measurement(
        model.name, loss, resolved.name, resolved.source, bool(values[1]) and math.isfinite(loss),
        LayerDict((v.path, gradient[i]) for i, v in enumerate(variables)), layers,
        LayerDict(zip(hidden, rms[:len(hidden)])), LayerDict(zip(blocks, rms[len(hidden):])),
        LayerDict((name, ActivationStats(kind, *row))
                  for name, kind, row in zip(hidden, plan["kinds"], stats.tolist())),
        tuple(notes),
    )


def measure(model, x, y, *, loss=None, training=True):
    """Measure the loss, gradients and activations of ``model`` on one batch, in one pass.

    Parameters
    ----------
    model : keras.Model
        Sequential, functional or subclassed; unbuilt models are built on ``x[:1]``.
    x : (num_samples, ...) array_like
        Finite input batch with the model's per-example input shape (integer token ids
        for models that start with an ``Embedding``).
    y : (num_samples, ...) array_like
        Finite targets that fit the loss: class labels, one-hot rows, 0/1 labels or
        numeric targets.
    loss : None, str or callable, optional
        Overrides the loss. Default: the model's compiled loss, else one inferred from
        the output layer and ``y`` (the result says which and why).
    training : bool, default True
        Run the model as in a training step (BatchNorm on batch statistics, dropout on).

    Returns
    -------
    Measurement
        Non-finite gradients and losses are returned as ``inf``/``nan``, never raised.

    Raises
    ------
    TypeError, ValueError
        For a model that is not a ``keras.Model``, non-numeric, empty or non-finite
        ``x``/``y``, mismatched lengths or shapes, or targets that fit no loss.
    """
    require_tensorflow("measure")
    check_model(model)
    training = check_flag("training", training)
    x = check_features(model, x)
    y = check_array("y", y)
    check_same_length(x, y)
    build_on(model, x)
    resolved = resolve_loss(model, y, loss, _output(model, x))
    # Freezing or unfreezing a layer changes the variables measured: a new function.
    trainable = tuple(id(variable) for variable in model.trainable_variables)
    plan, fn = cached(model, ("measure", resolved.key, training, trainable),
                      lambda: _compile(model, resolved.function, training))
    values = fn(tf.constant(x), tf.constant(resolved.y)).numpy().astype(np.float64)
    notes = []
    if not replayable(model):
        notes.append(f"model {model.name!r} is subclassed (or has no symbolic inputs): its "
                     "activations cannot be tapped, so back-propagated gradients and activation "
                     "statistics are not measured")
    elif not plan["hidden"]:
        notes.append(f"model {model.name!r} has no hidden activation (Activation layer or "
                     "activation= of a Dense/Conv layer) at which to measure back-propagated gradients")
    return _unpack(model, values, plan, resolved, notes)
