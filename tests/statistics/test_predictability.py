"""Label predictability of one trait: known answers on tables of numbers and categories."""

from __future__ import annotations

import json

import numpy as np
import pytest

from medxai import codec
from medxai.statistics.predictability import (
    PredictabilitySettings,
    TraitReport,
    trait_predictability,
)

FAST = PredictabilitySettings(n_bootstrap=300)


def two_classes(n=100, seed=0):
    rng = np.random.default_rng(seed)
    labels = ["covid"] * n + ["normal"] * n
    return rng, labels


def test_a_trait_that_determines_the_label_scores_one_minus_chance():
    rng, labels = two_classes()
    table = {
        "film_mean": [0.3 + 0.01 * rng.random() if y == "covid" else 0.5 for y in labels],
        "noise": list(rng.random(len(labels))),
        "format": ["jpeg" if y == "covid" else "png" for y in labels],
        "bit_depth": [8] * len(labels),
        "text_area": [None] * len(labels),  # not measured: no row
    }
    report = trait_predictability(table, labels, classes=["normal", "covid"], settings=FAST)
    assert [r.trait for r in report.rows] == ["film_mean", "noise", "format", "bit_depth"]
    assert sorted(report.flagged) == ["film_mean", "format"]
    mean = report.row("film_mean")
    assert (mean.balanced_accuracy, mean.chance, mean.score, mean.ci) == (1.0, 0.5, 0.5, (0.5, 0.5))
    assert mean.kind == "numeric" and mean.class_medians["normal"] == 0.5
    fmt = report.row("format")
    assert fmt.kind == "categorical" and fmt.class_modes == {"normal": "png", "covid": "jpeg"}
    assert fmt.score == 0.5 and fmt.class_medians == {}
    depth = report.row("bit_depth")
    assert depth.score == 0.0 and depth.ci == (0.0, 0.0) and not depth.flagged
    noise = report.row("noise")
    assert abs(noise.score) < 0.1 and noise.ci[0] < 0.05 and not noise.flagged
    assert report.classes == ["normal", "covid"] and report.n == 200
    assert noise.within_source is None and noise.within_source_ci is None


def test_a_useless_trait_is_not_flagged_whatever_the_class_balance():
    rng = np.random.default_rng(1)
    labels = ["normal"] * 450 + ["covid"] * 50  # a tree after accuracy would say "normal"
    table = {"noise": list(rng.random(500)), "size": list(rng.integers(0, 5, 500))}
    report = trait_predictability(table, labels, settings=FAST)
    assert report.flagged == []
    for row in report.rows:
        assert abs(row.score) < 0.1 and row.ci[0] < row.score < row.ci[1]


def test_a_weak_trait_is_scored_between_and_the_interval_holds_its_score():
    rng, labels = two_classes(n=300)
    x = [rng.normal(1.0 if y == "covid" else 0.0) for y in labels]  # d' = 1: ~69% balanced
    row = trait_predictability({"x": x}, labels, settings=FAST).row("x")
    assert 0.12 < row.score < 0.26 and row.ci[0] < row.score < row.ci[1]
    assert row.ci[1] - row.ci[0] < 0.15 and row.flagged


def test_three_classes_have_chance_one_third_and_categories_with_none():
    labels = ["normal"] * 40 + ["pneumonia"] * 40 + ["COVID-19"] * 40
    syntax = [None] * 40 + ["Explicit VR Little Endian"] * 40 + ["JPEG Baseline (Process 1)"] * 40
    classes = ["normal", "pneumonia", "COVID-19"]
    report = trait_predictability({"transfer_syntax": syntax}, labels, None, classes, FAST)
    row = report.row("transfer_syntax")
    assert row.chance == pytest.approx(1 / 3) and row.score == pytest.approx(2 / 3)
    assert row.class_modes["normal"] == "none"


def test_within_source_tells_a_source_marker_from_a_trait_of_the_label():
    """hospA sends 90% normal, hospB 90% covid. `scanner` tells the hospitals apart, so it
    predicts the label overall and nothing within a hospital; `lesion` follows the label in
    both hospitals."""
    rng = np.random.default_rng(2)
    labels, sources = [], []
    for source, share in (("hospA", 0.1), ("hospB", 0.9)):
        for i in range(200):
            labels.append("covid" if i < share * 200 else "normal")
            sources.append(source)
    sources[-1] = None  # an unknown source: in the overall figure, not within source
    table = {
        "scanner": [0.0 if s == "hospA" else 1.0 for s in sources],
        "lesion": [rng.normal(3.0 if y == "covid" else 0.0) for y in labels],
    }
    report = trait_predictability(table, labels, sources, settings=FAST)
    scanner, lesion = report.row("scanner"), report.row("lesion")
    assert scanner.score == pytest.approx(0.4) and scanner.flagged  # 90% balanced accuracy
    # a constant trait: one class per fold, whichever the balanced weights' rounding picks
    assert abs(scanner.within_source) < 0.02 and scanner.within_source_ci[1] < 0.05
    assert scanner.within_source_n == 399 and scanner.within_source_sources == 2
    # d' = 3: balanced accuracy Φ(1.5) ≈ 0.93 in each hospital, 0.43 over chance
    assert lesion.within_source > 0.38 and lesion.within_source_ci[0] > 0.3 and lesion.flagged


def test_sources_of_one_class_and_rare_classes_are_left_out():
    labels = ["a"] * 20 + ["b"] * 20 + ["c"]
    sources = ["s1"] * 20 + ["s2"] * 20 + ["s1"]  # s1: a (and one c), s2: b
    report = trait_predictability({"x": list(range(41))}, labels, sources, settings=FAST)
    row = report.row("x")
    assert report.left_out == ["c"] and report.n == 40 and row.within_source is None
    one = trait_predictability({"x": [1, 2, 3]}, ["a", "a", "b"], settings=FAST)
    assert one.rows == [] and one.flagged == [] and "fewer than two classes" in one.note
    with pytest.raises(ValueError, match="3 values for 2 films"):
        trait_predictability({"x": [1, 2, 3]}, ["a", "b"])


def test_the_report_is_deterministic_and_round_trips_through_the_codec():
    rng, labels = two_classes(n=60)
    sources = ["h1" if i % 3 else "h2" for i in range(120)]
    table = {
        "x": [rng.normal(0.8 if y == "covid" else 0.0) for y in labels],
        "fmt": ["png" if i % 2 else "jpeg" for i in range(120)],
        "missing": [None if i % 4 == 0 else float(i) for i in range(120)],
    }
    a = trait_predictability(table, labels, sources, settings=FAST)
    b = trait_predictability(table, labels, sources, settings=FAST)
    assert a == b
    text = codec.to_json(a)
    assert "NaN" not in text
    assert codec.decode(TraitReport, json.loads(text)) == a
    reseeded = PredictabilitySettings(n_bootstrap=300, seed=1)
    other = trait_predictability(table, labels, sources, settings=reseeded)
    assert other.row("x").ci != a.row("x").ci
