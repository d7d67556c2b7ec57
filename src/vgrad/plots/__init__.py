"""Figures: gradient norms per layer, training curves, activations, recorded runs.

Every function draws on ``ax`` (a new 6.5 x 4 inch figure when ``None``), returns the
Axes, and changes no global matplotlib state. Values that a log axis cannot show are
marked instead of dropped silently: ``inf``/``nan`` with a red ``x`` on the top edge,
zeros with a grey triangle on the bottom edge.
"""

from vgrad.plots._base import HEALTHY_BAND, HEALTHY_UPDATE_RATIO
from vgrad.plots.depth import plot_phase_diagram, plot_time_gradients
from vgrad.plots.layers import (
    plot_activation_derivatives,
    plot_activation_histograms,
    plot_gradient_norms,
    plot_jacobian_products,
)
from vgrad.plots.training import plot_monitor, plot_training_curves

__all__ = [
    "HEALTHY_BAND",
    "HEALTHY_UPDATE_RATIO",
    "plot_activation_derivatives",
    "plot_activation_histograms",
    "plot_gradient_norms",
    "plot_jacobian_products",
    "plot_monitor",
    "plot_phase_diagram",
    "plot_time_gradients",
    "plot_training_curves",
]
