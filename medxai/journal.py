"""Append-only JSON-lines journals: a long stage writes one line per finished item, so a
killed run resumes where it stopped. A line torn by the kill is skipped and closed off."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO


def read_journal(path: Path) -> list[dict]:
    """The complete entries of `path` (none when it does not exist), in order."""
    if not path.is_file():
        return []
    text = path.read_text(encoding="utf-8")
    if text and not text.endswith("\n"):
        with open(path, "a", encoding="utf-8") as out:
            out.write("\n")  # end the torn line, so the next entry starts on its own line
    entries = []
    for line in text.splitlines():
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            continue  # the torn line
    return entries


class JournalWriter:
    def __init__(self, stream: IO[str]) -> None:
        self._stream = stream

    def append(self, entry: dict) -> None:
        self._stream.write(json.dumps(entry) + "\n")
        self._stream.flush()


@contextmanager
def journal(path: Path) -> Iterator[JournalWriter]:
    """Append entries to `path`, each flushed as soon as it is written."""
    with open(path, "a", encoding="utf-8") as stream:
        yield JournalWriter(stream)


def rank_journal(path: Path, rank: int) -> Path:
    """Where a torchrun rank journals: `path` itself for rank 0, `stem.rank<k>.suffix` beside
    it for the others (one writer per file)."""
    return path if rank == 0 else path.with_name(f"{path.stem}.rank{rank}{path.suffix}")


def _rank_files(path: Path) -> list[Path]:
    return sorted(path.parent.glob(f"{path.stem}.rank*{path.suffix}"))


def read_rank_journals(path: Path) -> list[dict]:
    """The complete entries of `path` and of every rank's journal beside it."""
    return [e for part in (path, *_rank_files(path)) for e in read_journal(part)]


def fold_rank_journals(path: Path) -> None:
    """Once every rank has finished writing: the other ranks' entries appended to `path`, in
    rank order, and their files removed (a kill in between leaves entries twice, which the
    readers' by-key dictionaries absorb)."""
    parts = _rank_files(path)
    if not parts:
        return
    with journal(path) as out:
        for part in parts:
            for entry in read_journal(part):
                out.append(entry)
    for part in parts:
        part.unlink()
