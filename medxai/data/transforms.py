"""MONAI transform chains for radiographs: (C, H, W) float32 in [0, 1] in, tensor out.

The preprocessing is a plain dict (`Preprocessing.to_dict`) so a checkpoint can carry it
and `explain`/`evaluate` rebuild exactly the chain the model was trained with.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np
from monai.transforms import (
    Compose,
    NormalizeIntensity,
    RandAffine,
    RandScaleIntensity,
    RandShiftIntensity,
    Resize,
    ScaleIntensity,
    Transform,
)

from medxai.errors import MedxaiError

EPS = 1e-9  # rounding slack: 99 * (100 / 180) must map to 55, not 56
COVIDNET_TOP_CROP = 0.08  # COVID-Net crops the top 8% of every radiograph
INTENSITY_MODES = {
    # Zero mean, unit variance per image: exposure-invariant, and it keeps first-layer
    # activations near the scale batch norm's running statistics start from.
    "standardize": "per-image zero mean, unit standard deviation",
    "unit": "per-image min-max to [0, 1]",
    "none": "decoded values in [0, 1], unchanged",
}


class CropTopBand(Transform):
    """Remove the top `fraction` of rows, like COVID-Net's preprocessing.

    Off by default in medxai: the top band is where hospitals burn in text, and hiding it
    also hides the shortcut an audit must find.
    """

    def __init__(self, fraction: float) -> None:
        if not 0.0 <= fraction < 1.0:
            raise MedxaiError(f"top-crop fraction must be in [0, 1), got {fraction}")
        self.fraction = fraction

    def __call__(self, image: np.ndarray) -> np.ndarray:
        rows = image.shape[-2]
        return image[..., int(round(rows * self.fraction)) :, :]


@dataclass(frozen=True)
class Preprocessing:
    """What turns a decoded image into model input; stored in every checkpoint."""

    image_size: int = 224
    channels: int = 1
    top_crop: float = 0.0
    intensity: str = "standardize"  # standardize | unit | none (see INTENSITY_MODES)

    def to_dict(self) -> dict:
        return asdict(self)

    def map_boxes(
        self, boxes: Sequence[Sequence[float]], shape: tuple[int, int]
    ) -> list[tuple[int, int, int, int]]:
        """Boxes (x0, y0, x1, y1) on a (H, W) original → on the model input (crop, resize).

        Boxes wholly inside the cropped top band vanish; the rest are clipped to the input.
        """
        height, width = shape
        cut = int(round(height * self.top_crop))
        sy, sx = self.image_size / (height - cut), self.image_size / width
        mapped = []
        for x0, y0, x1, y1 in boxes:
            box = (
                max(0, math.floor(x0 * sx + EPS)),
                max(0, math.floor((y0 - cut) * sy + EPS)),
                min(self.image_size, math.ceil(x1 * sx - EPS)),
                min(self.image_size, math.ceil((y1 - cut) * sy - EPS)),
            )
            if box[2] > box[0] and box[3] > box[1]:
                mapped.append(box)
        return mapped

    @classmethod
    def from_dict(cls, values: dict) -> Preprocessing:
        unknown = set(values) - set(cls.__dataclass_fields__)
        if unknown:
            raise MedxaiError(f"unknown preprocessing fields {sorted(unknown)}")
        return cls(**values)


@dataclass(frozen=True)
class Augmentation:
    """Small geometric and brightness jitter; no flips (they would mirror L/R markers)."""

    rotate_deg: float = 5.0
    shift: float = 0.05
    zoom: float = 0.05
    brightness: float = 0.1
    prob: float = 0.8


def build_transforms(
    prep: Preprocessing, augment: Augmentation | None = None, seed: int = 0
) -> Compose:
    """Deterministic eval chain, or the training chain when `augment` is given."""
    if prep.image_size < 8:
        raise MedxaiError(f"image size must be at least 8 pixels, got {prep.image_size}")
    steps: list = []
    if prep.top_crop:
        steps.append(CropTopBand(prep.top_crop))
    steps.append(Resize((prep.image_size, prep.image_size), mode="area"))
    if prep.intensity not in INTENSITY_MODES:
        raise MedxaiError(
            f"unknown intensity mode {prep.intensity!r}; use {', '.join(INTENSITY_MODES)}"
        )
    if prep.intensity == "standardize":
        steps.append(NormalizeIntensity())
    elif prep.intensity == "unit":
        steps.append(ScaleIntensity(minv=0.0, maxv=1.0))
    if augment is not None:
        size = prep.image_size
        steps += [
            RandAffine(
                prob=augment.prob,
                rotate_range=math.radians(augment.rotate_deg),
                translate_range=(augment.shift * size, augment.shift * size),
                scale_range=(augment.zoom, augment.zoom),
                padding_mode="border",
            ),
            RandScaleIntensity(factors=augment.brightness, prob=augment.prob),
            RandShiftIntensity(offsets=augment.brightness, prob=augment.prob),
        ]
    chain = Compose(steps)
    chain.set_random_state(seed=seed)
    return chain
