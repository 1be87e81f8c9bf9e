"""Region kinds: what the shortcut stage tests. A kind supplies, per test film, boxes on the
original image; for a chunk of films, the matched control masks (the same operation on a place
that carries nothing of the kind); and the film with the kind's regions removed. A new kind is
one class here and one entry in `region_kinds`.

- `text`: everything the detector reads, words, dates and lone markers (what cleaning
  inpaints, so the text verdict and the cleaning stay one idea); control: the same shapes
  moved to where other films carry text and this one has none (`controls.matched_controls`).
- `marker`: the lone laterality and view markers alone (the fused detector's glyph stage),
  reported on their own row: anatomy-adjacent, and every hospital has them; a model that
  reads only them shows on both rows, one that reads words on the text row alone. Control as
  for text.
- `border`: the film's frame (dark or flat bands along the edges, or an outer band of fixed
  share when there is none), less any text or marker on it; removed by filling it with the
  film's own interior mean; control: the ring just inside it, of the same area.
- `user:<name>`: regions the user gives (`--regions FILE`); control as for text.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

from data_cleaning.clean import detection_image
from data_cleaning.detect import DetectorSpec, TextDetector, labeled_boxes
from medxai import distributed
from medxai.boxes import Box
from medxai.data.imageio import read_image, to_channels
from medxai.data.traits import border_bands
from medxai.data.user_regions import read_user_regions
from medxai.explain.perturb import blurred_baseline
from medxai.journal import fold_rank_journals, journal, rank_journal, read_rank_journals
from pipelines.audit.context import Run
from pipelines.audit.controls import matched_controls
from pipelines.audit.inputs import TestImage
from pipelines.audit.region_tests import default_removed

MARKER_STAGE = "glyph"  # the fused detector's lone-marker stage
FALLBACK_BORDER = 0.06  # share of each side tested as "the border" when no frame is found
MIN_BORDER = 0.02  # a found band narrower than this share of the side is no frame

Progress = Callable[[int], None]


class RegionKind(Protocol):
    name: str
    cue: str  # what the kind is, in the verdict's words
    excludes: tuple[str, ...]  # kinds whose regions are taken out of this one's

    def find(
        self, images: Sequence[TestImage], root: Path, folder: Path, progress: Progress
    ) -> dict[str, list[Box]]:
        """Boxes per relative path, on the original image (resumable under `folder`)."""

    def control(self, masks: Tensor, counts: Tensor) -> Tensor:
        """(N, 1, S, S) region masks of a chunk of films, and (S, S) counts of the kind's
        regions over every test film -> the chunk's control masks."""

    def removed(self, batch: Tensor, masks: Tensor) -> Tensor:
        """The films with nothing of the kind: what the tests put in the regions' place."""

    def describe(self) -> dict[str, Any]:
        """What found the regions, for the report."""


class DetectedText:
    """What the text detector found: every box (`markers=False`: words and lone markers, what
    cleaning inpaints; the text row), or the lone markers alone (the fused detector's glyph
    stage; the marker row). Both read one journal of labelled boxes, so the detector runs once
    per film."""

    excludes = ()

    def __init__(self, detector: DetectorSpec, markers: bool) -> None:
        self.detector, self.markers = detector, markers
        self.name = "marker" if markers else "text"
        self.cue = "laterality and view markers" if markers else "burned-in text"

    def find(self, images, root, folder, progress) -> dict[str, list[Box]]:
        found = detect_labeled(images, root, self.detector, folder / "detections.jsonl", progress)
        return {
            relative: [box for box, stage in pairs if stage == MARKER_STAGE or not self.markers]
            for relative, pairs in found.items()
        }

    control = staticmethod(matched_controls)
    removed = staticmethod(default_removed)  # a function: it pickles, for torchrun

    def describe(self) -> dict[str, Any]:
        described = self.detector.build().describe()
        return described | {"boxes": "glyph stage" if self.markers else "all"}


class BorderRegions:
    """The film's frame, from `medxai.data.traits.border_bands`."""

    name, cue = "border", "the film's border (collimation, padding, frame)"
    excludes = ("text", "marker")  # text on the frame is tested as text

    def find(self, images, root, folder, progress) -> dict[str, list[Box]]:
        return journalled(images, folder / "border.jsonl", progress, partial(frame, root))

    @staticmethod
    def control(masks: Tensor, counts: Tensor) -> Tensor:
        """The ring just inside the border, grown one pixel at a time to the border's area."""
        area, grown = masks.flatten(1).sum(1), masks
        for _ in range(masks.shape[-1] // 2):
            short = (grown & ~masks).flatten(1).sum(1) < area
            if not bool(short.any()):
                break
            bigger = F.max_pool2d(grown.float(), 3, 1, 1).bool()
            grown = torch.where(short.view(-1, 1, 1, 1), bigger, grown)
        return grown & ~masks

    @staticmethod
    def removed(batch: Tensor, masks: Tensor) -> Tensor:
        """The blurred film, its border filled with the mean of the rest: no frame at all."""
        base = blurred_baseline(batch)
        inside = (~masks).to(batch.dtype)
        mean = (batch * inside).sum((2, 3), keepdim=True) / inside.sum((2, 3), keepdim=True)
        return torch.where(masks, mean.expand_as(batch), base)

    def describe(self) -> dict[str, Any]:
        return {
            "name": "border bands", "fallback_share": FALLBACK_BORDER, "min_share": MIN_BORDER,
        }  # fmt: skip


def frame(root: Path, image: TestImage) -> list[Box]:
    """The four edge bands found on the film (or of the fallback share, when none is)."""
    gray = to_channels(read_image(root / image.relative), 1)[0]
    h, w = gray.shape
    top, bottom, left, right = border_bands(gray)
    if max(top / h, bottom / h, left / w, right / w) < MIN_BORDER:
        band = round(FALLBACK_BORDER * min(h, w))
        top = bottom = left = right = band
    boxes = [(0, 0, w, top), (0, h - bottom, w, h), (0, 0, left, h), (w - right, 0, w, h)]
    return [box for box in boxes if box[2] > box[0] and box[3] > box[1]]


class GivenRegions:
    """Regions of one kind the user named in `--regions FILE`."""

    excludes = ()

    def __init__(self, kind: str, boxes: dict[str, list[Box]], source: Path) -> None:
        self.name, self.cue = f"user:{kind}", f"the user's regions '{kind}'"
        self.boxes, self.source = boxes, source

    def find(self, images, root, folder, progress) -> dict[str, list[Box]]:
        progress(len(images))
        return {i.relative: list(self.boxes.get(i.relative, [])) for i in images}

    control = staticmethod(matched_controls)
    removed = staticmethod(default_removed)  # a function: it pickles, for torchrun

    def describe(self) -> dict[str, Any]:
        return {"name": "user regions", "file": str(self.source)}


def region_kinds(run: Run, shapes: dict[str, tuple[int, int]], known: set[str]) -> list[RegionKind]:
    """The kinds an audit tests, in order: text, marker, border, then the user's kinds.
    `shapes`: each test film's original (H, W), to check the user's boxes against; `known`:
    every film of the dataset (rows naming a training film are skipped)."""
    clean = run.config.clean
    detector = DetectorSpec(clean.detector, clean.text_threshold, run.gpu, clean.max_side)
    kinds: list[RegionKind] = [DetectedText(detector, markers=False)]
    if hasattr(detector.build(), "glyphs"):  # only the fused detector tells markers from words
        kinds.append(DetectedText(detector, markers=True))
    kinds.append(BorderRegions())
    if run.config.data.regions:
        given = read_user_regions(Path(run.config.data.regions), shapes, known)
        kinds += [GivenRegions(k, given.boxes[k], given.source) for k in given.kinds]
    return kinds


def detect_labeled(
    images: Sequence[TestImage],
    root: Path,
    detector: TextDetector | DetectorSpec,
    journal_path: Path,
    progress: Progress | None = None,
) -> dict[str, list[tuple[Box, str]]]:
    """Boxes with the detector stage that found them, per relative path; journalled per film.
    Under torchrun the films are dealt to the ranks (give a `DetectorSpec` there)."""
    found = journalled(images, journal_path, progress, partial(_detect, root, detector))
    return {r: [(tuple(box), stage) for box, stage in pairs] for r, pairs in found.items()}


def _detect(root: Path, detector: TextDetector | DetectorSpec, image: TestImage) -> list:
    if isinstance(detector, DetectorSpec):
        detector = detector.build()
    pixels = detection_image(root / image.relative)
    return [[list(map(int, box)), stage] for box, stage in labeled_boxes(detector, pixels)]


def journalled(
    images: Sequence[TestImage],
    journal_path: Path,
    progress: Progress | None,
    compute: Callable[[TestImage], list],
) -> dict[str, list]:
    """`compute` per film, journalled as it goes, so a killed run resumes where it stopped;
    under torchrun the films still to do are dealt to the ranks (`compute` must pickle)."""
    return distributed.run_everywhere(
        _journalled_step, images, journal_path, compute, local={"progress": progress}
    )


def _journalled_step(
    images: Sequence[TestImage],
    journal_path: Path,
    compute: Callable[[TestImage], list],
    progress: Progress | None = None,
) -> dict[str, list]:
    """Every rank: read what any rank finished, do this rank's share of the rest in its own
    journal, share the values; rank 0 then folds the ranks' journals into `journal_path`."""
    found = {e["relative"]: e["value"] for e in read_rank_journals(journal_path)}
    distributed.barrier()  # every rank has read before any writes
    todo = [image for image in images if image.relative not in found]
    if progress and found:
        progress(len(images) - len(todo))
    dealt, mine = distributed.deal(todo), []
    step = len(todo) / max(1, len(dealt))  # rank 0's bar stands for every rank's
    with journal(rank_journal(journal_path, distributed.rank())) as out:
        for image in dealt:
            value = compute(image)
            mine.append((image.relative, value))
            out.append({"relative": image.relative, "value": value})
            if progress:
                progress(step)
    found.update(distributed.gather_objects(mine))
    if distributed.is_main():
        fold_rank_journals(journal_path)
    return {image.relative: found[image.relative] for image in images}
