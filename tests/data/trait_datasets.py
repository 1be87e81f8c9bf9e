"""Small two-class datasets whose classes differ in one acquisition trait, or in none.

Every film is a smooth random "anatomy" (mean 0.5, spread 0.12) with fine noise (σ 0.02),
`SIDE` pixels square, written as an 8-bit PNG. The `covid` class of a confounded dataset is
darker by 0.2 (`darker`), has a black frame of 10% per side (`frame`), or is stored at twice
the size, each pixel repeated, so that it is the same film once brought back to `SIDE`
(`size`); `none` changes nothing. Sources: hospA sends both classes, hospB only `normal`.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from medxai.data.imageio import write_png
from medxai.data.records import Record

SIDE = 128
CLASSES = ("normal", "covid")
CONFOUNDS = ("none", "darker", "frame", "size")
BLUR = 2.0
# white noise blurred by a Gaussian of σ pixels spreads 1 / (2 √π σ): a constant, not each
# film's own spread, scales it (a film scaled by its own spread would have a fixed spread
# over the whole film and a free one inside a frame: a difference of no acquisition)
ANATOMY_SPREAD = 1 / (2 * np.sqrt(np.pi) * BLUR)


def film(rng: np.random.Generator, side: int = SIDE) -> np.ndarray:
    """(side, side) float in [0, 1]."""
    field = rng.normal(0, 1, (side + 32, side + 32)).astype(np.float32)
    anatomy = cv2.GaussianBlur(field, (0, 0), BLUR)[16:-16, 16:-16]  # as even at the edges
    image = 0.5 + 0.12 * anatomy / ANATOMY_SPREAD + rng.normal(0, 0.02, (side, side))
    return image.clip(0, 1)


def confounded(image: np.ndarray, confound: str) -> np.ndarray:
    if confound == "darker":
        return (image - 0.12).clip(0, 1)
    if confound == "frame":
        framed = image.copy()
        edge = image.shape[0] // 10
        framed[:edge], framed[-edge:], framed[:, :edge], framed[:, -edge:] = 0, 0, 0, 0
        return framed
    if confound == "size":
        return np.repeat(np.repeat(image, 2, axis=0), 2, axis=1)
    return image


def write_trait_dataset(
    folder: Path, confound: str, n_per_class: int = 30, seed: int = 0
) -> list[Record]:
    """FOLDER/<label><i>.png and their records (split "train")."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records = []
    for label in CLASSES:
        for i in range(n_per_class):
            image = film(rng)
            if label == "covid":
                image = confounded(image, confound)
            path = folder / f"{label}{i}.png"
            write_png(path, (255 * image).round().astype(np.uint8))
            source = "hospA" if label == "covid" or i % 2 else "hospB"
            records.append(Record(f"p{label}{i}", path.name, label, source, path, "train", 0))
    return records


def write_csv(folder: Path, records: list[Record]) -> Path:
    """FOLDER/labels.csv listing `records` (their images already under FOLDER)."""
    lines = ["path,label,split,source,patient_id"]
    for r in records:
        lines.append(f"{r.path.relative_to(folder).as_posix()},{r.label},train,{r.source},")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder / "labels.csv"
