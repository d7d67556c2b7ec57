"""Mean-field predictions of back-propagated gradient norms at initialisation.

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
independence assumption). Expectations over ``z`` use Gauss-Legendre quadrature on each
side of ``z = 0``, where every supported activation has its only kink, so ReLU, ELU and
SELU are integrated as accurately as the smooth ones.

References
----------
Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep feedforward
neural networks. AISTATS.
Poole, B. et al. (2016). Exponential expressivity in deep neural networks through
transient chaos. NeurIPS.
Schoenholz, S. S. et al. (2017). Deep information propagation. ICLR.
"""

from __future__ import annotations

import functools
import math
import numbers

import numpy as np

import keras

from vgrad._checks import check_count
from vgrad.tables import LayerDict

_HALF_NODES, _HALF_WEIGHTS = np.polynomial.legendre.leggauss(96)
_T = 5.0 * (_HALF_NODES + 1.0)  # nodes on (0, 10): the normal tail beyond 10 is 1e-23
_W = 5.0 * _HALF_WEIGHTS * np.exp(-0.5 * _T**2) / math.sqrt(2.0 * math.pi)
_NODES = np.concatenate([-_T[::-1], _T])
_WEIGHTS = np.concatenate([_W[::-1], _W])
_WEIGHTS /= _WEIGHTS.sum()  # so that ReLU with He gives 1 to the last bit
#: Variance of a standard normal truncated to [-2, 2], as Keras's truncated normals are.
TRUNCATED_NORMAL_VARIANCE = 1.0 - 4.0 * math.exp(-2.0) / math.sqrt(2.0 * math.pi) / math.erf(
    math.sqrt(2.0)
)
SUPPORTED_ACTIVATIONS = (
    "linear", "relu", "leaky_relu", "elu", "selu", "gelu", "silu", "softplus", "tanh", "sigmoid",
)
SUPPORTED_INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform",
    "lecun_normal", "standard_uniform", "orthogonal", "zeros", "RandomNormal(stddev=...)",
    "RandomUniform(minval=-a, maxval=a)", "TruncatedNormal(stddev=...)",
)


def gaussian_expectation(function, variance):
    """``E[function(z)]`` for ``z ~ N(0, variance)``; ``variance`` may be an array."""
    z = np.sqrt(np.asarray(variance, dtype=np.float64))[..., None] * _NODES
    return np.sum(function(z) * _WEIGHTS, axis=-1)


@keras.saving.register_keras_serializable(package="vgrad")
class StandardUniform(keras.initializers.VarianceScaling):
    """The "standard" initialisation ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Glorot & Bengio (2010), eq. 1: the common heuristic of the time, whose variance
    ``1 / (3 fan_in)`` shrinks back-propagated gradients by about 1/3 per layer.
    Equivalent to ``VarianceScaling(1/3, "fan_in", "uniform")``; seeds as Keras's own.
    """

    def __init__(self, seed=None):
        self._seed_argument = seed
        super().__init__(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)

    def get_config(self):
        return {"seed": keras.saving.serialize_keras_object(self._seed_argument)}


def _sigmoid(z):
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _normal_cdf(z):
    return 0.5 * (1.0 + _ERF(z / math.sqrt(2.0)))


def _normal_pdf(z):
    return np.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi)


_ERF = np.vectorize(math.erf, otypes=[float])
_SELU_ALPHA, _SELU_SCALE = 1.6732632423543772, 1.0507009873554805


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


def resolve_activation(activation):
    """Return ``(phi, phi')`` numpy functions for a Keras activation identifier.

    Accepts the names in ``SUPPORTED_ACTIVATIONS``, the matching ``keras.activations``
    functions, ``keras.layers.LeakyReLU`` and ``functools.partial`` of
    ``keras.activations.leaky_relu`` (``negative_slope=``) or ``elu`` (``alpha=``).

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


def initializer_variance(kernel_initializer, fan_in, fan_out):
    """Variance of one entry of a ``(fan_in, fan_out)`` kernel drawn by an initializer.

    The variance the samples really have: Keras's variance-scaling "normal" initializers
    draw a normal truncated at two standard deviations whose ``stddev`` Keras divides by
    0.8796 so that the variance is exactly ``scale / n``; ``TruncatedNormal(stddev=s)``
    does not, and has variance ``0.7737 s**2``. ``Orthogonal(gain)`` has
    ``gain**2 / max(fan_in, fan_out)``.

    Parameters
    ----------
    kernel_initializer : str, dict or keras.initializers.Initializer
        One of ``SUPPORTED_INITIALIZERS``; "standard_uniform" is :class:`StandardUniform`.
    fan_in, fan_out : int
        Kernel shape, at least 1 each.

    Returns
    -------
    float

    Raises
    ------
    TypeError, ValueError
        For fans that are not ints >= 1, or an unknown or non-zero-mean initializer.
    """
    fan_in, fan_out = check_count("fan_in", fan_in), check_count("fan_out", fan_out)
    try:
        initializer = (
            StandardUniform()
            if kernel_initializer in ("standard_uniform", "StandardUniform")
            else keras.initializers.get(kernel_initializer)
        )
    except (ValueError, TypeError):
        initializer = None
    inits = keras.initializers
    if isinstance(initializer, inits.VarianceScaling):
        fans = {"fan_in": fan_in, "fan_out": fan_out, "fan_avg": (fan_in + fan_out) / 2.0}
        # Keras divides the truncated normal's stddev by 0.8796 so that this holds for it too.
        return initializer.scale / max(1.0, fans[initializer.mode])
    if isinstance(initializer, inits.Orthogonal):
        return initializer.gain**2 / max(fan_in, fan_out)
    if isinstance(initializer, inits.Zeros) or (
        isinstance(initializer, inits.Constant) and np.all(np.asarray(initializer.value) == 0)
    ):
        return 0.0
    if isinstance(initializer, inits.RandomNormal) and initializer.mean == 0:
        return float(initializer.stddev) ** 2
    if isinstance(initializer, inits.TruncatedNormal) and initializer.mean == 0:
        return TRUNCATED_NORMAL_VARIANCE * float(initializer.stddev) ** 2
    if isinstance(initializer, inits.RandomUniform) and initializer.minval == -initializer.maxval:
        return (initializer.maxval - initializer.minval) ** 2 / 12.0
    raise ValueError(
        f"kernel_initializer={kernel_initializer!r} is not a zero-mean initializer with a known "
        f"variance; accepted: {', '.join(SUPPORTED_INITIALIZERS)}"
    )


def variance_fixed_point(activation, weight_variance, bias_variance=0.0, start=1.0):
    """The fixed point ``q*`` of ``q -> weight_variance E[phi(z)^2] + bias_variance``
    that the recursion reaches from ``q = start`` (0.0 or ``inf`` when it has none).

    The map is increasing in ``q`` for the supported activations, so from ``start`` the
    iterates move monotonically to the nearest fixed point in the direction of the first
    step, found here by bracketing on a log grid and bisection. When every ``q`` is a
    fixed point (ReLU with He's variance, a linear net with ``weight_variance = 1``)
    ``start`` is returned: homogeneous activations then give the same gain for any ``q``.
    """
    phi, _ = resolve_activation(activation)

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


def backprop_gain(activation, kernel_initializer, fan_in, fan_out, *, bias_std=0.0):
    """Expected factor by which one layer multiplies the mean squared ``dLoss/dz``.

    ``chi = fan_out Var(W) E[phi'(z)^2]`` with ``z ~ N(0, q*)`` at the fixed point of the
    forward variance recursion ``q = fan_in Var(W) E[phi(z)^2] + bias_std**2``, reached
    from ``q = 1`` (Poole et al. 2016; Schoenholz et al. 2017). ``chi < 1``: gradients
    vanish geometrically toward the input; ``chi > 1``: they explode; ``chi = 1``: the
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
    >>> round(backprop_gain("relu", "he_normal", 256, 256), 12)
    1.0
    >>> round(backprop_gain("sigmoid", "glorot_uniform", 256, 256), 4)
    0.0557
    """
    variance = initializer_variance(kernel_initializer, fan_in, fan_out)
    if isinstance(bias_std, bool) or not isinstance(bias_std, numbers.Real) or not bias_std >= 0:
        raise ValueError(f"bias_std must be a float >= 0, got {bias_std!r}")
    _, derivative = resolve_activation(activation)
    fixed_point = variance_fixed_point(activation, fan_in * variance, float(bias_std) ** 2)
    q = min(max(fixed_point, 1e-12), 1e12)  # the limits q -> 0 and q -> inf
    return float(fan_out * variance * gaussian_expectation(lambda z: derivative(z) ** 2, q))


def _mlp_layers(model):
    """Read ``[(Dense, activation, BatchNormalization or None, residual)]`` from a
    :func:`vgrad.build_mlp` model, input side first."""
    if not isinstance(model, keras.Model):
        raise TypeError(
            f"model must be a keras.Model built by vgrad.build_mlp, got {type(model).__name__}"
        )
    names = {layer.name: layer for layer in model.layers}
    layers, index = [], 1
    while f"dense_{index}" in names:
        dense, activation = names[f"dense_{index}"], names.get(f"activation_{index}")
        if not (
            isinstance(dense, keras.layers.Dense)
            and isinstance(activation, keras.layers.Activation)
        ):
            break
        layers.append((dense, activation.activation, names.get(f"batch_normalization_{index}"),
                       f"add_{index}" in names))
        index += 1
    num_dense = sum(name.startswith("dense_") for name in names)
    if not layers or "logits" not in names or len(layers) != num_dense:
        raise ValueError(
            f"model {model.name!r} was not built by vgrad.build_mlp: predictions need Dense layers "
            "'dense_1' ... 'dense_<depth>', each followed by an Activation 'activation_<i>', "
            "and a final Dense 'logits'"
        )
    return layers


def _input_moments(x):
    """Second moment, mean and per-feature batch variance of the model's input."""
    if x is None:
        return 1.0, 0.0, 1.0  # standardised features
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be a (num_samples >= 2, input_dim) array, got shape {x.shape}")
    return float(np.mean(x**2)), float(np.mean(x)), float(np.mean(np.var(x, axis=0)))


def predicted_backprop_norms(model, x=None):
    """Mean-field prediction of :func:`vgrad.backprop_norms`, relative to the last hidden layer.

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
      ``z``; this is neglected, which is harmless when little of the gradient is shared
      by the batch, but residual BatchNorm nets measure 0.1 to 0.2 decades below the
      prediction at depths 20 to 50.

    Exact, per example, for linear nets whose hidden kernels are orthogonal; exact in
    expectation over the weights for linear nets whose top gradient does not depend on
    them (e.g. a loss linear in the logits); exactly 1 everywhere for residual nets with
    zero hidden kernels. Otherwise an infinite-width (mean-field) approximation: at width
    256 and depths 10 to 30, plain ReLU, tanh and sigmoid nets measure within 0.2 decades
    of it while it spans 12 (tests/test_theory.py). It fails for ReLU residual nets
    without BatchNorm: a part of the gradient along the stream's growing mean, seeded at
    order ``1 / width``, grows faster than ``1 + chi`` per block, and at depth 20 the
    measured ratio is 7.6 times the prediction at width 256, 3.5 times at width 512.
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
        or initializer (see :func:`backprop_gain`).

    References
    ----------
    Poole et al. (2016); Schoenholz et al. (2017); Yang, G. et al. (2019). A mean field
    theory of batch normalization. ICLR. He, K. et al. (2016). Deep residual learning. CVPR.

    Examples
    --------
    >>> model = build_mlp(3, 64, activation="relu", kernel_initializer="he_normal")
    >>> predicted_backprop_norms(model)
    dense_1  1.000e+00
    dense_2  1.000e+00
    dense_3  1.000e+00
    """
    second_moment, mean, batch_variance = _input_moments(x)
    derivative_squares, backward_factors = [], []
    for dense, activation, batch_norm, residual in _mlp_layers(model):
        phi, derivative = resolve_activation(activation)
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
