import numpy as np
import pytest

import vgrad


def test_shapes_types_and_split(digits):
    (x_train, y_train), (x_test, y_test) = digits
    assert x_train.shape == (1437, 64) and x_test.shape == (360, 64)
    assert x_train.dtype == np.float32 and x_test.dtype == np.float32
    assert np.issubdtype(y_train.dtype, np.integer)
    assert set(np.unique(y_train)) == set(range(10)) == set(np.unique(y_test))


def test_standardised_with_training_statistics(digits):
    (x_train, _), (x_test, _) = digits
    np.testing.assert_allclose(x_train.mean(axis=0), 0.0, atol=1e-5)
    stds = x_train.std(axis=0)
    varying = stds > 0
    np.testing.assert_allclose(stds[varying], 1.0, atol=1e-4)
    # The test set is scaled with the training statistics, so it is not exactly standard.
    assert not np.allclose(x_test.mean(axis=0), 0.0, atol=1e-5)


def test_seed_controls_split():
    (a, _), _ = vgrad.load_digits(seed=1)
    (b, _), _ = vgrad.load_digits(seed=1)
    (c, _), _ = vgrad.load_digits(seed=2)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        ({"test_fraction": 0.0}, ValueError, "test_fraction"),
        ({"test_fraction": 1.5}, ValueError, "test_fraction"),
        ({"test_fraction": "half"}, TypeError, "test_fraction"),
        ({"seed": 1.5}, TypeError, "seed"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        vgrad.load_digits(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"seed": -1}, r"seed must be an int in \[0, 2\*\*32\)"), ({"test_fraction": 0.001}, "at least 10")],
)
def test_out_of_range_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vgrad.load_digits(**kwargs)
