"""Where ``GradientMonitor``'s cost goes in ``model.fit`` on Keras's JAX backend: the
recording machinery against the norms it computes.

On the 20x64 MLP of ``monitor_overhead.py`` (batch 64, Adam), repeated ``fit`` calls
of 8 epochs are timed for five arms, in alternating order over repetitions:

- ``plain``: no monitor;
- ``plumbing``: a monitor recording every step whose norms are replaced by zeros
  (its own train function, the records carried as optimizer state, the loss and the
  row written to the ring buffer: all but the norms);
- ``gradients``: the same, with the gradient norms computed (weight and update norms
  zero; as ``plumbing``, for this benchmark only);
- ``every=1``: the monitor as shipped, recording every step;
- ``every=10``: the monitor as shipped, recording every 10th step.

Each arm's extra cost per training step is its fit time minus the ``plain`` fit of
the same repetition, over the steps of a fit; the table gives the median over
repetitions with its distribution-free 95% interval (as ``monitor_overhead.py``). For
``every=10``, ten times that is the cost of each recorded step, to be compared with
``every=1``'s: a larger figure means that recording one step in ten costs more than a
tenth of recording every step.

Run from the repository root (about a minute)::

    python benchmarks/jax_recording_parts.py
    python benchmarks/jax_recording_parts.py --repeats 31
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys

os.environ["KERAS_BACKEND"] = "jax"
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402
from keras import ops  # noqa: E402

import vgrad  # noqa: E402
from vgrad import _jax_hook  # noqa: E402
from monitor_overhead import digits_mlp, median_interval, timed_fit  # noqa: E402

BATCH, EPOCHS = 64, 8
SHIPPED = _jax_hook.norm_halves


def zero_norms(gradients, before, updates):
    """No norms: zeros in their place (what ``plumbing`` records)."""
    return ops.zeros((3 * len(before),), "float32")


def gradient_norms_only(gradients, before, updates):
    """The shipped gradient norms; zeros for the weights and updates."""
    return ops.concatenate([SHIPPED(gradients, gradients, gradients)[: len(before)],
                            ops.zeros((2 * len(before),), "float32")])


#: {arm: (every, the norm function its recording step is traced with) or None}.
ARMS = {"plain": None, "plumbing": (1, zero_norms), "gradients": (1, gradient_norms_only),
        "every=1": (1, SHIPPED), "every=10": (10, SHIPPED)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=16, help="repetitions (default 16)")
    args = parser.parse_args(argv)
    model, x, y = digits_mlp(*vgrad.load_digits(seed=0)[0], 20, 64, BATCH)
    num_examples = len(x)
    steps = EPOCHS * num_examples // BATCH
    monitors = {arm: None if spec is None else vgrad.GradientMonitor(every=spec[0])
                for arm, spec in ARMS.items()}

    def fit(arm, epochs=EPOCHS):
        spec = ARMS[arm]
        # A monitor traces its recording step in its first fit, with the function set here.
        _jax_hook.norm_halves = SHIPPED if spec is None else spec[1]
        try:
            return timed_fit(model, x, y, BATCH, epochs, monitors[arm])[0]
        finally:
            _jax_hook.norm_halves = SHIPPED

    for arm in ARMS:  # trace every arm's steps (every=10 records in the first epoch)
        fit(arm, epochs=math.ceil(11 * BATCH / num_examples))
    extra = {arm: [] for arm in ARMS if arm != "plain"}
    plain_times = []
    for repetition in range(args.repeats):
        order = list(ARMS) if repetition % 2 == 0 else list(ARMS)[::-1]
        seconds = {arm: fit(arm) for arm in order}
        plain_times.append(seconds["plain"])
        for arm in extra:
            extra[arm].append((seconds[arm] - seconds["plain"]) / steps * 1e6)
    print(f"keras {keras.__version__} on jax; 20x64 MLP, batch {BATCH}, Adam; {steps} steps "
          f"per fit; medians over {args.repeats} alternated repetitions; plain fit: "
          f"{statistics.median(plain_times) / steps * 1e6:.0f} us per step")
    print(f"{'arm':<10} {'extra us per step':>17} {'95%':>15} {'per recorded step':>18}")
    for arm, values in extra.items():
        low, high = median_interval(values)
        every = ARMS[arm][0]
        print(f"{arm:<10} {statistics.median(values):+17.0f} {f'{low:+.0f}..{high:+.0f}':>15} "
              f"{every * statistics.median(values):+18.0f}")


if __name__ == "__main__":
    main()
