"""The one record type every dataset layout reads into, and the checks a whole dataset gets.

A layout (COVIDx split files, a CSV manifest, an ImageFolder tree: `medxai.data.layouts`)
turns a dataset into a `SplitIndex`: records per split, each with its image path under the
dataset root, plus every problem found, so data-check can list them and other commands can
stop at the first.
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath

from medxai.data.classes import class_order, label_problem
from medxai.errors import DatasetError, SplitFileError


@dataclass(frozen=True)
class Record:
    """One image of a dataset, with the image path it resolves to.

    `filename` is relative to its split's image folder (`SplitIndex.image_dirs`). `origin` is
    the file that lists the record, `line` its line there (a split file, a CSV manifest); in
    a folder tree it is the class folder, and `line` is 0.
    """

    patient_id: str
    filename: str
    label: str
    source: str | None
    path: Path
    split: str
    line: int
    origin: Path | None = None

    @property
    def where(self) -> str:
        """FILE:LINE of the listing line, else the image (or class folder) itself."""
        listing = self.origin or self.path
        return f"{listing}:{self.line}" if self.line else str(listing)


def patient_rule(pattern: str) -> re.Pattern:
    """A file-name rule for patient ids (`--patient-pattern`), e.g. `^([^_]+)_` for the part
    before the first '_': its first group (or its whole match when it has none)."""
    try:
        rule = re.compile(pattern)
    except re.error as error:
        raise DatasetError(
            f"--patient-pattern {pattern!r} is not a regular expression: {error}"
        ) from None
    if rule.groups > 1:
        raise DatasetError(f"--patient-pattern {pattern!r} must have at most one group")
    return rule


def with_patients(records: Sequence[Record], rule: re.Pattern) -> list[Record]:
    """Records whose patient id is what `rule` finds in the file name; a film it finds nothing
    in keeps its own id (its path), so it is a patient of its own."""
    out = []
    for r in records:
        found = rule.search(PurePosixPath(r.filename).name)
        patient = (found.group(rule.groups) if found else "") or r.filename
        out.append(replace(r, patient_id=patient))
    return out


@dataclass(frozen=True)
class LineProblem:
    """A listing line (or, at line 0, a whole split file or folder) that cannot be used.

    `split`: the split it belongs to, when known.
    """

    split_file: Path
    line: int
    reason: str
    split: str | None = None

    def __str__(self) -> str:
        where = f"{self.split_file}:{self.line}" if self.line else str(self.split_file)
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Skipped:
    """An image left out of a run, and why."""

    record: Record
    reason: str


@dataclass
class SplitIndex:
    """Every split of a dataset, read leniently: records, problems and warnings.

    `root`: the folder image paths are relative to (a CSV manifest's folder). `layout`:
    covidx, csv or folders. `classes`: the dataset's classes in order (`class_order`).
    `listing`: the CSV manifest (csv layout). `notes`: what was left aside on purpose.
    """

    root: Path
    records: dict[str, list[Record]]
    image_dirs: dict[str, Path]
    problems: list[LineProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    layout: str = "covidx"
    classes: tuple[str, ...] = ()
    listing: Path | None = None
    notes: list[str] = field(default_factory=list)
    layout_why: str = ""  # why the location was read as `layout` (`medxai.data.layouts`)

    def raise_problems(self) -> None:
        """A user error naming the first problem (and how many more there are)."""
        if not self.problems:
            return
        more = len(self.problems) - 1
        tail = f" (and {more} more problem(s); `medxai data-check` lists them)" if more else ""
        raise SplitFileError(f"{self.problems[0]}{tail}")

    def train_split(self) -> str:
        """The training split: the one named 'train' ('train.txt'), else the first whose name
        starts with 'train'."""
        name = self.find_train_split()
        if name is None:
            raise DatasetError(
                f"{self.listing or self.root}: no training split (a split named train*) among "
                f"{', '.join(self.records) or 'no splits'}"
            )
        return name

    def find_train_split(self) -> str | None:
        names = [name for name in self.records if name.startswith("train")]
        exact = [name for name in names if PurePosixPath(name).stem == "train"]
        return (exact or names or [None])[0]

    def test_splits(self) -> list[str]:
        """The splits whose name starts with 'test', in order."""
        return [name for name in self.records if name.startswith("test")]

    def relative(self, record: Record) -> str:
        """The record's image path relative to the dataset root, as a posix string: where a
        cleaned copy puts the image (`OUT/<relative>`), and the key it is known by."""
        try:
            return self.record_path(record).as_posix()
        except ValueError:
            raise DatasetError(
                f"{record.where}: {record.path} is not under the dataset root {self.root}"
            ) from None

    def record_path(self, record: Record) -> PurePosixPath:
        return PurePosixPath(*record.path.relative_to(self.root).parts)

    def problems_of(self, split: str) -> list[LineProblem]:
        """The problems of one split (those of the split file named `split` for old callers)."""
        return [
            p
            for p in self.problems
            if p.split == split or (p.split is None and p.split_file == self.root / split)
        ]


def read_text_lines(path: Path, what: str) -> list[str]:
    """The lines of a listing file (a BOM dropped), or a SplitFileError naming it; nothing
    but a regular file is opened, so a FIFO or a device cannot hang a run."""
    if not path.exists():
        raise SplitFileError(f"{path}: {what} not found")
    if not path.is_file():
        raise SplitFileError(f"{path}: {what} is not a regular file")
    try:
        return path.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise SplitFileError(f"{path}: not a UTF-8 text file ({err.reason})") from err


def finish_index(index: SplitIndex, classes: Sequence[str] | None = None) -> SplitIndex:
    """What only the whole dataset shows, added to `index`: labels it may not use, images
    listed twice; and its classes in order (`classes`, else those of the training split)."""
    records = [r for split in index.records.values() for r in split]
    index.problems += label_problems(records, classes)
    problems, warnings = duplicate_problems(records)
    index.problems += problems
    index.warnings += warnings
    train = index.find_train_split()
    index.classes = class_order((r.label for r in index.records.get(train, records)), classes)
    index.warnings += missing_class_warnings(index, classes)
    return index


def label_problems(records: Sequence[Record], classes: Sequence[str] | None) -> list[LineProblem]:
    """Each record whose label the dataset may not use (`label_problem`); a folder tree's
    class folder is named once, not once per image."""
    counts = Counter(r.label for r in records)
    reasons = {label: label_problem(label, counts, classes) for label in counts}
    found = (
        LineProblem(r.origin or r.path, r.line, reasons[r.label], r.split)
        for r in records
        if reasons[r.label]
    )
    return list(dict.fromkeys(found))


def missing_class_warnings(index: SplitIndex, classes: Sequence[str] | None) -> list[str]:
    """Without a class list: labels of other splits outside the training split's classes (no
    model trained on it can predict them); once per split and label."""
    if classes:
        return []  # a label outside the list is a problem already
    records = (r for split in index.records.values() for r in split)
    return [
        f"{r.where}: label {r.label!r} of split {r.split} is not among the training split's "
        f"classes ({', '.join(index.classes)}); no model trained on it can predict it"
        for r in unlearned_labels(records, index.classes)
    ]


def unlearned_labels(records: Iterable[Record], classes: Collection[str]) -> list[Record]:
    """The first record of each split and label outside `classes`: a film no model that
    learns those classes can predict."""
    first: dict[tuple[str, str], Record] = {}
    for r in records:
        if r.label not in classes:
            first.setdefault((r.split, r.label), r)
    return list(first.values())


def duplicate_problems(records: Iterable[Record]) -> tuple[list[LineProblem], list[str]]:
    """One image listed with two labels is a problem; listed twice with the same label, a
    warning (it counts twice, and across train and test it leaks)."""
    problems: list[LineProblem] = []
    warnings: list[str] = []
    first: dict[str, Record] = {}
    for record in records:
        earlier = first.setdefault(os.path.normpath(record.path), record)
        if earlier is record:
            continue
        if earlier.label != record.label:
            reason = (
                f"{record.filename} is labelled {record.label!r} here and {earlier.label!r} "
                f"at {earlier.where}"
            )
            problems.append(LineProblem(record.origin or record.path, record.line, reason,
                                        record.split))  # fmt: skip
        else:
            warnings.append(f"{record.where}: {record.filename} is listed again (also at "
                            f"{earlier.where})")  # fmt: skip
    return problems, warnings
