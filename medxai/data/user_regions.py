"""Regions the user gives the audit (`medxai audit --regions`): boxes per kind and test image.

The audit runs the causal region tests it runs on burned-in text on them too, under the
user's own kind names (devices, ecg-leads, rulers: whatever the model may read). Two forms:

- a CSV file with the header `image,kind,x0,y0,x1,y1` (columns in any order, names matched
  without case), one box per row, in the original image's pixels, x1 and y1 exclusive;
- a folder of masks, `FOLDER/<kind>/<image>.png`, non-zero pixels the region, each of its
  image's size. Each connected component (8-connected, of `MIN_COMPONENT_PIXELS` pixels or
  more: smaller specks are dropped) becomes its bounding box, and the tests use those
  rectangles, not the mask's exact shape.

A CSV row names its image by its path under the dataset root (`SplitIndex.relative`, e.g.
`test/0001.png`), or by its bare file name when no other image of the dataset has it; a mask
names it by that path without the image's suffix (`FOLDER/devices/test/0001.png` for
`test/0001.dcm`), or by the file stem alone, under the same condition. A row or mask naming
an image of the dataset that is not a test image (one of `known`) is passed over and counted
(`UserRegions.ignored`); one naming no image is an error. Kind names are lowercase letters,
digits, '-' and '_'; the built-in kinds' names are reserved. Every problem is a one-line
`RegionsError` naming the file and line (the mask file, in the folder form).
"""

from __future__ import annotations

import csv
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import cv2
import numpy as np

from medxai.boxes import Box
from medxai.data.imageio import read_raw
from medxai.data.manifest import csv_rows
from medxai.errors import RegionsError, SplitFileError
from medxai.paths import visible_files

COLUMNS = ("image", "kind", "x0", "y0", "x1", "y1")
FORM = ",".join(COLUMNS)
RESERVED_KINDS = ("text", "marker", "border", "source")  # the audit's built-in kinds
KIND_NAME = re.compile(r"[a-z0-9][a-z0-9_-]*")
INTEGER = re.compile(r"[+-]?[0-9]+")
MIN_COMPONENT_PIXELS = 4  # a mask's smaller components are specks, not regions
MASK_SUFFIX = ".png"


@dataclass(frozen=True)
class UserRegions:
    """The user's regions: `boxes[kind][relative path]` lists the boxes (x0, y0, x1, y1) on
    that test image's original pixels; images without boxes of a kind are absent there.

    `kinds`: every kind named, in file order (the CSV form) or sorted (the folder form), each
    a key of `boxes`. `source`: the file or folder read. `ignored`: rows (masks) naming
    images of the dataset that are not test images.
    """

    source: Path
    kinds: tuple[str, ...]
    boxes: dict[str, dict[str, list[Box]]]
    ignored: int = 0


def read_user_regions(
    path: Path, images: Mapping[str, tuple[int, int]], known: Collection[str] = ()
) -> UserRegions:
    """The regions in the CSV file or mask folder at `path` (see the module doc).

    `images`: each test image's path relative to the dataset root → its original (height,
    width). `known`: every image of the dataset (relative paths); a row naming one that is
    not in `images` is ignored and counted, a row naming none is an error.
    """
    path = Path(path)
    names = _ImageNames(images, known)
    if path.is_dir():
        return _read_masks(path, names)
    if not path.exists():
        raise RegionsError(f"{path}: regions file not found")
    return _read_csv(path, names)


@dataclass
class _ImageNames:
    """What a row or mask may call an image, and which image that is."""

    sizes: Mapping[str, tuple[int, int]]
    known: Collection[str]
    by_path: dict[str, list[str]] = field(default_factory=dict)
    by_name: dict[str, list[str]] = field(default_factory=dict)
    by_trunk: dict[str, list[str]] = field(default_factory=dict)  # the path without suffix
    by_stem: dict[str, list[str]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for relative in sorted({*self.sizes, *self.known}):
            path = PurePosixPath(relative)
            self.by_path.setdefault(relative, []).append(relative)
            self.by_name.setdefault(path.name, []).append(relative)
            self.by_trunk.setdefault(path.with_suffix("").as_posix(), []).append(relative)
            self.by_stem.setdefault(path.stem, []).append(relative)

    def find(self, given: str, masks: bool = False) -> str | None:
        """The test image `given` names; None for another image of the dataset. Raises
        ValueError with the reason when it names none, or more than one."""
        key = PurePosixPath(given).as_posix()
        full, bare = (self.by_trunk, self.by_stem) if masks else (self.by_path, self.by_name)
        found = full.get(key) or (bare.get(key, []) if "/" not in key else [])
        if len(found) > 1:
            raise ValueError(
                f"image {given!r} is ambiguous: {found[0]}, {found[1]}"
                f"{f' and {len(found) - 2} more' if len(found) > 2 else ''}; name it by its "
                "path under the dataset root"
            )
        if not found:
            example = next(iter(self.sizes), None)
            like = f" (a test image is named like {example!r})" if example else ""
            named = "path (without its suffix) or stem" if masks else "path or file name"
            raise ValueError(f"unknown image {given!r}: no test image has this {named}{like}")
        return found[0] if found[0] in self.sizes else None


def kind_problem(kind: str) -> str | None:
    """Why `kind` cannot name a user's region kind."""
    if not kind:
        return "empty kind"
    if kind in RESERVED_KINDS:
        return f"kind {kind!r} is built in ({', '.join(RESERVED_KINDS)}); give yours another name"
    if not KIND_NAME.fullmatch(kind):
        return (
            f"kind {kind!r}: a kind name is lowercase letters, digits, '-' and '_' (e.g. ecg-leads)"
        )
    return None


def box_problem(box: Box) -> str | None:
    """Why `box` encloses no pixel."""
    x0, y0, x1, y1 = box
    if x1 <= x0 or y1 <= y0:
        return f"box {box} is empty: x1 must exceed x0 and y1 exceed y0 (x1, y1 exclusive)"
    return None


def outside_problem(box: Box, relative: str, size: tuple[int, int]) -> str | None:
    """Why `box` is not inside the image `relative` of (height, width) `size`; a box may
    touch the far edges (x1 == width, y1 == height)."""
    x0, y0, x1, y1 = box
    height, width = size
    if x0 < 0 or y0 < 0 or x1 > width or y1 > height:
        return f"box {box} lies outside the image {relative} ({width} wide × {height} high)"
    return None


def _read_csv(path: Path, names: _ImageNames) -> UserRegions:
    try:
        rows = list(csv_rows(path, "regions file"))
    except SplitFileError as err:
        raise RegionsError(str(err)) from None
    except csv.Error as err:
        raise RegionsError(f"{path}: not a CSV file ({err})") from None
    if not rows:
        raise RegionsError(f"{path}: no regions: the file is empty; its first row names {FORM}")
    header = _header(path, *rows[0])
    boxes: dict[str, dict[str, list[Box]]] = {}
    ignored = 0
    for line, cells in rows[1:]:
        parsed = _row(header, cells, names)
        if isinstance(parsed, str):
            raise RegionsError(f"{path}:{line}: {parsed}")
        kind, relative, box = parsed
        found = boxes.setdefault(kind, {})
        if relative is None:
            ignored += 1
        else:
            found.setdefault(relative, []).append(box)
    return _finish(path, boxes, ignored, "row(s)")


def _header(path: Path, line: int, row: list[str]) -> list[str]:
    """The column names, or a RegionsError naming the unknown and missing ones."""
    header = [cell.strip().lower() for cell in row]
    unknown = [name for name in header if name not in COLUMNS]
    missing = [name for name in COLUMNS if name not in header]
    if len(missing) == len(COLUMNS):
        raise RegionsError(
            f"{path}:{line}: no header row: the first row must name the columns {FORM}, "
            f"got {','.join(row)!r}"
        )
    if unknown or missing:
        parts = [f"unknown column(s) {', '.join(unknown)}"] * bool(unknown)
        parts += [f"missing column(s) {', '.join(missing)}"] * bool(missing)
        raise RegionsError(f"{path}:{line}: {'; '.join(parts)}; the columns are {FORM}")
    repeated = sorted({name for name in header if header.count(name) > 1})
    if repeated:
        raise RegionsError(f"{path}:{line}: column {repeated[0]!r} appears twice")
    return header


def _row(
    header: list[str], cells: list[str], names: _ImageNames
) -> tuple[str, str | None, Box] | str:
    """(kind, test image or None, box) of a row, or why it is not one."""
    if len(cells) != len(header):
        return f"expected {len(header)} fields ({','.join(header)}), got {len(cells)}"
    value = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
    problem = kind_problem(value["kind"])
    if problem:
        return problem
    if not value["image"]:
        return "empty image"
    for name in COLUMNS[2:]:
        if not INTEGER.fullmatch(value[name]):
            return f"{name} {value[name]!r} is not an integer (coordinates are whole pixels)"
    x0, y0, x1, y1 = (int(value[name]) for name in COLUMNS[2:])
    box = (x0, y0, x1, y1)
    problem = box_problem(box)
    if problem:
        return problem
    try:
        relative = names.find(value["image"])
    except ValueError as err:
        return str(err)
    if relative is None:
        return value["kind"], None, box
    return outside_problem(box, relative, names.sizes[relative]) or (value["kind"], relative, box)


def _read_masks(folder: Path, names: _ImageNames) -> UserRegions:
    boxes: dict[str, dict[str, list[Box]]] = {}
    ignored = 0
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith("."):
            continue
        if not entry.is_dir():
            raise RegionsError(f"{entry}: not a kind folder; masks go in {folder}/<kind>/")
        problem = kind_problem(entry.name)
        if problem:
            raise RegionsError(f"{entry}: {problem}")
        found = boxes.setdefault(entry.name, {})
        mask_of: dict[str, Path] = {}
        for mask in _mask_files(entry):
            key = PurePosixPath(*mask.relative_to(entry).parts).with_suffix("").as_posix()
            try:
                relative = names.find(key, masks=True)
            except ValueError as err:
                raise RegionsError(f"{mask}: {err}") from None
            if relative is None:
                ignored += 1
                continue
            if relative in mask_of:
                raise RegionsError(
                    f"{mask}: a second mask of {relative} (also {mask_of[relative]})"
                )
            mask_of[relative] = mask
            regions = mask_boxes(mask, names.sizes[relative], relative)
            if regions:
                found[relative] = regions
    return _finish(folder, boxes, ignored, "mask(s)")


def _mask_files(kind_folder: Path) -> list[Path]:
    """The masks under a kind folder, at any depth, sorted; hidden entries are skipped."""
    masks = list(visible_files(kind_folder))
    for path in masks:
        if path.suffix.lower() != MASK_SUFFIX:
            raise RegionsError(f"{path}: not a mask; masks are {MASK_SUFFIX} files")
    return masks


def mask_boxes(mask: Path, size: tuple[int, int], relative: str) -> list[Box]:
    """The bounding boxes of the mask's connected components (non-zero pixels, 8-connected,
    at least `MIN_COMPONENT_PIXELS` each), top to bottom, then left to right."""
    raw = read_raw(mask)
    if raw.format != "png":
        raise RegionsError(f"{mask}: a {raw.format.upper()} file; a mask must be a lossless PNG")
    pixels = raw.pixels if raw.pixels.ndim == 2 else raw.pixels.max(axis=-1)  # (H, W)
    if pixels.shape != tuple(size):
        h, w = pixels.shape
        raise RegionsError(
            f"{mask}: the mask is {w} wide × {h} high, its image {relative} "
            f"{size[1]} wide × {size[0]} high"
        )
    count, _, stats, _ = cv2.connectedComponentsWithStats(
        (pixels > 0).astype(np.uint8), connectivity=8
    )
    boxes = [
        (int(x), int(y), int(x + w), int(y + h))
        for x, y, w, h, area in stats[1:count]  # row 0: the background
        if area >= MIN_COMPONENT_PIXELS
    ]
    return sorted(boxes, key=lambda box: (box[1], box[0]))


def _finish(
    source: Path, boxes: dict[str, dict[str, list[Box]]], ignored: int, what: str
) -> UserRegions:
    """The record, or 'no regions' when no test image got a box."""
    if not any(boxes.values()):
        passed = f"; {ignored} {what} name images outside the test splits" if ignored else ""
        raise RegionsError(f"{source}: no regions on any test image{passed}")
    return UserRegions(source, tuple(boxes), boxes, ignored)
