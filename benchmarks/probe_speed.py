"""How much does ``vgrad.gradient_norms`` cost over a bare compiled ``tape.gradient``?

A: ``vgrad.gradient_norms(model, x, y)``: a view of ``vgrad.measure``, so validation,
   loss resolution and the one compiled measurement pass (which also taps activations,
   back-propagated gradients and statistics), conversion to a dict of floats.
B: a ``tf.function`` that computes the same loss and ``tape.gradient`` of it with
   respect to the same kernels and returns the gradients (forced to the host).
Both are traced before timing; A and B alternate in each round, so drift in the
machine's load hits both alike; the ratio of medians is printed. Target: at most 1.2
(set when the probe computed kernel gradients only; ``benchmarks/diagnose_cost.py`` times
the whole measurement against a bare pass, target 1.5).

Run: ``python benchmarks/probe_speed.py [--rounds N]``
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import tensorflow as tf  # noqa: E402

import vgrad  # noqa: E402
from vgrad._batch import kernel_layers  # noqa: E402

CONFIGS = {
    "20x64 sigmoid, batch 256": dict(depth=20, width=64, activation="sigmoid", batch=256),
    "20x256 relu/He, batch 512": dict(depth=20, width=256, activation="relu", batch=512),
}


def bare_gradient(model):
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    kernels = [kernel for _, kernel in kernel_layers(model)]

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = loss_fn(y, model(x, training=True))
        return tape.gradient(loss, kernels)

    return lambda x, y: [g.numpy() for g in step(x, y)]


def timed(fn, repeats):
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - start) / repeats


def measure(depth, width, activation, batch, rounds, repeats):
    (x_train, y_train), _ = vgrad.load_digits()
    x, y = x_train[:batch], y_train[:batch].astype("int32")
    model = vgrad.build_mlp(depth, width, activation=activation, seed=0,
                            kernel_initializer="he_normal" if activation == "relu" else "glorot_uniform")
    bare = bare_gradient(model)
    x_tensor, y_tensor = tf.constant(x), tf.constant(y)
    probe = lambda: vgrad.gradient_norms(model, x, y)  # noqa: E731
    baseline = lambda: bare(x_tensor, y_tensor)  # noqa: E731
    probe(), baseline()  # trace both before timing
    times_a, times_b = [], []
    for _ in range(rounds):
        times_a.append(timed(probe, repeats))
        times_b.append(timed(baseline, repeats))
    return statistics.median(times_a), statistics.median(times_b)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--repeats", type=int, default=20)
    args = parser.parse_args()
    print(f"{'configuration':<28} {'gradient_norms':>15} {'bare tape':>12} {'ratio':>7}  target <= 1.2")
    worst = 0.0
    for label, config in CONFIGS.items():
        a, b = measure(**config, rounds=args.rounds, repeats=args.repeats)
        worst = max(worst, a / b)
        print(f"{label:<28} {a * 1e3:12.3f} ms {b * 1e3:9.3f} ms {a / b:7.3f}  "
              f"{'met' if a / b <= 1.2 else 'MISSED'}")
    print(f"worst ratio {worst:.3f}")


if __name__ == "__main__":
    main()
