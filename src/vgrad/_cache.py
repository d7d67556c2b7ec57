"""One compiled function per model and purpose, dropped with the model."""

from __future__ import annotations

import weakref

_CACHE = weakref.WeakKeyDictionary()


def cached(model, key, build):
    """Return ``build()`` for ``(model, key)``, building it on the first call only."""
    per_model = _CACHE.setdefault(model, {})
    if key not in per_model:
        per_model[key] = build()
    return per_model[key]
