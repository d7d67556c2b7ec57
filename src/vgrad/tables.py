"""Per-layer results that print as one fixed-width line per layer."""

from __future__ import annotations

import math


def format_number(value, spec=".3e"):
    """Format a float, writing non-finite values as ``inf``, ``-inf``, ``nan`` or ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def finite_median(values):
    """Median of the finite values (``nan`` when there are none): records hold inf/nan."""
    finite = [float(value) for value in values if math.isfinite(float(value))]
    if not finite:
        return math.nan
    finite.sort()
    middle = len(finite) // 2
    return finite[middle] if len(finite) % 2 else (finite[middle - 1] + finite[middle]) / 2


class LayerDict(dict):
    """A dict {layer name: value}, input side first, printed one line per layer.

    It is a plain ``dict`` in every other respect (``history["dense_3"]`` style access,
    JSON-serialisable when its values are floats).
    """

    def __repr__(self):
        if not self:
            return "LayerDict({})"
        width = max(len(str(name)) for name in self)
        lines = []
        for name, value in self.items():
            text = value.format_line() if hasattr(value, "format_line") else format_number(value)
            lines.append(f"{str(name):<{width}}  {text}")
        return "\n".join(lines)

    __str__ = __repr__

    def _repr_pretty_(self, printer, cycle):
        printer.text("LayerDict(...)" if cycle else repr(self))
