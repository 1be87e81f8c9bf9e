"""Do a model's decisions follow the film's source (hospital) rather than its label?

Whatever a model reads — text, a collimation frame, a tone curve, something no region kind
names — if it reads a property of the source, its decisions follow the source. On a test split
where some films come from a source that (in the ties' split) sends another class, that shows
without knowing the cue: such *off-source* films are decided correctly less often than *on-source*
films, whose source sends their own class. If the source decides a share f of the decisions
(and the model is otherwise right with accuracy a), on-source accuracy is f + (1 − f)·a and
off-source accuracy (1 − f)·a: the gap is f, the share of decisions the source decides, on the
same scale as the transplant's follow excess and held to the same thresholds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from medxai.statistics.bootstrap import (
    Clusters,
    Interval,
    as_interval,
    bootstrap_weights,
    percentile_interval,
    resolve,
    weighted_means,
)

MIN_FILMS = 10  # on- and off-source films each, before the gap can reach a level


@dataclass(frozen=True)
class FilmSource:
    """One test film: its label, its source and the model's decision (class names)."""

    label: str
    source: str | None
    decided: str
    patient: str | None = None  # a patient's films are resampled together


@dataclass(frozen=True)
class SourceFollowing:
    """One test split: accuracy on films whose source sends their class against films whose
    source sends only other classes, and how often those follow their source."""

    split: str
    n_on: int
    n_off: int
    # None where a group has no film (no figure, rather than NaN)
    accuracy_on: float | None
    accuracy_on_ci: Interval | None
    accuracy_off: float | None
    accuracy_off_ci: Interval | None
    gap: float | None  # accuracy_on - accuracy_off: the share of decisions the source decides
    gap_ci: Interval | None
    follow_rate: float | None  # off-source films decided as a class their source sends
    follow_ci: Interval | None
    note: str = ""  # why the gap cannot be read (too few on- or off-source films)
    unit: str = "film"  # what the bootstrap resampled
    n_clusters: int | None = None  # how many of them (on- and off-source films together)

    @property
    def measured(self) -> bool:
        return not self.note


@dataclass(frozen=True)
class SplitGap:
    """Accuracy on the confounded test split against the balanced one (sources independent of
    the label): what recognising the source earns where it pays."""

    confounded: str
    balanced: str
    accuracy_confounded: float
    accuracy_balanced: float
    gap: float
    gap_ci: Interval


def source_following(
    split: str,
    films: Sequence[FilmSource],
    classes_of: Mapping[str, Sequence[str]],
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
) -> SourceFollowing:
    """`classes_of`: the classes each informative source sends, in the split the ties are
    counted on (sources that send every class, or are unknown, tell nothing and are left
    out)."""
    on = [f for f in films if f.source in classes_of and f.label in classes_of[f.source]]
    off = [f for f in films if f.source in classes_of and f.label not in classes_of[f.source]]
    clusters = Clusters.of([f.patient for f in on + off])
    weights = bootstrap_weights(n_bootstrap, seed, clusters)  # on- and off-source together
    w_on, w_off = weights[:, : len(on)], weights[:, len(on) :]
    right_on = np.array([f.decided == f.label for f in on], dtype=float)
    right_off = np.array([f.decided == f.label for f in off], dtype=float)
    follows = np.array([f.decided in classes_of[f.source] for f in off], dtype=float)
    means_on, means_off = weighted_means(right_on, w_on), weighted_means(right_off, w_off)

    def figure(values: np.ndarray, resampled: np.ndarray) -> tuple[float | None, Interval | None]:
        if not values.size:
            return None, None
        return float(values.mean()), as_interval(percentile_interval(resampled, confidence))

    acc_on, acc_off = figure(right_on, means_on), figure(right_off, means_off)
    gap = (None, None)
    if on and off:
        gap = (
            acc_on[0] - acc_off[0],
            as_interval(percentile_interval(means_on - means_off, confidence)),
        )
    follow = figure(follows, weighted_means(follows, w_off))
    note = ""
    if min(len(on), len(off)) < MIN_FILMS:
        note = (
            f"{len(off)} film(s) of {split} come from a source that sends another class "
            f"and {len(on)} from one that sends their own (at least {MIN_FILMS} each are "
            "needed)"
        )
    return SourceFollowing(
        split, len(on), len(off), *acc_on, *acc_off, *gap, *follow, note=note,
        unit=clusters.unit, n_clusters=clusters.count,
    )  # fmt: skip


def split_gap(
    confounded: str,
    right_confounded: Sequence[bool],
    balanced: str,
    right_balanced: Sequence[bool],
    n_bootstrap: int = 1000,
    confidence: float = 0.95,
    seed: int = 0,
    patients: tuple[Sequence[str | None], Sequence[str | None]] | None = None,
) -> SplitGap:
    """`patients`: each split's films' patients, resampled together within the split."""
    a, b = np.asarray(right_confounded, float), np.asarray(right_balanced, float)
    clusters = (Clusters.of(patients[0]), Clusters.of(patients[1])) if patients else (None, None)
    gap, ci = difference(a, b, n_bootstrap, confidence, seed, clusters)
    return SplitGap(confounded, balanced, float(a.mean()), float(b.mean()), gap, ci)


def difference(
    a: np.ndarray, b: np.ndarray, n_bootstrap: int, confidence: float, seed: int,
    clusters: tuple[Clusters | None, Clusters | None] = (None, None),
) -> tuple[float, Interval]:  # fmt: skip
    """mean(a) − mean(b) of two independent samples, each resampled on its own (by patient
    when its `clusters` are given)."""
    if not (a.size and b.size):
        return float("nan"), (float("nan"), float("nan"))
    means_a = weighted_means(a, bootstrap_weights(n_bootstrap, seed, resolve(clusters[0], a.size)))
    means_b = weighted_means(
        b, bootstrap_weights(n_bootstrap, seed + 1, resolve(clusters[1], b.size))
    )
    return float(a.mean() - b.mean()), as_interval(
        percentile_interval(means_a - means_b, confidence)
    )
