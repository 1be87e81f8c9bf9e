"""Region kinds: what the shortcut stage tests. A kind supplies, per test film, boxes on the
original image, and for a chunk of films the matched control masks (the same operation on
a place that carries nothing of the kind). Text is the first kind; a new kind is one class
here and one entry in `region_kinds`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from torch import Tensor

from data_cleaning.clean import detection_image
from data_cleaning.detect import TextDetector, make_detector
from medxai.boxes import Box
from medxai.journal import journal, read_journal
from pipelines.audit.context import Run
from pipelines.audit.inputs import TestImage


class RegionKind(Protocol):
    name: str

    def find(
        self, images: Sequence[TestImage], root: Path, folder: Path,
        progress: Callable[[int], None],
    ) -> dict[str, list[Box]]:  # fmt: skip
        """Boxes per relative path, on the original image (resumable under `folder`)."""

    def control(self, masks: Tensor) -> Tensor:
        """(N, 1, S, S) region masks of a chunk of films -> their control masks."""

    def describe(self) -> dict[str, Any]:
        """What found the regions, for the report."""


class TextRegions:
    """Burned-in text, found by the cleaning stage's detector; the control of a film is the
    previous film's text boxes where this film has none (text-sized, text-placed, empty)."""

    name = "text"

    def __init__(self, detector: TextDetector) -> None:
        self.detector = detector

    def find(self, images, root, folder, progress) -> dict[str, list[Box]]:
        return detect_text(images, root, self.detector, folder / "boxes.jsonl", progress)

    @staticmethod
    def control(masks: Tensor) -> Tensor:
        return masks.roll(1, 0) & ~masks

    def describe(self) -> dict[str, Any]:
        return self.detector.describe()


def region_kinds(run: Run) -> list[RegionKind]:
    """The kinds an audit tests, in order."""
    clean = run.config.clean
    detector = make_detector(clean.detector, clean.text_threshold, run.gpu, clean.max_side)
    return [TextRegions(detector)]


def detect_text(
    images: Sequence[TestImage],
    root: Path,
    detector: TextDetector,
    journal_path: Path,
    progress: Callable[[int], None] | None = None,
) -> dict[str, list[Box]]:
    """Boxes per relative path; journalled per image, so a killed run resumes."""
    found = {e["relative"]: [tuple(b) for b in e["boxes"]] for e in read_journal(journal_path)}
    todo = [image for image in images if image.relative not in found]
    if progress and found:
        progress(len(images) - len(todo))
    with journal(journal_path) as out:
        for image in todo:
            pixels = detection_image(root / image.relative)
            boxes = [tuple(map(int, b)) for b in detector.detect(pixels)]
            found[image.relative] = boxes
            out.append({"relative": image.relative, "boxes": boxes})
            if progress:
                progress(1)
    return {image.relative: found[image.relative] for image in images}
