"""ImageFolder-tree datasets: ROOT/<split>/<class>/<image>, the class named by its folder.

A split folder is a folder under ROOT that holds folders; each folder in it is a class. Unless
the splits are named, at least one must be named train* or test*, else the tree is refused.
Images are the files under a class folder (at any depth) whose name ends in a suffix
`medxai.data.imageio` decodes (.png, .jpg, .jpeg, .dcm, .dicom); hidden files and folders
are skipped, other files are noted. An image's patient id is its file stem; its source
follows `source_from`: `none` (unknown), `dir` (the first folder below the class folder:
ROOT/<split>/<class>/<source>/<image>; unknown for an image directly in the class folder)
or `prefix` (the file name before its first '_': `hospA_0001.png` → hospA; unknown without
one).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path, PurePosixPath

from medxai.data.imageio import RADIOGRAPH_SUFFIXES
from medxai.data.records import LineProblem, Record, SplitIndex, finish_index
from medxai.errors import DatasetError, MedxaiError
from medxai.paths import link_problem, visible_files

SOURCE_FROM = ("none", "dir", "prefix")
FORM = "ROOT/<split>/<class>/<image> (e.g. ROOT/train/<class>/0001.png)"


def _visible_dirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def split_folders(root: Path) -> list[Path]:
    """The folders under `root` that hold class folders."""
    return [p for p in _visible_dirs(root) if _visible_dirs(p)]


def unnamed_splits(folders: Sequence[Path]) -> str | None:
    """What was found, when no folder holding folders is named train* or test* (None when
    one is): such folders are not taken for splits, so a COVIDx root's `text_masks/` holding
    `train/` and `test/` is never read as the split `text_masks` of classes train and test."""
    if any(p.name.startswith(("train", "test")) for p in folders):
        return None
    shown = [f"{p.name}/ (holding {', '.join(d.name + '/' for d in _visible_dirs(p)[:4])})"
             for p in folders[:4]]  # fmt: skip
    more = f" and {len(folders) - 4} more" if len(folders) > 4 else ""
    return f"no split folder named train* or test*; found {', '.join(shown)}{more}"


def source_of(relative: PurePosixPath, source_from: str) -> str | None:
    """An image's source from its path relative to its class folder (see the module doc)."""
    if source_from == "dir":
        return relative.parts[0] if len(relative.parts) > 1 else None
    if source_from == "prefix":
        stem, sep, _ = relative.name.partition("_")
        return stem if sep and stem else None
    return None


def _images(class_dir: Path) -> tuple[list[Path], list[Path]]:
    """(images, other files) under a class folder, sorted; hidden entries and links to
    folders are not walked into."""
    images, others = [], []
    for path in visible_files(class_dir):
        (images if path.suffix.lower() in RADIOGRAPH_SUFFIXES else others).append(path)
    return images, others


def _read_split(index: SplitIndex, split_dir: Path, source_from: str) -> list[Path]:
    """The records of one split folder into `index`; returns the files it passed over."""
    split, root = split_dir.name, index.root
    records: list[Record] = []
    passed = [p for p in split_dir.iterdir() if p.is_file() and not p.name.startswith(".")]
    for class_dir in _visible_dirs(split_dir):
        images, others = _images(class_dir)
        passed += others
        for path in images:
            relative = PurePosixPath(*path.relative_to(class_dir).parts)
            problem = link_problem(path, root, class_dir)
            if problem:
                index.problems.append(LineProblem(path, 0, problem, split))
                continue
            source = source_of(relative, source_from)
            filename = f"{class_dir.name}/{relative}"
            records.append(Record(path.stem, filename, class_dir.name, source, path, split, 0,
                                  class_dir))  # fmt: skip
    if not records and not index.problems_of(split):
        reason = f"no images: the split is empty (expected {FORM})"
        index.problems.append(LineProblem(split_dir, 0, reason, split))
    index.records[split], index.image_dirs[split] = records, split_dir
    return passed


def read_folder_tree(
    root: str | Path,
    classes: Sequence[str] | None = None,
    source_from: str = "none",
    splits: Sequence[str] | None = None,
) -> SplitIndex:
    """Every split folder under `root` (only `splits` when given), read leniently."""
    root = Path(root)
    if source_from not in SOURCE_FROM:
        raise MedxaiError(f"--source-from must be {' or '.join(SOURCE_FROM)}, got {source_from!r}")
    if not root.is_dir():
        raise DatasetError(f"{root}: dataset root not found")
    for name in splits or ():
        if name in ("", ".", "..") or PurePosixPath(name).name != name:
            raise MedxaiError(f"split {name!r}: a split is a folder directly under {root}")
    folders = [root / name for name in splits] if splits else split_folders(root)
    if not folders:
        raise DatasetError(f"{root}: no split folders holding class folders; expected {FORM}")
    unnamed = None if splits else unnamed_splits(folders)
    if unnamed:
        raise DatasetError(f"{root}: {unnamed}; expected {FORM}, or name the splits with --splits")
    index = SplitIndex(root, {}, {}, layout="folders")
    passed: list[Path] = []
    for folder in folders:
        if not folder.is_dir():
            index.records[folder.name], index.image_dirs[folder.name] = [], folder
            index.problems.append(LineProblem(folder, 0, "split folder not found", folder.name))
            continue
        passed += _read_split(index, folder, source_from)
    if passed:
        index.notes.append(
            f"{len(passed)} file(s) passed over, e.g. {passed[0]}: images are files named "
            f"*{', *'.join(RADIOGRAPH_SUFFIXES)} in class folders, {FORM}"
        )
    return finish_index(index, classes)
