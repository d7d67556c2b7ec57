"""The recurrent classifier: ``Input -> SimpleRNN | LSTM | GRU -> Dense``."""

from __future__ import annotations

import numbers

import numpy as np

import keras

from vgrad._checks import check_count
from vgrad._deprecated import renamed_keywords
from vgrad._checks import check_seed
from vgrad._seeds import spawn_seeds
from vgrad.models import keras_activation

#: ``cell=`` names accepted by :func:`build_rnn`, and the Keras layer each builds.
RECURRENT_LAYERS = {
    "simple": keras.layers.SimpleRNN,
    "lstm": keras.layers.LSTM,
    "gru": keras.layers.GRU,
}


@renamed_keywords(recurrent_gain="recurrent_scale")
def build_rnn(
    units,
    *,
    input_dim=9,
    num_classes=8,
    cell="simple",
    recurrent_scale=1.0,
    activation="tanh",
    seed=0,
):
    """Build ``Input -> SimpleRNN | LSTM | GRU -> Dense`` classifying whole sequences.

    The layers are named ``sequence`` (input), ``rnn`` and ``logits``. The recurrent
    layer returns its last hidden state ``h_T`` only. Its input kernel and the logits
    kernel use Glorot-uniform initialisation; its recurrent kernel is a random
    orthogonal matrix times ``recurrent_scale`` (Saxe et al. 2014), so every singular
    value of the ``(units, units)`` SimpleRNN kernel equals the scale. For LSTM and
    GRU the kernel is ``(units, 4 * units)`` or ``(units, 3 * units)`` with
    orthonormal rows times the scale: all singular values of the whole matrix equal
    the scale and those of each gate block are at most the scale. ``recurrent_scale=1``
    is Keras's default recurrent initialiser.

    Parameters
    ----------
    units : int
        Hidden units, at least 1.
    input_dim : int, default 9
        Features per time step, at least 1 (default: the 8 symbols and the marker of
        :func:`vgrad.memory_task`). Sequences may have any length.
    num_classes : int, default 8
        Number of logits, at least 1 (default: :func:`vgrad.memory_task`'s 8 symbols).
    cell : {"simple", "lstm", "gru"}, default "simple"
        Which recurrent layer to use.
    recurrent_scale : float, default 1.0
        Largest (and every) singular value of the initial recurrent kernel, > 0.
        (Formerly ``recurrent_gain``, still accepted with a ``DeprecationWarning``.)
    activation : str or callable, default "tanh"
        Activation of the hidden state (SimpleRNN) or of the candidate and cell
        output (LSTM, GRU; the gates keep their sigmoid). ``"linear"`` or ``None``
        makes a SimpleRNN linear, where gradients through time have a closed form.
    seed : int or None, default 0
        Seed of the three initialisers (drawn from it through
        ``numpy.random.SeedSequence``), in ``[0, 2**32)``; the same seed gives the same
        weights. ``None`` leaves them to Keras's global seed, as in :func:`vgrad.build_mlp`.

    Returns
    -------
    keras.Model
        Maps ``(batch, time, input_dim)`` to ``(batch, num_classes)`` logits.

    Raises
    ------
    TypeError
        If a count or ``seed`` is not an int, or ``recurrent_scale`` not a number.
    ValueError
        If a count is below 1, ``recurrent_scale`` is not positive and finite, or
        ``cell`` or ``activation`` is unknown.

    References
    ----------
    Saxe, McClelland & Ganguli (2014); Hochreiter & Schmidhuber (1997), LSTM;
    Cho et al. (2014), GRU.

    Examples
    --------
    >>> model = build_rnn(16, recurrent_scale=0.5)
    >>> [layer.name for layer in model.layers]
    ['sequence', 'rnn', 'logits']
    """
    units = check_count("units", units)
    input_dim = check_count("input_dim", input_dim)
    num_classes = check_count("num_classes", num_classes)
    if not isinstance(cell, str) or cell not in RECURRENT_LAYERS:
        accepted = ", ".join(map(repr, RECURRENT_LAYERS))
        raise ValueError(f"cell must be one of {accepted}; got {cell!r}")
    if isinstance(recurrent_scale, bool) or not isinstance(recurrent_scale, numbers.Real):
        raise TypeError(f"recurrent_scale must be a float > 0, got {recurrent_scale!r}")
    if not (np.isfinite(recurrent_scale) and recurrent_scale > 0):
        raise ValueError(f"recurrent_scale must be a finite float > 0, got {recurrent_scale!r}")
    seeds = spawn_seeds(check_seed(seed, allow_none=True), 3)
    activation_fn = keras_activation(activation)
    inputs = keras.Input(shape=(None, input_dim), name="sequence")
    hidden = RECURRENT_LAYERS[cell](
        units,
        activation=activation_fn,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[0]),
        recurrent_initializer=keras.initializers.Orthogonal(
            gain=float(recurrent_scale), seed=seeds[1]
        ),
        name="rnn",
    )(inputs)
    logits = keras.layers.Dense(
        num_classes,
        kernel_initializer=keras.initializers.GlorotUniform(seed=seeds[2]),
        name="logits",
    )(hidden)
    return keras.Model(inputs, logits, name=f"{cell}_rnn_{units}")
