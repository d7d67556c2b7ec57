"""Offline sequence data: a long-range memory task for recurrent networks."""

from __future__ import annotations

import numbers

import numpy as np

from vgrad._checks import check_count


def memory_task(num_samples, length, *, num_symbols=8, noise=1.0, seed=0):
    """Recall the symbol shown at the first step of a noisy sequence.

    Step 1 holds a one-hot symbol and a "remember" marker; steps 2 to ``length``
    hold only Gaussian noise on the symbol channels (the marker is 0). The label is
    the first symbol, so the last hidden state must carry it across ``length - 1``
    noisy steps: a network that cannot keep the noise out of its memory, or whose
    gradient fades before it reaches step 1, stays at chance, ``1 / num_symbols``.
    This is the "noisy sequences with long time lags" setting of Hochreiter &
    Schmidhuber (1997), used there to show that LSTM learns where simple recurrent
    networks fail.

    Parameters
    ----------
    num_samples : int
        Number of sequences, at least 1.
    length : int
        Time steps per sequence, at least 1 (1 means no delay at all).
    num_symbols : int, default 8
        Number of classes, at least 2.
    noise : float, default 1.0
        Standard deviation of the distractor noise, at least 0.
    seed : int, default 0
        Seed of ``numpy.random.default_rng``; the same seed gives the same data.

    Returns
    -------
    x : (num_samples, length, num_symbols + 1) float32 ndarray
        Channels ``0 .. num_symbols - 1`` carry the symbol (step 1) or the noise
        (later steps); channel ``num_symbols`` is the marker, 1 at step 1 only.
    y : (num_samples,) int64 ndarray
        The first symbol, in ``[0, num_symbols)``.

    Raises
    ------
    TypeError
        If a count or the seed is not an int, or ``noise`` is not a number.
    ValueError
        If a count is below its minimum or ``noise`` is negative or not finite.

    References
    ----------
    Hochreiter, S. & Schmidhuber, J. (1997). Long short-term memory. Neural
    Computation 9(8), experiment 2.

    Examples
    --------
    >>> x, y = memory_task(4, 50, seed=0)
    >>> x.shape, y.shape
    ((4, 50, 9), (4,))
    >>> bool((x[:, 0, :8].argmax(axis=1) == y).all())
    True
    """
    num_samples = check_count("num_samples", num_samples, 1)
    length = check_count("length", length, 1)
    num_symbols = check_count("num_symbols", num_symbols, 2)
    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a float >= 0, got {noise!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")

    rng = np.random.default_rng(int(seed))
    y = rng.integers(0, num_symbols, size=num_samples)
    x = np.zeros((num_samples, length, num_symbols + 1), dtype=np.float32)
    x[:, 1:, :num_symbols] = noise * rng.standard_normal((num_samples, length - 1, num_symbols))
    x[np.arange(num_samples), 0, y] = 1.0
    x[:, 0, num_symbols] = 1.0
    return x, y.astype(np.int64)
