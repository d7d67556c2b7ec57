import math

import pytest

from vgrad.tables import LayerDict, finite_median, format_number, format_table


def test_first_column_left_numbers_right_text_left():
    text = format_table(
        [("dense_1", 0.5, "tanh"), ("dense_10", -12.25, "relu"), ("logits", None, "linear")],
        ["layer", "ratio", "activation"], spec=".2f",
    )
    assert text.splitlines() == [
        "layer      ratio  activation",
        "dense_1     0.50  tanh",
        "dense_10  -12.25  relu",
        "logits       n/a  linear",
    ]


def test_specs_per_column_and_non_finite_numbers():
    text = format_table([("a", math.inf, 1), ("b", math.nan, 22)], spec=[".3e", ".1e", "d"])
    assert text.splitlines() == ["a  inf   1", "b  nan  22"]


def test_explicit_alignment_and_empty_table():
    assert format_table([("x", "1"), ("yy", "22")], align="<>").splitlines() == ["x    1", "yy  22"]
    assert format_table([]) == ""
    assert format_table([], ["layer", "norm"]) == "layer  norm"


@pytest.mark.parametrize(
    "kwargs, match",
    [({"rows": [("a", 1.0), ("b",)]}, "2 columns"),
     ({"rows": [("a", 1.0)], "headers": ["only"]}, "1 columns"),
     ({"rows": [("a", 1.0)], "spec": [".2f"]}, "specs"),
     ({"rows": [("a", 1.0)], "align": "<^"}, "align")],
)
def test_malformed_tables_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        format_table(**kwargs)


def test_layer_dict_prints_one_aligned_line_per_layer():
    text = repr(LayerDict({"dense_1": 2.5e-7, "dense_10": math.inf, "dense_2": -1.0}))
    assert text.splitlines() == [
        "dense_1    2.500e-07",
        "dense_10         inf",
        "dense_2   -1.000e+00",
    ]
    assert repr(LayerDict()) == "LayerDict({})" and str(LayerDict(a=1.0)) == "a  1.000e+00"


def test_number_and_median_helpers():
    assert format_number(None) == "n/a" and format_number(-math.inf) == "-inf"
    assert format_number(0.123456, ".2f") == "0.12"
    assert finite_median([3.0, math.nan, 1.0, math.inf, 2.0]) == 2.0
    assert finite_median([1.0, 4.0]) == 2.5 and math.isnan(finite_median([math.nan]))
