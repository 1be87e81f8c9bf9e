"""Decoded films of one shape, float32: in one array in memory while they fit a limit, else in
a file in a folder the caller names (a run's OUT), so that the memory a run holds stays flat
in the number of films."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from collections.abc import Callable, Hashable, Sequence
from pathlib import Path

import numpy as np
import torch

from medxai.errors import OutputSpaceError


def film_bytes(rows: int, shape: tuple[int, ...]) -> int:
    """Bytes of `rows` float32 films of `shape`: what a FilmStore weighs against its limit."""
    return 4 * rows * int(np.prod(shape))


class FilmStore:
    """(C, S, S) float32 films by key: in one array in memory, or — when they would take more
    than `limit` bytes and `spill` names a folder — one row each in a file there, unlinked as
    soon as it is open (the system frees it when the process ends, killed or not).

    A spilled film is written and read back with positioned reads (`pwrite`/`preadv`), not
    through a memory map: its pages then sit in the system's file cache, which the system
    drops under pressure, and never in the process's resident memory, which a map would
    grow by every page read (positioned reads are also safe from forked DataLoader workers,
    which share the descriptor). Reading gives a copy of the row either way."""

    def __init__(
        self, keys: Sequence[Hashable], shape: tuple[int, ...], spill: Path | None, limit: int
    ) -> None:
        self.rows = {key: k for k, key in enumerate(dict.fromkeys(keys))}
        self.shape = tuple(shape)
        self.written = np.zeros(len(self.rows), bool)
        total = film_bytes(len(self.rows), self.shape)
        self.spilled = spill is not None and total > limit
        if not self.spilled:
            self.array = np.zeros((len(self.rows), *self.shape), np.float32)
            return
        spill.mkdir(parents=True, exist_ok=True)
        self.folder, self.row_bytes = spill, film_bytes(1, self.shape)
        free = shutil.disk_usage(spill).free
        if total > free:
            raise OutputSpaceError(
                f"{spill}: the decoded films need {total / 1e9:.1f} GB here and "
                f"{free / 1e9:.1f} GB are free; free some room or give an OUT on a larger disk"
            )
        self.file = tempfile.TemporaryFile(dir=spill, suffix=".f32")  # unlinked already
        os.ftruncate(self.file.fileno(), total)  # zeros, sparse

    def __setitem__(self, key: Hashable, film: torch.Tensor) -> None:
        values = np.ascontiguousarray(film.numpy(), np.float32).reshape(self.shape)
        if not self.spilled:
            self.array[self.rows[key]] = values
            self.written[self.rows[key]] = True
            return
        try:
            written = os.pwrite(self.file.fileno(), values.data, self._offset(key))
        except OSError as err:
            if err.errno != errno.ENOSPC:
                raise
            written = 0
        if written != self.row_bytes:
            raise OutputSpaceError(f"{self.folder}: no room left for the decoded films")
        self.written[self.rows[key]] = True

    def __getitem__(self, key: Hashable) -> torch.Tensor:
        if not self.spilled:
            return torch.from_numpy(self.array[self.rows[key]].copy())
        film = np.empty(self.shape, np.float32)
        if os.preadv(self.file.fileno(), [film.data], self._offset(key)) != self.row_bytes:
            raise OSError(f"short read from the spilled films in {self.folder}")
        return torch.from_numpy(film)

    def made_once(self, key: Hashable, make: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The film under `key`, made by `make` and stored the first time it is asked for."""
        if not self.written[self.rows[key]]:
            self[key] = make()
        return self[key]

    def __contains__(self, key: Hashable) -> bool:
        return key in self.rows

    def _offset(self, key: Hashable) -> int:
        return self.rows[key] * self.row_bytes
