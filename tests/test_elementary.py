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


def test_linear_products_follow_the_gain():
    shrinking = vgrad.jacobian_product_norms(40, 64, gain=0.8)
    growing = vgrad.jacobian_product_norms(40, 64, gain=1.25)
    assert shrinking[-1] < 1e-2 < 1e2 < growing[-1]
    # One linear layer: the spectral norm of a 64x64 Gaussian matrix is about 2 * gain.
    assert vgrad.jacobian_product_norms(1, 256, gain=1.0)[0] == pytest.approx(2.0, rel=0.1)


def test_sigmoid_products_vanish_at_least_as_fast_as_a_quarter_per_layer():
    norms = vgrad.jacobian_product_norms(30, 64, activation="sigmoid")
    # ||D_l W_l|| <= max sigmoid' * ||W_l|| <= 0.25 * 2.2 for 64x64 Gaussian W_l (gain 1).
    depths = np.arange(1, 31)
    assert np.all(norms <= (0.25 * 2.2) ** depths)
    assert np.all(np.diff(np.log(norms)) < 0)


@pytest.mark.parametrize(
    "kwargs, match",
    [({"depth": 0, "width": 4}, "depth"), ({"depth": 2, "width": 4, "gain": -1.0}, "gain"),
     ({"depth": 2, "width": 4, "activation": "nope"}, "activation")],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        vgrad.jacobian_product_norms(**kwargs)


def test_bad_points():
    with pytest.raises(ValueError, match="z must be a non-empty 1-D array"):
        vgrad.activation_derivatives(["tanh"], np.zeros((2, 2)))
