"""The verdict policy: thresholds, verdicts, advice and the pure rules that pick them.

Nothing here imports TensorFlow: the diagnosis, the plots and the docs read the same
numbers from this module, so each threshold is written once.

Thresholds
----------
``VANISHING_RATIO = 1e-2``, ``EXPLODING_RATIO = 1e2``
    First-to-last ratio of the gradient reaching comparable points (activation inputs,
    residual block inputs) below which gradients vanish, above which they explode.
``EXPLODING_NORM = 1e3``
    Kernel-gradient L2 norm above which gradients explode whatever the ratio.
``SATURATION_THRESHOLD = 0.3``
    Share of saturated sigmoid/tanh outputs in a hidden layer that calls for advice.
``DEAD_THRESHOLD = 0.5``
    Share of dead ReLU units (0 on every example of the batch) in a hidden layer that
    is a finding of its own: such units pass no gradient.
``UPDATE_RATIO_BAND = (1e-4, 1e-2)``
    Median ``||update|| / ||weight||`` per step of a layer that learns (about 1e-3).
``UPDATE_RATIO_FLOOR = 1e-5``, ``UPDATE_RATIO_CEILING = 3e-2``
    Far below (the layer does not learn) and far above (the learning rate is too large).
``GROWTH_THRESHOLD = 1e2``
    Growth of the global gradient norm over a run (last third over first third).
``LOSS_PROGRESS = 0.05``, ``CHANCE_MARGIN = 0.05``, ``RECENT_PROGRESS = 0.025``
    A run whose loss fell by less than 5% of its start, or ends within 5% of chance
    level (``ln(num_classes)``), has not learned -- unless its updates are at a healthy
    pace and its loss still fell by 2.5% or more over the last third of the run.
"""

from __future__ import annotations

import math

VANISHING_RATIO = 1e-2
EXPLODING_RATIO = 1e2
HEALTHY_BAND = (VANISHING_RATIO, EXPLODING_RATIO)
EXPLODING_NORM = 1e3
SATURATION_THRESHOLD = 0.3
DEAD_THRESHOLD = 0.5
UPDATE_RATIO_BAND = (1e-4, 1e-2)
HEALTHY_UPDATE_RATIO = 1e-3
UPDATE_RATIO_FLOOR = 1e-5
UPDATE_RATIO_CEILING = 3e-2
GROWTH_THRESHOLD = 1e2
LOSS_PROGRESS = 0.05
RECENT_PROGRESS = 0.025
CHANCE_MARGIN = 0.05
MIN_LOSS_RECORDS = 6
#: Fewer recorded steps than this make a monitor's verdict tentative (said in a note).
MIN_RECORDS = 3

#: Every verdict, with what it means.
VERDICTS = {
    "healthy": "gradients reach every comparable point on a similar scale",
    "vanishing": "the gradient at the input side is far smaller than at the output side",
    "exploding": "the forward or backward pass overflows, or the gradient grows towards the input",
    "inconclusive": "fewer than two comparable points, or a ratio that cannot be formed",
    "dead units": "a large share of ReLU units output 0 on every example and pass no gradient",
    "zero layer": "a layer's kernel is all zeros, so no gradient passes back through it",
    "not learning": "the loss has not moved from its start, or sits at chance level",
    "large updates": "steps change the weights far faster than the healthy ~1e-3 per step",
}

SATURATING = ("sigmoid", "tanh", "hard_sigmoid", "hard_tanh", "softsign")
DYING = ("relu", "relu6")

#: The fixes the advice chooses from. ``{activations}`` and ``{layers}`` are filled in.
ADVICE = {
    "lstm": "Use LSTM or GRU instead of SimpleRNN: the gated cell state carries gradients "
            "across many time steps (Hochreiter & Schmidhuber 1997).",
    "relu": "Replace the {activations} hidden activations with ReLU (activation='relu'): its "
            "derivative is 1 for active units, while theirs falls towards 0 in the flat tails.",
    "he": "Initialise kernels with He initialisation (kernel_initializer='he_normal'), which "
          "keeps activation and gradient variance constant across ReLU layers (He et al. 2015).",
    "batch_norm": "Add BatchNormalization before each activation (keras.layers."
                  "BatchNormalization; vgrad.build_mlp(..., batch_norm=True)): it rescales "
                  "every layer's pre-activations to unit variance, away from flat tails and "
                  "runaway scales (Ioffe & Szegedy 2015).",
    "residual": "Add residual connections (keras.layers.Add of a block's input and output; "
                "vgrad.build_mlp(..., residual=True)): the identity path carries the "
                "gradient around every layer (He et al. 2016).",
    "leaky": "Dead ReLU units pass no gradient: lower the learning rate (one huge step kills "
             "units), use leaky ReLU or ELU (activation='leaky_relu') and He initialisation.",
    "zero_layer": "Re-initialise {layers} (e.g. kernel_initializer='glorot_uniform'): an "
                  "all-zero kernel passes no gradient back to the layers before it.",
    "clip": "Clip gradients (optimizer clipnorm=1.0 or global_clipnorm=1.0) so that one "
            "large step cannot throw the weights away (Pascanu et al. 2013).",
    "smaller_init": "Use a smaller initial weight scale: Glorot or He initialisation, whose "
                    "variance is set by the layer's fan-in, not a large fixed stddev.",
    "inputs": "The forward pass overflows before any gradient is taken, so clipping cannot "
              "help: shrink the initial weights and standardise the inputs.",
    "lower_lr": "Lower the learning rate (try 10x smaller).",
    "check_training": "Check the learning rate (try 10x smaller and 10x larger), that the "
                      "inputs are scaled, and that the labels match the inputs and the loss.",
    "healthy": "No change needed: the input-side layers get gradients (with an adaptive "
               "optimizer: updates) on the same scale as the output side.",
}


def ratio(numerator, denominator):
    """``numerator / denominator``; ``None`` if either is missing, ``nan`` for 0 or inf below."""
    if numerator is None or denominator is None:
        return None
    if denominator == 0 or not math.isfinite(denominator):
        return math.nan
    return numerator / denominator


def ratio_verdict(first, last, values, what):
    """Verdict from the finite gradients ``values`` at comparable points ``first``, ``last``.

    Returns ``(verdict, reason, ratio)``. A ratio that cannot be formed (the output-side
    gradient is 0, or a value is not finite) is ``"inconclusive"``, never ``"healthy"``.
    """
    if first == last:
        return "inconclusive", f"only one comparable point ({first}): no ratio to judge", math.nan
    if max(values.values()) == 0:
        return "vanishing", f"every {what} is exactly 0 (no gradient reaches any layer)", 0.0
    value = ratio(values[first], values[last])
    if value is None or not math.isfinite(value):
        return ("inconclusive", f"the {what} at {last} is {values[last]:.3g}, so the ratio "
                f"{first}/{last} cannot be formed", math.nan)
    text = f"{what} at {first} is {value:.1e} times that at {last}"
    if value > EXPLODING_RATIO:
        return "exploding", f"{text} (above {EXPLODING_RATIO:g})", value
    if value < VANISHING_RATIO:
        return "vanishing", f"{text} (below {VANISHING_RATIO:g})", value
    return "healthy", f"{text} (within [{VANISHING_RATIO:g}, {EXPLODING_RATIO:g}])", value


def update_level(median):
    """``"low"``, ``"small"``, ``"healthy"``, ``"raised"`` or ``"high"`` for a median update
    ratio (0 counts as low); ``None`` when unknown (missing, nan or inf)."""
    if median is None or not math.isfinite(median):
        return None
    if median < UPDATE_RATIO_FLOOR:
        return "low"
    if median < UPDATE_RATIO_BAND[0]:
        return "small"
    if median <= UPDATE_RATIO_BAND[1]:
        return "healthy"
    return "high" if median > UPDATE_RATIO_CEILING else "raised"


def dead_units(fractions):
    """Names of the hidden layers with more than ``DEAD_THRESHOLD`` dead ReLU units,
    from ``{layer: dead fraction}`` (``None``/``nan``: not a ReLU layer)."""
    return [name for name, fraction in fractions.items()
            if fraction is not None and math.isfinite(fraction) and fraction > DEAD_THRESHOLD]


def chance_loss(num_classes):
    """Cross-entropy of a uniform guess, ``ln(num_classes)`` (``ln 2`` for one sigmoid unit)."""
    if num_classes is None or num_classes < 1:
        return None
    return math.log(max(int(num_classes), 2))


def loss_progress(losses, chance=None, paced=False):
    """Judge a recorded loss curve: ``(stuck, text)``.

    ``stuck`` is True when the median of the last third is not ``LOSS_PROGRESS`` below
    the median of the first third, or lies within ``CHANCE_MARGIN`` of ``chance`` --
    unless ``paced`` (every layer's update ratio at a healthy pace) and the loss is still
    falling (``RECENT_PROGRESS`` below the middle third's median): early in training a
    loss still falling towards chance level is learning, while one that wanders around
    it under steps far too large is not. ``(False, None)`` when there are fewer than
    ``MIN_LOSS_RECORDS`` finite values.
    """
    values = [float(v) for v in losses if v is not None and math.isfinite(float(v))]
    if len(values) < MIN_LOSS_RECORDS:
        return False, None
    third = len(values) // 3
    start, middle = _median(values[:third]), _median(values[third:-third])
    end = _median(values[-third:])
    fell = (start - end) / abs(start) if start else 0.0
    recent = (middle - end) / abs(middle) if middle else 0.0
    near = chance is not None and abs(end - chance) <= CHANCE_MARGIN * chance
    if near and not (paced and recent >= RECENT_PROGRESS):
        return True, (f"the training loss ends at {end:.3g} (median of the last third of the "
                      f"records), chance level (ln of the class count = {chance:.3g})")
    if fell < LOSS_PROGRESS:
        return True, (f"the training loss has not moved: {start:.3g} at the start, "
                      f"{end:.3g} at the end (medians of the first and last thirds of the "
                      f"records; less than {LOSS_PROGRESS:.0%} lower)")
    return False, (f"the training loss fell from {start:.3g} to {end:.3g}"
                   + (", still near chance level, and is falling" if near else ""))


def _median(values):
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def choose_advice(verdict, features, *, saturated=(), forward_finite=True, zero_layers=(),
                  high_updates=False):
    """Advice texts for ``verdict``, naming only what ``features`` says the model has.

    ``features`` holds ``activations`` (hidden activation names), ``normalized``,
    ``residual``, ``simple_rnn``, ``he_init`` (bools) and ``large_init`` (layer names) as
    attributes; ``saturated`` names the
    saturating activations found in their flat tails.
    """
    present = sorted(set(features.activations) & set(SATURATING))
    saturating = bool(present)
    chosen = []
    normalize = [] if features.normalized else ["batch_norm"]
    fixes_depth = normalize + ([] if features.residual else ["residual"])
    # Only a layer drawn at a large fixed scale makes a smaller initial scale the fix.
    smaller_init = ["smaller_init"] if getattr(features, "large_init", ()) else []
    if verdict == "zero layer":
        chosen = ["zero_layer"]
    elif verdict == "dead units":
        chosen = ["leaky"] + normalize
    elif verdict in ("not learning", "large updates"):
        chosen = ["lower_lr"] if high_updates or verdict == "large updates" else []
        chosen += ["check_training"] + (["clip"] if verdict == "large updates" else [])
    elif not forward_finite:
        chosen = ["inputs", *smaller_init] + normalize
    elif verdict == "vanishing":
        chosen = (["lstm"] if features.simple_rnn else []) + (["relu"] if saturating else [])
        he_already = getattr(features, "he_init", False)
        relu_without_he = bool(set(features.activations) & set(DYING)) and not he_already
        chosen += ["he"] if (saturating or relu_without_he) else []
        chosen += fixes_depth
    elif verdict == "exploding":
        chosen = ["clip", *smaller_init, "lower_lr"]
        chosen += ["lstm"] if features.simple_rnn else normalize
    if saturated and verdict in ("vanishing", "healthy"):
        chosen += ["relu"] + normalize
    if verdict == "healthy" and not chosen:
        chosen = ["healthy"]
    names = dict.fromkeys(chosen)
    activations = "/".join(sorted(set(saturated) | set(present))) or "saturating"
    layers = ", ".join(zero_layers) or "the all-zero layer"
    return tuple(ADVICE[name].format(activations=activations, layers=layers) for name in names)
