"""The verdict table and its banner: a row per cue, the border row taking the higher of its
region tests and its frame transplant, and the headline naming every cue that reaches a
level (never a clean bill when one does)."""

import numpy as np

from medxai.metrics.shortcut import RelianceThresholds, text_reliance, transplant_follow
from medxai.report.record import KindResult, StyleTransplant, VerdictRow
from medxai.report.verdict import headline
from pipelines.audit.shortcut import kind_row, style_row

N = 60
T = RelianceThresholds()


def border(flips: float) -> KindResult:
    """A border kind whose removal flips a share `flips` of decisions (its control none)."""
    flipped = np.arange(N) < flips * N
    kept = flipped.astype(float)
    reliance = text_reliance(flipped, np.zeros(N), kept, np.zeros(N), kept, T, 200)
    return KindResult("border", "the film's border", {}, reliance, {}, [])


def frame(follows: float) -> StyleTransplant:
    moved = np.arange(N) < follows * N
    return StyleTransplant(
        "frame", "frame", transplant_follow(moved, np.zeros(N), moved * 0.5, 200), ""
    )


def test_the_border_row_takes_the_higher_of_its_two_tests():
    by_regions = kind_row(border(0.5), frame(0.0), T)
    assert by_regions.level == "strong" and by_regions.figure == "flip excess"
    by_transplant = kind_row(border(0.0), frame(0.5), T)
    assert by_transplant.level == "strong" and "transplant" in by_transplant.figure
    assert by_transplant.kind == "border" and "removing" in by_transplant.reason
    assert kind_row(border(0.0), frame(0.0), T).level == "none"


def test_a_style_transplant_without_donors_is_not_measured():
    row = style_row(StyleTransplant("tone", "the film's tone curve", None, "no donors"), T)
    assert row.level == "not measured" and row.value is None and row.reason == "no donors"


def row(kind: str, level: str) -> VerdictRow:
    return VerdictRow(kind, {"source": "something tied to the source"}.get(kind, kind), level,
                      "", None, None, "")  # fmt: skip


def test_the_headline_names_every_cue_that_reaches_a_level_source_last():
    rows = [row("source", "strong"), row("text", "none"), row("border", "strong"),
            row("tone", "weak")]  # fmt: skip
    assert headline(rows, "strong", False) == (
        "Relies on border — strong; something tied to the source — strong; tone — weak"
    )


def test_no_clean_bill_unless_cleared():
    rows = [row("source", "not measured"), row("text", "none"), row("border", "none")]
    assert "not ruled out" in headline(rows, "none", cleared=False)
    assert headline(rows, "none", cleared=True) == (
        "No evidence of reliance on text, border or the source"
    )
    assert headline(rows, "not applicable", True).startswith("Not applicable")
