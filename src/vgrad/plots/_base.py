"""Shared pieces of the figures: axes, log-scale lines that mark inf/nan, legends."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# The healthy ratio band (to the output-side layer) and the usual per-step
# ``||update|| / ||weight||`` of a layer that learns: the thresholds of the diagnosis.
from vgrad.policy import HEALTHY_BAND, HEALTHY_UPDATE_RATIO  # noqa: F401

_FIGSIZE = (6.5, 4.0)


def _axes(ax):
    if ax is None:
        import matplotlib.pyplot as plt

        _, ax = plt.subplots(figsize=_FIGSIZE, layout="constrained")
    return ax


def _floats(values, name):
    try:
        array = np.asarray(values, dtype=np.float64).reshape(-1)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name} must hold numbers, got {values!r:.80}") from error
    return array


def _plot_log(ax, x, values, **style):
    """Plot positive finite values; mark inf/nan (top edge) and zeros (bottom edge)."""
    x, values = np.asarray(x), np.asarray(values, dtype=np.float64)
    good = np.isfinite(values) & (values > 0)
    line = ax.plot(x[good], values[good], **style)[0]
    edge = ax.get_xaxis_transform()
    for mask, y, marker, color, label in (
        (~np.isfinite(values), 0.97, "x", "red", "inf or nan"),
        (np.isfinite(values) & (values <= 0), 0.03, "v", "0.4", "zero"),
    ):
        if mask.any():
            seen = label in [h.get_label() for h in ax.get_lines()]
            ax.plot(x[mask], np.full(mask.sum(), y), ls="none", marker=marker, color=color,
                    transform=edge, clip_on=False, label="_" + label if seen else label)
    return line


def _finish(ax, title, xlabel, ylabel, legend=True):
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if legend and any(not h.get_label().startswith("_") for h in ax.get_lines() + ax.patches):
        ax.legend(fontsize="small")
    return ax


def _compact_legend(ax, labels, styles, **placement):
    """One legend entry per configuration (its colour) and one per line style.

    ``labels``: configuration names drawn in colours ``C0, C1, ...``; ``styles``:
    {name: Line2D keyword arguments}, e.g. ``{"measured": {"ls": "-"}}``. Entries named
    ``None`` are skipped. Keeps legends short when every configuration has several lines.
    """
    from matplotlib.lines import Line2D

    handles = [Line2D([], [], color=f"C{index}", label=label)
               for index, label in enumerate(labels) if label is not None]
    handles += [Line2D([], [], color="0.3", label=name, **style) for name, style in styles.items()]
    handles += [line for line in ax.get_lines()
                if line.get_label() in ("inf or nan", "zero") and line.get_label() not in
                [h.get_label() for h in handles]]
    handles += [patch for patch in ax.patches if not patch.get_label().startswith("_")]
    ax.legend(handles=handles, fontsize="small", **placement)
    return ax


def _configurations(norms, name):
    """{label: {layer: float}} from one LayerDict/dict or a dict of them."""
    if not isinstance(norms, Mapping) or not norms:
        raise TypeError(f"{name} must be a non-empty dict {{layer: float}} or "
                        f"{{label: {{layer: float}}}}, got {type(norms).__name__}")
    configurations = ({str(label): dict(value) for label, value in norms.items()}
                      if all(isinstance(value, Mapping) for value in norms.values())
                      else {None: dict(norms)})
    for label, layers in configurations.items():
        for layer, value in layers.items():
            if np.ndim(value) != 0:  # e.g. GradientMonitor.history: a list per variable
                where = f"{name}[{label!r}][{layer!r}]" if label is not None else f"{name}[{layer!r}]"
                raise TypeError(f"{where} must be one number per layer, got "
                                f"{type(value).__name__} of {np.size(value)}; for a "
                                "GradientMonitor's records per step use plot_monitor")
    return configurations
