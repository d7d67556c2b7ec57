"""Result types of a diagnosis: one finding per layer and the verdict, as table and JSON."""

from __future__ import annotations

import math
import textwrap
from dataclasses import asdict, dataclass, fields

from vgrad.tables import format_number, format_table

#: Printed lines stay within this width (the tutorial prints them in a PDF).
WIDTH = 88
_NAME_WIDTH = 30


@dataclass(frozen=True)
class LayerFinding:
    """What was measured at one layer with weights (or one comparable point).

    Values that do not apply are ``None`` (printed ``n/a`` or left out); non-finite
    measurements are ``inf`` or ``nan``.

    Attributes
    ----------
    name : str
        Layer name (``mha/query`` for sublayers), or variable path for a monitor.
    kind : str or None
        ``"dense"``, ``"conv"``, ``"embedding"``, ``"attention"``, ``"normalization"``,
        ``"recurrent"``, ``"other"``, or ``"block"`` for a residual block input.
    activation : str or None
        The layer's own hidden activation.
    kernel_norm : float or None
        L2 norm of the gradient of the layer's main weight (median over steps for a monitor).
    kernel_ratio : float or None
        ``kernel_norm`` over that of the last comparable kernel (monitors with plain SGD).
    backprop_rms, backprop_ratio : float or None
        RMS of the gradient reaching the layer's activation input (or the block input),
        and its ratio to the output-side point the verdict compares with.
    saturated_fraction, dead_fraction : float or None
        From :func:`vgrad.activation_stats`.
    update_ratio : float or None
        Median ``||update|| / ||weight||`` per recorded step (monitors).
    finite : bool
        False when a gradient of this layer was inf or nan.
    """

    name: str
    kind: str | None = None
    activation: str | None = None
    kernel_norm: float | None = None
    kernel_ratio: float | None = None
    backprop_rms: float | None = None
    backprop_ratio: float | None = None
    saturated_fraction: float | None = None
    dead_fraction: float | None = None
    update_ratio: float | None = None
    finite: bool = True


_COLUMNS = (  # (header, attribute, format)
    ("activation", "activation", "s"), ("grad norm", "kernel_norm", ".3e"),
    ("/last", "kernel_ratio", ".1e"), ("backprop", "backprop_rms", ".3e"),
    ("/last", "backprop_ratio", ".1e"), ("saturated", "saturated_fraction", "%"),
    ("dead", "dead_fraction", "%"), ("update", "update_ratio", ".1e"),
)


def _cell(value, spec):
    if spec == "s" and value is None:
        return ""
    if spec == "%" and value is not None and math.isfinite(value):
        return f"{100 * value:.1f}%"
    return format_number(value, "" if spec in ("s", "%") else spec)


def _short(name):
    if len(name) <= _NAME_WIDTH:
        return name
    parts = name.split("/")
    for count in range(len(parts) - 1, 0, -1):  # keep the most trailing parts that fit
        tail = "/".join(parts[-count:])
        if len(tail) + 2 + 4 <= _NAME_WIDTH:  # multi~/attention_output/kernel
            return "/".join(parts[:-count])[: _NAME_WIDTH - len(tail) - 2] + "~/" + tail
    return name[: _NAME_WIDTH - 15] + "~" + name[-14:]


def json_safe(value):
    """``value`` with ``inf``/``nan`` floats replaced by the strings ``"inf"``/``"nan"``."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {key: json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _wrapped(text, first, rest):
    return textwrap.wrap(text, WIDTH, initial_indent=first, subsequent_indent=rest,
                         break_on_hyphens=False)


@dataclass(frozen=True, repr=False)
class Diagnosis:
    """The verdict on a model's (or a recorded run's) gradient flow, with the evidence.

    Attributes
    ----------
    verdict : str
        One of :data:`vgrad.policy.VERDICTS`: ``"healthy"``, ``"vanishing"``,
        ``"exploding"``, ``"inconclusive"``, ``"dead units"``, ``"zero layer"``,
        ``"not learning"``, ``"large updates"``.
    reason : str
        The measurement and threshold behind the verdict.
    layers : tuple of LayerFinding
        Every layer with weights, input side first (every main weight for a monitor),
        and the residual block inputs the verdict compared.
    advice : tuple of str
        The fixes to try, most relevant first (from :data:`vgrad.policy.ADVICE`).
    notes : tuple of str
        Caveats and further findings: the loss against chance level, clipping.
    ratio : float
        First-to-last ratio used for the verdict (``nan`` when none was formed).
    ratio_kind : {"backprop", "block", "kernel", "update", "none"}
        What ``ratio`` compares: gradient RMS at activation inputs, at residual block
        inputs, kernel-gradient norms (monitor), or nothing.
    loss : float or None
        Loss of the probed batch (last recorded training loss for a monitor).
    loss_name, loss_source : str or None
        Which loss was used and why (``"the model's compiled loss"``, ...).
    forward_finite, gradients_finite : bool
        ``forward_finite=False`` means the forward pass itself overflowed.
    source : {"model", "monitor"}
    """

    verdict: str
    reason: str
    layers: tuple
    advice: tuple
    notes: tuple = ()
    ratio: float = math.nan
    ratio_kind: str = "backprop"
    loss: float | None = None
    loss_name: str | None = None
    loss_source: str | None = None
    forward_finite: bool = True
    gradients_finite: bool = True
    source: str = "model"

    def to_dict(self):
        """A JSON-ready dict; ``inf``/``nan`` become the strings ``"inf"``/``"nan"``."""
        result = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "layers"}
        result["layers"] = [asdict(layer) for layer in self.layers]
        return json_safe(result)

    def _table(self):
        columns = [c for c in _COLUMNS if any(getattr(r, c[1]) is not None for r in self.layers)]
        rows = [["layer", *(c[0] for c in columns)]]
        for record in self.layers:
            cells = [_cell(getattr(record, attribute), spec) for _, attribute, spec in columns]
            rows.append([_short(record.name) + ("" if record.finite else " !"), *cells])
        return format_table(rows[1:], rows[0], align="<" + ">" * len(columns)).splitlines()

    def __str__(self):
        last = [r.name for r in self.layers if r.backprop_ratio == 1.0 or r.kernel_ratio == 1.0]
        title = f"gradient flow ({self.source})"
        title += f"; /last: ratio to {_short(last[-1])}" if last else ""
        lines = [title, *self._table()]
        if not all(record.finite for record in self.layers):
            lines.append("(! marks a layer with an inf or nan gradient)")
        lines += _wrapped(f"verdict: {self.verdict} -- {self.reason}", "", "  ")
        if self.loss is not None:
            about = f" ({self.loss_name}; {self.loss_source})" if self.loss_name else ""
            lines += _wrapped(f"loss: {format_number(self.loss, '.4g')}{about}", "", "  ")
        if self.advice:
            lines.append("advice:")
            for index, text in enumerate(self.advice, 1):
                lines += _wrapped(text, f"  {index}. ", "     ")
        if self.notes:
            lines.append("notes:")
            for text in self.notes:
                lines += _wrapped(text, "  - ", "    ")
        return "\n".join(lines)

    __repr__ = __str__

    def _repr_pretty_(self, printer, cycle):
        printer.text("Diagnosis(...)" if cycle else str(self))
