"""``GradientMonitor``: a Keras callback recording gradient norms during ``fit``."""

from __future__ import annotations

import os
import warnings

import numpy as np
import tensorflow as tf

import keras
from vgrad._optimizer_hook import OptimizerHook, check_optimizer, decode_rows
from vgrad._checks import check_count
from vgrad.tables import finite_median, format_number

#: Rows of the device-side buffer, read when it may fill and at every epoch end.
MIN_CAPACITY = 256


class GradientMonitor(keras.callbacks.Callback):
    """Record per-variable gradient norms and update ratios during ``model.fit``.

    For the duration of ``fit`` the monitor wraps the optimizer's ``apply``, so the
    norms are those of the gradients the optimizer received, before clipping, reduced
    inside the compiled training step (no second backward pass) and read from the
    device in batches. Any Keras model works (Sequential, functional, subclassed), with
    any Keras optimizer, ``steps_per_execution > 1`` and ``jit_compile=True``.

    Parameters
    ----------
    every : int, default 1
        Record the optimizer steps that are multiples of ``every``.
    log_dir : str or os.PathLike, optional
        Directory for TensorBoard summaries: scalars ``gradient_norm/<path>``,
        ``update_ratio/<path>`` and ``gradient_norm/global`` at each recorded step.
    histograms : bool, default False
        Also write ``gradient/<path>`` histograms (needs ``log_dir`` and a model
        compiled with ``jit_compile=False``).
    stop_on_nonfinite : bool, default False
        Set ``model.stop_training = True`` after a recorded step with a non-finite
        gradient, as ``keras.callbacks.TerminateOnNaN`` does for the loss.

    Attributes
    ----------
    steps : list of int
        Optimizer step of each record: ``optimizer.iterations`` before the update, so
        the first step of a fresh optimizer is 0. Steps continue over successive fits.
    history : dict of {str: list of float}
        {variable path (``variable.path``, e.g. ``"dense_3/kernel"``): L2 norm of the
        gradient the optimizer received at each record}, every trainable variable, in
        model order. A variable without gradient records 0.
    global_norm : list of float
        L2 norm of all gradients together at each record, before clipping.
    update_ratio : dict of {str: list of float}
        ``||w_after - w_before|| / ||w_before||`` (healthy: about 1e-3); ``inf`` where
        the weights were all zero, as biases are at step 0.
    weight_norm : dict of {str: list of float}
        ``||w_before||`` at each record.
    clipped : list of bool
        Whether the optimizer's clipping changed the gradients: global norm >
        ``global_clipnorm``, some variable's norm > ``clipnorm``, or some ``|g|`` >
        ``clipvalue``. A ``nan`` norm never counts as clipped.
    nonfinite : list of bool
        Whether a gradient held ``inf`` or ``nan`` (or values beyond ~1e19, whose
        squares overflow float32, as they do in the optimizer's clipping). Such norms
        are recorded as ``inf`` or ``nan``; nothing is raised.
    num_clipped, num_nonfinite : int
        Number of True entries of ``clipped`` and ``nonfinite``.

    Raises
    ------
    TypeError, ValueError
        For a bad argument; when ``fit`` starts, for an optimizer with
        ``gradient_accumulation_steps``, a second monitor on the same optimizer, or
        ``histograms=True`` with ``jit_compile=True``.

    Examples
    --------
    >>> monitor = GradientMonitor(every=10)
    >>> model.fit(x, y, epochs=5, callbacks=[monitor])  # doctest: +SKIP
    >>> monitor.history["dense_1/kernel"][-1]  # doctest: +SKIP
    """

    def __init__(self, every=1, log_dir=None, histograms=False, stop_on_nonfinite=False):
        super().__init__()
        self.every = check_count("every", every)
        if log_dir is not None and not isinstance(log_dir, (str, os.PathLike)):
            raise TypeError(f"log_dir must be None, a str or an os.PathLike, got {log_dir!r}")
        for name, flag in (("histograms", histograms), ("stop_on_nonfinite", stop_on_nonfinite)):
            if not isinstance(flag, (bool, np.bool_)):
                raise TypeError(f"{name} must be True or False, got {flag!r}")
        if histograms and log_dir is None:
            raise ValueError("histograms=True needs a log_dir to write them to")
        self.log_dir = None if log_dir is None else os.fspath(log_dir)
        self.histograms = bool(histograms)
        self.stop_on_nonfinite = bool(stop_on_nonfinite)
        # Keras may run on_train_batch_end in a worker thread, after the step, when every
        # callback is async-safe; ours does nothing then unless it must stop training.
        self.async_safe = not self.stop_on_nonfinite
        self._writer = self._hook = self._model_id = None
        self._functions = None  # (the train function fit made, its recording twin)
        self.steps, self.global_norm, self.clipped, self.nonfinite = [], [], [], []
        self.history, self.update_ratio, self.weight_norm = {}, {}, {}

    @property
    def num_clipped(self):
        return int(sum(self.clipped))

    @property
    def num_nonfinite(self):
        return int(sum(self.nonfinite))

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        check_optimizer(optimizer, self._hook)
        if not model.trainable_variables:
            raise ValueError(f"model {model.name!r} has no trainable variable to monitor")
        if self.histograms and model.jit_compile:
            raise ValueError("histograms=True cannot run in an XLA-compiled step; compile "
                             "the model with jit_compile=False or pass histograms=False")
        steps_per_call = int(model.steps_per_execution)
        # One step per call: Python picks the recording or the plain train function
        # before each step, so unrecorded steps cost nothing. Several steps per call:
        # the recording function decides in the graph, with a tf.cond on the step.
        self._switching = steps_per_call == 1 and self.every > 1
        every_in_graph = 1 if self._switching else self.every
        self._records_per_call = steps_per_call // every_in_graph + 1
        capacity = max(MIN_CAPACITY, 4 * self._records_per_call)
        key = (optimizer, every_in_graph, bool(model.jit_compile), model.trainable_variables)
        if self._hook is None or not self._hook.matches(*key) or self._hook.capacity < capacity:
            self._rebuild(model, key, capacity)
        self._hook.install()
        self._pending, self._ran = 0, None
        self._next_step = int(optimizer.iterations.numpy())
        plain = model.train_function
        if self._functions is not None and plain is self._functions[1]:
            plain = self._functions[0]  # an earlier fit stopped before on_train_end
        if self._functions is None or self._functions[0] is not plain:
            model.make_train_function(force=True)
            self._functions = (plain, model.train_function)
        self._use(recording=True)

    def _use(self, recording):
        self._hook.armed = recording  # read when the function is traced
        self.model.train_function = self._functions[1 if recording else 0]

    def on_train_batch_begin(self, batch, logs=None):
        # The bookkeeping of a step happens when the next one begins, so that
        # on_train_batch_end stays a no-op: a callback with real per-batch work there
        # makes Keras dispatch batch ends synchronously and copy the logs to the host
        # after every step, which costs more than the norms themselves.
        if self._ran is not None:
            self._pending += self._ran
            if self._pending + self._records_per_call > self._hook.capacity:
                self._collect()
        if self._switching:
            recording = self._next_step % self.every == 0
            self._use(recording=recording)
            self._next_step += 1
            self._ran = int(recording)
        else:
            self._ran = self._records_per_call

    def on_train_batch_end(self, batch, logs=None):
        # Only with stop_on_nonfinite=True (then async_safe is False: this runs in order).
        if not (self.stop_on_nonfinite and self._ran):
            return
        if bool(self._hook.nonfinite_seen.numpy()):
            self._hook.nonfinite_seen.assign(False)
            self.model.stop_training = True
            self._collect()
            bad_steps = [s for s, bad in zip(self.steps, self.nonfinite) if bad]
            warnings.warn(f"GradientMonitor: non-finite gradient at step {bad_steps[-1:]}; "
                          "stopping training", RuntimeWarning, stacklevel=2)

    def on_epoch_end(self, epoch, logs=None):
        self._collect()
        # Re-read the step: a LossScaleOptimizer skips the steps it rejects.
        self._next_step = int(self._hook.optimizer.iterations.numpy())

    def on_train_end(self, logs=None):
        self._collect()
        self._hook.remove()
        self._hook.armed = True
        if any(self.model.train_function is f for f in self._functions):
            self.model.train_function = self._functions[0]
        if self._writer is not None:
            self._writer.flush()

    def _rebuild(self, model, key, capacity):
        optimizer, every_in_graph, jit_compile, variables = key
        if self._hook is not None:
            self._collect()
            self._hook.remove()
        if self._model_id != id(model):  # records of another model do not continue
            self.steps, self.global_norm, self.clipped, self.nonfinite = [], [], [], []
            self.history, self.update_ratio, self.weight_norm = {}, {}, {}
            self._model_id = id(model)
        self._names = _unique_paths(variables)
        if self.log_dir is not None and self._writer is None:
            self._writer = tf.summary.create_file_writer(self.log_dir)
        self._hook = OptimizerHook(
            optimizer, variables, every_in_graph, capacity,
            track_nonfinite=self.stop_on_nonfinite, jit_compile=jit_compile,
            histograms=(self._writer, self._names) if self.histograms else None,
        )
        self._functions = None
        for table in (self.history, self.update_ratio, self.weight_norm):
            for name in self._names:  # a variable made trainable later: nan before
                table.setdefault(name, [np.nan] * len(self.steps))

    def _collect(self):
        """Move the records waiting on the device into the Python lists."""
        self._pending, self._ran = 0, None
        records = decode_rows(self._hook.drain(), self._hook)
        if records is None:
            return
        self.steps.extend(records["steps"].tolist())
        for name in ("global_norm", "clipped", "nonfinite"):
            getattr(self, name).extend(records[name].tolist())
        for table, values in ((self.history, records["gradient"]),
                              (self.update_ratio, records["ratio"]),
                              (self.weight_norm, records["weight"])):
            for name in set(table) - set(self._names):  # a variable no longer trainable
                table[name].extend([np.nan] * len(values))
            for column, name in enumerate(self._names):
                table[name].extend(values[:, column].tolist())
        if self._writer is not None:
            self._write_scalars(records)

    def _write_scalars(self, records):
        with self._writer.as_default():
            for index, step in enumerate(records["steps"]):
                values = [("gradient_norm/global", records["global_norm"][index])]
                for column, name in enumerate(self._names):
                    values.append((f"gradient_norm/{name}", records["gradient"][index, column]))
                    values.append((f"update_ratio/{name}", records["ratio"][index, column]))
                summary = tf.compat.v1.Summary(
                    value=[tf.compat.v1.Summary.Value(tag=t, simple_value=v) for t, v in values]
                )
                tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=int(step))
        self._writer.flush()

    def __repr__(self):
        head = (f"GradientMonitor(every={self.every}): {len(self.steps)} records, "
                f"{self.num_clipped} clipped, {self.num_nonfinite} non-finite")
        if not self.steps:
            return head
        rows = [(name, norms[-1], finite_median(norms), self.update_ratio[name][-1])
                for name, norms in self.history.items()]
        rows.append(("(global)", self.global_norm[-1], finite_median(self.global_norm), None))
        width = max(len(row[0]) for row in rows)
        lines = [f"{head}, steps {self.steps[0]}..{self.steps[-1]}",
                 f"{'variable':<{width}}  {'last norm':>10}  {'median norm':>11}  "
                 f"{'update ratio':>12}"]
        for name, last, median, ratio in rows:
            lines.append(f"{name:<{width}}  {format_number(last):>10}  "
                         f"{format_number(float(median)):>11}  {format_number(ratio):>12}")
        return "\n".join(lines)


def _unique_paths(variables):
    names, seen = [], {}
    for variable in variables:
        path = getattr(variable, "path", variable.name)
        seen[path] = seen.get(path, 0) + 1
        names.append(path if seen[path] == 1 else f"{path}#{seen[path]}")
    return names
