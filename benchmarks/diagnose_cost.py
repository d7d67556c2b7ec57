"""What do ``vgrad.diagnose`` and ``vgrad.measure`` cost over one bare compiled backward pass?

A: ``vgrad.diagnose(model, x, y)`` (checks, one measurement, verdict and advice), and
   ``vgrad.measure(model, x, y)`` (checks, one compiled forward+backward pass with taps,
   norms and statistics, unpacked into a Measurement).
B: one ``tf.function`` computing the forward pass, the loss and ``tape.gradient`` with
   respect to every trainable variable (the gradients are returned, not reduced).
Everything is traced before timing; A and B alternate in each round, so drift in the
machine's load hits both alike; ratios of medians are printed. Target: at most 1.5.

Run: ``python benchmarks/diagnose_cost.py [--rounds N] [--repeats N]``
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "0")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import vgrad  # noqa: E402

TARGET = 1.5


def relu_mlp():
    (x_train, y_train), _ = vgrad.load_digits(seed=0)
    model = vgrad.build_mlp(20, 256, activation="relu", kernel_initializer="he_normal", seed=0)
    return model, x_train[:512], y_train[:512]


def small_cnn():
    rng = np.random.default_rng(0)
    model = keras.Sequential([
        keras.Input((16, 16, 3)),
        keras.layers.Conv2D(16, 3, activation="relu", padding="same"),
        keras.layers.BatchNormalization(),
        keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu", padding="same"),
        keras.layers.MaxPooling2D(),
        keras.layers.Flatten(),
        keras.layers.Dense(64, activation="relu"),
        keras.layers.Dense(10),
    ], name="small_cnn")
    return model, rng.normal(size=(256, 16, 16, 3)).astype("float32"), rng.integers(0, 10, 256)


CONFIGS = {"20x256 ReLU MLP, batch 512": relu_mlp, "small CNN, batch 256": small_cnn}


def bare_gradient(model):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    variables = model.trainable_variables

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return loss, tape.gradient(loss, variables)

    return step


def timed(fn, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def compare(build, rounds, repeats):
    model, x, y = build()
    step = bare_gradient(model)
    x_tensor, y_tensor = tf.constant(x), tf.constant(y.astype("int32"))
    candidates = {
        "diagnose": lambda: vgrad.diagnose(model, x, y),
        "measure": lambda: vgrad.measure(model, x, y),
        "bare": lambda: step(x_tensor, y_tensor),
    }
    for fn in candidates.values():  # trace everything before timing
        fn()
    times = {name: [] for name in candidates}
    for _ in range(rounds):
        for name, fn in candidates.items():
            times[name].append(timed(fn, repeats))
    return {name: statistics.median(values) for name, values in times.items()}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=11)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    print(f"{'configuration':<28} {'bare':>10} {'measure':>10} {'ratio':>6} {'diagnose':>10} "
          f"{'ratio':>6}  target <= {TARGET}")
    for label, build in CONFIGS.items():
        median = compare(build, args.rounds, args.repeats)
        bare = median["bare"]
        ratios = {name: median[name] / bare for name in ("measure", "diagnose")}
        verdict = "met" if max(ratios.values()) <= TARGET else "MISSED"
        print(f"{label:<28} {bare * 1e3:7.2f} ms {median['measure'] * 1e3:7.2f} ms "
              f"{ratios['measure']:6.2f} {median['diagnose'] * 1e3:7.2f} ms {ratios['diagnose']:6.2f}  {verdict}")


if __name__ == "__main__":
    main()
