"""Synthetic COVIDx-format chest radiographs with a planted text shortcut ("phantom" dataset).

Every image is a procedurally drawn PA chest film (lungs, ribs, clavicles, heart, spine,
diaphragm, noise) with optional pathology (pneumonia: one focal consolidation; COVID-19:
bilateral peripheral lower-zone ground-glass patches) and burned-in text whose style depends
only on the image's source. `shortcut_strength` ties sources to labels the way real COVIDx
does, so a classifier can score well by reading text; the written text masks are the ground
truth against which explanations and text detectors are checked.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass
from pathlib import Path

import cv2
import numpy as np

from medxai.atomic import atomic_write_bytes
from medxai.data.phantom_text import COVID_SOURCES, GENERAL_SOURCES, SOURCES, stamp_text
from medxai.errors import DatasetError

CLASSES = ("normal", "pneumonia", "COVID-19")
COVID = CLASSES.index("COVID-19")
SPLITS = ("train", "test", "test_balanced")  # split-file stems; position = split index in seeds
SPLIT_DIRS = {"train": "train", "test": "test", "test_balanced": "test"}
FILE_PREFIX = {"train": "tr", "test": "te", "test_balanced": "tb"}  # keeps filenames unique
MASK_DIR = "text_masks"
MIN_SIZE = 64
REPEAT_PROB = 0.3  # chance that a patient has a second image (same anatomy, new pose/exposure)
CHUNK = 16  # images per pool task: large enough to amortise pickling, small for smooth progress
PNG_PARAMS = [cv2.IMWRITE_PNG_COMPRESSION, 6]
FORMAT_VERSION = 1
# Independent random streams, so that e.g. turning text off or changing a label leaves every
# other draw unchanged: SeedSequence(seed, spawn_key=(stream, split index, image/patient index)).
_PLAN, _ANATOMY, _PATHOLOGY, _IMAGE, _TEXT = range(5)


@dataclass(frozen=True)
class SynthSummary:
    """What `synthesize` wrote: counts per split file (e.g. "train.txt") and class."""

    out: Path
    counts: dict[str, dict[str, int]]
    n_images: int
    seconds: float

    @property
    def images_per_second(self) -> float:
        return self.n_images / self.seconds if self.seconds > 0 else float("inf")


@dataclass(frozen=True)
class _Job:
    """One image to draw; everything random about it follows from (seed, these fields)."""

    split: int
    index: int
    patient: int
    label: int
    source: int

    @property
    def split_name(self) -> str:
        return SPLITS[self.split]

    @property
    def filename(self) -> str:
        return f"{FILE_PREFIX[self.split_name]}{self.index:05d}.png"

    @property
    def patient_id(self) -> str:
        return f"ph{FILE_PREFIX[self.split_name]}{self.patient:05d}"

    @property
    def folder(self) -> str:
        return SPLIT_DIRS[self.split_name]


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def synthesize(
    out: Path,
    n_per_class: int = 300,
    size: int = 224,
    seed: int = 0,
    shortcut_strength: float = 1.0,
    test_fraction: float = 0.2,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> SynthSummary:
    """Write a phantom COVIDx dataset to `out` (absent, empty, or an unfinished run of it).

    Per class, `n_per_class` images are split patient-disjointly into train/test, plus
    round(test_fraction * n_per_class) images of `test_balanced.txt`, whose source never
    depends on the label. Same arguments give byte-identical files whatever `workers` is.
    `workers` > 1 spawns processes, so a calling script needs an `if __name__ == "__main__":`.
    """
    out = Path(out)
    _validate(n_per_class, size, seed, shortcut_strength, test_fraction, workers)
    info = _describe(n_per_class, size, seed, shortcut_strength, test_fraction)
    _claim(out, info)
    start = time.perf_counter()
    jobs = _plan(n_per_class, seed, shortcut_strength, test_fraction)
    for folder in sorted(set(SPLIT_DIRS.values())):
        (out / folder).mkdir(parents=True, exist_ok=True)
        (out / MASK_DIR / folder).mkdir(parents=True, exist_ok=True)
    chunks = [jobs[i : i + CHUNK] for i in range(0, len(jobs), CHUNK)]
    workers = min(workers or os.cpu_count() or 1, max(len(chunks), 1))
    if workers == 1:
        for chunk in chunks:
            done = _write_chunk(chunk, seed, size, str(out))
            if progress is not None:
                progress(done)
    else:
        _run_pool(chunks, seed, size, out, workers, progress)
    counts = {}
    for split_idx, split in enumerate(SPLITS):  # split files last: their presence means "done"
        mine = [job for job in jobs if job.split == split_idx]
        lines = [
            f"{j.patient_id} {j.filename} {CLASSES[j.label]} {SOURCES[j.source].name}\n"
            for j in mine
        ]
        atomic_write_bytes(out / f"{split}.txt", "".join(lines).encode())
        counts[f"{split}.txt"] = {c: sum(j.label == k for j in mine) for k, c in enumerate(CLASSES)}
    return SynthSummary(out, counts, len(jobs), time.perf_counter() - start)


def _claim(out: Path, info: dict) -> None:
    """Take `out` for this dataset: empty, or a run of the very same parameters to finish.

    phantom.json is written first, so a killed run is recognised and resumed: images already
    under their final names are complete (atomic writes) and identical to what would be drawn.
    """
    manifest = out / "phantom.json"
    if out.exists() and not out.is_dir():
        raise DatasetError(f"output {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        try:
            same = json.loads(manifest.read_text()) == json.loads(json.dumps(info))
        except (OSError, ValueError):
            same = False
        if not same:
            raise DatasetError(
                f"output {out} is not empty and holds no phantom of these parameters; "
                "choose another --out"
            )
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(manifest, json.dumps(info, indent=2).encode())


def _validate(
    n_per_class: int,
    size: int,
    seed: int,
    shortcut_strength: float,
    test_fraction: float,
    workers: int,
) -> None:
    if n_per_class < 1:
        raise DatasetError(f"n_per_class must be at least 1, got {n_per_class}")
    if size < MIN_SIZE:
        raise DatasetError(f"size must be at least {MIN_SIZE} pixels, got {size}")
    if seed < 0:
        raise DatasetError(f"seed must be non-negative, got {seed}")
    if not 0.0 <= shortcut_strength <= 1.0:
        raise DatasetError(f"shortcut_strength must lie in [0, 1], got {shortcut_strength}")
    if not 0.0 <= test_fraction < 1.0:
        raise DatasetError(f"test_fraction must lie in [0, 1), got {test_fraction}")
    if workers < 0:
        raise DatasetError(f"workers must be 0 (all cores) or more, got {workers}")


def _plan(n_per_class: int, seed: int, strength: float, test_fraction: float) -> list[_Job]:
    """Every image of every split: patients (1 or 2 images each), labels and sources."""
    rng = _rng(seed, _PLAN)
    n_test = round(test_fraction * n_per_class)
    per_class = {"train": n_per_class - n_test, "test": n_test, "test_balanced": n_test}
    jobs = []
    for split_idx, split in enumerate(SPLITS):
        patients = []
        for label in range(len(CLASSES)):
            remaining = per_class[split]
            while remaining > 0:
                views = 2 if remaining >= 2 and rng.random() < REPEAT_PROB else 1
                patients.append((label, views))
                remaining -= views
        confound = 0.0 if split == "test_balanced" else strength
        index = 0
        for patient, pick in enumerate(rng.permutation(len(patients))):  # no label order
            label, views = patients[pick]
            source = _draw_source(rng, label, confound)
            for _ in range(views):
                jobs.append(_Job(split_idx, index, patient, label, source))
                index += 1
    return jobs


def _draw_source(rng: np.random.Generator, label: int, confound: float) -> int:
    """With probability `confound` COVID-19 comes from a COVID source and nothing else does."""
    if rng.random() < confound:
        pool = COVID_SOURCES if label == COVID else GENERAL_SOURCES
    else:
        pool = tuple(range(len(SOURCES)))
    return pool[int(rng.integers(len(pool)))]


def _describe(
    n_per_class: int, size: int, seed: int, strength: float, test_fraction: float
) -> dict[str, object]:
    """The generation parameters, written to phantom.json so that a dataset documents itself."""
    return {
        "generator": "medxai.data.phantom",
        "format_version": FORMAT_VERSION,
        "seed": seed,
        "size": size,
        "n_per_class": n_per_class,
        "shortcut_strength": strength,
        "test_fraction": test_fraction,
        "classes": list(CLASSES),
        "split_dirs": SPLIT_DIRS,
        "text_masks": MASK_DIR,
        "covid_sources": [SOURCES[i].name for i in COVID_SOURCES],
        "anatomy_ranges": ANATOMY_RANGES,
        "sources": [asdict(style) for style in SOURCES],
    }


def _run_pool(
    chunks: Sequence[Sequence[_Job]],
    seed: int,
    size: int,
    out: Path,
    workers: int,
    progress: Callable[[int], None] | None,
) -> None:
    # spawn, not fork: the caller may hold threads (torch) that a forked child would inherit.
    context = multiprocessing.get_context("spawn")
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker)
    try:
        futures = [pool.submit(_write_chunk, chunk, seed, size, str(out)) for chunk in chunks]
        for future in as_completed(futures):
            done = future.result()
            if progress is not None:
                progress(done)
    except BaseException:
        pool.shutdown(wait=True, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def _init_worker() -> None:
    cv2.setNumThreads(1)  # one process per core already; OpenCV's own threads would oversubscribe


def _write_chunk(jobs: Sequence[_Job], seed: int, size: int, out: str) -> int:
    root = Path(out)
    for job in jobs:
        image_path = root / job.folder / job.filename
        mask_path = root / MASK_DIR / job.folder / job.filename
        if image_path.is_file() and mask_path.is_file():
            continue  # finished by an earlier, interrupted run of the same parameters
        image, mask = _render(job, seed, size)
        atomic_write_bytes(image_path, _encode(image))
        atomic_write_bytes(mask_path, _encode(mask))
    return len(jobs)


def _encode(array: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(".png", array, PNG_PARAMS)
    if not ok:
        raise RuntimeError("PNG encoding failed")
    return buffer.tobytes()


def _render(job: _Job, seed: int, size: int, stamp: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """The image (uint8, size×size) and its text mask (uint8, 255 where text was stamped)."""
    anatomy_rng = _rng(seed, _ANATOMY, job.split, job.patient)
    pathology_rng = _rng(seed, _PATHOLOGY, job.split, job.patient)
    image_rng = _rng(seed, _IMAGE, job.split, job.index)
    film = _draw_film(anatomy_rng, pathology_rng, image_rng, CLASSES[job.label], size)
    mask = np.zeros((size, size), np.uint8)
    if stamp:
        film, mask = stamp_text(film, SOURCES[job.source], _rng(seed, _TEXT, job.split, job.index))
    image = np.round(np.clip(film, 0.0, 1.0) * 255).astype(np.uint8)
    return image, mask


Pose = tuple[tuple[float, float], float, float]  # (shift x/y, rotation in degrees, scale)
PNEUMONIA_ZONES = ((-0.5, -0.28), (-0.2, 0.02), (0.08, 0.26))  # upper/middle/lower zone, v range
# Body outline: half-width at heights BODY_V (neck, base of neck, shoulder slope, shoulders,
# axilla); below the axilla it narrows to the patient's chest width.
BODY_V = [-1.3, -0.9, -0.76, -0.62, -0.45]
BODY_W = [0.27, 0.32, 0.72, 0.98, 1.04]
SUBPIXEL_BITS = 4  # cv2 drawing takes coordinates in 1/16 pixel
# Uniform ranges of every patient's parameters; lengths are in body units (thorax ≈ [-1, 1]).
ANATOMY_RANGES = {
    "chest_w": (0.84, 0.94),
    "lung_w": (0.72, 0.82),
    "lung_med": (0.1, 0.13),
    "apex": (-0.76, -0.66),
    "dome": (0.32, 0.42),
    "dome_drop": (0.02, 0.07),
    "heart_x": (0.12, 0.18),
    "heart_y": (0.18, 0.26),
    "heart_rx": (0.38, 0.44),
    "heart_ry": (0.25, 0.3),
    "heart_tilt": (15.0, 30.0),
    "medi_w": (0.12, 0.16),
    "rib_top": (-0.8, -0.73),
    "rib_gap": (0.095, 0.112),
    "rib_w": (0.024, 0.03),
    "tissue": (0.5, 0.6),
    "air": (0.28, 0.38),
    "bone": (0.05, 0.085),
    "breast": (0.0, 0.07),
    "vessel_phase": (0, 2 * np.pi),
    "shift_x": (-0.04, 0.04),
    "shift_y": (-0.04, 0.04),
    "angle": (-3.0, 3.0),
    "scale": (0.93, 1.04),
    "gamma": (0.85, 1.2),
    "gain": (0.9, 1.1),
    "offset": (-0.04, 0.04),
}


def _ramp(distance: np.ndarray, edge: float) -> np.ndarray:
    """Soft inside-indicator: 1 well inside (distance > 0), 0 outside, linear across `edge`."""
    return np.clip(0.5 + distance / edge, 0.0, 1.0)


def _tube(distance: np.ndarray, half_width: float) -> np.ndarray:
    """Projected thickness of a cylinder (a bone) at `distance` from its axis, peak 1."""
    return np.sqrt(np.clip(1.0 - (distance / half_width) ** 2, 0.0, 1.0))


def _low_frequency(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """Smooth noise, roughly N(0, 1), varying over `size / cells` pixels."""
    grid = rng.standard_normal((cells, cells)).astype(np.float32)
    return cv2.resize(grid, (size, size), interpolation=cv2.INTER_CUBIC)


def _draw_anatomy(rng: np.random.Generator) -> dict[str, float]:
    """A patient: shape, density and base pose/exposure, same distribution for every class."""
    return {name: float(rng.uniform(low, high)) for name, (low, high) in ANATOMY_RANGES.items()}


def _draw_pathology(rng: np.random.Generator, label: str) -> list[tuple[float, ...]]:
    """Gaussian opacity blobs (u, v, radius, amplitude) in body coordinates for `label`."""
    u = rng.uniform
    if label == "pneumonia":  # one dense, irregular consolidation in one zone of one lung
        side = -1.0 if rng.random() < 0.5 else 1.0
        v_low, v_high = PNEUMONIA_ZONES[int(rng.integers(len(PNEUMONIA_ZONES)))]
        cu, cv, radius, amp = side * u(0.3, 0.6), u(v_low, v_high), u(0.09, 0.15), u(0.17, 0.25)
        spread = 0.45 * radius
        return [
            (cu + rng.normal(0, spread), cv + rng.normal(0, spread), radius * u(0.5, 0.9), amp)
            for _ in range(int(rng.integers(3, 6)))
        ]
    if label == "COVID-19":  # faint patches, both lungs, periphery of the lower zones
        return [
            (side * u(0.5, 0.7), u(0.0, 0.34), u(0.06, 0.1), u(0.06, 0.1))
            for side in (-1.0, 1.0)
            for _ in range(int(rng.integers(2, 5)))
        ]
    return []


def _body_coords(size: int, pose: Pose) -> tuple[np.ndarray, np.ndarray]:
    """Body coordinates (u, v) of every pixel: u right, v down, thorax within about [-1, 1]."""
    shift, angle, scale = pose
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size * 2 - 1
    x, y = np.meshgrid(axis - np.float32(shift[0]), axis - np.float32(shift[1]))
    c, s = np.float32(np.cos(np.radians(angle))), np.float32(np.sin(np.radians(angle)))
    return (c * x + s * y) / np.float32(scale), (c * y - s * x) / np.float32(scale)


def _to_pixels(u: np.ndarray, v: np.ndarray, size: int, pose: Pose) -> list[tuple[int, int]]:
    """Body coordinates → fixed-point pixel coordinates for cv2 (inverse of _body_coords)."""
    shift, angle, scale = pose
    c, s = np.cos(np.radians(angle)), np.sin(np.radians(angle))
    x = (c * u - s * v) * scale + shift[0]
    y = (s * u + c * v) * scale + shift[1]
    fixed = 2**SUBPIXEL_BITS
    px = np.round(((x + 1) / 2 * size - 0.5) * fixed).astype(int)
    py = np.round(((y + 1) / 2 * size - 0.5) * fixed).astype(int)
    return list(zip(px.tolist(), py.tolist(), strict=True))


def _density(
    u: np.ndarray, v: np.ndarray, a: dict[str, float], vessels: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Attenuation image of the healthy chest (bright = dense) and the visible-lung mask."""
    au = np.abs(u)
    width = np.interp(v, [*BODY_V, 1.3], [*BODY_W, a["chest_w"] + 0.12]).astype(np.float32)
    body = _ramp(width - au, 0.04)
    dome = a["dome"] + np.where(u > 0, a["dome_drop"], 0.0) + 1.2 * (au - 0.4) ** 2
    below = _ramp(v - dome, 0.03)
    t = np.clip((v - a["apex"]) / 0.62, 0.0, 1.0)
    lateral = 0.28 + (a["lung_w"] - 0.28) * np.sqrt(t)
    medial = a["lung_med"] + (0.28 - a["lung_med"]) * (1 - t) ** 2
    lung = _ramp(lateral - au, 0.04) * _ramp(au - medial, 0.03) * _ramp(dome - v, 0.03)
    lung *= _ramp(v - a["apex"], 0.03)
    tilt = np.radians(a["heart_tilt"])
    hu, hv = u - a["heart_x"], v - a["heart_y"]
    along, across = hu * np.cos(tilt) + hv * np.sin(tilt), hv * np.cos(tilt) - hu * np.sin(tilt)
    heart = _tube(np.hypot(along / a["heart_rx"], across / a["heart_ry"]), 1.0)
    column = _ramp(a["medi_w"] - np.abs(u - 0.01), 0.04) * _ramp(a["heart_y"] - v, 0.2)
    knob = _tube(np.hypot((u - 0.13) / 0.08, (v + 0.3) / 0.075), 1.0)  # aortic knob
    center = np.maximum(np.maximum(np.minimum(1.5 * heart, 1.0), column), knob)
    lung *= 1 - center
    gastric = _tube(np.hypot((u - 0.4) / 0.13, (v - a["dome"] - a["dome_drop"] - 0.16) / 0.08), 1)
    spine = _ramp(0.065 - au, 0.02) * (0.75 + 0.25 * np.cos(2 * np.pi * v / 0.1))
    trachea = _ramp(0.028 - np.abs(u - 0.005), 0.015) * _ramp(-0.28 - v, 0.05)
    thorax = _ramp(a["chest_w"] - 0.03 - au, 0.03) * (1 - 0.6 * below) * (1 - 0.85 * center)
    bones = _ribs(au, v, a) * thorax
    clavicle = _tube(v + 0.62 + 0.2 * (au - 0.1) - 0.04 * np.sin(np.pi * (au - 0.1) / 0.6), 0.032)
    bones += 1.6 * clavicle * _ramp(au - 0.08, 0.03) * _ramp(0.74 - au, 0.04)
    bones += 1.2 * _tube(np.hypot(au - 0.98, v + 0.62), 0.16)  # humeral heads
    hila = np.exp(-((au - 0.2) ** 2 + (v + 0.05) ** 2) / 0.006)
    breast = np.zeros_like(u)
    for side in (-1.0, 1.0):
        breast += _ramp(1 - np.hypot((u - side * 0.52) / 0.36, (v - 0.42) / 0.2), 0.3)
    density = 0.03 + (a["tissue"] - 0.03) * body + 0.12 * below * body - 0.12 * gastric
    density += 0.16 * center * (1 - below) + 0.07 * spine * (1 - 0.5 * center) - 0.1 * trachea
    density -= a["air"] * lung * (0.85 + 0.15 * _ramp(au - 0.3, 0.6))  # darker laterally
    density += a["bone"] * bones + 0.06 * hila + 0.15 * vessels * lung
    density += a["breast"] * breast * body
    return density, lung


def _ribs(au: np.ndarray, v: np.ndarray, a: dict[str, float]) -> np.ndarray:
    """Posterior ribs (rise from the spine, arc down laterally) plus fainter anterior ribs."""
    posterior = np.zeros_like(au)
    slope = np.sqrt(1 + (2.4 * au - 0.45) ** 2)
    for k in range(10):
        top = (
            a["rib_top"] + k * a["rib_gap"] * (1 + 0.03 * k) + 0.01 * np.sin(a["vessel_phase"] * k)
        )
        across = (v - (top - 0.45 * au + 1.2 * au**2)) / slope
        posterior = np.maximum(posterior, _tube(across, a["rib_w"] * (1 + 0.04 * k)))
    posterior *= _ramp(au - 0.06, 0.03)
    anterior = np.zeros_like(au)
    lateral = 0.88 - au
    for k in range(6):
        across = v - (-0.64 + 0.13 * k + 0.5 * lateral - 0.1 * lateral**2)
        anterior = np.maximum(anterior, _tube(across / 1.12, a["rib_w"] * 0.8))
    return posterior + 0.4 * anterior * _ramp(au - 0.3, 0.1)


def _vessels(size: int, pose: Pose, phase: float) -> np.ndarray:
    """Lung markings: wavy lines fanning out of each hilum, thinning and fading outwards."""
    canvas = np.zeros((size, size), np.float32)
    radii = np.linspace(0.03, 0.55, 14)
    for side in (-1.0, 1.0):
        for k in range(7):
            phi = -1.25 + 0.38 * k + 0.1 * np.sin(phase * (k + 1))
            phi = phi + 0.12 * np.sin(9 * radii + phase + k)
            u = side * (0.19 + radii * np.cos(phi))
            pixels = _to_pixels(u, radii * np.sin(phi) - 0.05, size, pose)
            for i in range(len(radii) - 1):
                thick = max(1, round(size * 0.012 * np.exp(-radii[i] / 0.2)))
                value = float(np.exp(-radii[i] / 0.3))
                cv2.line(canvas, pixels[i], pixels[i + 1], value, thick, cv2.LINE_AA, SUBPIXEL_BITS)
    return canvas


def _opacity(
    u: np.ndarray, v: np.ndarray, blobs: list[tuple[float, ...]], label: str
) -> np.ndarray:
    """Pathology density from its blobs; a consolidation saturates, ground glass adds up."""
    layer = np.zeros_like(u)
    for cu, cv, radius, amp in blobs:
        layer += amp * np.exp(-((u - cu) ** 2 + (v - cv) ** 2) / (2 * radius**2))
    if label == "pneumonia" and blobs:
        peak = blobs[0][3]
        layer = peak * np.tanh(1.5 * layer / peak)
    return layer


def _draw_film(
    anatomy_rng: np.random.Generator,
    pathology_rng: np.random.Generator,
    image_rng: np.random.Generator,
    label: str,
    size: int,
) -> np.ndarray:
    """One radiograph as float32 [0,1] (size×size) before text; image_rng draws in fixed order."""
    a = _draw_anatomy(anatomy_rng)
    blobs = _draw_pathology(pathology_rng, label)
    j = image_rng.uniform
    shift = (a["shift_x"] + j(-0.015, 0.015), a["shift_y"] + j(-0.015, 0.015))
    pose = (shift, a["angle"] + j(-1.0, 1.0), a["scale"] * (1 + j(-0.015, 0.015)))
    gamma, gain = a["gamma"] * (1 + j(-0.04, 0.04)), a["gain"] * (1 + j(-0.03, 0.03))
    blur, grain, mottle = j(0.004, 0.008) * size, j(0.006, 0.018), j(0.01, 0.03)
    heel = j(-0.06, 0.06)  # anode heel effect: exposure falls off across the film
    texture = np.clip(1 + 0.35 * _low_frequency(image_rng, size, 12), 0.0, None)
    u, v = _body_coords(size, pose)
    density, lung = _density(u, v, a, _vessels(size, pose, a["vessel_phase"]))
    density += _opacity(u, v, blobs, label) * texture * lung
    film = cv2.GaussianBlur(density.astype(np.float32), (0, 0), blur)
    film = np.clip(film, 0.0, 1.0) ** gamma * gain + a["offset"]
    film *= 1 + heel * u
    film += mottle * _low_frequency(image_rng, size, 6)
    film += grain * image_rng.standard_normal((size, size), dtype=np.float32)
    return np.clip(film, 0.0, 1.0).astype(np.float32)
