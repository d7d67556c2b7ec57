"""vgrad: measure, explain and fix vanishing and exploding gradients in Keras models."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("vgrad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

from vgrad.data import load_digits
from vgrad.diagnosis import Diagnosis, diagnose
from vgrad.models import build_mlp
from vgrad.probes import backprop_norms, gradient_norms
from vgrad.stats import ActivationStats, activation_stats
from vgrad.tables import LayerDict
from vgrad import plots  # so that vgrad.plots.plot_* works after `import vgrad`

__all__ = [
    "ActivationStats",
    "Diagnosis",
    "LayerDict",
    "activation_stats",
    "backprop_norms",
    "build_mlp",
    "diagnose",
    "gradient_norms",
    "load_digits",
    "plots",
]
