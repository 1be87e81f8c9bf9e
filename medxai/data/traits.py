"""Acquisition traits of a film, measured before any model: size, depth, format, intensity,
sharpness, noise and the dark or flat border a scanner or a padding step leaves.

A dataset whose classes come from different hospitals often differs in exactly these: COVID-19
films sent as 8-bit JPEGs of one size with a black frame, normal films as 16-bit DICOMs of
another. A model reads such a difference as easily as burned-in text. `image_traits` measures
one film; `split_traits` a deterministic sample of a split; `medxai.statistics.predictability`
says how well each trait alone predicts the label.

Every measure past the header (intensity, sharpness, noise, border) is taken on the film as
`read_image` decodes it ([0, 1], bright = dense), in grey (BT.601 luma for RGB), resized to
`TRAIT_SIDE` × `TRAIT_SIDE` (the square a model sees, so no figure depends on film size).
Intensity, sharpness and noise are read inside the border bands (`border_bands`, less a
margin of INNER_MARGIN pixels and one film pixel), so a frame shows up in the border traits
alone. A film smaller than the side is upsampled, which smooths its noise and sharpness
away, as it does for the model.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, fields
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

from medxai.boxes import Box
from medxai.data.check import DatasetReport
from medxai.data.imageio import RawImage, read_decoded, to_channels
from medxai.data.records import Record
from medxai.errors import ImageReadError, first_line
from medxai.statistics.predictability import (
    DEFAULT_SETTINGS,
    PredictabilitySettings,
    TraitReport,
    trait_predictability,
)

TRAIT_SIDE = 512  # the side every image-based trait is measured at
RING_SHARE = 0.02  # border_darkness: the outer ring, this share of each side (≥ 1 px)
# border_bands: a line (row or column) is border while it is flat or much darker than the
# film's centre; a band never takes more than MAX_BAND_SHARE of its side
FLAT_STD = 0.01  # a line whose intensities spread less than this (on [0, 1]) is flat
DARK_RATIO = 0.35  # ... or whose mean is below this share of the centre's median is dark
MAX_BAND_SHARE = 0.45
INNER_MARGIN = 2  # pixels (at TRAIT_SIDE, plus one film pixel) kept off the bands: a frame's
# edge, blurred by resizing, stays out of the interior
# the Immerkær (1996) noise mask: it cancels a film's first and second derivatives, leaving
# the noise; i.i.d. noise of spread σ comes out with spread 6σ (the mask's L2 norm). σ is read
# off the mean |residual| of the quietest NOISE_KEEP of pixels (edges, which the mask does
# not cancel, are the loudest): for normal noise that mean is 6σ × TRIMMED_HALF_NORMAL. A
# mean, unlike a median, does not fall on the few levels of an 8-bit film's residuals.
NOISE_MASK = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float32)
NOISE_KEEP = 0.9
_Q = NormalDist().inv_cdf((1 + NOISE_KEEP) / 2)  # |Z|'s NOISE_KEEP quantile
TRIMMED_HALF_NORMAL = math.sqrt(2 / math.pi) * (1 - math.exp(-_Q * _Q / 2)) / NOISE_KEEP
# below this σ (a fortieth of an 8-bit level) a film reads as noiseless: what is left is the
# kinks of an upsampled film's interpolation, which shift with the crop, not acquisition
NOISE_FLOOR = 1e-4
GRID = (("top", "middle", "bottom"), ("left", "center", "right"))


def _trait(kind: str, about: str):
    return field(metadata={"kind": kind, "about": about})


def _text_trait(kind: str, about: str):
    return field(default=None, metadata={"kind": kind, "about": about})


@dataclass(frozen=True)
class ImageTraits:
    """The acquisition traits of one film. Each field's metadata holds its kind (numeric or
    categorical) and what it measures (`trait_kinds`, `trait_descriptions`); the text traits
    are None unless the caller passes detected text boxes."""

    height: int = _trait("numeric", "film height in pixels")
    width: int = _trait("numeric", "film width in pixels")
    aspect_ratio: float = _trait("numeric", "width / height")
    bit_depth: int = _trait("numeric", "bits per stored pixel (DICOM: BitsStored)")
    format: str = _trait("categorical", "file format, by its magic bytes: png, jpeg, dicom")
    transfer_syntax: str | None = _trait("categorical", "DICOM transfer syntax (None: bitmap)")
    photometric: str | None = _trait(
        "categorical", "DICOM photometric interpretation (None: bitmap)"
    )
    mean: float = _trait("numeric", "mean intensity inside the border, on [0, 1]")
    std: float = _trait("numeric", "standard deviation of intensity inside the border")
    dynamic_range: float = _trait("numeric", "99th minus 1st percentile inside the border")
    sharpness: float = _trait("numeric", "variance of the Laplacian inside the border")
    noise: float = _trait("numeric", "noise σ inside the border (Immerkær mask, trimmed mean)")
    border_darkness: float = _trait(
        "numeric", "centre median minus the mean of the outer 2% ring (> 0: darker edges)"
    )
    border_width: float = _trait(
        "numeric", "mean share of a side taken by its dark or flat band (border_bands)"
    )
    text_count: int | None = _text_trait("numeric", "detected text boxes")
    text_area: float | None = _text_trait("numeric", "share of the film covered by text")
    text_position: str | None = _text_trait(
        "categorical", "3×3 cell of the text's centre, e.g. top-left (none: no text)"
    )


def trait_kinds() -> dict[str, str]:
    """Trait name → "numeric" or "categorical", in ImageTraits' order."""
    return {f.name: f.metadata["kind"] for f in fields(ImageTraits)}


def trait_descriptions() -> dict[str, str]:
    """Trait name → what it measures (the docs' table and the CLI's help read these)."""
    return {f.name: f.metadata["about"] for f in fields(ImageTraits)}


# -- the border --------------------------------------------------------------------------
def border_bands(
    gray: np.ndarray,
    flat_std: float = FLAT_STD,
    dark_ratio: float = DARK_RATIO,
    max_share: float = MAX_BAND_SHARE,
) -> tuple[int, int, int, int]:
    """(top, bottom, left, right): the depth in pixels of the dark or flat band along each
    edge of a grey film (H, W) with values in [0, 1].

    The rule: the film's centre (its middle half in both directions) gives the reference, the
    median intensity `m` there. From each edge inward, every line (a row for top and bottom,
    read across the middle half of the columns; a column for left and right, read across the
    middle half of the rows) is border while it is *flat* (standard deviation below
    `flat_std`: uniform padding, black or white) or *dark* (mean below `dark_ratio` × `m`: a
    collimation shadow, a scanner's black frame); the band ends at the first line that is
    neither, and at `max_share` of the side at most. A frame of 10% per side gives bands of
    about 10% per side; a radiograph cropped to its film gives bands of a few lines at most.
    Reading lines across the middle half keeps one edge's band from spilling into another's.
    """
    g = np.asarray(gray, dtype=np.float32)
    if g.ndim != 2 or min(g.shape) < 4:
        raise ValueError(f"border_bands needs a grey image of at least 4×4, got {g.shape}")
    h, w = g.shape
    rows = g[:, w // 4 : w - w // 4]  # (H, W/2)
    cols = g[h // 4 : h - h // 4, :]  # (H/2, W)
    dark = dark_ratio * float(np.median(g[h // 4 : h - h // 4, w // 4 : w - w // 4]))
    row_border = (rows.std(axis=1) < flat_std) | (rows.mean(axis=1) < dark)  # (H,)
    col_border = (cols.std(axis=0) < flat_std) | (cols.mean(axis=0) < dark)  # (W,)
    return (
        _run(row_border, int(max_share * h)),
        _run(row_border[::-1], int(max_share * h)),
        _run(col_border, int(max_share * w)),
        _run(col_border[::-1], int(max_share * w)),
    )


def _run(flags: np.ndarray, limit: int) -> int:
    """How many leading entries of `flags` are True, at most `limit`."""
    stops = np.flatnonzero(~flags[:limit])
    return int(stops[0]) if stops.size else min(limit, flags.size)


# -- one film ----------------------------------------------------------------------------
def image_traits(
    path: str | Path, text_boxes: Sequence[Box] | None = None, side: int = TRAIT_SIDE
) -> ImageTraits:
    """Decode one film (`read_decoded`: one decode for header and pixels) and measure it.
    Raises ImageReadError naming the file when it does not decode."""
    raw, image = read_decoded(path)
    return measure_traits(raw, image, text_boxes, side)


def measure_traits(
    raw: RawImage,
    image: np.ndarray,
    text_boxes: Sequence[Box] | None = None,
    side: int = TRAIT_SIDE,
) -> ImageTraits:
    """The traits of a film already decoded: `raw` as `read_raw` gives it, `image` as
    `read_image` does; `text_boxes` (x0, y0, x1, y1) in the film's pixels, when detected."""
    height, width = image.shape[:2]
    gray = to_channels(image, 1)[0]  # (H, W)
    small = _resize(gray, side)  # (side, side)
    top, bottom, left, right = border_bands(small)
    m = INNER_MARGIN + math.ceil(side / min(height, width))  # + a source pixel, upsampled
    inner = small[top + m : side - bottom - m, left + m : side - right - m]
    if min(inner.shape) < 3:  # a blank film: all border
        inner = small
    low, high = np.percentile(inner, [1.0, 99.0])
    laplacian = cv2.Laplacian(inner, cv2.CV_32F)[1:-1, 1:-1]  # (h-2, w-2): no padded edge
    residual = cv2.filter2D(inner, cv2.CV_32F, NOISE_MASK)[1:-1, 1:-1]
    text = _text_traits(text_boxes, height, width) if text_boxes is not None else (None,) * 3
    return ImageTraits(
        height=int(height),
        width=int(width),
        aspect_ratio=float(width / height),
        bit_depth=int(raw.bit_depth),
        format=raw.format,
        transfer_syntax=raw.transfer_syntax,
        photometric=raw.photometric,
        mean=float(inner.mean()),
        std=float(inner.std()),
        dynamic_range=float(high - low),
        sharpness=float(laplacian.var()),
        noise=_noise(residual),
        border_darkness=_border_darkness(small),
        border_width=float((top + bottom + left + right) / (4 * side)),
        text_count=text[0],
        text_area=text[1],
        text_position=text[2],
    )


def _resize(gray: np.ndarray, side: int) -> np.ndarray:
    shrink = min(gray.shape) >= side
    method = cv2.INTER_AREA if shrink else cv2.INTER_LINEAR
    return cv2.resize(gray.astype(np.float32), (side, side), interpolation=method)


def _noise(residual: np.ndarray) -> float:
    """σ of the noise from the Immerkær residual: the mean of its quietest NOISE_KEEP."""
    magnitude = np.abs(residual).ravel()
    keep = int(NOISE_KEEP * magnitude.size)
    sigma = np.partition(magnitude, keep)[:keep].mean() / (6.0 * TRIMMED_HALF_NORMAL)
    return float(sigma) if sigma >= NOISE_FLOOR else 0.0


def _border_darkness(small: np.ndarray) -> float:
    """Median of the centre minus the mean of the outer ring (RING_SHARE of each side)."""
    side = small.shape[0]
    ring = max(1, round(RING_SHARE * side))
    mask = np.ones(small.shape, dtype=bool)
    mask[ring:-ring, ring:-ring] = False
    centre = small[side // 4 : side - side // 4, side // 4 : side - side // 4]
    return float(np.median(centre) - small[mask].mean())


def _text_traits(boxes: Sequence[Box], height: int, width: int) -> tuple[int, float, str]:
    """Count, share of the film covered (the union of boxes), 3×3 cell of their centre."""
    mask = np.zeros((height, width), dtype=bool)
    for x0, y0, x1, y1 in boxes:
        mask[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = True
    if not mask.any():
        return len(boxes), 0.0, "none"
    ys, xs = np.nonzero(mask)
    row = GRID[0][min(2, int(3 * ys.mean() / height))]
    col = GRID[1][min(2, int(3 * xs.mean() / width))]
    return len(boxes), float(mask.mean()), f"{row}-{col}"


# -- a split -----------------------------------------------------------------------------
@dataclass(frozen=True)
class FilmTraits:
    """One film of a split and its traits."""

    file: str
    label: str
    source: str | None
    traits: ImageTraits


@dataclass(frozen=True)
class TraitFailure:
    """A film whose traits could not be measured, and why."""

    file: str
    reason: str


@dataclass(frozen=True)
class SplitTraits:
    """The traits of a split's films: all of them, or a sample of `sampled` of `n_films`
    drawn with `seed`, as even across classes as they allow (`sample_films`)."""

    split: str
    n_films: int
    sampled: int
    seed: int
    films: list[FilmTraits]
    failed: list[TraitFailure]

    def table(self) -> dict[str, list[float | int | str | None]]:
        """Trait name → its value for each film, in film order (what predictability reads)."""
        return {name: [getattr(f.traits, name) for f in self.films] for name in trait_kinds()}


def sample_films(labels: Sequence[str], max_films: int | None, seed: int) -> list[int]:
    """Indices of `max_films` of the films whose labels are `labels` (all of them when None,
    0 or at least as many), in their listed order: the same films for the same arguments.

    The sample is as even across classes as they allow (each class gets an equal share; a
    class with fewer films gives all of them, the rest going to the others), drawn without
    replacement with `seed` inside each class: balanced accuracy weighs classes equally, so
    a rare class keeps its films."""
    n = len(labels)
    if not max_films or max_films >= n:
        return list(range(n))
    members: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        members.setdefault(label, []).append(i)
    rng = np.random.default_rng(seed)
    chosen, left = [], max_films
    by_size = sorted(members, key=lambda label: (len(members[label]), label))
    for k, label in enumerate(by_size):
        quota = min(len(members[label]), left // (len(by_size) - k))
        chosen += rng.choice(members[label], size=quota, replace=False).tolist()
        left -= quota
    return sorted(int(i) for i in chosen)


def split_traits(
    split: str,
    records: Sequence[Record],
    max_films: int | None = 2000,
    seed: int = 0,
    workers: int = 4,
    boxes: Mapping[Path, Sequence[Box]] | None = None,
    progress: Callable[[int, int], None] | None = None,
    side: int = TRAIT_SIDE,
) -> SplitTraits:
    """Measure a deterministic, class-balanced sample of a split's films (`sample_films`):
    `max_films` of them (None or 0: all). A film that does
    not decode is skipped and listed in `failed` with its reason; nothing is raised.
    `boxes`: detected text per image path, for the text traits (an image absent from it has
    none detected; None: no text traits). `progress(advance, total)` is called once per film
    measured; `side`: as in `measure_traits`."""
    chosen = [records[i] for i in sample_films([r.label for r in records], max_films, seed)]

    def measure(record: Record) -> ImageTraits | str:
        found = None if boxes is None else boxes.get(record.path, ())
        try:
            return image_traits(record.path, found, side)
        except ImageReadError as err:
            return str(err).removeprefix(f"{record.path}: ")
        except (cv2.error, ValueError, MemoryError) as err:  # a film too odd to measure
            return first_line(err)

    films, failed = [], []
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for record, result in zip(chosen, pool.map(measure, chosen), strict=True):
            if isinstance(result, str):
                failed.append(TraitFailure(str(record.path), result))
            else:
                films.append(FilmTraits(str(record.path), record.label, record.source, result))
            if progress:
                progress(1, len(chosen))
    return SplitTraits(split, len(records), len(chosen), seed, films, failed)


def split_predictability(
    traits: SplitTraits,
    classes: Sequence[str] | None = None,
    settings: PredictabilitySettings = DEFAULT_SETTINGS,
) -> TraitReport:
    """How well each trait of a split's films predicts their label, overall and within each
    source (`medxai.statistics.predictability.trait_predictability`)."""
    sources = [f.source for f in traits.films]
    return trait_predictability(
        traits.table(),
        [f.label for f in traits.films],
        sources if any(s is not None for s in sources) else None,
        classes,
        settings,
    )


# -- a whole dataset check ---------------------------------------------------------------
@dataclass(frozen=True)
class SplitTraitCheck:
    """One split's measured traits and how well each predicts the label."""

    traits: SplitTraits
    predictability: TraitReport


def check_traits(
    report: DatasetReport,
    max_films: int | None = 2000,
    seed: int = 0,
    workers: int = 4,
    settings: PredictabilitySettings = DEFAULT_SETTINGS,
    progress: Callable[[int, int], None] | None = None,
) -> list[SplitTraitCheck]:
    """`split_traits` and `split_predictability` for every split of a data check, over the
    films it could decode (those it lists as unreadable are left out before sampling)."""
    classes = report.label_order()
    readable = []
    for split in report.splits:
        unreadable = {skipped.record for skipped in split.unreadable}
        readable.append([r for r in split.records if r not in unreadable])
    total = sum(min(len(films), max_films or len(films)) for films in readable)
    tick = (lambda advance, _: progress(advance, total)) if progress else None
    out = []
    for split, films in zip(report.splits, readable, strict=True):
        traits = split_traits(split.split, films, max_films, seed, workers, progress=tick)
        out.append(SplitTraitCheck(traits, split_predictability(traits, classes, settings)))
    return out
