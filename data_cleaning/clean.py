"""Write a cleaned copy of a dataset: burned-in text detected and inpainted.

The copy mirrors the source's layout (`medxai.data.layouts`): every image at its path
relative to the dataset root, plus the listing files (COVIDx split files byte for byte, a
CSV manifest with the same columns; a folder tree needs none). The source is only read.
Every output file is written under a temporary name and renamed; `DST/manifest.jsonl`
gains one line per finished image (keyed by that relative path), so a killed run resumes:
images whose source sha256 is already in the manifest are skipped. At the end the manifest is
rewritten in a fixed order, so an interrupted-and-resumed run leaves the same files as an
uninterrupted one (only `cleaning_summary.json`'s timing differs).

Under torchrun (`torchrun --nproc-per-node N -m medxai clean ...`, or the audit's cleaning
stage) the images are dealt to the ranks in the fixed order, each rank journals its own
(`manifest.rank<k>.jsonl`), and rank 0 folds them into the manifest and writes the listings
and summary: every image is cleaned by one rank, the same way on any number of ranks, and a
killed run resumes from every rank's journal.
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pydicom
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from data_cleaning.detect import (
    DEFAULT_DETECTOR,
    TextDetector,
    labeled_boxes,
    make_detector,
    recheck,
)
from data_cleaning.inpaint import TELEA_RADIUS, boxes_to_mask, inpaint
from data_cleaning.review import review_reason
from medxai import distributed
from medxai.atomic import atomic_write_bytes, atomic_write_text
from medxai.data.imageio import read_image, read_raw, write_png
from medxai.data.layouts import dataset_root, listing_names, read_dataset, write_listings
from medxai.data.records import SplitIndex
from medxai.errors import DatasetError, ImageReadError, MedxaiError
from medxai.journal import fold_rank_journals, journal, rank_journal, read_rank_journals
from medxai.outputs import LOCK_NAME, check_output, output_lock
from medxai.paths import file_problem

MANIFEST = "manifest.jsonl"
SUMMARY = "cleaning_summary.json"
MOST_OF_IMAGE = 0.5  # a mask over more than this share leaves Telea too little to copy from
UID_PREFIX = "1.2.826.0.1.3680043.8.498."  # pydicom's root, as generate_uid uses by default
# A worker process loads its own detector models (seconds): worth it from this many films on
FILMS_PER_WORKER = 50


@dataclass(frozen=True)
class CleanSettings:
    detector: str = DEFAULT_DETECTOR
    text_threshold: float = 0.7
    radius: int = TELEA_RADIUS
    dilate: int = 4
    max_side: int = 1280
    gpu: bool = False


@dataclass(frozen=True)
class Job:
    """One image: its path relative to the dataset root (`SplitIndex.relative`, e.g.
    'train/x.png'), which is also where the cleaned copy puts it.

    `boxes`: text boxes found earlier with the same detector (None: detect now).
    """

    relative: str
    boxes: tuple[tuple[int, int, int, int], ...] | None = None


@dataclass
class CleaningSummary:
    images: int = 0
    with_text: int = 0
    boxes: int = 0
    failed: list[dict] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)  # e.g. a mask over most of the image
    notes: list[str] = field(default_factory=list)  # e.g. a README.txt not taken for a split
    needs_review: list[dict] = field(default_factory=list)  # DICOMs that should carry text
    residual_boxes: int = 0  # boxes the detector still finds on the cleaned images
    with_residual: list[dict] = field(default_factory=list)  # cleaned images with such boxes
    skipped_done: int = 0
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "failures": len(self.failed)}


def summary_lines(summary: CleaningSummary, out: str | Path) -> list[str]:
    """The summary both fronts print, as plain text: the counts, the residual check, then
    every image to look at (residual text, needs review), note, warning and failure."""
    return [
        f"{summary.images} images ({summary.skipped_done} already done), "
        f"{summary.with_text} with text, {summary.boxes} boxes, {len(summary.failed)} failed, "
        f"{summary.seconds:.1f} s; wrote {out}",
        f"residual check: {summary.residual_boxes} boxes still detected on "
        f"{len(summary.with_residual)} cleaned images; {len(summary.needs_review)} need review",
        *(f"residual text: {i['source']} ({i['boxes']} boxes)" for i in summary.with_residual),
        *(f"needs review: {i['source']}: {i['reason']}" for i in summary.needs_review),
        *(f"note: {note}" for note in summary.notes),
        *(f"warning {w['source']}: {w['warning']}" for w in summary.warnings),
        *(f"failed {f['source']}: {f['reason']}" for f in summary.failed),
    ]


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def check_destination(src: Path, dst: Path) -> None:
    """SRC is never written: refuse DST equal to or inside SRC (a CSV manifest's folder),
    and a foreign non-empty DST."""
    root = dataset_root(src)
    if not src.exists() or not root.is_dir():
        raise DatasetError(f"{src}: dataset root not found")
    check_output(dst, [root])
    foreign = dst.exists() and any(p.name != LOCK_NAME for p in dst.iterdir())
    if foreign and not (dst / MANIFEST).is_file():
        raise DatasetError(f"output {dst} is not empty and holds no {MANIFEST} to resume from")


def list_jobs(index: SplitIndex) -> list[Job]:
    """Every image of the dataset, once, in a fixed order.

    Any problem of the dataset (a malformed line, a path leaving the root) stops the run
    here, before a file is written: a job's output path is DST/<its path under the root>.
    """
    index.raise_problems()
    jobs = {index.relative(r): Job(index.relative(r)) for rs in index.records.values() for r in rs}
    taken = set(listing_names(index)) | {MANIFEST, SUMMARY}
    clash = sorted(taken & set(jobs))
    if clash:
        raise DatasetError(f"{index.root / clash[0]}: an image may not take the name of a file "
                           "the cleaned copy writes beside it")  # fmt: skip
    return sorted(jobs.values(), key=lambda job: job.relative)


def read_manifest(path: Path) -> dict[str, dict]:
    """Finished entries by source path, the ranks' journals beside it included (a line torn
    by a kill is skipped)."""
    return {entry["source"]: entry for entry in read_rank_journals(path)}


def detection_image(path: Path) -> np.ndarray:
    """What a detector sees: the displayed image (DICOM windowed, bone bright) as RGB uint8."""
    unit = read_image(path)
    rgb = unit if unit.ndim == 3 else np.repeat(unit[..., None], 3, axis=2)
    return np.round(rgb * 255).astype(np.uint8)


def clean_image(
    src: Path, dst: Path, job: Job, detector: TextDetector, settings: CleanSettings
) -> dict:
    """Detect, inpaint and write one image; returns its manifest entry."""
    source = src / job.relative
    entry: dict = {"source": job.relative, "output": job.relative}
    try:
        problem = file_problem(source)
        if problem:
            raise ImageReadError(f"{source}: {problem}")
        entry["source_sha256"] = sha256_of(source)
        raw = read_raw(source)
        if job.boxes is not None:
            labeled = [(b, "earlier run") for b in job.boxes]
        else:
            labeled = labeled_boxes(detector, detection_image(source))
        boxes = [list(map(int, b)) for b, _ in labeled]
        entry["box_sources"] = [stage for _, stage in labeled]  # which detector found each
        mask = boxes_to_mask(raw.pixels.shape, boxes, settings.dilate)
        covered = float(np.count_nonzero(mask)) / mask.size
        if covered > MOST_OF_IMAGE:
            entry["warning"] = (
                f"the text mask covers {covered:.0%} of the image (--dilate {settings.dilate}); "
                "inpainting cannot restore so much"
            )
        target = dst / job.relative
        target.parent.mkdir(parents=True, exist_ok=True)
        cleaned = inpaint(raw.pixels, mask, settings.radius) if boxes else None
        if not boxes:
            atomic_write_bytes(target, source.read_bytes())  # byte-identical copy
        elif raw.format == "dicom":
            _write_dicom(source, target, cleaned, settings)
        elif raw.format == "png":
            write_png(target, cleaned)
        else:  # JPEG stays JPEG (quality 95): a cleaned file keeps its name and type
            _write_jpeg(target, cleaned)
        review = review_reason(source) if not boxes and raw.format == "dicom" else None
        if review:
            entry["review"] = review
        if boxes:  # the residual check: detect again on the cleaned file as written
            d = settings.dilate
            inpainted = [(x0 - d, y0 - d, x1 + d, y1 + d) for x0, y0, x1, y1 in boxes]
            again = recheck(detector, detection_image(target), inpainted)
            entry["residual_boxes"] = [list(map(int, b)) for b in again]
            if again and raw.format == "dicom":  # the tag must not deny what the check found
                _write_dicom(source, target, cleaned, settings, burned_in="YES")
    except (MedxaiError, OSError) as err:
        return {**entry, "status": "failed", "reason": str(err)}
    return {
        **entry,
        "status": "cleaned" if boxes else "needs_review" if review else "no_text",
        "output_sha256": sha256_of(target),
        "boxes": boxes,
        "detector": detector.describe(),
        "inpaint": {"method": "telea", "radius": settings.radius, "dilate": settings.dilate},
    }


def _write_jpeg(target: Path, pixels: np.ndarray) -> None:
    import cv2

    bgr = cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR) if pixels.ndim == 3 else pixels
    ok, encoded = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, 95])
    if not ok:
        raise ImageReadError(f"{target}: could not encode JPEG")
    atomic_write_bytes(target, encoded.tobytes())


def _write_dicom(
    source: Path, target: Path, pixels: np.ndarray, settings: CleanSettings, burned_in: str = "NO"
) -> None:
    """Same DICOM with new pixels: new SOP Instance UID, DERIVED, Burned In Annotation NO
    (YES when the residual check still finds text)."""
    ds = pydicom.dcmread(source)
    if ds.file_meta.TransferSyntaxUID.is_compressed:
        ds.decompress()
    ds.PixelData = np.ascontiguousarray(pixels).astype(ds.pixel_array.dtype).tobytes()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    uid = derived_uid(str(ds.get("SOPInstanceUID", source.name)), settings)
    ds.SOPInstanceUID = uid
    ds.file_meta.MediaStorageSOPInstanceUID = uid
    image_type = list(ds.get("ImageType", ["ORIGINAL", "PRIMARY"]))
    ds.ImageType = ["DERIVED", *image_type[1:]] if image_type else ["DERIVED"]
    ds.BurnedInAnnotation = burned_in
    ds.DerivationDescription = (
        f"burned-in text inpainted (OpenCV Telea, radius {settings.radius}) by medxai"
    )
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    atomic_write_bytes(target, buffer.getvalue())


def derived_uid(source_uid: str, settings: CleanSettings) -> str:
    """The cleaned copy's SOP Instance UID: new, but the same for the same source and settings.

    So two cleans of one dataset are byte-identical, and a change of settings gives new UIDs.
    """
    return generate_uid(UID_PREFIX, entropy_srcs=[source_uid, json.dumps(asdict(settings))])


def cleaning_workers(films: int, gpu: bool) -> int:
    """Processes to clean `films` with: on a CPU one per core of this process's share
    (torch's threads, a rank's share under torchrun), each on one thread — a detector's
    threads scale worse than processes do — and no more than one per FILMS_PER_WORKER
    films; with the GPU, one."""
    import torch

    if gpu:
        return 1
    return max(1, min(torch.get_num_threads(), films // FILMS_PER_WORKER))


_WORKER: dict = {}


def _init_worker(settings: CleanSettings) -> None:
    import cv2
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _WORKER["detector"] = _make(settings)
    _WORKER["settings"] = settings


def _make(settings: CleanSettings) -> TextDetector:
    return make_detector(
        settings.detector, settings.text_threshold, settings.gpu, settings.max_side
    )


def _work(src: str, dst: str, job: Job) -> dict:
    return clean_image(Path(src), Path(dst), job, _WORKER["detector"], _WORKER["settings"])


def clean_dataset(
    src: str | Path,
    dst: str | Path,
    splits: Sequence[str] | None = None,
    settings: CleanSettings | None = None,
    workers: int = 1,
    progress: Callable[[int, int], None] | None = None,
    known_boxes: Mapping[str, Sequence[Sequence[int]]] | None = None,
    index: SplitIndex | None = None,
    layout: str = "auto",
    classes: str | Sequence[str] | None = None,
    source_from: str = "none",
) -> CleaningSummary:
    """Clean every image of the dataset at `src` (a folder or a CSV manifest); write the
    copy in the same layout, with the manifest of the cleaning.

    `splits`, `layout`, `classes`, `source_from`: as `medxai.data.layouts.read_dataset`
    takes them. `known_boxes` (relative path → boxes) skips detection for images already run
    through the same detector (the audit detects the test images once, for its analysis and
    for this); `index`, the dataset already read, spares reading it again.
    """
    src, dst = Path(src), Path(dst)
    settings = settings or CleanSettings()
    check_destination(src, dst)
    index = index or read_dataset(src, layout, splits, classes, source_from)
    jobs = list_jobs(index)
    if known_boxes:
        jobs = [
            replace(job, boxes=tuple(tuple(map(int, b)) for b in known_boxes[job.relative]))
            if job.relative in known_boxes
            else job
            for job in jobs
        ]
    distributed.barrier()  # every rank has checked DST before rank 0 writes to it
    workers = rank_workers(workers)
    with output_lock(dst) if distributed.is_main() else nullcontext():
        return _clean_jobs(index, dst, jobs, settings, workers, progress)


def rank_workers(workers: int) -> int:
    """Under torchrun, `workers` capped at the rank's share of the cores (its torch threads):
    every rank runs its own workers, and 2 ranks of 2 workers on 2 cores cleaned 13% slower
    than 2 ranks of one (benchmarks/bench_cleaning_cores.py)."""
    if distributed.world_size() == 1:
        return workers
    import torch

    return max(1, min(workers, torch.get_num_threads()))


def _clean_jobs(
    index: SplitIndex,
    dst: Path,
    jobs: list[Job],
    settings: CleanSettings,
    workers: int,
    progress: Callable[[int, int], None] | None,
) -> CleaningSummary:
    src, manifest_path = index.root, dst / MANIFEST
    notes = [*index.notes, *index.warnings]
    done = read_manifest(manifest_path)
    distributed.barrier()  # every rank has read the journals before any writes
    mine = distributed.deal(jobs)
    todo = [job for job in mine if not _finished(done.get(job.relative), src, dst, job)]
    left = sum(distributed.gather_objects([len(todo)]))
    summary = CleaningSummary(notes=notes, skipped_done=len(jobs) - left)
    started = time.perf_counter()
    if progress:
        progress(summary.skipped_done, len(jobs))
    step = left / max(1, len(todo))  # rank 0's bar stands for every rank's
    cleaned: list[dict] = []
    with journal(rank_journal(manifest_path, distributed.rank())) as manifest:
        for entry in _run(src, dst, todo, settings, workers):
            manifest.append(entry)
            cleaned.append(entry)
            if progress:
                progress(step, len(jobs))
    done.update((e["source"], e) for e in distributed.gather_objects(cleaned))
    ordered = [done[job.relative] for job in jobs if job.relative in done]
    if distributed.is_main():
        fold_rank_journals(manifest_path)
        write_listings(index, dst)  # last: their presence means the copy is usable
        atomic_write_text(manifest_path, "".join(json.dumps(e) + "\n" for e in ordered))
    summary.images = len(jobs)
    summary.with_text = sum(1 for e in ordered if e["status"] == "cleaned")
    summary.boxes = sum(len(e.get("boxes", [])) for e in ordered)
    summary.failed = [
        {"source": e["source"], "reason": e["reason"]} for e in ordered if e["status"] == "failed"
    ]
    summary.warnings = [
        {"source": e["source"], "warning": e["warning"]} for e in ordered if "warning" in e
    ]
    summary.needs_review = [
        {"source": e["source"], "reason": e["review"]}
        for e in ordered
        if e["status"] == "needs_review"
    ]
    summary.residual_boxes = sum(len(e.get("residual_boxes", [])) for e in ordered)
    summary.with_residual = [
        {"source": e["source"], "boxes": len(e["residual_boxes"])}
        for e in ordered
        if e.get("residual_boxes")
    ]
    summary.seconds = time.perf_counter() - started
    payload = {**summary.to_dict(), "settings": asdict(settings), "layout": index.layout,
               "splits": list(index.records)}  # fmt: skip
    if distributed.is_main():
        atomic_write_text(dst / SUMMARY, json.dumps(payload, indent=2) + "\n")
    distributed.barrier()  # the copy is complete when any rank returns
    return summary


def _finished(entry: dict | None, src: Path, dst: Path, job: Job) -> bool:
    if entry is None or entry.get("status") == "failed":
        return False
    source = src / job.relative
    return (
        file_problem(source) is None
        and (dst / entry["output"]).is_file()
        and entry.get("source_sha256") == sha256_of(source)
    )


def _run(
    src: Path, dst: Path, jobs: Sequence[Job], settings: CleanSettings, workers: int
) -> Iterable[dict]:
    if not jobs:
        return
    if workers <= 1:
        detector = _make(settings)
        for job in jobs:
            yield clean_image(src, dst, job, detector, settings)
        return
    context = multiprocessing.get_context("spawn")  # torch threads must not be forked
    with ProcessPoolExecutor(workers, mp_context=context, initializer=_init_worker,
                             initargs=(settings,)) as pool:  # fmt: skip
        yield from pool.map(_work, [str(src)] * len(jobs), [str(dst)] * len(jobs), jobs)
