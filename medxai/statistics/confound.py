"""How much a split's labels can be read off its sources alone, before any model is trained.

A source (hospital, scanner, dataset) that sends one class only is a confound: a model can
reach high accuracy by recognising the source (its burned-in text, its scanner look). COVIDx
is the textbook case: its COVID-19 films come from sources that send nothing else.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from scipy.stats import chi2_contingency

Level = Literal["negligible", "small", "medium", "large"]
COHEN_W: dict[Level, float] = {"small": 0.1, "medium": 0.3, "large": 0.5}  # Cohen (1988)


@dataclass(frozen=True)
class SourceConfound:
    """Source ↔ label association of one split."""

    n: int
    n_sources: int
    cramers_v: float  # bias-corrected (Bergsma 2013); 0: sources tell nothing, 1: they decide
    cramers_v_raw: float  # uncorrected: above 0 by chance alone in small or many-source splits
    df: int  # Cohen's df* = min(sources, labels) - 1, over non-empty sources and labels
    level: Level  # the largest of Cohen's levels that cramers_v reaches at this df
    source_accuracy: float  # predicting each film's label as its source's majority label
    majority_accuracy: float  # predicting the most common label for every film
    strong: bool  # level "large" and sources beat the majority label

    @property
    def large_cut(self) -> float:
        return cramers_v_cut(self.df)


def cramers_v_cut(df: int, level: Level = "large") -> float:
    """Cohen's w cut as a Cramér's V, w / sqrt(df*): the same w is a smaller V in a wider
    table. No cut is reachable without an association to measure (df* = 0)."""
    return COHEN_W[level] / math.sqrt(df) if df >= 1 else math.inf


def cohen_level(v: float, df: int) -> Level:
    reached = [level for level in COHEN_W if v >= cramers_v_cut(df, level)]
    return reached[-1] if reached else "negligible"


def cramers_v(table: np.ndarray) -> tuple[float, float, int]:
    """Bias-corrected Cramér's V (Bergsma 2013), raw V and df* of a contingency table.

    Raw V of independent sources and labels is above 0 by chance, the more so the fewer the
    films and the more the sources; the correction removes chi2's expectation under
    independence. Empty rows and columns are dropped; a single row or column gives 0."""
    table = np.asarray(table)
    table = table[table.sum(1) > 0][:, table.sum(0) > 0]
    r, k = table.shape
    df = min(r, k) - 1
    if df < 1:
        return 0.0, 0.0, max(df, 0)
    n = float(table.sum())
    phi2 = float(chi2_contingency(table, correction=False).statistic) / n
    raw = min(1.0, math.sqrt(phi2 / df))
    phi2_corr = max(0.0, phi2 - (k - 1) * (r - 1) / (n - 1))
    # r_corr - 1 and k_corr - 1, written so that a perfect square table gives exactly 1
    spread = min((r - 1) - (r - 1) ** 2 / (n - 1), (k - 1) - (k - 1) ** 2 / (n - 1))
    corrected = min(1.0, math.sqrt(phi2_corr / spread)) if spread > 0 else 0.0
    return corrected, raw, df


def source_confound(counts: Mapping[str, Mapping[str, int]]) -> SourceConfound:
    """From images per source and label (`counts[source][label]`); unknown sources ("-")
    count as one source, so a split without sources shows no association."""
    table = np.array([list(per_label.values()) for per_label in counts.values()], dtype=int)
    n = int(table.sum())
    if n == 0:
        return SourceConfound(0, 0, 0.0, 0.0, 0, "negligible", 0.0, 0.0, False)
    source_accuracy = float(table.max(1).sum() / n)
    majority_accuracy = float(table.sum(0).max() / n)
    v, raw, df = cramers_v(table)
    level = cohen_level(v, df)
    strong = level == "large" and source_accuracy > majority_accuracy
    return SourceConfound(
        n, len(counts), v, raw, df, level, source_accuracy, majority_accuracy, strong
    )


def source_classes(
    counts: Mapping[str, Mapping[str, int]], coverage: float = 0.9
) -> dict[str, list[str]]:
    """Each known source's classes: the fewest labels that cover `coverage` of its films.
    Unknown sources ("-") have none."""
    out = {}
    for source, per_label in counts.items():
        total = sum(per_label.values())
        if source == "-" or not total:
            continue
        ranked = sorted(((n, label) for label, n in per_label.items() if n), reverse=True)
        chosen, covered = [], 0
        for n, label in ranked:
            chosen.append(label)
            covered += n
            if covered >= coverage * total:
                break
        out[source] = sorted(chosen)
    return out


def informative(classes_of: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """The sources whose text carries a class: those that do not send every class."""
    present = {label for labels in classes_of.values() for label in labels}
    return {s: labels for s, labels in classes_of.items() if set(labels) != present}
