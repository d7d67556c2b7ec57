"""Offline data: scikit-learn's bundled 8x8 digits, and a long-range memory task.

Nothing here downloads. Both take ``seed=0`` by default (the same call returns the
same arrays); the model builders' defaults fit them: :func:`vgrad.build_mlp` the
digits, :func:`vgrad.build_rnn` the memory task.
"""

from __future__ import annotations

import math
import numbers

import numpy as np

from vgrad._checks import check_count
from vgrad._checks import check_seed


def load_digits(seed=0, test_fraction=0.2):
    """Load the 8x8 digits, split and standardised, without any download.

    The 1,797 images of scikit-learn's bundled copy of the UCI digits are split,
    stratified by class, into a training and a test set. Every pixel feature is
    standardised with the mean and standard deviation of the *training* set (pixels
    that are constant there are only centred), so nothing of the test set leaks in.

    Parameters
    ----------
    seed : int, default 0
        Seed of the stratified split, in ``[0, 2**32)``.
    test_fraction : float, default 0.2
        Share of the examples in the test set, strictly between 0 and 1.

    Returns
    -------
    (x_train, y_train), (x_test, y_test) : tuple of tuples
        ``x_*`` : (num_samples, 64) float32 ndarray; ``y_*`` : (num_samples,) int64
        ndarray of class labels in [0, 10).

    Raises
    ------
    TypeError
        If ``seed`` is not an integer or ``test_fraction`` not a number.
    ValueError
        If ``seed`` is out of range or ``test_fraction`` not strictly between 0 and 1.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape
    ((1437, 64), (360, 64))
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    seed = check_seed(seed)
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, numbers.Real):
        raise TypeError(f"test_fraction must be a float in (0, 1), got {test_fraction!r}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction must be strictly between 0 and 1, got {test_fraction!r}")

    digits = _sk_load_digits()
    num_test = math.ceil(test_fraction * len(digits.target))
    if min(num_test, len(digits.target) - num_test) < 10:  # stratification needs a digit of each class
        raise ValueError(
            f"test_fraction={test_fraction!r} leaves {num_test} test and "
            f"{len(digits.target) - num_test} training examples; each side needs at least 10"
        )
    x_train, x_test, y_train, y_test = train_test_split(
        digits.data,
        digits.target,
        test_size=test_fraction,
        random_state=seed,
        stratify=digits.target,
    )
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train).astype(np.float32)
    x_test = scaler.transform(x_test).astype(np.float32)
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64))


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
        Seed of ``numpy.random.default_rng``, in ``[0, 2**32)``; the same seed gives
        the same data.

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
        If a count is below its minimum, ``seed`` is out of range, or ``noise`` is
        negative or not finite.

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
    seed = check_seed(seed)
    if isinstance(noise, bool) or not isinstance(noise, numbers.Real):
        raise TypeError(f"noise must be a float >= 0, got {noise!r}")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"noise must be a finite float >= 0, got {noise!r}")

    rng = np.random.default_rng(seed)
    y = rng.integers(0, num_symbols, size=num_samples)
    x = np.zeros((num_samples, length, num_symbols + 1), dtype=np.float32)
    x[:, 1:, :num_symbols] = noise * rng.standard_normal((num_samples, length - 1, num_symbols))
    x[np.arange(num_samples), 0, y] = 1.0
    x[:, 0, num_symbols] = 1.0
    return x, y.astype(np.int64)
