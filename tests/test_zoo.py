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
    arguments = case.build()  # (model, x, y), or (monitor,) for a recorded run
    diagnosis = vgrad.diagnose(*arguments)
    model = getattr(arguments[0], "model", arguments[0])  # a monitor's model
    assert diagnosis.verdict == case.expected, str(diagnosis)
    assert absent_advice(case, diagnosis, model) == []
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
    import keras

    he_model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(
        4, activation="relu", kernel_initializer="he_normal"), keras.layers.Dense(2)])
    he_model.layers[-1].kernel_initializer = keras.initializers.HeUniform()
    init_advice = SimpleNamespace(advice=(ADVICE["smaller_init"], ADVICE["he"]))
    assert len(absent_advice(relu_with_norm, init_advice, he_model)) == 2
