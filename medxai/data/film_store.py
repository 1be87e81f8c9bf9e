"""Decoded films of one shape in one float32 array: in memory while they fit a limit, else in
a memory-mapped file in a folder the caller names (a run's OUT), so that the memory a run
holds stays flat in the number of films."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Hashable, Sequence
from pathlib import Path

import numpy as np
import torch


def film_bytes(rows: int, shape: tuple[int, ...]) -> int:
    """Bytes of `rows` float32 films of `shape`: what a FilmStore weighs against its limit."""
    return 4 * rows * int(np.prod(shape))


class FilmStore:
    """(C, S, S) float32 films by key, in one array: in memory, or — when they would take more
    than `limit` bytes and `spill` names a folder — in a memory-mapped file there, unlinked as
    soon as it is open (the system frees it when the process ends, killed or not). Reading a
    film gives a view of its row."""

    def __init__(
        self, keys: Sequence[Hashable], shape: tuple[int, ...], spill: Path | None, limit: int
    ) -> None:
        self.rows = {key: k for k, key in enumerate(dict.fromkeys(keys))}
        full = (len(self.rows), *shape)
        self.spilled = spill is not None and film_bytes(len(self.rows), shape) > limit
        if not self.spilled:
            self.array = np.zeros(full, np.float32)
            return
        spill.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(dir=spill, suffix=".f32")
        os.close(handle)
        self.array = np.memmap(name, np.float32, "w+", shape=full)
        os.unlink(name)

    def __setitem__(self, key: Hashable, film: torch.Tensor) -> None:
        self.array[self.rows[key]] = film.numpy()

    def __getitem__(self, key: Hashable) -> torch.Tensor:
        return torch.from_numpy(self.array[self.rows[key]])

    def __contains__(self, key: Hashable) -> bool:
        return key in self.rows
