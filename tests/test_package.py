from importlib.metadata import version
from pathlib import Path

import pytest

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


@pytest.mark.slow
def test_a_saved_standard_uniform_model_loads_in_a_fresh_process(tmp_path):
    import subprocess
    import sys

    path = tmp_path / "model.keras"
    vgrad.build_mlp(2, 4, kernel_initializer=vgrad.StandardUniform(seed=0)).save(path)
    code = (
        "import sys, keras, vgrad\n"
        "if sys.argv[2] == 'register': vgrad.register_serializables()\n"
        "else: __import__(sys.argv[2])\n"
        "model = keras.models.load_model(sys.argv[1])\n"
        "print(type(model.get_layer('dense_1').kernel_initializer).__name__)\n"
    )
    # Keras finds the class only once a module has registered it: register_serializables()
    # does that, and so does importing vgrad.models or vgrad.theory (its old home).
    for mode in ("register", "vgrad.models", "vgrad.theory"):
        result = subprocess.run([sys.executable, "-c", code, str(path), mode],
                                capture_output=True, text=True, env={**__import__("os").environ,
                                                                     "TF_CPP_MIN_LOG_LEVEL": "2"})
        assert result.returncode == 0, result.stderr[-2000:]
        assert result.stdout.split()[-1] == "StandardUniform", mode


@pytest.mark.parametrize(
    "module_name",
    ["vgrad.tables", "vgrad.data", "vgrad.models", "vgrad.elementary", "vgrad.theory.mean_field",
     "vgrad.theory.mlp", "vgrad.rnn.builder", "vgrad.rnn.through_time"],
)
def test_docstring_examples_run(module_name):
    import doctest
    import importlib

    module = importlib.import_module(module_name)
    names = {name: getattr(vgrad, name) for name in vgrad.__all__}
    result = doctest.testmod(module, extraglobs=names, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0, result


def test_every_public_name_is_listed_in_the_readme():
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    missing = [name for name in vgrad.__all__ if f"`{name}`" not in readme]
    assert missing == [], f"public names missing from README.md: {missing}"
