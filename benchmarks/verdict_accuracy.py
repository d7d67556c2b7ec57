"""Scoreboard of vgrad.diagnose on the zoo (tests/zoo.py): verdict confusion matrix
(expected x got) and the count of advice naming something absent from the model.

Run: python benchmarks/verdict_accuracy.py   (about a minute on 2 CPU cores)
"""

import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))

import vgrad  # noqa: E402
from vgrad.policy import VERDICTS  # noqa: E402
from zoo import CASES, absent_advice  # noqa: E402

ABBREVIATIONS = {"healthy": "heal", "vanishing": "van", "exploding": "expl", "inconclusive": "inc",
                 "dead units": "dead", "zero layer": "zero", "not learning": "nolrn",
                 "large updates": "large", "error": "err"}


def main():
    results, start = [], time.perf_counter()
    for case in CASES:
        try:
            arguments = case.build()  # (model, x, y), or (monitor,) for a recorded run
            diagnosis = vgrad.diagnose(*arguments)
            model = getattr(arguments[0], "model", arguments[0])  # a monitor's model
            got, wrong = diagnosis.verdict, absent_advice(case, diagnosis, model)
        except Exception as error:  # a crash is a wrong verdict on the scoreboard
            got, wrong = "error", [f"{type(error).__name__}: {error}"]
        results.append((case, got, wrong))
        mark = "ok" if got == case.expected else "WRONG"
        print(f"{mark:5}  {case.name:38} expected {case.expected:13} got {got}")
        for text in wrong:
            print(f"       advice naming something absent: {text[:70]}")
    labels = [v for v in VERDICTS if any(v in (c.expected, g) for c, g, _ in results)]
    labels += ["error"] if any(g == "error" for _, g, _ in results) else []
    print(f"\nconfusion matrix ({len(results)} models; rows: expected, columns: got)")
    print(f"{'':14}" + "".join(f"{ABBREVIATIONS[v]:>6}" for v in labels))
    for expected in labels:
        counts = [sum(1 for c, g, _ in results if c.expected == expected and g == got)
                  for got in labels]
        if any(counts) or expected != "error":
            print(f"{expected:14}" + "".join(f"{n or '.':>6}" for n in counts))
    print("(" + ", ".join(f"{ABBREVIATIONS[v]} = {v}" for v in labels) + ")")
    right = sum(1 for c, g, _ in results if c.expected == g)
    absent = sum(len(w) for c, g, w in results if g != "error")
    print(f"\nverdicts right: {right} of {len(results)}")
    print(f"advice naming something absent from the model: {absent}")
    print(f"({time.perf_counter() - start:.0f} s)")
    return 0 if right == len(results) and absent == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
