"""The zoo: every model built the way users write them gets the right verdict, and no
advice names something the model lacks (or proposes adding what it has)."""

import pytest

import vgrad
from zoo import CASES, Case, absent_advice
from vgrad.findings import WIDTH
from vgrad.policy import VERDICTS

REQUIRED_FAMILIES = {
    "sequential input_dim", "functional CNN", "residual", "transformer", "recurrent",
    "subclassed", "custom train_step", "regression", "binary", "saved .keras", "saved .h5",
}


def test_zoo_covers_every_family_healthy_and_broken():
    families = {}
    for case in CASES:
        assert case.expected in VERDICTS, case.name
        families.setdefault(case.family, set()).add(case.expected)
    assert REQUIRED_FAMILIES <= set(families)
    for family, verdicts in families.items():
        assert len(verdicts) >= 2, f"{family} has no broken (or no healthy) case: {verdicts}"
    assert len({case.name for case in CASES}) == len(CASES) >= 24


@pytest.mark.parametrize("case", CASES, ids=[case.name for case in CASES])
def test_verdict_is_right_and_advice_names_only_what_is_there(case):
    diagnosis = vgrad.diagnose(*case.build())
    assert diagnosis.verdict == case.expected, str(diagnosis)
    assert absent_advice(case, diagnosis) == []
    assert diagnosis.advice or diagnosis.verdict == "inconclusive"
    text = str(diagnosis)
    assert max(len(line) for line in text.splitlines()) <= WIDTH, text


def test_the_advice_check_can_fail():
    from types import SimpleNamespace

    from vgrad.policy import ADVICE

    relu_with_norm = Case("relu net", "x", "healthy", frozenset({"relu", "layer_norm", "residual"}),
                          None)
    wrong = SimpleNamespace(advice=(ADVICE["relu"].format(activations="sigmoid/tanh"),
                                    ADVICE["batch_norm"], ADVICE["residual"], ADVICE["lstm"]))
    assert len(absent_advice(relu_with_norm, wrong)) == 4
    assert absent_advice(relu_with_norm, SimpleNamespace(advice=(ADVICE["leaky"],))) == []
