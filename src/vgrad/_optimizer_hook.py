"""Record gradient and update norms inside a Keras optimizer's ``apply``.

The hook replaces ``optimizer.apply`` on the instance, so the training step that
``model.fit`` compiles reduces each gradient to its squared norm in the same graph
that computed it, before clipping, and writes one row per recorded step into a
device-side ring buffer that Python reads in batches (:meth:`OptimizerHook.drain`).

Speed notes: one ``L2Loss`` per tensor is the cheapest reduction here, because each
runs as soon as its gradient exists, overlapping the rest of back-propagation; fused
alternatives (stack, concat plus segment sum, an XLA kernel) wait for the last
gradient and lengthen the step. A ``tf.cond`` around the optimizer update costs a
small model ~8% even on unrecorded steps, so the update always runs outside conds.
"""

from __future__ import annotations

import contextlib

import numpy as np
import tensorflow as tf

import keras

#: Buffer columns: step, max |g|, then half squared norms (``L2Loss``) of the
#: gradients, of the weights before the step and of the updates, one block each.
STEP, MAX_ABS, NUM_FIXED = 0, 1, 2

#: Optimizers that change trainable variables only through ``optimizer.assign*``, so
#: the update can be read from those calls instead of from a copy of the weights.
_ASSIGNING_OPTIMIZERS = tuple(
    getattr(keras.optimizers, name)
    for name in (
        "SGD", "Adam", "RMSprop", "Adagrad", "Adadelta", "Adamax", "Nadam", "Ftrl",
        "Lion", "Lamb", "Adafactor",
    )
    if hasattr(keras.optimizers, name)
)


def updates_through_assign(optimizer, variables):
    """Whether every change ``optimizer`` makes to ``variables`` goes through its
    ``assign``, ``assign_add`` or ``assign_sub`` (no weight decay, EMA or constraint)."""
    return (
        type(optimizer) in _ASSIGNING_OPTIMIZERS
        and not optimizer.weight_decay
        and not optimizer.use_ema
        and all(v.constraint is None for v in variables)
        and not any(getattr(v, "overwrite_with_gradient", False) for v in variables)
    )


def check_optimizer(optimizer, own_hook=None):
    """Raise unless a hook can wrap ``optimizer`` (``own_hook`` may already wrap it)."""
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("GradientMonitor needs a model compiled with a "
                        f"keras.optimizers.Optimizer, got {type(optimizer).__name__}")
    if optimizer.gradient_accumulation_steps:
        raise ValueError("GradientMonitor does not support gradient_accumulation_steps="
                         f"{optimizer.gradient_accumulation_steps}; use an optimizer without it")
    wrapper = vars(optimizer).get("apply")
    if wrapper is not None and getattr(wrapper, "__self__", None) is not own_hook:
        raise ValueError(
            "the model's optimizer is already watched by another GradientMonitor; pass one "
            "GradientMonitor per fit (after an interrupted fit, call the other monitor's "
            "on_train_end() to detach it)"
        )


def decode_rows(rows, hook):
    """Turn buffer ``rows`` into ``{name: array}`` records, or None when there are none.

    Arrays: ``steps``, ``global_norm``, ``clipped``, ``nonfinite`` of shape
    ``(num_records,)`` and ``gradient``, ``weight``, ``ratio`` of shape
    ``(num_records, num_variables)``.
    """
    if not len(rows):
        return None
    half_squares = rows[:, NUM_FIXED:].reshape(len(rows), 3, hook.num_variables)
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gradient, weight, update = np.sqrt(2.0 * half_squares).transpose(1, 0, 2)
        global_norm = np.sqrt(np.sum(np.square(gradient), axis=1))
        ratio = update / weight
    # Summed in float32 as in the graph: squares beyond float32 count as non-finite.
    summed = np.sum(half_squares[:, 0].astype(np.float32), axis=1, dtype=np.float32)
    optimizer = hook.optimizer
    if optimizer.clipnorm and optimizer.clipnorm > 0:
        clipped = np.any(gradient > optimizer.clipnorm, axis=1)
    elif optimizer.global_clipnorm and optimizer.global_clipnorm > 0:
        clipped = global_norm > optimizer.global_clipnorm
    elif optimizer.clipvalue and optimizer.clipvalue > 0:
        clipped = rows[:, MAX_ABS] > optimizer.clipvalue
    else:
        clipped = np.zeros(len(rows), bool)
    return {
        "steps": rows[:, STEP].astype(np.int64), "global_norm": global_norm,
        "clipped": clipped, "nonfinite": ~np.isfinite(summed),
        "gradient": gradient, "weight": weight, "ratio": ratio,
    }


def _dense(tensor):
    """A dense tensor with the norm of ``tensor`` (repeated IndexedSlices rows summed)."""
    if isinstance(tensor, tf.IndexedSlices):
        unique, positions = tf.unique(tensor.indices)
        return tf.math.unsorted_segment_sum(tensor.values, positions, tf.size(unique))
    return tf.convert_to_tensor(tensor)


def _half_squares(tensors):
    """``[sum(t**2) / 2]`` as float32 scalars, one ``L2Loss`` per tensor or variable."""
    return [tf.nn.l2_loss(tf.cast(_dense(t), tf.float32)) for t in tensors]


def _total(deltas):
    """The change made by ``[(sign, value)]`` assign calls (the sign matters in sums only)."""
    if not deltas:
        return tf.zeros((), tf.float32)
    if len(deltas) == 1:
        return deltas[0][1]
    return tf.add_n([sign * tf.convert_to_tensor(value) for sign, value in deltas])


@contextlib.contextmanager
def _capture_updates(optimizer, column_of, waits=None):
    """While tracing, collect ``{column: [(sign, delta)]}`` from the optimizer's assigns.

    An assign to the variable of ``column`` waits for ``waits[column]`` when given.
    """
    deltas = {}
    originals = {name: getattr(optimizer, name) for name in ("assign", "assign_add", "assign_sub")}

    def wrap(name):
        def assign(variable, value):
            column = column_of(variable)
            if column is not None:
                if name != "assign":
                    delta = (1.0 if name == "assign_add" else -1.0, value)
                elif isinstance(value, tf.IndexedSlices):
                    old = tf.gather(variable, value.indices)
                    delta = (1.0, tf.IndexedSlices(value.values - old, value.indices))
                else:
                    delta = (1.0, tf.cast(value, variable.dtype) - tf.convert_to_tensor(variable))
                deltas.setdefault(column, []).append(delta)
                if waits is not None:
                    with tf.control_dependencies([waits[column]]):
                        return originals[name](variable, value)
            return originals[name](variable, value)

        return assign

    for name in originals:
        object.__setattr__(optimizer, name, wrap(name))
    try:
        yield deltas
    finally:
        for name in originals:
            object.__delattr__(optimizer, name)


class OptimizerHook:
    """Wrap ``optimizer.apply`` to record norms of ``variables`` every ``every`` steps.

    Update norms are ``||w_after - w_before||``: read from the optimizer's assign calls
    where :func:`updates_through_assign` allows, otherwise from a copy of the weights.
    ``armed`` is read when the train function is traced: False traces a plain step.
    """

    def __init__(
        self, optimizer, variables, every, capacity, *, track_nonfinite=False,
        histograms=None, jit_compile=False,
    ):
        self.optimizer = optimizer
        self.variables = list(variables)
        self.num_variables = len(self.variables)
        self.every = every
        self.capacity = capacity
        self.track_max = bool(optimizer.clipvalue)  # only clipvalue needs max |g|
        self.track_nonfinite = track_nonfinite
        self.histograms = histograms  # (summary writer, names) or None
        self.jit_compile = jit_compile
        self.exact_updates = not updates_through_assign(optimizer, self.variables)
        self._columns = {optimizer._var_key(v): index for index, v in enumerate(self.variables)}
        width = NUM_FIXED + 3 * self.num_variables
        self.buffer = tf.Variable(tf.zeros((capacity, width), tf.float64), trainable=False)
        self.count = tf.Variable(0, dtype=tf.int64, trainable=False)
        self.nonfinite_seen = tf.Variable(False, trainable=False)
        self.drained = 0
        self.armed = True
        self._original_apply = None

    def matches(self, optimizer, every, jit_compile, variables):
        """Whether this hook records ``variables`` of ``optimizer`` as asked."""
        return (
            (self.optimizer, self.every, self.jit_compile) == (optimizer, every, jit_compile)
            and [id(v) for v in self.variables] == [id(v) for v in variables]
        )

    def _column(self, variable):
        return self._columns.get(self.optimizer._var_key(variable))

    def install(self):
        if self._original_apply is None:
            self._original_apply = self.optimizer.apply
            # object.__setattr__ keeps the wrapper out of Keras's attribute tracking.
            object.__setattr__(self.optimizer, "apply", self._apply)

    def remove(self):
        if self._original_apply is not None:
            if vars(self.optimizer).get("apply") == self._apply:
                object.__delattr__(self.optimizer, "apply")
            self._original_apply = None

    def _apply(self, grads, trainable_variables=None):
        if not self.armed:
            return self._original_apply(grads, trainable_variables)
        grads = list(grads)
        if trainable_variables is None:
            trainable_variables = self.optimizer._trainable_variables
        trainable_variables = list(trainable_variables)
        step = tf.identity(self.optimizer.iterations)
        gradients = [tf.zeros((), tf.float32)] * self.num_variables  # no gradient: zero
        for gradient, variable in zip(grads, trainable_variables):
            column = self._column(variable)
            if column is not None and gradient is not None:
                gradients[column] = gradient
        if self.every == 1:
            due = None
            head, weight_halves, snapshot = self._before(step, gradients)
        else:
            due = tf.equal(tf.math.floormod(step, self.every), 0)
            head, weight_halves, snapshot = tf.cond(
                due, lambda: self._before(step, gradients, stacked=True), self._skipped_before
            )
        if self.exact_updates:
            self._original_apply(grads, trainable_variables)
            deltas = None
        else:
            # Each assign waits for the norm of the weight it overwrites, so it writes in
            # place instead of copying. Waiting for the gradient norms instead would hold
            # every update until the end of back-propagation (+30% step time).
            waits = weight_halves if due is None else None
            with _capture_updates(self.optimizer, self._column, waits) as deltas:
                self._original_apply(grads, trainable_variables)
        self._when(
            due,
            lambda: self._after(step, head, weight_halves, snapshot, deltas),
            lambda: None,
        )

    @staticmethod
    def _when(due, record, skip):
        return record() if due is None else tf.cond(due, record, skip)

    def _before(self, step, gradients, stacked=False):
        """Return ``([max |g|, *gradient half squares], weight half squares, snapshot)``,
        as lists of scalars, or as two vectors and a list when ``stacked``."""
        if self.histograms is not None:
            writer, names = self.histograms
            with writer.as_default():
                for name, gradient in zip(names, gradients):
                    tf.summary.histogram(f"gradient/{name}", _dense(gradient), step=step)
        max_abs = tf.zeros(())
        if self.track_max:
            max_abs = tf.reduce_max(tf.stack(
                [tf.reduce_max(tf.abs(tf.cast(_dense(g), tf.float32))) for g in gradients]
            ))
        if self.exact_updates:
            snapshot = [tf.convert_to_tensor(v) for v in self.variables]
            weights = snapshot
        else:
            snapshot, weights = [], [v.value for v in self.variables]
        head, weight_halves = [max_abs, *_half_squares(gradients)], _half_squares(weights)
        if stacked:
            return tf.stack(head), tf.stack(weight_halves), snapshot
        return head, weight_halves, snapshot

    def _skipped_before(self):
        skipped = (tf.zeros((1 + self.num_variables,)), tf.zeros((self.num_variables,)))
        if not self.exact_updates:
            return (*skipped, [])
        # An XLA conditional needs equal shapes in both branches; otherwise an empty
        # tensor saves writing zeros the size of the model at every skipped step.
        return (*skipped, [
            tf.zeros_like(v) if self.jit_compile else tf.zeros((0,), v.dtype)
            for v in self.variables
        ])

    def _after(self, step, head, weight_halves, snapshot, deltas):
        if deltas is None:
            updates = [tf.convert_to_tensor(v) - s for v, s in zip(self.variables, snapshot)]
        else:
            updates = [_total(deltas.get(column)) for column in range(self.num_variables)]
        update_halves = _half_squares(updates)
        if isinstance(head, list):  # one Pack for the whole row
            values = tf.stack(head + weight_halves + update_halves)
        else:
            values = tf.concat([head, weight_halves, tf.stack(update_halves)], 0)
        # float64 keeps the step exact beyond 2**24.
        row = tf.concat([tf.cast(step, tf.float64)[None], tf.cast(values, tf.float64)], 0)
        index = tf.math.floormod(self.count, self.capacity)
        self.buffer.scatter_nd_update(index[None, None], row[None])
        self.count.assign_add(1)
        if self.track_nonfinite:
            gradient_sum = tf.reduce_sum(values[1 : 1 + self.num_variables])
            self.nonfinite_seen.assign(
                tf.logical_or(self.nonfinite_seen, tf.logical_not(tf.math.is_finite(gradient_sum)))
            )

    def drain(self):
        """Return the rows written since the last drain, oldest first, as a float64 array."""
        count = int(self.count.numpy())
        pending = count - self.drained
        if pending > self.capacity:
            raise RuntimeError(
                f"GradientMonitor lost {pending - self.capacity} records: its buffer of "
                f"{self.capacity} rows filled before it was read"
            )
        if pending <= 0:
            return np.zeros((0, self.buffer.shape[1]))
        indices = np.arange(self.drained, count) % self.capacity
        self.drained = count
        return tf.gather(self.buffer, indices).numpy()
