"""``GradientMonitor``: a Keras callback recording gradient norms during ``fit``."""

from __future__ import annotations

import numbers
import os
import warnings

import numpy as np
import tensorflow as tf

import keras
from vgrad._optimizer_hook import MAX_ABS, NUM_FIXED, STEP, OptimizerHook
from vgrad.tables import format_number

#: Rows of the device-side buffer, read when it may fill and at every epoch end.
MIN_CAPACITY = 1024


class GradientMonitor(keras.callbacks.Callback):
    """Record per-variable gradient norms and update ratios during ``model.fit``.

    The monitor wraps the optimizer's ``apply`` for the duration of ``fit``, so the
    norms are those of the gradients the optimizer received (before clipping),
    computed inside the compiled training step without a second backward pass, and
    read from the device in batches. Any Keras model and optimizer works, with
    ``steps_per_execution > 1`` and ``jit_compile=True`` too.

    Parameters
    ----------
    every : int, default 1
        Record every ``every``-th optimizer step (steps ``0, every, 2 * every, ...``).
    log_dir : str or os.PathLike, optional
        Directory for TensorBoard summaries: scalars ``gradient_norm/<path>``,
        ``update_ratio/<path>`` and ``gradient_norm/global``.
    histograms : bool, default False
        Also write ``gradient/<path>`` histograms of the gradients (needs ``log_dir``
        and ``jit_compile=False``).
    stop_on_nonfinite : bool, default False
        Set ``model.stop_training = True`` after a recorded step whose gradients
        hold ``inf`` or ``nan``, as ``keras.callbacks.TerminateOnNaN`` does for the loss.

    Attributes
    ----------
    steps : list of int
        0-based optimizer step (``optimizer.iterations`` before the update) of each record.
    history : dict of {str: list of float}
        {variable path: L2 norm of its gradient at each record}, in model order.
    global_norm : list of float
        L2 norm of all gradients together at each record.
    update_ratio : dict of {str: list of float}
        ``||w_after - w_before|| / ||w_before||`` per variable (healthy: about 1e-3;
        ``inf`` when ``w_before`` is zero, as biases are at step 0).
    weight_norm : dict of {str: list of float}
        ``||w_before||`` per variable.
    clipped : list of bool
        Whether the optimizer's clipping changed the gradients: global norm >
        ``global_clipnorm``, any variable norm > ``clipnorm``, or any ``|g|`` >
        ``clipvalue``. A ``nan`` norm never counts as clipped.
    nonfinite : list of bool
        Whether any gradient element was ``inf`` or ``nan``; their norms are recorded
        as ``inf`` or ``nan``, never raised.

    Raises
    ------
    TypeError, ValueError
        For a bad argument; at the start of ``fit``, for an optimizer that accumulates
        gradients or a model without trainable variables.

    Examples
    --------
    >>> monitor = GradientMonitor(every=10)
    >>> model.fit(x, y, epochs=5, callbacks=[monitor])  # doctest: +SKIP
    >>> monitor.history["dense_1/kernel"][-1]  # doctest: +SKIP
    """

    def __init__(self, every=1, log_dir=None, histograms=False, stop_on_nonfinite=False):
        super().__init__()
        if isinstance(every, bool) or not isinstance(every, numbers.Integral):
            raise TypeError(f"every must be an int >= 1, got {every!r}")
        if every < 1:
            raise ValueError(f"every must be an int >= 1, got {every!r}")
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be None, a str or an os.PathLike, got {log_dir!r}")
        for name, flag in (("histograms", histograms), ("stop_on_nonfinite", stop_on_nonfinite)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if histograms and log_dir is None:
            raise ValueError("histograms=True needs a log_dir to write them to")
        self.every = int(every)
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.histograms = bool(histograms)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        self._writer = None
        self._hook = None
        self._functions = None  # (train function made by fit, its monitored twin)
        self._reset()

    def _reset(self):
        self.steps, self.global_norm, self.clipped, self.nonfinite = [], [], [], []
        self.history, self.update_ratio, self.weight_norm = {}, {}, {}

    @property
    def num_clipped(self):
        """Number of recorded steps whose gradients the optimizer clipped."""
        return int(sum(self.clipped))

    @property
    def num_nonfinite(self):
        """Number of recorded steps with an ``inf`` or ``nan`` gradient."""
        return int(sum(self.nonfinite))

    # -- Keras callback hooks ------------------------------------------------------

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = _inner_optimizer(model.optimizer)
        if self.histograms and model.jit_compile:
            raise ValueError(
                "histograms=True cannot run inside an XLA-compiled step; compile the model "
                "with jit_compile=False or use histograms=False"
            )
        variables = list(model.trainable_variables)
        if not variables:
            raise ValueError(f"model {model.name!r} has no trainable variable to monitor")
        steps_per_call = int(getattr(model, "steps_per_execution", 1) or 1)
        # One step per call: Python picks the recording or the plain train function for
        # each step, so unrecorded steps cost nothing. Several steps per call: the
        # recording function decides in the graph, with a tf.cond on the step.
        self._switching = steps_per_call == 1 and self.every > 1
        every_in_graph = 1 if self._switching else self.every
        capacity = max(MIN_CAPACITY, 4 * (steps_per_call // every_in_graph + 1))
        wrapper = vars(optimizer).get("apply")
        if wrapper is not None and getattr(wrapper, "__self__", None) is not self._hook:
            raise ValueError(
                "the model's optimizer is already watched by another GradientMonitor; pass "
                "one GradientMonitor per fit (after an interrupted fit, call the other "
                "monitor's on_train_end() to detach it)"
            )
        if not self._hook_fits(model, optimizer, variables, every_in_graph, capacity):
            self._rebuild(model, optimizer, variables, every_in_graph, capacity)
        self._hook.install()
        self._records_per_call = steps_per_call // every_in_graph + 1
        self._pending = 0
        self._next_step = int(optimizer.iterations.numpy())
        plain = model.train_function
        if self._functions is not None and plain is self._functions[1]:
            plain = self._functions[0]  # an earlier fit was interrupted before on_train_end
        if self._functions is None or self._functions[0] is not plain:
            model.make_train_function(force=True)
            self._functions = (plain, model.train_function)
        self._use(recording=True)

    def _use(self, recording):
        self._hook.armed = recording
        self.model.train_function = self._functions[1 if recording else 0]

    def on_train_batch_begin(self, batch, logs=None):
        if self._switching:
            self._use(recording=self._next_step % self.every == 0)

    def on_train_batch_end(self, batch, logs=None):
        if self._switching:
            recorded = self._hook.armed
            self._next_step += 1
            self._pending += recorded
        else:
            recorded = True
            self._pending += self._records_per_call
        if recorded and self.stop_on_nonfinite and bool(self._hook.nonfinite_seen.numpy()):
            self._hook.nonfinite_seen.assign(False)
            self.model.stop_training = True
            self._collect()
            warnings.warn(
                f"GradientMonitor: non-finite gradient at step {self._last_nonfinite_step()}; "
                "stopping training",
                RuntimeWarning,
                stacklevel=2,
            )
        elif self._pending + self._records_per_call > self._hook.capacity:
            self._collect()

    def on_epoch_end(self, epoch, logs=None):
        self._collect()

    def on_train_end(self, logs=None):
        self._collect()
        self._hook.remove()
        self._hook.armed = True
        if self.model.train_function in self._functions:
            self.model.train_function = self._functions[0]
        if self._writer is not None:
            self._writer.flush()

    # -- internals -----------------------------------------------------------------

    def _hook_fits(self, model, optimizer, variables, every_in_graph, capacity):
        hook = self._hook
        return (
            hook is not None
            and hook.optimizer is optimizer
            and hook.every == every_in_graph
            and hook.jit_compile == bool(model.jit_compile)
            and [id(v) for v in hook.variables] == [id(v) for v in variables]
            and hook.capacity >= capacity
        )

    def _rebuild(self, model, optimizer, variables, every_in_graph, capacity):
        _check_optimizer(optimizer)
        if not optimizer.built:
            optimizer.build(variables)
        if self._hook is not None:
            self._hook.remove()
        if getattr(self, "_model_id", None) != id(model):
            self._reset()
        self._model_id = id(model)
        self._names = _unique_paths(variables)
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._hook = OptimizerHook(
            optimizer,
            variables,
            every_in_graph,
            capacity,
            track_max=bool(optimizer.clipvalue),
            track_nonfinite=self.stop_on_nonfinite,
            histograms=(self._writer, self._names) if self.histograms else None,
            jit_compile=bool(model.jit_compile),
        )
        self._functions = None
        for table in (self.history, self.update_ratio, self.weight_norm):
            for name in self._names:
                table.setdefault(name, [np.nan] * len(self.steps))

    def _collect(self):
        """Move the records waiting on the device into the Python lists."""
        self._pending = 0
        rows = self._hook.drain()
        if not len(rows):
            return
        n = self._hook.num_variables
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            half_squares = rows[:, NUM_FIXED:].reshape(len(rows), 3, n)
            gradient, weight, update = np.sqrt(2.0 * half_squares).transpose(1, 0, 2)
            global_norm = np.sqrt(np.sum(np.square(gradient), axis=1))
            ratio = update / weight
        self.steps.extend(rows[:, STEP].astype(np.int64).tolist())
        self.global_norm.extend(global_norm.tolist())
        # Summed in float32 as in the graph: squares beyond float32 count as non-finite.
        summed = np.sum(half_squares[:, 0].astype(np.float32), axis=1, dtype=np.float32)
        self.nonfinite.extend((~np.isfinite(summed)).tolist())
        self.clipped.extend(_clipped(self._hook.optimizer, gradient, global_norm, rows[:, MAX_ABS]))
        for table, values in ((self.history, gradient), (self.update_ratio, ratio),
                              (self.weight_norm, weight)):
            for name in table:
                if name not in self._names:  # a variable no longer trainable
                    table[name].extend([np.nan] * len(rows))
            for column, name in enumerate(self._names):
                table[name].extend(values[:, column].tolist())
        if self._writer is not None:
            self._write_scalars(rows[:, STEP], gradient, ratio, global_norm)

    def _write_scalars(self, steps, gradient, ratio, global_norm):
        with self._writer.as_default():
            for index, step in enumerate(steps):
                values = [("gradient_norm/global", global_norm[index])]
                for column, name in enumerate(self._names):
                    values.append((f"gradient_norm/{name}", gradient[index, column]))
                    values.append((f"update_ratio/{name}", ratio[index, column]))
                summary = tf.compat.v1.Summary(
                    value=[tf.compat.v1.Summary.Value(tag=t, simple_value=v) for t, v in values]
                )
                tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=int(step))
        self._writer.flush()

    def _last_nonfinite_step(self):
        flagged = [s for s, bad in zip(self.steps, self.nonfinite) if bad]
        return flagged[-1] if flagged else None

    def __repr__(self):
        head = (
            f"GradientMonitor(every={self.every}): {len(self.steps)} records, "
            f"{self.num_clipped} clipped, {self.num_nonfinite} non-finite"
        )
        if not self.steps:
            return head
        head += f", steps {self.steps[0]}..{self.steps[-1]}"
        rows = [("variable", "last norm", "median norm", "update ratio")]
        for name, norms in self.history.items():
            rows.append((name, norms[-1], _median(norms), self.update_ratio[name][-1]))
        rows.append(("(global)", self.global_norm[-1], _median(self.global_norm), None))
        width = max(len(row[0]) for row in rows)
        lines = [head, f"{rows[0][0]:<{width}}  {rows[0][1]:>10}  {rows[0][2]:>11}  {rows[0][3]:>12}"]
        for name, last, median, ratio in rows[1:]:
            lines.append(
                f"{name:<{width}}  {format_number(last):>10}  {format_number(median):>11}  "
                f"{format_number(ratio):>12}"
            )
        return "\n".join(lines)


def _median(values):
    return float(np.median(values)) if len(values) else None


def _inner_optimizer(optimizer):
    # A LossScaleOptimizer hands the unscaled gradients to its inner optimizer.
    return getattr(optimizer, "inner_optimizer", optimizer)


def _check_optimizer(optimizer):
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError(
            f"GradientMonitor needs a model compiled with a keras.optimizers.Optimizer, "
            f"got {type(optimizer).__name__}"
        )
    if optimizer.gradient_accumulation_steps:
        raise ValueError(
            "GradientMonitor does not support gradient_accumulation_steps="
            f"{optimizer.gradient_accumulation_steps}; use an optimizer without it"
        )


def _unique_paths(variables):
    names, seen = [], {}
    for variable in variables:
        path = getattr(variable, "path", variable.name)
        seen[path] = seen.get(path, 0) + 1
        names.append(path if seen[path] == 1 else f"{path}#{seen[path]}")
    return names


def _clipped(optimizer, gradient, global_norm, max_abs):
    if optimizer.clipnorm and optimizer.clipnorm > 0:
        return np.any(gradient > optimizer.clipnorm, axis=1).tolist()
    if optimizer.global_clipnorm and optimizer.global_clipnorm > 0:
        return (global_norm > optimizer.global_clipnorm).tolist()
    if optimizer.clipvalue and optimizer.clipvalue > 0:
        return (max_abs > optimizer.clipvalue).tolist()
    return [False] * len(global_norm)
