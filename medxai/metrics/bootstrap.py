"""Percentile bootstrap: the one place confidence intervals are cut from resampled figures."""

from __future__ import annotations

import numpy as np


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """[lo, hi] of bootstrap `samples` along axis 0 (works for vectors of figures too)."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    return np.percentile(np.asarray(samples, dtype=float), [tail, 100.0 - tail], axis=0)


def bootstrap_mean(
    values: np.ndarray, n_bootstrap: int = 1000, confidence: float = 0.95, seed: int = 0
) -> tuple[float, list[float]]:
    """Mean of per-image `values` and its percentile bootstrap interval (images resampled)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), [float("nan"), float("nan")]
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, values.size, (n_bootstrap, values.size))].mean(axis=1)
    return float(values.mean()), percentile_interval(means, confidence).tolist()
