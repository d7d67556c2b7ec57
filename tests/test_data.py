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


# --- the memory task -------------------------------------------------------------


def test_memory_task_labels_live_only_in_the_first_step():
    x, y = vgrad.memory_task(500, 30, num_symbols=5, noise=0.0, seed=3)
    assert x.shape == (500, 30, 6) and x.dtype == np.float32 and y.dtype == np.int64
    np.testing.assert_array_equal(x[:, 0, :5].argmax(axis=1), y)
    np.testing.assert_array_equal(x[:, :, 5], np.eye(30)[0][None].repeat(500, axis=0))
    assert not x[:, 1:].any()  # without noise the later steps are empty
    assert set(np.unique(y)) == set(range(5))
    noisy, labels = vgrad.memory_task(500, 30, num_symbols=5, noise=1.0, seed=3)
    np.testing.assert_array_equal(labels, y)
    assert noisy[:, 1:, :5].std() == pytest.approx(1.0, rel=0.05)


def test_memory_task_is_deterministic():
    first, second, other = (vgrad.memory_task(8, 10, seed=seed) for seed in (7, 7, 8))
    np.testing.assert_array_equal(first[0], second[0])
    np.testing.assert_array_equal(first[1], second[1])
    assert not np.array_equal(first[0], other[0])


@pytest.mark.parametrize(
    "args, kwargs, error, match",
    [
        ((0, 10), {}, ValueError, "num_samples"),
        ((4, 0), {}, ValueError, "length"),
        ((4.0, 10), {}, TypeError, "num_samples"),
        ((4, 10), {"num_symbols": 1}, ValueError, "num_symbols"),
        ((4, 10), {"noise": -1.0}, ValueError, "noise"),
        ((4, 10), {"noise": "loud"}, TypeError, "noise"),
        ((4, 10), {"seed": None}, TypeError, "seed"),
        ((4, 10), {"seed": -3}, ValueError, r"seed must be an int in \[0, 2\*\*32\)"),
    ],
)
def test_memory_task_rejects_bad_arguments(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        vgrad.memory_task(*args, **kwargs)


def test_memory_task_lives_beside_the_digits_and_the_old_module_still_works():
    from vgrad.data import memory_task
    from vgrad.sequences import memory_task as old_name

    assert vgrad.memory_task is memory_task is old_name
