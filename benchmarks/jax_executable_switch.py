"""What a training step costs on XLA's CPU backend when ``fit`` comes back to it after
other compiled steps, as ``GradientMonitor(every=10)`` on JAX does.

The monitor calls Keras's own jitted step for the unrecorded steps and its recording
twin for every 10th. This script times, on the 20x64 MLP of ``monitor_overhead.py``
(batch 64), Keras's train function (``plain``) against three other compiled steps:

- ``twin``: Keras's ``train_step`` jitted again, state donated as Keras does (the same
  work in a second executable);
- ``undonated``: the same without donating the state (it writes fresh buffers);
- ``recording``: the monitor's recording step (every variable's gradient, weight and
  update norms written to its ring buffer).

For each, two call patterns, A/B alternated with ``plain`` alone over repetitions
(medians of the mean time per call): the step alone (its steady cost over ``plain``),
and the step once in every 10 calls, ``plain`` for the rest. If coming back to a step
were free, that pattern would cost ``0.9 plain + 0.1 step``; the excess, times 10, is
the extra cost of each return to that step ("per switch").

Run from the repository root (about a minute)::

    python benchmarks/jax_executable_switch.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import jax  # noqa: E402
import keras  # noqa: E402

import vgrad  # noqa: E402

BATCH = 64


def steps_of(model):
    """``{name: function(state, iterator)}``: Keras's train function and the others."""
    monitor = vgrad.GradientMonitor()
    monitor.set_model(model)
    monitor.on_train_begin()  # makes the recording step; nothing records outside fit
    plain, recording = monitor._functions
    hook = monitor._hook

    def record(state, iterator):
        with hook.installed(loss_owner=model.optimizer):
            return recording(state, iterator)

    twin = jax.jit(model.train_step, donate_argnums=0)
    undonated = jax.jit(model.train_step)
    return {"plain": plain,
            "twin": lambda state, iterator: twin(state, next(iterator)),
            "undonated": lambda state, iterator: undonated(state, next(iterator)),
            "recording": record}


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
    batches = itertools.repeat((jax.numpy.asarray(x[:BATCH]),
                                jax.numpy.asarray(y[:BATCH].astype("int32"))))
    steps = steps_of(model)
    others = [name for name in steps if name != "plain"]
    patterns = {"plain": ["plain"]}
    for name in others:
        patterns[name] = [name]
        patterns[f"{name} 1 in 10"] = [name] + ["plain"] * 9
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    state = jax.tree_util.tree_map(lambda a: jax.numpy.array(a, copy=True), state)

    def run(pattern, calls):
        nonlocal state
        start = time.perf_counter()
        for index in range(calls):
            _, state = steps[pattern[index % len(pattern)]](state, batches)
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
          f"of {args.calls} calls; plain (Keras's train function): {median['plain']:.0f} us per call")
    print(f"{'step':<10} {'us per call':>11} {'over plain':>10} {'1 in 10':>8} "
          f"{'if free':>8} {'per switch':>10}")
    for name in others:
        free = 0.9 * median["plain"] + 0.1 * median[name]
        mixed = median[f"{name} 1 in 10"]
        print(f"{name:<10} {median[name]:11.0f} {median[name] - median['plain']:+10.0f} "
              f"{mixed:8.0f} {free:8.0f} {10 * (mixed - free):+10.0f}")


if __name__ == "__main__":
    main()
