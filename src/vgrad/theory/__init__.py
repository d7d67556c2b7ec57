"""Mean-field theory of gradients at initialisation, one idea per module.

* :mod:`vgrad.theory.quadrature`: Gaussian expectations ``E[f(z)]``;
* :mod:`vgrad.theory.activations`: activations and their derivatives in numpy;
* :mod:`vgrad.theory.variances`: the variance of the weights an initializer draws;
* :mod:`vgrad.theory.mean_field`: one layer's forward fixed point and backward factor chi
  (its docstring states the conventions and the assumptions);
* :mod:`vgrad.theory.mlp`: the per-layer prediction for a :func:`vgrad.build_mlp` model.

``StandardUniform`` is re-exported from :mod:`vgrad.models`, where it now lives, for
code that still imports it from here (and for saved models that name this module).
"""

from vgrad._deprecated import renamed_names
from vgrad.models import StandardUniform
from vgrad.theory.activations import SUPPORTED_ACTIVATIONS, activation_and_derivative
from vgrad.theory.mean_field import backprop_chi, variance_fixed_point
from vgrad.theory.mlp import predicted_backprop_ratios
from vgrad.theory.quadrature import gaussian_expectation
from vgrad.theory.variances import (
    SUPPORTED_INITIALIZERS,
    TRUNCATED_NORMAL_VARIANCE,
    initializer_variance,
)

__all__ = [
    "SUPPORTED_ACTIVATIONS",
    "SUPPORTED_INITIALIZERS",
    "TRUNCATED_NORMAL_VARIANCE",
    "StandardUniform",
    "activation_and_derivative",
    "backprop_chi",
    "gaussian_expectation",
    "initializer_variance",
    "predicted_backprop_ratios",
    "variance_fixed_point",
]

__getattr__ = renamed_names(
    __name__,
    {"backprop_gain": "backprop_chi", "predicted_backprop_norms": "predicted_backprop_ratios"},
)
