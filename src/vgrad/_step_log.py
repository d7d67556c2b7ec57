"""Which train-function calls of a :class:`vgrad.GradientMonitor` record, and when its
device buffer must be read before it fills."""

from __future__ import annotations

#: Smallest number of rows of the device-side buffer.
MIN_CAPACITY = 256


class StepSchedule:
    """Call-by-call bookkeeping of a monitor during one ``fit``.

    With one optimizer step per train-function call and ``every > 1``, Python picks the
    recording or the plain function before each call, so unrecorded steps run the
    model's own function (``switching``; on XLA's CPU backend each return to a compiled
    step that has not run for a while costs time of its own, measured by
    ``benchmarks/jax_executable_switch.py``). With several steps per call, the recording
    function decides in the graph (``every_in_graph``), and a call writes at most
    ``rows_per_call`` rows.

    Parameters
    ----------
    every : int
        Record the optimizer steps that are multiples of ``every``.
    steps_per_call : int
        The model's ``steps_per_execution``.
    """

    def __init__(self, every, steps_per_call):
        self.every = every
        self.switching = steps_per_call == 1 and every > 1
        self.every_in_graph = 1 if self.switching else every
        self.rows_per_call = steps_per_call // self.every_in_graph + 1
        self.capacity = max(MIN_CAPACITY, 4 * self.rows_per_call)
        self.next_step = 0
        self.unread = 0  # rows the device may hold that Python has not read

    def start(self, step):
        """Resynchronise with the optimizer's step count (a loss-scaling optimizer
        skips the steps it rejects) and forget unread rows (just read)."""
        self.next_step = int(step)
        self.unread = 0

    def resync(self, step):
        """Resynchronise with the optimizer's step count, keeping the count of unread
        rows."""
        self.next_step = int(step)

    def must_read(self):
        """Whether the buffer must be read before the next call, lest it overflow."""
        return self.unread + self.rows_per_call > self.capacity

    def next_call(self):
        """Return whether the next call records; count the rows it may write."""
        if not self.switching:
            self.unread += self.rows_per_call
            return True
        recording = self.next_step % self.every == 0
        self.next_step += 1
        self.unread += int(recording)
        return recording
