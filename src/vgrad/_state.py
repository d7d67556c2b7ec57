"""Save and restore a model's non-trainable state around a training-mode pass."""

from __future__ import annotations

import tensorflow as tf


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
