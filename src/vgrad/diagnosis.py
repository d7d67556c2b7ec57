"""Verdicts: is the gradient flow healthy, vanishing or exploding, and what to change.

:func:`diagnose` reads one :func:`vgrad.measurement.measure` of a batch (or a recorded
run of a :class:`vgrad.GradientMonitor`) and applies the rules of :mod:`vgrad.policy`,
where every threshold, verdict and piece of advice is stated once. The result types
live in :mod:`vgrad.findings`; what a model is made of, in :mod:`vgrad._architecture`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import keras

from vgrad import policy
from vgrad._backend import require_tensorflow
from vgrad._architecture import architecture, leaf_layers
from vgrad._batch import first_batch
from vgrad._deprecated import renamed_keywords
from vgrad._loss_level import judge_loss
from vgrad._monitor_verdict import MONITOR_ATTRIBUTES, diagnose_monitor
from vgrad.findings import Diagnosis, LayerFinding
from vgrad.policy import ADVICE  # noqa: F401 (re-exported)

__all__ = ["diagnose", "Diagnosis", "LayerFinding", "ADVICE"]

_GRADIENT_KINDS = ("dense", "conv")


def _optional(value):
    return None if value is None or math.isnan(value) else value


def _rows(measurement, model):
    """One LayerFinding per weight layer, then activation points and block inputs."""
    stats, backprop = measurement.activations, measurement.backprop
    rows = []
    for layer in measurement.weight_layers:
        record = stats.get(layer.name)
        activation = record.activation if record else layer.activation
        rows.append(LayerFinding(
            layer.name, layer.kind, None if activation == "linear" else activation,
            layer.gradient_norm,
            backprop_rms=backprop.get(layer.name),
            saturated_fraction=_optional(record.saturated_fraction) if record else None,
            dead_fraction=_optional(record.dead_fraction) if record else None,
            finite=math.isfinite(layer.gradient_norm),
        ))
    named = {row.name for row in rows}
    for name, value in backprop.items():
        if name not in named:
            record = stats.get(name)
            rows.append(LayerFinding(name, "activation", record.activation if record else None,
                                     backprop_rms=value, finite=math.isfinite(value)))
    for name, value in measurement.block_backprop.items():
        rows.append(LayerFinding(name, "block", backprop_rms=value, finite=math.isfinite(value)))
    # Block inputs and activation-only points (e.g. of a frozen layer) among the weight
    # layers, in layer order (a stable sort keeps sublayers in their order).
    order = {layer.name: index for index, layer in enumerate(leaf_layers(model))}
    rows.sort(key=lambda row: order.get(row.name.split("/")[0], len(order)))
    return rows


def _comparable_points(measurement, output):
    hidden = {k: v for k, v in measurement.backprop.items() if k != output}
    if len(hidden) >= 2:
        return hidden, "backprop", "back-propagated gradient RMS"
    if len(measurement.block_backprop) >= 2:
        return dict(measurement.block_backprop), "block", "gradient RMS at residual block inputs"
    return hidden or dict(measurement.block_backprop), "none", None


def _gradient_rules(measurement, rows, output):
    """``(verdict, reason, ratio, ratio_kind, non-finite names, zero layers)``."""
    values = {**measurement.variable_norms, **measurement.backprop, **measurement.block_backprop}
    bad = [row.name for row in rows if not row.finite]
    bad += [name for name, value in values.items() if not math.isfinite(value)
            and not any(name.startswith(row + "/") for row in bad)]
    if not measurement.forward_finite:
        overflowing = [name for name, stats in measurement.activations.items()
                       if not (math.isfinite(stats.mean) and math.isfinite(stats.std))]
        if math.isfinite(measurement.loss) and overflowing:
            reason = (f"the forward pass overflows: activations of {overflowing[0]} are inf/nan "
                      f"(the finite loss, {measurement.loss:.4g}, hides it)")
        else:
            reason = (f"the forward pass overflows: the loss is {measurement.loss:.4g} "
                      "before any gradient is taken")
        return ("exploding", reason, math.nan, "none", bad, [])
    if bad:
        where = ", ".join(dict.fromkeys(bad[:4])) + (" ..." if len(bad) > 4 else "")
        return ("exploding", f"the backward pass overflows: gradients at {where} are inf/nan "
                f"while the loss is finite ({measurement.loss:.3g})", math.nan, "none", bad, [])
    # A zero scale (gamma) is a known trick in residual blocks; a zero kernel blocks the path.
    zero = [w.name for w in measurement.weight_layers
            if w.zero_weights and w.kind != "normalization"]
    if zero:
        return ("zero layer", f"the kernel of {', '.join(zero)} is all zeros: no gradient passes "
                "back through it to the layers before", math.nan, "none", bad, zero)
    fractions = {row.name: row.dead_fraction for row in rows if row.name != output}
    dead = policy.dead_units(fractions)
    if dead:
        shares = ", ".join(f"{fractions[name]:.0%} of {name}" for name in dead[:4])
        return ("dead units", f"dead ReLU units (0 on every example): {shares} (above "
                f"{policy.DEAD_THRESHOLD:.0%} of a layer)", math.nan, "none", bad, [])
    points, kind, what = _comparable_points(measurement, output)
    kernels = {row.name: row.kernel_norm for row in rows if row.kind in _GRADIENT_KINDS}
    largest = max(kernels, key=kernels.get) if kernels else None
    # A huge gradient is exploding whether or not a ratio can be formed.
    huge = (f"kernel-gradient norm at {largest} is {kernels[largest]:.2e} (above "
            f"{policy.EXPLODING_NORM:g})" if largest and kernels[largest] > policy.EXPLODING_NORM
            else None)
    if what is None:
        if huge:
            return "exploding", huge, math.nan, "none", bad, []
        listed = ", ".join(points) or "none"
        return ("inconclusive", f"fewer than two comparable points (activation inputs or "
                f"residual block inputs; found: {listed}), so no ratio is formed",
                math.nan, "none", bad, [])
    names = list(points)
    verdict, reason, ratio = policy.ratio_verdict(names[0], names[-1], points, what)
    if verdict != "exploding" and huge:
        verdict, reason = "exploding", huge
    return verdict, reason, ratio, kind, bad, []


def _diagnose_model(model, x, y, loss):
    from vgrad.measurement import measure

    measurement = measure(model, x, y, loss=loss)
    features = architecture(model)
    output = measurement.weight_layers[-1].name if measurement.weight_layers else None
    rows = _rows(measurement, model)
    verdict, reason, ratio, kind, bad, zero = _gradient_rules(measurement, rows, output)
    if kind != "none":
        points = _comparable_points(measurement, output)[0]
        last = points[list(points)[-1]]
        rows = [replace(row, backprop_ratio=policy.ratio(row.backprop_rms, last))
                if row.name in points else row for row in rows]
    notes = list(measurement.notes)
    verdict, reason = judge_loss(model, x, y, loss, measurement, features, verdict, reason,
                                 notes)
    dead = policy.dead_units({r.name: r.dead_fraction for r in rows if r.name != output})
    if dead and verdict != "dead units":
        notes.append(f"more than {policy.DEAD_THRESHOLD:.0%} of the ReLU units are dead in "
                     f"{', '.join(dead)}")
    if features.recurrent:
        notes.append("gradients through time inside recurrent layers are not compared here "
                     "(vgrad.time_gradient_rms measures them)")
    saturated = sorted({r.activation for r in rows if r.name != output and r.activation
                        and (r.saturated_fraction or 0) > policy.SATURATION_THRESHOLD})
    advice = policy.choose_advice(verdict, features, saturated=saturated, zero_layers=zero,
                                  forward_finite=measurement.forward_finite)
    return Diagnosis(verdict, reason, tuple(rows), advice, tuple(notes), ratio, kind,
                     measurement.loss, measurement.loss_name, measurement.loss_source,
                     measurement.forward_finite, not bad, "model")


@renamed_keywords(model="subject")
def diagnose(subject, x=None, y=None, *, loss=None):
    """Say whether gradients vanish, explode or flow, show where, and name the fix.

    Parameters
    ----------
    subject : keras.Model or GradientMonitor
        A model, measured once on the batch ``(x, y)`` by :func:`vgrad.measurement.measure`.
        Or a recorded run: any object with the attributes of
        :class:`vgrad.GradientMonitor` (``history``, ``steps``, ``global_norm``,
        ``update_ratio``, ``clipped``, ``num_clipped``, ``nonfinite``; ``loss`` and
        ``model`` are used when present), judged from medians over recorded steps.
        (Formerly ``model=``, still accepted with a ``DeprecationWarning``.)
    x : (num_samples, ...) array_like, or a dataset
        Input batch (models only); or a ``tf.data.Dataset`` / ``keras.utils.PyDataset``
        of ``(x, y)`` batches, as ``fit`` takes, whose first batch is measured (then
        without ``y``).
    y : (num_samples, ...) array_like
        Targets (models only).
    loss : callable or str, optional
        Overrides the compiled loss, or the one inferred from the output layer and ``y``.

    Returns
    -------
    Diagnosis
        ``verdict`` in :data:`vgrad.policy.VERDICTS`, per-layer ``layers``, ``advice``
        naming only what the model has (or lacks); prints as a fixed-width table, and
        ``to_dict()`` is JSON-ready.

    Raises
    ------
    TypeError
        If ``subject`` is neither a model nor monitor-like, or ``x``/``y`` do not fit it.
    ValueError
        For a bad batch (non-finite ``x`` or ``y``, lengths, shapes, labels) or an empty monitor.

    Notes
    -----
    Rules for a model, in order: a non-finite loss is a *forward* overflow; inf/nan
    gradients with a finite loss a backward overflow; an all-zero kernel is a ``"zero
    layer"``; more than ``DEAD_THRESHOLD`` dead ReLU units in a hidden layer is ``"dead
    units"``; then the first-to-last ratio of the gradient reaching comparable points
    (activation inputs, else residual block inputs) is judged against ``HEALTHY_BAND``;
    fewer than two points is ``"inconclusive"``. A trained model whose loss sits at
    chance level is ``"not learning"``. See :func:`vgrad._monitor_verdict.diagnose_monitor`
    for recorded runs.

    Examples
    --------
    >>> diagnosis = diagnose(build_mlp(20, 32, activation="sigmoid", seed=0), x, y)
    >>> diagnosis.verdict
    'vanishing'
    """
    if isinstance(subject, keras.Model):
        require_tensorflow("diagnose(model, x, y)")
        batch = first_batch(x) if y is None else None
        if batch is not None:
            x, y = batch  # the dataset's first batch
        if x is None or y is None:
            raise TypeError("diagnose(model, x, y) needs the input batch x and the targets y "
                            "(or x, a tf.data.Dataset or keras.utils.PyDataset of (x, y) "
                            "batches, whose first batch is used)")
        return _diagnose_model(subject, x, y, loss)
    if all(hasattr(subject, name) for name in MONITOR_ATTRIBUTES):
        if x is not None or y is not None or loss is not None:
            raise TypeError("diagnose(monitor) takes no x, y or loss: the run is already recorded")
        return diagnose_monitor(subject)
    raise TypeError(
        "subject must be a keras.Model (with x and y) or a GradientMonitor-like object with "
        f"attributes {', '.join(MONITOR_ATTRIBUTES)}; got {type(subject).__name__}"
    )
