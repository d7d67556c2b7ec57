"""Old public names still work, warn with the new name, and give what the new name gives."""

import importlib

import numpy as np
import pytest

import vgrad
from vgrad._deprecated import RENAMED


def test_old_names_are_listed_nowhere_and_resolve_to_new_ones():
    assert not set(RENAMED) & set(vgrad.__all__)
    assert set(RENAMED.values()) <= set(vgrad.__all__)
    for module_name in ("vgrad", "vgrad.theory", "vgrad.rnn"):
        module = importlib.import_module(module_name)
        assert not set(RENAMED) & set(getattr(module, "__all__", ())), module_name
    probes = importlib.import_module("vgrad.probes")
    with pytest.raises(AttributeError, match="no attribute 'backprop_norm'"):
        probes.backprop_norm  # noqa: B018  a typo is not an old name


def test_backprop_norms(tiny_mlp, batch):
    x, y = batch[0][:32], batch[1][:32]
    with pytest.warns(DeprecationWarning, match=r"vgrad\.backprop_norms .*use vgrad\.backprop_rms"):
        old = vgrad.backprop_norms
    assert old(tiny_mlp, x, y) == vgrad.backprop_rms(tiny_mlp, x, y)


def test_time_gradient_norms():
    x, y = vgrad.memory_task(8, 6, seed=0)
    model = vgrad.build_rnn(4, seed=0)
    with pytest.warns(DeprecationWarning, match="use vgrad.time_gradient_rms"):
        old = vgrad.time_gradient_norms
    np.testing.assert_array_equal(old(model, x, y), vgrad.time_gradient_rms(model, x, y))


def test_predicted_backprop_norms(tiny_mlp):
    with pytest.warns(DeprecationWarning, match="use vgrad.predicted_backprop_ratios"):
        old = vgrad.predicted_backprop_norms
    assert old(tiny_mlp) == vgrad.predicted_backprop_ratios(tiny_mlp)


def test_jacobian_product_norms():
    with pytest.warns(DeprecationWarning, match="use vgrad.jacobian_product_spectral_norms"):
        old = vgrad.jacobian_product_norms
    np.testing.assert_array_equal(
        old(4, 8, activation="tanh"), vgrad.jacobian_product_spectral_norms(4, 8, activation="tanh")
    )


def test_backprop_gain():
    with pytest.warns(DeprecationWarning, match="use vgrad.backprop_chi"):
        old = vgrad.backprop_gain
    assert old("tanh", "glorot_uniform", 16, 16) == vgrad.backprop_chi("tanh", "glorot_uniform", 16, 16)


def test_phase_configs():
    with pytest.warns(DeprecationWarning, match="use vgrad.DEPTH_SWEEP_CONFIGS"):
        old = vgrad.PHASE_CONFIGS
    assert old is vgrad.DEPTH_SWEEP_CONFIGS


@pytest.mark.parametrize(
    "module_name, old, new",
    [("vgrad.probes", "backprop_norms", "backprop_rms"),
     ("vgrad.elementary", "jacobian_product_norms", "jacobian_product_spectral_norms"),
     ("vgrad.phase", "PHASE_CONFIGS", "DEPTH_SWEEP_CONFIGS"),
     ("vgrad.rnn", "time_gradient_norms", "time_gradient_rms"),
     ("vgrad.rnn.through_time", "time_gradient_norms", "time_gradient_rms"),
     ("vgrad.theory", "backprop_gain", "backprop_chi"),
     ("vgrad.theory", "predicted_backprop_norms", "predicted_backprop_ratios"),
     ("vgrad.theory.mean_field", "backprop_gain", "backprop_chi"),
     ("vgrad.theory.mlp", "predicted_backprop_norms", "predicted_backprop_ratios")],
)
def test_old_names_in_their_modules(module_name, old, new):
    module = importlib.import_module(module_name)
    with pytest.warns(DeprecationWarning, match=f"use {module_name}.{new} instead"):
        value = getattr(module, old)
    assert value is getattr(module, new)


def test_gain_keyword_of_jacobian_products():
    with pytest.warns(DeprecationWarning, match=r"gain=.*use scale="):
        old = vgrad.jacobian_product_spectral_norms(5, 8, gain=1.3, seed=2)
    np.testing.assert_array_equal(old, vgrad.jacobian_product_spectral_norms(5, 8, scale=1.3, seed=2))
    with pytest.raises(TypeError, match="both scale= and its deprecated name gain="):
        vgrad.jacobian_product_spectral_norms(5, 8, gain=1.3, scale=1.3)


def test_recurrent_gain_keyword_of_build_rnn():
    with pytest.warns(DeprecationWarning, match=r"recurrent_gain=.*use recurrent_scale="):
        old = vgrad.build_rnn(4, recurrent_gain=0.5, seed=0)
    new = vgrad.build_rnn(4, recurrent_scale=0.5, seed=0)
    for old_weights, new_weights in zip(old.get_weights(), new.get_weights(), strict=True):
        np.testing.assert_array_equal(old_weights, new_weights)
    assert vgrad.largest_singular_value(old) == pytest.approx(0.5, rel=1e-5)


def test_model_keyword_of_diagnose(batch):
    model = vgrad.build_mlp(6, 8, activation="sigmoid", seed=0)
    x, y = batch[0][:32], batch[1][:32]
    with pytest.warns(DeprecationWarning, match=r"diagnose\(model=.*use subject="):
        old = vgrad.diagnose(model=model, x=x, y=y)
    assert old.to_dict() == vgrad.diagnose(model, x, y).to_dict()  # positional use unchanged
    assert vgrad.diagnose(subject=model, x=x, y=y).to_dict() == old.to_dict()
