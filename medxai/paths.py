"""The path rules every command applies to a dataset before it reads a byte of it.

A split line names a file relative to its image folder. It is refused (a user error naming
the line) when it is absolute, holds a NUL byte or a '..' part, has a name too long for
the file system, or resolves (through symbolic links) outside both the dataset root and
its image folder. A listed file that is missing, a directory, a FIFO, a device, empty or
too large is an unreadable image: skipped and listed where the command allows it. Nothing
is opened before `file_problem` has said it is a regular file, so no FIFO or device can
hang a run.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

MAX_NAME_BYTES = 255  # one path component, as Linux file systems allow
MAX_PATH_BYTES = 4096
MAX_FILE_BYTES = 2 << 30  # 2 GiB: no radiograph is larger


def name_problem(filename: str) -> str | None:
    """Why a split line's file name cannot be used, judged from the text alone."""
    if "\x00" in filename:
        return "file name holds a NUL byte"
    if os.path.isabs(filename):
        return f"absolute path {filename!r}; file names are relative to the image folder"
    parts = PurePosixPath(filename).parts
    if ".." in parts:
        return f"file name {filename!r} climbs out of the image folder ('..')"
    if len(filename.encode("utf-8", "surrogateescape")) > MAX_PATH_BYTES:
        return f"file name too long ({len(filename)} characters)"
    longest = max(parts, key=len, default="")
    if len(longest.encode("utf-8", "surrogateescape")) > MAX_NAME_BYTES:
        return f"file name too long ({len(longest)} characters in one part; at most 255 bytes)"
    return None


def is_inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def link_problem(path: Path, root: Path, image_dir: Path) -> str | None:
    """Why `path` leaves the dataset: a symbolic link resolving outside root and image folder."""
    real = Path(os.path.realpath(path))
    bases = {Path(os.path.realpath(root)), Path(os.path.realpath(image_dir))}
    if any(is_inside(real, base) for base in bases):
        return None
    return f"{path.name} links to {real}, outside the dataset root {root}"


def file_problem(path: Path) -> str | None:
    """Why `path` is not a readable image file (None: a regular, non-empty file of sane size)."""
    try:
        info = path.stat()
    except FileNotFoundError:
        return "broken symbolic link" if path.is_symlink() else "image not found"
    except OSError as err:
        return f"cannot access ({err.strerror or err})"
    mode = info.st_mode
    if stat.S_ISDIR(mode):
        return "is a directory, not an image file"
    if stat.S_ISFIFO(mode):
        return "is a FIFO (named pipe), not an image file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "is a device, not an image file"
    if not stat.S_ISREG(mode):
        return "is not a regular file"
    if info.st_size == 0:
        return "empty file"
    if info.st_size > MAX_FILE_BYTES:
        size = info.st_size / 2**30
        return f"file of {size:.1f} GiB is over the {MAX_FILE_BYTES >> 30} GiB limit"
    return None


def visible_files(folder: Path) -> Iterator[Path]:
    """The files under `folder` at any depth, sorted; hidden files and folders are skipped,
    and links to folders are not walked into."""
    for at, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        yield from (Path(at) / name for name in sorted(files) if not name.startswith("."))
