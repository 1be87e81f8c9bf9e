"""Text boxes → a dilated mask → OpenCV Telea inpainting at the image's own bit depth."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

from data_cleaning.detect import Box
from medxai.errors import ImageReadError

TELEA_RADIUS = 10  # the iGOS++ paper's COVIDx++ setting


def boxes_to_mask(shape: tuple[int, ...], boxes: Sequence[Box], dilate: int) -> np.ndarray:
    """uint8 (H, W) mask, 255 inside the boxes grown by `dilate` pixels on every side."""
    height, width = shape[:2]
    mask = np.zeros((height, width), np.uint8)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0 - dilate) : y1 + dilate, max(0, x0 - dilate) : x1 + dilate] = 255
    return mask


def inpaint(pixels: np.ndarray, mask: np.ndarray, radius: int = TELEA_RADIUS) -> np.ndarray:
    """cv2.inpaint with Telea's method; uint8 gray/RGB, uint16 gray, and signed 16-bit kept."""
    if not mask.any():
        return pixels.copy()
    if pixels.dtype == np.int16:  # signed DICOM: shift into uint16 and back
        shifted = (pixels.astype(np.int32) + 32768).astype(np.uint16)
        return (inpaint(shifted, mask, radius).astype(np.int32) - 32768).astype(np.int16)
    if pixels.dtype == np.uint16 and pixels.ndim == 3:
        planes = [inpaint(np.ascontiguousarray(pixels[..., c]), mask, radius) for c in range(3)]
        return np.stack(planes, axis=-1)
    if pixels.dtype not in (np.uint8, np.uint16):
        raise ImageReadError(f"cannot inpaint pixels of type {pixels.dtype}")
    return cv2.inpaint(np.ascontiguousarray(pixels), mask, radius, cv2.INPAINT_TELEA)
