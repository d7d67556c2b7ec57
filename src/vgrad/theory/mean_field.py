"""The mean-field recursion of one layer: forward variance fixed point, backward factor chi.

Conventions. A hidden layer computes ``z_l = W_l h_{l-1} + b_l`` and ``h_l = phi(z_l)``;
``W_l`` has ``fan_out`` rows and ``fan_in`` columns (the transpose of a Keras kernel of
shape ``(fan_in, fan_out)``) and entries of variance ``Var(W)``. Back-propagation gives
``delta_{l-1} = phi'(z_{l-1}) * W_l^T delta_l`` for ``delta = dLoss/dz``; each entry of
``W_l^T delta_l`` sums ``fan_out`` terms, so per unit

    E[delta_{l-1}^2] = fan_out Var(W) E[phi'(z)^2] E[delta_l^2],

while the forward pass multiplies second moments by ``fan_in Var(W)``. Pre-activations
are taken as Gaussian, ``z ~ N(0, q)``, with ``q`` from the forward recursion
``q_l = fan_in Var(W) E[phi(z_{l-1})^2] + Var(b)`` (Poole et al. 2016; Schoenholz et al.
2017), and ``delta`` as independent of the weights it meets again (the gradient
independence assumption).

References
----------
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep feedforward
neural networks. AISTATS.
Poole, B. et al. (2016). Exponential expressivity in deep neural networks through
transient chaos. NeurIPS.
Schoenholz, S. S. et al. (2017). Deep information propagation. ICLR.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from vgrad._deprecated import renamed_names
from vgrad.theory.activations import activation_and_derivative
from vgrad.theory.quadrature import gaussian_expectation
from vgrad.theory.variances import initializer_variance


def variance_fixed_point(activation, weight_variance, bias_variance=0.0, start=1.0):
    """The fixed point ``q*`` of ``q -> weight_variance E[phi(z)^2] + bias_variance``
    that the recursion reaches from ``q = start`` (0.0 or ``inf`` when it has none).

    The map is increasing in ``q`` for the supported activations, so from ``start`` the
    iterates move monotonically to the nearest fixed point in the direction of the first
    step, found here by bracketing on a log grid and bisection. When every ``q`` is a
    fixed point (ReLU with He's variance, a linear net with ``weight_variance = 1``)
    ``start`` is returned: homogeneous activations then give the same ``chi`` for any ``q``.
    """
    phi, _ = activation_and_derivative(activation)

    def excess(q):
        return weight_variance * gaussian_expectation(lambda z: phi(z) ** 2, q) + bias_variance - q

    first = float(excess(start))
    if abs(first) <= 1e-9 * start:
        return float(start)
    grid = np.logspace(math.log10(start), 12.0 if first > 0 else -12.0, 97)[1:]
    values = excess(grid)
    crossed = np.nonzero(values <= 0 if first > 0 else values >= 0)[0]
    if crossed.size == 0:
        return math.inf if first > 0 else 0.0
    low, high = np.log(([start, *grid])[crossed[0]]), np.log(grid[crossed[0]])
    for _ in range(60):
        middle = 0.5 * (low + high)
        if (excess(math.exp(middle)) > 0) == (first > 0):
            low = middle
        else:
            high = middle
    return math.exp(0.5 * (low + high))


def backprop_chi(activation, kernel_initializer, fan_in, fan_out, *, bias_std=0.0):
    """chi, the factor by which one layer multiplies the mean squared back-propagated gradient.

    The gradient is ``dLoss/dz``; ``chi = fan_out Var(W) E[phi'(z)^2]`` with
    ``z ~ N(0, q*)`` at the fixed point of the forward variance recursion
    ``q = fan_in Var(W) E[phi(z)^2] + bias_std**2``, reached from ``q = 1`` (Poole et
    al. 2016; Schoenholz et al. 2017). ``chi < 1``: gradients vanish geometrically
    toward the input; ``chi > 1``: they explode; ``chi = 1``: the
    edge of chaos. Where the recursion runs to ``q* = 0`` (tanh with ``Var(W) fan_in <=
    1``) the limit ``q -> 0`` is used, ``chi = fan_out Var(W) phi'(0)^2``; where it
    diverges (a linear net with ``fan_in Var(W) > 1``), the limit ``q -> inf``.

    Parameters
    ----------
    activation : str or callable
        A Keras activation; see ``SUPPORTED_ACTIVATIONS``.
    kernel_initializer : str, dict or keras.initializers.Initializer
        See :func:`initializer_variance`.
    fan_in, fan_out : int
        Kernel shape ``(fan_in, fan_out)`` as in Keras, at least 1 each.
    bias_std : float, default 0.0
        Standard deviation of the biases (Keras starts them at zero).

    Returns
    -------
    float
        ``chi``. ReLU with He is exactly 1; ReLU with Glorot on square layers 1/2.

    Raises
    ------
    TypeError, ValueError
        For fans below 1, a negative ``bias_std``, or an unsupported activation or initializer.

    References
    ----------
    Glorot & Bengio (2010); He, K. et al. (2015). Delving deep into rectifiers. ICCV.
    Poole et al. (2016); Schoenholz et al. (2017).

    Examples
    --------
    >>> round(backprop_chi("relu", "he_normal", 256, 256), 12)
    1.0
    >>> round(backprop_chi("sigmoid", "glorot_uniform", 256, 256), 4)
    0.0557
    """
    variance = initializer_variance(kernel_initializer, fan_in, fan_out)
    if isinstance(bias_std, bool) or not isinstance(bias_std, numbers.Real):
        raise TypeError(f"bias_std must be a float >= 0, got {bias_std!r}")
    if not bias_std >= 0:
        raise ValueError(f"bias_std must be a float >= 0, got {bias_std!r}")
    _, derivative = activation_and_derivative(activation)
    fixed_point = variance_fixed_point(activation, fan_in * variance, float(bias_std) ** 2)
    q = min(max(fixed_point, 1e-12), 1e12)  # the limits q -> 0 and q -> inf
    return float(fan_out * variance * gaussian_expectation(lambda z: derivative(z) ** 2, q))


__getattr__ = renamed_names(__name__, {"backprop_gain": "backprop_chi"})
