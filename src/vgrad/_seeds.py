"""The one seed convention of vgrad: a ``seed=`` argument (checked by
:func:`vgrad._checks.check_seed`), split into many.

Every vgrad function that draws random numbers takes ``seed=0`` by default, so the
same call gives the same result, whatever seeds the caller set globally. The model
builders also accept ``seed=None``, which leaves the initial weights to Keras's
global seed (``keras.utils.set_random_seed``), as Keras's own layers do.
"""

from __future__ import annotations

import numpy as np

def spawn_seeds(seed, count):
    """``count`` independent int seeds drawn from ``seed`` (``count`` Nones for ``None``).

    One seed per initializer: a single seeded initializer instance would draw the same
    matrix for every layer of the same shape.
    """
    if seed is None:
        return [None] * count
    return [int(value) for value in np.random.SeedSequence(int(seed)).generate_state(count)]
