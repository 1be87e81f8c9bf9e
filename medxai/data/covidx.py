"""COVIDx split files → records → a torch Dataset.

A split file has one image per line, whitespace-separated `patient_id filename label [source]`;
blank lines are ignored. The images of `train*.txt` live in `ROOT/train/`, those of
`test*.txt` in `ROOT/test/`, any other split in `ROOT/<split stem>/` unless told otherwise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from medxai.data.imageio import read_image, to_channels
from medxai.errors import MedxaiError, SplitFileError

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
    """A split-file line that could not be parsed."""

    split_file: Path
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.split_file}:{self.line}: {self.reason}"


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


def label_set_of(labels: Iterable[str]) -> tuple[str, ...]:
    """The one label set (3-class or binary) that holds every label given."""
    found = set(labels)
    for names in LABEL_SETS.values():
        if found <= set(names):
            return names
    raise MedxaiError(f"labels {sorted(found)} mix label sets; use one of {_allowed_labels()}")


def parse_split_lines(
    split_file: Path, image_dir: Path, strict: bool = True
) -> tuple[list[Record], list[LineProblem]]:
    """Parse a split file. strict: raise on the first bad line; else collect every problem."""
    if not split_file.is_file():
        raise SplitFileError(f"{split_file}: split file not found")
    known = {label for names in LABEL_SETS.values() for label in names}
    records: list[Record] = []
    problems: list[LineProblem] = []
    try:
        lines = split_file.read_text(encoding="utf-8").splitlines()
    except UnicodeDecodeError as err:
        raise SplitFileError(f"{split_file}: not a UTF-8 text file ({err.reason})") from err
    for number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields:
            continue
        problem = None
        if len(fields) not in (3, 4):
            problem = f"expected 'patient_id filename label [source]', got {len(fields)} fields"
        elif fields[2] not in known:
            problem = f"unknown label {fields[2]!r}; allowed labels: {_allowed_labels()}"
        if problem:
            if strict:
                raise SplitFileError(f"{split_file}:{number}: {problem}")
            problems.append(LineProblem(split_file, number, problem))
            continue
        patient_id, filename, label = fields[:3]
        source = fields[3] if len(fields) == 4 else None
        records.append(
            Record(
                patient_id, filename, label, source, image_dir / filename, split_file.name, number
            )
        )
    return records, problems


def parse_split_file(split_file: str | Path, image_dir: str | Path) -> list[Record]:
    """Parse a split file, raising SplitFileError naming file and line on any bad line."""
    records, _ = parse_split_lines(Path(split_file), Path(image_dir), strict=True)
    return records


def load_covidx(
    root: str | Path,
    splits: Sequence[str] = DEFAULT_SPLITS,
    image_dirs: Mapping[str, str] | None = None,
) -> dict[str, list[Record]]:
    """Records of each split file under `root`, keyed by split file name."""
    root = Path(root)
    if not root.is_dir():
        raise SplitFileError(f"{root}: dataset root not found")
    image_dirs = dict(image_dirs or {})
    return {
        split: parse_split_file(
            root / split, root / image_dirs.get(split, default_image_dir(split))
        )
        for split in splits
    }


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
