"""COVIDx split files → records → a torch Dataset.

A split file has one image per line, whitespace-separated `patient_id filename label [source]`;
blank lines are ignored. The images of `train*.txt` live in `ROOT/train/`, those of
`test*.txt` in `ROOT/test/`, any other split in `ROOT/<split stem>/` unless told otherwise.
The records are `medxai.data.records.Record`s, as every layout's (`medxai.data.layouts`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from monai.utils import convert_to_tensor
from torch.utils.data import Dataset

from medxai.data.classes import KNOWN_LABELS, LABEL_SETS, class_order
from medxai.data.imageio import RADIOGRAPH_SUFFIXES, read_image, to_channels
from medxai.data.records import (
    LineProblem,
    Record,
    Skipped,
    SplitIndex,
    finish_index,
    read_text_lines,
)
from medxai.errors import MedxaiError, SplitFileError
from medxai.paths import file_problem, link_problem, name_problem

__all__ = [  # the record types live in medxai.data.records; importing them from here works too
    "DEFAULT_SPLITS", "KNOWN_LABELS", "LABEL_SETS", "CovidxDataset", "LineProblem", "Record",
    "Skipped", "SplitIndex", "default_image_dir", "discover_splits", "label_set_of",
    "load_covidx", "parse_split_file", "parse_split_lines", "read_splits", "split_line",
]  # fmt: skip

DEFAULT_SPLITS = ("train.txt", "test.txt")
label_set_of = class_order  # the name older callers know the one class order by


def default_image_dir(split_name: str) -> str:
    """COVIDx keeps train*.txt images in train/ and test*.txt images in test/."""
    stem = Path(split_name).stem
    for prefix in ("train", "test"):
        if stem.startswith(prefix):
            return prefix
    return stem


def _allowed_labels(classes: Collection[str] = ()) -> str:
    sets = ["|".join(labels) for labels in LABEL_SETS.values()]
    return " or ".join(sets + ([f"--classes {'|'.join(classes)}"] if classes else []))


@dataclass(frozen=True)
class LineFields:
    patient_id: str
    filename: str
    label: str
    source: str | None


def split_line(fields: list[str], classes: Collection[str] = ()) -> LineFields | str:
    """A split line's fields, or why it is not one.

    Three or four fields are `patient_id filename label [source]`, whatever the label.
    Published COVIDx files carry patient ids with spaces ('COVID 70 COVID(70).png COVID-19
    sirm'), so a line is read around a known label (a COVIDx label or one of `classes`) when
    its third field is not one: the label is the last or the second-to-last token, the file
    name the token before it, the patient id all before that.
    """
    known = KNOWN_LABELS | set(classes)
    n = len(fields)
    if n < 3:
        return f"expected 'patient_id filename label [source]', got {n} fields"
    if n <= 4 and fields[2] in known:
        return LineFields(fields[0], fields[1], fields[2], fields[3] if n == 4 else None)
    for at in (n - 2, n - 1):
        if at >= 2 and fields[at] in known:
            source = fields[at + 1] if at + 1 < n else None
            return LineFields(" ".join(fields[: at - 1]), fields[at - 1], fields[at], source)
    if n <= 4:
        return LineFields(fields[0], fields[1], fields[2], fields[3] if n == 4 else None)
    return (
        f"expected 'patient_id filename label [source]' with the label last or second to "
        f"last, got {n} fields and no known label there ({_allowed_labels(classes)}); a line "
        "whose patient id has spaces needs a known label: pass --classes to name the labels"
    )


def _reads_as_split_line(fields: list[str], classes: Collection[str] = ()) -> bool:
    """A line of a split file: it parses, has a usable file name, and a known label or an
    image file name (so that a prose README's four-word line is not taken for one)."""
    parsed = split_line(fields, classes)
    if isinstance(parsed, str) or name_problem(parsed.filename):
        return False
    image = Path(parsed.filename).suffix.lower() in RADIOGRAPH_SUFFIXES
    return image or parsed.label in KNOWN_LABELS | set(classes)


def parse_split_lines(
    split_file: Path,
    image_dir: Path,
    strict: bool = True,
    root: Path | None = None,
    classes: Collection[str] = (),
) -> tuple[list[Record], list[LineProblem]]:
    """Parse a split file. strict: raise on the first bad line; else collect every problem.

    Besides the line's form, the path rules of `medxai.paths` apply: the file must stay
    inside `root` (default: the image folder's parent) or the image folder. Labels are
    checked against the whole dataset later (`medxai.data.records.finish_index`).
    """
    root = image_dir.parent if root is None else root
    split = split_file.name
    records: list[Record] = []
    problems: list[LineProblem] = []
    try:
        lines = read_text_lines(split_file, "split file")
    except SplitFileError as err:
        if strict:
            raise
        return [], [LineProblem(split_file, 0, str(err).removeprefix(f"{split_file}: "), split)]
    for number, text in enumerate(lines, start=1):
        fields = text.split()
        if not fields:
            continue
        parsed = split_line(fields, classes)
        problem = parsed if isinstance(parsed, str) else name_problem(parsed.filename)
        if problem is None:
            path = image_dir / parsed.filename
            problem = link_problem(path, root, image_dir)
        if problem:
            if strict:
                raise SplitFileError(f"{split_file}:{number}: {problem}")
            problems.append(LineProblem(split_file, number, problem, split))
            continue
        row = (parsed.patient_id, parsed.filename, parsed.label, parsed.source)
        records.append(Record(*row, path, split, number, split_file))
    if not records and not problems:
        problems.append(LineProblem(split_file, 0, "no image lines: the split is empty", split))
        if strict:
            raise SplitFileError(str(problems[0]))
    return records, problems


def parse_split_file(split_file: str | Path, image_dir: str | Path) -> list[Record]:
    """Parse a split file, raising SplitFileError naming file and line on any bad line."""
    records, _ = parse_split_lines(Path(split_file), Path(image_dir), strict=True)
    return records


def read_splits(
    root: str | Path,
    splits: Sequence[str],
    image_dirs: Mapping[str, str] | None = None,
    classes: Sequence[str] | None = None,
) -> SplitIndex:
    """Parse each split leniently, then check the dataset as a whole: labels it may not use,
    one image with two labels (`medxai.data.records.finish_index`)."""
    root = Path(root)
    if not root.is_dir():
        raise SplitFileError(f"{root}: dataset root not found")
    image_dirs = dict(image_dirs or {})
    index = SplitIndex(root, {}, {}, layout="covidx")
    for split in splits:
        image_dir = root / image_dirs.get(split, default_image_dir(split))
        records, problems = parse_split_lines(
            root / split, image_dir, strict=False, root=root, classes=classes or ()
        )
        index.records[split], index.image_dirs[split] = records, image_dir
        index.problems += problems
    return finish_index(index, classes)


def discover_splits(root: Path, classes: Collection[str] = ()) -> tuple[list[str], list[str]]:
    """The split files directly under `root`, and notes on `*.txt` files taken for prose.

    A `train*`/`test*` file is always a split; any other `*.txt` is one only when at least
    one of its lines reads as a split line (a README.txt does not). A training split must be
    there: without one a cleaned copy or an audit would silently lack it.
    """
    splits, notes = [], []
    for path in sorted(root.glob("*.txt")):
        if path.stem.startswith(("train", "test")) or _reads_as_split(path, classes):
            splits.append(path.name)
        else:
            notes.append(f"{path}: ignored, no line reads as 'patient_id filename label [source]'")
    if not any(name.startswith("train") for name in splits):
        raise SplitFileError(
            f"{root}: no training split (train*.txt) found; name the split files with --splits "
            "(a test set alone: --splits test.txt)"
        )
    return splits, notes


def _reads_as_split(path: Path, classes: Collection[str]) -> bool:
    if file_problem(path):  # never open a FIFO or a device to find out
        return False
    try:
        lines = path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
    except OSError:
        return False
    return any(_reads_as_split_line(text.split(), classes) for text in lines if text.strip())


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
        self.classes = class_order((r.label for r in self.records), classes)
        self.class_index = {name: i for i, name in enumerate(self.classes)}
        unknown = next((r for r in self.records if r.label not in self.class_index), None)
        if unknown:
            raise MedxaiError(
                f"{unknown.where}: label {unknown.label!r} is not among classes "
                f"{', '.join(self.classes)}"
            )
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
