"""The statistics behind ``benchmarks/monitor_overhead.py``'s verdicts."""

import importlib.util
import pathlib

import pytest
from scipy import stats

PATH = pathlib.Path(__file__).resolve().parents[1] / "benchmarks" / "monitor_overhead.py"


@pytest.fixture(scope="module")
def overhead():
    spec = importlib.util.spec_from_file_location("monitor_overhead", PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("n", [6, 10, 16, 20, 41])
def test_median_interval_is_the_tightest_with_95_percent_coverage(overhead, n):
    values = [float(v) for v in range(100, 100 + n)][::-1]  # any order
    low, high = overhead.median_interval(values)
    k = int(low) - 99  # rank of the lower bound, 1-based
    assert high == 100 + n - k  # symmetric ranks k and n - k + 1
    coverage = 1 - 2 * stats.binom.cdf(k - 1, n, 0.5)
    tighter = 1 - 2 * stats.binom.cdf(k, n, 0.5)
    assert coverage >= 0.95 > tighter


def test_median_interval_of_a_tiny_sample_is_its_range(overhead):
    assert overhead.median_interval([3.0, 1.0, 2.0]) == (1.0, 3.0)


def test_verdict_needs_the_whole_interval_on_one_side(overhead):
    assert overhead.verdict((0.98, 1.05), 1.05) == "yes"
    assert overhead.verdict((1.051, 1.2), 1.05) == "NO"
    assert overhead.verdict((1.01, 1.08), 1.05) == "noise"
