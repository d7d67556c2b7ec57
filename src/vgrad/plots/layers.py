"""Per-layer figures: gradient norms, activation histograms, derivatives, Jacobian products."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
from matplotlib.ticker import MaxNLocator

from vgrad.plots._base import (
    HEALTHY_BAND,
    _axes,
    _configurations,
    _finish,
    _floats,
    _plot_log,
)


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
        Hidden-layer names (as in :func:`vgrad.backprop_rms`). Default: all hidden
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
    from vgrad._state import restoring_state
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
        As :func:`vgrad.jacobian_product_spectral_norms` returns, entry ``l - 1`` for ``l`` layers.
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
