"""Numerical primitives shared by every measurement (ground floor: imports only TensorFlow)."""

from __future__ import annotations

import tensorflow as tf


def scaled_norm(tensor, mean=False):
    """L2 norm (or root-mean-square, ``mean=True``) without float32 under- or overflow.

    Squaring float32 values below about 1e-19 gives 0 and above about 2e19 gives
    ``inf``, while the gradients of deep sigmoid nets reach 1e-31; dividing by the
    largest magnitude first keeps every square in range. ``inf`` and ``nan`` pass
    through as such.
    """
    values = tf.reshape(tf.cast(tensor, tf.float32), [-1])
    largest = tf.reduce_max(tf.abs(values))  # ignores nan, so nan is checked apart
    usable = tf.math.is_finite(largest) & (largest > 0)
    scale = tf.where(usable, largest, tf.ones_like(largest))
    reduce = tf.reduce_mean if mean else tf.reduce_sum
    norm = scale * tf.sqrt(reduce(tf.square(values / scale)))
    norm = tf.where(tf.math.is_inf(largest), largest, norm)
    return tf.where(tf.reduce_any(tf.math.is_nan(values)), tf.constant(float("nan"), norm.dtype), norm)


def dense_gradient(gradient):
    """The nonzero rows of ``gradient`` as a dense tensor, which has the same norm.

    Embedding gradients arrive as ``IndexedSlices``, one row per looked-up token with
    repeats; the rows of a repeated token are summed, the rows of tokens absent from
    the batch (all zero) are left out instead of materialising the whole table.
    """
    if isinstance(gradient, tf.IndexedSlices):
        unique, positions = tf.unique(gradient.indices)
        return tf.math.unsorted_segment_sum(gradient.values, positions, tf.shape(unique)[0])
    return gradient


def scaled_norms(tensors, mean=False):
    """:func:`scaled_norm` of each tensor in ``tensors``, as one float32 vector.

    The same arithmetic with the per-tensor checks done once on the vector of largest
    magnitudes, so a deep net's hundreds of norms add fewer small operations to a
    compiled step. A tensor whose largest magnitude is ``inf`` or ``nan`` is left
    unscaled, so that its sum of squares is ``inf`` or ``nan`` in turn.
    """
    if not tensors:
        return tf.zeros((0,), tf.float32)
    flat = [tf.reshape(tf.cast(tensor, tf.float32), [-1]) for tensor in tensors]
    largest = tf.stack([tf.reduce_max(tf.abs(values)) for values in flat])
    scale = tf.where(tf.math.is_finite(largest) & (largest > 0), largest, tf.ones_like(largest))
    reduce = tf.reduce_mean if mean else tf.reduce_sum
    sums = tf.stack([reduce(tf.square(values / scale[i])) for i, values in enumerate(flat)])
    return scale * tf.sqrt(sums)
