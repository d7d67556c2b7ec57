"""Mean-field predictions: closed forms, exact cases, and agreement with measurement."""

import functools
import math

import numpy as np
import pytest
import tensorflow as tf

import keras

import vgrad
from vgrad.phase import measured_ratio
from vgrad.theory import activation_and_derivative, gaussian_expectation, variance_fixed_point


def normal_cdf(value):
    return 0.5 * (1.0 + math.erf(value / math.sqrt(2.0)))


# --- the quadrature against closed forms -------------------------------------------


@pytest.mark.parametrize("variance", [1e-6, 0.3, 1.0, 50.0])
def test_quadrature_matches_closed_forms(variance):
    assert gaussian_expectation(lambda z: z**2, variance) == pytest.approx(variance, rel=1e-12)
    assert gaussian_expectation(lambda z: z**4, variance) == pytest.approx(3 * variance**2, rel=1e-12)
    relu, _ = activation_and_derivative("relu")
    assert gaussian_expectation(lambda z: relu(z) ** 2, variance) == pytest.approx(variance / 2, rel=1e-12)


def test_quadrature_integrates_kinked_derivatives_exactly():
    # E[elu'(z)^2] = 1/2 + E[exp(2z); z < 0] = 1/2 + e^2 Phi(-2) for z ~ N(0, 1).
    _, elu_derivative = activation_and_derivative("elu")
    expected = 0.5 + math.exp(2.0) * normal_cdf(-2.0)
    assert gaussian_expectation(lambda z: elu_derivative(z) ** 2, 1.0) == pytest.approx(expected, rel=1e-12)
    _, selu_derivative = activation_and_derivative("selu")
    scale, alpha = 1.0507009873554805, 1.6732632423543772
    expected = scale**2 * (0.5 + alpha**2 * math.exp(2.0) * normal_cdf(-2.0))
    assert gaussian_expectation(lambda z: selu_derivative(z) ** 2, 1.0) == pytest.approx(expected, rel=1e-12)
    # Stein's lemma: E[z Phi(z)] = E[phi(z)] = 1 / (2 sqrt(pi)).
    gelu, _ = activation_and_derivative("gelu")
    assert gaussian_expectation(gelu, 1.0) == pytest.approx(1 / (2 * math.sqrt(math.pi)), rel=1e-12)


def test_numpy_activations_match_keras():
    z = np.linspace(-6, 6, 96)  # no node at the kink z = 0, as in the quadrature
    for name in vgrad.theory.SUPPORTED_ACTIVATIONS:
        phi, derivative = activation_and_derivative(name)
        tensor = tf.constant(z)
        with tf.GradientTape() as tape:
            tape.watch(tensor)
            output = keras.activations.get(name)(tensor)
        np.testing.assert_allclose(phi(z), output.numpy(), rtol=1e-6, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(derivative(z), tape.gradient(output, tensor).numpy(), rtol=1e-6, atol=1e-12, err_msg=name)


# --- the per-layer chi ---------------------------------------------------------------


def test_known_chis():
    assert vgrad.backprop_chi("relu", "he_normal", 256, 256) == pytest.approx(1.0, abs=1e-12)
    assert vgrad.backprop_chi("relu", "he_uniform", 64, 256) == pytest.approx(4.0, abs=1e-12)
    assert vgrad.backprop_chi("relu", "glorot_uniform", 256, 256) == pytest.approx(0.5, abs=1e-12)
    assert vgrad.backprop_chi("linear", "glorot_normal", 100, 100) == pytest.approx(1.0, abs=1e-12)
    assert vgrad.backprop_chi("leaky_relu", "he_normal", 100, 100) == pytest.approx(1.04, abs=1e-12)
    slope = keras.layers.LeakyReLU(negative_slope=0.1)
    assert vgrad.backprop_chi(slope, "he_normal", 100, 100) == pytest.approx(1.01, abs=1e-12)
    partial = functools.partial(keras.activations.leaky_relu, negative_slope=0.1)
    assert vgrad.backprop_chi(partial, "he_normal", 100, 100) == pytest.approx(1.01, abs=1e-12)
    # tanh at the trivial fixed point q* = 0: chi = fan_out Var(W) tanh'(0)^2.
    assert vgrad.backprop_chi("tanh", "glorot_uniform", 64, 64) == pytest.approx(1.0, abs=1e-9)
    assert vgrad.backprop_chi("tanh", "standard_uniform", 64, 64) == pytest.approx(1 / 3, abs=1e-9)


def test_sigmoid_chi_is_its_squared_slope_at_the_fixed_point():
    sigmoid, derivative = activation_and_derivative("sigmoid")
    q = variance_fixed_point("sigmoid", 1.0)
    assert q == pytest.approx(gaussian_expectation(lambda z: sigmoid(z) ** 2, q), rel=1e-9)
    chi = vgrad.backprop_chi("sigmoid", "glorot_uniform", 128, 128)
    assert chi == pytest.approx(gaussian_expectation(lambda z: derivative(z) ** 2, q), rel=1e-9)
    assert 0.05 < chi < 1 / 16  # sigma'(z) <= 1/4 everywhere


def test_fixed_points():
    tanh, _ = activation_and_derivative("tanh")
    q = variance_fixed_point("tanh", 2.0)  # chaotic phase: a non-trivial fixed point
    assert q > 0.1 and q == pytest.approx(2.0 * gaussian_expectation(lambda z: tanh(z) ** 2, q), rel=1e-9)
    assert variance_fixed_point("tanh", 1.0) == 0.0  # ordered phase: q -> 0
    assert variance_fixed_point("relu", 2.0) == 1.0  # marginal: every q is a fixed point
    assert variance_fixed_point("linear", 2.0) == math.inf  # exploding
    assert variance_fixed_point("relu", 1.0, bias_variance=0.5) == pytest.approx(1.0, rel=1e-9)


# --- initializer variances against their samples -----------------------------------

INITIALIZERS = [
    "glorot_uniform", "glorot_normal", "he_uniform", "he_normal", "lecun_uniform", "lecun_normal",
    "orthogonal", vgrad.StandardUniform(), keras.initializers.RandomNormal(stddev=0.3),
    keras.initializers.RandomUniform(-0.2, 0.2), keras.initializers.TruncatedNormal(stddev=0.5),
    keras.initializers.VarianceScaling(2.0, "fan_out", "untruncated_normal"),
]


@pytest.mark.parametrize("identifier", INITIALIZERS, ids=str)
def test_initializer_variance_matches_samples(identifier):
    fan_in, fan_out = 300, 500
    initializer = keras.initializers.get(identifier)
    if "seed" in initializer.get_config():
        initializer = initializer.__class__.from_config({**initializer.get_config(), "seed": 7})
    samples = np.asarray(initializer((fan_in, fan_out)), dtype=np.float64)
    # 150,000 samples: the sample variance is within 1% (about 3 standard errors).
    assert samples.var() == pytest.approx(vgrad.initializer_variance(identifier, fan_in, fan_out), rel=0.01)


def test_truncated_normal_has_less_variance_than_its_stddev_says():
    variance = vgrad.initializer_variance(keras.initializers.TruncatedNormal(stddev=1.0), 10, 10)
    assert variance == pytest.approx(0.7737413, rel=1e-6)
    # whereas Keras rescales its variance-scaling truncated normals to the nominal variance
    assert vgrad.initializer_variance("he_normal", 10, 10) == pytest.approx(0.2, rel=1e-12)


def test_standard_uniform_that_moved_to_models_still_imports_from_theory():
    from vgrad import models
    from vgrad.theory import StandardUniform

    assert StandardUniform is models.StandardUniform is vgrad.StandardUniform


# --- where the theory is exact -----------------------------------------------------


def test_linear_orthogonal_net_is_exact_per_example(batch):
    # Orthogonal square kernels preserve every vector's norm: each layer multiplies
    # dLoss/dz by exactly gain, whatever the batch and the loss.
    x, y = batch
    depth, gain = 12, 1.1
    model = vgrad.build_mlp(
        depth, 64, activation="linear", kernel_initializer=keras.initializers.Orthogonal(gain), seed=0
    )
    predicted = vgrad.predicted_backprop_ratios(model)
    measured = vgrad.backprop_rms(model, x, y)
    for index in range(1, depth + 1):
        name = f"dense_{index}"
        assert predicted[name] == pytest.approx(gain ** (depth - index), rel=1e-12)
        assert measured[name] / measured[f"dense_{depth}"] == pytest.approx(predicted[name], rel=1e-4)


def test_linear_net_is_exact_in_expectation(batch):
    # With a loss linear in the logits, dLoss/dz at the last hidden layer does not depend
    # on the hidden kernels, so E[ratio^2] = prod chi exactly; the mean over seeds must
    # agree within three standard errors. TruncatedNormal's variance is 0.774 stddev^2:
    # ignoring the truncation would predict 5.2 instead of 1.63.
    x, y = batch
    depth, width = 10, 256
    coefficients = tf.constant(np.random.default_rng(0).normal(size=(len(x), width)), tf.float32)

    def linear_loss(y_true, logits):
        return tf.reduce_sum(coefficients * logits)

    initializer = keras.initializers.TruncatedNormal(stddev=1.2 / 16)
    squares = []
    for seed in range(6):
        model = vgrad.build_mlp(
            depth, width, activation="linear", kernel_initializer=initializer, num_classes=width, seed=seed
        )
        predicted = vgrad.predicted_backprop_ratios(model)["dense_1"]
        squares.append((measured_ratio(model, x, y, loss=linear_loss) / predicted) ** 2)
    assert predicted == pytest.approx(1.1141875 ** ((depth - 1) / 2), rel=1e-6)
    standard_error = np.std(squares, ddof=1) / np.sqrt(len(squares))
    assert abs(np.mean(squares) - 1.0) < 3 * standard_error < 0.1


def test_zero_residual_branches_pass_the_gradient_unchanged(batch):
    x, y = batch
    model = vgrad.build_mlp(8, 64, activation="tanh", kernel_initializer="zeros", residual=True, seed=0)
    # Only the logits layer needs weights for a gradient to flow; the ratios ignore it.
    logits = model.get_layer("logits")
    logits.kernel.assign(np.random.default_rng(0).normal(size=logits.kernel.shape) / 8)
    measured = vgrad.backprop_rms(model, x, y)
    assert measured["dense_8"] > 0
    assert set(measured.values()) == {measured["dense_8"]}  # bit for bit
    assert set(vgrad.predicted_backprop_ratios(model, x).values()) == {1.0}


# --- mean-field agreement at width 256 ---------------------------------------------

# Observed spread over seeds at width 256, depth 30: about 0.07 decades per net, so a
# two-seed mean within 0.2 decades is about a 4-sigma bound, on ratios spanning 12 decades.
MEAN_FIELD_CASES = [
    ("relu", "he_normal", 30, {}, 0.2),
    ("relu", "glorot_uniform", 20, {}, 0.2),
    ("tanh", "glorot_uniform", 30, {}, 0.2),
    ("tanh", "vgrad>StandardUniform", 20, {}, 0.2),
    ("sigmoid", "glorot_uniform", 20, {}, 0.2),
    ("sigmoid", "glorot_uniform", 10, {}, 0.2),
    ("relu", "he_normal", 20, {"batch_norm": True}, 0.15),
    ("tanh", "glorot_uniform", 20, {"residual": True}, 0.15),
    # Measured 0.17 decades low: BatchNorm's backward pass removes the part of the
    # gradient shared by the batch, which the mean-field recursion neglects.
    ("relu", "he_normal", 20, {"batch_norm": True, "residual": True}, 0.3),
]


@pytest.mark.parametrize(
    "activation, initializer, depth, flags, tolerance",
    MEAN_FIELD_CASES,
    ids=[f"{a}-{i}-{d}-{'-'.join(f) or 'plain'}" for a, i, d, f, _ in MEAN_FIELD_CASES],
)
def test_prediction_agrees_with_measurement(digits, activation, initializer, depth, flags, tolerance):
    (x_train, y_train), _ = digits
    x, y = x_train[:256], y_train[:256]
    errors = []
    for seed in (0, 1):
        model = vgrad.build_mlp(depth, 256, activation=activation, kernel_initializer=initializer, seed=seed, **flags)
        predicted = vgrad.predicted_backprop_ratios(model, x)["dense_1"]
        errors.append(math.log10(measured_ratio(model, x, y, predicted=predicted) / predicted))
    assert abs(np.mean(errors)) < tolerance, errors


def test_relu_residual_nets_escape_the_prediction_less_the_wider_they_are(digits):
    # Documented in predicted_backprop_ratios: without BatchNorm, a ReLU residual net's
    # gradient grows along the stream's mean faster than 1 + chi per block, by a part
    # seeded at order 1 / width. Measured (seeds 0, 1; depth 20): 7.6 and 6.9 times the
    # prediction at width 256, 3.5 and 3.3 times at width 512.
    (x_train, y_train), _ = digits
    x, y = x_train[:256], y_train[:256]
    excess = {}
    for width in (256, 512):
        model = vgrad.build_mlp(20, width, activation="relu", kernel_initializer="he_normal",
                                residual=True, seed=0)
        predicted = vgrad.predicted_backprop_ratios(model, x)["dense_1"]
        excess[width] = measured_ratio(model, x, y, predicted=predicted) / predicted
    assert 5 < excess[256] < 10 and 2.5 < excess[512] < 4.5, excess
    assert excess[512] < 0.6 * excess[256]


def test_batch_norm_explodes_at_the_rate_of_yang_et_al():
    model = vgrad.build_mlp(11, 64, activation="relu", batch_norm=True, seed=0)
    predicted = vgrad.predicted_backprop_ratios(model)
    # pi / (pi - 1) per layer in mean square, whatever the initializer (up to epsilon).
    assert predicted["dense_1"] ** 2 == pytest.approx((math.pi / (math.pi - 1)) ** 10, rel=0.01)


def test_prediction_has_the_keys_of_the_measurement(tiny_mlp, batch):
    x, y = batch
    predicted = vgrad.predicted_backprop_ratios(tiny_mlp, x)
    assert list(predicted) == list(vgrad.backprop_rms(tiny_mlp, x, y))
    assert isinstance(predicted, vgrad.LayerDict) and predicted["dense_3"] == 1.0
    assert "dense_1" in repr(predicted)


# --- bad input ---------------------------------------------------------------------


def test_bad_input_is_refused():
    with pytest.raises(ValueError, match="activation='softmax'.*accepted"):
        vgrad.backprop_chi("softmax", "he_normal", 10, 10)
    with pytest.raises(ValueError, match="activation='no_such'"):
        vgrad.backprop_chi("no_such", "he_normal", 10, 10)
    with pytest.raises(ValueError, match="kernel_initializer='no_such'.*accepted"):
        vgrad.backprop_chi("relu", "no_such", 10, 10)
    with pytest.raises(ValueError, match="kernel_initializer="):
        vgrad.backprop_chi("relu", keras.initializers.RandomNormal(mean=1.0), 10, 10)
    with pytest.raises(ValueError, match="kernel_initializer="):
        vgrad.backprop_chi("relu", "identity", 10, 10)
    with pytest.raises(ValueError, match="fan_in must be an int >= 1"):
        vgrad.backprop_chi("relu", "he_normal", 0, 10)
    with pytest.raises(TypeError, match="fan_out must be an int"):
        vgrad.backprop_chi("relu", "he_normal", 10, 2.5)
    with pytest.raises(ValueError, match="bias_std"):
        vgrad.backprop_chi("relu", "he_normal", 10, 10, bias_std=-1.0)


def test_models_not_built_by_build_mlp_are_refused(tiny_mlp):
    with pytest.raises(TypeError, match="keras.Model"):
        vgrad.predicted_backprop_ratios("mlp")
    sequential = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(2)])
    with pytest.raises(ValueError, match="not built by vgrad.build_mlp.*dense_1"):
        vgrad.predicted_backprop_ratios(sequential)
    with pytest.raises(ValueError, match="x must be"):
        vgrad.predicted_backprop_ratios(tiny_mlp, np.zeros(64))
