"""Gaussian expectations by Gauss-Legendre quadrature on each side of ``z = 0``.

Every supported activation has its only kink at ``z = 0``, so integrating each half
line separately integrates ReLU, ELU and SELU as accurately as the smooth ones.
"""

from __future__ import annotations

import math

import numpy as np

_HALF_NODES, _HALF_WEIGHTS = np.polynomial.legendre.leggauss(96)
_T = 5.0 * (_HALF_NODES + 1.0)  # nodes on (0, 10): the normal tail beyond 10 is 1e-23
_W = 5.0 * _HALF_WEIGHTS * np.exp(-0.5 * _T**2) / math.sqrt(2.0 * math.pi)
_NODES = np.concatenate([-_T[::-1], _T])
_WEIGHTS = np.concatenate([_W[::-1], _W])
_WEIGHTS /= _WEIGHTS.sum()  # so that ReLU with He gives 1 to the last bit


def gaussian_expectation(function, variance):
    """``E[function(z)]`` for ``z ~ N(0, variance)``; ``variance`` may be an array.

    Parameters
    ----------
    function : callable
        A numpy function, applied elementwise to an array of nodes.
    variance : float or array_like
        Variance of ``z``, at least 0; an array gives one expectation per entry.

    Returns
    -------
    float64 ndarray
        Of the shape of ``variance``.
    """
    z = np.sqrt(np.asarray(variance, dtype=np.float64))[..., None] * _NODES
    return np.sum(function(z) * _WEIGHTS, axis=-1)
