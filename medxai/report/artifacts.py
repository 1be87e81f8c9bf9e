"""The pictures an audit hands to the report renderer (audit.json holds only numbers)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from medxai.boxes import Box


@dataclass
class Curves:
    """One map's deletion and insertion curves over the moved fraction, and their AUCs."""

    fractions: np.ndarray
    deletion: np.ndarray
    insertion: np.ndarray
    deletion_auc: float
    insertion_auc: float


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
    curves: dict[str, Curves]  # method -> curves
    insensitive: tuple[str, ...] = ()  # methods that failed the sanity check: maps greyed
    no_map: dict[str, str] = field(default_factory=dict)  # method -> why it found no map


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
    # method -> (maps of the trained model, maps of the randomised model), (N, H, W) each
    sanity_maps: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
