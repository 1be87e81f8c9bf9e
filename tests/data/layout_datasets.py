"""Tiny datasets with a non-COVIDx label set in the CSV manifest and folder-tree layouts.

Both hold the same images: train has 6 `effusion` films, all from hospA, and 6 `clear`
films, all from hospB (the source determines the label); test has one film of each class
from each hospital (no association). Films are 32×32 PNGs; an effusion film is brighter at
the bottom, so a model can learn it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from medxai.data.imageio import write_png

CLASSES = ("effusion", "clear")  # not the sorted order: a class list must keep it
N_TRAIN = 6  # per class
ROWS = [  # (split, label, source, index)
    *(("train", "effusion", "hospA", i) for i in range(N_TRAIN)),
    *(("train", "clear", "hospB", i) for i in range(N_TRAIN)),
    *(("test", label, source, 0) for label in CLASSES for source in ("hospA", "hospB")),
]


def film(label: str, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    image = rng.normal(90, 15, (32, 32))
    if label == "effusion":
        image[20:, :] += 100
    return image.clip(0, 255).astype(np.uint8)


def write_csv_dataset(folder: Path, extra_column: bool = True) -> Path:
    """FOLDER/labels.csv (path,label,split,source,patient_id[,age]) and FOLDER/images/…"""
    folder.mkdir(parents=True, exist_ok=True)
    header = "path,label,split,source,patient_id" + (",age" if extra_column else "")
    lines = [header]
    for n, (split, label, source, i) in enumerate(ROWS):
        path = f"images/{split}/{source}_{label}{i}.png"
        (folder / path).parent.mkdir(parents=True, exist_ok=True)
        write_png(folder / path, film(label, n))
        patient = "" if split == "test" else f"p{label}{i // 2}"  # test: the stem
        lines.append(f"{path},{label},{split},{source},{patient}" + (",61" if extra_column else ""))
    (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "labels.csv"


def write_folder_dataset(root: Path, sources_as: str = "dir") -> Path:
    """ROOT/<split>/<class>/<source>/<label><i>.png (dir) or …/<class>/<source>_<label><i>.png
    (prefix)."""
    for n, (split, label, source, i) in enumerate(ROWS):
        name = f"{label}{i}{'t' if split == 'test' else ''}.png"
        path = root / split / label / (f"{source}/{name}" if sources_as == "dir" else
                                       f"{source}_{name}")  # fmt: skip
        path.parent.mkdir(parents=True, exist_ok=True)
        write_png(path, film(label, n))
    return root
