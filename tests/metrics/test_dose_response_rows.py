"""The verdict rule on the rows the dose-response benchmark recorded."""


def test_the_rule_on_the_recorded_dose_response_rows():
    """The verdicts `benchmarks/bench_dose_response.py` recorded follow from their figures by
    the thresholds (region tests jointly at the lower level, the higher of that and the
    transplant's), and the calibration holds: none at strength 0, never down as the
    strength grows (per seed), strong at strength 1 for the default settings."""
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
        for seed in {row["seed"] for row in rows}:
            levels = [order.index(r["verdict"]) for r in sorted(rows, key=lambda r: r["strength"])
                      if r["seed"] == seed]  # fmt: skip
            assert levels == sorted(levels), (name, seed)
        assert all(r["verdict"] == "none" for r in rows if r["strength"] == 0), name
    assert all(r["verdict"] == "strong" for r in tables["dose_response"] if r["strength"] == 1)
