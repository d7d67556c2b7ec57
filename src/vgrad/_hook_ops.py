"""Graph-side pieces of the optimizer hook: norms of dense and sparse gradients, the
updates an optimizer writes through its ``assign*`` calls, and where a step runs."""

from __future__ import annotations

import contextlib

import tensorflow as tf


def dense(tensor):
    """A dense tensor with the norm of ``tensor`` (repeated IndexedSlices rows summed)."""
    if isinstance(tensor, tf.IndexedSlices):
        unique, positions = tf.unique(tensor.indices)
        return tf.math.unsorted_segment_sum(tensor.values, positions, tf.size(unique))
    return tf.convert_to_tensor(tensor)


def half_squares(tensors):
    """``[sum(t**2) / 2]`` as float32 scalars, one ``L2Loss`` per tensor or variable."""
    return [tf.nn.l2_loss(tf.cast(dense(t), tf.float32)) for t in tensors]


def total(deltas):
    """The change made by ``[(sign, value)]`` assign calls (the sign matters in sums only)."""
    if not deltas:
        return tf.zeros((), tf.float32)
    if len(deltas) == 1:
        return deltas[0][1]
    return tf.add_n([sign * tf.convert_to_tensor(value) for sign, value in deltas])


def visible(tensor):
    """Whether ``tensor`` may be used in the graph being built (its own or an outer one)."""
    graph = tf.compat.v1.get_default_graph()
    while graph is not None:
        if getattr(tensor, "graph", None) is graph:
            return True
        graph = getattr(graph, "outer_graph", None)
    return False


def distributed_context():
    """The replica context of a multi-replica ``tf.distribute`` step, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context


@contextlib.contextmanager
def capture_updates(optimizer, column_of, waits=None):
    """While tracing, collect ``{column: [(sign, delta)]}`` from the optimizer's assigns.

    An assign to the variable of ``column`` waits for ``waits[column]`` when given.
    """
    deltas = {}
    originals = {name: getattr(optimizer, name) for name in ("assign", "assign_add", "assign_sub")}

    def wrap(name):
        def assign(variable, value):
            column = column_of(variable)
            if column is not None:
                if name != "assign":
                    delta = (1.0 if name == "assign_add" else -1.0, value)
                elif isinstance(value, tf.IndexedSlices):
                    old = tf.gather(variable, value.indices)
                    delta = (1.0, tf.IndexedSlices(value.values - old, value.indices))
                else:
                    delta = (1.0, tf.cast(value, variable.dtype) - tf.convert_to_tensor(variable))
                deltas.setdefault(column, []).append(delta)
                if waits is not None:
                    with tf.control_dependencies([waits[column]]):
                        return originals[name](variable, value)
            return originals[name](variable, value)

        return assign

    for name in originals:
        object.__setattr__(optimizer, name, wrap(name))
    try:
        yield deltas
    finally:
        for name in originals:
            object.__delattr__(optimizer, name)
