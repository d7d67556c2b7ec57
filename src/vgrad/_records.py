"""The Python side of a monitor's records: lists per step, tables per variable."""

from __future__ import annotations

import numpy as np

from vgrad.tables import finite_median, format_table

#: Lists with one entry per record, and {variable path: list} tables.
LISTS = ("steps", "loss", "global_norm", "clipped", "nonfinite")
TABLES = ("history", "update_ratio", "weight_norm")
_TABLE_SOURCES = {"history": "gradient", "update_ratio": "ratio", "weight_norm": "weight"}


class Records:
    """Decoded rows appended to ``steps``, ``loss``, ... and ``history``, ... tables."""

    def __init__(self):
        for name in LISTS:
            setattr(self, name, [])
        for name in TABLES:
            setattr(self, name, {})
        self.num_skipped = 0  # steps a LossScaleOptimizer skipped (no update, no record)

    def add_variables(self, paths):
        """Give each of ``paths`` a column, ``nan`` at the records made before it, and
        put the columns in the order of ``paths`` (model order; a column no longer among
        them, a layer frozen since, stays after the one it followed)."""
        order = list(paths)
        for previous, path in zip([None, *self.history], self.history):
            if path not in order:
                order.insert(order.index(previous) + 1 if previous in order else 0, path)
        for name in TABLES:
            table = getattr(self, name)
            setattr(self, name, {path: table.get(path, [np.nan] * len(self.steps))
                                 for path in order})

    def extend(self, records, paths):
        """Append decoded ``records`` whose columns are the variables ``paths``."""
        for name in LISTS:
            getattr(self, name).extend(records[name].tolist())
        for name in TABLES:
            values, table = records[_TABLE_SOURCES[name]], getattr(self, name)
            for path in set(table) - set(paths):  # a variable no longer trainable
                table[path].extend([np.nan] * len(values))
            for column, path in enumerate(paths):
                table[path].extend(values[:, column].tolist())

    def table(self):
        """One line per variable (last norm, median norm, last update ratio), then the
        global norm; ``""`` without records."""
        if not self.steps:
            return ""
        rows = [(path, norms[-1], finite_median(norms), self.update_ratio[path][-1])
                for path, norms in self.history.items()]
        rows.append(("(global)", self.global_norm[-1], finite_median(self.global_norm), None))
        return format_table(rows, ["variable", "last norm", "median norm", "update ratio"],
                            align="<>>>")


def recorded(name):
    """A property of a monitor giving its records' ``name``, read from the device first."""

    def read(self):
        self._read_device()
        return getattr(self._records, name)

    return property(read, doc=f"See the class docstring ({name}).")


def unique_paths(variables):
    """``variable.path`` of each variable, numbered from the second where paths repeat."""
    names, seen = [], {}
    for variable in variables:
        path = getattr(variable, "path", variable.name)
        seen[path] = seen.get(path, 0) + 1
        names.append(path if seen[path] == 1 else f"{path}#{seen[path]}")
    return names
