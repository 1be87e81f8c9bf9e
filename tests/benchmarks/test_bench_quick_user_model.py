"""The pure part of `benchmarks/bench_quick_user_model.py`: an audit.json's timings and
estimate turned into the table, on numbers worked out by hand."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))
import bench_quick_user_model as bq  # noqa: E402

AUDIT = {
    "timings": {"estimate": 10.0, "explain": 80.0, "shortcut": 120.0, "total": 210.0},
    "estimate": {
        "stages": [
            {"stage": "explain", "seconds": 160.0, "work": ""},
            {"stage": "shortcut", "seconds": 100.0, "work": ""},
        ],
        "forward_seconds": 0.1,
        "scoring_seconds": 0.07,
        "plan": {"cuts": ["sanity check not run"]},
    },
    "shortcut": {"summary": "not applicable"},
}


def test_the_stages_sum_without_the_total_and_sit_beside_their_estimates():
    r = bq.summarise(AUDIT, wall=301.0, peak_gb=2.5)
    assert r["stage_seconds"] == 210.0 and r["estimated_seconds"] == 260.0
    assert not r["within_limit"], "301 s is over the 5 minutes"
    assert r["forward_copy_ms"] == 70.0
    text = bq.table(r)
    assert "| explain | 80.0 | 160 | 0.50 |" in text
    assert "| shortcut | 120.0 | 100 | 1.20 |" in text
    assert "| estimate | 10.0 | – | – |" in text  # a stage the estimate does not price
    assert "over 300 s" in text and "sanity check not run" in text
