"""What ``GradientMonitor(every=10)`` pays for on Keras's TensorFlow backend: recording
one step in ten, the Python that picks the function before each step, or the return
to the recording function.

On the 20x64 MLP of ``monitor_overhead.py`` (batch 64, Adam, fits of 8 epochs), each
arm's ``fit`` is paired with an adjacent plain ``fit`` (A/B, then B/A in the next
repetition), as in ``monitor_overhead.py``:

- ``every=1``: the monitor recording every step (one function, always recording);
- ``every=10``: as shipped with ``steps_per_execution=1``: Python runs the model's own
  train function for unrecorded steps and the recording function for the others;
- ``every=10 in-graph``: one recording function on every step, deciding inside the
  step (a ``tf.cond`` around the norms; what the monitor does when a call runs several
  steps), forced here for this benchmark only;
- ``every=1000``: switching as shipped, but (after its first step) never recording in a
  fit: the cost of the Python that picks the function before each step.

If recording one step in ten cost a tenth of recording every step, ``every=10``'s
extra cost would be a tenth of ``every=1``'s. The table gives each arm's paired
wall-time and CPU-time ratio (median over repetitions, distribution-free 95% interval)
and, in CPU time, the extra cost of each recorded step relative to ``every=1``'s.

Run from the repository root (about four minutes)::

    python benchmarks/tf_recording_schedule.py
    python benchmarks/tf_recording_schedule.py --repeats 40
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["KERAS_BACKEND"] = "tensorflow"
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import keras  # noqa: E402

import vgrad  # noqa: E402
from vgrad import monitor as monitor_module  # noqa: E402
from vgrad._step_log import StepSchedule  # noqa: E402
from monitor_overhead import digits_mlp, median_interval, timed_fit  # noqa: E402

BATCH, EPOCHS = 64, 8


class InGraphSchedule(StepSchedule):
    """The schedule the monitor uses with several steps per call, for one step per call:
    the recording function on every call, deciding in the graph."""

    def __init__(self, every, steps_per_call):
        super().__init__(every, steps_per_call)
        self.switching = False
        self.every_in_graph = every
        self.rows_per_call = steps_per_call // every + 1
        self.capacity = max(self.capacity, 4 * self.rows_per_call)


class ScheduledMonitor(vgrad.GradientMonitor):
    """A monitor whose schedule class is chosen per instance (benchmark only)."""

    def __init__(self, *args, schedule=StepSchedule, **kwargs):
        super().__init__(*args, **kwargs)
        self.schedule_class = schedule

    def on_train_begin(self, logs=None):
        monitor_module.StepSchedule = self.schedule_class
        try:
            super().on_train_begin(logs)
        finally:
            monitor_module.StepSchedule = StepSchedule


#: {arm: (every, schedule class)}.
ARMS = {"every=1": (1, StepSchedule), "every=10": (10, StepSchedule),
        "every=10 in-graph": (10, InGraphSchedule), "every=1000": (1000, StepSchedule)}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=16, help="repetitions (default 16)")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error(f"--repeats must be at least 1, got {args.repeats}")
    model, x, y = digits_mlp(*vgrad.load_digits(seed=0)[0], 20, 64, BATCH)
    num_examples = len(x)
    steps = EPOCHS * num_examples // BATCH
    monitors = {arm: ScheduledMonitor(every=every, schedule=schedule)
                for arm, (every, schedule) in ARMS.items()}
    for monitor in [None, *monitors.values()]:  # trace every function (step 0 records)
        timed_fit(model, x, y, BATCH, 1, monitor)
    switching = {arm: m._schedule.switching for arm, m in monitors.items()}
    assert switching == {"every=1": False, "every=10": True, "every=10 in-graph": False,
                         "every=1000": True}, switching
    pairs = {arm: [] for arm in ARMS}
    for repetition in range(args.repeats):
        for index, (arm, monitor) in enumerate(monitors.items()):
            first_with = (repetition + index) % 2 == 0
            order = [monitor, None] if first_with else [None, monitor]
            seconds = [timed_fit(model, x, y, BATCH, EPOCHS, m) for m in order]
            pairs[arm].append(tuple(seconds) if first_with else tuple(seconds[::-1]))
    plain_cpu = statistics.median(plain[1] for values in pairs.values() for _, plain in values)
    print(f"keras {keras.__version__} on tensorflow; 20x64 MLP, batch {BATCH}, Adam; {steps} "
          f"steps per fit; medians over {args.repeats} alternated repetitions; plain fit "
          f"{plain_cpu / steps * 1e6:.0f} us CPU per step")
    print("ratio = fit with monitor / adjacent fit without (median, 95% interval); per "
          "recorded step = extra CPU time of a recorded step, over every=1's")
    print(f"{'arm':<18} {'wall':>6} {'95%':>13} {'cpu':>6} {'cpu 95%':>13} {'records':>8} "
          f"{'per recorded step':>18}")
    per_step = {}
    for arm, values in pairs.items():
        wall = [monitored[0] / plain[0] for monitored, plain in values]
        cpu = [monitored[1] / plain[1] for monitored, plain in values]
        (low, high), (cpu_low, cpu_high) = median_interval(wall), median_interval(cpu)
        every = ARMS[arm][0]
        recorded = steps / every  # recorded steps per fit, on average
        per_step[arm] = (statistics.median(cpu) - 1) * steps / recorded
        if every == 1:
            ratio_text = f"{1.0:18.1f}x"
        elif every >= 1000 or per_step["every=1"] <= 0:  # too few records, or no cost
            ratio_text = f"{'-':>19}"
        else:
            ratio_text = f"{per_step[arm] / per_step['every=1']:18.1f}x"
        print(f"{arm:<18} {statistics.median(wall):6.3f} {f'{low:.3f}-{high:.3f}':>13} "
              f"{statistics.median(cpu):6.3f} {f'{cpu_low:.3f}-{cpu_high:.3f}':>13} "
              f"{recorded:>8.1f} {ratio_text}")
    print(f"\nrecorded steps per fit: {monitors['every=10'].steps[-3:]} ... (every=10, "
          f"{len(monitors['every=10'].steps)} in all)")


if __name__ == "__main__":
    main()
