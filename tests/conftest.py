"""Shared fixtures: quiet TensorFlow, Agg plots, the digits data and tiny seeded models."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

# Agg for this process only: an MPLBACKEND variable would reach the notebook's kernel
# under nbval and stop its figures from being displayed.
matplotlib.use("Agg")

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import vgrad  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    """``(x_train, y_train), (x_test, y_test)`` from :func:`vgrad.load_digits`."""
    return vgrad.load_digits(seed=0)


@pytest.fixture(scope="session")
def batch(digits):
    """A fixed batch of 128 training examples ``(x, y)``."""
    (x_train, y_train), _ = digits
    return x_train[:128], y_train[:128]


@pytest.fixture()
def tiny_mlp():
    """A 3-layer, width-8 tanh MLP with fixed weights."""
    return vgrad.build_mlp(3, 8, activation="tanh", seed=0)


@pytest.fixture()
def rng():
    return np.random.default_rng(0)
