"""Route an optimizer's ``assign``, ``assign_add`` and ``assign_sub`` through a callback
while a step is traced (backend-neutral: the hooks of both backends read updates so)."""

from __future__ import annotations

import contextlib

ASSIGNS = ("assign", "assign_add", "assign_sub")


@contextlib.contextmanager
def routed_assigns(optimizer, route):
    """For the block, ``optimizer.<name>(variable, value)`` for each name in
    :data:`ASSIGNS` returns ``route(name, original, variable, value)``, where
    ``original`` is the method it replaces."""
    originals = {name: getattr(optimizer, name) for name in ASSIGNS}

    def wrap(name):
        def assign(variable, value):
            return route(name, originals[name], variable, value)

        return assign

    for name in ASSIGNS:
        object.__setattr__(optimizer, name, wrap(name))
    try:
        yield
    finally:
        for name in ASSIGNS:
            object.__delattr__(optimizer, name)
