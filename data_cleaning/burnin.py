"""Burn text into real radiographs, with per-item truth, to measure text detectors.

The films are real CR radiographs that ship with `pydicom-data` (a chest film and a lower
leg film; the leg film carries a real mirrored "R" marker, kept as a truth item). A scene
is a crop of one film resized to a target height, with lone markers ("L", "AP", digits,
arrows) and short words burned in white-on-dark or dark-on-bright, at 1.5-10% of the
film's height, near an edge or over the body. Fonts and seeds come in two disjoint sets:
tune on TUNING, report HELDOUT.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

FILMS = ("RG1_UNCR.dcm", "RG3_UNCR.dcm")
# The leg film's own marker: a mirrored "R", white on a dark square (glyph pixels > 0.45).
REAL_MARKER = {"RG3_UNCR.dcm": (1148, 1388, 1219, 1473)}
TUNING_FONTS = (
    "DejaVuSans-Bold", "DejaVuSerif", "DejaVuSansMono", "STIXGeneralItalic", "cmss10",
    "hershey-simplex",
)  # fmt: skip
HELDOUT_FONTS = (
    "DejaVuSans", "DejaVuSans-Oblique", "DejaVuSerif-BoldItalic", "DejaVuSansMono-BoldOblique",
    "STIXGeneral", "cmtt10", "hershey-duplex",
)  # fmt: skip
TUNING_SEEDS = range(0, 1000)
HELDOUT_SEEDS = range(100_000, 101_000)
LONE = ("L", "R", "L", "R", "AP", "PA", "A-P", "1", "2", "3", "4", "5", "7", "8", "↑", "←")
WORDS = ("PORTABLE", "SUPINE", "ERECT", "CHEST PA", "AP SUPINE", "12/03/2020", "14:32", "ICU")
SIZE_RANGE = (0.015, 0.10)  # glyph (capital) height as a share of the film's height
EDGE_BAND = 0.15
MIN_CONTRAST = 0.3  # text level against the median of the film under it


@dataclass(frozen=True)
class Item:
    text: str
    kind: str  # lone | word
    font: str
    polarity: str  # white | dark
    size: float  # capital height / film height
    place: str  # edge | body
    box: tuple[int, int, int, int]  # ink box (x0, y0, x1, y1), half-open


@dataclass
class Scene:
    image: np.ndarray  # uint8 (H, W), bone bright
    labels: np.ndarray  # int16 (H, W): 0 no text, k > 0 the glyph pixels of items[k - 1]
    items: list[Item]
    film: str
    seed: int


@cache
def load_film(name: str) -> np.ndarray:
    """A real radiograph as displayed (windowed, bone bright), float32 in [0, 1]."""
    from pydicom.data import get_testdata_file

    from medxai.data.imageio import read_image

    return read_image(get_testdata_file(name)).astype(np.float32)


@cache
def _font_file(name: str) -> str:
    import matplotlib

    return str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{name}.ttf")


def render(text: str, font: str, cap_height: int) -> np.ndarray:
    """Float alpha in [0, 1] of `text`, cropped to its ink, capitals `cap_height` px high."""
    arrow = any(ord(c) > 127 for c in text)  # arrows: in DejaVu Sans whatever the font
    if font.startswith("hershey") and not arrow:
        return _render_hershey(text, font, cap_height)
    face = "DejaVuSans" if arrow else font
    probe = ImageFont.truetype(_font_file(face), 100)
    x0, y0, x1, y1 = probe.getbbox("H")
    pil = ImageFont.truetype(_font_file(face), max(4, round(100 * cap_height / (y1 - y0))))
    left, top, right, bottom = pil.getbbox(text)
    canvas = Image.new("L", (right - left + 4, bottom - top + 4), 0)
    ImageDraw.Draw(canvas).text((2 - left, 2 - top), text, font=pil, fill=255)
    return _crop_ink(np.asarray(canvas, np.float32) / 255)


def _render_hershey(text: str, font: str, cap_height: int) -> np.ndarray:
    face = cv2.FONT_HERSHEY_DUPLEX if font.endswith("duplex") else cv2.FONT_HERSHEY_SIMPLEX
    scale = cap_height / 22.0  # Hershey capitals are ~22 px high at scale 1
    thickness = max(1, round(cap_height / 9))
    (width, height), base = cv2.getTextSize(text, face, scale, thickness)
    canvas = np.zeros((height + base + 8, width + 8), np.uint8)
    cv2.putText(canvas, text, (4, height + 4), face, scale, 255, thickness, cv2.LINE_AA)
    return _crop_ink(canvas.astype(np.float32) / 255)


def _crop_ink(alpha: np.ndarray) -> np.ndarray:
    ys, xs = np.nonzero(alpha > 0.5)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def _crop(film: np.ndarray, height: int, rng: np.random.Generator):
    """A random crop (55-100% of the shorter side, aspect 0.8-1.25) resized to `height`."""
    fh, fw = film.shape
    side = rng.uniform(0.55, 1.0) * min(fh, fw)
    aspect = rng.uniform(0.8, 1.25)
    ch, cw = int(min(fh, side)), int(min(fw, side * aspect))
    y, x = int(rng.integers(0, fh - ch + 1)), int(rng.integers(0, fw - cw + 1))
    scale = height / ch
    width = max(1, round(cw * scale))
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    image = cv2.resize(film[y : y + ch, x : x + cw], (width, height), interpolation=interp)
    return np.clip(image, 0, 1), (x, y, scale)


def _place(alpha_shape, shape, place: str, rng: np.random.Generator):
    h, w = alpha_shape
    height, width = shape
    if place == "body":
        return int(rng.uniform(0.25, 0.75) * width - w / 2), int(
            rng.uniform(0.25, 0.75) * height - h / 2
        )
    band_x, band_y = max(0, int(EDGE_BAND * width) - w), max(0, int(EDGE_BAND * height) - h)
    side = rng.integers(4)
    x = int(rng.integers(0, max(1, width - w)))
    y = int(rng.integers(0, max(1, height - h)))
    if side == 0:
        y = int(rng.integers(0, band_y + 1))
    elif side == 1:
        y = height - h - int(rng.integers(0, band_y + 1))
    elif side == 2:
        x = int(rng.integers(0, band_x + 1))
    else:
        x = width - w - int(rng.integers(0, band_x + 1))
    return x, y


def make_scene(
    seed: int, height: int, fonts: tuple[str, ...], n_lone: int = 3, n_words: int = 1
) -> Scene:
    """One film crop at `height` px with `n_lone` markers and `n_words` words burned in."""
    rng = np.random.default_rng(seed)
    film = FILMS[seed % len(FILMS)]
    image, (cx, cy, scale) = _crop(load_film(film), height, rng)
    labels = np.zeros(image.shape, np.int16)
    items: list[Item] = []
    occupied = np.zeros(image.shape, bool)
    _add_real_marker(film, image, labels, items, occupied, (cx, cy, scale))
    wanted = ["lone"] * n_lone + ["word"] * n_words
    for kind in wanted:
        for _ in range(60):  # retries until the item fits without touching another one
            item = _try_item(kind, image, labels, items, occupied, fonts, rng)
            if item:
                break
    return Scene((image * 255).round().astype(np.uint8), labels, items, film, seed)


def _try_item(kind, image, labels, items, occupied, fonts, rng) -> bool:
    height, width = image.shape
    text = str(rng.choice(LONE if kind == "lone" else WORDS))
    font = str(rng.choice(fonts))
    size = float(np.exp(rng.uniform(*np.log(SIZE_RANGE))))
    polarity = "white" if rng.random() < 0.5 else "dark"
    place = "edge" if rng.random() < 0.6 else "body"
    alpha = render(text, font, max(3, round(size * height)))
    h, w = alpha.shape
    if w >= width - 2 or h >= height - 2:
        return False
    x, y = _place((h, w), (height, width), place, rng)
    x, y = min(max(x, 0), width - w), min(max(y, 0), height - h)
    gap = max(3, h // 3)
    if occupied[max(0, y - gap) : y + h + gap, max(0, x - gap) : x + w + gap].any():
        return False
    level = rng.uniform(0.92, 1.0) if polarity == "white" else rng.uniform(0.0, 0.06)
    patch = image[y : y + h, x : x + w]
    if abs(level - float(np.median(patch))) < MIN_CONTRAST:
        return False  # white on white is no text to anyone
    patch[:] = (1 - alpha) * patch + alpha * level
    labels[y : y + h, x : x + w][alpha > 0.5] = len(items) + 1
    occupied[y : y + h, x : x + w] = True
    items.append(Item(text, kind, font, polarity, h / height if kind == "lone" else size,
                      place, (x, y, x + w, y + h)))  # fmt: skip
    return True


def _add_real_marker(film, image, labels, items, occupied, crop) -> None:
    if film not in REAL_MARKER:
        return
    cx, cy, scale = crop
    x0, y0, x1, y1 = (np.array(REAL_MARKER[film]) - [cx, cy, cx, cy]) * scale
    x0, y0 = int(np.floor(x0)), int(np.floor(y0))
    x1, y1 = int(np.ceil(x1)), int(np.ceil(y1))
    height, width = image.shape
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return  # partly or wholly outside the crop: not counted
    glyph = image[y0:y1, x0:x1] > 0.45
    labels[y0:y1, x0:x1][glyph] = len(items) + 1
    occupied[y0:y1, x0:x1] = True
    place = (
        "edge" if min(x0, y0, width - x1, height - y1) < EDGE_BAND * min(height, width) else "body"
    )
    items.append(Item("R (real, mirrored)", "lone", "real", "white", (y1 - y0) / height, place,
                      (x0, y0, x1, y1)))  # fmt: skip


def scenes(split: str, heights, per_height: int, start: int = 0) -> list[Scene]:
    """`per_height` scenes at every height, seeds and fonts of `split` (tuning | heldout)."""
    seeds = TUNING_SEEDS if split == "tuning" else HELDOUT_SEEDS
    fonts = TUNING_FONTS if split == "tuning" else HELDOUT_FONTS
    out = []
    for i, height in enumerate(heights):
        for k in range(per_height):
            out.append(make_scene(seeds[start + i * per_height + k], height, fonts))
    return out
