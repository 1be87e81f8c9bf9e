"""Known answers for the source ↔ label confound: bias-corrected Cramér's V (Bergsma 2013)
and Cohen's cuts by degrees of freedom."""

import math

import numpy as np
import pytest

from medxai.statistics.confound import cohen_level, cramers_v, cramers_v_cut, source_confound


def test_independent_sources_have_no_corrected_association_at_small_n():
    """4 sources × 2 labels, n = 20, each source 3:2 or 2:3: chi2 = 8 × 0.5² / 2.5 = 0.8, so
    raw V = sqrt(0.8 / 20) = 0.2; the expected phi² under independence, 3/19, exceeds 0.04."""
    table = np.array([[3, 2], [2, 3], [3, 2], [2, 3]])
    corrected, raw, df = cramers_v(table)
    assert raw == pytest.approx(0.2)
    assert (corrected, df) == (0.0, 1)


def test_a_perfectly_confounded_two_by_two_table_has_v_one():
    for table in ([[7, 0], [0, 7]], [[3, 0], [0, 9]]):
        corrected, raw, _ = cramers_v(np.array(table))
        assert corrected == pytest.approx(1.0) and raw == pytest.approx(1.0)


def test_a_three_by_three_table_gives_the_hand_computed_value():
    """n = 60, every margin 20, expected 20/3 a cell: chi2 = 3 × 5/3 + 6 × 5/12 = 7.5, phi² =
    1/8, corrected phi² = 1/8 − 4/59, r_corr − 1 = k_corr − 1 = 2 − 4/59."""
    table = np.array([[10, 5, 5], [5, 10, 5], [5, 5, 10]])
    corrected, raw, df = cramers_v(table)
    assert raw == pytest.approx(math.sqrt(1 / 16))
    assert corrected == pytest.approx(math.sqrt((1 / 8 - 4 / 59) / (2 - 4 / 59)))
    assert df == 2


def test_a_single_source_or_label_has_no_association():
    assert cramers_v(np.array([[4, 6]])) == (0.0, 0.0, 0)
    assert cramers_v(np.array([[4, 0], [6, 0]])) == (0.0, 0.0, 0)


def test_the_large_cut_shrinks_with_the_degrees_of_freedom():
    assert cramers_v_cut(1) == 0.5  # any table with 2 columns (or 2 rows)
    assert cramers_v_cut(3) == pytest.approx(0.5 / math.sqrt(3))  # 4 × 4
    assert cramers_v_cut(3, "small") == pytest.approx(0.1 / math.sqrt(3))
    assert cramers_v_cut(0) == math.inf


@pytest.mark.parametrize(
    ("v", "df", "level"),
    [(0.05, 1, "negligible"), (0.1, 1, "small"), (0.35, 1, "medium"), (0.5, 1, "large"),
     (0.3, 3, "large"), (0.2, 3, "medium"), (0.9, 0, "negligible")],
)  # fmt: skip
def test_cohen_level_by_degrees_of_freedom(v, df, level):
    assert cohen_level(v, df) == level


def test_source_confound_records_level_and_strength():
    confounded = {"a": {"covid": 9, "normal": 0}, "b": {"covid": 0, "normal": 11}}
    c = source_confound(confounded)
    assert (c.cramers_v, c.level, c.df, c.strong) == (pytest.approx(1.0), "large", 1, True)
    assert c.large_cut == 0.5
    independent = {s: {"covid": 3 - i % 2, "normal": 2 + i % 2} for i, s in enumerate("abcd")}
    c = source_confound(independent)
    assert (c.cramers_v, c.cramers_v_raw, c.level, c.strong) == (
        0.0, pytest.approx(0.2), "negligible", False,
    )  # fmt: skip


def test_a_large_v_without_beating_the_majority_label_is_not_strong():
    """Every source's majority is the overall majority: reading the source gains nothing."""
    c = source_confound({"a": {"x": 40, "y": 0}, "b": {"x": 10, "y": 9}})
    assert c.level == "large" and c.source_accuracy == c.majority_accuracy and not c.strong


def test_an_empty_split_is_negligible():
    c = source_confound({"-": {"x": 0, "y": 0}})
    assert (c.n, c.cramers_v, c.level, c.strong) == (0, 0.0, "negligible", False)
