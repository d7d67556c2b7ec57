"""What XLA on the CPU charges for alternating between two compiled training steps.

``GradientMonitor(every=10)`` on JAX calls Keras's own jitted step for the unrecorded
steps and a recording twin for every 10th. This script measures, on the 20x64 MLP of
``monitor_overhead.py`` (batch 64), Keras's ``train_step`` jitted twice: ``plain``, with
the state donated as Keras does, and ``other``, the same step without donation (so a
second executable that does the same work). Three call patterns, A/B alternated over
repetitions, medians of the mean time per call:

- ``plain`` only;
- ``other`` only;
- ``other`` once in every 10 calls, ``plain`` for the rest.

If switching were free, the mixed pattern would cost ``0.9 plain + 0.1 other``; the
excess, times 10, is the extra cost of one switch to ``other`` and back.

Run from the repository root (about a minute)::

    python benchmarks/jax_executable_switch.py
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import keras  # noqa: E402

import vgrad  # noqa: E402

BATCH = 64


def model_state(model):
    """The state tuple Keras's JAX trainer passes to ``train_step``."""
    state = ([v.value for v in model.trainable_variables],
             [v.value for v in model.non_trainable_variables],
             [v.value for v in model.optimizer.variables],
             [v.value for v in model.metrics_variables])
    return jax.tree_util.tree_map(lambda a: jax.numpy.array(a, copy=True), state)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--calls", type=int, default=200, help="calls per timed pattern")
    args = parser.parse_args(argv)
    (x, y), _ = vgrad.load_digits(seed=0)
    model = vgrad.build_mlp(20, 64, kernel_initializer="he_normal", seed=0)
    model.compile(keras.optimizers.Adam(1e-3),
                  keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x[:BATCH], y[:BATCH], batch_size=BATCH, epochs=1, verbose=0)  # build all
    data = (jax.numpy.asarray(x[:BATCH]), jax.numpy.asarray(y[:BATCH].astype("int32")))
    steps = {"plain": jax.jit(model.train_step, donate_argnums=0),
             "other": jax.jit(model.train_step)}
    patterns = {"plain": ["plain"], "other": ["other"], "mixed": ["other"] + ["plain"] * 9}
    state = model_state(model)

    def run(pattern, calls):
        nonlocal state
        start = time.perf_counter()
        for index in range(calls):
            _, state = steps[pattern[index % len(pattern)]](state, data)
        jax.block_until_ready(state)
        return (time.perf_counter() - start) / calls * 1e6

    for pattern in patterns.values():
        run(pattern, 20)  # compile and warm up
    times = {name: [] for name in patterns}
    for repetition in range(args.repeats):
        names = list(patterns) if repetition % 2 == 0 else list(patterns)[::-1]
        for name in names:
            times[name].append(run(patterns[name], args.calls))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"keras {keras.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}; "
          f"20x64 MLP, batch {BATCH}; medians over {args.repeats} alternated repetitions "
          f"of {args.calls} calls")
    for name, value in median.items():
        print(f"{name:<6} {value:8.1f} us per call")
    expected = 0.9 * median["plain"] + 0.1 * median["other"]
    print(f"mixed if switching were free: {expected:.1f} us per call; "
          f"extra per switch to 'other' and back: {10 * (median['mixed'] - expected):.0f} us")


if __name__ == "__main__":
    main()
