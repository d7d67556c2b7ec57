"""Old home of :func:`vgrad.measure`, kept until every caller imports ``vgrad.measurement``.

A submodule named like a function of the package hides that function: importing
``vgrad.measure`` sets the attribute ``vgrad.measure`` to this module. So that
``vgrad.measure(model, x, y)`` keeps working after something imported this module,
the module itself is callable and forwards to :func:`vgrad.measurement.measure`.
Remove this file once ``from vgrad.measure import ...`` is gone (``diagnosis.py``).
"""

import sys
import types

from vgrad.measurement import Measurement, WeightLayer, measure  # noqa: F401


class _CallableModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return measure(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
