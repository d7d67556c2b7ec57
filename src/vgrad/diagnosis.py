"""Verdicts: is the gradient flow healthy, vanishing or exploding, and what to change.

The rules compare the gradient at the first hidden layer with the one at the output
side (the last hidden layer), check that the loss and every gradient are finite, and
read the activation statistics to choose the advice. Thresholds:

``VANISHING_RATIO = 1e-2``
    First-to-last gradient ratio below which the gradients vanish.
``EXPLODING_RATIO = 1e2``
    First-to-last gradient ratio above which the gradients explode.
``EXPLODING_NORM = 1e3``
    Kernel-gradient L2 norm above which gradients explode whatever the ratio (a
    kernel gradient scales with the layer's input too, so when activations grow
    forward and gradients grow backward the kernel-gradient ratio stays near 1).
``SATURATION_THRESHOLD = 0.3``
    Share of saturated sigmoid/tanh outputs, in any hidden layer, that calls for advice.
``DEAD_THRESHOLD = 0.5``
    Share of dead ReLU units, in any hidden layer, that calls for advice.
``UPDATE_RATIO_FLOOR = 1e-5``
    Median ``||update|| / ||weight||`` per step far below the usual ~1e-3.
``GROWTH_THRESHOLD = 1e2``
    Growth of the global gradient norm during a recorded run (median of its last
    third over the median of its first third) that counts as exploding.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

import keras

from vgrad.tables import finite_median, format_number

VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2
EXPLODING_NORM = 1e3
SATURATION_THRESHOLD = 0.3
DEAD_THRESHOLD = 0.5
UPDATE_RATIO_FLOOR = 1e-5
GROWTH_THRESHOLD = 1e2

#: The fixes that the advice chooses from, keyed by a short name.
ADVICE = {
    "lstm": "Use LSTM or GRU instead of SimpleRNN: the gated cell state carries gradients "
            "across many time steps (Hochreiter & Schmidhuber 1997).",
    "relu": "Replace sigmoid/tanh hidden activations with ReLU (activation='relu'): its "
            "derivative is 1 for active units, where the sigmoid's is at most 1/4.",
    "he": "Initialise kernels with He initialisation (kernel_initializer='he_normal'), which "
          "keeps activation and gradient variance constant across ReLU layers (He et al. 2015).",
    "batch_norm": "Add BatchNormalization before each activation (build_mlp(..., "
                  "batch_norm=True)): it rescales every layer's pre-activations to unit "
                  "variance, away from flat tails and runaway scales (Ioffe & Szegedy 2015).",
    "residual": "Add residual connections (build_mlp(..., residual=True)): the identity path "
                "carries the gradient around every layer (He et al. 2016).",
    "leaky": "Dead ReLU units pass no gradient: use He initialisation, leaky ReLU or ELU "
             "(activation='leaky_relu'), and a lower learning rate if units die in training.",
    "clip": "Clip gradients (optimizer clipnorm=1.0 or global_clipnorm=1.0) so that one "
            "large step cannot throw the weights away (Pascanu et al. 2013).",
    "smaller_init": "Use a smaller initial weight scale: Glorot or He initialisation instead "
                    "of a large RandomNormal stddev.",
    "inputs": "The forward pass overflows before any gradient is taken, so clipping cannot "
              "help: shrink the initial weights and standardise the inputs.",
    "lower_lr": "Lower the learning rate.",
    "healthy": "No change needed: the first layer gets a gradient on the same scale as the last.",
}


@dataclass(frozen=True)
class LayerFinding:
    """What was measured at one hidden layer (or, for a monitor, one kernel variable).

    Values that do not apply are ``None`` (printed ``n/a``); non-finite measurements
    are ``inf`` or ``nan``. Ratios are to the output-side (last) layer.
    """

    name: str
    activation: str | None = None
    kernel_norm: float | None = None
    kernel_ratio: float | None = None
    backprop_rms: float | None = None
    backprop_ratio: float | None = None
    saturated_fraction: float | None = None
    dead_fraction: float | None = None
    update_ratio: float | None = None
    finite: bool = True


_COLUMNS = (  # (header, attribute, format)
    ("activation", "activation", "s"), ("kernel grad", "kernel_norm", ".3e"),
    ("/last", "kernel_ratio", ".1e"), ("backprop rms", "backprop_rms", ".3e"),
    ("/last", "backprop_ratio", ".1e"), ("saturated", "saturated_fraction", "%"),
    ("dead", "dead_fraction", "%"), ("update ratio", "update_ratio", ".1e"),
)


def _cell(value, spec):
    if spec == "%" and value is not None and math.isfinite(value):
        return f"{100 * value:.1f}%"
    return format_number(value, "" if spec in ("s", "%") else spec)


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # "inf", "-inf", "nan": valid JSON, unlike bare inf/nan
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


@dataclass(frozen=True, repr=False)
class Diagnosis:
    """The verdict on a model's (or a recorded run's) gradient flow, with the evidence.

    Attributes
    ----------
    verdict : {"healthy", "vanishing", "exploding"}
    reason : str
        The measurement and threshold behind the verdict.
    layers : tuple of LayerFinding
        One record per hidden layer (per kernel variable for a monitor), input side first.
    advice : tuple of str
        The fixes to try, most relevant first (from :data:`ADVICE`).
    notes : tuple of str
        Caveats: what could not be measured, clipping activity.
    ratio : float
        First-to-last gradient ratio used for the verdict.
    ratio_kind : {"backprop", "kernel"}
        Whether ``ratio`` compares back-propagated gradient RMS or kernel-gradient norms.
    loss : float or None
        Loss of the probed batch (``None`` for a monitor).
    forward_finite, gradients_finite : bool
        ``forward_finite=False`` means the forward pass itself overflowed (a non-finite
        loss): an explosion that happens before back-propagation.
    source : {"model", "monitor"}
    """

    verdict: str
    reason: str
    layers: tuple
    advice: tuple
    notes: tuple = ()
    ratio: float = math.nan
    ratio_kind: str = "backprop"
    loss: float | None = None
    forward_finite: bool = True
    gradients_finite: bool = True
    source: str = "model"

    def to_dict(self):
        """A JSON-ready dict; ``inf``/``nan`` become the strings ``"inf"``/``"nan"``."""
        result = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "layers"}
        result["layers"] = [asdict(layer) for layer in self.layers]
        return _json_safe(result)

    def __str__(self):
        columns = [c for c in _COLUMNS if any(getattr(r, c[1]) is not None for r in self.layers)]
        rows = [["layer", *(c[0] for c in columns)]]
        title = f"gradient flow ({self.source}); /last: ratio to {self.layers[-1].name}"
        for record in self.layers:
            cells = [_cell(getattr(record, attribute), spec) for _, attribute, spec in columns]
            rows.append([record.name + ("" if record.finite else " !"), *cells])
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(cell.ljust(w) if i == 0 else cell.rjust(w)
                           for i, (cell, w) in enumerate(zip(row, widths))) for row in rows]
        lines.insert(0, title)
        if not all(record.finite for record in self.layers):
            lines.append("(! marks a layer with an inf or nan gradient)")
        lines.append(f"verdict: {self.verdict} -- {self.reason}")
        if self.loss is not None:
            lines.append(f"loss: {format_number(self.loss, '.4g')}")
        lines += ["advice:", *(f"  {i}. {text}" for i, text in enumerate(self.advice, 1))]
        if self.notes:
            lines += ["notes:", *(f"  - {text}" for text in self.notes)]
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text("Diagnosis(...)" if cycle else str(self))


def _ratio(numerator, denominator):
    if denominator is None or numerator is None:
        return None
    if denominator == 0 or not math.isfinite(denominator):
        return math.nan
    return numerator / denominator


def _advice(verdict, kinds, saturated, dead, *, forward_finite=True, recurrent=False):
    """Choose fixes from the verdict and the activation findings (names in ADVICE)."""
    saturating = bool(kinds & {"sigmoid", "tanh", "hard_sigmoid", "softsign"}) or not kinds
    chosen = []
    if verdict == "vanishing":
        chosen += ["lstm"] if recurrent else []
        chosen += ["relu", "he"] if saturating else ["he"]
        chosen += ["batch_norm", "residual"]
    elif not forward_finite:  # activations are inf/nan: their statistics mean nothing
        return tuple(ADVICE[name] for name in ("inputs", "smaller_init", "batch_norm"))
    elif verdict == "exploding":
        chosen += ["clip", "smaller_init", "lower_lr"] + (["lstm"] if recurrent else ["batch_norm"])
    if saturated:
        chosen += ["relu", "batch_norm"]
    if dead:
        chosen += ["leaky", "he", "lower_lr"]
    chosen = chosen or ["healthy"]
    return tuple(ADVICE[name] for name in dict.fromkeys(chosen))



def _optional(value):
    return None if value is None or math.isnan(value) else value


def _simple_rnn(model):
    for layer in getattr(model, "layers", ()):
        if isinstance(layer, keras.layers.SimpleRNN) or (
            isinstance(layer, keras.Model) and _simple_rnn(layer)
        ):
            return True
    return False


def _forward_loss(model, x, y, loss):
    """Loss of one training-mode forward pass (state restored), and whether it is finite."""
    from vgrad._batch import default_loss
    from vgrad.probes import restoring_state

    save, restore = restoring_state(model)
    saved = save()
    try:
        outputs = model(x, training=True)
        value = float(keras.ops.convert_to_numpy(default_loss(loss)(y, outputs)))
    finally:
        restore(saved)
    arrays = [keras.ops.convert_to_numpy(output) for output in keras.tree.flatten(outputs)]
    return value, math.isfinite(value) and all(np.isfinite(a).all() for a in arrays)


def _gradient_verdict(values, first, last, kind):
    """Verdict from finite per-layer gradients: (verdict, reason, ratio)."""
    ratio = _ratio(values[first], values[last])
    what = {"backprop": "back-propagated gradient RMS", "kernel": "kernel-gradient norm"}[kind]
    if max(values.values()) == 0:
        return "vanishing", f"every {what} is exactly 0 (no gradient reaches any layer)", ratio
    text = f"{what} at {first} is {format_number(ratio, '.1e')} times that at {last}"
    if ratio > EXPLODING_RATIO:
        return "exploding", f"{text} (above {EXPLODING_RATIO:g})", ratio
    if ratio < VANISHING_RATIO:
        return "vanishing", f"{text} (below {VANISHING_RATIO:g})", ratio
    return "healthy", f"{text} (within [{VANISHING_RATIO:g}, {EXPLODING_RATIO:g}])", ratio


def _diagnose_model(model, x, y, loss):
    from vgrad._batch import check_batch
    from vgrad.probes import backprop_norms, gradient_norms
    from vgrad.stats import activation_stats

    kernel = gradient_norms(model, x, y, loss=loss)  # validates model, x, y and loss
    x, y = check_batch(model, x, y, loss)
    loss_value, forward_finite = _forward_loss(model, x, y, loss)
    notes, backprop, stats, why = [], None, {}, None
    if not getattr(model, "inputs", None):
        why = f"model {model.name!r} is subclassed, so its layers' activations cannot be tapped"
    else:
        try:
            backprop, stats = backprop_norms(model, x, y, loss=loss), activation_stats(model, x)
        except ValueError as error:  # e.g. recurrent: no hidden activation layer to tap
            why = str(error)
    if backprop is None:
        names = list(kernel)[:-1] or list(kernel)
        notes.append(f"kernel-gradient norms only: {why}")
        notes.append(f"the last kernel layer ({list(kernel)[-1]}) is taken as the output layer")
    else:
        names = list(backprop)
    if _simple_rnn(model):
        notes.append("gradients through time are not measured here: compare ||dL/dh_t|| over "
                     "time steps (vgrad.plots.plot_time_gradients)")
    first, last = names[0], names[-1]
    layers = []
    for name in names:
        record = stats.get(name)
        norm, rms = kernel.get(name), backprop[name] if backprop else None
        layers.append(LayerFinding(
            name, record.activation if record else None,
            norm, _ratio(norm, kernel.get(last)),
            rms, _ratio(rms, backprop[last]) if backprop else None,
            _optional(record.saturated_fraction) if record else None,
            _optional(record.dead_fraction) if record else None,
            finite=all(v is None or math.isfinite(v) for v in (norm, rms)),
        ))
    measured = {**kernel, **(backprop or {})}.items()
    bad = [name for name, value in measured if not math.isfinite(value)]
    values = backprop or {name: kernel[name] for name in names}
    largest = max(kernel, key=lambda name: kernel[name]) if not bad else None
    ratio = _ratio(values[first], values[last])
    if not forward_finite:
        verdict = "exploding"
        reason = (f"the forward pass overflows: the loss is {format_number(loss_value)} "
                  "before any gradient is taken")
    elif bad:
        verdict = "exploding"
        reason = (f"the backward pass overflows: gradient norms at "
                  f"{', '.join(dict.fromkeys(bad))} are inf/nan while the loss is finite "
                  f"({loss_value:.3g})")
    else:
        verdict, reason, ratio = _gradient_verdict(values, first, last, "backprop" if backprop else "kernel")
        if verdict != "exploding" and kernel[largest] > EXPLODING_NORM:
            verdict = "exploding"
            reason = (f"kernel-gradient norm at {largest} is {kernel[largest]:.2e} "
                      f"(above {EXPLODING_NORM:g})")
    saturated = any((r.saturated_fraction or 0) > SATURATION_THRESHOLD for r in layers)
    dead = any((r.dead_fraction or 0) > DEAD_THRESHOLD for r in layers)
    kinds = {r.activation for r in layers if r.activation}
    advice = _advice(verdict, kinds, saturated, dead, forward_finite=forward_finite,
                     recurrent=_simple_rnn(model))
    return Diagnosis(verdict, reason, tuple(layers), advice, tuple(notes), ratio,
                     "backprop" if backprop else "kernel", loss_value, forward_finite,
                     not bad, "model")


_MONITOR_ATTRIBUTES = (
    "history", "steps", "global_norm", "update_ratio", "clipped", "num_clipped", "nonfinite",
)


def _diagnose_monitor(monitor):
    history = {path: list(values) for path, values in dict(monitor.history).items() if len(values)}
    paths = [path for path in history if path.rsplit("/", 1)[-1] == "kernel"] or list(history)
    if not paths:
        raise ValueError(
            "monitor has recorded no gradient norms; pass it to model.fit(..., callbacks=[monitor]) first"
        )
    updates = dict(monitor.update_ratio or {})
    medians = {path: finite_median(history[path]) for path in paths}
    update_medians = {path: finite_median(updates[path]) if updates.get(path) else None for path in paths}
    first, last = paths[0], paths[-1]
    layers = tuple(
        LayerFinding(path, kernel_norm=medians[path], kernel_ratio=_ratio(medians[path], medians[last]),
                     update_ratio=update_medians[path],
                     finite=all(math.isfinite(float(v)) for v in history[path]))
        for path in paths
    )
    global_norm = [float(v) for v in monitor.global_norm]
    third = max(1, len(global_norm) // 3)
    growth = _ratio(finite_median(global_norm[-third:]), finite_median(global_norm[:third]))
    nonfinite_steps = [s for s, bad in zip(monitor.steps, monitor.nonfinite) if bad]
    notes = []
    if monitor.num_clipped:
        notes.append(f"gradients were clipped at {monitor.num_clipped} of {len(monitor.clipped)} "
                     "recorded steps")
    low_first = (update_medians[first] or math.inf) < UPDATE_RATIO_FLOOR
    low_last = (update_medians[last] or math.inf) < UPDATE_RATIO_FLOOR
    if low_first and low_last:
        notes.append(f"every update ratio is below {UPDATE_RATIO_FLOOR:g}: the learning rate may "
                     "be too small")
    ratio = _ratio(medians[first], medians[last])
    if nonfinite_steps or not all(layer.finite for layer in layers):
        where = f"steps {nonfinite_steps[:5]}" if nonfinite_steps else "some recorded steps"
        verdict, reason = "exploding", f"gradients were inf/nan at {where}"
    elif global_norm and max(global_norm) > EXPLODING_NORM:
        verdict, reason = "exploding", (f"the global gradient norm reached {max(global_norm):.2e} "
                                        f"(above {EXPLODING_NORM:g})")
    elif growth > GROWTH_THRESHOLD:
        verdict, reason = "exploding", (f"the global gradient norm grew {growth:.1e} times during "
                                        f"the run (above {GROWTH_THRESHOLD:g})")
    elif low_first and not low_last:
        verdict, reason = "vanishing", (
            f"the median update ratio of {first} is {update_medians[first]:.1e} (below "
            f"{UPDATE_RATIO_FLOOR:g}) while {last}'s is {update_medians[last]:.1e}")
        if ratio < VANISHING_RATIO:
            reason += f"; median gradient ratio {ratio:.1e}"
    else:
        verdict, reason, ratio = _gradient_verdict(medians, first, last, "kernel")
        reason = "median " + reason
    finite = not nonfinite_steps and all(layer.finite for layer in layers)
    return Diagnosis(verdict, reason, layers, _advice(verdict, set(), False, False), tuple(notes),
                     ratio, "kernel", None, True, finite, "monitor")


def diagnose(model, x=None, y=None, *, loss=None):
    """Say whether gradients vanish, explode or flow, show where, and name the fix.

    Parameters
    ----------
    model : keras.Model or GradientMonitor
        A model, probed on the batch ``(x, y)`` with :func:`vgrad.gradient_norms`,
        :func:`vgrad.backprop_norms` and :func:`vgrad.activation_stats` (a subclassed
        or recurrent model gets kernel-gradient norms only, as a note says). Or a
        recorded run: any object with the attributes of :class:`vgrad.GradientMonitor`
        (``history``, ``steps``, ``global_norm``, ``update_ratio``, ``clipped``,
        ``num_clipped``, ``nonfinite``), judged from the median over recorded steps.
    x : (num_samples, ...) array_like
        Input batch (models only).
    y : (num_samples, ...) array_like
        Targets; class indices for the default loss (models only).
    loss : callable, optional
        ``loss(y_true, y_pred)``; default sparse categorical cross-entropy from logits.

    Returns
    -------
    Diagnosis
        ``verdict`` in {"healthy", "vanishing", "exploding"}, per-layer ``layers``,
        ``advice``; it prints as a fixed-width table, and ``to_dict()`` is JSON-ready.

    Raises
    ------
    TypeError
        If ``model`` is neither a keras.Model nor monitor-like, if ``x``/``y`` are
        missing for a model or given with a monitor.
    ValueError
        For a bad batch (as :func:`vgrad.gradient_norms`) or an empty monitor.

    Notes
    -----
    Rules, in order (thresholds are the module constants): a non-finite loss means the
    *forward* pass overflowed; inf/nan gradients with a finite loss mean the backward
    pass overflowed; a kernel-gradient norm above ``EXPLODING_NORM`` or a first-to-last
    ratio above ``EXPLODING_RATIO`` is exploding; a ratio below ``VANISHING_RATIO`` is
    vanishing. For a monitor, also a global norm growing by ``GROWTH_THRESHOLD``
    (exploding) and a first-layer update ratio below ``UPDATE_RATIO_FLOOR`` (vanishing).

    Examples
    --------
    >>> diagnosis = diagnose(build_mlp(20, 32, activation="sigmoid", seed=0), x, y)
    >>> diagnosis.verdict
    'vanishing'
    """
    if isinstance(model, keras.Model):
        if x is None or y is None:
            raise TypeError("diagnose(model, x, y) needs the input batch x and the targets y")
        return _diagnose_model(model, x, y, loss)
    if all(hasattr(model, name) for name in _MONITOR_ATTRIBUTES):
        if x is not None or y is not None or loss is not None:
            raise TypeError("diagnose(monitor) takes no x, y or loss: the run is already recorded")
        return _diagnose_monitor(model)
    raise TypeError(
        "model must be a keras.Model (with x and y) or a GradientMonitor-like object with "
        f"attributes {', '.join(_MONITOR_ATTRIBUTES)}; got {type(model).__name__}"
    )
