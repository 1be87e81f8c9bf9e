"""A patient-stratified, class-balanced sample of films: the subset `medxai audit --sample`
runs its verdict stages on.

Whole patients are drawn (their films stay together, so the sample's patients are the
bootstrap's clusters as they were), one class at a time in turn, so the classes are as even
as the data allows; a class with fewer patients than its turn asks gives all it has.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np


def balanced_patients(
    films: Sequence[str], patients: Sequence[str | None], labels: Sequence[str], n: int,
    seed: int,
) -> set[str]:  # fmt: skip
    """About `n` of `films` (never fewer, unless there are fewer): patients drawn with `seed`,
    class by class in turn (a patient's class is its first film's), each with all its films
    (a film without a patient id is its own patient)."""
    by_patient: dict[str, list[str]] = defaultdict(list)
    first_label: dict[str, str] = {}
    for film, patient, label in zip(films, patients, labels, strict=True):
        key = patient if patient is not None else f"film:{film}"
        by_patient[key].append(film)
        first_label.setdefault(key, label)
    rng = np.random.default_rng(seed)
    queues = {}
    for label in sorted(set(first_label.values())):
        members = sorted(k for k, v in first_label.items() if v == label)
        queues[label] = [members[i] for i in rng.permutation(len(members))]
    chosen: set[str] = set()
    while len(chosen) < n and any(queues.values()):
        for label in sorted(queues):
            if queues[label] and len(chosen) < n:
                chosen.update(by_patient[queues[label].pop(0)])
    return chosen
