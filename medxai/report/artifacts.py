"""The pictures an audit hands to the report renderer (audit.json holds only numbers)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1) in pixels, x1/y1 exclusive


@dataclass
class GalleryItem:
    """One explained test image: the radiograph as the model saw it, its maps and curves."""

    file: str
    label: str
    predicted: str
    source: str | None
    image: np.ndarray  # (H, W) float in [0, 1]
    boxes: list[Box]  # detected text boxes, pixels of `image`
    maps: dict[str, np.ndarray]  # method -> (H, W) saliency in [0, 1]
    # method -> {"deletion": 1-D, "insertion": 1-D, "deletion_auc": f, "insertion_auc": f}
    curves: dict[str, dict]


@dataclass
class CleaningExample:
    """One image before and after inpainting its detected text boxes."""

    file: str
    before: np.ndarray  # (H, W) float in [0, 1]
    after: np.ndarray  # (H, W) float in [0, 1]
    boxes: list[Box]


@dataclass
class AuditArtifacts:
    gallery: list[GalleryItem] = field(default_factory=list)
    mean_maps: dict[str, np.ndarray] = field(default_factory=dict)  # method -> (H, W) mean map
    text_frequency: np.ndarray | None = None  # (H, W) share of test images with text per pixel
    cleaning_examples: list[CleaningExample] = field(default_factory=list)
