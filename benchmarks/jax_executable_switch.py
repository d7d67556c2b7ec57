"""What a training step costs on XLA's CPU backend when ``fit`` comes back to it after
other compiled steps, as ``GradientMonitor(every=10)`` on JAX does.

The monitor calls Keras's own jitted step for the unrecorded steps and its recording
twin for every 10th. This script times, on the 20x64 MLP of ``monitor_overhead.py``
(batch 64), Keras's train function (``plain``) against three other compiled steps:

- ``twin``: Keras's ``train_step`` jitted again, state donated as Keras does, with one
  constant output more, so that it is a second executable doing the same work (a jit
  of ``train_step`` alone lowers to the same program as Keras's and JAX reuses Keras's
  executable for it: it would time no switch at all);
- ``undonated``: ``train_step`` without donating the state (it writes fresh buffers);
- ``recording``: the monitor's recording step (every variable's gradient, weight and
  update norms written to its ring buffer).

Each repetition times, for each step, three call patterns back to back (in alternating
order): ``plain`` alone, the step alone, and the step once in every 10 calls with
``plain`` for the rest. If coming back to a step were free, the last would cost
``0.9 plain + 0.1 step``; the excess, times 10, is the extra cost of each return to
that step ("per switch": one switch to it and one back). The table gives the medians
over repetitions of these per-repetition figures, with their distribution-free 95%
intervals (as ``monitor_overhead.py``), and then the time of one call, waited for, when
the call before it was the same step and when it was the ninth of nine plain calls.

Run from the repository root (about a minute and a half)::

    python benchmarks/jax_executable_switch.py
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import sys
import time

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import keras  # noqa: E402

import vgrad  # noqa: E402
from monitor_overhead import median_interval  # noqa: E402

BATCH = 64
#: Cycles of the call-by-call timing.
LATENCY_CYCLES = 200


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

    def with_constant(state, data):  # one output more: a program of its own
        return model.train_step(state, data), jax.numpy.float32(1.0)

    twin = jax.jit(with_constant, donate_argnums=0)
    undonated = jax.jit(model.train_step)
    return {"plain": plain,
            "twin": lambda state, iterator: twin(state, next(iterator))[0],
            "undonated": lambda state, iterator: undonated(state, next(iterator)),
            "recording": record}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=21)
    parser.add_argument("--calls", type=int, default=400, help="calls per timed pattern")
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
    state = model._get_jax_state(trainable_variables=True, non_trainable_variables=True,
                                 optimizer_variables=True, metrics_variables=True)
    state = jax.tree_util.tree_map(lambda a: jax.numpy.array(a, copy=True), state)

    def run(pattern, calls):
        """Mean microseconds per call of ``calls`` calls cycling through ``pattern``."""
        nonlocal state
        start = time.perf_counter()
        for index in range(calls):
            _, state = steps[pattern[index % len(pattern)]](state, batches)
        jax.block_until_ready(state)
        return (time.perf_counter() - start) / calls * 1e6

    def call_latencies(name):
        """Median microseconds of one call of ``name`` waited for: after a call of the
        same step, and after nine plain calls."""
        nonlocal state
        timed = {True: [], False: []}
        for _ in range(LATENCY_CYCLES):
            for after_plain in (True, False):
                for _ in range(9 if after_plain else 1):
                    _, state = steps["plain" if after_plain else name](state, batches)
                jax.block_until_ready(state)
                start = time.perf_counter()
                _, state = steps[name](state, batches)
                jax.block_until_ready(state)
                timed[after_plain].append((time.perf_counter() - start) * 1e6)
        return statistics.median(timed[False]), statistics.median(timed[True])

    def patterns(name):
        return {"plain": ["plain"], "alone": [name], "mixed": [name] + ["plain"] * 9}

    for name in others:
        for pattern in patterns(name).values():
            run(pattern, 20)  # compile and warm up
    plain_times, over, per_switch = [], {n: [] for n in others}, {n: [] for n in others}
    for repetition in range(args.repeats):
        for name in others if repetition % 2 == 0 else others[::-1]:
            items = list(patterns(name).items())
            times = {key: run(pattern, args.calls)
                     for key, pattern in (items if repetition % 2 == 0 else items[::-1])}
            plain_times.append(times["plain"])
            over[name].append(times["alone"] - times["plain"])
            free = 0.9 * times["plain"] + 0.1 * times["alone"]
            per_switch[name].append(10 * (times["mixed"] - free))
    print(f"keras {keras.__version__}, jax {jax.__version__} on {jax.devices()[0].platform}; "
          f"20x64 MLP, batch {BATCH}; medians over {args.repeats} alternated repetitions "
          f"of {args.calls} calls; plain (Keras's train function): "
          f"{statistics.median(plain_times):.0f} us per call")
    latency = {name: call_latencies(name) for name in others}
    print(f"{'step':<10} {'over plain us':>13} {'95%':>13} {'per switch us':>14} {'95%':>13} "
          f"{'after itself':>13} {'after 9 plain':>14}")
    for name in others:
        (low, high), (switch_low, switch_high) = (median_interval(over[name]),
                                                  median_interval(per_switch[name]))
        print(f"{name:<10} {statistics.median(over[name]):+13.0f} "
              f"{f'{low:+.0f}..{high:+.0f}':>13} {statistics.median(per_switch[name]):+14.0f} "
              f"{f'{switch_low:+.0f}..{switch_high:+.0f}':>13} {latency[name][0]:13.0f} "
              f"{latency[name][1]:14.0f}")
    print("after itself / after 9 plain: median us of one call waited for (block_until_ready), "
          f"when the call before was the same step / {LATENCY_CYCLES} times after nine plain calls")


if __name__ == "__main__":
    main()
