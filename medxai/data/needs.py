"""What training and the audit ask of a dataset beyond well-formed lines and readable images,
one function per need: `train` and the audit stop at the first one unmet, and `data-check`
reports every one (`dataset_needs`), so a dataset it passes is one they take.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

from medxai.data.records import Record, SplitIndex, unlearned_labels

VAL_FRACTION = 0.1  # training's share of patients held out for validation (--val-fraction)
TRAINS = "`train`, and an audit that trains or retrains,"


def class_problem(records: Sequence[Record]) -> str | None:
    """Why `records` cannot train a classifier (None when they can): fewer than two classes."""
    present = sorted({r.label for r in records})
    if len(present) >= 2:
        return None
    where = f"{records[0].split}: " if records else ""
    return (
        f"{where}the training split holds {len(records)} image(s) of the classes {present}; "
        "a classifier needs at least two classes"
    )


def validation_folds(val_fraction: float) -> int:
    """The folds a validation share of `val_fraction` is carved with (one fold held out)."""
    return max(2, round(1.0 / val_fraction))


def validation_problem(records: Sequence[Record], val_fraction: float) -> str | None:
    """Why no validation split can be carved by patient from `records`, stratified by class
    (None when it can): fewer patients, or fewer images of a class, than folds."""
    folds = validation_folds(val_fraction)
    patients = {r.patient_id for r in records}
    if len(patients) < folds:
        return (
            f"cannot carve a validation split by patient: {len(records)} training images of "
            f"{len(patients)} patient(s), and a validation share of {val_fraction} needs at "
            f"least {folds} patients"
        )
    counts = Counter(r.label for r in records)
    rarest, count = min(counts.items(), key=lambda item: item[1])
    if count < folds:
        return (
            f"cannot carve a validation split by patient: class {rarest!r} has {count} training "
            f"image(s), and a validation share of {val_fraction} needs at least {folds} per class"
        )
    return None


def unlearned_problem(record: Record, classes: Sequence[str]) -> str:
    """A film whose label is not among the classes a model learns from the training split."""
    return (
        f"{record.where}: label {record.label!r} is not among the classes the model learns from "
        f"the training split ({', '.join(classes)}); pass --classes to name them all"
    )


@dataclass
class Needs:
    """What a dataset can be used for: what stops training (problems), what stops it under
    the default settings (warnings), and which uses it lacks a split for (notes)."""

    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def dataset_needs(
    index: SplitIndex, classes: Sequence[str] | None = None, val_fraction: float = VAL_FRACTION
) -> Needs:
    """Every need of training and the audit checked on `index` (read with the class list
    `classes`, or None), as `train` and the audit check them."""
    splits = ", ".join(index.records) or "no splits"
    needs = _training_needs(index, classes, val_fraction, splits)
    if not index.test_splits():
        needs.notes.append(
            f"no test split (a split named test*) among {splits}: the audit needs one"
        )
    return needs


def _training_needs(
    index: SplitIndex, classes: Sequence[str] | None, val_fraction: float, splits: str
) -> Needs:
    train = index.find_train_split()
    if train is None:
        return Needs(notes=[
            f"no training split (a split named train*) among {splits}: {TRAINS} need one; an "
            "audit of your own model takes the data as it is (its source–class ties from "
            "--ties-from SPLIT, else from the test split)"
        ])  # fmt: skip
    records = index.records[train]
    problem = class_problem(records)
    if problem:  # test labels outside its one class follow from it: not listed again
        return Needs(problems=[f"{problem} ({TRAINS} stop here)"])
    needs = Needs()
    carve = validation_problem(records, val_fraction)
    if carve:
        needs.warnings.append(f"{carve} (the default --val-fraction; `train` stops here)")
    if not classes:  # with a class list, a label outside it is a problem of the index
        tested = [r for split in index.test_splits() for r in index.records[split]]
        needs.problems += [
            f"{unlearned_problem(r, index.classes)} (`train` stops here)"
            for r in unlearned_labels(tested, index.classes)
        ]
    return needs
