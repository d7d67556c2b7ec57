"""Kept so that ``from vgrad.sequences import memory_task`` still works.

The memory task is offline data and lives in :mod:`vgrad.data`, beside ``load_digits``.
"""

from vgrad.data import memory_task

__all__ = ["memory_task"]
