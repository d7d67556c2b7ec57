"""The one seed convention of vgrad: check a ``seed=`` argument, split it into many.

Every vgrad function that draws random numbers takes ``seed=0`` by default, so the
same call gives the same result, whatever seeds the caller set globally. The model
builders also accept ``seed=None``, which leaves the initial weights to Keras's
global seed (``keras.utils.set_random_seed``), as Keras's own layers do.
"""

from __future__ import annotations

import numbers

import numpy as np

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


def spawn_seeds(seed, count):
    """``count`` independent int seeds drawn from ``seed`` (``count`` Nones for ``None``).

    One seed per initializer: a single seeded initializer instance would draw the same
    matrix for every layer of the same shape.
    """
    if seed is None:
        return [None] * count
    return [int(value) for value in np.random.SeedSequence(int(seed)).generate_state(count)]
