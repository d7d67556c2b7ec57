"""The ``vgrad`` command: ``vgrad diagnose MODEL.keras|MODEL.h5 DATA.npz`` and ``vgrad demo``.

Reading files and printing happen here; the verdict itself is :func:`vgrad.diagnose`.
A user error (missing file, unreadable model, data that do not fit) prints one line,
``vgrad: error: ...``, on stderr and returns 2, without a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
import warnings
import zipfile

import numpy as np


class UsageError(Exception):
    """A problem with the command's input, reported in one line with exit status 2."""


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def _parser():
    parser = argparse.ArgumentParser(
        prog="vgrad", description="Measure, explain and fix vanishing and exploding gradients."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    diagnose = commands.add_parser(
        "diagnose", help="diagnose a saved Keras model on a batch of data",
        description="Print per-layer gradient findings, a verdict (healthy, vanishing, "
                    "exploding) and advice for a saved Keras model.",
    )
    diagnose.add_argument("model", metavar="MODEL.keras",
                          help="model saved with model.save() as .keras (or legacy .h5)")
    diagnose.add_argument("data", metavar="DATA.npz", help="numpy .npz file with arrays x and y")
    diagnose.add_argument("--batch-size", type=_positive_int, default=256, metavar="N",
                          help="use the first N examples (default: 256)")
    diagnose.add_argument("--json", action="store_true", help="print the findings as JSON")
    diagnose.add_argument("--import", dest="imports", action="append", default=[],
                          metavar="MODULE",
                          help="import MODULE first (repeatable), e.g. the module that "
                               "registers the model's custom layers or losses with "
                               "keras.saving.register_keras_serializable; the current "
                               "directory is searched")
    diagnose.add_argument("--unsafe", action="store_true",
                          help="load with safe_mode=False, for Lambda layers: runs code "
                               "stored in the file, so only for files you trust")
    demo = commands.add_parser(
        "demo", help="deep sigmoid net next to a ReLU/He net on the digits data",
        description="Diagnose a deep sigmoid/Glorot MLP and the same MLP with ReLU and He "
                    "initialisation on the bundled digits data, side by side.",
    )
    demo.add_argument("--depth", type=_positive_int, default=20, help="hidden layers (default: 20)")
    demo.add_argument("--width", type=_positive_int, default=32, help="units per layer (default: 32)")
    return parser


def _first_line(error):
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0]}" if text else type(error).__name__


def import_modules(names):
    """Import each module of ``names`` (the current directory searched first).

    Raises
    ------
    UsageError
        If a module cannot be imported.
    """
    if names and "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    for name in names:
        try:
            importlib.import_module(name)
        except Exception as error:  # noqa: BLE001  any failure of the user's module
            raise UsageError(f"--import {name}: {_first_line(error)}") from error


def load_model(path, safe_mode=True):
    """Load a ``.keras`` model (``safe_mode=True`` unless told) or a legacy ``.h5`` model.

    A ``.h5`` file (Keras 2, or Keras 3's legacy writer) is loaded with
    ``compile=False``, since its optimizer configuration may not load in Keras 3; the
    loss of its training configuration, if it has one, is then compiled back in, so
    that the diagnosis uses the loss the model was trained with.

    Raises
    ------
    UsageError
        If the file is missing or cannot be loaded as a Keras model.
    """
    if not os.path.isfile(path):  # before importing TensorFlow: answer at once
        raise UsageError(f"model file not found: {path}")
    import keras

    import vgrad

    vgrad.register_serializables()  # e.g. vgrad.StandardUniform initializers in saved models

    legacy = path.lower().endswith((".h5", ".hdf5"))
    try:
        with warnings.catch_warnings():  # optimizer state is irrelevant to a diagnosis
            warnings.filterwarnings("ignore", message="Skipping variable loading for optimizer")
            warnings.filterwarnings("ignore", message="Do not pass an `input_shape`")  # Keras 2 files
            if legacy:
                model = keras.models.load_model(path, compile=False)
            else:
                return keras.saving.load_model(path, safe_mode=safe_mode)
    except Exception as error:  # noqa: BLE001  Keras raises many types for a bad file
        text, hint = str(error), ""
        if "safe_mode" in text:
            hint = "; it holds a Lambda layer: pass --unsafe if you trust the file"
        elif "Could not locate" in text or "Unknown" in text:
            hint = "; for custom layers or losses, pass --import with the module that registers them"
        raise UsageError(f"cannot load {path} as a Keras model ({_first_line(error)}){hint}") \
            from error
    loss = _h5_loss(path)
    if loss is not None:
        try:
            model.compile(optimizer="sgd", loss=keras.losses.get(loss))
        except (ValueError, TypeError) as error:
            warnings.warn(f"the loss saved in {path} cannot be restored ({_first_line(error)}); "
                          "the loss is inferred instead", stacklevel=2)
    return model


def _h5_loss(path):
    """The loss saved in an ``.h5`` file's training configuration, or ``None``."""
    import h5py

    with h5py.File(path, "r") as file:
        config = file.attrs.get("training_config")
    if config is None:
        return None
    config = json.loads(config.decode() if isinstance(config, bytes) else config)
    loss = config.get("loss")
    return loss if isinstance(loss, (str, dict)) else None


def load_data(path, batch_size):
    """Return the first ``batch_size`` rows of arrays ``x`` and ``y`` from an ``.npz`` file."""
    if not os.path.isfile(path):
        raise UsageError(f"data file not found: {path}")
    try:
        data = np.load(path, allow_pickle=False)
    except (OSError, ValueError, zipfile.BadZipFile) as error:
        raise UsageError(f"cannot read {path} as a numpy .npz file ({_first_line(error)})") from error
    if not isinstance(data, np.lib.npyio.NpzFile):
        raise UsageError(f"{path} is a single .npy array; expected an .npz with arrays x and y")
    with data:
        if not {"x", "y"} <= set(data.files):
            raise UsageError(f"{path} must hold arrays 'x' and 'y'; it has {sorted(data.files)}")
        try:
            x, y = data["x"], data["y"]
        except (OSError, ValueError, zipfile.BadZipFile) as error:
            raise UsageError(f"cannot read x and y from {path} ({_first_line(error)})") from error
    if x.ndim < 1 or y.ndim < 1 or len(x) != len(y) or len(x) == 0:
        raise UsageError(f"{path}: x and y must hold the same number (>= 1) of examples; "
                         f"got x {x.shape}, y {y.shape}")
    return x[:batch_size], y[:batch_size]


def _diagnose(args):
    import tensorflow as tf

    from vgrad.diagnosis import diagnose

    import_modules(args.imports)
    model = load_model(args.model, safe_mode=not args.unsafe)
    x, y = load_data(args.data, args.batch_size)
    try:
        diagnosis = diagnose(model, x, y)  # the model's compiled loss, else inferred
    except (ValueError, TypeError, tf.errors.OpError) as error:
        raise UsageError(f"cannot diagnose model {model.name!r} on {args.data}: "
                         f"{_first_line(error)}") from error
    loss_text = f"{diagnosis.loss_name} ({diagnosis.loss_source})"
    if args.json:
        header = {"model": args.model, "data": args.data, "num_examples": len(x), "loss_function": loss_text}
        print(json.dumps({**header, **diagnosis.to_dict()}, indent=2, allow_nan=False))
    else:
        print(f"model {model.name!r} from {args.model}; {len(x)} examples from {args.data}; "
              f"loss: {loss_text}\n")
        print(diagnosis)


def _demo(args):
    import vgrad
    from vgrad.diagnosis import diagnose
    from vgrad.tables import format_table

    (x, y), _ = vgrad.load_digits(seed=0)
    x, y = x[:256], y[:256]
    nets = {
        "sigmoid/Glorot": vgrad.build_mlp(args.depth, args.width, activation="sigmoid", seed=0),
        "ReLU/He": vgrad.build_mlp(args.depth, args.width, activation="relu",
                                   kernel_initializer="he_normal", seed=0),
    }
    results = {label: diagnose(model, x, y) for label, model in nets.items()}
    print(f"Back-propagated gradient RMS per hidden layer, {args.depth} x {args.width} MLPs, "
          f"{len(x)} digits (/last: ratio to the last hidden layer)\n")
    headers = ["layer", *(title for label in results for title in (f"{label} rms", "/last"))]
    rows = [
        [records[0].name, *(value for r in records for value in (r.backprop_rms, r.backprop_ratio))]
        for records in zip(*(result.layers for result in results.values()))
        if records[0].backprop_rms is not None  # the logits layer has no activation
    ]
    print(format_table(rows, headers, spec=["s", *[".3e", ".1e"] * len(results)]))
    for label, result in results.items():
        print(f"\n{label}: {result.verdict} -- {result.reason}")
        print(*(f"  {i}. {text}" for i, text in enumerate(result.advice[:3], 1)), sep="\n")


def main(argv=None):
    """Run the ``vgrad`` command with ``argv`` (default ``sys.argv[1:]``); return the exit status.

    Unless the caller set them, TensorFlow's C++ start-up log lines are kept off stderr
    (``TF_CPP_MIN_LOG_LEVEL=3``; oneDNN's notice ignores that level, so its CPU kernels
    are left off with ``TF_ENABLE_ONEDNN_OPTS=0``), so that an error is one line.
    """
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")
    try:
        args = _parser().parse_args(argv)
    except SystemExit as exit_:  # --help (0) or a usage error (2), already printed
        return int(exit_.code or 0)
    try:
        {"diagnose": _diagnose, "demo": _demo}[args.command](args)
    except UsageError as error:
        print(f"vgrad: error: {error}", file=sys.stderr)
        return 2
    return 0
