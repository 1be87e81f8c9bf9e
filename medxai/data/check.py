"""Validate a dataset (any layout): what is there, and everything that is wrong with it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from medxai.data.classes import class_order, parse_classes
from medxai.data.imageio import read_raw
from medxai.data.layouts import read_dataset
from medxai.data.needs import Needs, dataset_needs
from medxai.data.records import LineProblem, Record, Skipped, SplitIndex
from medxai.errors import ImageReadError
from medxai.paths import file_problem
from medxai.statistics.confound import SourceConfound, source_confound


@dataclass
class SplitReport:
    """Counts and problems of one split."""

    split: str
    image_dir: Path
    records: list[Record] = field(default_factory=list)
    line_problems: list[LineProblem] = field(default_factory=list)
    unreadable: list[Skipped] = field(default_factory=list)
    formats: Counter = field(default_factory=Counter)
    sizes: Counter = field(default_factory=Counter)
    bit_depths: Counter = field(default_factory=Counter)
    burned_in: Counter = field(default_factory=Counter)  # DICOM Burned In Annotation values

    @property
    def classes(self) -> Counter:
        return Counter(r.label for r in self.records)

    @property
    def sources(self) -> Counter:
        return Counter(r.source or "-" for r in self.records)

    def source_label_counts(self, classes: Sequence[str]) -> dict[str, dict[str, int]]:
        """Images per source ("-" when unknown) and class, every class listed."""
        counts: dict[str, Counter] = {}
        for r in self.records:
            counts.setdefault(r.source or "-", Counter())[r.label] += 1
        return {s: {c: per[c] for c in classes} for s, per in sorted(counts.items())}

    def confound(self, classes: Sequence[str]) -> SourceConfound:
        """How far this split's labels can be read off its sources alone."""
        return source_confound(self.source_label_counts(classes))

    @property
    def ok(self) -> bool:
        return not (self.line_problems or self.unreadable)


@dataclass
class DatasetReport:
    root: Path
    splits: list[SplitReport]
    warnings: list[str] = field(default_factory=list)  # e.g. an image listed twice
    notes: list[str] = field(default_factory=list)  # e.g. a README.txt not taken for a split
    problems: list[LineProblem] = field(default_factory=list)  # of no split (a CSV's header)
    classes: tuple[str, ...] = ()  # the dataset's classes in order (SplitIndex.classes)
    layout: str = "covidx"
    location: Path | None = None  # what was read: the root, or a CSV manifest
    layout_why: str = ""  # why it was read as `layout`
    needs: Needs = field(default_factory=Needs)  # what training and the audit ask of it

    @property
    def ok(self) -> bool:
        return not (self.problems or self.needs.problems) and all(s.ok for s in self.splits)

    def label_order(self) -> list[str]:
        """The labels present, in the dataset's class order (`class_order`), others after."""
        found = {label for split in self.splits for label in split.classes}
        ordered = class_order(found, self.classes or None)
        return [name for name in ordered if name in found] + sorted(found - set(ordered))

    def shared_patients(self) -> dict[tuple[str, str], set[str]]:
        """Patients found in two splits (train/test leakage), per pair of splits."""
        patients = {s.split: {r.patient_id for r in s.records} for s in self.splits}
        names = list(patients)
        return {
            (a, b): patients[a] & patients[b]
            for i, a in enumerate(names)
            for b in names[i + 1 :]
            if patients[a] & patients[b]
        }


@dataclass(frozen=True)
class ImageInfo:
    format: str
    size: tuple[int, int]  # (width, height)
    bit_depth: int
    burned_in: str | None = None


def inspect_image(path: Path, decode: bool = True) -> ImageInfo | str | None:
    """ImageInfo when the image decodes, None when it exists (decode=False), else the reason."""
    if not decode:
        return file_problem(path)
    try:
        raw = read_raw(path)
    except ImageReadError as err:
        return str(err).removeprefix(f"{path}: ")
    height, width = raw.pixels.shape[:2]
    return ImageInfo(raw.format, (width, height), raw.bit_depth, raw.burned_in)


def _inspect_all(
    records: Sequence[Record], decode: bool, workers: int
) -> Iterator[tuple[Record, ImageInfo | str | None]]:
    with ThreadPoolExecutor(max_workers=workers) as pool:
        results = pool.map(lambda r: inspect_image(r.path, decode), records)
        yield from zip(records, results, strict=True)


def screen_records(
    records: Sequence[Record], decode: bool = True, workers: int = 4
) -> tuple[list[Record], list[Skipped]]:
    """Split records into readable ones and skipped ones, each with its reason."""
    good, skipped = [], []
    for record, result in _inspect_all(records, decode, workers):
        if isinstance(result, str):
            skipped.append(Skipped(record, result))
        else:
            good.append(record)
    return good, skipped


def check_dataset(
    root: str | Path,
    splits: Sequence[str] | None = None,
    image_dirs: Mapping[str, str] | None = None,
    decode: bool = True,
    workers: int = 4,
    progress: Callable[[int, int], None] | None = None,
    index: SplitIndex | None = None,
    layout: str = "auto",
    classes: str | Sequence[str] | None = None,
    source_from: str = "none",
) -> DatasetReport:
    """Read every split leniently and (with `decode`) every image once.

    `root`: a dataset folder or a CSV manifest, read as `medxai.data.layouts.read_dataset`
    reads it (`splits`, `layout`, `classes`, `source_from`, `image_dirs`); `index`, the
    dataset already read (with the class list `classes`), spares reading it again. What
    training and the audit ask of the dataset is checked as they check it
    (`medxai.data.needs`). `progress(advance, total)` is called once per image.
    """
    classes = parse_classes(classes) if isinstance(classes, str) else classes
    index = index or read_dataset(root, layout, splits, classes, source_from, image_dirs)
    reports = [
        SplitReport(split, index.image_dirs[split], records, index.problems_of(split))
        for split, records in index.records.items()
    ]
    listed = {id(p) for report in reports for p in report.line_problems}
    total = sum(len(r.records) for r in reports)
    for report in reports:
        for record, result in _inspect_all(report.records, decode, workers):
            if isinstance(result, str):
                report.unreadable.append(Skipped(record, result))
            elif result is not None:
                report.formats[result.format] += 1
                report.sizes[result.size] += 1
                report.bit_depths[result.bit_depth] += 1
                if result.burned_in is not None:
                    report.burned_in[result.burned_in] += 1
            if progress:
                progress(1, total)
    return DatasetReport(
        index.root, reports, index.warnings, index.notes,
        [p for p in index.problems if id(p) not in listed], index.classes, index.layout,
        index.listing or Path(root), index.layout_why, dataset_needs(index, classes),
    )  # fmt: skip
