"""One compiled function per model and purpose, dropped with the model."""

from __future__ import annotations

_ATTRIBUTE = "_vgrad_compiled"


def cached(model, key, build):
    """Return ``build()`` for ``(model, key)``, building it on the first call only.

    The functions live on the model itself (outside Keras's attribute tracking), so
    they are freed with it; a global weak-keyed cache would keep every model alive,
    since each compiled function refers back to its model.
    """
    per_model = model.__dict__.get(_ATTRIBUTE)
    if per_model is None:
        per_model = {}
        object.__setattr__(model, _ATTRIBUTE, per_model)
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]


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
