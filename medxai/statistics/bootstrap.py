"""Percentile bootstrap: the one place films are resampled and intervals are cut.

Films of one patient are not independent observations: resampling them one by one makes the
intervals too narrow. `Clusters` says which films belong together; the bootstrap then draws
whole clusters (patients) with replacement and gives each film the number of times its
cluster was drawn as its weight (the cluster bootstrap). Without clusters every film is its
own cluster, which is the plain film bootstrap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

Interval = tuple[float, float]


@dataclass(frozen=True)
class Clusters:
    """Which films resample together: `of_film[i]` numbers film i's cluster (0 … count − 1)."""

    of_film: np.ndarray
    unit: str = "film"  # what one cluster is, for the report: "patient" or "film"

    @classmethod
    def films(cls, n: int) -> Clusters:
        return cls(np.arange(n), "film")

    @classmethod
    def of(cls, keys: Sequence[str | None], unit: str = "patient") -> Clusters:
        """Films with the same key are one cluster; a film without a key (None or '') is a
        cluster of its own. The unit reads "film" when no two films share a key."""
        number: dict[str, int] = {}
        of_film = np.empty(len(keys), dtype=int)
        for i, key in enumerate(keys):
            if not key:
                key = f"\0film {i}"  # never equal to a real key
            of_film[i] = number.setdefault(key, len(number))
        return cls(of_film, unit if len(number) < len(keys) else "film")

    @property
    def count(self) -> int:
        return int(self.of_film.max()) + 1 if self.of_film.size else 0

    def __len__(self) -> int:
        return int(self.of_film.size)

    def describe(self) -> str:
        return f"{self.count} {self.unit}s ({len(self)} films)"


def resolve(clusters: Clusters | None, n: int) -> Clusters:
    """`clusters`, checked against n films; each film its own cluster when None."""
    if clusters is None:
        return Clusters.films(n)
    if len(clusters) != n:
        raise ValueError(f"clusters cover {len(clusters)} films, the figures {n}")
    return clusters


def bootstrap_indices(size: int, n_bootstrap: int, seed: int) -> np.ndarray:
    """(n_bootstrap, size) film indices drawn with replacement, the same for the same seed."""
    return np.random.default_rng(seed).integers(0, size, (n_bootstrap, size))


def bootstrap_weights(n_bootstrap: int, seed: int, clusters: Clusters) -> np.ndarray:
    """(n_bootstrap, films): how often each film's cluster is drawn in each resample."""
    count = clusters.count
    drawn = bootstrap_indices(count, n_bootstrap, seed)  # (B, clusters)
    rows = np.arange(n_bootstrap)[:, None] * count
    per_cluster = np.bincount((rows + drawn).ravel(), minlength=n_bootstrap * count)
    return per_cluster.reshape(n_bootstrap, count)[:, clusters.of_film]


def weighted_means(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B,) the mean of `values` under each resample's film weights (NaN for an empty one)."""
    total = weights.sum(axis=1).astype(float)
    sums = weights @ values
    out = np.full(total.shape, np.nan)
    np.divide(sums, total, out=out, where=total > 0)
    return out


def percentile_interval(samples: np.ndarray, confidence: float = 0.95) -> np.ndarray:
    """[lo, hi] of bootstrap `samples` along axis 0 (works for vectors of figures too)."""
    tail = (1.0 - confidence) / 2.0 * 100.0
    return np.nanpercentile(np.asarray(samples, dtype=float), [tail, 100.0 - tail], axis=0)


def as_interval(bounds: np.ndarray) -> Interval:
    lo, hi = (float(v) for v in bounds)
    return lo, hi


def bootstrap_mean(
    values: np.ndarray,
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    clusters: Clusters | None = None,
) -> tuple[float, Interval]:
    """Mean of per-film `values` and its percentile bootstrap interval (clusters resampled)."""
    values = np.asarray(values, dtype=float)
    if values.size == 0:
        return float("nan"), (float("nan"), float("nan"))
    weights = bootstrap_weights(n_bootstrap, seed, resolve(clusters, values.size))
    means = weighted_means(values, weights)
    return float(values.mean()), as_interval(percentile_interval(means, confidence))
