"""Compiled functions per model and purpose: bounded, and dropped with the model."""

from __future__ import annotations

from collections import OrderedDict

_ATTRIBUTE = "_vgrad_compiled"
#: Compiled functions kept per model; the least recently used is dropped beyond this.
MAX_FUNCTIONS_PER_MODEL = 8


def cached(model, key, build):
    """Return ``build()`` for ``(model, key)``, building it on the first call only.

    The functions live on the model itself (outside Keras's attribute tracking), so
    they are freed with it; a global weak-keyed cache would keep every model alive,
    since each compiled function refers back to its model. At most
    :data:`MAX_FUNCTIONS_PER_MODEL` are kept per model (least recently used dropped),
    so keys that never repeat (a fresh custom loss function on every call) cannot
    pile up compiled graphs without bound.
    """
    per_model = model.__dict__.get(_ATTRIBUTE)
    if per_model is None:
        per_model = OrderedDict()
        object.__setattr__(model, _ATTRIBUTE, per_model)
    if key in per_model:
        per_model.move_to_end(key)
        return per_model[key]
    value = per_model[key] = build()
    while len(per_model) > MAX_FUNCTIONS_PER_MODEL:
        per_model.popitem(last=False)
    return value


def cache_size(model):
    """Number of compiled functions cached on ``model``."""
    return len(model.__dict__.get(_ATTRIBUTE, ()))


def compile_probe(python_function):
    """``tf.function`` for a per-model probe.

    Every model gets its own traced function, so TensorFlow's "frequent retracing"
    warning (keyed by the Python code object, shared by all models) would fire
    although nothing is retraced needlessly; it is switched off for these functions.
    """
    import tensorflow as tf

    function = tf.function(python_function, reduce_retracing=True)
    function._omit_frequent_tracing_warning = True
    return function
