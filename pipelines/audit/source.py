"""Whether the model's decisions follow the films' sources, before any region kind: the net
under the per-kind tests. A model that reads something of the hospital the kinds do not name
(a tone curve, a frame the border finder misses, positioning) still shows here."""

from __future__ import annotations

from medxai.metrics.shortcut import RelianceThresholds, highest
from medxai.metrics.source_following import (
    FilmSource,
    SourceFollowing,
    source_following,
    split_gap,
)
from medxai.report import verdict as words
from medxai.report.record import SourceResult
from medxai.statistics.confound import informative, source_classes
from pipelines.audit.data import Data

NOT_MEASURED = "not measured"
FOLLOW = 2  # the follow-excess thresholds: both figures are the share the source decides


def source_result(
    data: Data, decisions: dict[str, int], thresholds: RelianceThresholds,
    n_bootstrap: int, seed: int,
) -> SourceResult:  # fmt: skip
    """Per test split, the accuracy gap between films whose source sends their own class and
    films whose source sends another; the confounded-against-balanced split gap; the level."""
    associations = informative(source_classes(data.ties_counts))

    films = {
        split: [
            FilmSource(
                i.record.label, i.record.source, data.classes[decisions[i.relative]],
                i.record.patient_id,
            )  # fmt: skip
            for i in data.test[split]
        ]
        for split in data.tests
    }  # fmt: skip
    conf = thresholds.confidence
    per_split = {
        s: source_following(s, films[s], associations, n_bootstrap, conf, seed) for s in data.tests
    }
    gap = None
    balanced = next((s for s in data.tests[1:] if "balanced" in s), None)
    if balanced:
        pair = (data.tests[0], balanced)
        right = {s: [f.decided == f.label for f in films[s]] for s in pair}
        patients = tuple([f.patient for f in films[s]] for s in pair)
        gap = split_gap(
            pair[0], right[pair[0]], balanced, right[balanced], n_bootstrap, conf, seed, patients
        )  # fmt: skip
    level, reason = _level(per_split, associations, thresholds, data)
    return SourceResult(associations, per_split, gap, level, reason)


def _level(
    per_split: dict[str, SourceFollowing], associations: dict, thresholds: RelianceThresholds,
    data: Data,
) -> tuple[str, str]:  # fmt: skip
    if not data.ties.n_sources:
        return NOT_MEASURED, f"no film of {data.ties.split} names its source"
    if not associations:
        return "none", (
            f"every source sends every class in {data.ties.split}: the source tells nothing"
        )
    measured = [f for f in per_split.values() if f.measured]
    if not measured:
        notes = "; ".join(f.note for f in per_split.values())
        return NOT_MEASURED, f"{notes}: whether decisions follow the source cannot be read"
    levels = {  # the smaller arm decides whether the evidence suffices
        f.split: thresholds.level_of(f.gap, f.gap_ci, FOLLOW, min(f.n_on, f.n_off))
        for f in measured
    }
    level = highest(list(levels.values()))
    best = next(f for f in measured if levels[f.split] == level)
    return level, words.source_reason(best, level)
