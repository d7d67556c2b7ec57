"""Argument checks shared by every module: one message format for bad counts."""

from __future__ import annotations

import numbers


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
