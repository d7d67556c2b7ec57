"""Recurrent networks: a builder, the recurrent kernel's spectrum and gradients through time.

Backpropagation through time multiplies the gradient by one Jacobian
``dh_t / dh_{t-1} = W_rec^T diag(phi'(z_t))`` per step, so the gradient that reaches
an early step ``t`` of a ``T``-step sequence is a product of ``T - t`` of them
(Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013).
:func:`time_gradient_norms` measures it step by step.
"""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

import keras

from vgrad._batch import check_batch, default_loss
from vgrad._checks import check_count
from vgrad.models import resolve_activation
from vgrad.probes import scaled_norm

#: ``cell=`` names accepted by :func:`build_rnn`, and the Keras layer each builds.
RECURRENT_LAYERS = {
    "simple": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}
_SUPPORTED_CELLS = (keras.layers.SimpleRNNCell, keras.layers.LSTMCell, keras.layers.GRUCell)
#: Column blocks of each cell's recurrent kernel, in Keras's order.
GATES = {
    keras.layers.SimpleRNNCell: ("recurrent",),
    keras.layers.LSTMCell: ("input", "forget", "cell", "output"),
    keras.layers.GRUCell: ("update", "reset", "candidate"),
}


def build_rnn(
    units,
    *,
    input_dim,
    num_classes,
    cell="simple",
    recurrent_gain=1.0,
    activation="tanh",
    seed=None,
):
    """Build ``Input -> SimpleRNN | LSTM | GRU -> Dense`` classifying whole sequences.

    The layers are named ``sequence`` (input), ``rnn`` and ``logits``. The recurrent
    layer returns its last hidden state ``h_T`` only. Its input kernel and the logits
    kernel use Glorot-uniform initialisation; its recurrent kernel is a random
    orthogonal matrix times ``recurrent_gain`` (Saxe et al. 2014), so every singular
    value of the ``(units, units)`` SimpleRNN kernel equals the gain. For LSTM and
    GRU the kernel is ``(units, 4 * units)`` or ``(units, 3 * units)`` with
    orthonormal rows times the gain: all singular values of the whole matrix equal
    the gain and those of each gate block are at most the gain. ``recurrent_gain=1``
    is Keras's default recurrent initialiser.

    Parameters
    ----------
    units : int
        Hidden units, at least 1.
    input_dim : int
        Features per time step, at least 1. Sequences may have any length.
    num_classes : int
        Number of logits, at least 1.
    cell : {"simple", "lstm", "gru"}, default "simple"
        Which recurrent layer to use.
    recurrent_gain : float, default 1.0
        Largest (and every) singular value of the initial recurrent kernel, > 0.
    activation : str or callable, default "tanh"
        Activation of the hidden state (SimpleRNN) or of the candidate and cell
        output (LSTM, GRU; the gates keep their sigmoid). ``"linear"`` or ``None``
        makes a SimpleRNN linear, where gradients through time have a closed form.
    seed : int or None
        Seed of the three initialisers (drawn from it through
        ``numpy.random.SeedSequence``); ``None`` leaves them to Keras's global seed.

    Returns
    -------
    keras.Model
        Maps ``(batch, time, input_dim)`` to ``(batch, num_classes)`` logits.

    Raises
    ------
    TypeError
        If a count or ``seed`` is not an int, or ``recurrent_gain`` not a number.
    ValueError
        If a count is below 1, ``recurrent_gain`` is not positive and finite, or
        ``cell`` or ``activation`` is unknown.

    References
    ----------
    Saxe, McClelland & Ganguli (2014); Hochreiter & Schmidhuber (1997), LSTM;
    Cho et al. (2014), GRU.

    Examples
    --------
    >>> model = build_rnn(16, input_dim=9, num_classes=8, recurrent_gain=0.5, seed=0)
    >>> [layer.name for layer in model.layers]
    ['sequence', 'rnn', 'logits']
    """
    units = check_count("units", units)
    input_dim = check_count("input_dim", input_dim)
    num_classes = check_count("num_classes", num_classes)
    if not isinstance(cell, str) or cell not in RECURRENT_LAYERS:
        accepted = ", ".join(map(repr, RECURRENT_LAYERS))
        raise ValueError(f"cell must be one of {accepted}; got {cell!r}")
    if isinstance(recurrent_gain, bool) or not isinstance(recurrent_gain, numbers.Real):
        raise TypeError(f"recurrent_gain must be a float > 0, got {recurrent_gain!r}")
    if not (np.isfinite(recurrent_gain) and recurrent_gain > 0):
        raise ValueError(f"recurrent_gain must be a finite float > 0, got {recurrent_gain!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, numbers.Integral)):
        raise TypeError(f"seed must be an int or None, got {seed!r}")
    activation_fn = resolve_activation(activation)

    seeds = [None] * 3
    if seed is not None:
        seeds = [int(value) for value in np.random.SeedSequence(int(seed)).generate_state(3)]
    inputs = keras.Input(shape=(None, input_dim), name="sequence")
    hidden = RECURRENT_LAYERS[cell](
        units,
        activation=activation_fn,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[0]),
        recurrent_initializer=keras.initializers.Orthogonal(
            gain=float(recurrent_gain), seed=seeds[1]
        ),
        name="rnn",
    )(inputs)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[2]),
        name="logits",
    )(hidden)
    return keras.Model(inputs, logits, name=f"{cell}_rnn_{units}")


def _is_supported(layer):
    return isinstance(layer, keras.layers.RNN) and isinstance(layer.cell, _SUPPORTED_CELLS)


def recurrent_layer(layer_or_model):
    """Return the one SimpleRNN, LSTM or GRU layer of a layer or model.

    Raises
    ------
    TypeError
        If the argument is neither a recurrent layer nor a model holding exactly one.
    """
    if _is_supported(layer_or_model):
        return layer_or_model
    if isinstance(layer_or_model, keras.Model):
        found = [layer for layer in layer_or_model.layers if isinstance(layer, keras.layers.RNN)]
        if len(found) == 1 and _is_supported(found[0]):
            return found[0]
    raise TypeError(
        "expected a SimpleRNN, LSTM or GRU layer, or a keras.Model holding exactly one "
        f"(as vgrad.build_rnn makes); got {type(layer_or_model).__name__}"
    )


def largest_singular_value(layer_or_model, *, by_gate=False):
    """Largest singular value of the recurrent kernel ``W_rec`` (as ``h_{t-1} @ W_rec``).

    For a tanh (or any ``|phi'| <= 1``) SimpleRNN, a value below 1 is sufficient for
    gradients through time to vanish geometrically; a value above 1 is necessary for
    them to explode (Pascanu et al. 2013, section 2.1).

    Parameters
    ----------
    layer_or_model : keras.layers.RNN or keras.Model
        A SimpleRNN, LSTM or GRU layer, or a model with exactly one.
    by_gate : bool, default False
        ``False``: one float for the whole ``(units, k * units)`` kernel (an upper
        bound on every gate block's value). ``True``: a dict {gate: float}, one per
        ``(units, units)`` block, in Keras's order (``recurrent`` for SimpleRNN;
        ``input``, ``forget``, ``cell``, ``output`` for LSTM; ``update``, ``reset``,
        ``candidate`` for GRU).

    Returns
    -------
    float or dict
        ``nan`` (or ``inf``) where the kernel holds ``nan`` (or ``inf``), as after
        an exploded training step.
    """
    layer = recurrent_layer(layer_or_model)
    kernel = np.asarray(layer.cell.recurrent_kernel.numpy(), dtype=np.float64)
    if not by_gate:
        return _spectral_norm(kernel)
    gates = next(names for cls, names in GATES.items() if isinstance(layer.cell, cls))
    blocks = np.split(kernel, len(gates), axis=1)
    return {gate: _spectral_norm(block) for gate, block in zip(gates, blocks)}


def _spectral_norm(matrix):
    # A kernel that training drove to inf or nan is reported, not raised (SVD would fail).
    if not np.all(np.isfinite(matrix)):
        return float("nan") if np.isnan(matrix).any() else float("inf")
    return float(np.linalg.svd(matrix, compute_uv=False)[0])


def _recurrent_chain(model):
    """Split ``Input -> RNN -> head layers`` into (recurrent layer, [head layers])."""
    hint = (
        "expected Input -> SimpleRNN/LSTM/GRU(return_sequences=False) -> Dense ..., "
        "as build_rnn makes"
    )
    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model; {hint}; got {type(model).__name__}")
    layers = [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]
    if not layers or not _is_supported(layers[0]):
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


def unrolled_forward(model, x, *, tape=None):
    """Run ``model`` on ``x`` stepping its recurrent cell in Python, one step at a time.

    Returns ``(outputs, hidden_states)``: the model's outputs (the head applied to
    ``h_T``) and the list ``[h_1, ..., h_T]`` of ``(batch, units)`` tensors. With a
    ``tape``, each state (``h_t``, and ``c_t`` for LSTM) is watched, so
    ``tape.gradient(loss, hidden_states)`` gives the *total* derivative dL/dh_t
    through every later step, which watching a ``return_sequences=True`` output
    cannot give.
    """
    rnn, head = _recurrent_chain(model)
    x = tf.convert_to_tensor(x, dtype=rnn.cell.compute_dtype)
    states = rnn.cell.get_initial_state(batch_size=tf.shape(x)[0])
    states = list(states) if isinstance(states, (list, tuple)) else [states]
    hidden_states = []
    for step in range(x.shape[1]):
        _, states = rnn.cell(x[:, step], states, training=False)
        states = list(states) if isinstance(states, (list, tuple)) else [states]
        if tape is not None:
            for state in states:
                tape.watch(state)
        hidden_states.append(states[0])  # h_t is the cell output and its first state
    outputs = hidden_states[-1]
    for layer in head:
        outputs = layer(outputs, training=False)
    return outputs, hidden_states


def time_gradient_norms(model, x, y, *, loss=None):
    """Norm of the gradient reaching each hidden state, ``||dL/dh_t||`` for t = 1..T.

    ``L`` is the batch-mean loss of the model's output, computed from the last
    hidden state ``h_T`` through the head; ``dL/dh_t`` is its total derivative with
    respect to ``h_t``, through all of ``h_{t+1}, ..., h_T``. Each value is the
    root-mean-square of ``dL/dh_t`` over the batch and the units, as in
    :func:`vgrad.backprop_norms`, computed without float32 under- or overflow. In a
    linear SimpleRNN ``dL/dh_t = dL/dh_T (W_rec^T)^(T - t)``: a gain ``g`` orthogonal
    kernel gives exactly ``g^(T - t)`` times the last value.

    Parameters
    ----------
    model : keras.Model
        ``Input -> SimpleRNN | LSTM | GRU (return_sequences=False) -> head layers``,
        such as :func:`build_rnn` makes. A bare layer is not accepted: the loss
        needs the head that turns ``h_T`` into outputs.
    x : (num_samples, time, features) array_like
        Input sequences.
    y : (num_samples, ...) array_like
        Targets; class indices for the default loss.
    loss : callable, optional
        ``loss(y_true, y_pred)`` returning a scalar. Default: sparse categorical
        cross-entropy from logits.

    Returns
    -------
    (time,) float64 ndarray
        Entry ``t - 1`` is the value for ``h_t``; the last entry is ``h_T``.
        Non-finite gradients give ``inf`` or ``nan`` entries; nothing is raised.

    Raises
    ------
    TypeError, ValueError
        For another kind of model, ``x`` that is not 3-D or does not match the
        model's features, mismatched ``x``/``y`` lengths or out-of-range labels.

    References
    ----------
    Bengio, Simard & Frasconi (1994). Learning long-term dependencies with gradient
    descent is difficult. IEEE Trans. Neural Networks. Pascanu, Mikolov & Bengio
    (2013). On the difficulty of training recurrent neural networks. ICML.

    Examples
    --------
    >>> x, y = memory_task(64, 100, noise=0.1, seed=0)
    >>> model = build_rnn(32, input_dim=9, num_classes=8, recurrent_gain=0.5, seed=0)
    >>> norms = time_gradient_norms(model, x, y)
    >>> norms[0] / norms[-1]  # doctest: +SKIP
    9.9e-31
    """
    _recurrent_chain(model)
    x, y = check_batch(model, x, y, loss)
    if x.ndim != 3 or x.shape[1] == 0:
        raise ValueError(f"x must have shape (num_samples, time >= 1, features); got {x.shape}")
    with tf.GradientTape() as tape:
        outputs, hidden_states = unrolled_forward(model, x, tape=tape)
        value = default_loss(loss)(tf.constant(y), outputs)
    gradients = tape.gradient(
        value, hidden_states, unconnected_gradients=tf.UnconnectedGradients.ZERO
    )
    return np.array([float(scaled_norm(gradient, mean=True)) for gradient in gradients])
