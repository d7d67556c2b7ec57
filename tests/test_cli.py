"""The vgrad command: in-process through main(argv), plus two real processes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import keras

import vgrad
from vgrad.__main__ import main


@pytest.fixture(scope="module")
def files(tmp_path_factory, batch):
    """Saved models (deep sigmoid, overflowing ReLU), data files good and bad."""
    folder = tmp_path_factory.mktemp("cli")
    x, y = batch
    paths = {name: folder / name for name in (
        "sigmoid.keras", "overflow.keras", "data.npz", "no_y.npz", "narrow.npz", "bad.keras",
        "array.npy", "compiled.keras")}
    vgrad.build_mlp(8, 8, activation="sigmoid", seed=0).save(paths["sigmoid.keras"])
    compiled = vgrad.build_mlp(2, 8, seed=0)
    compiled.compile("sgd", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    compiled.save(paths["compiled.keras"])
    huge = keras.initializers.RandomNormal(stddev=1e3)
    vgrad.build_mlp(12, 16, kernel_initializer=huge, seed=0).save(paths["overflow.keras"])
    np.savez(paths["data.npz"], x=x, y=y)
    np.savez(paths["no_y.npz"], x=x)
    np.savez(paths["narrow.npz"], x=x[:, :10], y=y)
    x_nan = x.copy()
    x_nan[0, 0] = np.nan
    paths["nan.npz"] = folder / "nan.npz"
    np.savez(paths["nan.npz"], x=x_nan, y=y)
    np.save(paths["array.npy"], x)
    paths["bad.keras"].write_text("not a model")
    paths["missing.keras"] = folder / "missing.keras"
    return {name: str(path) for name, path in paths.items()}


def test_diagnose_prints_table_verdict_and_advice(files, capsys):
    assert main(["diagnose", files["sigmoid.keras"], files["data.npz"], "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "32 examples" in out and "verdict: vanishing" in out and "ReLU" in out
    assert len([line for line in out.splitlines() if line.startswith("dense_")]) == 8


def test_diagnose_uses_the_compiled_loss(files, capsys):
    assert main(["diagnose", files["compiled.keras"], files["data.npz"], "--batch-size", "16"]) == 0
    out = capsys.readouterr().out
    assert "loss: sparse categorical cross-entropy from logits (the model's compiled loss)" in out


@pytest.fixture(scope="module")
def legacy_files(tmp_path_factory):
    """Keras-2 style Sequential models (``input_dim``) saved by the legacy ``.h5`` writer."""
    import warnings

    folder = tmp_path_factory.mktemp("h5")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(32, 2)).astype("float32")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # input_dim and .h5 are deprecated: that is the point
        regression = keras.Sequential([keras.layers.Dense(8, input_dim=2, activation="relu"),
                                       keras.layers.Dense(1)])
        regression.compile("adam", "mse")
        regression.save(folder / "regression.h5")
        classifier = keras.Sequential([keras.layers.Dense(8, input_shape=(2,), activation="tanh"),
                                       keras.layers.Dense(1, activation="sigmoid")])
        classifier.save(folder / "classifier.h5")  # never compiled: no loss in the file
    _as_written_by_keras2(folder / "classifier.h5", folder / "keras2.h5")
    np.savez(folder / "regression.npz", x=x, y=x @ np.array([1.0, -2.0], "float32"))
    np.savez(folder / "labels.npz", x=x, y=(x[:, 0] > 0).astype("int64"))
    return {path.name: str(path) for path in folder.iterdir()}


def _as_written_by_keras2(source, target):
    """Copy an .h5 file with the layout Keras 2 wrote for Sequential: no InputLayer, the
    shape as ``batch_input_shape`` on the first layer (Keras 3 then declares an input of
    shape (None, None, 2), issue 10 item 6)."""
    import shutil

    import h5py

    shutil.copy(source, target)
    with h5py.File(target, "r+") as file:
        config = json.loads(file.attrs["model_config"])
        layers = config["config"]["layers"]
        input_layer = next(layer for layer in layers if layer["class_name"] == "InputLayer")
        layers.remove(input_layer)
        layers[0]["config"]["batch_input_shape"] = input_layer["config"]["batch_shape"]
        file.attrs["model_config"] = json.dumps(config)


def test_keras2_h5_layout_with_batch_input_shape_is_accepted(legacy_files, capsys):
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = keras.models.load_model(legacy_files["keras2.h5"], compile=False)
    assert tuple(model.inputs[0].shape) == (None, None, 2)  # what Keras 3 makes of the file
    assert main(["diagnose", legacy_files["keras2.h5"], legacy_files["labels.npz"]]) == 0
    assert "binary cross-entropy (inferred: 1 sigmoid unit" in capsys.readouterr().out


def test_h5_model_with_compiled_mse_uses_it(legacy_files, capsys):
    assert main(["diagnose", legacy_files["regression.h5"], legacy_files["regression.npz"], "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["loss_function"] == "mean squared error (the model's compiled loss)"
    assert data["num_examples"] == 32 and data["verdict"]


def test_uncompiled_h5_binary_classifier_gets_an_inferred_loss(legacy_files, capsys):
    assert main(["diagnose", legacy_files["classifier.h5"], legacy_files["labels.npz"]]) == 0
    out = capsys.readouterr().out
    assert "loss: binary cross-entropy (inferred: 1 sigmoid unit" in out and "0/1 labels" in out


def test_json_is_valid_even_when_the_loss_overflows(files, capsys):
    assert main(["diagnose", files["overflow.keras"], files["data.npz"], "--json"]) == 0
    reject = lambda constant: pytest.fail(f"bare {constant} in JSON")  # noqa: E731
    data = json.loads(capsys.readouterr().out, parse_constant=reject)
    assert data["verdict"] == "exploding" and data["forward_finite"] is False
    assert data["loss"] == "nan" and data["num_examples"] == 128
    names = [layer["name"] for layer in data["layers"]]
    assert [f"dense_{i}" for i in range(1, 13)] == [name for name in names if name.startswith("dense_")]


@pytest.mark.parametrize(
    ("model", "data", "message"),
    [
        ("missing.keras", "data.npz", "model file not found"),
        ("bad.keras", "data.npz", "cannot load"),
        ("sigmoid.keras", "missing.npz", "data file not found"),
        ("sigmoid.keras", "no_y.npz", "must hold arrays 'x' and 'y'"),
        ("sigmoid.keras", "array.npy", "single .npy array"),
        ("sigmoid.keras", "narrow.npz", "expects (64,)"),
        ("sigmoid.keras", "nan.npz", "x must be finite"),
    ],
)
def test_user_errors_exit_2_with_one_line(files, capsys, model, data, message):
    model_path = files.get(model, model)
    data_path = files.get(data, os.path.join(os.path.dirname(files["data.npz"]), data))
    assert main(["diagnose", model_path, data_path]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and captured.err.count("\n") == 1
    assert captured.err.startswith("vgrad: error: ") and message in captured.err


_CUSTOM_MODULE = """
import keras


@keras.saving.register_keras_serializable(package="vgrad_cli_test")
class Doubled(keras.layers.Layer):
    def call(self, inputs):
        return 2.0 * inputs
"""


def test_lambda_models_need_unsafe_and_custom_layers_need_import(
        tmp_path, monkeypatch, files, capsys):
    lambda_model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                                     keras.layers.Lambda(lambda t: 0.5 * t), keras.layers.Dense(10)])
    lambda_model.save(tmp_path / "lambda.keras")
    assert main(["diagnose", str(tmp_path / "lambda.keras"), str(files["data.npz"])]) == 2
    assert "pass --unsafe if you trust the file" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "lambda.keras"), str(files["data.npz"]),
                 "--unsafe"]) == 0
    assert "verdict:" in capsys.readouterr().out

    (tmp_path / "my_layers.py").write_text(_CUSTOM_MODULE)
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    import my_layers  # noqa: F401  registers Doubled, as the user's own code would

    model = keras.Sequential([keras.Input((64,)), keras.layers.Dense(8, activation="relu"),
                              my_layers.Doubled(), keras.layers.Dense(10)])
    model.save(tmp_path / "custom.keras")
    # As in a fresh process: the layer is not registered and its module not imported.
    keras.saving.get_custom_objects().pop("vgrad_cli_test>Doubled")
    monkeypatch.delitem(sys.modules, "my_layers")
    assert main(["diagnose", str(tmp_path / "custom.keras"), str(files["data.npz"])]) == 2
    assert "pass --import with the module" in capsys.readouterr().err
    assert main(["diagnose", str(tmp_path / "custom.keras"), str(files["data.npz"]),
                 "--import", "my_layers"]) == 0
    assert "verdict:" in capsys.readouterr().out
    assert main(["diagnose", str(tmp_path / "custom.keras"), str(files["data.npz"]),
                 "--import", "no_such_module_here"]) == 2
    assert "--import no_such_module_here: ModuleNotFoundError" in capsys.readouterr().err


def test_argument_errors_and_help(capsys):
    assert main(["diagnose", "m.keras", "d.npz", "--batch-size", "0"]) == 2
    assert "must be a positive integer" in capsys.readouterr().err
    assert main([]) == 2
    assert main(["--help"]) == 0
    assert "diagnose" in capsys.readouterr().out


def test_demo_shows_both_nets_side_by_side(capsys):
    assert main(["demo", "--depth", "6", "--width", "8"]) == 0
    out = capsys.readouterr().out
    assert "sigmoid/Glorot rms" in out and "ReLU/He rms" in out
    assert "sigmoid/Glorot: vanishing" in out and "ReLU/He: healthy" in out


def run(command):
    # The command's own defaults keep TensorFlow quiet: nothing set here.
    env = {key: value for key, value in os.environ.items() if not key.startswith("TF_")}
    return subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow
def test_python_dash_m_vgrad(files):
    result = run([sys.executable, "-m", "vgrad", "diagnose", files["sigmoid.keras"],
                  files["data.npz"], "--json"])
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["verdict"] == "vanishing"


@pytest.mark.slow
def test_console_script_reports_error_without_traceback(files):
    script = Path(sys.executable).with_name("vgrad")
    if not script.exists():
        pytest.skip("console script not installed (pip install -e .)")
    result = run([str(script), "diagnose", files["missing.keras"], files["data.npz"]])
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # exactly one line: no TensorFlow start-up chatter before it
    assert result.stderr.strip().splitlines() == [
        f"vgrad: error: model file not found: {files['missing.keras']}"
    ]
