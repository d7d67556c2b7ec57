"""vgrad: measure, explain and fix vanishing and exploding gradients in Keras models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vgrad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from vgrad.data import load_digits
from vgrad.diagnosis import Diagnosis, diagnose
from vgrad.models import build_mlp
from vgrad.monitor import GradientMonitor
from vgrad.phase import PHASE_CONFIGS, DepthSweep, depth_sweep
from vgrad.probes import backprop_norms, gradient_norms
from vgrad.rnn import build_rnn, largest_singular_value, time_gradient_norms
from vgrad.sequences import memory_task
from vgrad.stats import ActivationStats, activation_stats
from vgrad.tables import LayerDict
from vgrad.theory import (
    StandardUniform,
    backprop_gain,
    initializer_variance,
    predicted_backprop_norms,
)
from vgrad import plots  # so that vgrad.plots.plot_* works after `import vgrad`

__all__ = [
    "ActivationStats",
    "Diagnosis",
    "GradientMonitor",
    "LayerDict",
    "activation_stats",
    "backprop_norms",
    "build_mlp",
    "diagnose",
    "gradient_norms",
    "load_digits",
    # recurrent networks
    "build_rnn",
    "largest_singular_value",
    "memory_task",
    "time_gradient_norms",
    "plots",
    # theory next to measurement
    "DepthSweep",
    "PHASE_CONFIGS",
    "StandardUniform",
    "backprop_gain",
    "depth_sweep",
    "initializer_variance",
    "predicted_backprop_norms",
]
