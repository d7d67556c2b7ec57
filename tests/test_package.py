from importlib.metadata import version

import vgrad


def test_version_matches_installed_metadata():
    assert vgrad.__version__ == version("vgrad")


def test_public_names_exist():
    for name in vgrad.__all__:
        assert hasattr(vgrad, name), name


def test_import_is_lazy_and_unknown_names_fail():
    import subprocess
    import sys

    code = "import sys, vgrad; print('tensorflow' in sys.modules); vgrad.build_mlp; print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["False", "True"]
    import pytest

    with pytest.raises(AttributeError, match="no attribute 'nonexistent'"):
        vgrad.nonexistent  # noqa: B018


def test_standard_uniform_model_round_trips_through_the_command(tmp_path):
    import numpy as np

    model = vgrad.build_mlp(2, 4, activation="tanh", kernel_initializer=vgrad.StandardUniform(seed=0))
    path = tmp_path / "model.keras"
    model.save(path)
    from vgrad.cli import load_model

    loaded = load_model(str(path))
    for a, b in zip(model.get_weights(), loaded.get_weights()):
        assert np.array_equal(a, b)
