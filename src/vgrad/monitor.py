"""``GradientMonitor``: a Keras callback recording gradient norms during ``fit``."""

from __future__ import annotations

import time
import warnings

import keras
from vgrad._callback_guard import guarded
from vgrad._checks import check_count, check_flag, check_path
from vgrad._monitor_base import WATCHERS, MonitorBase, current_fit
from vgrad._hook_columns import check_optimizer
from vgrad._records import LISTS, TABLES, Records, recorded
from vgrad._step_log import StepSchedule

#: With ``log_dir``, an epoch end writes and flushes the summaries only when this many
#: seconds have passed since ``fit`` started or the last such flush: TensorBoard stays
#: live on long epochs, and short epochs do not pay a write each.
LIVE_SECONDS = 2.0


class GradientMonitor(MonitorBase):
    """Record per-variable gradient norms and update ratios during ``model.fit``.

    While the monitor's train function runs (and is traced), the optimizer's ``apply``
    is wrapped, so the norms are those of the gradients the optimizer received, before
    clipping, reduced inside the compiled training step (no second backward pass) and
    read from the device in batches. The wrapper is removed after each call, also when
    ``fit`` raises. Any Keras model works (Sequential, functional, subclassed, built on
    its first batch, with its own ``train_step`` calling ``optimizer.apply`` or
    ``apply_gradients``), with any Keras optimizer, ``steps_per_execution > 1``,
    ``jit_compile=True`` and ``tf.distribute.MirroredStrategy`` (then the norms are
    those of the gradient summed over the replicas, which the optimizer applies).

    On Keras's JAX backend (``KERAS_BACKEND=jax``) the monitor works the same way: its
    records travel through the jitted step as extra optimizer variables, written with
    ``keras.ops``, appended to the optimizer state only in the steps that record.
    There, ``loss`` is the change of the model's loss tracker across the step (the
    batch's mean loss, as Keras tracks it), ``histograms=True`` is refused, and
    TensorBoard scalars are written from the records on the host (no TensorFlow op in
    the step; the TensorFlow package is imported only when ``log_dir`` is given).
    ``MirroredStrategy`` and ``LossScaleOptimizer`` are TensorFlow-only here (the latter
    a ``ValueError`` when ``fit`` starts on JAX).

    A monitor never breaks the training it watches: an internal failure detaches it
    with one ``RuntimeWarning`` naming the cause, and what was recorded is kept.

    Parameters
    ----------
    every : int, default 1
        Record the optimizer steps that are multiples of ``every``.
    log_dir : str or os.PathLike, optional
        Directory for TensorBoard summaries: scalars ``gradient_norm/<path>``,
        ``update_ratio/<path>``, ``gradient_norm/global`` and ``loss`` at each
        recorded step, written when the records are read from the device, and flushed
        to disk at the end of ``fit`` and at the end of each epoch that ends at least
        two seconds after the start of ``fit`` or the last such flush (so TensorBoard
        follows a long ``fit``).
    histograms : bool, default False
        Also write ``gradient/<path>`` histograms (needs ``log_dir``): each gradient is
        binned inside the compiled step (XLA included), in 30 equal bins over
        ``[-max |g|, max |g|]``. TensorFlow backend only (a ``ValueError`` elsewhere).
    stop_on_nonfinite : bool, default False
        Set ``model.stop_training = True`` after a recorded step with a non-finite
        gradient, as ``keras.callbacks.TerminateOnNaN`` does for the loss.

    Attributes
    ----------
    steps : list of int
        Optimizer step of each record: ``optimizer.iterations`` before the update, so
        the first step of a fresh optimizer is 0. Steps continue over successive fits.
    loss : list of float
        The training loss of each recorded step: the loss of that step's batch (over
        the global batch under a distribution strategy) whose gradients were recorded,
        regularisation losses included, before loss scaling -- not the running epoch
        mean Keras logs. ``nan`` where the step did not pass its loss to the
        optimizer's ``scale_loss`` (a custom ``train_step`` may not).
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
        ``clipvalue``. A ``nan`` norm never counts as clipped. (Under a distribution
        strategy Keras clips each replica's share, so this flag is then approximate.)
    nonfinite : list of bool
        Whether a gradient held ``inf`` or ``nan`` (or values beyond ~1e19, whose
        squares overflow float32, as they do in the optimizer's clipping). Such norms
        are recorded as ``inf`` or ``nan``; nothing is raised.
    num_clipped, num_nonfinite : int
        Number of True entries of ``clipped`` and ``nonfinite``.
    num_skipped : int
        Steps that a ``LossScaleOptimizer`` (mixed precision) skipped because its
        scaled gradients held ``inf`` or ``nan``: it applies no update and halves the
        loss scale, and the inner optimizer, whose gradients are recorded, never sees
        them, so they have no record. A few at the start of training are normal;
        every step skipped means the float16 pass overflows. (Counted in the steps the
        monitor's train function runs: with ``every > 1``, the recorded ones.)

    The records are read from the device when ``fit`` ends (with ``log_dir``, also at
    epoch ends, at most every two seconds), when the buffer may fill, and whenever one
    of these attributes is read (also during ``fit``, and after ``fit`` raised).

    Raises
    ------
    TypeError, ValueError
        For a bad argument; when ``fit`` starts, for an optimizer with
        ``gradient_accumulation_steps`` or a second monitor on the same optimizer.

    Examples
    --------
    >>> monitor = GradientMonitor(every=10)
    >>> model.fit(x, y, epochs=5, callbacks=[monitor])  # doctest: +SKIP
    >>> monitor.history["dense_1/kernel"][-1]  # doctest: +SKIP
    """

    steps, loss, global_norm, clipped, nonfinite = (recorded(name) for name in LISTS)
    history, update_ratio, weight_norm = (recorded(name) for name in TABLES)

    def __init__(self, every=1, log_dir=None, histograms=False, stop_on_nonfinite=False):
        super().__init__()
        self.every = check_count("every", every)
        self.log_dir = check_path("log_dir", log_dir)
        self.histograms = check_flag("histograms", histograms)
        self.stop_on_nonfinite = check_flag("stop_on_nonfinite", stop_on_nonfinite)
        if self.histograms and self.log_dir is None:
            raise ValueError("histograms=True needs a log_dir to write them to")
        if self.histograms and keras.backend.backend() != "tensorflow":
            raise ValueError(f"histograms=True is available on the TensorFlow backend only "
                             f"(this process runs Keras on {keras.backend.backend()!r}); "
                             "use histograms=False there")
        # Keras may run on_train_batch_end in a worker thread, after the step, when every
        # callback is async-safe; ours does nothing then unless it must stop training.
        self.async_safe = not self.stop_on_nonfinite
        self._writer = self._hook = self._model_id = self._names = self._schedule = None
        self._functions = None  # (the train function fit made, its recording twin)
        self._fit = None  # a weak reference to the callback list of the fit being watched
        self._failed = self._in_fit = self._expected = self._recording = False
        self._calls = 0
        self._records = Records()

    @property
    def num_clipped(self):
        return int(sum(self.clipped))

    @property
    def num_nonfinite(self):
        return int(sum(self.nonfinite))

    @property
    def num_skipped(self):
        """Steps a ``LossScaleOptimizer`` skipped (see the class docstring)."""
        self._read_device()
        return self._records.num_skipped

    def on_train_begin(self, logs=None):
        model = self.model
        optimizer = getattr(model.optimizer, "inner_optimizer", model.optimizer)
        check_optimizer(optimizer, model.optimizer)
        other, fit = WATCHERS.get(optimizer), current_fit()
        if other is not None and other is not self and other._in_fit:
            # Two monitors in this fit, or one left over from a fit that raised?
            same_fit = fit is None or other._fit is None or other._fit() is fit()
            if same_fit and not other._calls:
                raise ValueError(
                    "the model's optimizer is already watched by another GradientMonitor; "
                    "pass one GradientMonitor per fit")
            other._detach()  # left over from a fit that raised
        self._fit = fit
        self._failed = False
        self._begin(model, optimizer)

    @guarded
    def _begin(self, model, optimizer):
        schedule = StepSchedule(self.every, int(model.steps_per_execution))
        key = (optimizer, schedule.every_in_graph, bool(model.jit_compile),
               model.trainable_variables)
        if (self._hook is None or self._hook.capacity < schedule.capacity
                or not self._hook.matches(*key)):
            self._rebuild(model, key, schedule.capacity)
        self._read_device()
        self._schedule = schedule
        schedule.start(optimizer.iterations.numpy())
        plain = model.train_function
        owner = getattr(plain, "__self__", None)
        if isinstance(owner, MonitorBase):  # left by a fit that raised
            plain = owner._functions[0]
        if self._functions is None or self._functions[0] is not plain:
            self._functions = (plain, self._make_recording_function(model))
        model.train_function = self._train_function
        WATCHERS[optimizer] = self
        self._in_fit, self._calls, self._expected = True, 0, False
        self._flushed_at = time.monotonic()

    @guarded
    def on_train_batch_begin(self, batch, logs=None):
        # The bookkeeping happens before each call, so that on_train_batch_end stays a
        # no-op: a callback with real per-batch work there makes Keras dispatch batch
        # ends synchronously and copy the logs to the host after every step.
        if self._schedule.must_read():
            self._collect()
        self._recording = self._schedule.next_call()
        self._expected = True

    @guarded
    def on_train_batch_end(self, batch, logs=None):
        # Only with stop_on_nonfinite=True (then async_safe is False: this runs in order).
        if not (self.stop_on_nonfinite and self._recording and self._hook.bound):
            return
        if self._hook.take_nonfinite():
            self.model.stop_training = True
            self._collect()
            bad_steps = [s for s, bad in zip(self._records.steps, self._records.nonfinite) if bad]
            where = f"at step {bad_steps[-1]}" if bad_steps else "in the last call"
            warnings.warn(f"GradientMonitor: non-finite gradient {where}; stopping training",
                          RuntimeWarning, stacklevel=2)

    @guarded
    def on_epoch_end(self, epoch, logs=None):
        # The records are read when asked for; with log_dir, also here (at most every
        # LIVE_SECONDS), so that TensorBoard shows them while training goes on.
        if self._writer is not None and time.monotonic() - self._flushed_at >= LIVE_SECONDS:
            self._collect()
            self._writer.flush()
            self._flushed_at = time.monotonic()
        # Re-read the step: a LossScaleOptimizer skips the steps it rejects.
        self._schedule.resync(self._hook.optimizer.iterations.numpy())

    def on_train_end(self, logs=None):
        self._read_device()
        self._detach()
        if self._writer is not None:
            self._writer.flush()

    def __repr__(self):
        head = (f"GradientMonitor(every={self.every}): {len(self.steps)} records, "
                f"{self.num_clipped} clipped, {self.num_nonfinite} non-finite")
        if self.num_skipped:
            head += f", {self.num_skipped} steps skipped by the loss scaling"
        if not self.steps:
            return head
        return f"{head}, steps {self.steps[0]}..{self.steps[-1]}\n{self._records.table()}"
