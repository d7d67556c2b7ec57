"""Cost of writing monitor records to TensorBoard files: one proto per value against
byte templates filled by numpy (:class:`vgrad._summaries.SummaryWriter`).

The shape is that of the 20x64 MLP in ``monitor_overhead.py`` with histograms: 40
trainable variables, 30 bins, 22 records per write (one epoch of 22 steps), 8 writes
per timed "fit". Both writers write the same records to their own event file; the
fits alternate A/B, then B/A, so that drifts in machine load cancel, and the script
prints the medians and the median of the paired ratios. Tags already carry their
histogram metadata (after an untimed first write), as in every epoch but the first.
A third arm writes the same serialized events with ``tf.io.TFRecordWriter`` alone:
the cost of the file itself, which both writers pay (a load on the disk shows there).

Run from the repository root (a few seconds after the TensorFlow import)::

    python benchmarks/summary_writing.py
    python benchmarks/summary_writing.py --repeats 50
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from vgrad._summaries import SummaryWriter  # noqa: E402

NUM_LAYERS, NUM_BINS, RECORDS_PER_WRITE, WRITES_PER_FIT = 20, 30, 22, 8


class ProtoWriter(SummaryWriter):
    """The former writer: a ``Summary.Value`` proto for every number."""

    use_templates = False


def layer_names():
    """Variable paths of a 20-layer Keras MLP, a kernel and a bias per layer."""
    return [f"sequential/dense_{layer}/{kind}" for layer in range(NUM_LAYERS)
            for kind in ("kernel", "bias")]


def epoch_records(rng, names, first_step):
    """``(records, bins)`` of one epoch, as ``decode_rows`` and the hook return them."""
    shape = (RECORDS_PER_WRITE, len(names))
    gradient = rng.lognormal(-3.0, 1.0, shape)
    ratio = rng.lognormal(-7.0, 1.0, shape)
    if first_step == 0:
        ratio[0, 1::2] = np.inf  # zero-initialized biases: update / 0
    records = {
        "steps": np.arange(first_step, first_step + RECORDS_PER_WRITE, dtype=np.int64),
        "loss": rng.uniform(0.1, 2.5, RECORDS_PER_WRITE),
        "global_norm": np.sqrt(np.sum(np.square(gradient), axis=1)),
        "gradient": gradient, "ratio": ratio, "max_abs": rng.lognormal(-4.0, 1.0, shape),
    }
    bins = rng.integers(0, 500, (*shape, NUM_BINS)).astype(np.int32)
    return records, bins


class Events(list):
    """Stands in for a ``TFRecordWriter``: keeps the serialized events."""

    write = list.append

    def flush(self):
        pass


def serialized_events(names, fit):
    """The serialized events of ``fit`` as :class:`SummaryWriter` writes them."""
    with tempfile.TemporaryDirectory() as log_dir:
        writer = SummaryWriter(log_dir)
        timed_fit(writer, names, fit[:1])
        writer._writer = Events()
        timed_fit(writer, names, fit)
        return writer._writer


def timed_file(writer, events):
    """Seconds to write ``events`` with ``writer``, a ``TFRecordWriter``."""
    start = time.perf_counter()
    for event in events:
        writer.write(event)
    writer.flush()
    return time.perf_counter() - start


def timed_fit(writer, names, fit):
    """Seconds to write one fit's epochs with ``writer``."""
    start = time.perf_counter()
    for records, bins in fit:
        writer.write(names, records, bins)
    writer.flush()
    return time.perf_counter() - start


def main(repeats):
    rng = np.random.default_rng(0)
    names = layer_names()
    fit = [epoch_records(rng, names, epoch * RECORDS_PER_WRITE) for epoch in range(WRITES_PER_FIT)]
    events = serialized_events(names, fit)
    with tempfile.TemporaryDirectory() as log_dir:
        writers = {"protos": ProtoWriter(os.path.join(log_dir, "protos")),
                   "templates": SummaryWriter(os.path.join(log_dir, "templates"))}
        for writer in writers.values():  # open the files, write the histogram metadata
            timed_fit(writer, names, fit[:1])
        file_writer = tf.io.TFRecordWriter(os.path.join(log_dir, "file_only"))
        times = {label: [] for label in (*writers, "file only")}
        for repeat in range(repeats):
            order = list(writers) if repeat % 2 == 0 else list(writers)[::-1]
            for label in order:
                times[label].append(timed_fit(writers[label], names, fit))
            times["file only"].append(timed_file(file_writer, events))
    ratios = [old / new for old, new in zip(times["protos"], times["templates"])]
    values = len(names) * 3 + 2
    print(f"{len(names)} variables, {NUM_BINS} bins, {values} values per record, "
          f"{WRITES_PER_FIT} writes of {RECORDS_PER_WRITE} records per fit, {repeats} repeats")
    for label, seconds in times.items():
        print(f"  {label:10s}  median {1e3 * statistics.median(seconds):7.2f} ms per fit  "
              f"(min {1e3 * min(seconds):.2f})")
    print(f"  speed-up (protos / templates, median of paired ratios): "
          f"{statistics.median(ratios):.1f}x")
    medians = {label: statistics.median(seconds) for label, seconds in times.items()}
    beyond_file = {label: medians[label] - medians["file only"] for label in writers}
    print(f"  speed-up beyond the file (medians, file only subtracted): "
          f"{beyond_file['protos'] / beyond_file['templates']:.1f}x")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="A/B pairs (default 20)")
    main(parser.parse_args().repeats)
