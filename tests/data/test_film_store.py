"""Decoded films stay in memory while small and go to a file in the named folder when they
would outgrow the limit, with the same values either way, and a spilled film read back does
not stay in the process's memory."""

import errno
import re
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from medxai.data import film_store
from medxai.data.film_store import FilmStore
from medxai.errors import OutputSpaceError


def test_a_store_over_its_limit_spills_to_an_unlinked_file_and_reads_the_same(tmp_path):
    films = {f"f{k}": torch.rand(1, 8, 8) for k in range(5)}
    small = FilmStore(list(films), (1, 8, 8), tmp_path, limit=10_000)
    big = FilmStore(list(films), (1, 8, 8), tmp_path, limit=100)
    assert not small.spilled and big.spilled
    for key, film in films.items():
        small[key] = big[key] = film
    assert all(torch.equal(big[k], films[k]) and torch.equal(small[k], films[k]) for k in films)
    assert list(tmp_path.iterdir()) == [], "the file is unlinked once open: nothing left in OUT"


def test_an_unwritten_film_reads_as_zeros_either_way(tmp_path):
    for limit in (10_000, 100):
        store = FilmStore(["a", "b"], (2, 4, 4), tmp_path, limit)
        store["b"] = torch.ones(2, 4, 4)
        assert torch.equal(store["a"], torch.zeros(2, 4, 4)), limit


def test_a_film_read_back_is_a_copy_the_store_keeps_unchanged_either_way(tmp_path):
    for limit in (10_000, 0):
        store = FilmStore(["a"], (1, 4, 4), tmp_path, limit)
        store["a"] = torch.ones(1, 4, 4)
        store["a"].zero_()
        assert torch.equal(store["a"], torch.ones(1, 4, 4)), limit


def _file_pages_mib() -> float:
    """File-backed and shared pages resident in this process (RssFile + RssShmem), in MiB."""
    fields = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines())
    return sum(int(fields[name].split()[0]) for name in ("RssFile", "RssShmem")) / 1024


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_reading_a_spilled_store_through_does_not_grow_resident_memory(tmp_path):
    """A memory map would make every page read resident in the process (64 MiB here); the
    store's positioned reads leave them to the system's file cache."""
    keys = range(256)
    store = FilmStore(keys, (1, 256, 256), tmp_path, limit=1 << 20)  # 64 MiB of films
    before = _file_pages_mib()
    for key in keys:
        store[key] = torch.full((1, 256, 256), float(key))
    total = sum(float(store[key][0, 7, 7]) for key in keys)
    assert total == sum(keys)
    assert _file_pages_mib() - before < 16


def test_a_spill_the_disk_cannot_hold_is_refused_before_any_film_naming_the_folder(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(film_store.shutil, "disk_usage", lambda _: SimpleNamespace(free=10**9))
    with pytest.raises(
        OutputSpaceError, match=rf"{re.escape(str(tmp_path))}: .*need 2\.0 GB here and 1\.0 GB"
    ):
        FilmStore(range(2000), (1, 500, 500), tmp_path, limit=0)
    assert FilmStore(range(100), (1, 500, 500), tmp_path, limit=0).spilled  # 0.1 GB fits


def test_a_disk_filling_up_while_spilling_gives_one_line_naming_the_folder(tmp_path, monkeypatch):
    store = FilmStore(["a"], (1, 4, 4), tmp_path, limit=0)

    def full(*_):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(film_store.os, "pwrite", full)
    with pytest.raises(OutputSpaceError, match=rf"{re.escape(str(tmp_path))}: no room left"):
        store["a"] = torch.ones(1, 4, 4)
