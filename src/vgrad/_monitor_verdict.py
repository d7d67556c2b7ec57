"""Verdict on a recorded run (a :class:`vgrad.GradientMonitor`), from medians over steps."""

from __future__ import annotations

import math

import keras

from vgrad import policy
from vgrad._architecture import Architecture, architecture, main_weights
from vgrad.findings import Diagnosis, LayerFinding
from vgrad.tables import finite_median

MONITOR_ATTRIBUTES = (
    "history", "steps", "global_norm", "update_ratio", "clipped", "num_clipped", "nonfinite",
)
#: Kinds whose kernel-gradient norms are compared with each other (like with like).
COMPARABLE_KINDS = ("dense", "conv")
#: Kinds whose update ratios are judged (embeddings and norm scales move differently).
JUDGED_KINDS = ("dense", "conv", "attention", "recurrent")


def _model(monitor):
    try:
        model = getattr(monitor, "model", None)
    except (AttributeError, RuntimeError):
        return None
    return model if isinstance(model, keras.Model) else None


def compiled_chance(model):
    """Chance-level loss for ``model``'s compiled cross-entropy, or ``None``."""
    loss = getattr(model, "loss", None)
    name = loss if isinstance(loss, str) else getattr(loss, "name", None) or \
        getattr(loss, "__name__", type(loss).__name__)
    name = str(name).lower().replace("_", "")
    if "crossentropy" not in name:
        return None
    outputs = getattr(model, "outputs", None)
    width = outputs[0].shape[-1] if outputs else None
    return policy.chance_loss(2 if "binary" in name or width == 1 else width)


def _median_or_none(values):
    return finite_median(values) if values else None


def _last_third(values):
    values = list(values or ())
    return values[-max(1, len(values) // 3):]


def _zero_kernels(monitor, kinds):
    """Main weights (not norm scales) whose recorded norm was 0 at every step."""
    weight_norms = getattr(monitor, "weight_norm", None) or {}
    return [p for p in kinds if kinds[p] != "normalization" and weight_norms.get(p)
            and max(float(v) for v in weight_norms[p]) == 0]


def _gradient_verdict(monitor, medians, updates, kinds, features):
    """``(verdict, reason, ratio, ratio_kind)`` from recorded gradients and update ratios."""
    global_norm = [float(v) for v in monitor.global_norm]
    nonfinite = [s for s, bad in zip(monitor.steps, monitor.nonfinite) if bad]
    if nonfinite or not all(math.isfinite(m) or math.isnan(m) for m in medians.values()):
        return "exploding", f"gradients were inf/nan at steps {nonfinite[:5]}", math.nan, "none"
    losses = [float(v) for v in getattr(monitor, "loss", None) or ()]
    bad_loss = [s for s, v in zip(monitor.steps, losses) if math.isinf(v)
                or (math.isnan(v) and any(math.isfinite(u) for u in losses))]
    if bad_loss:
        return ("exploding", f"the training loss became inf/nan at step {bad_loss[0]}",
                math.nan, "none")
    finite_losses = [v for v in losses if math.isfinite(v)]
    if finite_losses and max(abs(v) for v in finite_losses) == 0 and global_norm \
            and max(global_norm) == 0:
        return ("not learning", "the training loss is 0 at every recorded step, and so is "
                "every gradient (all sample weights zero, or targets already fitted "
                "exactly?): there is nothing to learn from", math.nan, "none")
    zero = _zero_kernels(monitor, kinds)
    if zero:
        return ("zero layer", f"the kernel of {', '.join(zero)} stayed all zeros at every "
                "recorded step: no gradient passes back through it", math.nan, "none")
    if global_norm and max(global_norm) > policy.EXPLODING_NORM:
        return "exploding", (f"the global gradient norm reached {max(global_norm):.2e} "
                             f"(above {policy.EXPLODING_NORM:g})"), math.nan, "none"
    third = max(1, len(global_norm) // 3)
    growth = policy.ratio(finite_median(global_norm[-third:]), finite_median(global_norm[:third]))
    if growth is not None and growth > policy.GROWTH_THRESHOLD:
        return "exploding", (f"the global gradient norm grew {growth:.1e} times during the run "
                             f"(above {policy.GROWTH_THRESHOLD:g})"), growth, "none"
    comparable = [p for p in kinds if kinds[p] in COMPARABLE_KINDS]
    judged = [p for p in kinds if kinds[p] in JUDGED_KINDS]
    levels = {p: policy.update_level(updates.get(p)) for p in judged}
    if comparable:
        first, last = comparable[0], comparable[-1]
        if levels.get(first) == "low" and levels.get(last) not in ("low", None):
            ratio = policy.ratio(medians[first], medians[last])
            return "vanishing", (f"the median update ratio of {first} is {updates[first]:.1e} "
                                 f"(below {policy.UPDATE_RATIO_FLOOR:g}) while {last}'s is "
                                 f"{updates[last]:.1e}"), ratio, "update"
    if comparable and max(medians[p] for p in comparable) == 0 and features.activations & {
            "relu", "relu6"}:
        return ("dead units", "every median kernel-gradient norm is exactly 0 in a ReLU network: "
                "the units have died (often after too large a step)", math.nan, "none")
    learning = judged and all(level in ("healthy", "raised", "high") for level in levels.values())
    if features.adaptive and learning:
        return ("healthy", f"every median update ratio is at least {policy.UPDATE_RATIO_BAND[0]:g} "
                f"with {features.optimizer}, which normalises the step: every layer is updated "
                "at a learning pace, whatever its gradient norm", math.nan, "update")
    if len(comparable) < 2:
        return ("inconclusive", "fewer than two Dense/Conv kernels to compare, and the update "
                "ratios do not show every layer learning", math.nan, "none")
    verdict, reason, ratio = policy.ratio_verdict(
        comparable[0], comparable[-1], {p: medians[p] for p in comparable}, "kernel-gradient norm")
    return verdict, "median " + reason, ratio, "kernel"


def _all_skipped(skipped, features):
    """The diagnosis of a run in which a ``LossScaleOptimizer`` skipped every step."""
    reason = (f"the LossScaleOptimizer skipped all {skipped} steps: the scaled gradients held "
              "inf/nan at every step, so no update was applied and no step was recorded "
              "(with float16 this is usually a forward pass that overflows)")
    advice = policy.choose_advice("exploding", features, forward_finite=False)
    return Diagnosis("exploding", reason, (), advice, (), math.nan, "none", None, None, None,
                     False, False, "monitor")


def diagnose_monitor(monitor):
    """Diagnose a recorded run.

    Rules, in order: inf/nan gradients or a global norm above ``EXPLODING_NORM`` or
    growing by ``GROWTH_THRESHOLD`` are ``"exploding"``; a kernel all zeros at every
    record is a ``"zero layer"``; a first-layer update ratio below
    ``UPDATE_RATIO_FLOOR`` while the last layer's is not is ``"vanishing"``; with an
    Adam-family optimizer, update ratios of at least ``UPDATE_RATIO_BAND[0]`` everywhere
    mean every layer learns; otherwise the median kernel-gradient ratio of the first to
    the last Dense/Conv kernel is judged. A verdict of ``"healthy"`` becomes ``"not
    learning"`` when the recorded loss did not fall (or sits at chance level), and
    ``"large updates"`` when an update ratio is above ``UPDATE_RATIO_CEILING``.
    """
    history = {path: list(values) for path, values in dict(monitor.history).items() if len(values)}
    model = _model(monitor)
    kinds = main_weights(model, list(history))
    features = architecture(model) if model is not None else Architecture()
    skipped = int(getattr(monitor, "num_skipped", 0) or 0)
    if not kinds and skipped:
        return _all_skipped(skipped, features)
    if not kinds:
        raise ValueError(
            "monitor has recorded no gradient norms; pass it to "
            "model.fit(..., callbacks=[monitor]) first"
        )
    recorded = dict(monitor.update_ratio or {})
    medians = {p: finite_median(history[p]) for p in kinds}
    updates = {p: _median_or_none(recorded.get(p)) for p in kinds}
    verdict, reason, ratio, ratio_kind = _gradient_verdict(monitor, medians, updates, kinds,
                                                           features)
    last = [p for p in kinds if kinds[p] in COMPARABLE_KINDS][-1:] or [None]
    layers = tuple(
        LayerFinding(p, kinds[p], kernel_norm=medians[p], update_ratio=updates[p],
                     kernel_ratio=policy.ratio(medians[p], medians[last[0]])
                     if ratio_kind == "kernel" and kinds[p] in COMPARABLE_KINDS else None,
                     finite=all(math.isfinite(float(v)) for v in history[p]))
        for p in kinds
    )
    notes = []
    if monitor.num_clipped:
        notes.append(f"gradients were clipped at {monitor.num_clipped} of "
                     f"{len(monitor.clipped)} recorded steps")
    if len(monitor.steps) < policy.MIN_RECORDS:
        count = len(monitor.steps)
        notes.append(f"judged from only {count} recorded step{'s' * (count != 1)}: record more "
                     "(a smaller every=, or a longer fit) for a firmer verdict")
    if skipped:
        notes.append(f"the LossScaleOptimizer skipped {skipped} steps (inf/nan in the scaled "
                     "float16 gradients; it halves the loss scale and goes on: a few at the "
                     f"start are normal), besides the {len(monitor.steps)} recorded")
    # The learning rate now: medians over the last third of the records (a schedule or
    # ReduceLROnPlateau may have lowered it since the start).
    latest = {p: _median_or_none(_last_third(recorded.get(p))) for p in kinds}
    high = [p for p in kinds if kinds[p] in JUDGED_KINDS
            and policy.update_level(latest[p]) == "high"]
    losses = getattr(monitor, "loss", None)
    paced = [policy.update_level(latest[p]) for p in kinds if kinds[p] in JUDGED_KINDS]
    stuck, loss_text = policy.loss_progress(
        losses or (), compiled_chance(model), paced=bool(paced) and set(paced) == {"healthy"})
    final_loss = next((float(v) for v in reversed(losses or ()) if v is not None), None)
    if verdict in ("healthy", "inconclusive") and stuck:
        notes.append(f"gradient flow ({verdict}): {reason}")
        verdict, reason = "not learning", f"{loss_text}, although the gradient flow looks {verdict}"
        if features.noisy:
            notes.append(f"the training loss is taken with {'/'.join(sorted(features.noisy))} "
                         "active, which keeps it high: model.evaluate gives the loss without")
    elif verdict in ("healthy", "inconclusive") and high:
        value = latest[high[0]]
        verdict, reason = "large updates", (
            f"the median update ratio of {high[0]} over the last third of the records is "
            f"{value:.1e}, {value / policy.HEALTHY_UPDATE_RATIO:.0f}x the healthy "
            f"{policy.HEALTHY_UPDATE_RATIO:g} per step: the learning rate is too large")
    elif loss_text:
        notes.append(loss_text)
    if high and verdict != "large updates":
        notes.append(f"update ratios above {policy.UPDATE_RATIO_CEILING:g} at "
                     f"{', '.join(high[:3])}")
    known = [updates[p] for p in kinds if updates[p] is not None]
    if known and all(policy.update_level(value) == "low" for value in known):
        notes.append(f"every update ratio is below {policy.UPDATE_RATIO_FLOOR:g}: the learning "
                     "rate may be too small")
    finite = not any(monitor.nonfinite) and all(layer.finite for layer in layers)
    zero = [p.rsplit("/", 1)[0] for p in _zero_kernels(monitor, kinds)
            if verdict == "zero layer"]
    advice = policy.choose_advice(verdict, features, high_updates=bool(high), zero_layers=zero)
    return Diagnosis(verdict, reason, layers, advice, tuple(notes), ratio, ratio_kind,
                     final_loss, "training loss" if final_loss is not None else None,
                     "the last recorded step" if final_loss is not None else None,
                     True, finite, "monitor")
