"""Natural-image datasets: the ImageNet validation layout or an ImageFolder tree.

ImageNet val: a flat folder of images plus a labels file, either `LOC_val_solution.csv`
(`ImageId,PredictionString` with the synset first) or a `val.txt`-style file of
`filename label_index` lines. ImageFolder: one sub-folder per class. Class indices follow a
class-index file when given (one class per line, first token = synset or folder name, e.g.
`LOC_synset_mapping.txt`), else the sorted class names: the torchvision/ImageNet order.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from monai.utils import convert_to_tensor
from PIL import Image, UnidentifiedImageError
from torchvision.transforms import functional as TF

from medxai.data.imageio import to_channels
from medxai.data.transforms import Preprocessing, intensity_steps
from medxai.errors import DatasetError, ImageReadError

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp"}
LABEL_FILES = ("LOC_val_solution.csv", "val.txt", "labels.txt")


@dataclass(frozen=True)
class ImageRecord:
    """One image: its file, a unique name (outputs are keyed by it), its class index if known."""

    path: Path
    name: str
    label: int | None = None


def load_image(path: Path, prep: Preprocessing) -> torch.Tensor:
    """A photograph -> model input (channels, S, S), resampled bilinearly (see Preprocessing).

    Unreadable files raise an ImageReadError naming the path.
    """
    prep.check()
    try:
        with Image.open(path) as img:
            image = img.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise ImageReadError(f"{path}: cannot read image ({err})") from err
    x = TF.to_tensor(image)
    if prep.channels != 3:
        x = torch.from_numpy(to_channels(x.permute(1, 2, 0).numpy(), prep.channels))
    x = prep.geometry(x)
    for step in intensity_steps(prep):
        x = convert_to_tensor(step(x), track_meta=False)
    return x


def read_class_index(path: Path) -> list[str]:
    """Class names in index order: the first token of every non-empty line."""
    if not path.is_file():
        raise DatasetError(f"{path}: class-index file not found")
    names = [line.split()[0] for line in path.read_text(encoding="utf-8").splitlines() if line]
    if len(set(names)) != len(names):
        raise DatasetError(f"{path}: class names repeat")
    return names


def _images_in(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)


def _labels_from_file(path: Path, classes: list[str] | None) -> tuple[dict[str, int], list[str]]:
    """Image stem -> class index from LOC_val_solution.csv or `filename index` lines."""
    if path.suffix == ".csv":
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"ImageId", "PredictionString"} <= set(rows[0]):
            raise DatasetError(f"{path}: expected columns ImageId,PredictionString")
        synsets = {r["ImageId"]: (r["PredictionString"].split() or [""])[0] for r in rows}
        classes = classes or sorted(set(synsets.values()))
        index = {name: i for i, name in enumerate(classes)}
        unknown = sorted(set(synsets.values()) - set(index))
        if unknown:
            raise DatasetError(f"{path}: synset {unknown[0]} is not in the class index")
        return {stem: index[s] for stem, s in synsets.items()}, classes
    labels: dict[str, int] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isdigit():
            raise DatasetError(f"{path}:{number}: expected 'filename label_index', got {line!r}")
        labels[Path(parts[0]).stem] = int(parts[1])
    top = max(labels.values(), default=-1)
    return labels, classes or [str(i) for i in range(top + 1)]


def load_image_dataset(
    root: Path, labels_file: Path | None = None, class_index: Path | None = None
) -> tuple[list[ImageRecord], list[str]]:
    """Records sorted by name, and the class names, from either layout (see module doc)."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(f"{root}: image folder not found")
    classes = read_class_index(class_index) if class_index else None
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    if labels_file is None:
        labels_file = next((root / n for n in LABEL_FILES if (root / n).is_file()), None)
    if labels_file is None and folders:
        classes = classes or [p.name for p in folders]
        index = {name: i for i, name in enumerate(classes)}
        extra = [p.name for p in folders if p.name not in index]
        if extra:
            raise DatasetError(f"{root / extra[0]}: class folder not in the class index")
        records = [
            ImageRecord(p, f"{folder.name}/{p.stem}", index[folder.name])
            for folder in folders
            for p in _images_in(folder)
        ]
    else:
        labels, classes = _labels_from_file(labels_file, classes) if labels_file else ({}, [])
        records = [ImageRecord(p, p.stem, labels.get(p.stem)) for p in _images_in(root)]
    if not records:
        raise DatasetError(f"{root}: no images found (ImageFolder tree or flat folder)")
    return sorted(records, key=lambda r: r.name), list(classes or [])


def sample_records(records: Sequence[ImageRecord], n: int, seed: int) -> list[ImageRecord]:
    """A seeded random sample of n records (all when n <= 0), kept in name order."""
    if n <= 0 or n >= len(records):
        return list(records)
    chosen = sorted(random.Random(seed).sample(range(len(records)), n))
    return [records[i] for i in chosen]
