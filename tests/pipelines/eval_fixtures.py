"""Tiny ImageFolder trees and COCO files for the evaluation-suite tests.

Images carry `medxai.explain.toy`'s evidence: a +-1 checkerboard in the box (8, 20, 8, 20)
of a 32 px image, stored as PNG with v = (x + 1) / 2, so the "lite" normalisation
((v - 0.498) / 0.502) gives the toy model back x.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from medxai.data.imagefolder import load_image
from medxai.data.imageio import write_png
from medxai.data.transforms import Preprocessing
from medxai.explain.toy import square_images

SIZE = 32
TOY_PREP = Preprocessing(image_size=SIZE, channels=3, intensity="lite")  # whole image
TOY_IMPORT = "medxai.explain.toy:SquareEvidenceNet"


def toy_loader(path: Path):
    return load_image(path, TOY_PREP)


def write_toy_png(path: Path, seed: int, evidence: bool = True) -> None:
    x = (
        square_images(1, SIZE, seed=seed)[0]
        if evidence
        else square_images(1, SIZE, (0, 0, 0, 0), seed)[0]
    )
    rgb = np.clip((x.permute(1, 2, 0).numpy() + 1) / 2 * 255, 0, 255).round().astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_png(path, rgb)


def write_toy_tree(root: Path, n_per_class: int = 3) -> Path:
    """ImageFolder tree: plain/ holds noise, square/ holds the evidence."""
    for c, name in enumerate(("plain", "square")):
        for i in range(n_per_class):
            write_toy_png(root / name / f"{name}{i}.png", seed=10 * c + i, evidence=bool(c))
    return root


def box_polygon(y0: int, y1: int, x0: int, x1: int) -> list[list[float]]:
    return [[x0, y0, x1, y0, x1, y1, x0, y1]]


def write_toy_coco(root: Path) -> Path:
    """Two images with the evidence square and two categories (ids 3 'thing', 7 'other').

    img1: 'other' covers the square (its score is high), 'thing' lies elsewhere (its score is
    low: never evaluated). img2: 'other' lies away from the square: a miss.
    """
    images = [
        {"id": 1, "file_name": "img1.png", "height": SIZE, "width": SIZE},
        {"id": 2, "file_name": "img2.png", "height": SIZE, "width": SIZE},
    ]
    anns = [
        {"id": 10, "image_id": 1, "category_id": 7, "segmentation": box_polygon(6, 22, 6, 22),
         "iscrowd": 0, "area": 256.0, "bbox": [6, 6, 16, 16]},
        {"id": 11, "image_id": 1, "category_id": 3, "segmentation": box_polygon(24, 31, 0, 31),
         "iscrowd": 0, "area": 200.0, "bbox": [0, 24, 31, 7]},
        {"id": 12, "image_id": 2, "category_id": 7, "segmentation": box_polygon(24, 31, 0, 31),
         "iscrowd": 0, "area": 200.0, "bbox": [0, 24, 31, 7]},
    ]  # fmt: skip
    cats = [{"id": 3, "name": "thing"}, {"id": 7, "name": "other"}]
    for image in images:
        write_toy_png(root / image["file_name"], seed=image["id"])
    path = root / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": anns, "categories": cats}))
    return path
