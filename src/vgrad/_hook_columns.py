"""The row layout of the optimizer hook's buffer, its decoding, and which optimizers it
can watch (no TensorFlow needed to read a row)."""

from __future__ import annotations

import numpy as np

import keras

#: Buffer columns: step, max |g|, the loss, then half squared norms (``L2Loss``) of the
#: gradients, of the weights before the step and of the updates, one block each, then
#: (with histograms) each gradient's max |g|, the half-width of its histogram.
STEP, MAX_ABS, LOSS, NUM_FIXED = 0, 1, 2, 3

#: Equal-width bins of each recorded gradient histogram (TensorBoard's default count).
HISTOGRAM_BINS = 30

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


def copies_weights_for(optimizer, variables):
    """Whether the update of ``variables`` must be read from a copy of the weights:
    True unless every change ``optimizer`` makes goes through its ``assign``,
    ``assign_add`` or ``assign_sub`` (no weight decay, EMA or constraint)."""
    return not (
        type(optimizer) in _ASSIGNING_OPTIMIZERS
        and not optimizer.weight_decay
        and not optimizer.use_ema
        and all(v.constraint is None for v in variables)
        and not any(getattr(v, "overwrite_with_gradient", False) for v in variables)
    )


def check_optimizer(optimizer, outer=None):
    """Raise unless a hook can watch ``optimizer`` (wrapped in ``outer``, the model's
    optimizer, when that is a ``LossScaleOptimizer``)."""
    if outer is not None and outer is not optimizer and keras.backend.backend() == "jax":
        raise ValueError(f"GradientMonitor on the JAX backend cannot watch a "
                         f"{type(outer).__name__} (mixed precision's loss scaling); use the "
                         "TensorFlow backend for that, or float32 on JAX")
    if not isinstance(optimizer, keras.optimizers.Optimizer):
        raise TypeError("GradientMonitor needs a model compiled with a "
                        f"keras.optimizers.Optimizer, got {type(optimizer).__name__}")
    if optimizer.gradient_accumulation_steps:
        raise ValueError("GradientMonitor does not support gradient_accumulation_steps="
                         f"{optimizer.gradient_accumulation_steps}; use an optimizer without it")


def decode_rows(rows, optimizer, num_variables):
    """Turn buffer ``rows`` into ``{name: array}`` records, or None when there are none.

    Arrays: ``steps``, ``loss``, ``global_norm``, ``clipped``, ``nonfinite`` of shape
    ``(num_records,)`` and ``gradient``, ``weight``, ``ratio`` (and ``max_abs`` when
    the rows hold histograms) of shape ``(num_records, num_variables)``.
    """
    if not len(rows):
        return None
    blocks = (rows.shape[1] - NUM_FIXED) // num_variables
    columns = rows[:, NUM_FIXED:].reshape(len(rows), blocks, num_variables)
    half_squares = columns[:, :3]
    with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
        gradient, weight, update = np.sqrt(2.0 * half_squares).transpose(1, 0, 2)
        global_norm = np.sqrt(np.sum(np.square(gradient), axis=1))
        ratio = update / weight
    # Summed in float32 as in the graph: squares beyond float32 count as non-finite.
    summed = np.sum(half_squares[:, 0].astype(np.float32), axis=1, dtype=np.float32)
    if optimizer.clipnorm and optimizer.clipnorm > 0:
        clipped = np.any(gradient > optimizer.clipnorm, axis=1)
    elif optimizer.global_clipnorm and optimizer.global_clipnorm > 0:
        clipped = global_norm > optimizer.global_clipnorm
    elif optimizer.clipvalue and optimizer.clipvalue > 0:
        clipped = rows[:, MAX_ABS] > optimizer.clipvalue
    else:
        clipped = np.zeros(len(rows), bool)
    records = {
        "steps": rows[:, STEP].astype(np.int64), "loss": rows[:, LOSS],
        "global_norm": global_norm, "clipped": clipped, "nonfinite": ~np.isfinite(summed),
        "gradient": gradient, "weight": weight, "ratio": ratio,
    }
    if blocks == 4:
        records["max_abs"] = columns[:, 3]
    return records
