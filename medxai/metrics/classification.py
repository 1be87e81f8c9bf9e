"""Classification metrics with uncertainty: per-class precision/recall/F1, bootstrap CIs, McNemar.

scikit-learn computes the point metrics; the bootstrap resamples images (with a seed) and
recomputes them; McNemar compares two models on the same images (exact binomial test).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy.stats import binomtest
from sklearn.metrics import accuracy_score, confusion_matrix, precision_recall_fscore_support

from medxai.errors import MedxaiError
from medxai.metrics.bootstrap import percentile_interval

PER_CLASS_FIELDS = ("precision", "recall", "f1")


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
    """Accuracy, macro-F1 and per-class (index) precision/recall/F1/support."""
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


def classification_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    classes: Sequence[str],
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """The metrics dict (accuracy, macro_f1, per_class, confusion), with percentile bootstrap CIs.

    Returns {"accuracy", "macro_f1", "per_class": {CLASS: {precision, recall, f1, support,
    ci: {precision: [lo, hi], ...}}}, "confusion", "ci": {accuracy, macro_f1}, "n"}.
    """
    y_true, y_pred = np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)
    n_classes = len(classes)
    _check(y_true, y_pred, n_classes)
    point = point_metrics(y_true, y_pred, n_classes)
    rng = np.random.default_rng(seed)
    samples = {key: [] for key in ("accuracy", "macro_f1", *PER_CLASS_FIELDS)}
    for _ in range(n_bootstrap):
        index = rng.integers(0, y_true.size, y_true.size)
        boot = point_metrics(y_true[index], y_pred[index], n_classes)
        for key in samples:
            samples[key].append(boot[key])
    ci = (
        {key: percentile_interval(values, confidence) for key, values in samples.items()}
        if n_bootstrap
        else {}
    )
    per_class = {}
    for k, name in enumerate(classes):
        entry = {field: float(point[field][k]) for field in PER_CLASS_FIELDS}
        entry["support"] = int(point["support"][k])
        if ci:
            entry["ci"] = {field: ci[field][:, k].tolist() for field in PER_CLASS_FIELDS}
        per_class[name] = entry
    return {
        "accuracy": point["accuracy"],
        "macro_f1": point["macro_f1"],
        "per_class": per_class,
        "confusion": confusion_matrix(y_true, y_pred, labels=list(range(n_classes))).tolist(),
        "ci": {key: ci[key].tolist() for key in ("accuracy", "macro_f1")} if ci else {},
        "confidence": confidence,
        "n_bootstrap": n_bootstrap,
        "n": int(y_true.size),
    }


def mcnemar(y_true: Sequence[int], pred_a: Sequence[int], pred_b: Sequence[int]) -> dict:
    """Exact McNemar test: do models A and B err on different images more than chance says?"""
    y_true, pred_a, pred_b = (np.asarray(v, dtype=int) for v in (y_true, pred_a, pred_b))
    if not (y_true.shape == pred_a.shape == pred_b.shape):
        raise MedxaiError("McNemar needs both models' predictions on the same images")
    a_right, b_right = pred_a == y_true, pred_b == y_true
    only_a = int(np.sum(a_right & ~b_right))
    only_b = int(np.sum(~a_right & b_right))
    discordant = only_a + only_b
    p_value = binomtest(only_a, discordant, 0.5).pvalue if discordant else 1.0
    return {"only_a_correct": only_a, "only_b_correct": only_b, "p_value": float(p_value)}


def paired_comparison(
    y_true: Sequence[int],
    pred_before: Sequence[int],
    pred_after: Sequence[int],
    classes: Sequence[str],
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict:
    """Two models on the same images: each figure before/after, the change, its paired CI.

    The bootstrap resamples images once for both models, so the CI of the change accounts for
    their predictions being paired. Returns {"accuracy": {before, after, delta, delta_ci},
    "macro_f1": {...}, "per_class": {CLASS: {precision: {...}, recall: {...}, f1: {...}}},
    "mcnemar": {...}, "n"}.
    """
    y_true, before, after = (np.asarray(v, dtype=int) for v in (y_true, pred_before, pred_after))
    n_classes = len(classes)
    _check(y_true, before, n_classes)
    _check(y_true, after, n_classes)
    keys = ("accuracy", "macro_f1", *PER_CLASS_FIELDS)
    point_a, point_b = (
        point_metrics(y_true, before, n_classes),
        point_metrics(y_true, after, n_classes),
    )
    rng = np.random.default_rng(seed)
    deltas: dict[str, list] = {key: [] for key in keys}
    for _ in range(n_bootstrap):
        index = rng.integers(0, y_true.size, y_true.size)
        a = point_metrics(y_true[index], before[index], n_classes)
        b = point_metrics(y_true[index], after[index], n_classes)
        for key in keys:
            deltas[key].append(np.asarray(b[key], dtype=float) - np.asarray(a[key], dtype=float))

    def entry(key: str, k: int | None = None) -> dict:
        pick = (lambda v: float(v)) if k is None else (lambda v: float(v[k]))
        out = {"before": pick(point_a[key]), "after": pick(point_b[key])}
        out["delta"] = out["after"] - out["before"]
        if n_bootstrap:
            samples = np.asarray([pick(d) for d in deltas[key]])
            out["delta_ci"] = percentile_interval(samples, confidence).tolist()
        return out

    return {
        "accuracy": entry("accuracy"),
        "macro_f1": entry("macro_f1"),
        "per_class": {
            name: {field: entry(field, k) for field in PER_CLASS_FIELDS}
            for k, name in enumerate(classes)
        },
        "mcnemar": mcnemar(y_true, before, after),
        "confidence": confidence,
        "n": int(y_true.size),
    }
