"""The verdict rule on the rows the dose-response benchmark recorded."""

import json
from pathlib import Path

from medxai.metrics.shortcut import (
    INCONCLUSIVE,
    LEVELS,
    RelianceThresholds,
    highest,
    lowest_of_both,
)

RESULTS = Path(__file__).parents[2] / "benchmarks" / "results"


def verdict_from(row: dict, thresholds: RelianceThresholds) -> str:
    """The text verdict from a row's recorded figures: each level from its lower bound (with
    the evidence minimum), insertion inconclusive when the control alone leaves it no room,
    both region tests needed, the higher of that and the transplant."""
    n = row["n_region"]
    flip = thresholds.level_of(row["flip_excess"], row["flip_ci"], 0, n)
    gain = thresholds.level_of(row["insertion_gain"], row["gain_ci"], 1, n)
    if gain == "none" and 1 - row["control_keeps"] < thresholds.moderate[1]:
        gain = INCONCLUSIVE
    follow = INCONCLUSIVE if row["transplant_needed"] else "none"
    if row["follow_excess"] is not None:
        follow = thresholds.level_of(row["follow_excess"], row["follow_ci"], 2, row["n_follow"])
    return highest([lowest_of_both(flip, gain), follow])


def test_the_rule_on_the_recorded_dose_response_rows():
    """The verdicts `benchmarks/bench_dose_response.py` recorded follow from their figures by
    the thresholds; on the default sizes strength 0 says none and strength 1 strong (both
    seeds); the quick sizes say none at 0 and never more at 0.25 than at 1 per seed."""
    thresholds = RelianceThresholds()
    tables = {name: json.loads((RESULTS / f"{name}.json").read_text())
              for name in ("dose_response", "dose_response_quick")}  # fmt: skip
    for name, rows in tables.items():
        for row in rows:
            assert row["verdict"] == verdict_from(row, thresholds), (name, row)
        assert all(r["verdict"] == "none" for r in rows if r["strength"] == 0), name
    default = tables["dose_response"]
    assert [r["verdict"] for r in default if r["strength"] == 1] == ["strong", "strong"]
    quick = tables["dose_response_quick"]
    assert {r["strength"] for r in quick} == {0, 0.25, 0.5, 0.75, 1}
    rank = {level: k for k, level in enumerate(LEVELS)}
    for seed in {r["seed"] for r in quick}:
        ends = {r["strength"]: rank.get(r["verdict"], 0) for r in quick if r["seed"] == seed}
        assert ends[0] <= ends[0.25] <= ends[1], seed
