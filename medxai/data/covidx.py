"""COVIDx split files → records → a torch Dataset.

A split file has one image per line, whitespace-separated `patient_id filename label [source]`;
blank lines are ignored. The images of `train*.txt` live in `ROOT/train/`, those of
`test*.txt` in `ROOT/test/`, any other split in `ROOT/<split stem>/` unless told otherwise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from medxai.data.imageio import read_image, to_channels
from medxai.errors import MedxaiError, SplitFileError
from medxai.paths import file_problem, link_problem, name_problem

LABEL_SETS: dict[str, tuple[str, ...]] = {
    "3class": ("normal", "pneumonia", "COVID-19"),
    "binary": ("negative", "positive"),
}
DEFAULT_SPLITS = ("train.txt", "test.txt")


@dataclass(frozen=True)
class Record:
    """One line of a split file, with the image path it resolves to."""

    patient_id: str
    filename: str
    label: str
    source: str | None
    path: Path
    split: str
    line: int


@dataclass(frozen=True)
class LineProblem:
    """A split-file line (or, at line 0, a whole split file) that cannot be used."""

    split_file: Path
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.split_file}:{self.line}" if self.line else str(self.split_file)
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Skipped:
    """An image left out of a run, and why."""

    record: Record
    reason: str


def default_image_dir(split_name: str) -> str:
    """COVIDx keeps train*.txt images in train/ and test*.txt images in test/."""
    stem = Path(split_name).stem
    for prefix in ("train", "test"):
        if stem.startswith(prefix):
            return prefix
    return stem


def _allowed_labels() -> str:
    return " or ".join("|".join(labels) for labels in LABEL_SETS.values())


KNOWN_LABELS = frozenset(label for names in LABEL_SETS.values() for label in names)


def label_set_of(labels: Iterable[str]) -> tuple[str, ...]:
    """The one label set (3-class or binary) that holds every label given."""
    found = set(labels)
    for names in LABEL_SETS.values():
        if found <= set(names):
            return names
    raise MedxaiError(f"labels {sorted(found)} mix label sets; use one of {_allowed_labels()}")


@dataclass(frozen=True)
class LineFields:
    patient_id: str
    filename: str
    label: str
    source: str | None


def split_line(fields: list[str]) -> LineFields | str:
    """A split line's fields, or why it is not one.

    Published COVIDx files carry patient ids with spaces ('COVID 70 COVID(70).png COVID-19
    sirm'), so the line is read around its label token: the label is the last or the
    second-to-last token, the file name the token before it, the patient id all before that.
    """
    if len(fields) < 3:
        return f"expected 'patient_id filename label [source]', got {len(fields)} fields"
    for at in (len(fields) - 2, len(fields) - 1):
        if at >= 2 and fields[at] in KNOWN_LABELS:
            source = fields[at + 1] if at + 1 < len(fields) else None
            return LineFields(" ".join(fields[: at - 1]), fields[at - 1], fields[at], source)
    if len(fields) in (3, 4):
        return f"unknown label {fields[2]!r}; allowed labels: {_allowed_labels()}"
    return (
        f"expected 'patient_id filename label [source]' with the label last or second to "
        f"last, got {len(fields)} fields and no known label there ({_allowed_labels()})"
    )


def _line_problem(fields: list[str]) -> str | None:
    parsed = split_line(fields)
    return parsed if isinstance(parsed, str) else name_problem(parsed.filename)


def _read_lines(split_file: Path) -> list[str]:
    if not split_file.exists():
        raise SplitFileError(f"{split_file}: split file not found")
    if not split_file.is_file():
        raise SplitFileError(f"{split_file}: split file is not a regular file")
    try:
        return split_file.read_text(encoding="utf-8-sig").splitlines()
    except UnicodeDecodeError as err:
        raise SplitFileError(f"{split_file}: not a UTF-8 text file ({err.reason})") from err


def parse_split_lines(
    split_file: Path, image_dir: Path, strict: bool = True, root: Path | None = None
) -> tuple[list[Record], list[LineProblem]]:
    """Parse a split file. strict: raise on the first bad line; else collect every problem.

    Besides the line's form and label, the path rules of `medxai.paths` apply: the file
    must stay inside `root` (default: the image folder's parent) or the image folder.
    """
    root = image_dir.parent if root is None else root
    records: list[Record] = []
    problems: list[LineProblem] = []
    try:
        lines = _read_lines(split_file)
    except SplitFileError as err:
        if strict:
            raise
        return [], [LineProblem(split_file, 0, str(err).removeprefix(f"{split_file}: "))]
    for number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields:
            continue
        parsed = split_line(fields)
        problem = parsed if isinstance(parsed, str) else name_problem(parsed.filename)
        if problem is None:
            path = image_dir / parsed.filename
            problem = link_problem(path, root, image_dir)
        if problem:
            if strict:
                raise SplitFileError(f"{split_file}:{number}: {problem}")
            problems.append(LineProblem(split_file, number, problem))
            continue
        row = (parsed.patient_id, parsed.filename, parsed.label, parsed.source)
        records.append(Record(*row, path, split_file.name, number))
    if not records and not problems:
        problems.append(LineProblem(split_file, 0, "no image lines: the split is empty"))
        if strict:
            raise SplitFileError(str(problems[0]))
    return records, problems


def parse_split_file(split_file: str | Path, image_dir: str | Path) -> list[Record]:
    """Parse a split file, raising SplitFileError naming file and line on any bad line."""
    records, _ = parse_split_lines(Path(split_file), Path(image_dir), strict=True)
    return records


@dataclass
class SplitIndex:
    """Every split of a dataset, parsed leniently: records, problems and warnings."""

    root: Path
    records: dict[str, list[Record]]
    image_dirs: dict[str, Path]
    problems: list[LineProblem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def raise_problems(self) -> None:
        """A user error naming the first problem (and how many more there are)."""
        if not self.problems:
            return
        more = len(self.problems) - 1
        tail = f" (and {more} more problem(s); `medxai data-check` lists them)" if more else ""
        raise SplitFileError(f"{self.problems[0]}{tail}")


def read_splits(
    root: str | Path, splits: Sequence[str], image_dirs: Mapping[str, str] | None = None
) -> SplitIndex:
    """Parse each split leniently, then check the dataset as a whole (see `dataset_problems`)."""
    root = Path(root)
    if not root.is_dir():
        raise SplitFileError(f"{root}: dataset root not found")
    image_dirs = dict(image_dirs or {})
    index = SplitIndex(root, {}, {})
    for split in splits:
        image_dir = root / image_dirs.get(split, default_image_dir(split))
        records, problems = parse_split_lines(root / split, image_dir, strict=False, root=root)
        index.records[split], index.image_dirs[split] = records, image_dir
        index.problems += problems
    problems, warnings = dataset_problems(root, index.records)
    index.problems += problems
    index.warnings += warnings
    return index


def dataset_problems(
    root: Path, splits: Mapping[str, Sequence[Record]]
) -> tuple[list[LineProblem], list[str]]:
    """Problems only the whole dataset shows: mixed label sets, one image with two labels.

    An image listed twice with the same label is a warning (it counts twice, and across
    train and test it leaks).
    """
    records = [r for split in splits.values() for r in split]
    problems = _mixed_label_sets(root, records)
    warnings: list[str] = []
    first: dict[str, Record] = {}
    for record in records:
        key = os.path.normpath(record.path)
        earlier = first.setdefault(key, record)
        if earlier is record:
            continue
        where = f"{root / earlier.split}:{earlier.line}"
        if earlier.label != record.label:
            problems.append(
                LineProblem(
                    root / record.split,
                    record.line,
                    f"{record.filename} is labelled {record.label!r} here and "
                    f"{earlier.label!r} at {where}",
                )  # fmt: skip
            )
        else:
            warnings.append(
                f"{root / record.split}:{record.line}: {record.filename} is listed again "
                f"(also at {where})"
            )
    return problems, warnings


def _mixed_label_sets(root: Path, records: Sequence[Record]) -> list[LineProblem]:
    counts = {name: sum(r.label in labels for r in records) for name, labels in LABEL_SETS.items()}
    if sum(1 for n in counts.values() if n) < 2:
        return []
    main = max(counts, key=lambda name: counts[name])
    return [
        LineProblem(
            root / r.split,
            r.line,
            f"label {r.label!r} is not in the {main} label set ({'|'.join(LABEL_SETS[main])}) "
            f"that the other {counts[main]} lines use",
        )  # fmt: skip
        for r in records
        if r.label not in LABEL_SETS[main]
    ]


def discover_splits(root: Path) -> tuple[list[str], list[str]]:
    """The split files directly under `root`, and notes on `*.txt` files taken for prose.

    A `train*`/`test*` file is always a split; any other `*.txt` is one only when at least
    one of its lines reads as a split line (a README.txt is not). A training split must be
    there: without one a cleaned copy or an audit would silently lack it.
    """
    splits, notes = [], []
    for path in sorted(root.glob("*.txt")):
        if path.stem.startswith(("train", "test")) or _reads_as_split(path):
            splits.append(path.name)
        else:
            notes.append(f"{path}: ignored, no line reads as 'patient_id filename label [source]'")
    if not any(name.startswith("train") for name in splits):
        raise SplitFileError(
            f"{root}: no training split (train*.txt) found; name the split files with --splits"
        )
    return splits, notes


def _reads_as_split(path: Path) -> bool:
    if file_problem(path):  # never open a FIFO or a device to find out
        return False
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        return False
    return any(_line_problem(text.split()) is None for text in lines if text.strip())


def load_covidx(
    root: str | Path,
    splits: Sequence[str] = DEFAULT_SPLITS,
    image_dirs: Mapping[str, str] | None = None,
) -> dict[str, list[Record]]:
    """Records of each split file under `root`, keyed by split file name.

    Raises SplitFileError on the first problem any split or the dataset as a whole has.
    """
    index = read_splits(root, splits, image_dirs)
    index.raise_problems()
    return index.records


class CovidxDataset(Dataset):
    """Images of COVIDx records as (C, H, W) float tensors with integer class labels.

    `transform` receives the channel-first float32 array in [0, 1] (see
    `medxai.data.transforms.build_transforms`). Unreadable images raise ImageReadError
    naming the file: screen records first (`medxai.data.check.screen_records`) to
    skip them knowingly.
    """

    def __init__(
        self,
        records: Sequence[Record],
        classes: Sequence[str] | None = None,
        channels: int = 1,
        transform: Callable[[np.ndarray], torch.Tensor | np.ndarray] | None = None,
    ) -> None:
        self.records = list(records)
        self.classes = tuple(classes or label_set_of(r.label for r in self.records))
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        unknown = {r.label for r in self.records} - set(self.classes)
        if unknown:
            raise MedxaiError(f"labels {sorted(unknown)} are not among classes {self.classes}")
        self.channels = channels
        self.transform = transform

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int]:
        record = self.records[index]
        image = to_channels(read_image(record.path), self.channels)  # (C, H, W)
        out = image if self.transform is None else self.transform(image)
        tensor = convert_to_tensor(out, dtype=torch.float32, track_meta=False)
        return tensor, self.class_index[record.label]

    @property
    def targets(self) -> list[int]:
        return [self.class_index[r.label] for r in self.records]
