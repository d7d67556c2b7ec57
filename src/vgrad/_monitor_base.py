"""The machinery behind :class:`vgrad.GradientMonitor`: the train function it stands in
for, the hook it rebuilds, the records it reads from the device, and how it fails safely.

Kept apart from ``monitor.py`` so that the public class reads as its documentation and
its callbacks; these methods act on the same object's state.
"""

from __future__ import annotations

import sys
import warnings
import weakref

import keras
from vgrad._callback_guard import guarded
from vgrad._hook_columns import decode_rows
from vgrad._records import Records, unique_paths

#: {optimizer: the monitor watching it during a fit}.
WATCHERS = weakref.WeakKeyDictionary()


def current_fit():
    """A weak reference to the ``keras.callbacks.CallbackList`` whose ``on_train_begin``
    is running (one per ``fit`` call), or ``None`` when not called from one."""
    frame = sys._getframe(1)
    for _ in range(16):  # the callback list is a few frames up (guards, wrappers)
        if frame is None:
            break
        owner = frame.f_locals.get("self")
        if isinstance(owner, keras.callbacks.CallbackList):
            return weakref.ref(owner)
        frame = frame.f_back
    return None


class MonitorBase(keras.callbacks.Callback):
    """Internal methods of :class:`vgrad.GradientMonitor` (see there for the state)."""

    def __getstate__(self):
        """A copy (``copy.deepcopy``, ``pickle``) keeps the settings and every record
        read so far; it watches nothing (no model, no device buffer) until a fit."""
        self._read_device()
        state = dict(self.__dict__)
        for name in ("_hook", "_writer", "_functions", "_schedule", "_fit", "_model"):
            state[name] = None
        state.update(_in_fit=False, _expected=False, _recording=False)
        return state

    def _train_function(self, *arguments):
        """What ``fit`` calls as ``model.train_function`` while the monitor watches
        (``(iterator)`` on TensorFlow, ``(state, iterator)`` on JAX)."""
        plain, recording = self._functions
        # ``self.model`` would sync the JAX state here, between the fit gathering it and
        # the step donating it; the model itself is ``self._model``.
        model = self._model
        if not self._expected:  # a call this monitor did not prepare: fit raised earlier
            if model.train_function == self._train_function:
                model.train_function = plain
            return plain(*arguments)
        self._expected = False
        self._calls += 1
        if not self._recording:
            return plain(*arguments)
        with self._hook.installed(loss_owner=model.optimizer):
            logs = recording(*arguments)
        if self._hook.failure is not None:
            self._fail(self._hook.failure)
        return logs

    def _detach(self):
        """Give the model back its own train function and stop watching the optimizer."""
        self._in_fit = self._expected = False
        if self._functions is not None and self.model.train_function == self._train_function:
            self.model.train_function = self._functions[0]
        if self._hook is not None and WATCHERS.get(self._hook.optimizer) is self:
            del WATCHERS[self._hook.optimizer]

    def _fail(self, error):
        if self._failed:
            return
        self._failed = True
        try:
            self._collect()  # keep what was recorded before the failure
        except Exception:  # noqa: BLE001
            pass
        self._detach()
        warnings.warn(f"GradientMonitor stopped recording after an internal error "
                      f"({type(error).__name__}: {error}); training goes on without it",
                      RuntimeWarning, stacklevel=3)

    def _read_device(self):
        if not self._failed:
            self._guarded_collect()

    @guarded
    def _guarded_collect(self):
        self._collect()

    def _rebuild(self, model, key, capacity):
        optimizer, every_in_graph, jit_compile, variables = key
        previous = self._hook.optimizer if self._hook is not None else None
        if self._hook is not None:
            self._collect()
        steps = self._records.steps
        if self._model_id != id(model):  # records of another model do not continue
            if steps:
                warnings.warn(f"GradientMonitor now watches model {model.name!r}; the "
                              f"{len(steps)} records of the model it watched before are "
                              "dropped (use one GradientMonitor per model to keep both)",
                              UserWarning, stacklevel=4)
            self._records = Records()
            self._model_id = id(model)
        elif previous is not None and previous is not optimizer and steps \
                and int(optimizer.iterations.numpy()) <= steps[-1]:
            warnings.warn(f"GradientMonitor: the model has a new optimizer, whose steps start "
                          f"again at {int(optimizer.iterations.numpy())}; the records of the "
                          f"earlier one (steps {steps[0]}..{steps[-1]}) are kept, so steps "
                          "repeat (use a new GradientMonitor after compile to keep runs apart)",
                          UserWarning, stacklevel=4)
        if self.log_dir is not None and self._writer is None:
            from vgrad._summaries import SummaryWriter  # imports TensorFlow (not in the step)

            self._writer = SummaryWriter(self.log_dir)
        options = dict(variables=variables or None, track_nonfinite=self.stop_on_nonfinite,
                       histograms=self.histograms, jit_compile=jit_compile)
        if keras.backend.backend() == "jax":
            from vgrad._jax_hook import JaxOptimizerHook

            self._hook = JaxOptimizerHook(optimizer, every_in_graph, capacity, model=model,
                                          **options)
        else:
            from vgrad._optimizer_hook import OptimizerHook

            # An unbuilt model has no variables yet: the hook binds to those of the
            # first optimizer step it traces.
            self._hook = OptimizerHook(optimizer, every_in_graph, capacity, **options)
        self._names = self._functions = None

    def _make_recording_function(self, model):
        """A second train function of ``model``, traced while the hook is installed."""
        if keras.backend.backend() == "jax":
            return self._hook.recording_function()
        model.make_train_function(force=True)
        return model.train_function

    def _collect(self):
        """Move the records waiting on the device into the Python lists."""
        hook = self._hook
        if hook is None or not hook.bound:
            return
        if self._names is None:
            self._names = unique_paths(hook.variables)
            self._records.add_variables(self._names)
        if hasattr(hook, "take_skipped"):  # not on JAX, which refuses a LossScaleOptimizer
            self._records.num_skipped += hook.take_skipped()
        rows, bins = hook.drain()
        if self._schedule is not None:
            self._schedule.unread = 0
        records = decode_rows(rows, hook.optimizer, hook.num_variables)
        if records is None:
            return
        self._records.extend(records, self._names)
        if self._writer is not None:
            self._writer.write(self._names, records, bins)
