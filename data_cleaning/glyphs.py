"""Lone-marker detection: high-contrast glyph candidates, confirmed by a text recognizer.

Scene-text detectors (CRAFT, DB) score a lone "L" low: it has no neighbours to link to.
Here a glyph is any connected blob that stands out from its surroundings (brighter or
darker than a box-filtered background by `contrast`) with the size and fill of a letter at
1.2-11% of the film's height. A blob counts as a marker only when RapidOCR's PP-OCR
recognizer (shipped with `rapidocr`) reads it as one (LONE_CHARS, MARKER_WORDS; a wide
blob is read turned by 90 degrees too, since the recognizer reads "↑" far better than
"←"); neighbouring confirmed glyphs on one line ("A" and "P" of "AP") become one box.
Tuned on the tuning split of benchmarks/bench_detection.py only.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from medxai.boxes import Box, overlaps

# Read alone, these are markers. "1" (any stroke), "0" (any oval: a nodule, a bone in
# section) and a lone "A" or "P" read too often on anatomy; "A" and "P" count only beside
# another confirmed glyph on the same line (the "AP" / "PA" markers).
LONE_CHARS = frozenset("LR23456789↑←→↓")
PAIR_CHARS = frozenset("AP")
ARROWS = frozenset("↑←→↓")
# fit_to_ink keeps pixels off the background by this share of the box's strongest contrast:
# 0.5 cut faint strokes (phantom text-pixel recall 0.982), 0.3 kept a rim of anatomy (spill
# 1.3% on the real-film tuning split), 0.4 neither (0.998 and 0.9%).
INK_SHARE = 0.4
MARKER_WORDS = frozenset({"AP", "PA", "A-P", "P-A", "<-", "->"})  # one blob read whole
ONE_SCORE = 0.99  # "1" counts only when the recognizer is this sure
REC_HEIGHT = 48  # the recognizer's input height


@dataclass(frozen=True)
class GlyphSettings:
    work_height: int = 1024  # candidates are found at most at this height (larger films shrink)
    min_glyph: float = 0.012  # glyph height range as a share of the film height
    max_glyph: float = 0.11
    contrast: int = 40  # grey levels above / below the local background
    min_strength: float = 50  # a blob's mean contrast: burned-in text stands out sharply
    background: float = 0.15  # box filter side as a share of the film height
    max_candidates: int = 5  # highest-contrast blobs sent to the recognizer
    min_aspect: float = 0.3  # width / height: a bare stroke ("1", "|", a rib edge) is no marker
    max_aspect: float = 3.0  # an arrow is wider than high
    min_fill: float = 0.12
    max_fill: float = 0.8
    min_score: float = 0.6  # recognizer confidence to accept a reading
    pad: float = 0.35  # crop margin around a blob, as a share of its height


def local_contrast(gray: np.ndarray, s: GlyphSettings) -> np.ndarray:
    """Grey level minus the box-filtered background (float32, signed)."""
    side = max(3, int(s.background * gray.shape[0]) | 1)
    return gray.astype(np.float32) - cv2.blur(gray, (side, side)).astype(np.float32)


def candidates(gray: np.ndarray, s: GlyphSettings) -> list[Box]:
    """Letter-sized blobs brighter or darker than their surroundings, highest contrast first."""
    height = gray.shape[0]
    diff = local_contrast(gray, s)
    found = []
    for sign in (1, -1):
        mask = (sign * diff > s.contrast).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        strength = np.bincount(labels.ravel(), np.abs(diff).ravel(), count) / np.maximum(
            stats[:, 4], 1
        )
        for k in range(1, count):
            x, y, w, h, area = stats[k]
            if strength[k] >= s.min_strength and _letter_like(w, h, area, height, s):
                found.append((float(strength[k]), (int(x), int(y), int(x + w), int(y + h))))
    found.sort(key=lambda c: -c[0])
    return [box for _, box in found]


def _letter_like(w: int, h: int, area: int, height: int, s: GlyphSettings) -> bool:
    fill = area / (w * h)
    return (
        s.min_glyph * height <= h <= s.max_glyph * height
        and s.min_aspect * h <= w <= s.max_aspect * h
        and s.min_fill <= fill <= s.max_fill
    )


def crop(gray: np.ndarray, box: Box, pad: float) -> np.ndarray:
    """The blob with a margin, as RGB, for the recognizer (48 px high inside it)."""
    x0, y0, x1, y1 = box
    m = max(2, int(pad * (y1 - y0)))
    height, width = gray.shape
    patch = gray[max(0, y0 - m) : min(height, y1 + m), max(0, x0 - m) : min(width, x1 + m)]
    return np.repeat(patch[..., None], 3, axis=2)


def rapid_threads() -> dict:
    """RapidOCR's onnxruntime on this process's share of the cores — torch's threads, which
    `medxai.distributed` sets for a rank and a cleaning worker sets to 1 — not on every core,
    as onnxruntime would: two ranks or workers each on every core run slower than one."""
    import torch

    return {"EngineConfig.onnxruntime.intra_op_num_threads": torch.get_num_threads()}


class MarkerReader:
    """RapidOCR's recognizer (PP-OCR), asked whether each crop reads as a marker glyph.

    Crops go to the ONNX session directly, each at most 2:1 wide: RapidOCR's own batching
    pads every crop to 320 px wide, three times the work for a single glyph.
    """

    def __init__(self) -> None:
        from rapidocr import RapidOCR

        rec = RapidOCR(params={"Global.log_level": "error", **rapid_threads()})._load_rec_model()
        self.session = rec.session
        self.charset = rec.postprocess_op.character

    def read(self, crops: list[np.ndarray]) -> list[tuple[str, float]]:
        """(text, mean confidence) for each crop."""
        if not crops:
            return []
        widths = [_rec_width(c) for c in crops]
        batch = np.stack(
            [_normalise(c, w, max(widths)) for c, w in zip(crops, widths, strict=True)]
        )
        probs = self.session(batch)  # (N, T, classes), class 0 = CTC blank
        return [self._decode(p) for p in probs]

    def _decode(self, probs: np.ndarray) -> tuple[str, float]:
        best = probs.argmax(axis=1)
        keep = (best != 0) & np.r_[True, best[1:] != best[:-1]]
        text = "".join(self.charset[i] for i in best[keep])
        score = float(probs.max(axis=1)[keep].mean()) if keep.any() else 0.0
        return text, score


def _rec_width(rgb: np.ndarray) -> int:
    h, w = rgb.shape[:2]
    return min(2 * REC_HEIGHT, max(8, int(np.ceil(REC_HEIGHT * w / h))))


def _normalise(rgb: np.ndarray, width: int, batch_width: int) -> np.ndarray:
    """A crop as the recognizer takes it: 48 px high, left-aligned, in [-1, 1], CHW."""
    resized = cv2.resize(rgb, (width, REC_HEIGHT)).astype(np.float32) / 127.5 - 1.0
    out = np.zeros((REC_HEIGHT, batch_width, 3), np.float32)
    out[:, :width] = resized
    return out.transpose(2, 0, 1)


def _marker_kind(text: str, score: float, min_score: float) -> str | None:
    """'lone' for a marker glyph, 'pair' for an "A"/"P" needing a neighbour, else None."""
    text = text.strip().upper()
    if score < min_score:
        return None
    if text in LONE_CHARS or text in MARKER_WORDS or (text == "1" and score >= ONE_SCORE):
        return "lone"
    return "pair" if text in PAIR_CHARS else None


def _same_line(a: Box, b: Box) -> bool:
    h = max(a[3] - a[1], b[3] - b[1])
    overlap = min(a[3], b[3]) - max(a[1], b[1])
    gap = max(a[0], b[0]) - min(a[2], b[2])
    return overlap > 0.5 * min(a[3] - a[1], b[3] - b[1]) and gap < h


def merge_line(glyphs: list[tuple[Box, str]]) -> list[Box]:
    """Confirmed glyphs on one line less than a glyph height apart become one box ("A-P").

    A group of only "pair" glyphs needs two of them ("AP"); a lone "A" is dropped.
    """
    groups: list[list[tuple[Box, str]]] = []
    for glyph in sorted(glyphs):
        for group in groups:
            if any(_same_line(glyph[0], other[0]) for other in group):
                group.append(glyph)
                break
        else:
            groups.append([glyph])
    out = []
    for group in groups:
        if len(group) == 1 and group[0][1] == "pair":
            continue
        boxes = np.array([box for box, _ in group])
        out.append((*boxes[:, :2].min(axis=0).tolist(), *boxes[:, 2:].max(axis=0).tolist()))
    return [tuple(int(v) for v in b) for b in out]


def find_markers(
    gray: np.ndarray, reader: MarkerReader, s: GlyphSettings, skip: list[Box] = (),
    near: list[Box] | None = None,
) -> list[Box]:  # fmt: skip
    """Marker boxes in `gray`'s pixels; blobs inside a `skip` box are not read, and with
    `near` only blobs touching one of those boxes are."""
    factor = min(1.0, s.work_height / gray.shape[0])
    work = gray if factor == 1.0 else cv2.resize(gray, None, fx=factor, fy=factor,
                                                 interpolation=cv2.INTER_AREA)  # fmt: skip
    blobs = [b for b in candidates(work, s) if not _inside(b, skip, factor)]
    if near is not None:
        blobs = [b for b in blobs if _touches(b, near, factor)]
    blobs = blobs[: s.max_candidates]
    crops = [crop(work, b, s.pad) for b in blobs]
    kinds = [_marker_kind(text, score, s.min_score) for text, score in reader.read(crops)]
    wide = [k for k, b in enumerate(blobs) if kinds[k] is None and b[2] - b[0] > b[3] - b[1]]
    turned = reader.read([np.ascontiguousarray(np.rot90(crops[k], -1)) for k in wide])
    for k, (text, score) in zip(wide, turned, strict=True):  # "←" turned is a well-read "↑"
        if text in ARROWS and score >= s.min_score:
            kinds[k] = "lone"
    found = merge_line([(b, k) for b, k in zip(blobs, kinds, strict=True) if k])
    return [tuple(int(round(v / factor)) for v in b) for b in found]


def _touches(box: Box, others, factor: float) -> bool:
    scaled = tuple(v / factor for v in box)
    return any(overlaps(scaled, b) for b in others)


def _inside(box: Box, skip, factor: float) -> bool:
    cx, cy = (box[0] + box[2]) / 2 / factor, (box[1] + box[3]) / 2 / factor
    return any(x0 <= cx < x1 and y0 <= cy < y1 for x0, y0, x1, y1 in skip)


def fit_to_ink(box: Box, gray: np.ndarray, threshold: float, margin: int = 2) -> Box:
    """Trim a detector's box to the text's pixels inside it.

    DB grows its boxes (unclip ratio) and sometimes takes in a stretch of film. The box's
    rim is background: text is what is off the rim's median by INK_SHARE of the strongest
    difference in the box (and by `threshold` at least). A box with nothing off the
    background is kept as it is.
    """
    x0, y0, x1, y1 = box
    patch = gray[y0:y1, x0:x1].astype(np.float32)
    if min(patch.shape) < 3:
        return box
    rim = np.concatenate([patch[0], patch[-1], patch[:, 0], patch[:, -1]])
    off = np.abs(patch - float(np.median(rim)))
    ys, xs = np.nonzero(off > max(threshold, INK_SHARE * float(np.percentile(off, 99))))
    if len(xs) == 0:
        return box
    height, width = gray.shape
    return (max(0, x0 + int(xs.min()) - margin), max(0, y0 + int(ys.min()) - margin),
            min(width, x0 + int(xs.max()) + 1 + margin),
            min(height, y0 + int(ys.max()) + 1 + margin))  # fmt: skip
