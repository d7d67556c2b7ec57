"""What the monitor reads from the optimizer that owns the loss (``model.optimizer``),
while the recording function is traced: the loss it is given to scale, and the steps a
``LossScaleOptimizer`` skips. With mixed precision, a step whose scaled float16
gradients hold ``inf`` or ``nan`` applies no update (the loss scale is halved instead),
so the inner optimizer, whose ``apply`` the monitor records, never sees it; such steps
are counted in the compiled step by wrapping the optimizer's non-finite branch."""

from __future__ import annotations

import contextlib

import tensorflow as tf

#: The method a Keras ``LossScaleOptimizer`` runs, inside ``ops.cond``, on a skipped step.
SKIP_BRANCH = "_stateful_handle_non_finite_grads"


@contextlib.contextmanager
def seeing_loss(optimizer, see):
    """Within the block, ``optimizer.scale_loss(loss)`` also calls ``see(loss)`` (the loss
    tensor of the step being traced). No-op without ``optimizer`` or when already patched."""
    if optimizer is None or "scale_loss" in vars(optimizer):
        yield
        return
    original = optimizer.scale_loss

    def scale_loss(loss):
        see(loss)
        return original(loss)

    object.__setattr__(optimizer, "scale_loss", scale_loss)
    try:
        yield
    finally:
        object.__delattr__(optimizer, "scale_loss")


@contextlib.contextmanager
def counting_skips(optimizer, count):
    """Within the block, ``optimizer``'s skip branch also calls ``count()`` (at trace
    time, so ``count`` must add graph ops). No-op for an optimizer without that branch."""
    if optimizer is None or not hasattr(optimizer, SKIP_BRANCH) or SKIP_BRANCH in vars(optimizer):
        yield
        return
    original = getattr(optimizer, SKIP_BRANCH)

    def skip():
        result = original()
        count()
        return result

    object.__setattr__(optimizer, SKIP_BRANCH, skip)
    try:
        yield
    finally:
        object.__delattr__(optimizer, SKIP_BRANCH)


class SkipCounter:
    """A device-side count of skipped steps, read by difference."""

    def __init__(self):
        with tf.init_scope():
            self.variable = tf.Variable(0, dtype=tf.int64, trainable=False)
        self._read = 0

    def add(self):
        """Add one (a graph op when called while tracing)."""
        self.variable.assign_add(1)

    def take(self):
        """The count added since the last call."""
        seen = int(self.variable.numpy())
        new, self._read = seen - self._read, seen
        return new
