"""SummaryWriter: the event files written from byte templates equal, byte for byte,
those written with one proto per value, and TensorBoard reads them back."""

import glob
import types

import numpy as np
import pytest
from google.protobuf.internal.encoder import _VarintBytes

from vgrad import _summaries
from vgrad._summaries import SummaryWriter

WALL_TIME = 1_700_000_000.125


class ProtoWriter(SummaryWriter):
    """The reference: every record's ``Summary`` built as protos, one ``Value`` each."""

    use_templates = False


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch):
    """One wall time for both writers, so that their files can be compared as bytes."""
    monkeypatch.setattr(_summaries, "time", types.SimpleNamespace(time=lambda: WALL_TIME))


def random_records(rng, num_records, names, first_step=0, num_bins=None):
    """Records as ``decode_rows`` returns them, with inf/nan norms and ratios, values
    beyond float32, a nan and an inf loss; and ``(num_records, num_variables, num_bins)``
    counts with ``num_bins``."""
    shape = (num_records, len(names))
    gradient = rng.lognormal(0.0, 3.0, shape)
    ratio = rng.lognormal(-7.0, 2.0, shape)
    loss = rng.uniform(0.0, 3.0, num_records)
    global_norm = np.sqrt(np.sum(np.square(gradient), axis=1))
    if num_records > 3 and len(names) > 1:
        gradient[1, 0], gradient[2, 1], gradient[3, 0] = np.inf, np.nan, 1e300
        ratio[0, :], ratio[1, 1], ratio[2, 0] = np.inf, -np.nan, 1e-50
        global_norm[1], global_norm[2] = np.inf, -np.nan  # nan of either sign
        loss[1], loss[3] = np.nan, np.inf
    records = {
        "steps": np.arange(first_step, first_step + num_records, dtype=np.int64) * 97,
        "loss": loss, "global_norm": global_norm, "gradient": gradient, "ratio": ratio,
        "weight": rng.lognormal(0.0, 1.0, shape),
        "clipped": np.zeros(num_records, bool), "nonfinite": ~np.isfinite(global_norm),
    }
    if num_bins is None:
        return records, None
    max_abs = rng.lognormal(-2.0, 2.0, shape)
    if num_records > 3 and len(names) > 1:
        max_abs[0, 0], max_abs[1, 1], max_abs[2, 0] = 0.0, np.inf, np.nan
    records["max_abs"] = max_abs
    return records, rng.integers(0, 1000, (*shape, num_bins)).astype(np.int32)


def write_both(tmp_path, calls):
    """Write ``calls`` (``(names, records, bins)``) with both writers; their file bytes."""
    contents = []
    for writer_type in (ProtoWriter, SummaryWriter):
        log_dir = tmp_path / writer_type.__name__
        writer = writer_type(str(log_dir))
        for names, records, bins in calls:
            writer.write(names, records, bins)
        writer.flush()
        (path,) = glob.glob(str(log_dir / "events.out.tfevents.*"))
        contents.append((path, open(path, "rb").read()))
    return contents


def read_events(path):
    """The ``Event`` protos of the file as written (without TensorBoard's migration of
    ``simple_value`` to tensors)."""
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    return list(LegacyEventFileLoader(path).Load())


NAMES = ["dense/kernel", "dense/bias", "a_much_longer_name/" + "x" * 140, "dense_1/kernel"]


@pytest.mark.parametrize("num_bins", [None, 30, 1])
def test_templates_write_the_same_events_as_protos(rng, tmp_path, num_bins):
    calls = [random_records(rng, 22, NAMES, 0, num_bins), random_records(rng, 1, NAMES, 22, num_bins),
             random_records(rng, 7, NAMES, 23, num_bins)]
    # A model change: new names (new histogram tags) while the writer stays open.
    other = ["other/kernel", "dense/bias"]
    calls.append(random_records(rng, 5, other, 30, num_bins))
    calls = [(names, *call) for names, call in zip([NAMES] * 3 + [other], calls)]
    (reference_path, reference), (path, written) = write_both(tmp_path, calls)
    assert written == reference
    reference_events, events = read_events(reference_path), read_events(path)
    # Re-serialized because nan != nan in a field-by-field comparison.
    assert [e.SerializeToString() for e in events] == [
        e.SerializeToString() for e in reference_events]
    assert len(events) == 1 + 22 + 1 + 7 + 5  # file version, then one event per record
    first = events[1]
    assert first.wall_time == WALL_TIME and first.step == 0
    tags = [value.tag for value in first.summary.value]
    assert tags[:4] == ["gradient_norm/global", "loss", "gradient_norm/dense/kernel",
                        "update_ratio/dense/kernel"]
    assert "loss" not in [value.tag for value in events[2].summary.value]  # nan loss left out
    assert "loss" not in [value.tag for value in events[4].summary.value]  # inf loss left out
    assert np.isinf(events[2].summary.value[0].simple_value)
    assert np.isnan(events[3].summary.value[0].simple_value)
    if num_bins is not None:
        with_metadata = [(event.step, value.tag) for event in events for value in
                         event.summary.value if value.HasField("metadata")]
        assert with_metadata == [(0, f"gradient/{name}") for name in NAMES] + [
            (30 * 97, "gradient/other/kernel")]
        # max |g| inf at record 1 (dense/bias), nan at record 2 (dense/kernel), a nan
        # norm at record 2 (dense/bias): no bins there
        histograms = [[value.tag for value in event.summary.value
                       if value.tag.startswith("gradient/")] for event in events[1:4]]
        assert histograms[0] == [f"gradient/{name}" for name in NAMES]
        assert histograms[1] == [f"gradient/{name}" for name in NAMES if name != "dense/bias"]
        assert histograms[2] == [f"gradient/{name}" for name in NAMES[2:]]


def test_templates_write_records_without_variables_or_finite_losses(rng, tmp_path):
    records, _ = random_records(rng, 4, [])
    records["loss"][:] = [np.nan, 1.0, np.inf, -np.inf]
    (_, reference), (path, written) = write_both(tmp_path, [([], records, None)])
    assert written == reference
    assert [len(event.summary.value) for event in read_events(path)[1:]] == [1, 2, 1, 1]


def test_tensorboard_reads_the_scalars_and_the_histogram_tensors(rng, tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    from tensorboard.util import tensor_util

    names = ["dense/kernel", "dense/bias"]
    records, bins = random_records(rng, 6, names, num_bins=30)
    writer = SummaryWriter(str(tmp_path))
    writer.write(names, records, bins)
    writer.flush()
    events = EventAccumulator(str(tmp_path), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    steps = records["steps"].tolist()
    for column, name in enumerate(names):
        read = events.Scalars(f"gradient_norm/{name}")
        assert [event.step for event in read] == steps
        with np.errstate(over="ignore"):  # 1e300 is inf in float32, as written
            expected = records["gradient"][:, column].astype(np.float32)
        np.testing.assert_array_equal([event.value for event in read], expected)
        histograms = events.Tensors(f"gradient/{name}")
        # a gradient with inf (max |g| not finite) or nan (a nan norm) has no histogram
        binned = np.flatnonzero(np.isfinite(records["max_abs"][:, column])
                                & ~np.isnan(records["gradient"][:, column]))
        assert len(binned) < len(steps)  # the records hold such a gradient in each column
        assert [event.step for event in histograms] == [steps[i] for i in binned]
        assert events.SummaryMetadata(f"gradient/{name}").plugin_data.plugin_name == "histograms"
        for index, event in zip(binned, histograms):
            table = tensor_util.make_ndarray(event.tensor_proto)
            assert table.shape == (30, 3)
            np.testing.assert_array_equal(table[:, 2], bins[index, column])
            half_width = records["max_abs"][index, column]
            if half_width > 0:
                np.testing.assert_allclose(table[[0, -1], [0, 1]], [-half_width, half_width])
            else:  # all zero: the unit interval
                np.testing.assert_allclose(table[[0, -1], [0, 1]], [-1.0, 1.0])
    losses = events.Scalars("loss")
    finite = np.isfinite(records["loss"])
    assert [event.step for event in losses] == [s for s, f in zip(steps, finite) if f]


@pytest.mark.parametrize("number", [0, 1, 127, 128, 300, 16383, 16384, 2**35 + 5])
def test_varint_matches_protobuf(number):
    assert _summaries._varint(number) == _VarintBytes(number)
