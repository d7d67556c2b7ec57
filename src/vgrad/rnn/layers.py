"""Which recurrent layers vgrad reads, and how it finds them in a model."""

from __future__ import annotations

import keras

_SUPPORTED_CELLS = (keras.layers.SimpleRNNCell, keras.layers.LSTMCell, keras.layers.GRUCell)
#: Column blocks of each cell's recurrent kernel, in Keras's order.
GATES = {
    keras.layers.SimpleRNNCell: ("recurrent",),
    keras.layers.LSTMCell: ("input", "forget", "cell", "output"),
    keras.layers.GRUCell: ("update", "reset", "candidate"),
}


def is_supported(layer):
    """Whether ``layer`` is a SimpleRNN, LSTM or GRU layer."""
    return isinstance(layer, keras.layers.RNN) and isinstance(layer.cell, _SUPPORTED_CELLS)


def recurrent_layer(layer_or_model):
    """Return the one SimpleRNN, LSTM or GRU layer of a layer or model.

    Raises
    ------
    TypeError
        If the argument is neither a recurrent layer nor a model holding exactly one.
    """
    if is_supported(layer_or_model):
        return layer_or_model
    if isinstance(layer_or_model, keras.Model):
        found = [layer for layer in layer_or_model.layers if isinstance(layer, keras.layers.RNN)]
        if len(found) == 1 and is_supported(found[0]):
            return found[0]
    raise TypeError(
        "expected a SimpleRNN, LSTM or GRU layer, or a keras.Model holding exactly one "
        f"(as vgrad.build_rnn makes); got {type(layer_or_model).__name__}"
    )


def recurrent_chain(model):
    """Split ``Input -> RNN -> head layers`` into (recurrent layer, [head layers]).

    Raises
    ------
    TypeError
        If ``model`` is not a ``keras.Model``.
    ValueError
        If it is not one chain that starts with a recurrent layer returning ``h_T`` only.
    """
    hint = (
        "expected Input -> SimpleRNN/LSTM/GRU(return_sequences=False) -> Dense ..., "
        "as build_rnn makes"
    )
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model; {hint}; got {type(model).__name__}")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or not is_supported(layers[0]):
        raise ValueError(f"model {model.name!r} does not start with a recurrent layer; {hint}")
    rnn = layers[0]
    for flag in ("return_sequences", "return_state", "go_backwards", "stateful"):
        if getattr(rnn, flag, False):
            raise ValueError(f"layer {rnn.name!r} has {flag}=True; {hint}")
    try:
        chained = len(model.inputs) == 1 and rnn.input is model.inputs[0]
        chained = chained and all(b.input is a.output for a, b in zip(layers, layers[1:]))
        chained = chained and len(model.outputs) == 1 and model.outputs[0] is layers[-1].output
    except (AttributeError, ValueError):
        chained = False
    if not chained:
        raise ValueError(f"model {model.name!r} is not a single chain of layers; {hint}")
    return rnn, layers[1:]
