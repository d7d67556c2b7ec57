"""Recurrent networks: a builder, the recurrent kernel's spectrum and gradients through time.

* :mod:`vgrad.rnn.builder`: :func:`build_rnn`;
* :mod:`vgrad.rnn.layers`: which recurrent layers are read, and finding them in a model;
* :mod:`vgrad.rnn.spectrum`: :func:`largest_singular_value`;
* :mod:`vgrad.rnn.through_time`: :func:`time_gradient_rms`, the RMS of ``dL/dh_t`` per step.
"""

from vgrad._deprecated import renamed_names
from vgrad.rnn.builder import RECURRENT_LAYERS, build_rnn
from vgrad.rnn.layers import GATES, recurrent_layer
from vgrad.rnn.spectrum import largest_singular_value
from vgrad.rnn.through_time import time_gradient_rms, unrolled_forward

__all__ = [
    "GATES",
    "RECURRENT_LAYERS",
    "build_rnn",
    "largest_singular_value",
    "recurrent_layer",
    "time_gradient_rms",
    "unrolled_forward",
]

__getattr__ = renamed_names(__name__, {"time_gradient_norms": "time_gradient_rms"})
