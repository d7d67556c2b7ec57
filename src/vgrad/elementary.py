"""The smallest experiments: activation derivatives and products of layer Jacobians."""

from __future__ import annotations

import numbers

import numpy as np
import tensorflow as tf

from vgrad._checks import check_count
from vgrad._deprecated import renamed_keywords, renamed_names
from vgrad._checks import check_seed
from vgrad.models import keras_activation


def activation_derivatives(activations, z):
    """Derivative of each activation function at the points ``z``, by automatic differentiation.

    Parameters
    ----------
    activations : list of str or callable
        Keras activation identifiers, e.g. ``["sigmoid", "tanh", "relu"]``.
    z : (num_points,) array_like
        Pre-activation values.

    Returns
    -------
    dict
        {name: (num_points,) float64 ndarray of phi'(z)}.

    Examples
    --------
    >>> activation_derivatives(["sigmoid"], [0.0])["sigmoid"]
    array([0.25])
    """
    z = tf.constant(np.asarray(z, dtype=np.float32))
    if z.shape.rank != 1 or z.shape[0] == 0:
        raise ValueError(f"z must be a non-empty 1-D array, got shape {tuple(z.shape)}")
    derivatives = {}
    for identifier in activations:
        function = keras_activation(identifier)
        with tf.GradientTape() as tape:
            tape.watch(z)
            output = function(z)
        name = identifier if isinstance(identifier, str) else function.__name__
        derivatives[name] = tape.gradient(output, z).numpy().astype(np.float64)
    return derivatives


@renamed_keywords(gain="scale")
def jacobian_product_spectral_norms(depth, width, *, activation="linear", scale=1.0, seed=0):
    """Spectral norm of the product of the first ``l`` layer Jacobians, for l = 1..depth.

    The network is ``h_l = phi(W_l h_{l-1})`` with ``W_l ~ N(0, scale**2 / width)`` and
    a standard normal input; the Jacobian of layer ``l`` is ``diag(phi'(z_l)) W_l``.
    Back-propagation multiplies the gradient by the transposes of these matrices, so
    the norm of their product bounds how much of the output gradient reaches layer 1.

    Parameters
    ----------
    depth, width : int
        Number of layers and units per layer.
    activation : str or callable, default "linear"
        Keras activation identifier.
    scale : float, default 1.0
        Scale of the weights, > 0: ``scale = 1`` preserves the norm of a linear map on
        average. (Formerly ``gain``, still accepted with a ``DeprecationWarning``.)
    seed : int, default 0
        Seed of the weights and the input, in ``[0, 2**32)``; the same seed gives the
        same result.

    Returns
    -------
    (depth,) float64 ndarray
        ``||J_l ... J_1||_2`` for l = 1..depth.

    Raises
    ------
    TypeError
        If ``depth``, ``width`` or ``seed`` is not an int, or ``scale`` not a number.
    ValueError
        If a count is below 1, ``scale`` is not positive and finite, ``seed`` is out of
        range, or the activation is unknown.
    """
    depth, width = check_count("depth", depth), check_count("width", width)
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a finite float > 0, got {scale!r}")
    if not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"scale must be a finite float > 0, got {scale!r}")
    seed = check_seed(seed)
    function = keras_activation(activation)
    rng = np.random.default_rng(seed)
    hidden = tf.constant(rng.standard_normal(width), dtype=tf.float64)
    product = np.eye(width)
    norms = np.empty(depth)
    for layer in range(depth):
        weights = rng.standard_normal((width, width)) * scale / np.sqrt(width)
        z = tf.linalg.matvec(tf.constant(weights), hidden)
        with tf.GradientTape() as tape:
            tape.watch(z)
            hidden = function(z)
        slope = tape.gradient(hidden, z, unconnected_gradients="zero").numpy()
        product = (slope[:, None] * weights) @ product
        norms[layer] = np.linalg.norm(product, 2)
    return norms


__getattr__ = renamed_names(
    __name__, {"jacobian_product_norms": "jacobian_product_spectral_norms"}
)
