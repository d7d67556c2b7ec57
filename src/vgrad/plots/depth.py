"""Figures over depth and time: the phase diagram and gradients through time in recurrent nets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from vgrad.plots._base import (
    HEALTHY_BAND,
    _axes,
    _compact_legend,
    _finish,
    _floats,
    _plot_log,
)


def plot_time_gradients(norms, *, ax=None, title=None):
    """Gradient norm ``||dL/dh_t||`` against time step ``t`` for recurrent nets (log y).

    Parameters
    ----------
    norms : dict {label: (T,) array_like} or (T,) array_like
        Norm of the loss gradient with respect to the hidden state at ``t = 1 .. T``;
        the loss is computed at the last step ``T``, so vanishing shows as a line that
        falls from right to left.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    series = dict(norms) if isinstance(norms, Mapping) else {None: norms}
    if not series:
        raise TypeError("norms must be a non-empty dict {label: 1-D array} or a 1-D array")
    ax = _axes(ax)
    ax.set_yscale("log")
    for index, (label, values) in enumerate(series.items()):
        y = _floats(values, f"norms[{label!r}]")
        _plot_log(ax, np.arange(1, y.size + 1), y, color=f"C{index}", marker=".",
                  label=label if label is not None else "_gradient")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(ax, title or "Gradient through time", "time step t (the loss is at the last step)",
                   r"$\|\partial L / \partial h_t\|$")


def plot_phase_diagram(sweep, *, ax=None, title=None):
    """First-to-last back-propagated gradient ratio against depth: measured vs predicted.

    Parameters
    ----------
    sweep : object
        With ``labels`` (list of str), ``depths`` (1-D int array) and ``measured`` and
        ``predicted``, arrays of shape ``(len(labels), len(depths))``.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If ``measured`` or ``predicted`` does not have shape ``(len(labels), len(depths))``.
    """
    labels, depths = list(sweep.labels), np.asarray(sweep.depths)
    arrays = {}
    for name in ("measured", "predicted"):
        arrays[name] = np.asarray(getattr(sweep, name), dtype=np.float64)
        if arrays[name].shape != (len(labels), depths.size):
            raise ValueError(f"sweep.{name} must have shape {(len(labels), depths.size)} "
                             f"(labels x depths), got {arrays[name].shape}")
    ax = _axes(ax)
    ax.set_yscale("log")
    ax.axhspan(*HEALTHY_BAND, color="tab:green", alpha=0.12,
               label=f"trainable: {HEALTHY_BAND[0]:g} to {HEALTHY_BAND[1]:g}")
    ax.axhline(1.0, color="tab:green", ls=":", lw=1, label="_unit ratio")
    for index, label in enumerate(labels):
        _plot_log(ax, depths, arrays["measured"][index], color=f"C{index}", marker="o", ms=4,
                  label="_measured")
        _plot_log(ax, depths, arrays["predicted"][index], color=f"C{index}", ls="--",
                  label="_predicted")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(ax, title or "Gradient ratio (first / last hidden layer) vs depth",
            "depth (hidden layers)", "first / last gradient ratio", legend=False)
    styles = {"measured": {"ls": "-", "marker": "o", "ms": 4}, "predicted": {"ls": "--"}}
    return _compact_legend(ax, labels, styles, loc="upper left", bbox_to_anchor=(1.01, 1.0),
                           borderaxespad=0.0)
