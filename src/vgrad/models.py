"""Deep-network builders: the classic vanishing-gradient MLP and its fixes.

Conventions shared with :func:`vgrad.build_rnn`: sizes that depend on the data default
to the bundled data set the builder is made for (here :func:`vgrad.load_digits`: 64
features, 10 classes), and ``seed=0`` by default, so the same call builds the same
weights; ``seed=None`` leaves them to Keras's global seed.
"""

from __future__ import annotations

import keras

from vgrad._checks import check_count, check_flag
from vgrad._checks import check_seed
from vgrad._seeds import spawn_seeds

#: Activation names suggested in error messages (any Keras identifier works).
COMMON_ACTIVATIONS = (
    "linear", "relu", "leaky_relu", "elu", "selu", "gelu", "softplus", "tanh", "sigmoid",
)
#: Initializer names suggested in error messages (any Keras identifier works).
COMMON_INITIALIZERS = (
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal",
    "lecun_uniform", "lecun_normal", "random_normal", "orthogonal",
)


def keras_activation(activation):
    """Return the Keras activation function for an identifier or callable.

    Raises
    ------
    ValueError
        If ``activation`` names no Keras activation.
    """
    try:
        return keras.activations.get(activation)
    except (ValueError, TypeError) as error:
        raise ValueError(
            f"activation={activation!r} is not a Keras activation; accepted: a callable or "
            f"a name such as {', '.join(map(repr, COMMON_ACTIVATIONS))}"
        ) from error


def resolve_initializer(kernel_initializer):
    """Return a Keras initializer instance for an identifier, config or instance.

    Raises
    ------
    ValueError
        If ``kernel_initializer`` names no Keras initializer.
    """
    try:
        initializer = keras.initializers.get(kernel_initializer)
    except (ValueError, TypeError) as error:
        initializer, cause = None, error
    else:
        cause = None
    if initializer is None:
        raise ValueError(
            f"kernel_initializer={kernel_initializer!r} is not a Keras initializer; accepted: "
            f"an Initializer or a name such as {', '.join(map(repr, COMMON_INITIALIZERS))}"
        ) from cause
    return initializer


def _layer_initializers(initializer, num_layers, seed):
    """One initializer per layer, each with its own seed when seeding is possible.

    A single initializer instance with an integer seed would draw the same matrix for
    every layer, so each layer gets a copy whose seed comes from ``seed`` (or, for
    ``seed=None``, the instance's own integer seed) through ``numpy.random.SeedSequence``.
    """
    config = initializer.get_config()
    own_seed = config.get("seed")
    base = seed if seed is not None else own_seed if isinstance(own_seed, int) else None
    if base is None or "seed" not in config:
        return [initializer.__class__.from_config(config) for _ in range(num_layers)]
    return [
        initializer.__class__.from_config({**config, "seed": layer_seed})
        for layer_seed in spawn_seeds(base, num_layers)
    ]


def build_mlp(
    depth,
    width,
    *,
    activation="relu",
    kernel_initializer="glorot_uniform",
    batch_norm=False,
    residual=False,
    input_dim=64,
    num_classes=10,
    seed=0,
):
    """Build a deep fully connected classifier whose logits come from a final Dense.

    Hidden layer ``i`` (1-based) is ``Dense`` named ``dense_i``, then, with
    ``batch_norm=True``, ``BatchNormalization`` named ``batch_normalization_i``, then
    an ``Activation`` layer named ``activation_i``; so the pre-activation ``z`` of each
    hidden layer is a tensor of its own, which :func:`vgrad.backprop_rms` probes.
    With ``residual=True``, layers whose input already has ``width`` features add it to
    their output (``add_i``): ``h_i = h_{i-1} + phi(z_i)`` (He et al. 2016).

    Parameters
    ----------
    depth : int
        Number of hidden layers, at least 1.
    width : int
        Units per hidden layer, at least 1.
    activation : str or callable, default "relu"
        Keras activation identifier, resolved with ``keras.activations.get``.
    kernel_initializer : str, dict or keras.initializers.Initializer, default "glorot_uniform"
        Keras initializer identifier, resolved with ``keras.initializers.get``; used for
        every Dense kernel, the ``logits`` layer included. Biases start at zero.
    batch_norm : bool, default False
        Put ``BatchNormalization`` between each hidden Dense and its activation (the
        Dense then has no bias, which BatchNorm's ``beta`` replaces). Its moving
        statistics use ``momentum=0.9`` (PyTorch's default; Keras's is 0.99), so that
        they settle within a few short epochs.
    residual : bool, default False
        Add identity skip connections around hidden layers that keep the width.
    input_dim : int, default 64
        Number of input features (default: the 8x8 digits of :func:`vgrad.load_digits`).
    num_classes : int, default 10
        Number of logits (default: the ten digits).
    seed : int or None, default 0
        Seed of the kernel initializers, in ``[0, 2**32)``; the same seed gives the same
        weights, and it overrides an initializer instance's own seed. ``None`` keeps
        that seed, or leaves the weights to Keras's global seed
        (``keras.utils.set_random_seed``) for an unseeded initializer.

    Returns
    -------
    keras.Model
        Functional model mapping ``(batch, input_dim)`` features to ``(batch, num_classes)`` logits.

    Raises
    ------
    TypeError
        If a count is not an int, or ``batch_norm``/``residual`` are not bool.
    ValueError
        If a count is below 1, or the activation or initializer is unknown.

    References
    ----------
    Glorot & Bengio (2010), He et al. (2015, 2016), Ioffe & Szegedy (2015).

    Examples
    --------
    >>> model = build_mlp(20, 32, activation="sigmoid", seed=0)
    >>> [layer.name for layer in model.layers][:3]
    ['features', 'dense_1', 'activation_1']
    """
    depth = check_count("depth", depth)
    width = check_count("width", width)
    input_dim = check_count("input_dim", input_dim)
    num_classes = check_count("num_classes", num_classes)
    seed = check_seed(seed, allow_none=True)
    batch_norm, residual = check_flag("batch_norm", batch_norm), check_flag("residual", residual)
    activation_fn = keras_activation(activation)
    initializers = _layer_initializers(resolve_initializer(kernel_initializer), depth + 1, seed)

    inputs = keras.Input(shape=(input_dim,), name="features")
    hidden = inputs
    for index in range(1, depth + 1):
        z = keras.layers.Dense(
            width,
            use_bias=not batch_norm,
            kernel_initializer=initializers[index - 1],
            name=f"dense_{index}",
        )(hidden)
        if batch_norm:
            z = keras.layers.BatchNormalization(momentum=0.9, name=f"batch_normalization_{index}")(z)
        output = keras.layers.Activation(activation_fn, name=f"activation_{index}")(z)
        if residual and hidden.shape[-1] == width:
            output = keras.layers.Add(name=f"add_{index}")([hidden, output])
        hidden = output
    logits = keras.layers.Dense(
        num_classes, kernel_initializer=initializers[depth], name="logits"
    )(hidden)
    name = getattr(activation_fn, "__name__", "custom")
    return keras.Model(inputs, logits, name=f"mlp_{depth}x{width}_{name}")


@keras.saving.register_keras_serializable(package="vgrad")
class StandardUniform(keras.initializers.VarianceScaling):
    """The "standard" initialisation ``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``.

    Glorot & Bengio (2010), eq. 1: the common heuristic of the time, whose variance
    ``1 / (3 fan_in)`` shrinks back-propagated gradients by about 1/3 per layer.
    Equivalent to ``VarianceScaling(1/3, "fan_in", "uniform")``; seeds as Keras's own.
    Registered for ``keras.saving`` as ``"vgrad>StandardUniform"``.
    """

    def __init__(self, seed=None):
        self._seed_argument = seed
        super().__init__(scale=1.0 / 3.0, mode="fan_in", distribution="uniform", seed=seed)

    def get_config(self):
        return {"seed": keras.saving.serialize_keras_object(self._seed_argument)}


def mlp_layers(model):
    """The hidden layers of a :func:`build_mlp` model, read back from their names.

    Returns
    -------
    list of tuple
        ``[(Dense, activation function, BatchNormalization or None, residual)]``, one
        per hidden layer, input side first; ``residual`` is whether ``add_<i>`` exists.

    Raises
    ------
    TypeError
        If ``model`` is not a ``keras.Model``.
    ValueError
        If its layers do not follow :func:`build_mlp`'s naming.
    """
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
