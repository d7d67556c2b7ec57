"""Offline data: scikit-learn's bundled 8x8 handwritten digits."""

from __future__ import annotations

import math
import numbers

import numpy as np


def load_digits(seed=0, test_fraction=0.2):
    """Load the 8x8 digits, split and standardised, without any download.

    The 1,797 images of scikit-learn's bundled copy of the UCI digits are split,
    stratified by class, into a training and a test set. Every pixel feature is
    standardised with the mean and standard deviation of the *training* set (pixels
    that are constant there are only centred), so nothing of the test set leaks in.

    Parameters
    ----------
    seed : int, default 0
        Seed of the stratified split.
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
        If ``test_fraction`` is not strictly between 0 and 1.

    Examples
    --------
    >>> (x_train, y_train), (x_test, y_test) = load_digits()
    >>> x_train.shape, x_test.shape
    ((1437, 64), (360, 64))
    """
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import StandardScaler

    if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
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
        random_state=int(seed),
        stratify=digits.target,
    )
    scaler = StandardScaler().fit(x_train)
    x_train = scaler.transform(x_train).astype(np.float32)
    x_test = scaler.transform(x_test).astype(np.float32)
    return (x_train, y_train.astype(np.int64)), (x_test, y_test.astype(np.int64))
