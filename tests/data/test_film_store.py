"""Decoded films stay in memory while small and go to a memory-mapped file in the named
folder when they would outgrow the limit, with the same values either way."""

import numpy as np
import torch

from medxai.data.film_store import FilmStore


def test_a_store_over_its_limit_spills_to_an_unlinked_file_and_reads_the_same(tmp_path):
    films = {f"f{k}": torch.rand(1, 8, 8) for k in range(5)}
    small = FilmStore(list(films), (1, 8, 8), tmp_path, limit=10_000)
    big = FilmStore(list(films), (1, 8, 8), tmp_path, limit=100)
    assert not small.spilled and big.spilled and isinstance(big.array, np.memmap)
    for key, film in films.items():
        small[key] = big[key] = film
    assert all(torch.equal(big[k], films[k]) and torch.equal(small[k], films[k]) for k in films)
    assert list(tmp_path.iterdir()) == [], "the file is unlinked once open: nothing left in OUT"
