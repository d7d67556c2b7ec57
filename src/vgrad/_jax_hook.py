"""Record gradient and update norms inside a Keras optimizer's ``apply`` on the JAX
backend, with ``keras.ops`` only (no TensorFlow op in the step).

The JAX trainer is functional: ``train_step(state, data)`` calls
``optimizer.stateless_apply``, which runs ``optimizer.apply`` inside a
``StatelessScope`` (under ``jit``). The records (a ring buffer of rows, their steps and
losses, a row count, a count of non-finite rows) therefore travel through the jitted
step as optimizer state written with ``keras.ops``, as Keras's ``LossScaleOptimizer``
keeps its state, but only in the calls that record: the recording function appends
them to the state ``fit`` passes and takes them out of the state it returns (the
optimizer lists them as variables only during that call, for the trace). The model's
own train function, the unrecorded steps and the optimizer after ``fit`` never carry
them, and Python reads them without a state sync.

The loss of a recorded step is the change of the model's loss tracker (its total over
its count) across ``train_step``: the loss is not visible inside ``apply``, and taking
it from ``scale_loss`` would leak a value out of ``jax.value_and_grad``'s trace.
"""

from __future__ import annotations

import contextlib

import numpy as np

import keras
from keras import ops

from vgrad._hook_columns import LOSS, NUM_FIXED, copies_weights_for
from vgrad._jax_ops import captured_updates, index_of, max_abs, norm_halves, totals

__all__ = ["JaxOptimizerHook"]


class JaxOptimizerHook:
    """Record norms of ``optimizer``'s trainable ``variables`` of ``model`` every
    ``every`` steps (``every`` in the step; the monitor switches functions otherwise).

    Same interface as :class:`vgrad._optimizer_hook.OptimizerHook`, plus
    :meth:`recording_function`.
    """

    def __init__(self, optimizer, every, capacity, *, model, variables=None,
                 track_nonfinite=False, histograms=False, jit_compile=False):
        # histograms=True is refused by GradientMonitor itself on this backend
        if not variables:
            raise ValueError("GradientMonitor on JAX needs a built model (its variables "
                             "exist when fit starts); build it before fit")
        self.optimizer = optimizer
        self.model = model
        self.every = every
        self.capacity = capacity
        self.track_nonfinite = track_nonfinite
        self.histograms = False
        self.jit_compile = jit_compile
        self.track_max = bool(optimizer.clipvalue)  # only clipvalue needs max |g|
        self.failure, self.drained, self._nonfinite_read = None, 0, 0
        self.variables = list(variables)
        self.num_variables = len(self.variables)
        self.copies_weights = copies_weights_for(optimizer, self.variables)
        width = NUM_FIXED + 3 * self.num_variables
        specs = [("buffer", (capacity, width), np.float32), ("steps", (capacity,), np.int32),
                 ("losses", (capacity,), np.float32), ("count", (), np.int32),
                 ("nonfinite_count", (), np.int32)]
        with keras.name_scope("vgrad_monitor"):
            # losses start as nan, kept where a step's loss is not seen (as on TensorFlow)
            self._initial = [np.full(shape, np.nan if name == "losses" else 0, dtype)
                             for name, shape, dtype in specs]
            self._own = [keras.Variable(value, trainable=False, name=name)
                         for value, (name, _, _) in zip(self._initial, specs)]
        self.buffer, self.steps, self.losses, self.count, self.nonfinite_count = self._own
        self._records = None  # their values after the last recording call
        self._columns = {id(v): i for i, v in enumerate(self.variables)}

    bound = True

    def matches(self, optimizer, every, jit_compile, variables):
        """Whether this hook records ``variables`` of ``optimizer`` as asked."""
        return ((self.optimizer, self.every, self.jit_compile) == (optimizer, every, jit_compile)
                and [id(v) for v in self.variables] == [id(v) for v in variables])

    @contextlib.contextmanager
    def _attached(self):
        """Make the record variables the last optimizer variables for the block (the
        recording step's trace maps them to the state positions they are given)."""
        state = self.optimizer._variables
        count = len(state)
        state.extend(self._own)
        try:
            yield
        finally:
            del state[count:]

    def records(self):
        """The current values of the record variables (arrays; their initial values at
        first, not the variables' own arrays, which the first recording step would donate)."""
        if self._records is None:
            return [value.copy() for value in self._initial]
        return self._records

    def _run(self, function, state, *arguments):
        """Call ``function`` with the records appended to the optimizer state of
        ``state``; keep them from the state it returns, and return the rest."""
        trainable, non_trainable, optimizer_state, *rest = state
        extended = (trainable, non_trainable, [*optimizer_state, *self.records()], *rest)
        with self._attached():
            logs, new_state = function(extended, *arguments)
        trainable, non_trainable, optimizer_state, *rest = new_state
        split = len(optimizer_state) - len(self._own)
        self._records = list(optimizer_state[split:])
        return logs, (trainable, non_trainable, list(optimizer_state[:split]), *rest)

    # -- the step ----------------------------------------------------------------------

    def recording_function(self):
        """The model's train function, made anew around a step that also writes the
        loss of each recorded step (jitted when the model is), called with the records
        in the optimizer state."""
        model = self.model

        def step(state, data):  # a new function: jit's cache must not reuse another trace
            return self._train_step(state, data)

        if not model.run_eagerly and model.jit_compile:
            import jax  # the JAX backend is running: jax is installed

            step = jax.jit(step, donate_argnums=0)
        function = model._make_function(step)
        return lambda state, *arguments: self._run(function, state, *arguments)

    def _train_step(self, state, data):
        logs, new_state = self.model.train_step(state, data)
        try:
            new_state = self._write_loss(state, new_state)
        except Exception as error:  # noqa: BLE001 - a monitor must not break training
            self.failure = error
        return logs, new_state

    def _write_loss(self, state, new_state):
        tracker = getattr(self.model, "_loss_tracker", None)
        metrics = list(self.model.metrics_variables)
        positions = [index_of(metrics, v) for v in getattr(tracker, "variables", ())]
        if tracker is None or len(positions) != 2 or None in positions:
            return new_state
        (total, count), (new_total, new_count) = (
            [state[3][p] for p in positions], [new_state[3][p] for p in positions])
        counted = new_count - count  # 0 when a custom train_step keeps its own tracker: nan
        loss = ops.where(counted > 0, (new_total - total) / ops.maximum(counted, 1e-30), np.nan)
        variables = list(self.optimizer.variables)
        losses_at, count_at = index_of(variables, self.losses), index_of(variables, self.count)
        optimizer_state = list(new_state[2])
        written, old_count = optimizer_state[count_at], state[2][count_at]
        # The row this step wrote, or else the next free one (which no read reaches).
        index = ops.mod(written - ops.cast(written > old_count, "int32"), self.capacity)
        optimizer_state[losses_at] = ops.slice_update(
            optimizer_state[losses_at], (index,), ops.cast(loss, "float32")[None])
        return (new_state[0], new_state[1], optimizer_state, *new_state[3:])

    @contextlib.contextmanager
    def installed(self, loss_owner=None):
        """Patch ``optimizer.apply`` for the duration of the block."""
        original_apply = self.optimizer.apply

        def apply(grads, trainable_variables=None):
            return self._apply(original_apply, grads, trainable_variables)

        object.__setattr__(self.optimizer, "apply", apply)
        try:
            yield self
        finally:
            object.__delattr__(self.optimizer, "apply")

    def _apply(self, original_apply, grads, trainable_variables=None):
        grads = list(grads)
        if self.failure is not None:
            return original_apply(grads, trainable_variables)
        try:
            if trainable_variables is None:
                trainable_variables = self.optimizer._trainable_variables
            gradients = [None] * self.num_variables
            for gradient, variable in zip(grads, trainable_variables):
                column = self._columns.get(id(variable))
                if column is not None and gradient is not None:
                    gradients[column] = gradient
            step = ops.convert_to_tensor(self.optimizer.iterations)
            before = [ops.convert_to_tensor(v.value) for v in self.variables]
            # Row layout of _hook_columns: step (kept apart, in ``steps``), max |g|, loss.
            head = [ops.zeros((), "float32"),
                    max_abs(gradients) if self.track_max else ops.zeros((), "float32"),
                    ops.convert_to_tensor(np.nan, "float32")]
            gradients = [ops.zeros(v.shape, "float32") if g is None else g
                         for g, v in zip(gradients, self.variables)]
        except Exception as error:  # noqa: BLE001
            self.failure = error
            return original_apply(grads, trainable_variables)
        # With weight decay, EMA or constraints some changes bypass assign*: read after.
        capture = (contextlib.nullcontext(None) if self.copies_weights else
                   captured_updates(self.optimizer, lambda v: self._columns.get(id(v))))
        with capture as changes:
            result = original_apply(grads, trainable_variables)
        try:
            updates = ([ops.convert_to_tensor(v.value) - b for v, b in zip(self.variables, before)]
                       if changes is None else totals(changes, self.variables))
            halves = norm_halves(gradients, before, updates)
            self._write(step, ops.concatenate([ops.stack(head), halves]))
        except Exception as error:  # noqa: BLE001
            self.failure = error
        return result

    def _write(self, step, values):
        count = ops.convert_to_tensor(self.count.value)
        index = ops.mod(count, self.capacity)
        # An unrecorded step writes the next free row, which only a recorded step counts.
        self.buffer.assign(ops.slice_update(self.buffer.value, (index, 0), values[None]))
        self.steps.assign(ops.slice_update(self.steps.value, (index,),
                                           ops.cast(step, "int32")[None]))
        due = ops.equal(ops.mod(step, self.every), 0) if self.every > 1 else True
        self.count.assign(count + ops.cast(due, "int32"))
        if self.track_nonfinite:
            gradient_sum = ops.sum(values[NUM_FIXED : NUM_FIXED + self.num_variables])
            bad = ops.logical_and(due, ops.logical_not(ops.isfinite(gradient_sum)))
            self.nonfinite_count.assign(self.nonfinite_count.value + ops.cast(bad, "int32"))

    # -- reads -------------------------------------------------------------------------

    def take_nonfinite(self):
        """Whether a non-finite row was written since the last call."""
        seen = int(np.asarray(self.records()[4]))
        new, self._nonfinite_read = seen > self._nonfinite_read, seen
        return new

    def drain(self):
        """Return ``(rows, None)``: the rows written since the last drain, oldest first,
        as a float64 array whose first column is the step."""
        buffer, steps, losses, count = self.records()[:4]
        count = int(np.asarray(count))
        pending = count - self.drained
        if pending > self.capacity:
            raise RuntimeError(
                f"GradientMonitor lost {pending - self.capacity} records: its buffer of "
                f"{self.capacity} rows filled before it was read")
        if pending <= 0:
            return np.zeros((0, self.buffer.shape[1])), None
        indices = np.arange(self.drained, count) % self.capacity
        self.drained = count
        rows = np.asarray(buffer, np.float64)[indices]
        rows[:, 0] = np.asarray(steps, np.int64)[indices]
        rows[:, LOSS] = np.asarray(losses, np.float64)[indices]
        return rows, None
