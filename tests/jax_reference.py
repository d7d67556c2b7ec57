"""The models of ``test_monitor_jax.py`` and, run as a script, their monitor records on
whichever backend ``KERAS_BACKEND`` names (the backend is fixed per process):

    KERAS_BACKEND=tensorflow python tests/jax_reference.py weights.npz records.npz

``weights.npz`` holds ``x``, ``y``, ``global_clipnorm`` and, per model ``<name>``,
``<name>/weight_<i>`` (``model.get_weights()``); ``records.npz`` gets, per model, the
monitor's ``<name>/history`` (steps x variables), ``global_norm``, ``clipped`` and
``steps``.
"""

import sys

import numpy as np

import keras

LOSS = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
NUM_STEPS = 3
BATCH = 16


def mlp():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(),
                             keras.layers.Dense(32, activation="tanh"),
                             keras.layers.Dense(32, activation="relu"), keras.layers.Dense(10)])


def cnn():
    # No bias before BatchNormalization: its gradient is zero up to rounding, so its
    # relative difference between backends would be meaningless.
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Conv2D(8, 3, use_bias=False),
                             keras.layers.BatchNormalization(), keras.layers.Activation("relu"),
                             keras.layers.Flatten(), keras.layers.Dense(10)])


def lstm():
    return keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Reshape((8, 8)),
                             keras.layers.LSTM(16), keras.layers.Dense(10)])


MODELS = {"mlp": mlp, "cnn": cnn, "lstm": lstm}


def records(name, weights, x, y, global_clipnorm):
    """The monitor's records of ``NUM_STEPS`` in-order steps of model ``name``."""
    import vgrad

    model = MODELS[name]()
    model.set_weights(weights)
    model.compile(keras.optimizers.SGD(0.05, global_clipnorm=global_clipnorm), LOSS)
    monitor = vgrad.GradientMonitor()
    model.fit(x, y, batch_size=BATCH, epochs=1, shuffle=False, verbose=0, callbacks=[monitor])
    return {
        "history": np.array(list(monitor.history.values())).T,
        "global_norm": np.array(monitor.global_norm), "clipped": np.array(monitor.clipped),
        "steps": np.array(monitor.steps), "loss": np.array(monitor.loss),
    }


def main(source, target):
    data = np.load(source)
    x, y, clip = data["x"], data["y"], float(data["global_clipnorm"])
    out = {}
    for name in MODELS:
        count = sum(key.startswith(f"{name}/weight_") for key in data.files)
        weights = [data[f"{name}/weight_{i}"] for i in range(count)]
        for key, value in records(name, weights, x, y, clip).items():
            out[f"{name}/{key}"] = value
    out["backend"] = np.array(keras.backend.backend())
    np.savez(target, **out)


if __name__ == "__main__":
    main(*sys.argv[1:3])
