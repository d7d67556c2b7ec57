"""Figures over depth and time: the phase diagram and gradients through time in recurrent nets."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from vgrad.plots._base import HEALTHY_BAND, _axes, _finish, _floats, _plot_log


def plot_time_gradients(norms, *, ax=None, title=None):
    """Root-mean-square of ``dL/dh_t`` against time step ``t`` for recurrent nets (log y).

    Parameters
    ----------
    norms : dict {label: (T,) array_like} or (T,) array_like
        RMS of the loss gradient with respect to the hidden state at ``t = 1 .. T``, as
        :func:`vgrad.time_gradient_rms` returns; the loss is computed at the last step
        ``T``, so vanishing shows as a line that falls from right to left.
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
                   r"RMS of $\partial L / \partial h_t$")


#: Marker per configuration, so that curves stay apart in grey-scale print.
_MARKERS = ("o", "s", "^", "v", "D", "P", "X", "*", "<", ">")


def plot_phase_diagram(sweep, *, ax=None, title=None):
    """First-to-last back-propagated gradient ratio against depth: measured vs predicted.

    Each configuration has its own colour and marker: measured values are the markers
    (joined by a thin line), the prediction is a thicker dashed line drawn on top, so
    it stays visible where the two coincide. The legend sits below the axes, in two
    columns, so that it does not narrow them.

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
    from matplotlib.lines import Line2D

    labels, depths = list(sweep.labels), np.asarray(sweep.depths)
    arrays = {}
    for name in ("measured", "predicted"):
        arrays[name] = np.asarray(getattr(sweep, name), dtype=np.float64)
        if arrays[name].shape != (len(labels), depths.size):
            raise ValueError(f"sweep.{name} must have shape {(len(labels), depths.size)} "
                             f"(labels x depths), got {arrays[name].shape}")
    ax = _axes(ax)
    ax.set_yscale("log")
    band = ax.axhspan(*HEALTHY_BAND, color="tab:green", alpha=0.12,
                      label=f"healthy: {HEALTHY_BAND[0]:g} to {HEALTHY_BAND[1]:g}")
    ax.axhline(1.0, color="tab:green", ls=":", lw=1, label="_unit ratio")
    handles = []
    for index, label in enumerate(labels):
        style = {"color": f"C{index}", "marker": _MARKERS[index % len(_MARKERS)]}
        _plot_log(ax, depths, arrays["measured"][index], ls="-", lw=0.8, ms=5,
                  label="_measured", **style)
        _plot_log(ax, depths, arrays["predicted"][index], color=style["color"], ls="--",
                  lw=1.8, zorder=3, label="_predicted")
        handles.append(Line2D([], [], ls="-", lw=0.8, label=label, **style))
    handles += [Line2D([], [], color="0.3", ls="none", marker="o", label="measured"),
                Line2D([], [], color="0.3", ls="--", lw=1.8, label="predicted"), band]
    handles += [line for line in ax.get_lines() if line.get_label() in ("inf or nan", "zero")]
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(ax, title or "Gradient ratio (first / last hidden layer) vs depth",
            "depth (hidden layers)", "first / last gradient ratio", legend=False)
    ax.legend(handles=handles, fontsize="small", ncol=2, loc="upper center",
              bbox_to_anchor=(0.5, -0.16), borderaxespad=0.0)
    return ax
