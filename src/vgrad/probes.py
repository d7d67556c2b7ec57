"""Per-layer gradient probes: kernel-gradient and back-propagated gradient norms.

Each probe compiles one ``tf.function`` per model and loss and caches it, so repeated
calls with the same shapes reuse the traced graph. Probes run the model in training
mode (BatchNorm uses batch statistics, as in a training step) and restore every
non-trainable variable afterwards, so probing never changes the model.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from vgrad._batch import check_batch, default_loss, kernel_layers
from vgrad._cache import cached, compile_probe
from vgrad._forward import check_replayable, tapped_forward
from vgrad.tables import LayerDict


def compiled_probe(model, kind, loss=None, training=True):
    """Return ``(names, fn)``: the cached compiled probe ``kind`` for ``model``.

    ``fn(x, y)`` returns a float32 vector, one value per name. ``kind`` is
    ``"kernel"`` (L2 norm of dLoss/dkernel) or ``"backprop"`` (RMS of dLoss/dz).
    """
    builder = {"kernel": _kernel_probe, "backprop": _backprop_probe}[kind]
    # The loss object is kept with the function so that its id stays unique.
    names, fn, _ = cached(
        model,
        (kind, id(loss), bool(training)),
        lambda: (*builder(model, default_loss(loss), bool(training)), loss),
    )
    return names, fn


def restoring_state(model):
    """Return ``(save, restore)`` for the model's non-trainable variables (BatchNorm
    moving statistics), to call inside a compiled probe around a training-mode pass."""
    state = list(model.non_trainable_variables)

    def save():
        return [tf.identity(variable.value) for variable in state]

    def restore(saved):
        for variable, value in zip(state, saved):
            variable.assign(value)

    return save, restore


def scaled_norm(tensor, mean=False):
    """L2 norm (or root-mean-square, ``mean=True``) without float32 under- or overflow.

    Squaring float32 values below about 1e-19 gives 0 and above about 2e19 gives
    ``inf``, while the gradients of deep sigmoid nets reach 1e-31; dividing by the
    largest magnitude first keeps every square in range. ``inf`` and ``nan`` pass
    through as such.
    """
    values = tf.reshape(tensor, [-1])
    largest = tf.reduce_max(tf.abs(values))  # ignores nan, so nan is checked apart
    usable = tf.math.is_finite(largest) & (largest > 0)
    scale = tf.where(usable, largest, tf.ones_like(largest))
    reduce = tf.reduce_mean if mean else tf.reduce_sum
    norm = scale * tf.sqrt(reduce(tf.square(values / scale)))
    norm = tf.where(tf.math.is_inf(largest), largest, norm)
    return tf.where(tf.reduce_any(tf.math.is_nan(values)), tf.constant(float("nan"), norm.dtype), norm)


def _kernel_probe(model, loss_fn, training):
    layers = kernel_layers(model)
    if not layers:
        raise ValueError(f"model {model.name!r} has no layer with a trainable kernel to probe")
    names = [name for name, _ in layers]
    kernels = [kernel for _, kernel in layers]
    save, restore = restoring_state(model)

    def fn(x, y):
        saved = save()
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=training))
        gradients = tape.gradient(loss, kernels, unconnected_gradients=tf.UnconnectedGradients.ZERO)
        restore(saved)
        return tf.stack([scaled_norm(gradient) for gradient in gradients])

    return names, compile_probe(fn)


def _backprop_probe(model, loss_fn, training):
    check_replayable(model)
    probe_input = tf.zeros((1, *model.inputs[0].shape[1:]), dtype=tf.float32)
    _, taps = tapped_forward(model, probe_input, training=False)
    names = list(taps.pre_activations)
    if not names:
        raise ValueError(
            f"model {model.name!r} has no hidden activation to probe; back-propagated "
            "gradients are measured at the input of each activation function"
        )
    save, restore = restoring_state(model)

    def fn(x, y):
        saved = save()
        with tf.GradientTape() as tape:
            outputs, taps = tapped_forward(model, x, training=training)
            loss = loss_fn(y, outputs)
        pre_activations = [taps.pre_activations[name] for name in names]
        gradients = tape.gradient(loss, pre_activations)
        restore(saved)
        return tf.stack([scaled_norm(g, mean=True) for g in gradients])

    return names, compile_probe(fn)


def _run(model, kind, x, y, loss, training):
    x, y = check_batch(model, x, y, loss)
    names, fn = compiled_probe(model, kind, loss, training)
    values = fn(tf.constant(x), tf.constant(y)).numpy().astype(np.float64)
    return LayerDict(zip(names, values.tolist()))


def gradient_norms(model, x, y, *, loss=None, training=True):
    """L2 norm of the loss gradient with respect to each layer's kernel.

    Parameters
    ----------
    model : keras.Model
        Any Keras model; every layer with a trainable kernel (Dense, Conv, and the
        input kernel of recurrent cells) is measured.
    x : (num_samples, ...) array_like
        Input batch, with the per-example shape the model expects.
    y : (num_samples, ...) array_like
        Targets; class indices in ``[0, num_classes)`` for the default loss.
    loss : callable, optional
        ``loss(y_true, y_pred)`` returning a scalar. Default: sparse categorical
        cross-entropy from logits.
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
        For a model with no kernels, mismatched ``x``/``y`` lengths, an empty batch,
        a wrong feature count or labels outside ``[0, num_classes)``.

    Examples
    --------
    >>> norms = gradient_norms(build_mlp(20, 32, activation="sigmoid", seed=0), x, y)
    >>> norms["dense_1"] / norms["dense_20"]  # doctest: +SKIP
    1.2e-11
    """
    return _run(model, "kernel", x, y, loss, training)


def backprop_norms(model, x, y, *, loss=None, training=True):
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
    return _run(model, "backprop", x, y, loss, training)
