"""How well one trait of a film, alone, predicts its label: a shortcut check before any model.

In the spirit of Cleanlab Datalab's spurious-correlation check: for each trait (film size,
format, mean intensity, ...) a shallow decision tree learns the label from that trait alone,
under stratified k-fold cross-validation, and its out-of-fold balanced accuracy is compared
with chance. Balanced accuracy is the mean of the per-class recalls; predicting the majority
class for every film scores 1/K of it (K classes), so the score

    score = balanced accuracy (out of fold) − 1/K

is 0 for a trait that tells nothing and 1 − 1/K for one that determines the label. The tree
weighs classes by their inverse frequency, so it aims at balanced accuracy too and a useless
trait predicts one class everywhere (score 0). The interval is a percentile bootstrap over
films of the out-of-fold predictions (the folds are not refitted: the interval says how much
the figure moves with the films drawn, given the predictions). A trait is flagged when the
interval's lower bound is above `margin`.

Within source, the same is done separately inside each source (hospital) that sends two
classes or more (each with two films or more), and the per-source scores (balanced accuracy −
1/K of that source) are averaged, weighted by films. A trait that predicts the label overall
but not within source tells the sources apart; one that predicts it within source as well
carries the label on its own, the source aside.

Values come as a table of numbers or strings (no images here): numeric traits as floats
(None: missing), categorical ones as strings (None: its own category, "none"), coded in
sorted order for the tree.
"""

from __future__ import annotations

import warnings
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.model_selection import StratifiedKFold
from sklearn.tree import DecisionTreeClassifier

from medxai.statistics.bootstrap import (
    Interval,
    as_interval,
    bootstrap_indices,
    percentile_interval,
)

Value = float | int | str | None


@dataclass(frozen=True)
class PredictabilitySettings:
    """How the score is computed and when a trait is flagged."""

    folds: int = 5  # stratified k-fold (fewer when the smallest class has fewer films)
    max_depth: int = 3  # the tree: at most 2**max_depth intervals of the trait
    min_leaf: int = 5  # films per leaf at least (fewer when the training fold is small)
    margin: float = 0.05  # flagged: the interval's lower bound is above this score
    n_bootstrap: int = 1000
    confidence: float = 0.95
    seed: int = 0  # folds, tree and bootstrap: same seed, same report


DEFAULT_SETTINGS = PredictabilitySettings()


@dataclass(frozen=True)
class TraitPredictability:
    """One trait's power to predict the label alone.

    `score`: out-of-fold balanced accuracy minus `chance` (1/K); `ci` its interval. The
    within-source figures are None where no source sends two classes; `within_source_n` films
    in `within_source_sources` sources count there. `class_medians` (numeric traits) or
    `class_modes` (categorical) give each class's typical value.
    """

    trait: str
    kind: str  # numeric | categorical
    n: int
    balanced_accuracy: float
    chance: float
    score: float
    ci: Interval
    within_source: float | None
    within_source_ci: Interval | None
    within_source_n: int
    within_source_sources: int
    class_medians: dict[str, float]
    class_modes: dict[str, str]
    flagged: bool


@dataclass(frozen=True)
class TraitReport:
    """Every trait's row, in the order given, and the flagged ones, highest score first.

    `classes`: the labels scored, in order (classes with fewer than two films are left out,
    in `left_out`); `note` says why no row was computed, when none was.
    """

    rows: list[TraitPredictability]
    flagged: list[str]
    classes: list[str]
    n: int
    settings: PredictabilitySettings
    left_out: list[str]
    note: str | None = None

    def row(self, trait: str) -> TraitPredictability:
        (found,) = [r for r in self.rows if r.trait == trait]
        return found


def trait_predictability(
    table: Mapping[str, Sequence[Value]],
    labels: Sequence[str],
    sources: Sequence[str | None] | None = None,
    classes: Sequence[str] | None = None,
    settings: PredictabilitySettings = DEFAULT_SETTINGS,
) -> TraitReport:
    """Score every trait of `table` (trait → one value per film, films in `labels`' order).

    `sources`: each film's source (None: unknown, left out of the within-source figure);
    `classes`: the label order (default: sorted). A trait whose values are all None has no
    row; a table of fewer than two classes with two films each gives no rows and a `note`.
    """
    labels = [str(label) for label in labels]
    for name, values in table.items():
        if len(values) != len(labels):
            raise ValueError(f"trait {name!r} has {len(values)} values for {len(labels)} films")
    counts = Counter(labels)
    order = [c for c in (classes or sorted(counts)) if c in counts]
    order += sorted(set(counts) - set(order))
    kept = [c for c in order if counts[c] >= 2]
    left_out = [c for c in order if counts[c] < 2]
    films = np.array([i for i, label in enumerate(labels) if counts[label] >= 2], dtype=int)
    if len(kept) < 2:
        note = "fewer than two classes with two films each: nothing to predict"
        return TraitReport([], [], kept, int(films.size), settings, left_out, note)
    code = {c: k for k, c in enumerate(kept)}
    y = np.array([code[labels[i]] for i in films], dtype=int)  # (n,)
    source = None if sources is None else [sources[i] for i in films]
    rows = []
    for name, values in table.items():
        picked = [values[i] for i in films]
        if all(v is None for v in picked):
            continue
        rows.append(_score_trait(name, picked, y, kept, source, settings))
    flagged = [r.trait for r in sorted(rows, key=lambda r: -r.score) if r.flagged]
    return TraitReport(rows, flagged, kept, int(y.size), settings, left_out)


def _score_trait(
    name: str, values: list[Value], y: np.ndarray, classes: list[str],
    sources: list[str | None] | None, settings: PredictabilitySettings,
) -> TraitPredictability:  # fmt: skip
    categorical = any(isinstance(v, str) for v in values)
    x = _encode(values, categorical)  # (n, 1)
    predicted = _out_of_fold(x, y, settings)
    everyone = np.zeros(y.size, dtype=int)
    point, ci = _score_with_interval(y, predicted == y, everyone, settings)
    within = _within_source(x, y, sources, settings)
    return TraitPredictability(
        trait=name,
        kind="categorical" if categorical else "numeric",
        n=int(y.size),
        balanced_accuracy=point + 1.0 / len(classes),
        chance=1.0 / len(classes),
        score=point,
        ci=ci,
        within_source=within[0],
        within_source_ci=within[1],
        within_source_n=within[2],
        within_source_sources=within[3],
        class_medians={} if categorical else _medians(x[:, 0], y, classes),
        class_modes=_modes(values, y, classes) if categorical else {},
        flagged=ci[0] > settings.margin,
    )


def _encode(values: list[Value], categorical: bool) -> np.ndarray:
    """(n, 1) floats: numbers as they are (None: NaN), categories as their sorted code."""
    if categorical:
        names = [_category(v) for v in values]
        codes = {name: k for k, name in enumerate(sorted(set(names)))}
        return np.array([[codes[name]] for name in names], dtype=float)
    return np.array([[np.nan if v is None else float(v)] for v in values], dtype=float)


def _category(value: Value) -> str:
    return "none" if value is None else str(value)


def _out_of_fold(x: np.ndarray, y: np.ndarray, settings: PredictabilitySettings) -> np.ndarray:
    """Each film's label as predicted by a tree fitted on the other folds: (n,) class codes."""
    folds = min(settings.folds, int(np.bincount(y)[np.unique(y)].min()))
    splitter = StratifiedKFold(folds, shuffle=True, random_state=settings.seed)
    predicted = np.zeros(y.size, dtype=int)
    for train, test in splitter.split(x, y):
        tree = DecisionTreeClassifier(
            max_depth=settings.max_depth,
            min_samples_leaf=max(1, min(settings.min_leaf, train.size // 10)),
            class_weight="balanced",
            random_state=settings.seed,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # a fold may lack a rare class
            tree.fit(x[train], y[train])
        predicted[test] = tree.predict(x[test])
    return predicted


def _within_source(
    x: np.ndarray, y: np.ndarray, sources: list[str | None] | None,
    settings: PredictabilitySettings,
) -> tuple[float | None, Interval | None, int, int]:  # fmt: skip
    """(score, interval, films, sources) inside the sources that send two classes or more,
    each with two films or more; (None, None, 0, 0) where none does."""
    if sources is None:
        return None, None, 0, 0
    groups: dict[str, list[int]] = {}
    for i, s in enumerate(sources):
        if s is not None:
            groups.setdefault(s, []).append(i)
    members, correct, group_of = [], [], []
    for g, (_, index) in enumerate(sorted(groups.items())):
        index = np.array(index, dtype=int)
        counts = np.bincount(y[index])
        index = index[counts[y[index]] >= 2]  # the source's classes with two films or more
        if np.unique(y[index]).size < 2:
            continue
        predicted = _out_of_fold(x[index], y[index], settings)
        members.append(index)
        correct.append(predicted == y[index])
        group_of.append(np.full(index.size, g))
    if not members:
        return None, None, 0, 0
    films = np.concatenate(members)
    point, ci = _score_with_interval(
        y[films], np.concatenate(correct), np.concatenate(group_of), settings
    )
    return point, ci, int(films.size), len(members)


def _score_with_interval(
    y: np.ndarray, correct: np.ndarray, groups: np.ndarray, settings: PredictabilitySettings
) -> tuple[float, Interval]:
    """The score on the films as they are, and its percentile bootstrap interval."""
    point = float(_group_scores(y, correct, groups, np.arange(y.size)[None])[0])
    if not settings.n_bootstrap:
        return point, (point, point)
    index = bootstrap_indices(y.size, settings.n_bootstrap, settings.seed)  # (B, n)
    samples = _group_scores(y, correct, groups, index)
    return point, as_interval(percentile_interval(samples, settings.confidence))


def _group_scores(
    y: np.ndarray, correct: np.ndarray, groups: np.ndarray, index: np.ndarray
) -> np.ndarray:
    """(B,) per resample (a row of `index`): within each group, balanced accuracy − 1/K over
    the K classes it holds; averaged over groups of two classes or more, weighted by films."""
    rows, k, g = index.shape[0], int(y.max()) + 1, int(groups.max()) + 1
    cells = ((np.arange(rows)[:, None] * g + groups[index]) * k + y[index]).ravel()
    size = rows * g * k
    films = np.bincount(cells, minlength=size).reshape(rows, g, k).astype(float)
    hits = np.bincount(cells, weights=correct[index].ravel(), minlength=size)
    hits = hits.reshape(rows, g, k)
    present = films > 0
    n_classes = present.sum(axis=2)  # (B, G)
    recall = np.divide(hits, films, out=np.zeros_like(hits), where=present)
    balanced = recall.sum(axis=2) / np.maximum(n_classes, 1)
    scored = n_classes >= 2
    chance = np.divide(1.0, n_classes, out=np.zeros(n_classes.shape), where=scored)
    weight = films.sum(axis=2) * scored  # (B, G)
    total = weight.sum(axis=1)
    return np.divide(
        ((balanced - chance) * weight).sum(axis=1), total, out=np.zeros(rows), where=total > 0
    )


def _medians(x: np.ndarray, y: np.ndarray, classes: list[str]) -> dict[str, float]:
    out = {}
    for k, name in enumerate(classes):
        values = x[(y == k) & ~np.isnan(x)]
        if values.size:
            out[name] = float(np.median(values))
    return out


def _modes(values: list[Value], y: np.ndarray, classes: list[str]) -> dict[str, str]:
    """Each class's most common value (ties: the first in sorted order)."""
    out = {}
    for k, name in enumerate(classes):
        found = Counter(_category(values[i]) for i in np.flatnonzero(y == k))
        if found:
            out[name] = min(found, key=lambda v: (-found[v], v))
    return out
