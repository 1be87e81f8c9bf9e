"""The verdict rule on the rows the dose-response benchmark recorded."""


def test_the_rule_on_the_recorded_dose_response_rows():
    """The verdicts `benchmarks/bench_dose_response.py` recorded follow from their figures by
    the thresholds (region tests jointly at the lower level, the higher of that and the
    transplant's), and the calibration holds on the default-size grid: none at strength 0,
    never down as the strength grows (per seed), strong at strength 1 for the default
    settings (seed 0). Both tables say none at 0 and find reliance at 1. The quick table's
    weak models are not held to monotonicity (recorded: seed 1 is strong at 0.5 on a follow
    excess whose CI starts at +0.04, moderate at 0.75)."""
    import json
    from pathlib import Path

    from medxai.metrics.shortcut import RelianceThresholds

    order = ["none", "weak", "moderate", "strong"]
    thresholds = RelianceThresholds()
    results = Path(__file__).parents[2] / "benchmarks" / "results"
    tables = {name: json.loads((results / f"{name}.json").read_text())
              for name in ("dose_response", "dose_response_quick")}  # fmt: skip
    for name, rows in tables.items():
        for row in rows:
            flip = thresholds.level_of(row["flip_excess"], row["flip_ci"], 0)
            gain = thresholds.level_of(row["insertion_gain"], row["gain_ci"], 1)
            follow = "none"
            if row["follow_excess"] is not None:
                follow = thresholds.level_of(row["follow_excess"], row["follow_ci"], 2)
            joint = min(flip, gain, key=order.index)
            assert row["verdict"] == max(joint, follow, key=order.index), (name, row)
        assert all(r["verdict"] == "none" for r in rows if r["strength"] == 0), name
        assert all(r["verdict"] != "none" for r in rows if r["strength"] == 1), name
    grid = tables["dose_response"]
    assert {r["strength"] for r in grid} == {0, 0.25, 0.5, 0.75, 1}
    for seed in {row["seed"] for row in grid}:
        levels = [order.index(r["verdict"]) for r in sorted(grid, key=lambda r: r["strength"])
                  if r["seed"] == seed]  # fmt: skip
        assert levels == sorted(levels), seed
    assert [r["verdict"] for r in grid if r["strength"] == 1 and r["seed"] == 0] == ["strong"]
