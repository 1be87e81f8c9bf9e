"""Pictures people look at: saliency heatmaps over radiographs."""

from __future__ import annotations

import numpy as np
from matplotlib import colormaps


def to_display(image: np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) model input, any scale → (H, W) gray in [0, 1] (min-max)."""
    gray = image.mean(axis=0) if image.ndim == 3 else image
    lo, hi = float(gray.min()), float(gray.max())
    return (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray, dtype=np.float32)


def heatmap_overlay(
    image: np.ndarray, saliency: np.ndarray, alpha: float = 0.45, cmap: str = "jet"
) -> np.ndarray:
    """RGB uint8 (H, W, 3): the radiograph in gray with the saliency colour-mapped on top.

    Transparency follows saliency, so unimportant regions keep the plain radiograph.
    """
    gray = to_display(image)[..., None].repeat(3, axis=2)
    colour = colormaps[cmap](np.clip(saliency, 0.0, 1.0))[..., :3]
    weight = alpha * np.clip(saliency, 0.0, 1.0)[..., None] ** 0.5
    return np.round(255 * ((1 - weight) * gray + weight * colour)).astype(np.uint8)
