"""Figures of training runs: loss and accuracy curves, recorded gradient norms and update ratios."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator

from vgrad.plots._base import (
    HEALTHY_UPDATE_RATIO,
    _axes,
    _compact_legend,
    _finish,
    _floats,
    _plot_log,
)


def _history_dict(history, label):
    values = getattr(history, "history", history)
    if not isinstance(values, Mapping):
        raise TypeError(f"histories[{label!r}] must be a keras History or a dict of lists, "
                        f"got {type(history).__name__}")
    return values


def plot_training_curves(histories, *, metric="loss", ax=None, title=None,
                         validation_label="validation"):
    """Training (solid) and validation (dashed, ``val_`` prefix) curves per epoch.

    Parameters
    ----------
    histories : dict {label: keras.callbacks.History or dict of lists}
        One run per label (a single History or dict of lists is also accepted).
    metric : str, default "loss"
        Key to plot; the y axis is logarithmic when its positive values span more than
        two orders of magnitude.
    ax : matplotlib.axes.Axes, optional
    title : str, optional
    validation_label : str, default "validation"
        Legend name of the dashed ``val_`` curves: "test" when, as in
        :func:`vgrad.train`, the held-out data passed to ``fit`` is the test set.

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    TypeError
        If a history is neither a History nor a dict, or ``validation_label`` is not a str.
    ValueError
        If a history has no ``metric`` key (the message lists the keys it has).
    """
    if not isinstance(validation_label, str):
        raise TypeError(f"validation_label must be a str, got {validation_label!r}")
    runs = histories.values() if isinstance(histories, Mapping) else [histories]
    if any(hasattr(run, "global_norm") and hasattr(run, "update_ratio") for run in runs):
        raise TypeError("histories must hold keras History objects (what model.fit returns) "
                        "or dicts of lists, not a GradientMonitor: for its records use "
                        "vgrad.plots.plot_monitor, and monitor.loss for its loss per step")
    if hasattr(histories, "history") or (
        isinstance(histories, Mapping) and histories
        and not any(isinstance(v, Mapping) or hasattr(v, "history") for v in histories.values())
    ):
        histories = {None: histories}
    if not isinstance(histories, Mapping) or not histories:
        raise TypeError("histories must be a non-empty dict {label: History or dict of lists}")
    ax = _axes(ax)
    curves = []
    for index, (label, history) in enumerate(histories.items()):
        values = _history_dict(history, label)
        if metric not in values:
            raise ValueError(f"metric={metric!r} is not in history {label!r}; "
                             f"accepted: {', '.join(map(repr, values))}")
        for key, style in ((metric, "-"), ("val_" + metric, "--")):
            if key in values:
                y = _floats(values[key], f"histories[{label!r}][{key!r}]")
                curves.append((np.arange(1, len(y) + 1), y, dict(color=f"C{index}", ls=style, label="_curve")))
    positive = np.concatenate([y[np.isfinite(y) & (y > 0)] for _, y, _ in curves])
    log = positive.size > 0 and positive.max() > 100 * positive.min() and all(
        np.all(y[np.isfinite(y)] >= 0) for _, y, _ in curves)
    if log:
        ax.set_yscale("log")
    for x, y, style in curves:
        if log:
            _plot_log(ax, x, y, **style)
        else:
            good = np.isfinite(y)
            ax.plot(x[good], y[good], **style)
            if (~good).any():
                ax.plot(x[~good], np.full((~good).sum(), 0.97), ls="none", marker="x", color="red",
                        transform=ax.get_xaxis_transform(), clip_on=False, label="inf or nan")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _finish(ax, title or f"Training curves: {metric}", "epoch", metric, legend=False)
    styles = {"training": {"ls": "-"}}
    if any(c[2]["ls"] == "--" for c in curves):
        styles[validation_label] = {"ls": "--"}
    return _compact_legend(ax, list(histories), styles)


def _kernel_paths(history):
    paths = [p for p, v in history.items() if len(v) and p.rsplit("/", 1)[-1] == "kernel"]
    return paths or [p for p, v in history.items() if len(v)]


def plot_monitor(monitor, *, kind="heatmap", ax=None):
    """Show a recorded run (:class:`vgrad.GradientMonitor`) over training steps.

    Parameters
    ----------
    monitor : GradientMonitor
        Or any object with ``steps``, ``history`` and ``update_ratio`` (dicts
        {variable path: list of float}). Kernel variables are shown (all variables
        when none is named ``.../kernel``).
    kind : {"heatmap", "update_ratio"}
        ``"heatmap"``: layer x step map of gradient L2 norms, log colour scale and a
        colorbar (inf/nan cells are red, zeros grey). ``"update_ratio"``: one line per
        layer of ``||update|| / ||weight||`` (log y) with the healthy 1e-3 reference.
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        For another ``kind``, or a monitor with nothing recorded.
    """
    if kind not in ("heatmap", "update_ratio"):
        raise ValueError(f"kind must be 'heatmap' or 'update_ratio', got {kind!r}")
    source = dict(monitor.history if kind == "heatmap" else monitor.update_ratio)
    paths = _kernel_paths(source)
    steps = np.asarray(monitor.steps, dtype=np.float64)
    if not paths or steps.size == 0:
        raise ValueError("monitor has recorded nothing; pass it to model.fit(..., callbacks=[monitor])")
    ax = _axes(ax)
    if kind == "update_ratio":
        import matplotlib
        from matplotlib.cm import ScalarMappable
        from matplotlib.colors import Normalize

        ax.set_yscale("log")
        cmap = matplotlib.colormaps["viridis"]
        colors = cmap(np.linspace(0, 1, len(paths)))
        for color, path in zip(colors, paths):
            values = _floats(source[path], path)
            _plot_log(ax, steps[: values.size], values, color=color, lw=1.0, label="_layer")
        ax.axhline(HEALTHY_UPDATE_RATIO, color="black", ls="--", lw=1,
                   label=f"healthy ~ {HEALTHY_UPDATE_RATIO:g}")
        # A colour scale names the layers: a legend of 20 entries would hide the data.
        scale = ScalarMappable(norm=Normalize(1, max(len(paths), 2)), cmap=cmap)
        bar = ax.figure.colorbar(scale, ax=ax, label="layer (1 = input side)")
        bar.ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        return _finish(ax, "Update ratio per layer", "training step", "||update|| / ||weight||")
    grid = np.full((len(paths), steps.size), np.nan)
    for row, path in enumerate(paths):
        values = _floats(source[path], path)[: steps.size]
        grid[row, : values.size] = values
    positive = grid[np.isfinite(grid) & (grid > 0)]
    norm = LogNorm(*(positive.min(), positive.max())) if positive.size else LogNorm(1e-3, 1.0)
    if norm.vmin == norm.vmax:
        norm = LogNorm(norm.vmin / 10, norm.vmax * 10)
    edges = np.concatenate([[steps[0] - 0.5], (steps[1:] + steps[:-1]) / 2, [steps[-1] + 0.5]])
    import matplotlib

    cmap = matplotlib.colormaps["magma"].with_extremes(bad="red", under="0.6")
    shown = np.where(np.isfinite(grid) & (grid <= 0), norm.vmin / 2, grid)  # zeros: "under"
    mesh = ax.pcolormesh(edges, np.arange(len(paths) + 1) - 0.5, np.ma.masked_invalid(shown),
                         norm=norm, cmap=cmap, shading="flat")
    ax.set_yticks(range(len(paths)), [p.rsplit("/", 1)[0] for p in paths], fontsize="small")
    ax.invert_yaxis()  # input side at the top
    ax.figure.colorbar(mesh, ax=ax, label="gradient L2 norm", extend="min")
    return _finish(ax, "Gradient norm per layer during training", "training step", "layer",
                   legend=False)
