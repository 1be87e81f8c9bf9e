"""Burned-in text of the phantom dataset's sources (hospitals): styles and stamping.

Each source stamps its own text (laterality letter, words such as "PORTABLE", a date, a site
code) in its own font, place, size and brightness. Text is the only thing that differs between
sources, so a classifier that tells sources apart can only be reading the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

HERSHEY_FONTS = {
    "simplex": cv2.FONT_HERSHEY_SIMPLEX,
    "duplex": cv2.FONT_HERSHEY_DUPLEX,
    "complex": cv2.FONT_HERSHEY_COMPLEX,
    "triplex": cv2.FONT_HERSHEY_TRIPLEX,
    "plain": cv2.FONT_HERSHEY_PLAIN,
}
PIL_FONT = "pil"  # PIL's built-in scalable font (Aileron), via ImageFont.load_default(size=...)

# Per-image jitter, as fractions of the image side (positions, margins) or of the value itself.
POSITION_JITTER = 0.012
HEIGHT_JITTER = 0.08
VALUE_JITTER = 0.03
LINE_GAP = 0.45  # gap between stacked lines, in cap heights
BOX_PAD = 0.3  # padding of the dark box around a line, in cap heights


@dataclass(frozen=True)
class Stamp:
    """One line of text: `text` is a literal or one of {LATERALITY}, {DATE}, {SITE}, {TIME}."""

    text: str
    anchor: str  # "tl", "tr", "bl", "br", "tc", "bc", or "side" (laterality: R left, L right)
    prob: float = 1.0


@dataclass(frozen=True)
class SourceStyle:
    """How one source stamps its text; sizes are fractions of the image side."""

    name: str
    site: str
    covid: bool  # a "COVID source": under the confound, COVID-19 images come from these
    font: str  # a key of HERSHEY_FONTS or PIL_FONT
    italic: bool
    cap_height: float  # height of a capital letter
    thickness: float  # stroke width (Hershey fonts only)
    value: float  # text brightness in [0, 1]
    box: float  # opacity of a dark box behind each line, 0 for none
    margin: float
    date_format: str  # with {y} {m} {d} fields
    side_y: float  # vertical place of the laterality letter, fraction of the side from the top
    side_scale: float  # laterality letter height relative to cap_height
    stamps: tuple[Stamp, ...]


# Each source's styles, one row per source; the columns are SourceStyle's fields.
_PLACE_FIELDS = ("site", "covid", "margin", "date_format", "side_y", "side_scale")
_PLACE = {
    "src-a": ("MTL-02", True, 0.04, "{m:02d}/{d:02d}/{y}", 0.3, 1.7),
    "src-b": ("BGM-7", True, 0.03, "{d:02d}.{m:02d}.{y}", 0.45, 1.5),
    "src-c": ("NIHCC", False, 0.05, "{y}-{m:02d}-{d:02d}", 0.08, 1.8),
    "src-d": ("RSN4", False, 0.035, "{y}{m:02d}{d:02d}", 0.3, 1.6),
    "src-e": ("SZH-1", False, 0.04, "{d:02d}/{m:02d}/{y}", 0.6, 1.6),
}
_LOOK_FIELDS = ("font", "italic", "cap_height", "thickness", "value", "box")
_LOOK = {
    "src-a": ("simplex", False, 0.05, 0.009, 0.97, 0.0),
    "src-b": (PIL_FONT, False, 0.048, 0.0, 1.0, 0.85),
    "src-c": ("duplex", False, 0.045, 0.006, 0.98, 0.0),
    "src-d": ("plain", False, 0.055, 0.007, 0.93, 0.0),
    "src-e": ("complex", True, 0.05, 0.008, 0.9, 0.6),
}
_SIDE = Stamp("{LATERALITY}", "side")  # every source marks the patient's side
_STAMPS = {
    "src-a": (Stamp("PORTABLE", "tl"), Stamp("AP", "tl", 0.8), _SIDE, Stamp("{DATE}", "br", 0.9)),
    "src-b": (Stamp("SUPINE", "tr"), Stamp("{DATE}", "tr"), _SIDE, Stamp("{SITE}", "bl", 0.7)),
    "src-c": (_SIDE, Stamp("{SITE}", "bl"), Stamp("ERECT", "bl", 0.7)),
    "src-d": (Stamp("PA", "tr"), _SIDE, Stamp("{DATE}", "tl", 0.8), Stamp("{TIME}", "tl", 0.5)),
    "src-e": (Stamp("{SITE}", "tc"), _SIDE, Stamp("STANDING", "bc", 0.6)),
}
SOURCES: tuple[SourceStyle, ...] = tuple(
    SourceStyle(
        name=name,
        **dict(zip(_PLACE_FIELDS, _PLACE[name], strict=True)),
        **dict(zip(_LOOK_FIELDS, _LOOK[name], strict=True)),
        stamps=_STAMPS[name],
    )
    for name in _STAMPS
)
COVID_SOURCES = tuple(i for i, s in enumerate(SOURCES) if s.covid)
GENERAL_SOURCES = tuple(i for i, s in enumerate(SOURCES) if not s.covid)


@cache
def _hershey_cap_height(font: int) -> float:
    """Ink height of "H" at fontScale 1, measured once; getTextSize's height includes padding."""
    canvas = np.zeros((80, 80), np.uint8)
    cv2.putText(canvas, "H", (10, 60), font, 1.0, 255, 1, cv2.LINE_8)
    rows = np.flatnonzero(canvas.any(axis=1))
    return float(rows[-1] - rows[0] + 1)


def _render_line(text: str, style: SourceStyle, cap_px: float, size: int) -> np.ndarray:
    """Antialiased coverage (uint8 0..255) of one line of text on a tight canvas."""
    if style.font == PIL_FONT:
        font = ImageFont.load_default(size=max(6, round(cap_px / 0.72)))
        left, top, right, bottom = font.getbbox(text)
        image = Image.new("L", (right - left + 2, bottom - top + 2), 0)
        ImageDraw.Draw(image).text((1 - left, 1 - top), text, fill=255, font=font)
        return np.asarray(image, dtype=np.uint8)
    font = HERSHEY_FONTS[style.font] | (cv2.FONT_ITALIC if style.italic else 0)
    scale = cap_px / _hershey_cap_height(HERSHEY_FONTS[style.font])
    thick = max(1, round(style.thickness * size))
    (width, height), baseline = cv2.getTextSize(text, font, scale, thick)
    pad = thick + 2
    canvas = np.zeros((height + baseline + 2 * pad, width + 2 * pad), np.uint8)
    cv2.putText(canvas, text, (pad, pad + height), font, scale, 255, thick, cv2.LINE_AA)
    rows, cols = np.flatnonzero(canvas.any(axis=1)), np.flatnonzero(canvas.any(axis=0))
    return canvas[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]


def _fill(stamp: Stamp, style: SourceStyle, rng: np.random.Generator, letter: str) -> str:
    date = {"y": int(rng.integers(2019, 2021)), "m": int(rng.integers(1, 13))}
    date["d"] = int(rng.integers(1, 29))
    time = f"{int(rng.integers(0, 24)):02d}:{int(rng.integers(0, 60)):02d}"
    return (
        stamp.text.replace("{LATERALITY}", letter)
        .replace("{DATE}", style.date_format.format(**date))
        .replace("{SITE}", style.site)
        .replace("{TIME}", time)
    )


def _paste(layer: np.ndarray, patch: np.ndarray, top: int, left: int) -> None:
    """Max-composite `patch` into `layer` at (top, left), clipped to the layer."""
    h, w = layer.shape
    t0, l0 = max(top, 0), max(left, 0)
    t1, l1 = min(top + patch.shape[0], h), min(left + patch.shape[1], w)
    if t1 > t0 and l1 > l0:
        sub = patch[t0 - top : t1 - top, l0 - left : l1 - left]
        np.maximum(layer[t0:t1, l0:l1], sub, out=layer[t0:t1, l0:l1])


def stamp_text(
    image: np.ndarray, style: SourceStyle, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Burn `style`'s text into float image [0,1] (H,W); return (stamped image, uint8 mask).

    Text and box are drawn on their own canvases first, so the mask (255 wherever they have
    any coverage, antialiased fringe included) does not depend on the image below.
    """
    size = image.shape[0]
    text_layer = np.zeros(image.shape, np.uint8)
    box_layer = np.zeros(image.shape, np.uint8)
    cap = style.cap_height * size * (1 + HEIGHT_JITTER * rng.uniform(-1, 1))
    value = float(np.clip(style.value + VALUE_JITTER * rng.uniform(-1, 1), 0, 1))
    letter = "R" if rng.random() < 0.5 else "L"
    offsets = {
        a: (rng.uniform(-1, 1, 2) * POSITION_JITTER * size)
        for a in "tl tr bl br tc bc side".split()
    }
    cursor = {anchor: 0.0 for anchor in offsets}  # distance already taken by lines at an anchor
    margin = style.margin * size
    for stamp in style.stamps:
        if rng.random() >= stamp.prob:
            continue
        side = stamp.anchor == "side"
        patch = _render_line(
            _fill(stamp, style, rng, letter), style, cap * (style.side_scale if side else 1), size
        )
        h, w = patch.shape
        dy, dx = offsets[stamp.anchor]
        if side:
            top = style.side_y * size
            left = margin if letter == "R" else size - margin - w
        else:
            vertical, horizontal = stamp.anchor
            top = (
                margin + cursor[stamp.anchor]
                if vertical == "t"
                else size - margin - cursor[stamp.anchor] - h
            )
            left = {"l": margin, "r": size - margin - w, "c": (size - w) / 2}[horizontal]
            cursor[stamp.anchor] += h + LINE_GAP * cap
        top, left = round(top + dy), round(left + dx)
        _paste(text_layer, patch, top, left)
        if style.box > 0:
            pad = round(BOX_PAD * cap)
            t0, l0 = max(top - pad, 0), max(left - pad, 0)
            box_layer[t0 : top + h + pad, l0 : left + w + pad] = 255
    alpha_box = box_layer.astype(np.float32) * (style.box / 255)
    alpha_text = text_layer.astype(np.float32) / 255
    out = image * (1 - alpha_box)  # dark box: blend towards 0
    out = out * (1 - alpha_text) + value * alpha_text
    mask = np.where((text_layer > 0) | (box_layer > 0), 255, 0).astype(np.uint8)
    return out, mask
