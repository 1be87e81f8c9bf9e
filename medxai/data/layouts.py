"""One entry point for every dataset layout: `read_dataset(location, layout, ...)` → SplitIndex.

Layouts: `covidx` (split files `ROOT/train*.txt`, `ROOT/test*.txt`: `medxai.data.covidx`),
`csv` (a CSV manifest: `medxai.data.manifest`) and `folders` (ROOT/<split>/<class>/<image>:
`medxai.data.folders`). `auto` tells them apart by what the location holds, and the index
says why (`SplitIndex.layout_why`). Split names:
covidx keeps the file names (train.txt, test_balanced.txt), csv the split column's values,
folders the split folders' names.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from medxai.atomic import atomic_write_bytes
from medxai.data.classes import parse_classes
from medxai.data.covidx import discover_splits, read_splits
from medxai.data.folders import SOURCE_FROM, read_folder_tree, split_folders, unnamed_splits
from medxai.data.manifest import read_csv_manifest, write_csv_copy
from medxai.data.records import SplitIndex
from medxai.errors import DatasetError, MedxaiError

LAYOUTS = ("covidx", "csv", "folders")
LOOKED_FOR = (
    "a .csv manifest file (csv), train*.txt/test*.txt split files (covidx), or split folders "
    "holding class folders, ROOT/<split>/<class>/<image> (folders)"
)


def dataset_root(location: str | Path) -> Path:
    """The folder a dataset's image paths are relative to: a CSV manifest's folder, else the
    location itself. Outputs may never be inside it."""
    location = Path(location)
    return location.parent if location.suffix.lower() == ".csv" and location.is_file() else location


@dataclass(frozen=True)
class LayoutChoice:
    """The layout a location is read as, and why."""

    layout: str
    why: str


def choose_layout(location: str | Path, splits: Sequence[str] | None = None) -> LayoutChoice:
    """covidx, csv or folders, told from what `location` holds, with the reason: a .csv file
    is a manifest; train*/test*.txt split files at the root (or `splits` ending in .txt) are
    COVIDx; else folders holding class folders, one at least named train* or test* unless
    `splits` names them, are a tree. Anything else is a one-line error naming what was found."""
    location = Path(location)
    if not location.exists():
        raise DatasetError(f"{location}: dataset root not found")
    if not location.is_dir():
        if location.suffix.lower() == ".csv":
            return LayoutChoice("csv", f"{location.name} is a .csv manifest")
        raise DatasetError(f"{location}: not a dataset folder or a .csv manifest")
    split_files = sorted(
        {p.name for p in (*location.glob("train*.txt"), *location.glob("test*.txt"))}
    )
    if split_files:
        return LayoutChoice("covidx", f"split files {', '.join(split_files)} at the root")
    named = [name for name in splits or () if name.endswith(".txt")]
    if named:
        return LayoutChoice("covidx", f"split files named with --splits ({', '.join(named)})")
    folders = split_folders(location)
    unnamed = unnamed_splits(folders) if folders and not splits else None
    if unnamed:
        raise DatasetError(
            f"{location}: no train*.txt/test*.txt split file at the root and {unnamed}: not "
            f"taken for a dataset; looked for {LOOKED_FOR}"
        )
    if folders:
        return LayoutChoice(
            "folders",
            f"no train*/test*.txt split file at the root, and class folders under "
            f"{', '.join(p.name + '/' for p in folders)}",
        )
    raise DatasetError(f"{location}: cannot tell the dataset layout; looked for {LOOKED_FOR}")


def detect_layout(location: str | Path, splits: Sequence[str] | None = None) -> str:
    """covidx, csv or folders, from what `location` holds (`choose_layout`)."""
    return choose_layout(location, splits).layout


def layout_reason(location: str | Path, layout: str, splits: Sequence[str] | None = None) -> str:
    """Why `location` is read as `layout`: what it holds that tells the layout, or, when
    that would tell another layout or none, that the layout was named."""
    try:
        found = choose_layout(location, splits)
    except DatasetError:
        return "named with --layout"
    if found.layout != layout:
        return f"named with --layout (what the location holds reads as {found.layout})"
    return found.why


def read_dataset(
    location: str | Path,
    layout: str = "auto",
    splits: Sequence[str] | None = None,
    classes: str | Sequence[str] | None = None,
    source_from: str = "none",
    image_dirs: Mapping[str, str] | None = None,
) -> SplitIndex:
    """Every split of the dataset at `location` (a folder, or a CSV manifest), read leniently:
    records, problems, warnings and the classes in order.

    `splits`: the ones to read (covidx: split file names, default every split file under the
    root; csv: split values; folders: split folder names; default all). `classes`: the class
    names in order (a list, or 'a,b,c'); default from the training split. `source_from`
    (folders): none, dir or prefix. `image_dirs` (covidx): split → image folder.
    """
    location = Path(location)
    classes = parse_classes(classes) if isinstance(classes, str) else classes
    if layout != "auto" and layout not in LAYOUTS:
        raise MedxaiError(f"--layout must be auto or {' or '.join(LAYOUTS)}, got {layout!r}")
    if source_from not in SOURCE_FROM:
        raise MedxaiError(f"--source-from must be {' or '.join(SOURCE_FROM)}, got {source_from!r}")
    if layout == "auto":
        choice = choose_layout(location, splits)
        chosen, why = choice.layout, choice.why
    else:
        chosen, why = layout, layout_reason(location, layout, splits)
    for option, given, layout_for in (
        ("--image-dir", image_dirs, "covidx"),
        ("--source-from", source_from != "none", "folders"),
    ):
        if given and chosen != layout_for:
            raise MedxaiError(
                f"{option} is for the {layout_for} layout; {location} is {chosen}-laid-out"
            )
    if chosen == "csv":
        if location.is_dir():
            raise DatasetError(f"{location}: the csv layout takes the .csv manifest file itself")
        index = read_csv_manifest(location, classes, splits)
    elif chosen == "folders":
        index = read_folder_tree(location, classes, source_from, splits)
    else:
        index = _read_covidx(location, splits, classes, image_dirs)
    index.layout_why = why
    return index


def _read_covidx(
    root: Path,
    splits: Sequence[str] | None,
    classes: Sequence[str] | None,
    image_dirs: Mapping[str, str] | None,
) -> SplitIndex:
    if root.is_file():
        raise DatasetError(f"{root}: the covidx layout takes the dataset folder, not a file")
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    notes: list[str] = []
    if not splits:
        splits, notes = discover_splits(root, classes or ())
    index = read_splits(root, list(splits), image_dirs, classes)
    index.notes += notes
    return index


def listing_names(index: SplitIndex) -> list[str]:
    """The files besides the images that a copy of the dataset needs, relative to its root:
    the split files (covidx), the CSV manifest (csv), none (folders)."""
    if index.layout == "covidx":
        return list(index.records)
    if index.layout == "csv" and index.listing is not None:
        return [index.listing.name]
    return []


def write_listings(index: SplitIndex, out: Path) -> list[str]:
    """Write the listing files of a copy of the dataset under `out` (whose images sit at their
    `index.relative` paths): covidx split files byte for byte, a CSV manifest with the same
    columns and rows; atomically. Returns their names."""
    names = listing_names(index)
    for name in names:
        if index.layout == "csv":
            write_csv_copy(index, out / name)
        else:
            atomic_write_bytes(out / name, (index.root / name).read_bytes())
    return names
