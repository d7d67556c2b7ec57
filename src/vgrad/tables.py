"""Results that print as tables: one fixed-width line per row, numbers right-aligned."""

from __future__ import annotations

import math
import numbers


def format_number(value, spec=".3e"):
    """Format a float, writing non-finite values as ``inf``, ``-inf``, ``nan`` or ``n/a``."""
    if value is None:
        return "n/a"
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return format(value, spec)


def _is_number(cell):
    return cell is None or (isinstance(cell, numbers.Real) and not isinstance(cell, bool))


def format_table(rows, headers=None, *, spec=".3e", align=None):
    """Format rows as fixed-width text: first column left-aligned, numbers right-aligned.

    Parameters
    ----------
    rows : iterable of sequences
        One sequence of cells per row, all of the same length. A cell is a string (kept
        as it is), a real number (formatted with :func:`format_number`) or ``None``
        (``n/a``).
    headers : sequence of str, optional
        Column titles, aligned as their columns.
    spec : str or sequence of str, default ".3e"
        Format spec of the numbers, one for all columns or one per column.
    align : str, optional
        One ``"<"`` (left) or ``">"`` (right) per column. Default: the first column
        left, every other column right if all its cells are numbers, else left.

    Returns
    -------
    str
        Columns separated by two spaces, one line per row (headers first), no
        trailing spaces; ``""`` for no rows and no headers.

    Raises
    ------
    ValueError
        If rows, headers, specs or ``align`` disagree on the number of columns, or
        ``align`` holds anything but ``"<"`` and ``">"``.

    Examples
    --------
    >>> print(format_table([("dense_1", 0.5), ("dense_2", 1.0)], ["layer", "ratio"], spec=".2f"))
    layer    ratio
    dense_1   0.50
    dense_2   1.00
    """
    rows = [list(row) for row in rows]
    num_columns = len(headers) if headers is not None else len(rows[0]) if rows else 0
    specs = [spec] * num_columns if isinstance(spec, str) else list(spec)
    if any(len(row) != num_columns for row in rows) or len(specs) != num_columns:
        raise ValueError(
            f"every row, the headers and the specs must have {num_columns} columns; got rows of "
            f"{sorted({len(row) for row in rows})} and {len(specs)} specs"
        )
    if align is None:
        align = "".join(
            "<" if index == 0 or not all(_is_number(row[index]) for row in rows) else ">"
            for index in range(num_columns)
        )
    if len(align) != num_columns or set(align) - {"<", ">"}:
        raise ValueError(f"align must hold one '<' or '>' per column ({num_columns}); got {align!r}")
    texts = [
        [cell if isinstance(cell, str) else format_number(cell, specs[index])
         for index, cell in enumerate(row)]
        for row in rows
    ]
    if headers is not None:
        texts.insert(0, [str(header) for header in headers])
    widths = [max(len(row[index]) for row in texts) for index in range(num_columns)]
    return "\n".join(
        "  ".join(
            cell.ljust(width) if side == "<" else cell.rjust(width)
            for cell, width, side in zip(row, widths, align)
        ).rstrip()
        for row in texts
    )


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
        return format_table(
            (str(name), value.format_line() if hasattr(value, "format_line") else value)
            for name, value in self.items()
        )

    __str__ = __repr__

    def _repr_pretty_(self, printer, cycle):
        printer.text("LayerDict(...)" if cycle else repr(self))
