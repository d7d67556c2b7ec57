"""``keras.ops`` pieces of the JAX optimizer hook (:mod:`vgrad._jax_hook`).

Speed note: XLA on CPU runs each fusion as a kernel of its own, a few microseconds
each, so one reduction per tensor (three per variable: gradient, weight, update) cost
a 20x64 MLP's step about 40%. Stacking the tensors of equal shape and reducing each
stack once costs a few kernels in all (a segment sum or a cumulative sum over one
concatenated vector measured slower still). The update is read from the optimizer's
``assign*`` calls where every change goes through them: taking it as ``after - before``
makes XLA copy every weight before the in-place update, and cost the recording step of
the 20x64 MLP about 150 us over a plain step instead of 110 (``jax_executable_switch.py``).
"""

from __future__ import annotations

import contextlib

import numpy as np

from keras import ops

from vgrad._assign_patch import routed_assigns


#: Variables up to this size are stacked with the others of their shape; a larger one is
#: reduced alone (its reduction outlasts a kernel launch, and a stack would copy it).
STACKED_SIZE = 1 << 14


def norm_halves(gradients, before, updates):
    """Half squared norms ``sum(t**2) / 2`` of the gradients, of the weights before the
    update and of the updates, as one float32 vector in that order (variable order
    within each third).

    The three lists hold one tensor per variable, all of the variable's shape. The
    variables of one shape are stacked and each stack reduced once, so the step gains a
    few kernels, not several per variable.
    """
    groups = {}
    for position, weight in enumerate(before):
        shape = tuple(weight.shape)
        key = shape if int(np.prod(shape)) <= STACKED_SIZE else position
        groups.setdefault(key, []).append(position)
    parts, order = [], []
    count = len(before)
    for positions in groups.values():
        stacks = [ops.stack([ops.cast(tensors[p], "float32") for p in positions])
                  for tensors in (gradients, before, updates)]
        axes = tuple(range(1, len(stacks[0].shape)))
        parts.extend((ops.sum(ops.square(s), axis=axes) if axes else ops.square(s)) / 2.0
                     for s in stacks)
        order.extend(third * count + p for third in range(3) for p in positions)
    return ops.take(ops.concatenate(parts), np.argsort(order))


@contextlib.contextmanager
def captured_updates(optimizer, column_of):
    """While tracing, collect ``{column: [change]}`` from ``optimizer``'s ``assign``,
    ``assign_add`` and ``assign_sub`` calls on the variables ``column_of`` knows.

    Reading the update from these calls leaves the optimizer's update in place: taking
    it as ``after - before`` makes XLA copy every weight before the update overwrites it.
    """
    changes = {}

    def route(name, original, variable, value):
        column = column_of(variable)
        if column is not None:
            new = ops.cast(value, "float32")
            change = {"assign_add": new, "assign_sub": -new}.get(name)
            if change is None:
                change = new - ops.cast(ops.convert_to_tensor(variable.value), "float32")
            changes.setdefault(column, []).append(change)
        return original(variable, value)

    with routed_assigns(optimizer, route):
        yield changes


def totals(changes, variables):
    """Per variable (column), the sum of its ``changes``; zeros of its shape without any."""
    return [sum(changes[c][1:], changes[c][0]) if c in changes else ops.zeros(v.shape, "float32")
            for c, v in enumerate(variables)]


def index_of(items, item):
    """Position of ``item`` in ``items`` by identity, else None."""
    for position, candidate in enumerate(items):
        if candidate is item:
            return position
    return None


def max_abs(gradients):
    """``max |g|`` over the gradients given (None skipped), 0 when there are none."""
    present = [ops.max(ops.abs(ops.cast(g, "float32"))) for g in gradients if g is not None]
    return ops.max(ops.stack(present)) if present else ops.zeros((), "float32")
