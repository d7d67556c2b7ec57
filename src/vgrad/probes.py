"""Per-layer gradient probes: kernel-gradient L2 norms and back-propagated gradient RMS.

Both are views of :func:`vgrad.measure`, which runs one compiled forward and backward
pass per call (training mode, non-trainable state restored afterwards), so probing
never changes the model and repeated calls reuse the traced graph.
"""

from __future__ import annotations

from vgrad._backend import require_tensorflow
from vgrad._deprecated import renamed_names
from vgrad.measurement import measure
from vgrad.tables import LayerDict


def gradient_norms(model, x, y, *, loss=None, training=True):
    """L2 norm of the loss gradient with respect to each layer's kernel.

    Parameters
    ----------
    model : keras.Model
        Any Keras model; every layer with a trainable kernel (Dense, Conv, the
        query/key/value/output kernels of attention, the input kernel of recurrent
        layers) is measured, nested models included.
    x : (num_samples, ...) array_like
        Input batch, with the per-example shape the model expects.
    y : (num_samples, ...) array_like
        Targets that fit the loss (class indices for a classifier).
    loss : None, str or callable, optional
        ``loss(y_true, y_pred)``. Default: the model's compiled loss, else inferred
        from the output layer and ``y`` (see :func:`vgrad.measure`).
    training : bool, default True
        Run the model as in a training step (BatchNorm on batch statistics).

    Returns
    -------
    LayerDict
        {layer name: float}, from the input side to the output. Non-finite
        gradients give ``inf`` or ``nan`` values; nothing is raised for them.

    Raises
    ------
    TypeError, ValueError
        For a model with no kernels, mismatched ``x``/``y`` lengths, an empty or
        non-finite batch, a wrong feature count or labels outside ``[0, num_classes)``.

    Examples
    --------
    >>> norms = gradient_norms(build_mlp(20, 32, activation="sigmoid", seed=0), x, y)
    >>> norms["dense_1"] / norms["dense_20"]  # doctest: +SKIP
    1.2e-11
    """
    require_tensorflow("gradient_norms")
    measurement = measure(model, x, y, loss=loss, training=training)
    norms = LayerDict(
        (layer.name, layer.gradient_norm) for layer in measurement.weight_layers
        if layer.kind in ("dense", "conv", "attention", "recurrent")
    )
    if not norms:
        raise ValueError(f"model {model.name!r} has no layer with a trainable kernel to probe")
    return norms


def backprop_rms(model, x, y, *, loss=None, training=True):
    """Root-mean-square of dLoss/dz at each hidden layer's pre-activation ``z``.

    ``z`` is the input of the activation function: the Dense output, or the
    BatchNormalization output when there is one. These are the "back-propagated
    gradients" of Glorot & Bengio (2010), which show vanishing even where kernel
    gradients do not (the kernel gradient also scales with the layer's input).

    Parameters
    ----------
    model : keras.Model
        A Sequential or functional model whose hidden activations are either
        ``Activation`` layers or the ``activation`` of Dense/Conv layers.
    x, y, loss, training
        As for :func:`gradient_norms`.

    Returns
    -------
    LayerDict
        {hidden layer name: float}, keyed by the kernel layer that feeds the
        activation (``dense_1`` ... for :func:`vgrad.build_mlp` models).

    Raises
    ------
    TypeError, ValueError
        As for :func:`gradient_norms`, and for models without hidden activations or
        subclassed models.

    References
    ----------
    Glorot, X. & Bengio, Y. (2010). Understanding the difficulty of training deep
    feedforward neural networks. AISTATS.
    """
    require_tensorflow("backprop_rms")
    measurement = measure(model, x, y, loss=loss, training=training)
    if not measurement.backprop:
        raise ValueError(measurement.notes[0] if measurement.notes else
                         f"model {model.name!r} has no hidden activation to probe")
    return measurement.backprop


__getattr__ = renamed_names(__name__, {"backprop_norms": "backprop_rms"})
