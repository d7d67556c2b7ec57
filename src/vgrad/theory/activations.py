"""Activation functions and their derivatives as numpy functions, for the quadrature."""

from __future__ import annotations

import functools
import math

import numpy as np

import keras

SUPPORTED_ACTIVATIONS = (
    "linear", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "tanh", "sigmoid",
)
_ERF = np.vectorize(math.erf, otypes=[float])
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _normal_cdf(z):
    return 0.5 * (1.0 + _ERF(z / math.sqrt(2.0)))


def _normal_pdf(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


def _elu_pair(alpha, scale=1.0):
    def phi(z):
        return scale * np.where(z > 0, z, alpha * np.expm1(np.minimum(z, 0.0)))

    def derivative(z):
        return scale * np.where(z > 0, 1.0, alpha * np.exp(np.minimum(z, 0.0)))

    return phi, derivative


def _activation_pair(name, slope=0.2, alpha=1.0):
    """``(phi, phi')`` as numpy functions for a supported activation name."""
    pairs = {
        "linear": (lambda z: z, np.ones_like),
        "relu": (lambda z: np.maximum(z, 0.0), lambda z: np.where(z > 0, 1.0, 0.0)),
        "leaky_relu": (
            lambda z: np.where(z > 0, z, slope * z), lambda z: np.where(z > 0, 1.0, slope)
        ),
        "gelu": (lambda z: z * _normal_cdf(z), lambda z: _normal_cdf(z) + z * _normal_pdf(z)),
        "silu": (
            lambda z: z * _sigmoid(z), lambda z: _sigmoid(z) * (1.0 + z * (1.0 - _sigmoid(z)))
        ),
        "softplus": (lambda z: np.logaddexp(0.0, z), _sigmoid),
        "tanh": (np.tanh, lambda z: 1.0 - np.tanh(z) ** 2),
        "sigmoid": (_sigmoid, lambda z: _sigmoid(z) * (1.0 - _sigmoid(z))),
    }
    if name in ("elu", "selu"):
        return _elu_pair(alpha) if name == "elu" else _elu_pair(_SELU_ALPHA, _SELU_SCALE)
    return pairs[name]


def activation_and_derivative(activation):
    """Return ``(phi, phi')`` numpy functions for a Keras activation identifier.

    Accepts the names in ``SUPPORTED_ACTIVATIONS``, the matching ``keras.activations``
    functions, ``keras.layers.LeakyReLU`` and ``functools.partial`` of
    ``keras.activations.leaky_relu`` (``negative_slope=``) or ``elu`` (``alpha=``).
    (:func:`vgrad.models.keras_activation` returns the Keras function instead.)

    Returns
    -------
    (callable, callable)
        The activation and its derivative, elementwise on float64 arrays.

    Raises
    ------
    ValueError
        For any other activation.
    """
    keywords, identifier = {}, activation
    if isinstance(activation, keras.layers.LeakyReLU):
        keywords = {"slope": float(activation.negative_slope)}
        activation = keras.activations.leaky_relu
    elif isinstance(activation, functools.partial):
        keywords = {
            {"negative_slope": "slope"}.get(key, key): float(value)
            for key, value in activation.keywords.items()
        }
        activation = activation.func
    try:
        function = keras.activations.get(activation)
    except (ValueError, TypeError):
        function = None
    parameters = {"leaky_relu": {"slope"}, "elu": {"alpha"}}
    for name in SUPPORTED_ACTIVATIONS:
        known = set(keywords) <= parameters.get(name, set())
        if function is getattr(keras.activations, name) and known:
            return _activation_pair(name, **keywords)
    raise ValueError(
        f"activation={identifier!r} has no mean-field formula here; accepted: "
        f"{', '.join(map(repr, SUPPORTED_ACTIVATIONS))} (or keras.layers.LeakyReLU)"
    )
