"""Mean-field prediction of the back-propagated gradient of a :func:`vgrad.build_mlp` model."""

from __future__ import annotations

import numpy as np

from vgrad._deprecated import renamed_names
from vgrad.models import mlp_layers
from vgrad.tables import LayerDict
from vgrad.theory.activations import activation_and_derivative
from vgrad.theory.quadrature import gaussian_expectation
from vgrad.theory.variances import initializer_variance


def _input_moments(x):
    """Second moment, mean and per-feature batch variance of the model's input."""
    if x is None:
        return 1.0, 0.0, 1.0  # standardised features
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a (num_samples >= 2, input_dim) array, got shape {x.shape}")
    return float(np.mean(x**2)), float(np.mean(x)), float(np.mean(np.var(x, axis=0)))


def predicted_backprop_ratios(model, x=None):
    """Mean-field prediction of :func:`vgrad.backprop_rms` as a ratio to the last hidden layer.

    The forward recursion carries, per hidden layer ``l``, the pre-activation variance
    ``q_l`` and, for the input of the next layer, the second moment ``p``, the mean
    ``m`` and the batch variance ``v`` of ``h_l``; the backward recursion carries the mean
    square of ``g_l = dLoss/dh_l``, with ``E[delta_l^2] = E[phi'(z_l)^2] E[g_l^2]``:

    * plain layer: ``q_l = fan_in Var(W) p_{l-1} + Var(b)``, and
      ``E[g_{l-1}^2] = chi_l E[g_l^2]`` with ``chi_l = fan_out Var(W) E[phi'(z_l)^2]``;
    * residual block ``h_l = h_{l-1} + phi(z_l)`` (He et al. 2016): the skip adds the
      identity, ``E[g_{l-1}^2] = (1 + chi_l) E[g_l^2]``, and the stream grows,
      ``p_l = p_{l-1} + E[phi^2] + 2 m_{l-1} E[phi]``;
    * BatchNormalization in training mode (Ioffe & Szegedy 2015, ``gamma = 1``,
      ``beta = 0``) divides ``u = W h`` by its batch deviation ``s = fan_in Var(W)
      v_{l-1}``, so ``z ~ N(0, s / (s + epsilon))`` whatever the weights, and backward
      ``chi_l = fan_out Var(W) E[phi'(z)^2] / (s + epsilon)``: the weight scale cancels.
      With ReLU this is ``pi / (pi - 1)``, the gradient explosion of Yang et al. (2019).
      BatchNorm's backward pass also projects the gradient off its batch mean and off
      ``z``; this is neglected, so residual BatchNorm nets measure somewhat below the
      prediction.

    Exact, per example, for linear nets whose hidden kernels are orthogonal; exact in
    expectation over the weights for linear nets whose top gradient does not depend on
    them (e.g. a loss linear in the logits); exactly 1 everywhere for residual nets with
    zero hidden kernels. Otherwise an infinite-width (mean-field) approximation, whose
    agreement with measurement tests/test_theory.py checks for plain ReLU, tanh and
    sigmoid nets. It fails for ReLU residual nets without BatchNorm: a part of the
    gradient along the stream's growing mean, seeded at order ``1 / width``, grows
    faster than ``1 + chi`` per block, so such nets measure several times the
    prediction, less so the wider they are (tests/test_theory.py measures it).
    The ``logits`` layer does not enter: ratios are relative to ``dense_<depth>``.

    Parameters
    ----------
    model : keras.Model
        Built by :func:`vgrad.build_mlp`; activation, initializers, widths, BatchNorm and
        residual connections are read from its layers, so the prediction is for the
        model as initialised, whatever its weights are now.
    x : (num_samples, input_dim) array_like, optional
        Inputs whose moments start the forward recursion; default standardised
        features (mean 0, variance 1).

    Returns
    -------
    LayerDict
        ``{"dense_1": ..., "dense_<depth>": 1.0}``: predicted RMS of dLoss/dz divided by
        that of the last hidden layer.

    Raises
    ------
    TypeError, ValueError
        For a model not built by :func:`vgrad.build_mlp`, or an unsupported activation
        or initializer (see :func:`vgrad.backprop_chi`).

    References
    ----------
    Poole et al. (2016); Schoenholz et al. (2017); Yang, G. et al. (2019). A mean field
    theory of batch normalization. ICLR. He, K. et al. (2016). Deep residual learning. CVPR.

    Examples
    --------
    >>> model = build_mlp(3, 64, activation="relu", kernel_initializer="he_normal")
    >>> predicted_backprop_ratios(model)
    dense_1  1.000e+00
    dense_2  1.000e+00
    dense_3  1.000e+00
    """
    second_moment, mean, batch_variance = _input_moments(x)
    derivative_squares, backward_factors = [], []
    for dense, activation, batch_norm, residual in mlp_layers(model):
        phi, derivative = activation_and_derivative(activation)
        fan_in, fan_out = (int(size) for size in dense.kernel.shape)
        variance = initializer_variance(dense.kernel_initializer, fan_in, fan_out)
        bias_variance = 0.0
        if dense.use_bias:
            bias_variance = initializer_variance(dense.bias_initializer, fan_out, fan_out)
        if batch_norm is None:
            q = fan_in * variance * second_moment + bias_variance
            scale = 1.0
        else:
            # A bias is constant over the batch, so BatchNorm's centring removes it.
            deviation_square = fan_in * variance * batch_variance + batch_norm.epsilon
            q = (deviation_square - batch_norm.epsilon) / deviation_square
            scale = 1.0 / deviation_square
        phi_mean = float(gaussian_expectation(phi, q))
        phi_square = float(gaussian_expectation(lambda z: phi(z) ** 2, q))
        derivative_squares.append(float(gaussian_expectation(lambda z: derivative(z) ** 2, q)))
        chi = fan_out * variance * derivative_squares[-1] * scale
        backward_factors.append(float(residual) + chi)
        if residual:
            second_moment += phi_square + 2.0 * mean * phi_mean
            mean += phi_mean
            batch_variance += phi_square - phi_mean**2
        else:
            second_moment, mean, batch_variance = phi_square, phi_mean, phi_square - phi_mean**2
    # E[g_{l-1}^2] / E[g_l^2] is the factor of layer l; layer 1's own factor is unused.
    gradient_squares = np.concatenate([np.cumprod(backward_factors[:0:-1])[::-1], [1.0]])
    delta_squares = np.asarray(derivative_squares) * gradient_squares
    with np.errstate(divide="ignore", invalid="ignore"):
        ratios = np.sqrt(delta_squares / delta_squares[-1])
    return LayerDict((f"dense_{index}", float(value)) for index, value in enumerate(ratios, 1))


__getattr__ = renamed_names(
    __name__, {"predicted_backprop_norms": "predicted_backprop_ratios"}
)
