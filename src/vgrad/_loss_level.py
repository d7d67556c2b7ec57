"""Where a model's loss sits against chance level: the check that turns "healthy"
gradients into "not learning" when a trained model has learned nothing."""

from __future__ import annotations

import math

import keras

from vgrad import policy
from vgrad._architecture import leaf_layers


def _output_width(model):
    outputs = getattr(model, "outputs", None)
    if outputs:
        return outputs[0].shape[-1]
    units = [getattr(layer, "units", None) for layer in leaf_layers(model)]
    return next((u for u in reversed(units) if isinstance(u, int)), None)


def chance_level(model, loss_name):
    """Chance-level loss of ``model`` under ``loss_name``, or ``None`` if it has none."""
    if not loss_name or "cross-entropy" not in loss_name:
        return None
    width = _output_width(model)
    return policy.chance_loss(2 if "binary" in loss_name or width == 1 else width)


def trained_steps(model):
    """The optimizer steps ``model`` has taken (0 when it has no optimizer)."""
    iterations = getattr(getattr(model, "optimizer", None), "iterations", None)
    try:
        return int(keras.ops.convert_to_numpy(iterations)) if iterations is not None else 0
    except (TypeError, ValueError):
        return 0


def judge_loss(model, x, y, loss, measurement, features, verdict, reason, notes):
    """Return ``(verdict, reason)``, "not learning" for a trained model at chance level
    whose gradients look healthy; append what the loss level says to ``notes``.

    With Dropout or noise layers (``features.noisy``) the loss is measured again in
    inference mode, since those layers raise the training-mode loss.
    """
    from vgrad.measurement import measure

    chance = chance_level(model, measurement.loss_name)
    loss_value, mode = measurement.loss, ""
    if chance is None or not math.isfinite(loss_value):
        return verdict, reason
    if features.noisy:
        noisy = "/".join(sorted(features.noisy))
        loss_value = measure(model, x, y, loss=loss, training=False).loss
        mode = f" (in inference mode, without {noisy})"
        notes.append(f"the measured loss {measurement.loss:.4g} is in training mode, with "
                     f"{noisy} active; in inference mode it is {loss_value:.4g}")
    steps = trained_steps(model)
    at_chance = abs(loss_value - chance) <= policy.CHANCE_MARGIN * chance
    if at_chance and steps and verdict == "healthy":
        return "not learning", (
            f"after {steps} training steps the loss{mode} {loss_value:.3g} is at chance "
            f"level (ln {round(math.exp(chance))} = {chance:.3g}) although the gradients flow")
    if at_chance:
        notes.append(f"the loss{mode} {loss_value:.3g} is at chance level ({chance:.3g}): "
                     "as expected before training, a sign of no learning after it")
    elif loss_value > 3 * chance:
        notes.append(f"the loss{mode} {loss_value:.3g} is over 3x chance level "
                     f"({chance:.3g}): confident wrong predictions, often from large "
                     "weights or logits")
    return verdict, reason
