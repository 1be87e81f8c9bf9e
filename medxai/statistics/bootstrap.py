"""Percentile bootstrap: the one place images are resampled and intervals are cut."""

from __future__ import annotations

import numpy as np

Interval = tuple[float, float]


def bootstrap_indices(size: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """(n_bootstrap, size) image indices drawn with replacement, the same for the same seed."""
    return np.random.default_rng(seed).integers(0, size, (n_bootstrap, size))


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """[lo, hi] of bootstrap `samples` along axis 0 (works for vectors of figures too)."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    return np.percentile(np.asarray(samples, dtype=float), [tail, 100.0 - tail], axis=0)


def as_interval(bounds: np.ndarray) -> Interval:
    lo, hi = (float(v) for v in bounds)
    return lo, hi


def bootstrap_mean(
    values: np.ndarray, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, Interval]:
    """Mean of per-image `values` and its percentile bootstrap interval (images resampled)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    means = values[bootstrap_indices(values.size, n_bootstrap, seed)].mean(axis=1)
    return float(values.mean()), as_interval(percentile_interval(means, confidence))
