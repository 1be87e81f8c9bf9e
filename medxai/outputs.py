"""Where a command may write: never inside its source, never twice at once.

`check_output` runs before any work; `output_lock` holds `OUT/.medxai.lock` (the process id
inside, an advisory `flock` on it) for the run, so a second run into the same folder stops
at once with the first one's pid instead of redoing its work beside it.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from medxai.errors import DatasetError, MedxaiError
from medxai.paths import is_inside

LOCK_NAME = ".medxai.lock"


def check_output(out: Path, sources: Iterable[Path | None] = (), is_file: bool = False) -> None:
    """Refuse an output of the wrong kind (file vs folder) or one inside a source dataset."""
    if is_file and out.is_dir():
        raise MedxaiError(f"--out {out} is a folder; give the path of a file to write")
    if not is_file and out.exists() and not out.is_dir():
        raise MedxaiError(f"--out {out} is an existing file; give a folder")
    target = Path(os.path.realpath(out))
    for source in sources:
        if source is None:
            continue
        real = Path(os.path.realpath(source))
        if is_inside(target, real):
            raise DatasetError(
                f"output {out} is inside the source dataset {source}; the source is never written"
            )


@contextmanager
def output_lock(folder: Path) -> Iterator[None]:
    """Hold FOLDER/.medxai.lock for the duration; another holder is a one-line error."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    with open(path, "a+", encoding="utf-8") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            raise MedxaiError(
                f"{folder} is in use by another medxai run (pid {holder}); wait for it to "
                f"end, or choose another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        try:
            yield
        finally:
            path.unlink(missing_ok=True)  # still ours: the flock is held until the close
