"""A callback method that never breaks the training it watches."""

from __future__ import annotations

import functools


def guarded(method):
    """Run ``method``; an internal failure goes to ``self._fail(error)`` instead of ``fit``.

    Once ``self._failed`` is set, the method does nothing, so a monitor that failed
    stays out of the way for the rest of the fit.
    """

    @functools.wraps(method)
    def run(self, *args, **kwargs):
        if self._failed:
            return None
        try:
            return method(self, *args, **kwargs)
        except Exception as error:  # noqa: BLE001 - a monitor must never break training
            self._fail(error)
            return None

    return run
