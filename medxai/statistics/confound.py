"""How much a split's labels can be read off its sources alone, before any model is trained.

A source (hospital, scanner, dataset) that sends one class only is a confound: a model can
reach high accuracy by recognising the source (its burned-in text, its scanner look). COVIDx
is the textbook case: its COVID-19 films come from sources that send nothing else.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.stats.contingency import association

STRONG_CRAMERS_V = 0.5  # Cohen's "large" association; COVIDx-like splits are far above it


@dataclass(frozen=True)
class SourceConfound:
    """Source ↔ label association of one split."""

    n: int
    n_sources: int
    cramers_v: float  # 0: sources tell nothing about the label; 1: they determine it
    source_accuracy: float  # predicting each film's label as its source's majority label
    majority_accuracy: float  # predicting the most common label for every film
    strong: bool  # cramers_v >= STRONG_CRAMERS_V and sources beat the majority label


def source_confound(counts: Mapping[str, Mapping[str, int]]) -> SourceConfound:
    """From images per source and label (`counts[source][label]`); unknown sources ("-")
    count as one source, so a split without sources shows no association."""
    table = np.array([list(per_label.values()) for per_label in counts.values()], dtype=int)
    n = int(table.sum())
    if n == 0:
        return SourceConfound(0, 0, 0.0, 0.0, 0.0, False)
    table = table[:, table.sum(0) > 0]
    source_accuracy = float(table.max(1).sum() / n)
    majority_accuracy = float(table.sum(0).max() / n)
    v = 0.0
    if min(table.shape) > 1:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            v = float(association(table, method="cramer"))
    v = 0.0 if np.isnan(v) else v
    strong = v >= STRONG_CRAMERS_V and source_accuracy > majority_accuracy
    return SourceConfound(n, len(counts), v, source_accuracy, majority_accuracy, strong)


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
