"""Record gradient and update norms inside a Keras optimizer's ``apply``.

While :meth:`OptimizerHook.installed` is entered (around a call of the recording train
function, hence around its tracing), ``optimizer.apply`` is replaced on the instance,
so the training step reduces each gradient to its squared norm in the graph that
computed it, before clipping, and writes one row per recorded step into a device-side
ring buffer that Python reads in batches (:meth:`OptimizerHook.drain`). Outside the
context the optimizer is untouched, also when ``fit`` raises. (Why the step is built the
way it is: the speed notes of :mod:`vgrad._hook_ops`.)
"""

from __future__ import annotations

import contextlib
import threading

import numpy as np
import tensorflow as tf

from vgrad._hook_columns import HISTOGRAM_BINS, NUM_FIXED, copies_weights_for
from vgrad._loss_owner import SkipCounter, counting_skips, seeing_loss
from vgrad._hook_ops import (
    bin_gradients, capture_updates, dense, distributed_context, half_squares, total, visible,
)

__all__ = ["OptimizerHook"]


class OptimizerHook:
    """Record norms of ``optimizer``'s trainable variables every ``every`` steps.

    The variables are those given, or, when None (a model built on its first batch),
    those of the first ``apply`` call traced inside :meth:`installed`. Update norms are
    ``||w_after - w_before||``: read from the optimizer's assign calls, or from a copy
    of the weights when ``copies_weights`` (optimizers with weight decay, EMA or
    constraints, and every multi-replica step). A failure while tracing is kept in
    ``failure``; the step then runs the optimizer's own ``apply``.
    """

    def __init__(self, optimizer, every, capacity, *, variables=None, track_nonfinite=False,
                 histograms=False, jit_compile=False):
        self.optimizer = optimizer
        self.every = every
        self.capacity = capacity
        self.track_nonfinite = track_nonfinite
        self.histograms = bool(histograms)
        self.jit_compile = jit_compile
        self.track_max = bool(optimizer.clipvalue)  # only clipvalue needs max |g|
        self.variables = None
        self.failure = None
        self.drained = 0
        self._lock = threading.Lock()
        self._traced = threading.local()  # the loss seen by scale_loss in this thread's trace
        if variables:
            self.bind(variables)

    bound = property(lambda self: self.variables is not None, doc="Whether variables are fixed.")

    def bind(self, variables):
        """Fix the recorded variables and create the buffers (eagerly, also mid-trace)."""
        with tf.init_scope():
            self.variables = list(variables)
            self.num_variables = len(self.variables)
            self.copies_weights = copies_weights_for(self.optimizer, self.variables)
            self._columns = {self.optimizer._var_key(v): i for i, v in enumerate(self.variables)}
            width = NUM_FIXED + (4 if self.histograms else 3) * self.num_variables
            self.buffer = tf.Variable(tf.zeros((self.capacity, width), tf.float64), trainable=False)
            self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
            self.nonfinite_seen = tf.Variable(False, trainable=False)
            self.skips = SkipCounter()
            self.bins = None
            if self.histograms:
                self.bins = tf.Variable(tf.zeros(
                    (self.capacity, self.num_variables, HISTOGRAM_BINS), tf.int32), trainable=False)

    def matches(self, optimizer, every, jit_compile, variables):
        """Whether this hook records ``variables`` of ``optimizer`` as asked."""
        return ((self.optimizer, self.every, self.jit_compile) == (optimizer, every, jit_compile)
                and self.bound and [id(v) for v in self.variables] == [id(v) for v in variables])

    def _column(self, variable):
        return self._columns.get(self.optimizer._var_key(variable))

    @contextlib.contextmanager
    def installed(self, loss_owner=None):
        """Patch ``optimizer.apply`` and what :mod:`vgrad._loss_owner` reads from
        ``loss_owner`` for the block; all are restored however the block ends."""
        original_apply = self.optimizer.apply

        def apply(grads, trainable_variables=None):
            return self._apply(original_apply, grads, trainable_variables)

        object.__setattr__(self.optimizer, "apply", apply)
        try:
            with seeing_loss(loss_owner, lambda loss: setattr(self._traced, "loss", loss)), \
                    counting_skips(loss_owner, self._count_skip):
                yield self
        finally:
            object.__delattr__(self.optimizer, "apply")

    def _apply(self, original_apply, grads, trainable_variables=None):
        grads = list(grads)
        loss, self._traced.loss = getattr(self._traced, "loss", None), None
        if self.failure is not None:
            return original_apply(grads, trainable_variables)
        try:
            plan = self._prepare(grads, trainable_variables, loss)
        except Exception as error:  # noqa: BLE001 - a monitor must not break training
            self.failure = error
            return original_apply(grads, trainable_variables)
        step, due, before, copies, writes = plan
        deltas = None
        if copies:
            original_apply(grads, trainable_variables)
        else:
            # Each assign waits for the norm of the weight it overwrites, so it writes in
            # place instead of copying. Waiting for the gradient norms instead would hold
            # every update until the end of back-propagation (+30% step time).
            waits = before[1] if due is None else None
            with capture_updates(self.optimizer, self._column, waits) as deltas:
                original_apply(grads, trainable_variables)
        try:
            record = lambda: self._after(step, before, deltas, writes)  # noqa: E731
            record() if due is None else tf.cond(due, record, lambda: None)
        except Exception as error:  # noqa: BLE001
            self.failure = error

    def _prepare(self, grads, trainable_variables, loss):
        if trainable_variables is None:
            trainable_variables = self.optimizer._trainable_variables
        trainable_variables = list(trainable_variables)
        if not self.bound:
            with self._lock:  # replicas trace in threads
                if not self.bound:
                    self.bind(trainable_variables)
        step = tf.identity(self.optimizer.iterations)
        gradients = [tf.zeros((), tf.float32)] * self.num_variables  # no gradient: zero
        for gradient, variable in zip(grads, trainable_variables):
            column = self._column(variable)
            if column is not None and gradient is not None:
                gradients[column] = gradient
        loss = (tf.cast(loss, tf.float32) if loss is not None and visible(loss)
                else tf.constant(float("nan")))
        context = distributed_context()
        if context is not None:
            # The optimizer sums the replicas' gradients (each of its loss divided by
            # the number of replicas): record the norms of that sum, on every replica.
            gradients = [tf.cast(dense(g), tf.float32) for g in gradients]
            loss, *gradients = context.all_reduce(tf.distribute.ReduceOp.SUM, [loss, *gradients])
        copies = self.copies_weights or context is not None
        writer = None if context is None else tf.get_static_value(context.replica_id_in_sync_group)
        writes = writer in (None, 0)  # one replica writes the rows
        if self.every == 1:
            return step, None, self._before(loss, gradients, copies), copies, writes
        due = tf.equal(tf.math.floormod(step, self.every), 0)
        before = tf.cond(due, lambda: self._before(loss, gradients, copies, stacked=True),
                         lambda: self._skipped_before(copies))
        return step, due, before, copies, writes

    def _before(self, loss, gradients, copies, stacked=False):
        """Return ``(head, weight half squares, snapshot, maxima, bins)``: head holds max
        |g|, the loss and the gradients' half squares; with histograms, ``maxima`` holds
        each gradient's max |g| and ``bins`` its counts, else both are empty."""
        maxima, bins = tf.zeros((0,)), tf.zeros((0,), tf.int32)
        if self.histograms:
            maxima, bins = bin_gradients(gradients, HISTOGRAM_BINS, xla=self.jit_compile)
            max_abs = tf.reduce_max(maxima)
        elif self.track_max:
            max_abs = tf.reduce_max(tf.stack(
                [tf.reduce_max(tf.abs(tf.cast(dense(g), tf.float32))) for g in gradients]))
        else:
            max_abs = tf.zeros(())
        snapshot = [tf.convert_to_tensor(v) for v in self.variables] if copies else []
        weights = snapshot if copies else [v.value for v in self.variables]
        head, weight_halves = [max_abs, loss, *half_squares(gradients)], half_squares(weights)
        if stacked:
            return tf.stack(head), tf.stack(weight_halves), snapshot, maxima, bins
        return head, weight_halves, snapshot, maxima, bins

    def _skipped_before(self, copies):
        bins = tf.zeros((self.num_variables, HISTOGRAM_BINS) if self.histograms else (0,), tf.int32)
        maxima = tf.zeros((self.num_variables,) if self.histograms else (0,))
        skipped = (tf.zeros((2 + self.num_variables,)), tf.zeros((self.num_variables,)))
        if not copies:
            return (*skipped, [], maxima, bins)
        # An XLA conditional needs equal shapes in both branches; otherwise an empty
        # tensor saves writing zeros the size of the model at every skipped step.
        return (*skipped, [tf.zeros_like(v) if self.jit_compile else tf.zeros((0,), v.dtype)
                           for v in self.variables], maxima, bins)

    def _after(self, step, before, deltas, writes):
        head, weight_halves, snapshot, maxima, bins = before
        if deltas is None:
            updates = [tf.convert_to_tensor(v) - s for v, s in zip(self.variables, snapshot)]
        else:
            updates = [total(deltas.get(column)) for column in range(self.num_variables)]
        update_halves = half_squares(updates)
        if isinstance(head, list):  # one Pack for the whole row
            values = tf.stack(head + weight_halves + update_halves)
        else:
            values = tf.concat([head, weight_halves, tf.stack(update_halves)], 0)
        if self.histograms:
            values = tf.concat([values, maxima], 0)
        if not writes:
            return
        # float64 keeps the step exact beyond 2**24.
        row = tf.concat([tf.cast(step, tf.float64)[None], tf.cast(values, tf.float64)], 0)
        index = tf.math.floormod(self.count, self.capacity)
        self.buffer.scatter_nd_update(index[None, None], row[None])
        if self.histograms:
            self.bins.scatter_nd_update(index[None, None], bins[None])
        self.count.assign_add(1)
        if self.track_nonfinite:
            gradient_sum = tf.reduce_sum(values[2 : 2 + self.num_variables])
            self.nonfinite_seen.assign(
                tf.logical_or(self.nonfinite_seen, tf.logical_not(tf.math.is_finite(gradient_sum)))
            )

    def _count_skip(self):
        """Count a step the loss-scaling optimizer skips (traced in its non-finite branch)."""
        if self.bound and self.failure is None:
            try:
                self.skips.add()
            except Exception as error:  # noqa: BLE001 - a monitor must not break training
                self.failure = error

    def take_skipped(self):
        """Steps skipped by a ``LossScaleOptimizer`` since the last call."""
        return self.skips.take() if self.bound else 0

    def take_nonfinite(self):
        """Whether a non-finite gradient was recorded since the last call (then reset)."""
        seen = bool(self.nonfinite_seen.numpy())
        self.nonfinite_seen.assign(False)
        return seen

    def drain(self):
        """Return ``(rows, bins)`` written since the last drain, oldest first, as arrays
        (``bins`` None without histograms)."""
        count = int(self.count.numpy())
        pending = count - self.drained
        if pending > self.capacity:
            raise RuntimeError(f"GradientMonitor lost {pending - self.capacity} records: its "
                               f"buffer of {self.capacity} rows filled before it was read")
        if pending <= 0:
            return np.zeros((0, self.buffer.shape[1])), None
        indices = tf.constant([i % self.capacity for i in range(self.drained, count)])
        self.drained = count
        bins = tf.gather(self.bins, indices).numpy() if self.histograms else None
        return tf.gather(self.buffer, indices).numpy(), bins
