"""Argument checks shared by every module: one message format per kind of argument.

Each check returns the cleaned value or raises naming the argument and what it accepts:
``TypeError`` for a wrong type, ``ValueError`` for a wrong value of the right type.
"""

from __future__ import annotations

import numbers
import os

import numpy as np


def check_count(name, value, minimum=1):
    """Return ``value`` as an int, or raise naming ``name`` and the accepted range.

    Raises
    ------
    TypeError
        If ``value`` is not an integer (``bool`` included).
    ValueError
        If ``value`` is below ``minimum``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int >= {minimum}, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")
    return int(value)


def check_flag(name, value):
    """Return ``value`` if it is a bool (``numpy.bool_`` included), else raise ``TypeError``."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def check_path(name, value):
    """Return ``value`` as a str path, ``None`` kept; raise ``TypeError`` for anything else."""
    if value is None:
        return None
    if not isinstance(value, (str, os.PathLike)):
        raise TypeError(f"{name} must be None, a str or an os.PathLike, got {value!r}")
    return os.fspath(value)


def check_model(model):
    """Return ``model`` if it is a ``keras.Model``, else raise ``TypeError``."""
    import keras

    if not isinstance(model, keras.Model):
        raise TypeError(f"model must be a keras.Model, got {type(model).__name__}")
    return model


def check_array(name, value, dtype=None):
    """Return ``value`` as a non-empty, finite numeric ndarray (of ``dtype`` if given).

    Raises
    ------
    TypeError
        If ``value`` is not numeric.
    ValueError
        If it holds no example (``len == 0`` or a scalar) or any ``inf``/``nan``.
    """
    try:
        array = np.asarray(value)
        if array.dtype == object or not (
            np.issubdtype(array.dtype, np.number) or np.issubdtype(array.dtype, np.bool_)
        ):
            raise TypeError
        if dtype is not None:
            array = array.astype(dtype, copy=False)
    except (TypeError, ValueError) as error:
        raise TypeError(
            f"{name} must be a numeric array, got {type(value).__name__}"
            + (f" of dtype {array.dtype}" if isinstance(value, np.ndarray) else "")
        ) from error
    if array.ndim < 1 or array.shape[0] == 0:
        raise ValueError(f"{name} must hold at least one example; got shape {array.shape}")
    if np.issubdtype(array.dtype, np.floating) and not np.isfinite(array).all():
        bad = int(np.size(array) - np.count_nonzero(np.isfinite(array)))
        raise ValueError(f"{name} must be finite; it holds {bad} inf/nan value(s)")
    return array


def check_same_length(x, y):
    """Raise ``ValueError`` unless ``x`` and ``y`` hold the same number of examples."""
    if y.ndim < 1 or len(y) != len(x):
        raise ValueError(
            f"x and y must have the same number of examples; got len(x)={len(x)}, y shape {y.shape}"
        )


#: Seeds go to ``numpy.random.SeedSequence``, scikit-learn's ``random_state`` and Keras.
SEED_LIMIT = 2**32


def check_seed(seed, *, allow_none=False):
    """Return ``seed`` as an int in ``[0, 2**32)`` (or ``None`` where allowed).

    Raises
    ------
    TypeError
        If ``seed`` is not an integer (``bool`` included), or ``None`` where not allowed.
    ValueError
        If ``seed`` is negative or not below ``2**32``.
    """
    accepted = "an int in [0, 2**32)" + (" or None" if allow_none else "")
    if seed is None and allow_none:
        return None
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be {accepted}, got {seed!r}")
    if not 0 <= seed < SEED_LIMIT:
        raise ValueError(f"seed must be {accepted}, got {seed!r}")
    return int(seed)
