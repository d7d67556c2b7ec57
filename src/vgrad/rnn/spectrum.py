"""The largest singular value of a recurrent kernel, whole or per gate."""

from __future__ import annotations

import numpy as np

from vgrad._checks import check_flag
from vgrad.rnn.layers import GATES, recurrent_layer


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

    Raises
    ------
    TypeError
        If ``layer_or_model`` holds no single recurrent layer, or ``by_gate`` is not a bool.

    References
    ----------
    Pascanu, Mikolov & Bengio (2013). On the difficulty of training recurrent neural
    networks. ICML.
    """
    layer = recurrent_layer(layer_or_model)
    by_gate = check_flag("by_gate", by_gate)
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
