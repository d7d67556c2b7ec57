"""Figures: gradient norms per layer, training curves, activations, recorded runs.

Every function draws on ``ax`` (a new 6.5 x 4 inch figure when ``None``), returns the
Axes, and changes no global matplotlib state. Values that a log axis cannot show are
marked instead of dropped silently: ``inf``/``nan`` with a red ``x`` on the top edge,
zeros with a grey triangle on the bottom edge.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.ticker import MaxNLocator

#: Ratio band (to the output-side layer) treated as healthy, as in :mod:`vgrad.diagnosis`.
HEALTHY_BAND = (1e-2, 1e2)
#: The usual per-step ``||update|| / ||weight||`` of a layer that learns.
HEALTHY_UPDATE_RATIO = 1e-3
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
    if all(isinstance(value, Mapping) for value in norms.values()):
        return {str(label): dict(value) for label, value in norms.items()}
    return {None: dict(norms)}


def plot_gradient_norms(norms, *, predicted=None, healthy=HEALTHY_BAND, relative=False,
                        ax=None, title=None, ylabel=None):
    """Gradient norm per layer, input side at layer 1, on a log axis.

    Parameters
    ----------
    norms : dict {layer: float} or dict {label: {layer: float}}
        Measured values (a :class:`vgrad.LayerDict`), one line per configuration.
    predicted : same form as ``norms``, optional
        Predictions, drawn dashed in the colour of the measured line with the same label.
    healthy : (low, high) or None, default (1e-2, 1e2)
        Factors around the output-side (last-layer) level drawn as a shaded band and a
        dotted reference line: with ``relative=True`` the band is ``[low, high]`` around
        1; otherwise it is ``[low, high]`` times the last value of the first configuration.
    relative : bool, default False
        Divide each line by its own last-layer value.
    ax : matplotlib.axes.Axes, optional
    title, ylabel : str, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    TypeError
        If ``norms`` is not a dict of numbers or of dicts of numbers.
    ValueError
        If ``healthy`` is not ``None`` or ``(low, high)`` with ``0 < low < high``.
    """
    measured = _configurations(norms, "norms")
    predictions = {} if predicted is None else _configurations(predicted, "predicted")
    if len(predictions) == 1 and len(measured) == 1:
        predictions = {next(iter(measured)): next(iter(predictions.values()))}
    if healthy is not None and not (len(healthy) == 2 and 0 < healthy[0] < healthy[1]):
        raise ValueError(f"healthy must be None or (low, high) with 0 < low < high, got {healthy!r}")
    ax = _axes(ax)
    ax.set_yscale("log")
    reference = None
    for index, (label, layers) in enumerate(measured.items()):
        color = f"C{index}"
        for kind, values in (("measured", layers), ("predicted", predictions.get(label))):
            if values is None:
                continue
            y = _floats(list(values.values()), "norms")
            level = y[-1] if len(y) and math.isfinite(y[-1]) and y[-1] > 0 else math.nan
            reference = level if reference is None and kind == "measured" else reference
            y = y / level if relative else y
            text = (label or "measured") if kind == "measured" else f"{label or ''} predicted".strip()
            _plot_log(ax, np.arange(1, len(y) + 1), y, color=color,
                      ls="-" if kind == "measured" else "--",
                      marker="o" if kind == "measured" else None, ms=3, label=text)
    center = 1.0 if relative else reference
    if healthy is not None and center is not None and math.isfinite(center):
        ax.axhspan(healthy[0] * center, healthy[1] * center, color="tab:green", alpha=0.12,
                   label=f"healthy: x{healthy[0]:g} to x{healthy[1]:g} of the last layer")
        ax.axhline(center, color="tab:green", ls=":", lw=1, label="_output-side level")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    default = "gradient / last layer's" if relative else "gradient norm"
    return _finish(ax, title or "Gradient norm per layer", "layer (1 = input side)",
                   ylabel or default)


def _history_dict(history, label):
    values = getattr(history, "history", history)
    if not isinstance(values, Mapping):
        raise TypeError(f"histories[{label!r}] must be a keras History or a dict of lists, "
                        f"got {type(history).__name__}")
    return values


def plot_training_curves(histories, *, metric="loss", ax=None, title=None):
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

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    TypeError
        If a history is neither a History nor a dict.
    ValueError
        If a history has no ``metric`` key (the message lists the keys it has).
    """
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
        styles["validation"] = {"ls": "--"}
    return _compact_legend(ax, list(histories), styles)


def plot_activation_histograms(model, x, *, layers=None, bins=50, ax=None):
    """Overlaid histograms of hidden-layer activations (training-mode pass, state restored).

    Sigmoid outputs piled at 0 and 1, tanh at -1 and +1, and ReLU zeros show as spikes
    at the edges. The y axis is logarithmic (share of all activations of the layer).

    Parameters
    ----------
    model : keras.Model
        Sequential or functional model (see :func:`vgrad.activation_stats`).
    x : (num_samples, ...) array_like
        Input batch.
    layers : list of str, optional
        Hidden-layer names (as in :func:`vgrad.backprop_norms`). Default: all hidden
        layers when there are at most 6, else 6 evenly spaced from input to output.
    bins : int, default 50
    ax : matplotlib.axes.Axes, optional

    Returns
    -------
    matplotlib.axes.Axes

    Raises
    ------
    ValueError
        If a name in ``layers`` is not a hidden layer (the message lists them), or
        ``bins`` is not a positive int.
    """
    from vgrad._batch import check_features
    from vgrad._forward import tapped_forward
    from vgrad.probes import restoring_state
    from vgrad.stats import activation_kind

    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 1:
        raise ValueError(f"bins must be a positive int, got {bins!r}")
    x = check_features(model, x)
    save, restore = restoring_state(model)
    saved = save()
    try:
        _, taps = tapped_forward(model, x, training=True)
    finally:
        restore(saved)
    names = list(taps.activations)
    if layers is None:
        layers = names if len(names) <= 6 else [names[round(i)] for i in np.linspace(0, len(names) - 1, 6)]
    unknown = [name for name in layers if name not in taps.activations]
    if unknown:
        raise ValueError(f"layers {unknown} are not hidden layers of {model.name!r}; "
                         f"accepted: {', '.join(names)}")
    values = {name: np.asarray(taps.activations[name], dtype=np.float64).reshape(-1) for name in layers}
    finite = np.concatenate([v[np.isfinite(v)] for v in values.values()] or [np.zeros(1)])
    low, high = (finite.min(), finite.max()) if finite.size else (0.0, 1.0)
    edges = np.linspace(low, high if high > low else low + 1.0, bins + 1)
    ax = _axes(ax)
    import matplotlib

    colors = matplotlib.colormaps["viridis"](np.linspace(0, 0.9, max(len(layers), 1)))
    for color, (name, v) in zip(colors, values.items()):
        good = v[np.isfinite(v)]
        bad = v.size - good.size
        label = f"{name} ({activation_kind(taps.functions[name])}" + (f", {bad} inf/nan)" if bad else ")")
        if good.size:
            ax.hist(good, bins=edges, weights=np.full(good.size, 1 / v.size), histtype="step",
                    color=color, lw=1.5, label=label)
    ax.set_yscale("log")
    ax.legend(fontsize="small")
    return _finish(ax, f"Hidden activations of {model.name}", "activation value",
                   "share of the layer's activations", legend=False)


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


def plot_activation_derivatives(z, derivatives, *, ax=None, title=None):
    """Derivatives of activation functions against their input, with the sigmoid's 1/4 ceiling.

    Parameters
    ----------
    z : (num_points,) array_like
        Pre-activation values.
    derivatives : dict {name: (num_points,) array_like}
        As :func:`vgrad.activation_derivatives` returns.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    z = _floats(z, "z")
    if not isinstance(derivatives, Mapping) or not derivatives:
        raise TypeError("derivatives must be a non-empty dict {name: array of phi'(z)}")
    ax = _axes(ax)
    for index, (name, values) in enumerate(derivatives.items()):
        values = _floats(values, f"derivatives[{name!r}]")
        if values.shape != z.shape:
            raise ValueError(f"derivatives[{name!r}] has {values.size} values for {z.size} points z")
        ax.plot(z, values, color=f"C{index}", label=f"{name}'(z)")
    ax.axhline(0.25, color="0.3", ls=":", lw=1, label="1/4")
    ax.set_ylim(-0.05, 1.1)
    return _finish(ax, title or "Derivatives of activation functions", "pre-activation z", r"$\phi'(z)$")


def plot_jacobian_products(norms, *, ax=None, title=None):
    """Norm of a product of layer Jacobians against the number of layers (log y).

    Parameters
    ----------
    norms : dict {label: (depth,) array_like}
        As :func:`vgrad.jacobian_product_norms` returns, entry ``l - 1`` for ``l`` layers.
    ax : matplotlib.axes.Axes, optional
    title : str, optional

    Returns
    -------
    matplotlib.axes.Axes
    """
    if not isinstance(norms, Mapping) or not norms:
        raise TypeError("norms must be a non-empty dict {label: 1-D array}")
    ax = _axes(ax)
    ax.set_yscale("log")
    ax.axhline(1.0, color="0.3", ls=":", lw=1, label="_one")
    for index, (label, values) in enumerate(norms.items()):
        values = _floats(values, f"norms[{label!r}]")
        _plot_log(ax, np.arange(1, values.size + 1), values, color=f"C{index}", label=label)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    return _finish(ax, title or "Products of layer Jacobians", "number of layers l",
                   r"$\|J_l \cdots J_1\|_2$")
