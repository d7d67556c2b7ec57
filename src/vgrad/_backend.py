"""Which Keras backend runs, and the check at the top of the TensorFlow-only entry points
(the probes: ``gradient_norms``, ``measure``, ``diagnose(model, x, y)``, ...)."""

from __future__ import annotations

import keras

#: What works on every Keras backend (said in the error of a TensorFlow-only function).
PORTABLE = "vgrad.GradientMonitor and vgrad.diagnose(monitor)"


def require_tensorflow(entry_point):
    """Raise ``RuntimeError`` unless Keras runs on TensorFlow.

    Parameters
    ----------
    entry_point : str
        The public name called, e.g. ``"gradient_norms"``, quoted in the message.
    """
    backend = keras.backend.backend()
    if backend != "tensorflow":
        raise RuntimeError(
            f"vgrad.{entry_point} needs Keras's TensorFlow backend, but this process runs "
            f"Keras on {backend!r} (KERAS_BACKEND={backend}). On {backend}, {PORTABLE} "
            f"work; run the probes in a process with KERAS_BACKEND=tensorflow")
