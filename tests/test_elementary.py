import numpy as np
import pytest

import vgrad


def test_derivatives_match_closed_forms():
    z = np.linspace(-6, 6, 1201)
    slopes = vgrad.activation_derivatives(["sigmoid", "tanh", "relu"], z)
    sigmoid = 1 / (1 + np.exp(-z))
    np.testing.assert_allclose(slopes["sigmoid"], sigmoid * (1 - sigmoid), atol=1e-6)
    np.testing.assert_allclose(slopes["tanh"], 1 - np.tanh(z) ** 2, atol=1e-6)
    np.testing.assert_array_equal(slopes["relu"][z > 0], 1.0)
    assert slopes["sigmoid"].max() == pytest.approx(0.25) and z[slopes["sigmoid"].argmax()] == 0


def test_linear_products_follow_the_scale():
    shrinking = vgrad.jacobian_product_spectral_norms(40, 64, scale=0.8)
    growing = vgrad.jacobian_product_spectral_norms(40, 64, scale=1.25)
    assert shrinking[-1] < 1e-2 < 1e2 < growing[-1]
    # One linear layer: the spectral norm of a 256x256 Gaussian matrix with entries of
    # variance scale**2 / 256 is about 2 * scale (Bai-Yin).
    assert vgrad.jacobian_product_spectral_norms(1, 256, scale=1.0)[0] == pytest.approx(2.0, rel=0.1)
    assert vgrad.jacobian_product_spectral_norms(1, 256, scale=1.5)[0] == pytest.approx(3.0, rel=0.1)


def test_tanh_products_match_a_numpy_computation():
    # The same draws as the function makes, but the slope from the closed form tanh' = 1 - tanh^2.
    depth, width, scale, seed = 6, 16, 1.3, 5
    rng = np.random.default_rng(seed)
    hidden, product, expected = rng.standard_normal(width), np.eye(width), []
    for _ in range(depth):
        weights = rng.standard_normal((width, width)) * scale / np.sqrt(width)
        hidden = np.tanh(weights @ hidden)
        product = ((1 - hidden**2)[:, None] * weights) @ product
        expected.append(np.linalg.norm(product, 2))
    products = vgrad.jacobian_product_spectral_norms
    norms = products(depth, width, activation="tanh", scale=scale, seed=seed)
    np.testing.assert_allclose(norms, expected, rtol=1e-10)
    assert not np.allclose(products(depth, width, activation="tanh", scale=scale), expected)


def test_sigmoid_products_vanish_at_least_as_fast_as_a_quarter_per_layer():
    norms = vgrad.jacobian_product_spectral_norms(30, 64, activation="sigmoid")
    # ||D_l W_l|| <= max sigmoid' * ||W_l|| <= 0.25 * 2.2 for 64x64 Gaussian W_l (scale 1):
    # the spectral norm of each is about 2, at most 2.2 at this size.
    depths = np.arange(1, 31)
    assert np.all(norms <= (0.25 * 2.2) ** depths)
    assert np.all(np.diff(np.log(norms)) < 0)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [({"depth": 0, "width": 4}, ValueError, "depth"),
     ({"depth": 2, "width": 4, "scale": -1.0}, ValueError, "scale"),
     ({"depth": 2, "width": 4, "scale": float("inf")}, ValueError, "scale"),
     ({"depth": 2, "width": 4, "scale": "big"}, TypeError, "scale must be a finite float"),
     ({"depth": 2, "width": 4, "activation": "nope"}, ValueError, "activation"),
     # The seed is checked like every vgrad seed: an int in [0, 2**32).
     ({"depth": 2, "width": 4, "seed": True}, TypeError, "seed must be an int"),
     ({"depth": 2, "width": 4, "seed": None}, TypeError, "seed must be an int"),
     ({"depth": 2, "width": 4, "seed": 1.5}, TypeError, "seed must be an int"),
     ({"depth": 2, "width": 4, "seed": -1}, ValueError, r"seed must be an int in \[0, 2\*\*32\)")],
)
def test_bad_arguments(kwargs, error, match):
    with pytest.raises(error, match=match):
        vgrad.jacobian_product_spectral_norms(**kwargs)


def test_seed_gives_the_same_result():
    first, second, other = (vgrad.jacobian_product_spectral_norms(3, 8, seed=seed) for seed in (np.int64(4), 4, 5))
    np.testing.assert_array_equal(first, second)
    assert not np.array_equal(first, other)


def test_bad_points():
    with pytest.raises(ValueError, match="z must be a non-empty 1-D array"):
        vgrad.activation_derivatives(["tanh"], np.zeros((2, 2)))
