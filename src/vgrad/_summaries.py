"""TensorBoard summaries of decoded monitor records: one serialized ``Summary`` per step,
scalars as ``simple_value`` and histograms (binned on the device) as the
``(num_bins, 3)`` tensors of TensorBoard's histogram plugin."""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorboard.compat.proto import summary_pb2, tensor_pb2, tensor_shape_pb2, types_pb2
from tensorboard.plugins.histogram import metadata as histogram_metadata


def _histogram_value(tag, half_width, counts):
    edges = np.linspace(-half_width, half_width, len(counts) + 1)
    table = np.stack([edges[:-1], edges[1:], counts], axis=1).astype(np.float64)
    shape = tensor_shape_pb2.TensorShapeProto(
        dim=[tensor_shape_pb2.TensorShapeProto.Dim(size=size) for size in table.shape])
    tensor = tensor_pb2.TensorProto(dtype=types_pb2.DT_DOUBLE, tensor_shape=shape,
                                    tensor_content=table.tobytes())
    metadata = histogram_metadata.create_summary_metadata(display_name=tag, description="")
    return summary_pb2.Summary.Value(tag=tag, metadata=metadata, tensor=tensor)


def write_records(writer, names, records, bins=None):
    """Write ``gradient_norm/*``, ``update_ratio/*`` and ``loss`` scalars, and with
    ``bins`` (counts of shape ``(num_records, num_variables, num_bins)``) the
    ``gradient/<name>`` histograms over ``[-max |g|, max |g|]``, at each record's step."""
    with writer.as_default():
        for index, step in enumerate(records["steps"]):
            values = [summary_pb2.Summary.Value(tag="gradient_norm/global",
                                                simple_value=records["global_norm"][index])]
            if np.isfinite(records["loss"][index]):
                values.append(summary_pb2.Summary.Value(tag="loss",
                                                        simple_value=records["loss"][index]))
            for column, name in enumerate(names):
                values.append(summary_pb2.Summary.Value(
                    tag=f"gradient_norm/{name}", simple_value=records["gradient"][index, column]))
                values.append(summary_pb2.Summary.Value(
                    tag=f"update_ratio/{name}", simple_value=records["ratio"][index, column]))
                if bins is not None:
                    half_width = records["max_abs"][index, column]
                    half_width = half_width if np.isfinite(half_width) and half_width > 0 else 1.0
                    values.append(_histogram_value(f"gradient/{name}", half_width,
                                                   bins[index, column]))
            summary = summary_pb2.Summary(value=values)
            tf.summary.experimental.write_raw_pb(summary.SerializeToString(), step=int(step))
    writer.flush()
