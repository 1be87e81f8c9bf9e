"""Class names: the user's `--classes` list, the two COVIDx label sets, and the one order.

Every part of medxai that needs a dataset's classes in order (the torch Dataset, training's
model spec, data-check's tables) asks `class_order`, so they agree.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from medxai.errors import MedxaiError

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "3class": ("normal", "pneumonia", "COVID-19"),
    "binary": ("negative", "positive"),
}
KNOWN_LABELS = frozenset(label for names in LABEL_SETS.values() for label in names)


def parse_classes(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """`--classes a,b,c` (or several values, each comma-separated) → ('a', 'b', 'c'), in order.

    None when no list is given; an empty name or a name given twice is an error.
    """
    if value is None:
        return None
    values = [value] if isinstance(value, str) else list(value)
    names = [name.strip() for text in values for name in text.split(",")]
    if not values or any(not name for name in names):
        raise MedxaiError(f"--classes expects class names separated by commas, got {value!r}")
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise MedxaiError(f"--classes names {repeated[0]!r} twice")
    return tuple(names)


def class_order(labels: Iterable[str], classes: Sequence[str] | None = None) -> tuple[str, ...]:
    """The classes, in order: `classes` when given; else, when the labels fit one COVIDx label
    set, that set in its own order (normal, pneumonia, COVID-19); else the sorted labels."""
    if classes:
        return tuple(classes)
    found = set(labels)
    for names in LABEL_SETS.values():
        if found and found <= set(names):
            return names
    return tuple(sorted(found))


def covidx_set_in_use(counts: Mapping[str, int]) -> str | None:
    """The COVIDx label set a dataset uses: one of whose labels two or more are present (of
    two such sets, the one more images carry). None: the dataset has a label set of its own."""
    used = {
        name: sum(counts.get(label, 0) for label in labels)
        for name, labels in LABEL_SETS.items()
        if sum(label in counts for label in labels) >= 2
    }
    return max(used, key=lambda name: used[name]) if used else None


def label_problem(
    label: str, counts: Mapping[str, int], classes: Sequence[str] | None
) -> str | None:
    """Why a dataset may not use `label` (None: it may), given every label's count.

    With `classes`, a label outside them. Without, in a dataset that uses a COVIDx label set,
    a label outside that set: a typo such as 'covid-19', or the other set's 'positive'.
    """
    if classes:
        if label in classes:
            return None
        return f"label {label!r} is not among --classes {','.join(classes)}"
    name = covidx_set_in_use(counts)
    if name is None or label in LABEL_SETS[name]:
        return None
    allowed = LABEL_SETS[name]
    n = sum(counts.get(known, 0) for known in allowed)
    every = ",".join(allowed + tuple(sorted(set(counts) - set(allowed))))
    return (
        f"label {label!r} is not in the {name} COVIDx label set ({'|'.join(allowed)}) that "
        f"the other {n} images use; fix it, or pass --classes {every} to use these labels"
    )
