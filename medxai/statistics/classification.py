"""Classification metrics with uncertainty: per-class precision/recall/F1, bootstrap CIs, McNemar.

scikit-learn computes the point metrics; the bootstrap resamples patients (with a seed; each
film its own patient unless `clusters` says otherwise) and recomputes them; McNemar compares
two models on the same films (exact binomial test, or Durkalski's clustered test when a
patient has several films).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import numpy as np
from scipy.stats import binomtest, chi2
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from medxai.errors import MedxaiError
from medxai.statistics.bootstrap import (
    Clusters,
    Interval,
    as_interval,
    bootstrap_weights,
    percentile_interval,
    resolve,
)

PER_CLASS_FIELDS = ("precision", "recall", "f1")
T = TypeVar("T")


@dataclass(frozen=True)
class PerClassFigures(Generic[T]):
    """One thing (an interval, a change) for each per-class figure."""

    precision: T
    recall: T
    f1: T


@dataclass(frozen=True)
class OverallFigures(Generic[T]):
    """One thing (an interval, a change) for each whole-split figure."""

    accuracy: T
    macro_f1: T


ScoreIntervals = PerClassFigures[Interval]
OverallIntervals = OverallFigures[Interval]


@dataclass(frozen=True)
class ClassScores:
    precision: float
    recall: float
    f1: float
    support: int
    ci: ScoreIntervals | None = None  # None without bootstrap


@dataclass(frozen=True)
class ClassificationMetrics:
    """Accuracy, macro-F1, per-class scores and the confusion matrix (rows = true classes)."""

    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScores]
    confusion: list[list[int]]
    ci: OverallIntervals | None
    confidence: float
    n_bootstrap: int
    n: int
    unit: str = "film"  # what the bootstrap resampled: films, or patients with their films
    n_clusters: int | None = None  # how many of them


@dataclass(frozen=True)
class Evaluation:
    """A model's decision on every image of a split, and the metrics they give."""

    metrics: ClassificationMetrics
    files: list[str]
    labels: list[int]  # class indices
    predictions: list[int]
    patients: list[str] = field(default_factory=list)  # each film's patient, when known


@dataclass(frozen=True)
class Change:
    """One figure for two models on the same images, and the change with its paired CI."""

    before: float
    after: float
    delta: float
    delta_ci: Interval | None = None


ClassChanges = PerClassFigures[Change]


@dataclass(frozen=True)
class McNemar:
    only_a_correct: int
    only_b_correct: int
    p_value: float
    method: str = "exact"  # exact binomial, or "clustered" (Durkalski et al. 2003)


@dataclass(frozen=True)
class PairedComparison:
    accuracy: Change
    macro_f1: Change
    per_class: dict[str, ClassChanges]  # class -> the change of each per-class figure
    mcnemar: McNemar
    confidence: float
    n: int
    unit: str = "film"
    n_clusters: int | None = None


def _check(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> None:
    if y_true.shape != y_pred.shape or y_true.ndim != 1:
        raise MedxaiError(
            f"labels and predictions differ in shape: {y_true.shape} vs {y_pred.shape}"
        )
    if y_true.size == 0:
        raise MedxaiError("no predictions to score")
    for name, values in (("labels", y_true), ("predictions", y_pred)):
        if values.min() < 0 or values.max() >= n_classes:
            raise MedxaiError(f"{name} must be class indices in [0, {n_classes})")


def point_metrics(y_true: np.ndarray, y_pred: np.ndarray, n_classes: int) -> dict:
    """Accuracy, macro-F1 and per-class (index) precision/recall/F1/support arrays."""
    labels = list(range(n_classes))
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=labels, zero_division=0
    )
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "macro_f1": float(np.mean(f1)),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "support": support,
    }


def resampled_metrics(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, weights: np.ndarray
) -> dict[str, np.ndarray]:
    """`point_metrics` on every bootstrap resample (a row of film `weights`, each film counted
    as often as it was drawn) at once, from each resample's confusion matrix: the same figures
    (precision tp/predicted, recall tp/true, F1 2tp/(true + predicted), 0 where undefined)
    without scikit-learn's per-call checks, which cost ~3 ms a resample."""
    n_rows, k = weights.shape[0], n_classes
    cells = (np.arange(n_rows)[:, None] * k + y_true[None]) * k + y_pred[None]
    confusion = np.bincount(
        cells.ravel(), weights=weights.ravel(), minlength=n_rows * k * k
    ).reshape(n_rows, k, k)
    tp = np.diagonal(confusion, axis1=1, axis2=2).astype(float)
    true, predicted = confusion.sum(axis=2), confusion.sum(axis=1)
    f1 = _ratio(2 * tp, true + predicted)
    return {
        "accuracy": _ratio(tp.sum(axis=1), weights.sum(axis=1).astype(float)),
        "macro_f1": f1.mean(axis=1),
        "precision": _ratio(tp, predicted),
        "recall": _ratio(tp, true),
        "f1": f1,
    }


def _ratio(numerator: np.ndarray, denominator: np.ndarray) -> np.ndarray:
    """numerator / denominator, 0 where the denominator is 0 (scikit-learn's zero_division=0)."""
    out = np.zeros(numerator.shape, dtype=float)
    np.divide(numerator, denominator, out=out, where=denominator > 0)
    return out


def _bootstrap_intervals(
    y_true: np.ndarray, y_pred: np.ndarray, n_classes: int, n_bootstrap: int, confidence: float,
    seed: int, clusters: Clusters,
) -> dict[str, np.ndarray]:  # fmt: skip
    samples = resampled_metrics(
        y_true, y_pred, n_classes, bootstrap_weights(n_bootstrap, seed, clusters)
    )
    return {key: percentile_interval(values, confidence) for key, values in samples.items()}


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    classes: Sequence[str],
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: Clusters | None = None,
) -> ClassificationMetrics:
    """The metrics, with percentile bootstrap CIs over patients (`clusters`; each film its own
    when None), none when n_bootstrap = 0."""
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    n_classes = len(classes)
    _check(y_true, y_pred, n_classes)
    clusters = resolve(clusters, y_true.size)
    point = point_metrics(y_true, y_pred, n_classes)
    ci = (
        _bootstrap_intervals(y_true, y_pred, n_classes, n_bootstrap, confidence, seed, clusters)
        if n_bootstrap
        else None
    )
    per_class = {
        name: ClassScores(
            *(float(point[field][k]) for field in PER_CLASS_FIELDS),
            support=int(point["support"][k]),
            ci=ScoreIntervals(*(as_interval(ci[f][:, k]) for f in PER_CLASS_FIELDS))
            if ci
            else None,
        )
        for k, name in enumerate(classes)
    }
    return ClassificationMetrics(
        accuracy=point["accuracy"],
        macro_f1=point["macro_f1"],
        per_class=per_class,
        confusion=confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist(),
        ci=OverallIntervals(as_interval(ci["accuracy"]), as_interval(ci["macro_f1"]))
        if ci
        else None,
        confidence=confidence,
        n_bootstrap=n_bootstrap,
        n=int(y_true.size),
        unit=clusters.unit,
        n_clusters=clusters.count,
    )


def mcnemar(
    y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int],
    clusters: Clusters | None = None,
) -> McNemar:  # fmt: skip
    """McNemar's test: do models A and B err on different films more than chance says? Exact
    binomial with one film per patient; with patients of several films, Durkalski et al.'s
    (2003) clustered statistic (Σ(b_k − c_k))² / Σ(b_k − c_k)², χ² with 1 df, over patients k."""
    y_true, pred_a, pred_b = (np.asarray(v, dtype=int) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape):
        raise MedxaiError("McNemar needs both models' predictions on the same images")
    clusters = resolve(clusters, y_true.size)
    a_right, b_right = pred_a == y_true, pred_b == y_true
    only_a, only_b = a_right & ~b_right, ~a_right & b_right
    n_a, n_b = int(only_a.sum()), int(only_b.sum())
    if clusters.count == y_true.size:
        p_value = binomtest(n_a, n_a + n_b, 0.5).pvalue if n_a + n_b else 1.0
        return McNemar(n_a, n_b, float(p_value))
    per_patient = np.bincount(
        clusters.of_film, weights=only_a.astype(float) - only_b, minlength=clusters.count
    )
    spread = float(np.sum(per_patient**2))
    p_value = chi2.sf(per_patient.sum() ** 2 / spread, 1) if spread else 1.0
    return McNemar(n_a, n_b, float(p_value), "clustered")


def _paired_deltas(
    y_true: np.ndarray, before: np.ndarray, after: np.ndarray, n_classes: int, n_bootstrap: int,
    seed: int, clusters: Clusters,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Per figure, the change after − before on each resample (the same films for both)."""
    weights = bootstrap_weights(n_bootstrap, seed, clusters)
    a = resampled_metrics(y_true, before, n_classes, weights)
    b = resampled_metrics(y_true, after, n_classes, weights)
    return {key: b[key] - a[key] for key in a}


def paired_comparison(
    y_true: Sequence[int],
    pred_before: Sequence[int],
    pred_after: Sequence[int],
    classes: Sequence[str],
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: Clusters | None = None,
) -> PairedComparison:
    """Two models on the same images: each figure before/after, the change, its paired CI.

    The bootstrap resamples patients (`clusters`) once for both models, so the CI of the
    change accounts for their predictions being paired.
    """
    y_true, before, after = (np.asarray(v, dtype=int) for v in (y_true, pred_before, pred_after))
    n_classes = len(classes)
    _check(y_true, before, n_classes)
    _check(y_true, after, n_classes)
    point_a = point_metrics(y_true, before, n_classes)
    point_b = point_metrics(y_true, after, n_classes)
    clusters = resolve(clusters, y_true.size)
    deltas = _paired_deltas(y_true, before, after, n_classes, n_bootstrap, seed, clusters)

    def change(key: str, k: int | None = None) -> Change:
        pick = (lambda v: float(v)) if k is None else (lambda v: float(v[k]))
        was, now = pick(point_a[key]), pick(point_b[key])
        interval = None
        if n_bootstrap:
            samples = np.asarray([pick(d) for d in deltas[key]])
            interval = as_interval(percentile_interval(samples, confidence))
        return Change(was, now, now - was, interval)

    return PairedComparison(
        accuracy=change("accuracy"),
        macro_f1=change("macro_f1"),
        per_class={
            name: ClassChanges(*(change(field, k) for field in PER_CLASS_FIELDS))
            for k, name in enumerate(classes)
        },
        mcnemar=mcnemar(y_true, before, after, clusters),
        confidence=confidence,
        n=int(y_true.size),
        unit=clusters.unit,
        n_clusters=clusters.count,
    )
