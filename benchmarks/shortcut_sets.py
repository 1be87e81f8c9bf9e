"""Held-out datasets of real radiograph anatomy with a planted shortcut.

A benchmark trains on such a set and checks that the audit names the cue the model reads,
and nothing at strength 0. The anatomy is real: the CR films that ship with `pydicom-data`
(`RG1_UNCR.dcm`, an adult PA chest; `RG3_UNCR.dcm`, a lower leg, cropped to its exposed
field, which leaves out its burned-in "R" marker). pydicom's other test files hold no other
grey radiograph: RG1/RG3 again in other encodings, three 16 × 16 C-spine CR stubs, and CT,
MR, NM, US, test patterns.

- A film is a random crop of a radiograph (position, scale, ±5° rotation, flip; the crop
  belongs to the patient, each view jitters it slightly and its gamma), resized to
  `size` × size, uint8 PNG. No text is added but by the `text` cue.
- The label is in the anatomy: "pneumonia" films carry a soft, low-contrast opacity (2-4
  blurred blobs in the central region, placed on the patient's radiograph so that both views
  of a patient show them at the same place), "normal" films none.
- Sources H0..H3. At `strength` s a share s (rounded) of each class's patients of train.txt
  and test.txt come from their class's sources (pneumonia: H2/H3, normal: H0/H1), the others
  spread evenly over all four; so Cramér's V of source and label is s up to rounding.
  test_balanced.txt spreads every class evenly (V ≈ 0).
- The cue belongs to sources H2/H3, of one kind: `frame` (a dark collimation frame, 6-12% of
  the side on each side, and a zoom of 4-10%), `tone` (another tone curve: gamma 1/0.6, which
  darkens the mid-tones of these bright films (median 0.8; a brightening gamma 0.6 would clip
  a third of a chest crop to white), then a contrast lift that keeps black and white),
  `device` (a bright tube with a clip at its end, somewhere on the film; its box per test
  film in regions.csv, `image,kind,x0,y0,x1,y1`, half-open pixels), `text` or `none`.
  `neutralised=True` writes the same films with the cue left out (no frame and no zoom, one
  tone, no device); a device set's regions.csv then holds the boxes where the device would
  be, so that a null run tests the same regions.
- `text`: burned-in hospital text in styles the phantom (medxai/data/phantom_text.py: Hershey
  fonts, PIL's default font) never draws: DejaVu faces that ship with matplotlib. EVERY source
  burns in its own text (TEXT_STYLES: its words, face, corner or edge band, cap height 3-6% of
  the side, white glyphs or dark glyphs on a light label), so that text as such tells nothing:
  the cue is which hospital's text a film carries. Glyphs stay in the top or bottom quarter of
  the film, away from the lung field, and inside the film; each film's boxes (every line's
  glyphs, or its label) are in its truth, and no regions.csv is written (the audit finds text
  itself). Neutralised, every film carries one style (H1's) whatever its source.
- COVIDx layout: ROOT/train/*.png, ROOT/test/*.png (test.txt and test_balanced.txt),
  lines `patient_id filename label source`; about one patient in twenty has two films.
  ROOT/shortcut_set.json records the parameters and counts. The labels belong to the
  3-class COVIDx set, so read the set with `classes=CLASSES` (`--classes normal,pneumonia`)
  to get two classes.

Every draw follows from (seed, stream, split, patient or film), so that neutralising the cue
or changing a label leaves every other draw as it was, and the sets of one seed at several
strengths hold the same patients and labels (only sources differ). Tune on TUNING_SEEDS,
report on HELDOUT_SEEDS. About 12 ms a film at 256 px on one loaded core: no worker pool.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from data_cleaning.burnin import REAL_MARKER, load_film
from medxai.atomic import atomic_write_bytes, atomic_write_text
from medxai.boxes import Box
from medxai.errors import DatasetError

CUES = ("frame", "tone", "device", "text", "none")
CLASSES = ("normal", "pneumonia")
SOURCES = ("H0", "H1", "H2", "H3")
CLASS_SOURCES = {"normal": ("H0", "H1"), "pneumonia": ("H2", "H3")}
CUE_SOURCES = frozenset(CLASS_SOURCES["pneumonia"])
SPLITS = ("train.txt", "test.txt", "test_balanced.txt")
FOLDERS = {"train.txt": "train", "test.txt": "test", "test_balanced.txt": "test"}
PREFIX = {"train.txt": "tr", "test.txt": "te", "test_balanced.txt": "tb"}
TUNING_SEEDS = range(0, 1000)
HELDOUT_SEEDS = range(100_000, 101_000)
MIN_SIZE = 64
PNG_LEVEL = 1  # zlib level: 6 (write_png's) takes 3.7 times as long for 8% smaller files
REPEAT_SHARE = 0.05  # patients with two films
# Radiograph → (exposed field (x0, y0, x1, y1) in film pixels, crop side range as a share of
# the field's shorter side, chance of being a patient's film). The leg's field ends left of
# its "R" marker (data_cleaning.burnin.REAL_MARKER).
FILMS = {
    "RG1_UNCR.dcm": ((0, 0, 1841, 1955), (0.5, 0.8), 0.75),
    "RG3_UNCR.dcm": ((480, 0, 1140, 1760), (0.6, 0.8), 0.25),
}
ROTATION = 5.0  # degrees, a patient's crop
JITTER = {"shift": 0.03, "scale": 0.04, "rotation": 2.0, "log_gamma": 0.15}  # a view's
OPACITY = {"blobs": (2, 5), "centre": (0.3, 0.7), "sigma": (0.04, 0.08), "level": (0.4, 0.7)}
FRAME = {"width": (0.06, 0.12), "level": (0.02, 0.05), "noise": 0.01, "zoom": (1.04, 1.10)}
TONE = {"gamma": 1 / 0.6, "contrast": 0.6}  # x^gamma, then an S-curve of this gain
DEVICE = {"length": (0.25, 0.45), "bend": 0.25, "level": (0.9, 1.0), "clip": (0.05, 0.03)}
# Text: sizes and margins are shares of the side, levels of white, gap and pad of cap heights.
TEXT = {
    "height_jitter": 0.1,  # cap height × (1 ± this), per film
    "margin": (0.02, 0.05),  # from the nearest edges, per film and axis
    "shift": 0.03,  # sideways jitter of an edge-centred block
    "band": 0.25,  # every block lies within this share of the side from the top or bottom
    "line_gap": 0.5,
    "pad": 0.35,  # a label's margin around its glyphs
    "white": (0.92, 1.0),  # white glyphs
    "shadow": 0.05,  # a drop shadow under white glyphs
    "paper": (0.82, 0.92),  # a label
    "ink": (0.02, 0.08),  # dark glyphs on a label
}
MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
# Independent random streams: SeedSequence(seed, spawn_key=(stream, split, patient or film)).
# Text has a stream of its own: drawing it leaves the cue stream, so every other cue, as it was.
_PLAN, _PATIENT, _VIEW, _CUE, _TEXT = range(5)


@dataclass(frozen=True)
class TextStyle:
    """How one source burns in its text. `lines` may hold a date, {y} {m} {d} {mon} fields;
    `anchor` is a corner ("tl", "tr", "bl", "br") or the bottom edge's centre ("bc");
    `polarity` "white" (glyphs on the film), "shadow" (white with a dark drop shadow) or "label"
    (dark glyphs on a light rectangle)."""

    lines: tuple[str, ...]
    font: str  # a DejaVu face in matplotlib's fonts/ttf
    anchor: str
    cap_height: float  # share of the side, before the per-film jitter
    polarity: str


TEXT_STYLES = {
    "H0": TextStyle(("NWH-04", "CHEST PA"), "DejaVuSerif-Bold", "tl", 0.042, "white"),
    "H1": TextStyle(
        ("RAD 7  ERECT", "{y}-{m:02d}-{d:02d}"), "DejaVuSansMono", "br", 0.036, "label"
    ),
    "H2": TextStyle(("PORTABLE",), "DejaVuSans-Oblique", "tr", 0.05, "shadow"),
    "H3": TextStyle(("AP SUPINE", "{d:02d} {mon} {y}"), "DejaVuSerif", "bc", 0.04, "label"),
}
# The style every film of a neutralised text set carries: a label, legible on every film
# (white glyphs on a bright chest film are faint).
NEUTRAL_TEXT = "H1"


@dataclass(frozen=True)
class Film:
    """One written film and its truth. `frame` (left, top, right, bottom widths in pixels) and
    `device` (box) are the cue's geometry for every film whose source carries that cue;
    `cued` says whether it was drawn (never in a neutralised set). In a text set every film
    carries text, `text` its boxes (every line's glyphs, or its label); `cued` then says that
    it is a cue source's text."""

    image: str  # relative to the root, as the COVIDx layout gives it: "test/te00012.png"
    split: str
    patient_id: str
    label: str
    source: str
    radiograph: str
    cued: bool
    frame: tuple[int, int, int, int] | None = None
    device: Box | None = None
    text: tuple[Box, ...] | None = None


@dataclass(frozen=True)
class ShortcutSet:
    """What `make_set` wrote. `counts[split][source][label]`: films (zeros included, sources
    and labels in order), the form `medxai.statistics.confound.source_confound` takes."""

    root: Path
    cue: str
    strength: float
    neutralised: bool
    seed: int
    size: int
    counts: dict[str, dict[str, dict[str, int]]]
    regions: Path | None  # regions.csv (cue "device"), else None
    films: tuple[Film, ...]
    seconds: float

    @property
    def n_films(self) -> int:
        return len(self.films)


@dataclass(frozen=True)
class Job:
    """One film to draw: everything random about it follows from (seed, these fields)."""

    split: str
    index: int  # film, within the split
    patient: int  # within the split
    label: str
    source: str

    @property
    def image(self) -> str:
        return f"{FOLDERS[self.split]}/{PREFIX[self.split]}{self.index:05d}.png"

    @property
    def patient_id(self) -> str:
        return f"p{PREFIX[self.split]}{self.patient:05d}"


@dataclass(frozen=True)
class _Patient:
    radiograph: str
    centre: tuple[float, float]  # film pixels
    side: float  # film pixels
    angle: float  # degrees
    flip: bool
    blobs: tuple[tuple[float, float, float, float], ...]  # (u, v, sigma, level), crop shares


@dataclass(frozen=True)
class _FrameCue:
    widths: tuple[int, int, int, int]  # left, top, right, bottom, pixels
    level: float
    zoom: float
    noise_seed: int


@dataclass(frozen=True)
class _DeviceCue:
    points: tuple[np.ndarray, np.ndarray, np.ndarray]  # Bézier p0, p1, p2 (x, y), pixels
    thickness: int
    level: float


@dataclass(frozen=True)
class _TextCue:
    """A film's text draws, the same whatever its style: the style a film gets (its source's,
    or the neutral one) changes nothing else."""

    height: float  # in [-1, 1]: the cap height's jitter
    margin: tuple[float, float]  # x, y: shares of the side
    shift: float  # in [-1, 1]: an edge-centred block's
    level: float  # in [0, 1]: where the levels lie in their ranges
    date: tuple[int, int, int]  # year, month, day


def make_set(
    out: Path,
    cue: str,
    strength: float,
    n_per_class: int,
    size: int = 256,
    seed: int = 0,
    neutralised: bool = False,
    balanced_per_class: int | None = None,
) -> ShortcutSet:
    """Write a shortcut set to `out` (absent, empty, or a set of the same parameters, which is
    written again byte for byte): `n_per_class` films per class in train.txt and in test.txt,
    `balanced_per_class` (default `n_per_class`) in test_balanced.txt."""
    out = Path(out)
    balanced = n_per_class if balanced_per_class is None else balanced_per_class
    _validate(cue, strength, n_per_class, size, seed, balanced)
    params = {
        "generator": "benchmarks/shortcut_sets.py",
        "cue": cue,
        "strength": strength,
        "n_per_class": n_per_class,
        "balanced_per_class": balanced,
        "size": size,
        "seed": seed,
        "neutralised": neutralised,
    }
    _claim(out, params)
    start = time.perf_counter()
    per_class = {"train.txt": n_per_class, "test.txt": n_per_class, "test_balanced.txt": balanced}
    jobs = _plan(seed, strength, per_class)
    for folder in sorted(set(FOLDERS.values())):
        (out / folder).mkdir(exist_ok=True)
    films = []
    for job in jobs:
        image, film = render(job, seed, size, cue, neutralised)
        ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, PNG_LEVEL])
        assert ok, job.image  # a uint8 (size, size) array always encodes
        atomic_write_bytes(out / job.image, png.tobytes())
        films.append(film)
    regions = None
    if cue == "device":
        regions = out / "regions.csv"
        rows = [
            f"{f.image},device,{','.join(map(str, f.device))}\n"
            for f in films
            if f.device is not None and f.split != "train.txt"
        ]
        atomic_write_text(regions, "image,kind,x0,y0,x1,y1\n" + "".join(rows))
    counts = {split: _count([f for f in films if f.split == split]) for split in SPLITS}
    atomic_write_text(out / "shortcut_set.json", json.dumps({**params, "counts": counts}, indent=2))
    for split in SPLITS:  # split files last: their presence means the set is complete
        lines = [
            f"{f.patient_id} {Path(f.image).name} {f.label} {f.source}\n"
            for f in films
            if f.split == split
        ]
        atomic_write_text(out / split, "".join(lines))
    seconds = time.perf_counter() - start
    return ShortcutSet(
        out, cue, strength, neutralised, seed, size, counts, regions, tuple(films), seconds
    )


def _count(films: list[Film]) -> dict[str, dict[str, int]]:
    table = {source: dict.fromkeys(CLASSES, 0) for source in SOURCES}
    for film in films:
        table[film.source][film.label] += 1
    return table


def _validate(cue: str, strength: float, n: int, size: int, seed: int, balanced: int) -> None:
    if cue not in CUES:
        raise DatasetError(f"cue must be one of {', '.join(CUES)}, got {cue!r}")
    if not 0.0 <= strength <= 1.0:
        raise DatasetError(f"strength must lie in [0, 1], got {strength}")
    if n < 1 or balanced < 1:
        raise DatasetError(f"films per class must be at least 1, got {n} and {balanced}")
    if size < MIN_SIZE:
        raise DatasetError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    if seed < 0:
        raise DatasetError(f"seed must be non-negative, got {seed}")


def _claim(out: Path, params: dict) -> None:
    """`out` must be empty, absent, or hold a set of the very same parameters."""
    if out.exists() and not out.is_dir():
        raise DatasetError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            written = json.loads((out / "shortcut_set.json").read_text())
            same = {key: written.get(key) for key in params} == params
        except (OSError, ValueError):
            same = False
        if not same:
            raise DatasetError(f"output {out} is not empty and holds no set of these parameters")
    out.mkdir(parents=True, exist_ok=True)


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def _plan(seed: int, strength: float, per_class: dict[str, int]) -> list[Job]:
    """Every film of every split: patients (one film, or two for about one in twenty), their
    labels and sources, in a random order. The draws do not depend on `strength`: sets of one
    seed share their patients, films and labels, and differ in sources only."""
    jobs = []
    for split_index, split in enumerate(SPLITS):
        rng = _rng(seed, _PLAN, split_index)
        tie = 0.0 if split == "test_balanced.txt" else strength
        patients: list[tuple[str, str, int]] = []
        for label in CLASSES:
            n = per_class[split]
            repeats = max(1, round(REPEAT_SHARE * n)) if n >= 2 else 0
            n_patients = n - repeats
            views = np.ones(n_patients, int)
            views[rng.choice(n_patients, repeats, replace=False)] = 2
            tied = round(tie * n_patients)
            sources = _spread(CLASS_SOURCES[label], tied, rng) + _spread(
                SOURCES, n_patients - tied, rng
            )
            patients += [(label, source, int(v)) for source, v in zip(sources, views, strict=True)]
        index = 0
        for patient, pick in enumerate(rng.permutation(len(patients))):
            label, source, n_views = patients[pick]
            for _ in range(n_views):
                jobs.append(Job(split, index, patient, label, source))
                index += 1
    return jobs


def _spread(sources: tuple[str, ...], n: int, rng: np.random.Generator) -> list[str]:
    """`n` sources, as even over `sources` as n allows (the odd ones out chosen at random)."""
    offset = int(rng.integers(len(sources)))
    return [sources[(offset + k) % len(sources)] for k in range(n)]


def render(job: Job, seed: int, size: int, cue: str, neutralised: bool) -> tuple[np.ndarray, Film]:
    """One film (uint8, size × size) and its truth."""
    split = SPLITS.index(job.split)
    patient = _draw_patient(_rng(seed, _PATIENT, split, job.patient))
    view_rng = _rng(seed, _VIEW, split, job.index)
    cue_rng = _rng(seed, _CUE, split, job.index)
    view = [view_rng.uniform(-1, 1) for _ in range(5)]  # dx, dy, scale, rotation, gamma
    frame_cue = _draw_frame(cue_rng, size)  # both drawn whatever the cue: streams stay put
    device_cue = _draw_device(cue_rng, size)
    carries = job.source in CUE_SOURCES
    draw = carries and not neutralised
    zoom = frame_cue.zoom if draw and cue == "frame" else 1.0
    forward = _view_matrix(patient, view, zoom, size)  # (2, 3): output pixel → film pixel
    image = _crop(patient.radiograph, forward, size)
    if job.label == "pneumonia":
        image = _add_opacity(image, patient, forward)
    image = image ** math.exp(JITTER["log_gamma"] * view[4])
    frame = device = text = None
    if cue == "frame" and carries:
        frame = frame_cue.widths
        if draw:
            image = _add_frame(image, frame_cue)
    elif cue == "device" and carries:
        mask, device = _device_mask(device_cue, size)
        if draw:
            image = image * (1 - mask) + device_cue.level * mask
    elif cue == "tone" and draw:
        image = _tone(image)
    elif cue == "text":  # every film: its source's style, or the neutral one
        style = TEXT_STYLES[NEUTRAL_TEXT if neutralised else job.source]
        text_cue = _draw_text(_rng(seed, _TEXT, split, job.index))
        image, text = _burn_text(image, style, text_cue)
    pixels = np.round(np.clip(image, 0, 1) * 255).astype(np.uint8)
    film = Film(
        job.image,
        job.split,
        job.patient_id,
        job.label,
        job.source,
        patient.radiograph,
        draw and cue != "none",
        frame,
        device,
        text,
    )
    return pixels, film


def _tone(image: np.ndarray) -> np.ndarray:
    """The cue sources' tone curve: darker mid-tones (x^(1/0.6)), then a contrast lift that
    keeps black and white, y + c y (1 - y)(2y - 1) (slope 1 + c/2 at mid-grey)."""
    y = np.clip(image, 0, 1) ** TONE["gamma"]
    return y + TONE["contrast"] * y * (1 - y) * (2 * y - 1)


def _draw_patient(rng: np.random.Generator) -> _Patient:
    names = list(FILMS)
    name = names[rng.choice(len(names), p=[FILMS[n][2] for n in names])]
    (x0, y0, x1, y1), (lo, hi), _ = FILMS[name]
    side = rng.uniform(lo, hi) * min(x1 - x0, y1 - y0)
    angle = rng.uniform(-ROTATION, ROTATION)
    # the farthest a view's footprint reaches from the centre, jitter included
    turn = math.radians(ROTATION + JITTER["rotation"])
    spread = (1 + JITTER["scale"]) / 2 * (math.cos(turn) + math.sin(turn)) + JITTER["shift"]
    reach = side * spread
    reach = min(reach, (x1 - x0) / 2, (y1 - y0) / 2)
    centre = (rng.uniform(x0 + reach, x1 - reach), rng.uniform(y0 + reach, y1 - reach))
    flip = bool(rng.random() < 0.5)
    k = int(rng.integers(*OPACITY["blobs"]))
    blobs = tuple(
        (
            *rng.uniform(*OPACITY["centre"], 2),
            rng.uniform(*OPACITY["sigma"]),
            rng.uniform(*OPACITY["level"]),
        )
        for _ in range(k)
    )
    return _Patient(name, centre, side, angle, flip, blobs)


def _view_matrix(patient: _Patient, view: list[float], zoom: float, size: int) -> np.ndarray:
    """(2, 3) affine from output pixel centres to film pixels; `zoom` > 1 narrows the view."""
    dx, dy, scale, rotation, _ = view
    side = patient.side * (1 + JITTER["scale"] * scale) / zoom
    centre = np.add(patient.centre, np.multiply((dx, dy), JITTER["shift"] * patient.side))
    return _crop_matrix(
        centre, side, patient.angle + JITTER["rotation"] * rotation, patient.flip, size
    )


def _crop_matrix(centre, side: float, angle: float, flip: bool, size: int) -> np.ndarray:
    theta = math.radians(angle)
    rotate = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]])
    linear = rotate @ np.diag([-1.0 if flip else 1.0, 1.0]) * (side / size)
    offset = np.asarray(centre) - linear @ np.full(2, size / 2 - 0.5)
    return np.hstack([linear, offset[:, None]])


@cache
def _working_film(name: str, size: int) -> tuple[np.ndarray, float]:
    """The radiograph shrunk (area-averaged) so that its smallest crop is `size` pixels wide,
    and the factor: every crop is then at most a two-fold reduction."""
    (x0, y0, x1, y1), (lo, _), _ = FILMS[name]
    film = load_film(name)
    assert name not in REAL_MARKER or REAL_MARKER[name][0] >= x1  # no text in the field
    factor = min(1.0, size / (lo * min(x1 - x0, y1 - y0)))
    h, w = film.shape
    shrunk = cv2.resize(film, (round(w * factor), round(h * factor)), interpolation=cv2.INTER_AREA)
    return shrunk, factor


def _crop(name: str, forward: np.ndarray, size: int) -> np.ndarray:
    film, factor = _working_film(name, size)
    to_working = forward * factor
    to_working[:, 2] += 0.5 * factor - 0.5  # pixel centres of the shrunk film
    return cv2.warpAffine(
        film,
        to_working,
        (size, size),
        flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
        borderMode=cv2.BORDER_REFLECT,
    )


@cache
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    return np.mgrid[0:size, 0:size].astype(np.float32)


def _add_opacity(image: np.ndarray, patient: _Patient, forward: np.ndarray) -> np.ndarray:
    """Screen-blend the patient's blobs (placed on the radiograph through its reference crop)
    into the view: x + a (1 - x), a = 1 - prod(1 - level_k g_k)."""
    size = image.shape[0]
    reference = _crop_matrix(patient.centre, patient.side, patient.angle, patient.flip, size)
    back = cv2.invertAffineTransform(forward)  # film pixel → output pixel
    scale = math.sqrt(abs(np.linalg.det(back[:, :2]))) * patient.side / size
    yy, xx = _grid(size)
    clear = np.ones_like(image)
    for u, v, sigma, level in patient.blobs:
        film_xy = reference @ np.array([u * size - 0.5, v * size - 0.5, 1.0])
        cx, cy = back @ np.append(film_xy, 1.0)
        s = sigma * size * scale
        clear *= 1 - level * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * s * s))
    return image + (1 - clear) * (1 - image)


def _draw_frame(rng: np.random.Generator, size: int) -> _FrameCue:
    left, top, right, bottom = (round(rng.uniform(*FRAME["width"]) * size) for _ in range(4))
    level, zoom = rng.uniform(*FRAME["level"]), rng.uniform(*FRAME["zoom"])
    return _FrameCue((left, top, right, bottom), level, zoom, int(rng.integers(2**31)))


def _add_frame(image: np.ndarray, cue: _FrameCue) -> np.ndarray:
    """A dark collimation frame: bands of the cue's widths, edges softened by about a pixel,
    faint noise in the dark."""
    size = image.shape[0]
    left, top, right, bottom = cue.widths
    mask = np.zeros_like(image)
    mask[:, :left] = mask[:top] = mask[:, size - right :] = mask[size - bottom :] = 1
    mask = cv2.GaussianBlur(mask, (0, 0), 0.7)
    noise = np.random.default_rng(cue.noise_seed).standard_normal(mask.shape, np.float32)
    return image * (1 - mask) + (cue.level + FRAME["noise"] * noise) * mask


def _draw_device(rng: np.random.Generator, size: int) -> _DeviceCue:
    """A tube: a quadratic Bézier curve from p0 to p2, a clip at p2; everything inside the
    film with a margin, so the box never touches the border."""
    lo, hi = 0.1 * size, 0.9 * size
    p0 = rng.uniform(lo, hi, 2)
    length = rng.uniform(*DEVICE["length"]) * size
    for _ in range(32):
        angle = rng.uniform(0, 2 * math.pi)
        p2 = p0 + length * np.array([math.cos(angle), math.sin(angle)])
        if np.all((p2 >= lo) & (p2 <= hi)):
            break
    p2 = np.clip(p2, lo, hi)
    normal = np.array([-(p2 - p0)[1], (p2 - p0)[0]])
    p1 = np.clip((p0 + p2) / 2 + rng.uniform(-1, 1) * DEVICE["bend"] * normal, lo, hi)
    return _DeviceCue((p0, p1, p2), max(2, round(size / 128)), rng.uniform(*DEVICE["level"]))


def _device_mask(cue: _DeviceCue, size: int) -> tuple[np.ndarray, Box]:
    """The device's coverage (float32 in [0, 1]) and its box (half-open)."""
    p0, p1, p2 = cue.points
    t = np.linspace(0, 1, 48)[:, None]
    curve = (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2  # (48, 2)
    canvas = np.zeros((size, size), np.uint8)
    fixed = np.round(curve * 16).astype(np.int32)  # 4 fractional bits
    cv2.polylines(canvas, [fixed], False, 255, cue.thickness, cv2.LINE_AA, shift=4)
    along = p2 - curve[-4]
    along = along / (np.linalg.norm(along) + 1e-9)
    across = np.array([-along[1], along[0]])
    half_long, half_wide = (share * size / 2 for share in DEVICE["clip"])
    corners = [
        p2 + a * half_long * along + b * half_wide * across
        for a, b in ((-1, -1), (1, -1), (1, 1), (-1, 1))
    ]
    cv2.fillConvexPoly(
        canvas, np.round(np.array(corners) * 16).astype(np.int32), 255, cv2.LINE_AA, shift=4
    )
    ys, xs = np.nonzero(canvas)
    box = (int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1)
    return canvas.astype(np.float32) / 255, box


def _draw_text(rng: np.random.Generator) -> _TextCue:
    height, shift = rng.uniform(-1, 1, 2)
    margin = rng.uniform(*TEXT["margin"], 2)
    level = rng.uniform()
    date = int(rng.integers(2016, 2024)), int(rng.integers(1, 13)), int(rng.integers(1, 29))
    return _TextCue(float(height), (float(margin[0]), float(margin[1])), float(shift), level, date)


def _burn_text(
    image: np.ndarray, style: TextStyle, cue: _TextCue
) -> tuple[np.ndarray, tuple[Box, ...]]:
    """The film with `style`'s text burned in at its anchor, and the text's boxes."""
    size = image.shape[0]
    mx, my = (max(1, round(share * size)) for share in cue.margin)
    cap = max(3, round(style.cap_height * (1 + TEXT["height_jitter"] * cue.height) * size))
    while True:  # smaller where the block would not fit (small films only)
        glyphs, shadow, lines = _text_block(style, cue, cap)
        h, w = glyphs.shape
        if cap == 3 or (w <= size - 2 * mx and h <= TEXT["band"] * size - my):
            break
        cap -= 1
    x0 = {
        "l": mx,
        "r": size - mx - w,
        "c": (size - w) // 2 + round(TEXT["shift"] * cue.shift * size),
    }[style.anchor[1]]
    x0 = min(max(x0, 1), size - w - 1)
    y0 = my if style.anchor[0] == "t" else size - my - h
    image = image.copy()
    patch = image[y0 : y0 + h, x0 : x0 + w]
    if style.polarity == "label":
        paper, ink = (np.interp(cue.level, (0, 1), TEXT[key]) for key in ("paper", "ink"))
        patch[:] = paper * (1 - glyphs) + ink * glyphs
        lines = [(0, 0, w, h)]
    else:
        white = np.interp(cue.level, (0, 1), TEXT["white"])
        patch[:] = patch * (1 - shadow) + TEXT["shadow"] * shadow
        patch[:] = patch * (1 - glyphs) + white * glyphs
    boxes = tuple((x0 + a, y0 + b, x0 + c, y0 + d) for a, b, c, d in lines)
    return image, boxes


def _text_block(
    style: TextStyle, cue: _TextCue, cap: int
) -> tuple[np.ndarray, np.ndarray, list[Box]]:
    """The style's lines stacked and aligned to its anchor's side, a label's padding or a drop
    shadow's offset around them: glyph alpha, shadow alpha (zero but for "shadow") and each
    line's box (glyphs and shadow), all in the block's pixels."""
    y, m, d = cue.date
    texts = [line.format(y=y, m=m, d=d, mon=MONTHS[m - 1]) for line in style.lines]
    alphas = [_line_alpha(text, style.font, cap) for text in texts]
    gap = max(1, round(TEXT["line_gap"] * cap))
    pad = max(1, round(TEXT["pad"] * cap)) if style.polarity == "label" else 0
    offset = max(1, round(cap / 10)) if style.polarity == "shadow" else 0
    width = max(a.shape[1] for a in alphas) + 2 * pad + offset
    height = sum(a.shape[0] for a in alphas) + gap * (len(alphas) - 1) + 2 * pad + offset
    glyphs = np.zeros((height, width), np.float32)
    shadow = np.zeros_like(glyphs)
    boxes, top = [], pad
    for alpha in alphas:
        h, w = alpha.shape
        left = {"l": pad, "r": width - pad - offset - w, "c": (width - w - offset) // 2}
        x = left[style.anchor[1]]
        glyphs[top : top + h, x : x + w] = alpha
        if offset:
            shadow[top + offset : top + offset + h, x + offset : x + offset + w] = alpha
        boxes.append((x, top, x + w + offset, top + h + offset))
        top += h + gap
    return glyphs, shadow, boxes


@cache
def _font(name: str, cap: int) -> ImageFont.FreeTypeFont:
    """The face `name` at the size whose capital H is `cap` pixels high."""
    import matplotlib  # only for its fonts: no other cue needs it

    path = str(Path(matplotlib.get_data_path()) / "fonts" / "ttf" / f"{name}.ttf")
    _, top, _, bottom = ImageFont.truetype(path, 100).getbbox("H")
    return ImageFont.truetype(path, max(4, round(100 * cap / (bottom - top))))


def _line_alpha(text: str, font: str, cap: int) -> np.ndarray:
    """Float alpha in [0, 1] of one line, cropped to its ink."""
    face = _font(font, cap)
    left, top, right, bottom = face.getbbox(text)
    margin = cap  # an oblique face's ink may overhang its box
    canvas = Image.new("L", (right - left + 2 * margin, bottom - top + 2 * margin), 0)
    ImageDraw.Draw(canvas).text((margin - left, margin - top), text, font=face, fill=255)
    alpha = np.asarray(canvas, np.float32) / 255
    ys, xs = np.nonzero(alpha)
    return alpha[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]
