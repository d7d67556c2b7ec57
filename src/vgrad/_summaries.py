"""TensorBoard event files of decoded monitor records: one ``Event`` per recorded step,
scalars as ``simple_value`` and histograms (binned on the device) as the
``(num_bins, 3)`` tensors of TensorBoard's histogram plugin.

An event file is a TFRecord file of ``Event`` protos, written here by
``tf.io.TFRecordWriter`` without a TensorFlow op per record: a ``tf.summary`` write
costs milliseconds per record (as much as a small model's training step), and
TensorBoard's own writer computes its checksums in pure Python.

Building a ``Summary.Value`` proto per number costs microseconds, which for a few dozen
variables at every step is a tenth of a small model's fit. For given names every
record's ``Summary`` has the same bytes apart from its float payloads, so the writer
serializes one template per layout (with and without the loss) through protobuf and
numpy writes the payloads of all records into copies of it. Protos are still built
for the first record of each histogram tag, the one that carries the plugin metadata.
"""

from __future__ import annotations

import functools
import os
import socket
import time

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import event_pb2, summary_pb2, tensor_pb2, tensor_shape_pb2
from tensorboard.compat.proto import types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata

_HISTOGRAM_METADATA = histogram_metadata.create_summary_metadata(display_name="", description="")

#: The key of ``Event.summary``: field 5, length-delimited (wire type 2).
_SUMMARY_KEY = bytes([5 << 3 | 2])


class SummaryWriter:
    """Append records to an event file in ``log_dir`` (created on first use).

    Parameters
    ----------
    log_dir : str or path-like
        Folder of the event file.
    """

    #: Whether :meth:`write` fills byte templates; False builds one proto per value
    #: (the reference the templates are tested against, and the slower path).
    use_templates = True

    def __init__(self, log_dir):
        self.log_dir = log_dir
        self._writer = None
        self._tagged = set()  # histogram tags whose plugin metadata is written

    def write(self, names, records, bins=None):
        """Write ``gradient_norm/*``, ``update_ratio/*`` and ``loss`` scalars, and with
        ``bins`` the ``gradient/<name>`` histograms over ``[-max |g|, max |g|]``, at each
        record's step. A non-finite loss is left out of its record, and so is the
        histogram of a gradient holding inf or nan (its norm scalar shows it).

        Parameters
        ----------
        names : list of str
            Variable names, one per column of the records.
        records : dict of ndarray
            Records of :func:`vgrad._hook_columns.decode_rows`: ``steps``, ``loss`` and
            ``global_norm`` of shape ``(num_records,)``, ``gradient``, ``ratio`` (and
            ``max_abs`` with ``bins``) of shape ``(num_records, num_variables)``.
        bins : (num_records, num_variables, num_bins) ndarray, optional
            Histogram counts; None writes no histograms.
        """
        if self._writer is None:
            self._open()
        tables = None if bins is None else _bin_tables(records["max_abs"], bins)
        wall_time = time.time()
        steps = records["steps"].tolist()
        # A gradient with inf/nan has no histogram: such records are built as protos.
        binned = None if tables is None else _binned(records)
        partial = np.zeros(len(steps), bool) if binned is None else ~binned.all(axis=1)
        encoded = _encode(names, records, tables, 0) if self.use_templates else None
        for index, step in enumerate(steps):
            untagged = tables is not None and any(
                f"gradient/{name}" not in self._tagged for name in names)
            if encoded is None or partial[index] or untagged:  # metadata goes with the first
                summary = self._summary(names, records, tables, binned, index)
                summary = summary.SerializeToString()
            else:
                summary = encoded[index]
            self._write_event(wall_time, step, summary)

    def _open(self):
        os.makedirs(self.log_dir, exist_ok=True)
        name = f"events.out.tfevents.{time.time():.6f}.{socket.gethostname()}.{os.getpid()}.vgrad"
        self._writer = tf.io.TFRecordWriter(os.path.join(self.log_dir, name))
        self._writer.write(event_pb2.Event(wall_time=time.time(),
                                           file_version="brain.Event:2").SerializeToString())

    def _write_event(self, wall_time, step, summary):
        """Write an ``Event`` holding the serialized ``summary``; its field comes after
        wall time and step, in the field order protobuf serializes."""
        header = event_pb2.Event(wall_time=wall_time, step=step).SerializeToString()
        self._writer.write(header + _SUMMARY_KEY + _varint(len(summary)) + summary)

    def _summary(self, names, records, tables, binned, index):
        """The ``Summary`` proto of record ``index``, one ``Value`` per number."""
        Value = summary_pb2.Summary.Value
        values = [Value(tag="gradient_norm/global", simple_value=records["global_norm"][index])]
        if np.isfinite(records["loss"][index]):
            values.append(Value(tag="loss", simple_value=records["loss"][index]))
        gradients, ratios = records["gradient"][index].tolist(), records["ratio"][index].tolist()
        for column, name in enumerate(names):
            values.append(Value(tag=f"gradient_norm/{name}", simple_value=gradients[column]))
            values.append(Value(tag=f"update_ratio/{name}", simple_value=ratios[column]))
        if tables is not None:
            for column, name in enumerate(names):
                if not binned[index, column]:
                    continue  # bins of inf/nan gradients would be made up
                tag = f"gradient/{name}"
                metadata = None if tag in self._tagged else _HISTOGRAM_METADATA
                self._tagged.add(tag)
                values.append(_histogram_value(tag, tables[index, column], metadata))
        return summary_pb2.Summary(value=values)

    def flush(self):
        """Flush the event file to disk."""
        if self._writer is not None:
            self._writer.flush()


def _encode(names, records, tables, first):
    """Serialized ``Summary`` bytes of the records from index ``first`` on (no metadata)."""
    finite_loss = np.isfinite(records["loss"][first:])
    summaries = [None] * len(finite_loss)
    num_bins = None if tables is None else tables.shape[2]
    for with_loss in (True, False):
        chosen = np.flatnonzero(finite_loss == with_loss) + first
        if not len(chosen):
            continue
        template, scalar_slots, tensor_starts = _template(tuple(names), with_loss, num_bins)
        filled = np.tile(template, (len(chosen), 1))
        scalars = np.empty((len(chosen), 1 + with_loss + 2 * len(names)), "<f4")
        with np.errstate(over="ignore", invalid="ignore"):  # beyond float32: inf, as protobuf
            scalars[:, 0] = records["global_norm"][chosen]
            if with_loss:
                scalars[:, 1] = records["loss"][chosen]
            scalars[:, 1 + with_loss::2] = records["gradient"][chosen]
            scalars[:, 2 + with_loss::2] = records["ratio"][chosen]
        filled[:, scalar_slots] = scalars.view(np.uint8)
        if tables is not None:
            width = tables.shape[2] * tables.shape[3] * 8
            contents = np.ascontiguousarray(tables[chosen], "<f8").view(np.uint8)
            contents = contents.reshape(len(chosen), len(names), width)
            for column, start in enumerate(tensor_starts):
                filled[:, start:start + width] = contents[:, column]
        for position, index in enumerate(chosen.tolist()):
            summaries[index - first] = filled[position].tobytes()
    return summaries


@functools.lru_cache(maxsize=16)
def _template(names, with_loss, num_bins):
    """``(template, scalar_slots, tensor_starts)`` of one ``Summary`` layout: its bytes
    with zero payloads, the byte indices of its float32 scalars in order, and where each
    histogram's ``tensor_content`` starts. A ``Summary`` is the concatenation of its
    ``value`` fields, and each payload is the last field of its ``Value``."""
    Value = summary_pb2.Summary.Value
    tags = ["gradient_norm/global", *(["loss"] if with_loss else [])]
    tags += [tag for name in names for tag in (f"gradient_norm/{name}", f"update_ratio/{name}")]
    values = [Value(tag=tag, simple_value=0.0) for tag in tags]
    table = np.zeros((num_bins or 0, 3))
    if num_bins is not None:
        values += [_histogram_value(f"gradient/{name}", table) for name in names]
    fields = [summary_pb2.Summary(value=[value]).SerializeToString() for value in values]
    ends = np.cumsum([len(field) for field in fields], dtype=np.int64)
    scalar_slots = ((ends[:len(tags)] - 4)[:, None] + np.arange(4)).ravel()
    tensor_starts = (ends[len(tags):] - table.nbytes).tolist()
    return np.frombuffer(b"".join(fields), np.uint8), scalar_slots, tensor_starts


def _histogram_value(tag, table, metadata=None):
    """A ``Summary.Value`` holding ``table`` as a ``DT_DOUBLE`` tensor."""
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in table.shape])
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=shape,
                                    tensor_content=table.tobytes())
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)


def _varint(number):
    """The protobuf varint encoding of the non-negative int ``number``."""
    encoded = bytearray()
    while number > 0x7F:
        encoded.append(number & 0x7F | 0x80)
        number >>= 7
    encoded.append(number)
    return bytes(encoded)


def _binned(records):
    """``(num_records, num_variables)``: whether a gradient's histogram is real, i.e. it
    holds no inf (its max |g| is finite) and no nan (its norm is not nan; XLA's max
    skips nan)."""
    return np.isfinite(records["max_abs"]) & ~np.isnan(records["gradient"])


def _bin_tables(max_abs, bins):
    """``(num_records, num_variables, num_bins, 3)`` tables of [left, right, count]."""
    half_width = np.where(np.isfinite(max_abs) & (max_abs > 0), max_abs, 1.0)
    fractions = np.linspace(-1.0, 1.0, bins.shape[-1] + 1)
    edges = half_width[..., None] * fractions
    tables = np.empty((*bins.shape, 3))
    tables[..., 0], tables[..., 1], tables[..., 2] = edges[..., :-1], edges[..., 1:], bins
    return tables
