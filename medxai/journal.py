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
