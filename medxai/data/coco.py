"""COCO instance annotations through pycocotools: images, labels, per-class union masks.

Category ids map to contiguous indices in sorted id order (80 for COCO). A malformed
annotation file or a missing image raises `DatasetError` naming the file.
"""

from __future__ import annotations

import contextlib
import io
import json
import warnings
from pathlib import Path

import numpy as np
from pycocotools.coco import COCO

from medxai.errors import DatasetError

_REQUIRED = {
    "images": ("id", "file_name", "height", "width"),
    "annotations": ("image_id", "category_id", "segmentation"),
    "categories": ("id", "name"),
}


def _read_json(path: Path) -> dict:
    if not path.is_file():
        raise DatasetError(f"{path}: annotation file not found")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise DatasetError(f"{path}: not a JSON annotation file ({err})") from err
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected a COCO object with images/annotations/categories")
    for section, keys in _REQUIRED.items():
        entries = data.get(section)
        if not isinstance(entries, list):
            raise DatasetError(f"{path}: missing the {section!r} list")
        for i, entry in enumerate(entries):
            missing = [k for k in keys if not isinstance(entry, dict) or k not in entry]
            if missing:
                raise DatasetError(f"{path}: {section}[{i}] lacks {', '.join(missing)}")
    return data


class CocoInstances:
    """One annotation file plus the folder of its images."""

    def __init__(self, annotations: str | Path, image_root: str | Path) -> None:
        self.annotations = Path(annotations)
        self.image_root = Path(image_root)
        data = _read_json(self.annotations)
        self.coco = COCO()
        self.coco.dataset = data
        with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints progress
            self.coco.createIndex()
        cat_ids = sorted(self.coco.getCatIds())
        self.category_ids = cat_ids
        self.index = {cid: i for i, cid in enumerate(cat_ids)}
        self.names = [self.coco.cats[cid]["name"] for cid in cat_ids]
        unknown = {a["category_id"] for a in data["annotations"]} - set(self.index)
        if unknown:
            raise DatasetError(f"{self.annotations}: category id {min(unknown)} not in categories")
        orphans = {a["image_id"] for a in data["annotations"]} - set(self.coco.imgs)
        if orphans:
            raise DatasetError(f"{self.annotations}: annotation of unknown image {min(orphans)}")

    def image_ids(self) -> list[int]:
        return sorted(self.coco.getImgIds())

    def image_path(self, image_id: int) -> Path:
        """The image file; a missing one is a DatasetError naming it."""
        path = self.image_root / self.coco.imgs[image_id]["file_name"]
        if not path.is_file():
            raise DatasetError(f"{path}: image of {self.annotations.name} not found")
        return path

    def check_images(self, image_ids: list[int]) -> None:
        """Raise for the first missing image, before any long work starts."""
        for image_id in image_ids:
            self.image_path(image_id)

    def labels(self, image_id: int) -> np.ndarray:
        """Multi-hot float32 (K,): 1 for every category with an instance in the image."""
        out = np.zeros(len(self.index), dtype=np.float32)
        for ann in self.coco.imgToAnns[image_id]:
            out[self.index[ann["category_id"]]] = 1.0
        return out

    def class_mask(self, image_id: int, category: int) -> np.ndarray:
        """Union of the category's instance masks, bool (H, W) at the image's own size."""
        info = self.coco.imgs[image_id]
        mask = np.zeros((info["height"], info["width"]), dtype=bool)
        cid = self.category_ids[category]
        for ann in self.coco.imgToAnns[image_id]:
            if ann["category_id"] == cid:
                try:
                    with warnings.catch_warnings():  # pycocotools' numpy-2 copy= notice
                        warnings.simplefilter("ignore", DeprecationWarning)
                        mask |= self.coco.annToMask(ann).astype(bool)
                except (TypeError, KeyError, ValueError, IndexError) as err:
                    raise DatasetError(
                        f"{self.annotations}: bad segmentation in annotation {ann.get('id')} "
                        f"({err})"
                    ) from err
        return mask
