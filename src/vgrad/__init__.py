"""vgrad: measure, explain and fix vanishing and exploding gradients in Keras models.

Names are imported on first use (PEP 562), so ``import vgrad`` and ``vgrad --help``
do not pay for importing TensorFlow until a function that needs it is called.
"""

import importlib
from importlib.metadata import PackageNotFoundError, version

# Old public names (``vgrad._deprecated.RENAMED``) resolve with a DeprecationWarning and
# are listed nowhere in ``__all__``.
from vgrad._deprecated import RENAMED as _RENAMED
from vgrad._deprecated import warn_renamed as _warn_renamed

try:
    __version__ = version("vgrad")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

_EXPORTS = {
    # data and models
    "load_digits": "vgrad.data",
    "build_mlp": "vgrad.models",
    "train": "vgrad.training",
    "TrainingRun": "vgrad.training",
    # probes
    "measure": "vgrad.measurement",
    "Measurement": "vgrad.measurement",
    "WeightLayer": "vgrad.measurement",
    "gradient_norms": "vgrad.probes",
    "backprop_rms": "vgrad.probes",
    "activation_stats": "vgrad.stats",
    "ActivationStats": "vgrad.stats",
    "LayerDict": "vgrad.tables",
    "activation_derivatives": "vgrad.elementary",
    "jacobian_product_spectral_norms": "vgrad.elementary",
    # training telemetry and verdicts
    "GradientMonitor": "vgrad.monitor",
    "diagnose": "vgrad.diagnosis",
    "Diagnosis": "vgrad.diagnosis",
    # recurrent networks
    "build_rnn": "vgrad.rnn",
    "largest_singular_value": "vgrad.rnn",
    "time_gradient_rms": "vgrad.rnn",
    "memory_task": "vgrad.data",
    # theory next to measurement
    "backprop_chi": "vgrad.theory",
    "initializer_variance": "vgrad.theory",
    "predicted_backprop_ratios": "vgrad.theory",
    "StandardUniform": "vgrad.models",
    "depth_sweep": "vgrad.phase",
    "DepthSweep": "vgrad.phase",
    "DEPTH_SWEEP_CONFIGS": "vgrad.phase",
    # figures
    "plots": "vgrad.plots",
}

__all__ = list(_EXPORTS)

def __getattr__(name):
    if name in _RENAMED:  # an old name: warn on every access, cache nothing
        _warn_renamed(f"vgrad.{name}", f"vgrad.{_RENAMED[name]}")
        return __getattr__(_RENAMED[name])
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'vgrad' has no attribute {name!r}")
    module = importlib.import_module(module_name)
    value = module if module_name == f"vgrad.{name}" else getattr(module, name)
    globals()[name] = value
    return value


def __dir__():
    return sorted({*globals(), *__all__})


def register_serializables():
    """Import the modules whose Keras classes are registered for ``keras.saving``."""
    importlib.import_module("vgrad.models")
