"""Gradients through time: the cell stepped in Python, and the RMS of ``dL/dh_t`` per step.

Backpropagation through time multiplies the gradient by one Jacobian
``dh_t / dh_{t-1} = W_rec^T diag(phi'(z_t))`` per step, so the gradient that reaches
an early step ``t`` of a ``T``-step sequence is a product of ``T - t`` of them
(Bengio, Simard & Frasconi 1994; Pascanu, Mikolov & Bengio 2013).
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vgrad._batch import check_batch, default_loss
from vgrad._deprecated import renamed_names
from vgrad._numerics import scaled_norm
from vgrad.rnn.layers import recurrent_chain


def unrolled_forward(model, x, *, tape=None):
    """Run ``model`` on ``x`` stepping its recurrent cell in Python, one step at a time.

    Returns ``(outputs, hidden_states)``: the model's outputs (the head applied to
    ``h_T``) and the list ``[h_1, ..., h_T]`` of ``(batch, units)`` tensors. With a
    ``tape``, each state (``h_t``, and ``c_t`` for LSTM) is watched, so
    ``tape.gradient(loss, hidden_states)`` gives the *total* derivative dL/dh_t
    through every later step, which watching a ``return_sequences=True`` output
    cannot give.
    """
    rnn, head = recurrent_chain(model)
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


def time_gradient_rms(model, x, y, *, loss=None):
    """Root-mean-square of the gradient reaching each hidden state, ``dL/dh_t`` for t = 1..T.

    ``L`` is the batch-mean loss of the model's output, computed from the last
    hidden state ``h_T`` through the head; ``dL/dh_t`` is its total derivative with
    respect to ``h_t``, through all of ``h_{t+1}, ..., h_T``. Each value is the
    root-mean-square of ``dL/dh_t`` over the batch and the units, as in
    :func:`vgrad.backprop_rms`, computed without float32 under- or overflow. In a
    linear SimpleRNN ``dL/dh_t = dL/dh_T (W_rec^T)^(T - t)``: an orthogonal
    kernel scaled by ``g`` gives exactly ``g^(T - t)`` times the last value.

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
    >>> x, y = memory_task(64, 100, noise=0.1)
    >>> model = build_rnn(32, recurrent_scale=0.5)
    >>> rms = time_gradient_rms(model, x, y)
    >>> rms.shape, bool(rms[0] < rms[-1])  # vanishing toward step 1
    ((100,), True)
    """
    recurrent_chain(model)
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


__getattr__ = renamed_names(__name__, {"time_gradient_norms": "time_gradient_rms"})
