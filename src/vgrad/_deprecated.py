"""Old public names kept working for a while, each with a ``DeprecationWarning`` naming the new one.

Two tools, used the same way everywhere:

* :func:`renamed_names` makes a module ``__getattr__`` (PEP 562) that resolves an old
  module attribute (a function or a constant) to the new one, warning on each access;
* :func:`renamed_keywords` decorates a function so that an old keyword argument is
  passed on under its new name, warning on each call.

Old names appear in no ``__all__``.
"""

import functools
import sys
import warnings

__all__ = ["RENAMED", "renamed_keywords", "renamed_names", "warn_renamed"]

#: Old public name -> new public name, for every rename of the ``vgrad`` namespace.
RENAMED = {
    "backprop_norms": "backprop_rms",
    "time_gradient_norms": "time_gradient_rms",
    "predicted_backprop_norms": "predicted_backprop_ratios",
    "jacobian_product_norms": "jacobian_product_spectral_norms",
    "backprop_gain": "backprop_chi",
    "PHASE_CONFIGS": "DEPTH_SWEEP_CONFIGS",
}


def warn_renamed(old, new, *, stacklevel=3):
    """Emit the ``DeprecationWarning`` that says ``old`` is now called ``new``."""
    warnings.warn(
        f"{old} is deprecated and will be removed; use {new} instead",
        DeprecationWarning,
        stacklevel=stacklevel,
    )


def renamed_names(module_name, renames):
    """A module ``__getattr__`` that resolves each old name in ``renames`` to its new one.

    Parameters
    ----------
    module_name : str
        The module that defines the new names (pass ``__name__``).
    renames : dict of str to str
        Old attribute name -> new attribute name in that module.

    Returns
    -------
    callable
        ``__getattr__(name)``: the new object, after a ``DeprecationWarning``, for an old
        name; ``AttributeError`` otherwise.
    """

    def __getattr__(name):
        new = renames.get(name)
        if new is None:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        warn_renamed(f"{module_name}.{name}", f"{module_name}.{new}")
        return getattr(sys.modules[module_name], new)

    return __getattr__


def renamed_keywords(**renames):
    """Decorator: accept each old keyword argument (``old="new"``) under its new name, with a warning.

    Passing both the old and the new keyword raises ``TypeError``.
    """

    def decorate(function):
        @functools.wraps(function)
        def wrapper(*args, **kwargs):
            for old, new in renames.items():
                if old in kwargs:
                    if new in kwargs:
                        raise TypeError(
                            f"{function.__name__}() got both {new}= and its deprecated "
                            f"name {old}=; pass {new}= only"
                        )
                    warn_renamed(f"{function.__name__}({old}=...)", f"{new}=")
                    kwargs[new] = kwargs.pop(old)
            return function(*args, **kwargs)

        return wrapper

    return decorate
