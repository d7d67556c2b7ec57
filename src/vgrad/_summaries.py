"""TensorBoard event files of decoded monitor records: one ``Event`` per recorded step,
scalars as ``simple_value`` and histograms (binned on the device) as the
``(num_bins, 3)`` tensors of TensorBoard's histogram plugin.

An event file is a TFRecord file of ``Event`` protos, written here by
``tf.io.TFRecordWriter`` without a TensorFlow op per record: a ``tf.summary`` write
costs milliseconds per record (as much as a small model's training step), and
TensorBoard's own writer computes its checksums in pure Python.
"""

from __future__ import annotations

import os
import socket
import time

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata

_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name="", description="")


class SummaryWriter:
    """Append records to an event file in ``log_dir`` (created on first use)."""

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self._writer = None
        self._tagged = set()  # histogram tags whose plugin metadata is written

    def write(self, names, records, bins=None):
        """Write ``gradient_norm/*``, ``update_ratio/*`` and ``loss`` scalars, and with
        ``bins`` (counts of shape ``(num_records, num_variables, num_bins)``) the
        ``gradient/<name>`` histograms over ``[-max |g|, max |g|]``, at each record's step."""
        if self._writer is None:
            self._open()
        tables = None if bins is None else _bin_tables(records["max_abs"], bins)
        shape = None if bins is None else tensor_shape_pb2.TensorShapeProto(
            dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in tables.shape[2:]])
        wall_time = time.time()
        Value = summary_pb2.Summary.Value
        for index, step in enumerate(records["steps"].tolist()):
            values = [Value(tag="gradient_norm/global", simple_value=records["global_norm"][index])]
            if np.isfinite(records["loss"][index]):
                values.append(Value(tag="loss", simple_value=records["loss"][index]))
            gradients, ratios = records["gradient"][index].tolist(), records["ratio"][index].tolist()
            for column, name in enumerate(names):
                values.append(Value(tag=f"gradient_norm/{name}", simple_value=gradients[column]))
                values.append(Value(tag=f"update_ratio/{name}", simple_value=ratios[column]))
            if tables is not None:
                for column, name in enumerate(names):
                    values.append(self._histogram(f"gradient/{name}", shape, tables[index, column]))
            self._writer.write(event_pb2.Event(
                wall_time=wall_time, step=step, summary=summary_pb2.Summary(value=values)
            ).SerializeToString())

    def _open(self):
        os.makedirs(self.log_dir, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.vgrad"
        self._writer = tf.io.TFRecordWriter(os.path.join(self.log_dir, name))
        self._writer.write(event_pb2.Event(wall_time=time.time(),
                                           file_version="brain.Event:2").SerializeToString())

    def _histogram(self, tag, shape, table):
        tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=shape,
                                        tensor_content=table.tobytes())
        if tag in self._tagged:
            return summary_pb2.Summary.Value(tag=tag, tensor=tensor)
        self._tagged.add(tag)
        return summary_pb2.Summary.Value(tag=tag, metadata=_HISTOGRAM_METADATA, tensor=tensor)

    def flush(self):
        if self._writer is not None:
            self._writer.flush()


def _bin_tables(max_abs, bins):
    """``(num_records, num_variables, num_bins, 3)`` tables of [left, right, count]."""
    half_width = np.where(np.isfinite(max_abs) & (max_abs > 0), max_abs, 1.0)
    fractions = np.linspace(-1.0, 1.0, bins.shape[-1] + 1)
    edges = half_width[..., None] * fractions
    return np.stack([edges[..., :-1], edges[..., 1:], bins], axis=-1).astype(np.float64)
